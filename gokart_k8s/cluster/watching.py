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
  connection cannot hang the driver.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from gokart_k8s.cluster import ClusterAPI, ObjectList, Resource, WatchStream
from gokart_k8s.errors import ClusterError

__all__ = ["Change", "Watcher"]

_RESOURCES: tuple[Resource, ...] = ("jobs", "pods")


@dataclass(frozen=True)
class Change:
    """One change the driver should apply: ``ADDED``/``MODIFIED``/``DELETED`` of a Job or pod.

    ``ERROR`` changes carry a message in ``object["message"]``: the watch could not be resumed for
    now (it keeps trying); the driver may show it.
    """

    resource: Resource
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
        self.relists = 0
        self.resumes = 0

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
        return snapshot

    def get(self, timeout: float) -> Change | None:
        """The next change, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

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
        for thread in self._threads:
            thread.join(timeout=5)

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
        self.relists += 1
        for change in self._remember(resource, listed):
            self._queue.put(change)
        return listed.resource_version

    def _follow(self, resource: Resource, resource_version: str) -> None:
        rv = resource_version
        failures = 0
        while not self._stopped.is_set():
            try:
                if not rv:
                    rv = self._relist(resource)
                stream = self._api.watch(
                    resource, self._namespace, self.selector, resource_version=rv, timeout_seconds=self._timeout
                )
                self._streams[resource] = stream
                for event in stream:
                    if self._stopped.is_set():
                        return
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
