"""One multiplexed watcher: every Job and pod of a run, followed through two watch streams.

The driver never polls and never opens a stream per step. A :class:`Watcher` lists the run's Jobs
and pods once (by label selector), then keeps exactly one WATCH open on Jobs and one on pods, each
in its own thread, and feeds every change into one queue the driver reads. 500 steps in flight
cost two open requests, not 500.

The list-then-watch protocol (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes):

- watch from the LIST's resourceVersion, so nothing that happens between the list and the watch
  is lost (a fast pod can start and end in that gap);
- remember the resourceVersion of every event, BOOKMARKs included, and resume from it when the
  server ends the stream (``timeoutSeconds``) or the connection drops;
- on ``410 Gone`` (the resourceVersion fell out of the server's history) re-list, and report the
  difference as changes: every listed object as ``MODIFIED``, every object seen before but missing
  from the new list as ``DELETED``;
- bound every wait: the server ends each watch after ``timeout_seconds`` and the client gives up on
  a connection silent for longer than that (see :mod:`gokart_k8s.cluster.kubernetes`), so a dead
  connection cannot hang the driver;
- say when the API is lost and when it is back: a failed watch or list is an ``ERROR`` change at
  once (then retried with capped exponential backoff), and the first LIST that succeeds after
  failures is a ``RECONNECTED`` change. The re-list (rather than a re-watch) after a failure also
  reports what was deleted meanwhile. The driver decides how long it keeps trying;
- notice a server that went silent: a dead peer does not always close the connection (a network
  partition, a frozen control plane), and a watch then waits for its read timeout (minutes). After
  ``probe_seconds`` without any event, a cheap request (GET of a Job that does not exist) asks
  whether the server still answers; no answer within ``probe_timeout_seconds`` is an ``ERROR``
  change of source ``api`` (and the streams are broken, so they reconnect), the next answer a
  ``RECONNECTED`` one.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from gokart_k8s.cluster import ClusterAPI, ObjectList, Resource, WatchStream
from gokart_k8s.errors import ClusterError

__all__ = ["Change", "Source", "Watcher"]

_RESOURCES: tuple[Resource, ...] = ("jobs", "pods")
#: Where a change comes from: one of the two watches, or the liveness probe (``api``).
Source = Literal["jobs", "pods", "api"]
#: The Job the liveness probe reads: it never exists, so the answer is a cheap 404.
_PROBE_JOB = "gokart-k8s-liveness-probe"


@dataclass(frozen=True)
class Change:
    """One change the driver should apply: ``ADDED``/``MODIFIED``/``DELETED`` of a Job or pod.

    ``ERROR`` changes carry a message in ``object["message"]``: the watch could not be resumed for
    now (it keeps trying); the driver may show it. ``RECONNECTED`` (empty object) follows the first
    successful LIST after ``ERROR`` changes of the same resource. Source ``api`` is the liveness
    probe (``ERROR`` and ``RECONNECTED``), or :meth:`Watcher.wake` (``WAKE``: nothing to apply).
    """

    resource: Source
    type: str
    object: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str((self.object.get("metadata") or {}).get("name") or "")


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Watcher:
    """Lists, then follows, the Jobs and pods matching ``selector`` in ``namespace``.

    Use::

        watcher = Watcher(api, namespace, selector, timeout_seconds=300)
        snapshot = watcher.start()            # {"jobs": [...], "pods": [...]} as listed
        while ...:
            change = watcher.get(timeout=1.0)  # None if nothing happened meanwhile
        watcher.stop()

    ``relists`` and ``resumes`` count re-lists after 410 and re-watches after a stream ended, so
    tests and benchmarks can see the protocol at work.
    """

    def __init__(
        self,
        api: ClusterAPI,
        namespace: str,
        selector: str,
        *,
        timeout_seconds: int = 300,
        retry_seconds: float = 1.0,
        max_retry_seconds: float = 30.0,
        probe_seconds: float = 15.0,
        probe_timeout_seconds: float = 10.0,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self.selector = selector
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._max_retry = max_retry_seconds
        self._queue: queue.Queue[Change] = queue.Queue()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: dict[Resource, WatchStream | None] = {r: None for r in _RESOURCES}
        # name -> uid of every object currently known, to report deletions missed during a 410.
        self._known: dict[Resource, dict[str, str]] = {r: {} for r in _RESOURCES}
        self._lock = threading.Lock()
        self._probe_every = probe_seconds
        self._probe_timeout = probe_timeout_seconds
        self._last_seen = time.monotonic()
        self.relists = 0
        self.resumes = 0
        self.probes = 0

    def start(self) -> dict[Resource, list[dict[str, Any]]]:
        """List both resources, start following them, and return what was listed."""
        snapshot: dict[Resource, list[dict[str, Any]]] = {}
        versions: dict[Resource, str] = {}
        for resource in _RESOURCES:
            listed = self._api.list(resource, self._namespace, self.selector)
            self._remember(resource, listed)
            snapshot[resource] = listed.items
            versions[resource] = listed.resource_version
        for resource in _RESOURCES:
            thread = threading.Thread(
                target=self._follow,
                args=(resource, versions[resource]),
                name=f"gokart-k8s-watch-{resource}",
                daemon=True,  # bounded by the watch timeouts; daemon so a crash cannot hang exit
            )
            thread.start()
            self._threads.append(thread)
        if self._probe_every > 0:
            probe = threading.Thread(target=self._probe, name="gokart-k8s-watch-probe", daemon=True)
            probe.start()
            self._threads.append(probe)
        self._last_seen = time.monotonic()
        return snapshot

    def get(self, timeout: float) -> Change | None:
        """The next change, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def wake(self) -> None:
        """Make a waiting :meth:`get` return now, with a ``WAKE`` change of source ``api``.

        For news that does not come from the watches (a submission answered, a log read): the
        driver's loop waits on this one queue and should not sleep through it.
        """
        self._queue.put(Change("api", "WAKE"))

    def drain(self) -> list[Change]:
        """Every change already queued, without waiting."""
        out: list[Change] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def stop(self) -> None:
        """Close both streams and wait (briefly) for their threads."""
        self._stopped.set()
        for stream in list(self._streams.values()):
            if stream is not None:
                try:
                    stream.close()
                except Exception:
                    pass
        # At most 5 s in all: a thread blocked on a silent server only ends with its request's timeout
        # (the threads are daemons, so they cannot keep the process alive).
        deadline = time.monotonic() + 5
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    # --- inside the threads -------------------------------------------------------------------

    def _remember(self, resource: Resource, listed: ObjectList) -> list[Change]:
        """Replace the known set by a fresh list; return the changes it implies."""
        fresh = {str(o["metadata"]["name"]): str(o["metadata"].get("uid") or "") for o in listed.items}
        with self._lock:
            old = self._known[resource]
            self._known[resource] = fresh
        changes = [Change(resource, "MODIFIED", o) for o in listed.items]
        for name, uid in old.items():
            if fresh.get(name) != uid:
                changes.append(Change(resource, "DELETED", {"metadata": {"name": name, "uid": uid}}))
        return changes

    def _relist(self, resource: Resource) -> str:
        listed = self._api.list(resource, self._namespace, self.selector)
        self._last_seen = time.monotonic()
        self.relists += 1
        for change in self._remember(resource, listed):
            self._queue.put(change)
        return listed.resource_version

    def _follow(self, resource: Resource, resource_version: str) -> None:
        rv = resource_version
        failures = 0
        while not self._stopped.is_set():
            try:
                if not rv or failures:
                    rv = self._relist(resource)
                    if failures:
                        failures = 0
                        self._queue.put(Change(resource, "RECONNECTED"))
                stream = self._api.watch(
                    resource, self._namespace, self.selector, resource_version=rv, timeout_seconds=self._timeout
                )
                self._streams[resource] = stream
                for event in stream:
                    if self._stopped.is_set():
                        return
                    self._last_seen = time.monotonic()
                    if event.expired:
                        rv = ""  # re-list at the top of the loop
                        break
                    if event.type == "ERROR":
                        raise ClusterError(f"the watch on {resource} reported {event.object.get('message')!r}")
                    if _rv(event.object):
                        rv = _rv(event.object)
                    if event.type == "BOOKMARK":
                        continue
                    self._track(resource, event.type, event.object)
                    self._queue.put(Change(resource, event.type, event.object))
                failures = 0
                self.resumes += 1
            except ClusterError as exc:
                if self._stopped.is_set():
                    return
                failures += 1
                self._queue.put(Change(resource, "ERROR", {"message": str(exc)}))
                # Back off, but wake at once on stop().
                self._stopped.wait(min(self._max_retry, self._retry * 2 ** min(failures - 1, 5)))
            finally:
                self._streams[resource] = None

    def _track(self, resource: Resource, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        with self._lock:
            if kind == "DELETED":
                self._known[resource].pop(name, None)
            else:
                self._known[resource][name] = str(meta.get("uid") or "")

    def _probe(self) -> None:
        """Ask the server whether it still answers once the streams have been silent for a while."""
        down = False
        while not self._stopped.wait(min(1.0, self._probe_every)):
            if time.monotonic() - self._last_seen < self._probe_every:
                continue
            answered = threading.Event()
            failure: list[ClusterError] = []
            self.probes += 1
            started = time.monotonic()
            # In a thread of its own: a request to a silent server blocks for its whole timeout.
            call = threading.Thread(
                target=self._probe_call, args=(answered, failure), name="gokart-k8s-probe-call", daemon=True
            )
            call.start()
            while not answered.wait(min(1.0, self._probe_timeout)):
                if self._stopped.is_set():
                    return
                if not down and time.monotonic() - started >= self._probe_timeout:
                    down = True
                    message = f"the Kubernetes API has not answered for {self._probe_timeout:g} s"
                    self._queue.put(Change("api", "ERROR", {"message": message}))
                    self._break_streams()  # they hang on a dead connection: make them reconnect
            if failure:
                if not down:
                    down = True
                    self._queue.put(Change("api", "ERROR", {"message": str(failure[0])}))
                self._stopped.wait(min(self._max_retry, self._retry))
                continue
            self._last_seen = time.monotonic()
            if down:
                down = False
                self._queue.put(Change("api", "RECONNECTED"))

    def _probe_call(self, answered: threading.Event, failure: list[ClusterError]) -> None:
        try:
            self._api.read_job(self._namespace, _PROBE_JOB)
        except ClusterError as exc:
            failure.append(exc)
        finally:
            answered.set()

    def _break_streams(self) -> None:
        for stream in list(self._streams.values()):
            if stream is not None:
                try:
                    stream.close()
                except Exception:
                    pass
