"""Stopping a run: SIGTERM as Ctrl-C, one exit status per signal, scratch folders that never linger.

``gokart-k8s run`` is stopped by a person (Ctrl-C, SIGINT) or by a machine (SIGTERM: ``kill``,
systemd, a CI timeout, the kubelet evicting a driver pod). Both must end the same way: the driver
handles in-flight Jobs per ``--on-interrupt``, the embedded cluster stops its pods, temporary
files go, the summary is printed, and the exit status says which signal it was: 130 for SIGINT,
143 for SIGTERM (128 + the signal number, the shell's convention,
https://www.gnu.org/software/bash/manual/html_node/Exit-Status.html).

:func:`stop_signals` does that: within the block the first SIGTERM raises ``KeyboardInterrupt``
in the main thread (where Python runs signal handlers), exactly where Ctrl-C would have; later
SIGTERMs are ignored, so the cleanup they asked for is not cut short. SIGINT keeps Python's
behaviour (every Ctrl-C interrupts) and is recorded. A SIGTERM is never a question to a person:
:func:`stopped_by` lets the driver keep Jobs instead of asking on a terminal nobody watches.

:func:`scratch_directory` is a temporary folder removed on the way out, however the block ends;
a folder left by a process that was SIGKILLed (nothing can run then) is removed by the next one:
its name carries the owner's pid, and folders of pids that no longer run are swept.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

__all__ = ["StopSignals", "scratch_directory", "stop_signals", "stopped_by"]

_received: int | None = None


def stopped_by() -> int | None:
    """The signal that is stopping this run (SIGINT or SIGTERM), None if none arrived."""
    return _received


class StopSignals:
    """What :func:`stop_signals` yields: which signal stopped the run, and the exit status for it."""

    @property
    def signum(self) -> int | None:
        return _received

    def exit_code(self, code: int) -> int:
        """``128 + signal`` once a stop signal arrived (130 SIGINT, 143 SIGTERM), otherwise ``code``."""
        return 128 + _received if _received is not None else code


@contextlib.contextmanager
def stop_signals() -> Iterator[StopSignals]:
    """Within the block, SIGTERM stops the run like Ctrl-C (see the module docstring)."""
    global _received
    _received = None

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        global _received
        if _received is None:
            _received = signum
        raise KeyboardInterrupt

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        global _received
        if _received is not None:
            return  # already stopping: let the cleanup finish
        _received = signum
        raise KeyboardInterrupt

    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, on_sigint),
        signal.SIGTERM: signal.signal(signal.SIGTERM, on_sigterm),
    }
    try:
        yield StopSignals()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(parent: Path, prefix: str) -> None:
    """Remove ``<prefix><pid>-*`` folders whose owning process is gone."""
    for path in parent.glob(f"{prefix}*-*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _owner_alive(int(pid)) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def scratch_directory(prefix: str = "gokart-k8s-scratch-") -> Iterator[Path]:
    """A private temporary folder, removed when the block ends (see the module docstring)."""
    parent = Path(tempfile.gettempdir())
    _sweep(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
