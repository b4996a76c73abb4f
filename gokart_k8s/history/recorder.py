"""The recorder: turns what a driver sees into run-record events and keeps them in the cache.

It is told three things, and asks one:

- step states, through the progress display every backend reports to (``step_state``);
- pods, through the driver's observer hook (``pod_seen`` for every change of a pod of the run,
  ``pod_ended`` with the driver's classification when one ends): one pod is one attempt;
- on the inline backend, where there are no pods, a step's ``running`` ... ``succeeded`` is its
  one attempt, on this machine;
- it asks the cluster for its nodes (``list_nodes``), to name each attempt's pool, machine and
  capacity type and to draw each node's life. Without permission to list nodes (a Role, not a
  ClusterRole) the record says the nodes are unknown and takes capacity and pool from the pod's
  own labels.

Events are buffered and flushed by a background thread every ``flush_seconds``; the snapshot is
rewritten every ``snapshot_seconds``. Nothing here may fail a run: a store that cannot be written
is reported once on stderr and retried at the next flush.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gokart_k8s.history.observe import attempt_facts, node_facts
from gokart_k8s.history.record import DONE_STATES, Attempt, RunRecord, fold, price
from gokart_k8s.history.store import REPORT, SNAPSHOT, RecordStore, parse_events

__all__ = ["RunRecorder", "step_facts"]

_CHECKPOINT_RE = re.compile(r"^ckpt-(\d{10})\.pkl$")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def settings_facts(settings: Any) -> dict[str, Any]:
    """The settings as JSON (resource classes and pools included)."""
    out = _jsonable(settings)
    return out if isinstance(out, dict) else {}


def _outputs(task: Any) -> list[str]:
    import luigi.task

    paths = []
    try:
        for target in luigi.task.flatten(task.output()):
            path = getattr(target, "path", None)
            path = path() if callable(path) else path
            if path:
                paths.append(str(path))
    except Exception:  # an output() that needs the cache to answer is not worth failing a run for
        return paths
    return paths


def step_facts(step: Any, *, cached: bool, placement: Any | None) -> dict[str, Any]:
    """The static facts of one plan step (``steps`` of the ``driver`` event)."""
    spec = step.spec
    rc = spec.resource_class
    return {
        "unique_id": spec.unique_id,
        "family": spec.family,
        "module": spec.module,
        "params": dict(spec.params),
        "resource_class": rc.name or None,
        "requests": {"cpu": rc.cpu, "memory": rc.memory, "gpu": rc.gpu, "accelerator": rc.accelerator},
        "eviction": spec.eviction.value,
        "placement": {}
        if placement is None
        else {"pool": placement.pool, "spot": placement.spot, "describe": placement.describe()},
        "cached": cached,
        "outputs": _outputs(step.task),
        "requires": list(spec.requires),
    }


class RunRecorder:
    """Writes one driver's events of run ``run_id`` into ``store``; see the module docstring."""

    def __init__(
        self,
        store: RecordStore,
        run_id: str,
        *,
        inline: bool = False,
        checkpoints: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        flush_seconds: float = 1.0,
        snapshot_seconds: float = 5.0,
        node_poll_seconds: float = 10.0,
        render: Callable[[RunRecord], str] | None = None,
        pricer: Callable[[Attempt], float | None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.inline = inline
        self.checkpoints = dict(checkpoints or {})
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.snapshot_seconds = snapshot_seconds
        self.node_poll_seconds = node_poll_seconds
        self.render = render
        #: Prices each attempt for the snapshot and the report (gokart_k8s.cost); None: costs stay null.
        self.pricer = pricer
        #: Set by the runner when the driver stopped on Ctrl-C (the record says "interrupted").
        self.interrupted = False
        self.driver_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._lock = threading.RLock()
        self._sequence = 0
        self._last_t = 0.0
        self._pending: list[dict[str, Any]] = []
        self._mine: list[dict[str, Any]] = []
        self._earlier: list[dict[str, Any]] = []
        self._flushes = 0
        self._dirty = False
        self._warned = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # What has been said of each attempt (by uid), so each fact is emitted once, when first known.
        self._known: dict[str, dict[str, Any]] = {}
        self._open: dict[str, set[str]] = {}  # step unique id -> uids of its attempts not yet ended
        self._inline_open: dict[str, str] = {}
        self._inline_attempts: dict[str, int] = {}
        self._list_nodes: Callable[[], list[dict[str, Any]]] | None = None
        self._nodes: dict[str, dict[str, Any]] = {}  # name -> node object (last listing)
        self._node_uids_alive: dict[str, str] = {}  # uid -> name, of recorded nodes seen alive
        self._node_names: set[str] = set()  # nodes that hosted an attempt of this run
        self._last_node_poll = 0.0
        self._nodes_wanted = False

    # --- life cycle ----------------------------------------------------------------------------

    def start(self, run: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> None:
        """Continue the run's record (events of earlier drivers) and announce this driver."""
        try:
            self._earlier = list(parse_events(self.store.read_events(self.run_id)))
        except Exception as exc:
            self._warn(exc)
        # Attempts an earlier driver left open: this driver closes them when their step ends
        # (at the latest then, if it never sees their pod again).
        for step in fold(self.run_id, self._earlier).steps:
            for a in step.attempts:
                if a.ended is None:
                    known = {k: v for k, v in dataclasses.asdict(a).items() if v is not None}
                    self._known[a.uid] = {**known, "_step": step.unique_id}
                    self._open.setdefault(step.unique_id, set()).add(a.uid)
        self._emit(
            "driver",
            driver={"id": self.driver_id, "host": socket.gethostname(), "pid": os.getpid()},
            run=dict(run),
            steps=[dict(s) for s in steps],
        )
        self._flush()
        self._thread = threading.Thread(target=self._loop, name="gokart-k8s-recorder", daemon=True)
        self._thread.start()

    def attach_nodes(self, list_nodes: Callable[[], list[dict[str, Any]]]) -> None:
        """Read node lives and labels with ``list_nodes`` (a cluster's node listing)."""
        self._list_nodes = list_nodes
        self._poll_nodes(0.0)

    def finish(self, state: str) -> str | None:
        """The driver ended: record it, write the snapshot and the report; the report's path."""
        self._poll_nodes(0.0)
        self._emit("end", state=state)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._flush()
        record = self.record()
        self._snapshot(record)
        if self.render is None:
            return None
        try:
            return self.store.write(self.run_id, REPORT, self.render(record).encode())
        except Exception as exc:
            self._warn(exc)
            return None

    def record(self) -> RunRecord:
        """The run's record as this driver knows it now (earlier drivers' events included)."""
        with self._lock:
            events = self._earlier + self._mine + self._pending
        record = fold(self.run_id, events)
        return record if self.pricer is None else price(record, self.pricer)

    # --- what the run tells ----------------------------------------------------------------------

    def code_version(self, version: str) -> None:
        """The steps run the code package ``version`` (its sha256)."""
        self._emit("code", version=version)

    def step_state(self, spec: Any, state: str, detail: str = "") -> None:
        uid = spec.unique_id
        self._emit("state", step=uid, state=state, detail=detail)
        if self.inline:
            self._inline_attempt(spec, state, detail)
        elif state in DONE_STATES:
            # Attempts the driver gave up on without a final pod state (Job deleted): close them.
            now = self.clock()
            for pod_uid in sorted(self._open.get(uid, ())):
                known = self._known[pod_uid]
                if known.get("ended") is None:
                    ran = known.get("started") is not None
                    outcome = "succeeded" if state == "succeeded" and ran else "abandoned"
                    self._attempt(uid, pod_uid, {"ended": now, "outcome": outcome, "reason": detail or state})

    def pod_seen(self, spec: Any, pod: Mapping[str, Any], *, deleted: bool = False) -> None:
        """A pod of the step changed (or was deleted)."""
        meta = pod.get("metadata") or {}
        pod_uid = str(meta.get("uid") or meta.get("name") or "")
        if not pod_uid:
            return
        now = self.clock()
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = None
        if node_name:
            name = str(node_name)
            if name not in self._nodes:
                # A node never seen before is listed at once: a pod that starts and ends within the
                # rate limit (a warm-started step takes a fraction of a second) still gets its facts.
                self._poll_nodes(0.0 if name not in self._node_names else 1.0)
            with self._lock:
                self._node_names.add(name)
                self._track_node(name)
                node = self._nodes.get(name)
        facts = attempt_facts(pod, node, now, deleted=deleted)
        if facts.get("job"):
            self._abandon_other_jobs(spec.unique_id, str(facts["job"]), now)
        known = self._known.get(pod_uid, {})
        if known.get("started") is None and facts.get("started") == now and spec.unique_id in self.checkpoints:
            # Seen starting live: the newest checkpoint now is the one its restore() will load.
            facts["checkpoint"] = self._latest_checkpoint(self.checkpoints[spec.unique_id])
        self._attempt(spec.unique_id, pod_uid, facts)

    def detach_nodes(self) -> None:
        """Take a last look at the nodes, then stop (the cluster is about to go away)."""
        self._poll_nodes(0.0)
        self._list_nodes = None

    def pod_ended(self, spec: Any, pod: Mapping[str, Any], outcome: Any) -> None:
        """The driver classified a pod's end (``outcome``: a :class:`~gokart_k8s.cluster.outcomes.Outcome`)."""
        meta = pod.get("metadata") or {}
        pod_uid = str(meta.get("uid") or meta.get("name") or "")
        kind = getattr(outcome, "kind", None)
        facts = {
            "outcome": str(getattr(kind, "value", kind) or ""),
            "reason": getattr(outcome, "reason", None) or None,
        }
        self.pod_seen(spec, pod, deleted=True)  # an ended pod: ended is now at the latest
        self._attempt(spec.unique_id, pod_uid, facts)
        self._nodes_wanted = True  # a node may be going away with it: look soon (at most every 2 s)

    # --- internals -------------------------------------------------------------------------------

    def _attempt(self, step: str, uid: str, facts: Mapping[str, Any]) -> None:
        with self._lock:
            known = self._known.setdefault(uid, {"_step": step})
            new = {k: v for k, v in facts.items() if v is not None and known.get(k) is None}
            if not new:
                return
            known.update(new)
            still_open = self._open.setdefault(step, set())
            if known.get("ended") is None:
                still_open.add(uid)
            else:
                still_open.discard(uid)
        self._emit("attempt", step=step, uid=uid, **new)

    def _abandon_other_jobs(self, step: str, job: str, now: float) -> None:
        """A pod of a new Job of the step: attempts of its earlier Jobs that never ended were
        deleted with their Job (the driver moved the step to on-demand capacity, or resubmitted it)."""
        with self._lock:
            stale = [uid for uid in sorted(self._open.get(step, ())) if self._known[uid].get("job") not in (None, job)]
        for uid in stale:
            self._attempt(step, uid, {"ended": now, "outcome": "abandoned", "reason": "its Job was replaced"})

    def _inline_attempt(self, spec: Any, state: str, detail: str) -> None:
        uid = spec.unique_id
        now = self.clock()
        if state == "running" and uid not in self._inline_open:
            n = self._inline_attempts[uid] = self._inline_attempts.get(uid, 0) + 1
            attempt_uid = f"inline-{uid[:12]}-{n}"
            self._inline_open[uid] = attempt_uid
            facts: dict[str, Any] = {"node": socket.gethostname(), "submitted": now, "started": now}
            if uid in self.checkpoints:
                facts["checkpoint"] = self._latest_checkpoint(self.checkpoints[uid])
            self._attempt(uid, attempt_uid, facts)
        elif state in ("succeeded", "failed") and uid in self._inline_open:
            attempt_uid = self._inline_open.pop(uid)
            self._attempt(uid, attempt_uid, {"ended": now, "outcome": state, "reason": detail or None})

    def _emit(self, kind: str, **fields: Any) -> None:
        with self._lock:
            t = max(self.clock(), self._last_t)
            self._last_t = t
            self._sequence += 1
            self._pending.append({"t": t, "d": self.driver_id, "n": self._sequence, "type": kind, **fields})
            self._dirty = True

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        if not batch:
            return
        data = "".join(json.dumps(_jsonable(e), separators=(",", ":")) + "\n" for e in batch).encode()
        try:
            self._flushes += 1
            self.store.append_events(self.run_id, self.driver_id, self._flushes, data)
        except Exception as exc:
            with self._lock:
                self._pending = batch + self._pending
            self._warn(exc)
            return
        with self._lock:
            self._mine.extend(batch)

    def _snapshot(self, record: RunRecord | None = None) -> None:
        with self._lock:
            self._dirty = False
        record = record or self.record()
        try:
            self.store.write(self.run_id, SNAPSHOT, record.to_json().encode())
        except Exception as exc:
            self._warn(exc)

    def _loop(self) -> None:
        last_snapshot = self.clock()
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._poll_nodes(2.0 if self._nodes_wanted else None)
                self._flush()
                if self._dirty and self.clock() - last_snapshot >= self.snapshot_seconds:
                    last_snapshot = self.clock()
                    self._snapshot()
            except Exception as exc:  # the record must never stop a run
                self._warn(exc)

    def _poll_nodes(self, min_interval: float | None = None) -> None:
        """List the nodes if the last listing is older than ``min_interval`` (default: the poll period)."""
        list_nodes = self._list_nodes
        if list_nodes is None:
            return
        with self._lock:
            now = self.clock()
            interval = self.node_poll_seconds if min_interval is None else min_interval
            if self._last_node_poll and now - self._last_node_poll < interval:
                return
            self._last_node_poll = now
            self._nodes_wanted = False
        try:
            nodes = list_nodes()
        except Exception as exc:
            # No permission to list nodes (a namespaced Role) or the cluster is gone: carry on
            # with what the pods' own labels say.
            print(f"gokart-k8s: run record: cannot list nodes ({exc}); node lives not recorded", file=sys.stderr)
            self._list_nodes = None
            self._emit("nodes", known=False, reason=str(exc))
            return
        with self._lock:
            self._nodes = {str((n.get("metadata") or {}).get("name")): n for n in nodes}
            alive = {node_facts(n)["uid"] for n in nodes}
            for name in self._node_names:
                self._track_node(name)
            for uid in [u for u in self._node_uids_alive if u not in alive]:
                # Gone since the last listing: it ended at the latest now.
                self._emit("node", uid=uid, name=self._node_uids_alive.pop(uid), end=now)

    def _track_node(self, name: str) -> None:
        """Record the life of the node ``name`` now has, once per node uid."""
        node = self._nodes.get(name)
        if node is None:
            return
        facts = node_facts(node)
        if facts["uid"] not in self._node_uids_alive:
            self._node_uids_alive[facts["uid"]] = name
            self._emit("node", **facts)

    def _latest_checkpoint(self, location: str) -> dict[str, Any] | None:
        """The newest complete checkpoint at ``location`` and when it was saved, or None."""
        try:
            if location.startswith("gs://"):
                from gokart_k8s.cache.gcs import gcs_filesystem

                fs = gcs_filesystem()
                names = fs.list_children(location)
                newest = max((n for n in names if _CHECKPOINT_RE.match(n)), default=None)
                if newest is None:
                    return None
                saved = fs.modification_time(f"{location.rstrip('/')}/{newest}").timestamp()
            else:
                names = set(os.listdir(location)) if os.path.isdir(location) else set()
                newest = max((n for n in names if _CHECKPOINT_RE.match(n)), default=None)
                if newest is None:
                    return None
                saved = os.path.getmtime(os.path.join(location, newest))
        except (OSError, Exception):
            return None
        return {"name": newest, "saved": saved}

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            print(f"gokart-k8s: run record {self.run_id}: could not write ({exc}); retrying", file=sys.stderr)
