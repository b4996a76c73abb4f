"""The step's log in its termination message: the driver shows a short step's output without a log request.

A container may write a file, its *termination message*, that the kubelet reads when the container
terminates and puts into the pod's status as ``status.containerStatuses[].state.terminated.message``
(https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/). The driver
watches pods anyway, so the message reaches it with the pod's last event, at no extra request. The
facts it relies on (the Container API's ``terminationMessagePath`` and ``terminationMessagePolicy``,
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#lifecycle-1):

* the file is ``terminationMessagePath``, ``/dev/termination-log`` by default, and the kubelet
  mounts it into the container;
* at most 4096 bytes of it are kept per container, and 12 KiB for all containers of a pod (a step
  pod has one container);
* with ``terminationMessagePolicy: FallbackToLogsOnError``, a container that exited with an error
  and left the file empty gets the last chunk of its log instead: at most 2048 bytes or 80 lines,
  whichever is smaller.

So the step supervisor (:mod:`.step`) passes everything its worker writes through a :class:`Relay`:
two pipes whose bytes it copies, as they come and unbuffered, to its own stdout and stderr (the
container's log, so ``kubectl logs -f`` streams as before), keeping the last 4096 bytes. When the
worker has ended, it writes the message (:func:`message_of`): a first line that marks it as
gokart_k8s's and says whether the rest is the *whole* log (:data:`COMPLETE`) or only its end
(:data:`TAIL`), then the text. The driver (:func:`read_message`) shows a complete one as the step's
log and reads nothing; for a tail, no marker (a crashed supervisor's FallbackToLogsOnError text) or
no message, it reads the log once as before (:mod:`gokart_k8s.cluster.logs`).

Where the file is (:func:`message_path`): :data:`MESSAGE_PATH_ENV` when set (every step Job sets it
to ``/dev/termination-log``; the embedded cluster's kubelet, whose containers are host processes,
points it to a per-pod file), else ``/dev/termination-log`` when that file exists. A path in
``/dev`` is only ever written when it exists: outside Kubernetes nothing is created there.
"""

from __future__ import annotations

import os
import selectors
import threading
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "COMPLETE",
    "DEFAULT_MESSAGE_PATH",
    "MESSAGE_LIMIT",
    "MESSAGE_PATH_ENV",
    "TAIL",
    "LogMessage",
    "Relay",
    "message_of",
    "message_path",
    "read_message",
    "write_message",
]

#: Where the step writes its termination message (the Job sets it; see the module docstring).
MESSAGE_PATH_ENV = "GOKART_K8S_TERMINATION_MESSAGE_PATH"
#: The kubelet's default ``terminationMessagePath``.
DEFAULT_MESSAGE_PATH = "/dev/termination-log"
#: The bytes of a termination message the kubelet keeps per container.
MESSAGE_LIMIT = 4096
#: First line of a message that holds the step's whole log.
COMPLETE = "gokart-k8s log: complete\n"
#: First line of a message that holds only the end of the step's log (whole lines).
TAIL = "gokart-k8s log: tail\n"


def message_of(kept: bytes, total: int, limit: int = MESSAGE_LIMIT) -> bytes:
    """The termination message for a log of ``total`` bytes whose last bytes are ``kept``.

    Whole when it fits in ``limit`` with its first line; otherwise the last whole lines that fit
    (a single line longer than that is cut at the front).
    """
    if total == len(kept) and len(COMPLETE) + total <= limit:
        return COMPLETE.encode() + kept
    room = max(0, limit - len(TAIL))
    start = max(0, len(kept) - room)
    text = kept[start:]
    # The text starts with a whole line when nothing came before it or the byte before ends a line
    # (when that byte is no longer kept, assume not).
    whole = total == len(text) or (start > 0 and kept[start - 1 : start] == b"\n")
    if not whole:
        newline = text.find(b"\n")
        if 0 <= newline < len(text) - 1:
            text = text[newline + 1 :]  # drop the partial first line
    return TAIL.encode() + text


@dataclass(frozen=True)
class LogMessage:
    """A termination message written by :func:`message_of`, read back."""

    #: The lines are the step's whole log (else only its last lines).
    complete: bool
    lines: list[str]


def read_message(message: str | None) -> LogMessage | None:
    """The log in a pod's ``terminated.message``; None when it is not one of ours (or absent)."""
    if not message:
        return None
    for head, complete in ((COMPLETE, True), (TAIL, False)):
        if message.startswith(head):
            return LogMessage(complete, message[len(head) :].splitlines())
    return None


