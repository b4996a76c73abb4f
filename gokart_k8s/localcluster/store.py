"""The object store: every API object of the local cluster, a resourceVersion counter and an event log.

Design (the shape of etcd plus the apiserver's watch cache, shrunk to one process):

* Objects are plain JSON-like dicts, keyed by resource type, namespace and name. A stored dict is
  never mutated: each write stores a fresh copy, so readers (watch streams, list responses) can
  serialise what they hold without the lock.
* One global, monotonic ``resourceVersion``; each write takes the next number and appends exactly
  one event ``(rv, type, resource, object, previous object)`` to a bounded log. Watches resume from
  any rv still in the log; older ones get ``410 Gone`` / ``Expired`` like a compacted etcd
  (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
* One ``threading.Condition``: writers ``notify_all``; watch streams wait on it.
* An index of owner references (the objects that name each owner), so a controller finds a Job's
  pods without reading every pod: the Job controller syncs a Job several times per pod, and a scan
  per sync made a rehearsal of N steps quadratic in N.
* Controllers (Job, CronJob, scheduler, kubelet) subscribe with listeners that are called under the
  lock and must only enqueue work; they write back through :meth:`Store.update`, a
  read-modify-write under the lock, so no controller ever sees a conflict.
* Deletion follows the API server: finalizers hold an object with a ``deletionTimestamp``; a bound,
  running pod is deleted *gracefully* (the kubelet finishes it); owner references drive garbage
  collection with ``propagationPolicy`` Orphan/Background/Foreground
  (https://kubernetes.io/docs/concepts/architecture/garbage-collection/).
"""

from __future__ import annotations

import builtins
import json
import random
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import resources as r
from .resources import ResourceType
from .status import ApiError, already_exists, conflict, not_found

Obj = dict[str, Any]
#: (resourceVersion, event type, resource type, object, previous object or None)
Event = tuple[int, str, ResourceType, Obj, "Obj | None"]
Listener = Callable[[str, ResourceType, Obj, "Obj | None"], None]
#: Admission: defaults and validates an object before it is stored (may raise ApiError 422).
Admission = Callable[[ResourceType, Obj, "Obj | None"], None]

_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def clone(obj: Obj) -> Obj:
    """A deep copy of a JSON-like dict (faster than ``copy.deepcopy`` for plain data)."""
    out: Obj = json.loads(json.dumps(obj))
    return out


