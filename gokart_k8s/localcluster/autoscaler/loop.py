"""The autoscaler's control loop: snapshot the cluster, ask :mod:`.core`, carry out the answer.

One daemon thread (:class:`~gokart_k8s.localcluster.loops.ControlLoop`) runs a pass every
``scan_interval_seconds`` of cluster time, and at once when a pod turns ``Unschedulable``. A pass:

1. creates the nodes whose provisioning delay has passed (Ready at once, so the scheduler binds
   the pods waiting for them);
2. scales up for the pending pods -- cluster autoscaler, Karpenter or Autopilot, per
   ``Autoscaling.mode`` -- and records ``TriggeredScaleUp`` / ``NotTriggerScaleUp`` (Karpenter:
   ``Nominated``) events on the pods;
3. picks nodes to remove and drains each in a thread: cordon and taint
   (``ToBeDeletedByClusterAutoscaler``, ``karpenter.sh/disrupted``), evict every pod through the
   Eviction API, wait for them to end (at most ``max_graceful_termination_seconds``), delete the
   Node. A refused eviction aborts the drain and uncordons the node (``ScaleDownFailed``).

A scale-up into a pool that is *stocked out* (:meth:`Autoscaler.stockout`, or chaos after a Spot
preemption) fails: the pool backs off for ``backoff_seconds``, as the cluster autoscaler backs off a
node group whose instances could not be created, and its pods stay pending with ``in backoff
after failed scale-up``. In Karpenter mode a Spot preemption is an *interruption*: the node is
cordoned and drained at once, and reclaimed when the 2-minute notice ends.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gokart_k8s.pools import NodePool

from .. import resources as r
from ..chaos import Disruptor
from ..loops import ControlLoop
from ..status import ApiError
from ..store import Obj, Store, timestamp
from .config import Autoscaling
from .core import (
    POOL_ANNOTATION,
    Blocked,
    NodeState,
    NoScaleUp,
    PoolView,
    ScaleDown,
    ScaleUp,
    instance_types,
    nominated,
    plan_autopilot,
    plan_consolidation,
    plan_provisioning,
    plan_scale_down,
    plan_scale_up,
    pod_key,
    unneeded_nodes,
    with_capacity,
)
from .ledger import BILLING_ANNOTATION, REQUESTED_AT_ANNOTATION, SPOT_ANNOTATION

#: Taint the cluster autoscaler puts on a node it is removing
#: (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md#how-does-scale-down-work).
CA_TAINT = "ToBeDeletedByClusterAutoscaler"
#: Taint Karpenter puts on a node it disrupts (https://karpenter.sh/docs/concepts/disruption/).
KARPENTER_TAINT = "karpenter.sh/disrupted"
KARPENTER_NODEPOOL_LABEL = "karpenter.sh/nodepool"
#: Taint that keeps other pods off an Autopilot-mode per-pod node.
AUTOPILOT_TAINT = "gokart-k8s.io/autopilot-pod-node"

NodeFactory = Callable[[NodePool, str], Obj]
_MIN_PASS_SECONDS = 0.1


@dataclass
class _Provision:
    pool: NodePool
    name: str
    ready_at: float
    node: Obj
    pods: tuple[str, ...]


class Autoscaler(ControlLoop):
    """Grows and shrinks the local cluster's pools (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        disruptor: Disruptor,
        pools: Sequence[NodePool],
        make_node: NodeFactory,
        config: Autoscaling,
        *,
        stockout_after_preemption: float = 0.0,
    ) -> None:
        super().__init__("autoscaler")
        self.store = store
        self.disruptor = disruptor
        self.pools = {p.name: p for p in pools}
        self.config = config
        self.stockout_after_preemption = stockout_after_preemption
        self._make_node = make_node
        self._t0 = time.monotonic()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._provisions: list[_Provision] = []
        self._backoff_until: dict[str, float] = {}
        self._stockout_until: dict[str, float] = {}
        self._unneeded_since: dict[str, float] = {}
        self._settled: dict[str, tuple[frozenset[str], float]] = {}
        self._draining: set[str] = set()
        self._reported: dict[str, str] = {}
        self._blocked_reported: set[tuple[str, str]] = set()
        self._last_scale_up: float | None = None
        self._last_failure: float | None = None
        self._threads: list[threading.Thread] = []
        self._templates = {p.name: make_node(p, f"{p.name}-template") for p in pools}
        self._types = {p.name: instance_types(p, self._templates[p.name], config.prices) for p in pools}
        store.add_listener(self._on_event)

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """Cluster seconds since the autoscaler was made (wall seconds times ``time_scale``)."""
        return (time.monotonic() - self._t0) * self.config.time_scale

    def _wall(self, cluster_seconds: float) -> float:
        return cluster_seconds / self.config.time_scale

    # ------------------------------------------------------------------ lifecycle
    def initial_nodes(self) -> list[Obj]:
        """The nodes every pool starts with: ``min_nodes`` each."""
        out = []
        for pool in self.pools.values():
            for _ in range(pool.min_nodes):
                out.append(self._new_node(pool, time.time()))
        return out

    def stop(self) -> None:
        super().stop()
        for t in list(self._threads):
            t.join(timeout=2)

    def _wake_up(self) -> None:
        self._wake.set()

    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is r.POD:
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable":
                    self._wake.set()
                    return
            if kind == "DELETED" or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            # At most ten passes a second however fast the clock runs (a pass lists every pod),
            # except to finish a provisioning on time.
            timeout = max(_MIN_PASS_SECONDS, self._wall(self.config.scan_interval_seconds))
            with self._lock:
                if self._provisions:
                    soonest = min(p.ready_at for p in self._provisions)
                    timeout = min(timeout, max(0.01, self._wall(soonest - self.now())))
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.run_once()
            except Exception:  # pragma: no cover - one bad object must not stop the loop
                traceback.print_exc()

    # ------------------------------------------------------------------ one pass
    def run_once(self) -> None:
        now = self.now()
        self._finish_provisions(now)
        nodes, _ = self.store.list(r.NODE, copy=False)
        pods, _ = self.store.list(r.POD, copy=False)
        states = {n["metadata"]["name"]: NodeState(n) for n in nodes}
        pending = []
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                continue
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                if node in states:
                    states[node].pods.append(pod)
            elif not pod["metadata"].get("deletionTimestamp") and _unschedulable(pod):
                pending.append(pod)
        with self._lock:
            draining = set(self._draining)
        existing = [s for s in states.values() if s.name not in draining]
        awaited = nominated(pending, existing)
        managed = [s for s in existing if s.pool in self.pools and s.name not in awaited]
        self._scale_up(pending, states, existing, now)
        self._scale_down(managed, now)

    def _views(self, states: dict[str, NodeState], now: float) -> list[PoolView]:
        sizes: dict[str, int] = {}
        for s in states.values():
            sizes[s.pool] = sizes.get(s.pool, 0) + 1
        with self._lock:
            for p in self._provisions:
                sizes[p.pool.name] = sizes.get(p.pool.name, 0) + 1
            backoff = dict(self._backoff_until)
        return [
            PoolView(pool, self._templates[name], sizes.get(name, 0), backoff.get(name, -1.0) > now)
            for name, pool in self.pools.items()
        ]

    # ------------------------------------------------------------------ scale-up
    def _scale_up(
        self, pending: list[Obj], states: dict[str, NodeState], existing: list[NodeState], now: float
    ) -> None:
        if not pending:
            return
        views = self._views(states, now)
        with self._lock:
            upcoming = [p.node for p in self._provisions]
            nominated = {key for p in self._provisions for key in p.pods}
        mode = self.config.mode
        if mode == "karpenter":
            ups, refused = plan_provisioning(pending, views, self._types, upcoming, existing)
        elif mode == "autopilot":
            ups, refused = plan_autopilot(pending, views, nominated, existing)
        else:
            ups, refused = plan_scale_up(pending, views, upcoming, self.config, existing)
        by_key = {pod_key(p): p for p in pending}
        sizes = {v.pool.name: v.size for v in views}
        for up in ups:
            self._launch(up, by_key, sizes, now)
        for no in refused:
            self._refuse(no, by_key)

    def _launch(self, up: ScaleUp, by_key: dict[str, Obj], sizes: dict[str, int], now: float) -> None:
        pool = self.pools[up.pool]
        component = {"karpenter": "karpenter"}.get(self.config.mode, "cluster-autoscaler")
        with self._lock:
            stocked_out = self._stockout_until.get(pool.name, -1.0) > now
            if stocked_out:
                self._backoff_until[pool.name] = now + self.config.backoff_seconds
        if stocked_out:
            self.store.record_event(
                _status_object(),
                "FailedToScaleUpGroup",
                f"Scale-up of node group {pool.name} failed: the zone does not have enough resources available "
                f"(ZONE_RESOURCE_POOL_EXHAUSTED, a Spot stockout); backing off for "
                f"{self.config.backoff_seconds:.0f} s",
                type_="Warning",
                component=component,
            )
            for key in up.pods:
                if key in by_key:
                    self.store.record_event(
                        by_key[key],
                        "FailedScaleUp",
                        f"Node scale up in node group {pool.name} associated with this pod failed: out of resources",
                        type_="Warning",
                        component=component,
                    )
            return
        before = sizes.get(pool.name, 0)
        names = []
        for _ in range(up.count):
            node = self._new_node(pool, time.time())
            if up.capacity is not None:
                node = with_capacity(node, up.capacity, up.machine_type)
            if self.config.mode == "autopilot":
                # Autopilot bills the pod's requests while it runs, not the node's boot.
                node["metadata"]["annotations"][BILLING_ANNOTATION] = "pod"
                node["metadata"]["annotations"].pop(REQUESTED_AT_ANNOTATION, None)
                # The node is the pod's alone: a taint keeps the scheduler's other pods off it,
                # and the pod is bound to it directly when it is Ready (see _finish_provisions).
                node["spec"] = {**(node.get("spec") or {})}
                node["spec"]["taints"] = [
                    *(node["spec"].get("taints") or []),
                    {"key": AUTOPILOT_TAINT, "effect": "NoSchedule"},
                ]
            name = node["metadata"]["name"]
            names.append(name)
            with self._lock:
                self._provisions.append(_Provision(pool, name, now + self.config.provision_seconds, node, up.pods))
        sizes[pool.name] = before + up.count
        with self._lock:
            self._last_scale_up = now
        for key in up.pods:
            pod = by_key.get(key)
            if pod is None:
                continue
            self._reported.pop(key, None)
            if self.config.mode == "karpenter":
                self.store.record_event(
                    pod, "Nominated", f"Pod should schedule on: nodeclaim/{names[0]}", component="karpenter"
                )
            else:
                self.store.record_event(
                    pod,
                    "TriggeredScaleUp",
                    f"pod triggered scale-up: [{{{pool.name} {before}->{before + up.count} (max: {pool.max_nodes})}}]",
                    component="cluster-autoscaler",
                )

    def _refuse(self, no: NoScaleUp, by_key: dict[str, Obj]) -> None:
        pod = by_key.get(no.pod)
        if pod is None or self._reported.get(no.pod) == no.message:
            return
        self._reported[no.pod] = no.message
        if self.config.mode == "karpenter":
            self.store.record_event(pod, "FailedScheduling", no.message, type_="Warning", component="karpenter")
        else:
            self.store.record_event(pod, "NotTriggerScaleUp", no.message, component="cluster-autoscaler")

    def _new_node(self, pool: NodePool, requested_at: float) -> Obj:
        with self._lock:
            index = self._counters.get(pool.name, 0)
            self._counters[pool.name] = index + 1
        node = self._make_node(pool, f"{pool.name}-{index}")
        meta = node["metadata"]
        annotations = meta.setdefault("annotations", {})
        annotations[POOL_ANNOTATION] = pool.name
        annotations[SPOT_ANNOTATION] = "true" if pool.spot else "false"
        annotations[REQUESTED_AT_ANNOTATION] = f"{requested_at:.3f}"
        if self.config.mode == "karpenter":
            meta["labels"] = {**(meta.get("labels") or {}), KARPENTER_NODEPOOL_LABEL: pool.name}
        return node

    def _finish_provisions(self, now: float) -> None:
        with self._lock:
            ready = [p for p in self._provisions if p.ready_at <= now]
        for p in ready:
            try:
                self.store.create(r.NODE, p.node)
                if self.config.mode == "autopilot":
                    self._bind(p.pods[0], p.name)
            except ApiError:  # pragma: no cover - e.g. a name taken by hand: give up this node, say why
                traceback.print_exc()
            with self._lock:
                self._provisions.remove(p)

    def _bind(self, key: str, node_name: str) -> None:
        """Bind a still-pending pod to the node made for it (the Binding subresource's write)."""
        namespace, _, name = key.partition("/")

        def mutate(pod: Obj) -> bool | None:
            if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                return False
            pod["spec"]["nodeName"] = node_name
            status = pod.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append(
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()}
            )
            status["conditions"] = conditions
            return None

        bound = self.store.update(r.POD, namespace, name, mutate)
        if bound is not None and bound["spec"].get("nodeName") == node_name:
            self.store.record_event(
                bound, "Scheduled", f"Successfully assigned {key} to {node_name}", component="default-scheduler"
            )

    # ------------------------------------------------------------------ scale-down
    def _scale_down(self, managed: list[NodeState], now: float) -> None:
        mode = self.config.mode
        downs: list[ScaleDown]
        blocked: list[Blocked] = []
        if mode == "karpenter":
            for s in managed:
                uids = frozenset(str(p["metadata"].get("uid")) for p in s.pods)
                previous = self._settled.get(s.name)
                if previous is None or previous[0] != uids:
                    self._settled[s.name] = (uids, now)
            for name in set(self._settled) - {s.name for s in managed}:
                del self._settled[name]
            spot = {s.name: self.pools[s.pool].spot for s in managed}
            downs, blocked = plan_consolidation(
                managed, {k: v[1] for k, v in self._settled.items()}, now, self._types, spot, self.config
            )
        elif mode == "autopilot":
            for s in managed:
                if s.pods:
                    self._unneeded_since.pop(s.name, None)
                else:
                    self._unneeded_since.setdefault(s.name, now)
            downs = [
                ScaleDown(s.name, "empty")
                for s in managed
                if not s.pods and now - self._unneeded_since[s.name] >= self.config.autopilot_empty_seconds
            ]
        else:
            sizes: dict[str, int] = {}
            for s in managed:
                sizes[s.pool] = sizes.get(s.pool, 0) + 1
            minimums = {name: p.min_nodes for name, p in self.pools.items()}
            unneeded, blocked = unneeded_nodes(managed, sizes, minimums, self.config.utilization_threshold)
            for name in unneeded:
                self._unneeded_since.setdefault(name, now)
            for name in set(self._unneeded_since) - unneeded:
                del self._unneeded_since[name]
            with self._lock:
                last_up, last_failure = self._last_scale_up, self._last_failure
            downs = plan_scale_down(managed, self._unneeded_since, now, last_up, last_failure, self.config)
        for b in blocked:
            self._report_blocked(b)
        for down in downs:
            self._unneeded_since.pop(down.node, None)
            self._settled.pop(down.node, None)
            with self._lock:
                self._draining.add(down.node)
            t = threading.Thread(target=self._drain, args=(down,), name=f"drain-{down.node}", daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _report_blocked(self, b: Blocked) -> None:
        if (b.node, b.pod) in self._blocked_reported:
            return
        self._blocked_reported.add((b.node, b.pod))
        node = self.store.try_get(r.NODE, None, b.node)
        if node is None:
            return
        if self.config.mode == "karpenter":
            self.store.record_event(
                node,
                "DisruptionBlocked",
                f"Pod {b.pod} is {b.why}, so the node cannot be disrupted",
                component="karpenter",
            )
        else:
            self.store.record_event(
                node,
                "ScaleDownBlocked",
                f"node {b.node} cannot be removed: pod {b.pod} is {b.why}",
                component="cluster-autoscaler",
            )

    def _drain(self, down: ScaleDown) -> None:
        try:
            self._drain_node(down)
        except Exception:  # pragma: no cover - a drain must not kill the thread silently
            traceback.print_exc()
        finally:
            with self._lock:
                self._draining.discard(down.node)
            self._wake.set()

    def _drain_node(self, down: ScaleDown) -> None:
        karpenter = self.config.mode == "karpenter"
        component = "karpenter" if karpenter else "cluster-autoscaler"
        taint_key = KARPENTER_TAINT if karpenter else CA_TAINT
        node = self._taint(down.node, taint_key)
        if node is None:
            return
        if karpenter:
            kind = {
                "empty": "Empty/Delete",
                "underutilized": "Underutilized/Delete",
                "replace": "Underutilized/Replace",
            }
            self.store.record_event(
                node, "DisruptionTerminating", f"Disrupting Node: {kind[down.reason]}", component=component
            )
        elif down.reason == "empty":
            self.store.record_event(
                node, "ScaleDownEmpty", f"Scale-down: removing empty node {down.node}", component=component
            )
        else:
            self.store.record_event(
                node, "ScaleDown", "marked the node as toBeDeleted/unschedulable", component=component
            )
        for key in down.pods:
            namespace, _, name = key.partition("/")
            pod = self.store.try_get(r.POD, namespace, name)
            if pod is None:
                continue
            if karpenter:
                self.store.record_event(pod, "Evicted", f"Evicted pod: {down.reason.capitalize()}", component=component)
            else:
                self.store.record_event(pod, "ScaleDown", "deleting pod for node scale down", component=component)
            try:
                self.disruptor.evict(namespace, name, None, source=component)
            except ApiError as exc:
                if exc.code == 404:
                    continue
                self._untaint(down.node, taint_key)
                with self._lock:
                    self._last_failure = self.now()
                self.store.record_event(
                    node,
                    "ScaleDownFailed",
                    f"failed to drain the node, aborting ScaleDown: eviction of {key} refused: {exc.message}",
                    type_="Warning",
                    component=component,
                )
                return
        self._wait_empty(down.node)
        self.disruptor.remove_node(down.node)

    def _wait_empty(self, node_name: str) -> None:
        """Wait for the node's pods to end, at most the max graceful termination (and their own grace)."""
        deadline = time.monotonic() + max(self._wall(self.config.max_graceful_termination_seconds), 40.0)
        while time.monotonic() < deadline and not self._stopping.is_set():
            pods, _ = self.store.list(
                r.POD,
                None,
                lambda p: (
                    (p.get("spec") or {}).get("nodeName") == node_name
                    and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                ),
                copy=False,
            )
            if not pods:
                return
            time.sleep(0.05)

    def _taint(self, node_name: str, key: str) -> Obj | None:
        def mutate(node: Obj) -> None:
            spec = node.setdefault("spec", {})
            spec["unschedulable"] = True
            taints = [t for t in spec.get("taints") or [] if t.get("key") != key]
            taints.append(
                {"key": key, "value": str(int(time.time())), "effect": "NoSchedule", "timeAdded": timestamp()}
            )
            spec["taints"] = taints

        return self.store.update(r.NODE, None, node_name, mutate)

    def _untaint(self, node_name: str, key: str) -> None:
        def mutate(node: Obj) -> None:
            spec = node.setdefault("spec", {})
            spec.pop("unschedulable", None)
            spec["taints"] = [t for t in spec.get("taints") or [] if t.get("key") != key]
            if not spec["taints"]:
                del spec["taints"]

        self.store.update(r.NODE, None, node_name, mutate)

    # ------------------------------------------------------------------ chaos
    def stockout(self, pool: str, cluster_seconds: float) -> None:
        """Make ``pool`` unable to scale up for ``cluster_seconds`` (a Spot stockout)."""
        if pool not in self.pools:
            raise KeyError(pool)
        with self._lock:
            self._stockout_until[pool] = max(self._stockout_until.get(pool, -1.0), self.now() + cluster_seconds)

    def interrupt(self, node_name: str, source: str) -> bool:
        """A Spot preemption of ``node_name`` begins: maybe a stockout; Karpenter drains on the notice.

        Returns True when the preemption is handled here (Karpenter), False to let the node be
        shut down at once (GKE's 30-second notice).
        """
        node = self.store.try_get(r.NODE, None, node_name)
        if node is None:
            return False
        pool = str((node["metadata"].get("annotations") or {}).get(POOL_ANNOTATION, ""))
        if source == "random" and self.stockout_after_preemption > 0 and pool in self.pools and self.pools[pool].spot:
            self.stockout(pool, self.stockout_after_preemption)
        if self.config.mode != "karpenter":
            return False
        with self._lock:
            self._draining.add(node_name)
        t = threading.Thread(target=self._interruption, args=(node_name,), name=f"interrupt-{node_name}", daemon=True)
        self._threads = [x for x in self._threads if x.is_alive()] + [t]
        t.start()
        return True

    def _interruption(self, node_name: str) -> None:
        try:
            deadline = time.monotonic() + self._wall(self.config.interruption_notice_seconds)
            node = self._taint(node_name, KARPENTER_TAINT)
            if node is None:
                return
            self.store.record_event(
                node,
                "SpotInterrupted",
                "Spot interruption warning was triggered: the instance is reclaimed in 2 minutes",
                type_="Warning",
                component="karpenter",
            )
            pods, _ = self.store.list(
                r.POD,
                None,
                lambda p: (
                    (p.get("spec") or {}).get("nodeName") == node_name
                    and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                ),
            )
            for pod in pods:
                meta = pod["metadata"]
                try:
                    # Interruption is forceful: do-not-disrupt does not hold it
                    # (https://karpenter.sh/docs/concepts/disruption/#pod-level-controls).
                    self.disruptor.evict(meta["namespace"], meta["name"], None, source="karpenter", force=True)
                except ApiError:
                    pass
            while time.monotonic() < deadline and not self._stopping.is_set():
                time.sleep(0.05)
            if not self._stopping.is_set():
                self.disruptor.reclaim(node_name)
        finally:
            with self._lock:
                self._draining.discard(node_name)
            self._wake.set()

    def describe(self) -> dict[str, Any]:
        return {
            "mode": self.config.mode,
            "time_scale": self.config.time_scale,
            "expander": self.config.expander,
            "pools": {name: [p.min_nodes, p.max_nodes] for name, p in self.pools.items()},
        }


def _unschedulable(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
            return True
    return False


def _status_object() -> Obj:
    """The cluster autoscaler's status ConfigMap, the object its scale-up failures are reported on."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-autoscaler-status", "namespace": "kube-system"},
    }
