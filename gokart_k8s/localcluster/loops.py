"""The background thread every control loop of the local cluster runs in.

The scheduler, the Job and CronJob controllers and the chaos monkey each run one daemon thread,
started by ``start()`` and ended by ``stop()``: set the stop flag, wake the loop out of whatever
it waits on, join the thread for at most 5 s. :class:`PassLoop` adds the shape the scheduler and
the CronJob controller share: one pass whenever an event wakes the loop, or after an idle timeout.
"""

from __future__ import annotations

import threading
import traceback


class ControlLoop:
    """One daemon thread named ``thread_name`` running :meth:`_loop` until :meth:`stop`."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake_up()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        raise NotImplementedError

    def _wake_up(self) -> None:
        """Unblock :meth:`_loop` so that it sees the stop flag."""
        raise NotImplementedError


class PassLoop(ControlLoop):
    """Runs :meth:`_pass` each time :meth:`_wake_up` is called, and after ``_idle_seconds()`` without."""

    def __init__(self, thread_name: str) -> None:
        super().__init__(thread_name)
        self._wake = threading.Event()

    def _idle_seconds(self) -> float:
        return 1.0

    def _pass(self) -> None:
        raise NotImplementedError

    def _wake_up(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._idle_seconds())
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._pass()
            except Exception:  # pragma: no cover - one bad object must not stop the loop
                traceback.print_exc()