def timestamp(at: datetime | None = None) -> str:
    """RFC 3339 in UTC with second precision, as the API server writes ``metav1.Time``."""
    return (at or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def owned_by(obj: Obj, owner_uid: str, *, controller_only: bool = False) -> bool:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("uid") == owner_uid and (ref.get("controller") or not controller_only):
            return True
    return False


class Store:
    """Objects, resourceVersions, the event log and the listeners; thread-safe."""

    def __init__(
        self,
        *,
        max_events: int = 50_000,
        admission: Admission | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.cond = threading.Condition(threading.RLock())
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {t.key: {} for t in r.ALL_TYPES}
        #: (resource key, namespace, owner kind, owner name) -> keys of the objects naming that owner.
        self._dependents: dict[tuple[str, str, str, str], set[tuple[str, str]]] = {}
        self._rv = 0
        self._events: list[Event] = []
        self._first_rv = 1
        self._max_events = max(10, max_events)
        self._listeners: list[Listener] = []
        self._admission = admission
        self._names = random.Random()
        #: Stamps creationTimestamp; a manual clock moves it so CronJobs count schedules from it.
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self.closed = False
        for ns in DEFAULT_NAMESPACES:
            self.create(r.NAMESPACE, {"metadata": {"name": ns}})

    # ---------------------------------------------------------------- reading
    @property
    def resource_version(self) -> int:
        return self._rv

    def add_listener(self, listener: Listener) -> None:
        with self.cond:
            self._listeners.append(listener)

    def try_get(self, rt: ResourceType, namespace: str | None, name: str, *, copy: bool = True) -> Obj | None:
        """The object, or None; ``copy=False`` returns the stored dict itself (callers must not mutate it)."""
        with self.cond:
            obj = self._objects[rt.key].get((namespace or "", name))
        return clone(obj) if obj is not None and copy else obj

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.try_get(rt, namespace, name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return obj

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        predicate: Callable[[Obj], bool] | None = None,
        *,
        copy: bool = True,
    ) -> tuple[list[Obj], int]:
        """Matching objects sorted by namespace and name, and the store's current rv.

        ``copy=False`` returns the stored dicts themselves: callers must not mutate them.
        """
        with self.cond:
            matches = [
                (key, obj)
                for key, obj in self._objects[rt.key].items()
                if (namespace is None or key[0] == namespace) and (predicate is None or predicate(obj))
            ]
            rv = self._rv
        items = [obj for _, obj in sorted(matches, key=lambda kv: kv[0])]
        return ([clone(o) for o in items] if copy else items), rv

    def dependents(
        self,
        rt: ResourceType,
        namespace: str,
        owner_kind: str,
        owner_name: str,
        predicate: Callable[[Obj], bool] | None = None,
        *,
        copy: bool = True,
    ) -> builtins.list[Obj]:
        """Objects of ``rt`` in ``namespace`` with an owner reference to ``owner_kind``/``owner_name``, by name.

        Found through the owner index, whatever the number of other objects; the owner's uid is the
        caller's to check (a Job deleted and created again under its name has new dependents).
        ``copy=False`` returns the stored dicts themselves: callers must not mutate them.
        """
        with self.cond:
            stored = self._objects[rt.key]
            keys = sorted(self._dependents.get((rt.key, namespace, owner_kind, owner_name), ()))
            items = [stored[k] for k in keys if predicate is None or predicate(stored[k])]
        return [clone(o) for o in items] if copy else items

    def events_since(self, cursor: int) -> builtins.list[Event] | None:
        """Events with rv > cursor, or None when some of them were dropped from the log (410)."""
        with self.cond:
            if cursor < self._first_rv - 1:
                return None
            return self._events[max(0, cursor + 1 - self._first_rv) :]

    # ---------------------------------------------------------------- writing
    def _commit(self, rt: ResourceType, kind: str, obj: Obj, old: Obj | None) -> None:
        """Store (or drop) one object under the lock: next rv, one event, listeners, wake watchers."""
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        key = (meta.get("namespace") or "", meta["name"])
        stored = self._objects[rt.key].get(key)
        if stored is not None:
            self._index_owners(rt, key, stored, add=False)
        if kind == "DELETED":
            self._objects[rt.key].pop(key, None)
        else:
            self._objects[rt.key][key] = obj
            self._index_owners(rt, key, obj, add=True)
        self._events.append((self._rv, kind, rt, obj, old))
        if len(self._events) > self._max_events + self._max_events // 4:
            drop = len(self._events) - self._max_events
            del self._events[:drop]
            self._first_rv += drop
        for listener in self._listeners:
            listener(kind, rt, obj, old)
        self.cond.notify_all()

    def _index_owners(self, rt: ResourceType, key: tuple[str, str], obj: Obj, *, add: bool) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            entry = (rt.key, key[0], str(ref.get("kind")), str(ref.get("name")))
            if add:
                self._dependents.setdefault(entry, set()).add(key)
                continue
            keys = self._dependents.get(entry)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._dependents[entry]

    def _require_namespace(self, rt: ResourceType, namespace: str | None) -> str:
        if not rt.namespaced:
            return ""
        if not namespace:
            raise ApiError(400, "the namespace of the object does not match the namespace on the request")
        if (("", namespace)) not in self._objects[r.NAMESPACE.key]:
            raise not_found("", "namespaces", namespace)
        return namespace

    def create(self, rt: ResourceType, obj: Obj, namespace: str | None = None, *, dry_run: bool = False) -> Obj:
        obj = clone(obj)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta = obj.setdefault("metadata", {})
        with self.cond:
            if rt.namespaced:
                ns = namespace or meta.get("namespace") or ""
                if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                    raise ApiError(
                        400, "the namespace of the provided object does not match the namespace sent on the request"
                    )
                meta["namespace"] = self._require_namespace(rt, ns)
            else:
                meta.pop("namespace", None)
            if not meta.get("name") and meta.get("generateName"):
                for _ in range(100):
                    suffix = "".join(self._names.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
                    candidate = f"{meta['generateName']}{suffix}"
                    if (meta.get("namespace", ""), candidate) not in self._objects[rt.key]:
                        meta["name"] = candidate
                        break
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = timestamp(self._clock())
            meta["generation"] = 1
            if self._admission:
                self._admission(rt, obj, None)
            key = (meta.get("namespace", ""), meta["name"])
            if key in self._objects[rt.key]:
                raise already_exists(rt.group, rt.plural, meta["name"])
            if rt is r.POD:
                self._admit_service_account(obj)
            for transient in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
                meta.pop(transient, None)
            if dry_run:
                return obj
            self._commit(rt, "ADDED", obj, None)
            if rt is r.NAMESPACE:
                self._create_default_service_account(meta["name"])
            if self._owners_all_gone(obj):
                # The garbage collector deletes dependents whose owners no longer exist, e.g. a pod a
                # controller created for a Job deleted meanwhile
                # (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#owners-dependents).
                self._delete_now(rt, obj, None)
            return clone(obj)

    def _admit_service_account(self, pod: Obj) -> None:
        """The ServiceAccount admission plugin: a pod runs as ``serviceAccountName`` (default ``default``),
        which must exist, or the pod is refused with 403 and its Job records ``FailedCreate``
        (https://kubernetes.io/docs/concepts/security/service-accounts/#default-service-accounts,
        https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#serviceaccount)."""
        spec = pod.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        name = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        ns = pod["metadata"].get("namespace", "")
        if (ns, name) not in self._objects[r.SERVICEACCOUNT.key]:
            raise ApiError(
                403,
                f'pods "{pod["metadata"]["name"]}" is forbidden: error looking up service account {ns}/{name}: '
                f'serviceaccount "{name}" not found',
                reason="Forbidden",
            )

    def _create_default_service_account(self, namespace: str) -> None:
        """Every namespace gets a ``default`` ServiceAccount, as the service account controller makes it."""
        if (namespace, "default") not in self._objects[r.SERVICEACCOUNT.key]:
            self.create(r.SERVICEACCOUNT, {"metadata": {"name": "default"}}, namespace)

    def _owners_all_gone(self, obj: Obj) -> bool:
        refs = obj["metadata"].get("ownerReferences") or []
        if not refs:
            return False
        for ref in refs:
            owner_rt = r.by_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
            if owner_rt is None:
                return False  # an owner of a kind this cluster does not know: leave it alone
            ns = obj["metadata"].get("namespace", "") if owner_rt.namespaced else ""
            owner = self._objects[owner_rt.key].get((ns, ref.get("name", "")))
            if owner is not None and owner["metadata"].get("uid") == ref.get("uid"):
                return False
        return True

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        new: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PUT semantics: optimistic concurrency on ``metadata.resourceVersion``, status isolation."""
        new = clone(new)
        with self.cond:
            old = self._objects[rt.key].get((namespace or "", name))
            if old is None:
                raise not_found(rt.group, rt.plural, name)
            sent_rv = (new.get("metadata") or {}).get("resourceVersion")
            if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt.group, rt.plural, name)
            if (new.get("metadata") or {}).get("name", name) != name:
                raise ApiError(
                    400, f"the name of the object ({new['metadata']['name']}) does not match the URL ({name})"
                )
            merged = self._merge_for_replace(rt, old, new, subresource)
            return clone(self._write(rt, old, merged, dry_run=dry_run))

    @staticmethod
    def _merge_for_replace(rt: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
        if subresource == "status":
            merged = clone(old)
            merged["status"] = new.get("status") or {}
            return merged
        merged = new
        merged["apiVersion"], merged["kind"] = rt.api_version, rt.kind
        meta = merged.setdefault("metadata", {})
        for keep in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp", "generation"):
            if keep in old["metadata"]:
                meta[keep] = old["metadata"][keep]
        if "deletionGracePeriodSeconds" in old["metadata"]:
            meta["deletionGracePeriodSeconds"] = old["metadata"]["deletionGracePeriodSeconds"]
        if rt.has_status:
            # The main resource never writes status: that is the status subresource's job
            # (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-uris).
            if "status" in old:
                merged["status"] = old["status"]
            else:
                merged.pop("status", None)
        return merged

    def _write(self, rt: ResourceType, old: Obj, new: Obj, *, dry_run: bool = False) -> Obj:
        """Admit and commit ``new`` as the next version of ``old`` (lock held)."""
        if self._admission:
            self._admission(rt, new, old)
        if new.get("spec") != old.get("spec"):
            new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
        if dry_run:
            return new
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not meta.get("deletionGracePeriodSeconds"):
            self._commit(rt, "DELETED", new, old)
        else:
            self._commit(rt, "MODIFIED", new, old)
        return new

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], bool | None],
        *,
        uid: str | None = None,
    ) -> Obj | None:
        """Controller read-modify-write: ``mutate`` edits a copy; returning False skips the write.

        Returns the stored result itself (read-only, as every stored dict: no copy, which the
        controllers' many writes would pay for and rarely read), or None when the object (with that
        uid) no longer exists.
        Admission still runs, so controllers cannot store what a client could not.
        """
        with self.cond:
            old = self._objects[rt.key].get((namespace or "", name))
            if old is None or (uid is not None and old["metadata"].get("uid") != uid):
                return None
            new = clone(old)
            if mutate(new) is False:
                return new
            return self._write(rt, old, new)

    # ---------------------------------------------------------------- deleting
    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        grace_seconds: int | None = None,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE semantics; returns the object as it is after the call (maybe still terminating)."""
        with self.cond:
            old = self._objects[rt.key].get((namespace or "", name))
            if old is None:
                raise not_found(rt.group, rt.plural, name)
            if uid is not None and old["metadata"].get("uid") != uid:
                raise conflict(rt.group, rt.plural, name)
            if dry_run:
                return clone(old)
            policy = propagation or self._default_propagation(rt)
            if policy == "Foreground":
                # Approximation: dependents are deleted first, then the owner, in one step
                # (a real API server keeps the owner with a foregroundDeletion finalizer meanwhile).
                self._collect_dependents(old, "Background")
            result = self._delete_now(rt, old, grace_seconds)
            if policy == "Background":
                self._collect_dependents(old, "Background")
            elif policy == "Orphan":
                self._collect_dependents(old, "Orphan")
            if rt is r.NAMESPACE:
                for t in r.ALL_TYPES:
                    if t.namespaced:
                        for ns, obj_name in list(self._objects[t.key]):
                            if ns == name and (ns, obj_name) in self._objects[t.key]:
                                self._delete_now(t, self._objects[t.key][(ns, obj_name)], None)
            return clone(result)

    @staticmethod
    def _default_propagation(rt: ResourceType) -> str:
        # batch/v1 Jobs orphan their pods by default for backward compatibility
        # (https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup).
        return "Orphan" if rt is r.JOB else "Background"

    def _delete_now(self, rt: ResourceType, old: Obj, grace_seconds: int | None) -> Obj:
        new = clone(old)
        meta = new["metadata"]
        graceful = rt is r.POD and self._pod_needs_graceful_deletion(old)
        if graceful:
            grace = grace_seconds
            if grace is None:
                grace = int(old.get("spec", {}).get("terminationGracePeriodSeconds", 30))
            if meta.get("deletionTimestamp"):
                # A second delete may only shorten the grace period
                # (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination).
                grace = min(grace, int(meta.get("deletionGracePeriodSeconds") or 0))
                if grace == meta.get("deletionGracePeriodSeconds"):
                    return old
            meta["deletionTimestamp"] = meta.get("deletionTimestamp") or timestamp()
            meta["deletionGracePeriodSeconds"] = grace
            self._commit(rt, "MODIFIED", new, old)
            return new
        if rt is r.POD and old.get("status", {}).get("phase") not in ("Succeeded", "Failed") and meta.get("finalizers"):
            # An unscheduled pod being deleted is moved to Failed (what PodGC does since 1.26),
            # so the Job controller can count it and release its finalizer.
            new.setdefault("status", {})["phase"] = "Failed"
        meta["deletionTimestamp"] = meta.get("deletionTimestamp") or timestamp()
        meta["deletionGracePeriodSeconds"] = 0
        if meta.get("finalizers"):
            if old["metadata"].get("deletionTimestamp") and old["metadata"].get("deletionGracePeriodSeconds") == 0:
                return old
            self._commit(rt, "MODIFIED", new, old)
            return new
        self._commit(rt, "DELETED", new, old)
        return new

    @staticmethod
    def _pod_needs_graceful_deletion(pod: Obj) -> bool:
        bound = bool((pod.get("spec") or {}).get("nodeName"))
        terminal = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        already_final = pod["metadata"].get("deletionGracePeriodSeconds") == 0 and pod["metadata"].get(
            "deletionTimestamp"
        )
        return bound and not terminal and not already_final

    def finish_graceful_deletion(self, rt: ResourceType, namespace: str, name: str, uid: str) -> None:
        """The kubelet's final ``DELETE`` with grace 0 once the pod's containers are gone."""
        with self.cond:
            current = self._objects[rt.key].get((namespace, name))
            if current is None or current["metadata"].get("uid") != uid:
                return
            meta = current["metadata"]
            if meta.get("finalizers") and meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == 0:
                return
            new = clone(current)
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"].setdefault("deletionTimestamp", timestamp())
            self._commit(rt, "MODIFIED" if meta.get("finalizers") else "DELETED", new, current)

    def _collect_dependents(self, owner: Obj, policy: str) -> None:
        owner_uid = owner["metadata"]["uid"]
        for t in r.ALL_TYPES:
            for obj in list(self._objects[t.key].values()):
                if not owned_by(obj, owner_uid):
                    continue
                if policy == "Orphan":
                    new = clone(obj)
                    new["metadata"]["ownerReferences"] = [
                        ref for ref in new["metadata"]["ownerReferences"] if ref.get("uid") != owner_uid
                    ]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    self._commit(t, "MODIFIED", new, obj)
                else:
                    self._delete_now(t, obj, None)
                    self._collect_dependents(obj, policy)

    # ---------------------------------------------------------------- helpers for controllers
    def record_event(
        self,
        involved: Obj,
        reason: str,
        message: str,
        *,
        type_: str = "Normal",
        component: str = "local-cluster",
    ) -> None:
        """Write a core/v1 Event about ``involved``, as controllers and the kubelet do."""
        meta = involved.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        now = timestamp()
        event = {
            "metadata": {"name": f"{meta.get('name', 'x')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "gokart-k8s-local",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.create(r.EVENT, event, namespace)
        except ApiError:  # the namespace is being deleted: the event has nowhere to go
            pass
