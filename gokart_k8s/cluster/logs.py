"""Pod logs, read off the driver's loop: live streams while pods run, one read when they end.

The driver's loop must never wait on a log: a slow or stuck log request would hold up every other
step's news. A :class:`LogReader` does all log I/O on its own threads and hands each line to
``deliver(key, line)`` (the driver's log sink, with the step as ``key``):

- **Live.** :meth:`LogReader.follow` streams a running pod's log (``follow=true``, one request for
  the pod's whole life, https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#get-read-log-of-the-specified-pod)
  on a thread of its own, at most ``followers`` at once; a pod beyond that is read once when it ends.
- **Live, but not for short steps.** The driver asks for a stream only once a pod has been Running
  for ``live_log_after_seconds``: most steps of a large graph end sooner, and their log comes with
  the pod's last status, in its termination message (:mod:`gokart_k8s.supervision.termination_log`).
- **Once at the end.** :meth:`LogReader.ended` is the loop's question "is this ended pod's log all
  delivered?". It never blocks: if a stream is still draining it says no (and the stream's end
  wakes the loop); if there was no stream and the driver found the lines in the pod's termination
  message (``message``: the whole log, or the last lines the advice needs), it delivers them at
  once and no request is made; if there was no stream, or it broke, it queues *one* read of the
  log (only the lines the stream had not delivered) on a small pool of ``readers`` threads and
  says no until that read is done. After ``settle_seconds`` it says yes anyway, so a stuck request never stops a step
  from being decided; a stream still stuck then is superseded by one read, and a late line of it
  is dropped, never shown twice.
- **In order.** The lines of one pod are delivered in the order the pod wrote them, once each: one
  thread at a time delivers a pod's lines, under the pod's lock.
- **Stops.** :meth:`LogReader.stop` drops queued reads, ends the pool, and silences the streams
  (they end with their pods; the threads are daemons).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gokart_k8s.cluster import ClusterAPI
from gokart_k8s.errors import ClusterError

__all__ = ["LogReader"]


@dataclass
class _PodLog:
    key: str
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Lines delivered so far (the stream's, then the read's).
    lines: int = 0
    streaming: bool = False
    #: The stream ended normally: every line was delivered.
    complete: bool = False
    #: A read of the rest was queued; set once it is done.
    read_queued: bool = False
    read_done: bool = False
    #: The stream's late lines are dropped (a read took over).
    superseded: bool = False
    #: When the loop first asked about this pod's end.
    asked: float | None = None


class LogReader:
    """Streams and reads pods' logs on its own threads (see the module docstring)."""

    def __init__(
        self,
        api: ClusterAPI,
        namespace: str,
        *,
        deliver: Callable[[str, str], None],
        wake: Callable[[], None] = lambda: None,
        followers: int = 64,
        readers: int = 4,
        settle_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._deliver = deliver
        self._wake = wake
        self._followers = followers
        self._readers = max(1, readers)
        self._settle = settle_seconds
        self._clock = clock
        self._pods: dict[str, _PodLog] = {}
        self._streams = 0
        self._lock = threading.Lock()
        self._reads: queue.Queue[tuple[_PodLog, int | None] | None] = queue.Queue()
        self._workers: list[threading.Thread] = []
        self._stopped = threading.Event()

    def follow(self, key: str, uid: str, name: str) -> None:
        """Stream pod ``name``'s log while it runs, if a follower is free (else it is read when it ends)."""
        with self._lock:
            if uid in self._pods or self._streams >= self._followers or self._stopped.is_set():
                return
            pod = self._pods[uid] = _PodLog(key, name, streaming=True)
            self._streams += 1
        threading.Thread(target=self._stream, args=(pod,), name=f"log-{name}", daemon=True).start()

    def ended(
        self, key: str, uid: str, name: str, *, want: bool, tail: int | None = None, message: list[str] | None = None
    ) -> bool:
        """True once the ended pod's log is all delivered (or not ``want``-ed, or ``settle_seconds`` passed).

        ``tail`` bounds the lines read once (None: all). ``message``: the lines to deliver instead of
        a read when no stream was opened (from the pod's termination message). Never blocks.
        """
        fresh = False
        with self._lock:
            pod = self._pods.get(uid)
            if pod is None:
                if not want:
                    return True
                fresh = True
                pod = self._pods[uid] = _PodLog(key, name, read_queued=message is not None)
        if fresh and message is not None:
            # No stream was opened, and none will be (follow() skips a known pod): these lines, in
            # order, are the only ones delivered for this pod.
            with pod.lock:
                self._deliver_all(pod, message)
            return True
        now = self._clock()
        if pod.asked is None:
            pod.asked = now
        late = now - pod.asked >= self._settle
        with pod.lock:
            if pod.complete or pod.read_done:
                return True
            if pod.streaming and not late:
                return False  # the container ended, so its stream ends too: its end wakes the loop
            if not pod.read_queued and not self._stopped.is_set():
                # No stream, a broken one, or a stuck one: read the rest once.
                pod.superseded = True
                pod.read_queued = True
                self._read_later(pod, tail if not pod.lines else None)
        return late

    def stop(self) -> None:
        """Read nothing more; streams still open deliver nothing more."""
        self._stopped.set()
        while True:
            try:
                self._reads.get_nowait()
            except queue.Empty:
                break
        for _ in self._workers:
            self._reads.put(None)

    # --- on the reader's threads --------------------------------------------------------------

    def _read_later(self, pod: _PodLog, tail: int | None) -> None:
        with self._lock:
            if len(self._workers) < self._readers:
                worker = threading.Thread(target=self._work, name=f"log-reader-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()
        self._reads.put((pod, tail))

    def _stream(self, pod: _PodLog) -> None:
        complete = False
        try:
            for line in self._api.follow_pod_log(self._namespace, pod.name):
                with pod.lock:
                    if pod.superseded or self._stopped.is_set():
                        return
                    pod.lines += 1
                    self._deliver(pod.key, line)
            complete = True
        except ClusterError:
            pass  # the rest is read once when the pod ends
        finally:
            with self._lock:
                self._streams -= 1
            with pod.lock:
                pod.streaming = False
                pod.complete = complete and not pod.superseded
            self._wake()

    def _deliver_all(self, pod: _PodLog, lines: list[str]) -> None:
        """Deliver the rest of an ended pod's lines at once (pod lock held), unless stopped meanwhile."""
        for line in lines:
            if self._stopped.is_set():
                break
            pod.lines += 1
            self._deliver(pod.key, line)
        pod.read_done = True

    def _work(self) -> None:
        while True:
            task = self._reads.get()
            if task is None or self._stopped.is_set():
                return
            pod, tail = task
            try:
                text = self._api.read_pod_log(self._namespace, pod.name, tail_lines=tail)
                lines = text.splitlines()
            except ClusterError as exc:
                # The log is for the user and the advice; losing it must not lose the pod's outcome.
                text, lines = "", [f"(the log of pod {pod.name} could not be read: {exc})"]
            with pod.lock:
                skip = pod.lines if text else 0  # what the stream had delivered already
                self._deliver_all(pod, lines[skip:])
            self._wake()