def message_path(env: Mapping[str, str]) -> str | None:
    """Where the termination message goes here; None where there is no such file (see the module docstring)."""
    path = env.get(MESSAGE_PATH_ENV) or DEFAULT_MESSAGE_PATH
    if os.path.dirname(os.path.abspath(path)) == "/dev" and not os.path.exists(path):
        return None
    return path


def write_message(path: str | None, message: bytes) -> bool:
    """Write ``message`` to ``path``; False when there is none or it cannot be written.

    A message that cannot be written costs one log read in the driver, never the step.
    """
    if path is None:
        return False
    try:
        with open(path, "wb") as fh:
            fh.write(message)
    except OSError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:  # the reader is gone (EPIPE) or the stream closed: keep relaying the rest
            return False
        view = view[written:]
    return True


class Relay:
    """The worker's stdout and stderr: two pipes copied to this process's fds 1 and 2, the end kept.

    The worker gets :attr:`stdout` and :attr:`stderr` as its fds 1 and 2; :meth:`start` (after the
    worker started) closes them here and copies what arrives on one thread, in arrival order, each
    stream to its own fd. :meth:`say` writes the supervisor's own words to stderr the same way.
    :meth:`finish` waits up to ``drain_seconds`` for both pipes to end -- a grandchild the worker
    left may keep them open; then what is already there is taken and the relay stops.
    """

    def __init__(self, limit: int = MESSAGE_LIMIT) -> None:
        self._limit = limit
        self._out_r, self.stdout = os.pipe()
        self._err_r, self.stderr = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        self._lock = threading.Lock()
        self._kept = bytearray()
        self._total = 0
        self._broken: set[int] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def worker_closes(self) -> tuple[int, ...]:
        """The descriptors a worker forked without ``exec`` must close (``Popen`` closes them itself)."""
        return (self._out_r, self._err_r, self._wake_r, self._wake_w)

    def start(self) -> None:
        """Start copying; the worker has its ends now, so this process closes them."""
        os.close(self.stdout)
        os.close(self.stderr)
        self._thread = threading.Thread(target=self._run, name="log-relay", daemon=True)
        self._thread.start()

    def say(self, text: str) -> None:
        """Write a line of the supervisor's own to stderr, in order with the worker's."""
        self._emit(2, (text if text.endswith("\n") else text + "\n").encode(errors="replace"))

    def finish(self, drain_seconds: float) -> None:
        """Wait up to ``drain_seconds`` for both pipes to end, then take what is there and stop."""
        thread = self._thread
        if thread is None:  # never started: the worker never got its ends
            for fd in (self.stdout, self.stderr):
                _close(fd)
        else:
            thread.join(drain_seconds)
            if thread.is_alive():
                self._stopping = True
                _write_all(self._wake_w, b"x")
                thread.join()
        for fd in (self._out_r, self._err_r, self._wake_r, self._wake_w):
            _close(fd)

    def message(self) -> bytes:
        """The termination message for what was relayed so far (:func:`message_of`)."""
        with self._lock:
            return message_of(bytes(self._kept), self._total, self._limit)

    def _emit(self, fd: int, data: bytes) -> None:
        with self._lock:
            if fd not in self._broken and not _write_all(fd, data):
                self._broken.add(fd)
            self._total += len(data)
            self._kept += data
            if len(self._kept) > self._limit:
                del self._kept[: len(self._kept) - self._limit]

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        targets = {self._out_r: 1, self._err_r: 2}
        for fd in targets:
            selector.register(fd, selectors.EVENT_READ)
        selector.register(self._wake_r, selectors.EVENT_READ)
        rounds = 0
        try:
            while targets:
                # Once stopping, only what is already in the pipes (a few reads at most): no waiting
                # for a grandchild that keeps them open, or keeps writing.
                events = selector.select(0 if self._stopping else None)
                if self._stopping:
                    rounds += 1
                    if not events or rounds > 16:
                        return
                for key, _ in events:
                    fd = int(key.fd)
                    if fd == self._wake_r:
                        selector.unregister(fd)
                        continue
                    try:
                        data = os.read(fd, 65536)
                    except InterruptedError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        selector.unregister(fd)
                        del targets[fd]
                        continue
                    self._emit(targets[fd], data)
        finally:
            selector.close()


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
