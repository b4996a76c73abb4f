"""The autoscalers' decisions, as pure functions over plain data: what to add, what to remove.

Nothing here reads a clock, a store or a thread: every function takes the cluster's state (node
and pod objects as the API serves them, the pools, timers in cluster seconds) and returns what to
do. :mod:`.loop` takes the snapshots and carries the decisions out.

Cluster autoscaler (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md):

* **scale-up** (:func:`plan_scale_up`): pods the scheduler marked ``Unschedulable`` are first
  packed onto nodes already being provisioned; for the rest, each pool with room below
  ``max_nodes`` and not backing off is an *option*: the pool's template node is filled first-fit
  with the pods it accepts, so many nodes as needed (up to the maximum). The *expander* picks one
  option: ``least-waste`` (least idle cpu, then memory, share of the new nodes) or ``price``
  (the upstream pricing proposal's (C + X) / (T + X) with C the new nodes' price and T the pods'
  price on perfectly fitted machines; the node-size preference term is left out). Ties go to the
  pool name. Pods no option helps get ``NotTriggerScaleUp`` with the per-pool reasons.
* **scale-down** (:func:`unneeded_nodes`, :func:`plan_scale_down`): a node is *unneeded* when the
  sum of its pods' cpu requests and the sum of their memory requests are both below
  ``utilization_threshold`` of allocatable, no pod blocks it (``safe-to-evict: "false"``,
  ``karpenter.sh/do-not-disrupt: "true"``, a pod without a controller unless ``safe-to-evict:
  "true"``), every pod fits on another node, and the pool stays at or above ``min_nodes``. A node
  unneeded for ``unneeded_seconds`` is removed, but not within ``delay_after_add_seconds`` of a
  scale-up nor ``delay_after_failure_seconds`` of a failed scale-down; empty nodes go in bulk
  (``max_empty_bulk_delete``), non-empty ones one at a time.

Karpenter (https://karpenter.sh/docs/concepts/):

* **provisioning** (:func:`plan_provisioning`): pending pods are bin-packed per NodePool (here, per
  pool: its labels carry the capacity type), then each new node gets the *cheapest instance type*
  of that pool that holds its pods (:func:`instance_types`).
* **consolidation** (:func:`plan_consolidation`): after ``consolidateAfter`` without a pod added or
  removed, an empty node is deleted; with ``WhenEmptyOrUnderutilized`` a node whose pods all fit on
  other nodes is deleted, and an on-demand node whose pods fit a cheaper instance type is replaced
  (its pods are evicted and provisioning launches the cheaper node). A ``do-not-disrupt`` pod, or
  a pod without a controller, blocks both. One node at a time (the default budget is 10 % of nodes).

Autopilot (https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-overview):
:func:`plan_autopilot` gives each pending pod a node of its own, sized to its requests, labelled
and tainted like the pool (compute class, Spot, accelerator) its selectors ask for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from gokart_k8s.pools import NodePool

from ..chaos import DO_NOT_DISRUPT, SAFE_TO_EVICT
from ..quantity import parse_quantity
from ..scheduler import fit_reasons, pod_requests
from ..store import Obj
from .config import Autoscaling, Prices

#: Well-known node label for the machine type (https://kubernetes.io/docs/reference/labels-annotations-taints/#nodekubernetesioinstance-type).
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
#: Node annotation: the pool a node of the local cluster belongs to.
POOL_ANNOTATION = "gokart-k8s.io/pool"

_GIB = Decimal(2**30)
#: The pricing proposal's price of a perfectly fitted cpu and GB per hour, and X = a 0.5-cpu pod
#: (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/proposals/pricing.md).
_FIT_CPU_HOUR = 0.033174
_FIT_GB_HOUR = 0.004446
_FIT_GPU_HOUR = 0.7
_SMALL_POD = 0.5 * _FIT_CPU_HOUR


# ---------------------------------------------------------------------------------------------- data


@dataclass
class NodeState:
    """One node and the non-terminal pods bound to it."""

    node: Obj
    pods: list[Obj] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.node["metadata"]["name"])

    @property
    def pool(self) -> str:
        return str((self.node["metadata"].get("annotations") or {}).get(POOL_ANNOTATION, ""))

    @property
    def cordoned(self) -> bool:
        return bool((self.node.get("spec") or {}).get("unschedulable"))

    def used(self) -> dict[str, Decimal]:
        return total_requests(self.pods)


@dataclass(frozen=True)
class ScaleUp:
    """Add ``count`` nodes to ``pool`` (of ``machine_type`` for Karpenter and Autopilot) for ``pods``."""

    pool: str
    count: int
    pods: tuple[str, ...]
    #: Karpenter and Autopilot: the node's allocatable, overriding the pool's.
    capacity: Mapping[str, str] | None = None
    machine_type: str | None = None


@dataclass(frozen=True)
class NoScaleUp:
    """A pending pod no pool can help, and why (``NotTriggerScaleUp``)."""

    pod: str
    message: str


@dataclass(frozen=True)
class ScaleDown:
    """Remove ``node``: ``reason`` is ``empty``, ``underutilized`` or ``replace``; evict ``pods`` first."""

    node: str
    reason: str
    pods: tuple[str, ...] = ()


@dataclass(frozen=True)
class Blocked:
    """A node that would be removed but for ``pod`` (``DisruptionBlocked`` / no scale-down)."""

    node: str
    pod: str
    why: str


# ---------------------------------------------------------------------------------------------- helpers


def pod_key(pod: Obj) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


def total_requests(pods: Iterable[Obj]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for pod in pods:
        for name, amount in pod_requests(pod).items():
            total[name] = total.get(name, Decimal(0)) + amount
    return total


def allocatable(node: Obj) -> dict[str, Decimal]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return {k: parse_quantity(v) for k, v in alloc.items()}


def utilization(state: NodeState) -> float:
    """max(cpu requests / allocatable cpu, memory requests / allocatable memory), as the CA computes it."""
    alloc, used = allocatable(state.node), state.used()
    shares = [
        float(used.get(name, Decimal(0)) / alloc[name]) for name in ("cpu", "memory") if alloc.get(name, Decimal(0)) > 0
    ]
    return max(shares, default=0.0)


def has_controller(pod: Obj) -> bool:
    return any(ref.get("controller") for ref in pod["metadata"].get("ownerReferences") or [])


def blocker(pod: Obj, *, karpenter: bool = False) -> str | None:
    """Why ``pod`` keeps its node from being removed voluntarily, or None."""
    annotations = pod["metadata"].get("annotations") or {}
    if annotations.get(SAFE_TO_EVICT) == "false":
        return f'annotated {SAFE_TO_EVICT}: "false"'
    if annotations.get(DO_NOT_DISRUPT) == "true":
        return f'annotated {DO_NOT_DISRUPT}: "true"'
    if not has_controller(pod) and (karpenter or annotations.get(SAFE_TO_EVICT) != "true"):
        return "not backed by a controller (Job, ReplicaSet, ...)"
    return None


def _fits(pod: Obj, node: Obj, used: dict[str, Decimal], count: int) -> bool:
    return not fit_reasons(pod, node, used, count)


def _place(pod: Obj, bins: list[tuple[Obj, dict[str, Decimal], list[Obj]]]) -> bool:
    """First fit of ``pod`` into ``bins`` (node, used, pods); updates the bin it lands in."""
    for node, used, pods in bins:
        if _fits(pod, node, used, len(pods)):
            for name, amount in pod_requests(pod).items():
                used[name] = used.get(name, Decimal(0)) + amount
            pods.append(pod)
            return True
    return False


def fit_elsewhere(pods: Sequence[Obj], others: Sequence[NodeState]) -> bool:
    """True if every pod of ``pods`` fits on one of ``others`` (not cordoned), as the CA simulates a drain."""
    bins = [(s.node, s.used(), list(s.pods)) for s in others if not s.cordoned]
    return all(_place(pod, bins) for pod in sorted(pods, key=_size, reverse=True))


def _size(pod: Obj) -> tuple[Decimal, Decimal]:
    req = pod_requests(pod)
    return req.get("cpu", Decimal(0)), req.get("memory", Decimal(0))


def shape_name(capacity: Mapping[str, str]) -> str:
    """A machine shape's name when the node has no instance type: ``4cpu-16Gi`` (``-1gpu``), a valid label value."""
    cpu = parse_quantity(capacity.get("cpu", "0"))
    memory = parse_quantity(capacity.get("memory", "0")) / _GIB
    gpu = int(parse_quantity(capacity.get("nvidia.com/gpu", "0")))
    cpu_text = f"{cpu.normalize():f}" if cpu == cpu.to_integral_value() else f"{int(cpu * 1000)}m"
    memory_text = f"{memory.quantize(Decimal('0.1')).normalize():f}Gi"
    return f"{cpu_text}cpu-{memory_text}" + (f"-{gpu}gpu" if gpu else "")


def machine_type(node: Obj) -> str:
    labels = node["metadata"].get("labels") or {}
    return str(labels.get(INSTANCE_TYPE_LABEL) or shape_name((node.get("status") or {}).get("allocatable") or {}))


def node_price(node: Obj, prices: Prices, spot: bool) -> float:
    alloc = allocatable(node)
    return prices.hourly(
        alloc.get("cpu", Decimal(0)),
        alloc.get("memory", Decimal(0)),
        int(alloc.get("nvidia.com/gpu", Decimal(0))),
        spot,
        machine_type(node),
    )


def with_capacity(template: Obj, capacity: Mapping[str, str], machine: str | None) -> Obj:
    """``template`` with another allocatable (and instance-type label): a Karpenter or Autopilot node."""
    node: Obj = {**template, "metadata": dict(template["metadata"]), "status": dict(template.get("status") or {})}
    node["status"]["allocatable"] = dict(capacity)
    node["status"]["capacity"] = dict(capacity)
    if machine:
        node["metadata"]["labels"] = {**(template["metadata"].get("labels") or {}), INSTANCE_TYPE_LABEL: machine}
    return node


# ---------------------------------------------------------------------------------------------- cluster autoscaler


@dataclass(frozen=True)
class PoolView:
    """A pool as the autoscaler sees it: its template node, how many nodes it has, whether it can grow."""

    pool: NodePool
    template: Obj
    #: Nodes that exist or are being provisioned.
    size: int
    #: The pool may not be scaled up (a failed scale-up's back-off, a Spot stockout).
    backing_off: bool = False


def _option_score(
    view: PoolView, count: int, pods: Sequence[Obj], expander: str, prices: Prices
) -> tuple[float, float, str]:
    alloc = allocatable(view.template)
    used = total_requests(pods)
    if expander == "price":
        node_cost = count * node_price(view.template, prices, view.pool.spot)
        fitted = sum(
            float(pod_requests(p).get("cpu", Decimal(0))) * _FIT_CPU_HOUR
            + float(pod_requests(p).get("memory", Decimal(0)) / Decimal(10**9)) * _FIT_GB_HOUR
            + float(pod_requests(p).get("nvidia.com/gpu", Decimal(0))) * _FIT_GPU_HOUR
            for p in pods
        )
        return (node_cost + _SMALL_POD) / (fitted + _SMALL_POD), 0.0, view.pool.name
    wasted = []
    for name in ("cpu", "memory"):
        total = alloc.get(name, Decimal(0)) * count
        wasted.append(float((total - used.get(name, Decimal(0))) / total) if total > 0 else 0.0)
    return wasted[0], wasted[1], view.pool.name


def still_waiting(pending: Sequence[Obj], existing: Sequence[NodeState], upcoming: Sequence[Obj]) -> list[Obj]:
    """The pending pods that fit neither on an existing node with room (the scheduler has not got
    to them yet: the CA's "filter out schedulable") nor on a node being provisioned, largest first."""
    bins = [(s.node, s.used(), list(s.pods)) for s in existing if not s.cordoned]
    bins += [(node, {}, []) for node in upcoming]
    return [p for p in sorted(pending, key=_size, reverse=True) if not _place(p, bins)]


def nominated(pending: Sequence[Obj], nodes: Sequence[NodeState]) -> set[str]:
    """The nodes pending pods are about to be bound to (they fit there): not to be removed now.

    A node the autoscaler just added is empty until the scheduler binds the pods it was made for;
    Karpenter keeps such nominated nodes out of disruption, and so does every mode here.
    """
    bins = [(s.node, s.used(), list(s.pods)) for s in nodes if not s.cordoned]
    names: set[str] = set()
    for pod in sorted(pending, key=_size, reverse=True):
        for node, used, pods in bins:
            if _fits(pod, node, used, len(pods)):
                _place(pod, [(node, used, pods)])
                names.add(str(node["metadata"]["name"]))
                break
    return names


def plan_scale_up(
    pending: Sequence[Obj],
    pools: Sequence[PoolView],
    upcoming: Sequence[Obj],
    config: Autoscaling,
    existing: Sequence[NodeState] = (),
) -> tuple[list[ScaleUp], list[NoScaleUp]]:
    """One cluster-autoscaler scale-up decision for ``pending`` pods (see the module docstring).

    Pods that fit on ``existing`` nodes, or on ``upcoming`` ones (template nodes being
    provisioned), wait for the scheduler.
    Returns at most one :class:`ScaleUp` (the CA scales one node group per loop) and the pods that
    no pool can help.
    """
    waiting = still_waiting(pending, existing, upcoming)
    if not waiting:
        return [], []
    options: list[tuple[tuple[float, float, str], ScaleUp]] = []
    for view in pools:
        room = view.pool.max_nodes - view.size
        if room <= 0 or view.backing_off:
            continue
        new: list[tuple[Obj, dict[str, Decimal], list[Obj]]] = []
        helped: list[Obj] = []
        for pod in waiting:
            if not _fits(pod, view.template, {}, 0):
                continue
            if _place(pod, new):
                helped.append(pod)
            elif len(new) < room:
                new.append((view.template, {}, []))
                _place(pod, new)
                helped.append(pod)
        if helped:
            score = _option_score(view, len(new), helped, config.expander, config.prices)
            options.append((score, ScaleUp(view.pool.name, len(new), tuple(pod_key(p) for p in helped))))
    if options:
        best = min(options, key=lambda o: o[0])[1]
        helped_keys = set(best.pods)
        rest = [p for p in waiting if pod_key(p) not in helped_keys]
        return [best], [NoScaleUp(pod_key(p), why_no_scale_up(p, pools)) for p in rest if not _any_option(p, pools)]
    return [], [NoScaleUp(pod_key(p), why_no_scale_up(p, pools)) for p in waiting]


def _any_option(pod: Obj, pools: Sequence[PoolView]) -> bool:
    return any(v.pool.max_nodes > v.size and not v.backing_off and _fits(pod, v.template, {}, 0) for v in pools)


def why_no_scale_up(pod: Obj, pools: Sequence[PoolView]) -> str:
    """``pod didn't trigger scale-up: …`` with one reason per pool, counted like the real event."""
    reasons: dict[str, int] = {}
    for view in pools:
        why = fit_reasons(pod, view.template, {}, 0)
        if why:
            reason = why[0]
        elif view.backing_off:
            reason = "in backoff after failed scale-up"
        else:
            reason = "max node group size reached"
        reasons[reason] = reasons.get(reason, 0) + 1
    parts = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return f"pod didn't trigger scale-up: {parts}" if parts else "pod didn't trigger scale-up: no node groups"


def unneeded_nodes(
    nodes: Sequence[NodeState],
    sizes: Mapping[str, int],
    minimums: Mapping[str, int],
    threshold: float,
) -> tuple[set[str], list[Blocked]]:
    """The nodes the cluster autoscaler would call unneeded now, and those a pod keeps."""
    unneeded: set[str] = set()
    blocked: list[Blocked] = []
    removals: dict[str, int] = {}
    for state in nodes:
        if state.cordoned or utilization(state) >= threshold:
            continue
        stop = next(((p, why) for p in state.pods if (why := blocker(p)) is not None), None)
        if stop is not None:
            blocked.append(Blocked(state.name, pod_key(stop[0]), stop[1]))
            continue
        pool = state.pool
        if sizes.get(pool, 0) - removals.get(pool, 0) <= minimums.get(pool, 0):
            continue
        others = [s for s in nodes if s.name != state.name and s.name not in unneeded]
        if state.pods and not fit_elsewhere(state.pods, others):
            continue
        unneeded.add(state.name)
        removals[pool] = removals.get(pool, 0) + 1
    return unneeded, blocked


def plan_scale_down(
    nodes: Sequence[NodeState],
    unneeded_since: Mapping[str, float],
    now: float,
    last_scale_up: float | None,
    last_failure: float | None,
    config: Autoscaling,
) -> list[ScaleDown]:
    """The nodes to remove now: unneeded long enough, outside the delays after a scale-up or failure."""
    if last_scale_up is not None and now - last_scale_up < config.delay_after_add_seconds:
        return []
    if last_failure is not None and now - last_failure < config.delay_after_failure_seconds:
        return []
    ripe = [s for s in nodes if s.name in unneeded_since and now - unneeded_since[s.name] >= config.unneeded_seconds]
    empty = [ScaleDown(s.name, "empty") for s in ripe if not s.pods][: config.max_empty_bulk_delete]
    if empty:
        return empty
    busy = sorted((s for s in ripe if s.pods), key=lambda s: (unneeded_since[s.name], s.name))
    if not busy:
        return []
    first = busy[0]
    return [ScaleDown(first.name, "underutilized", tuple(pod_key(p) for p in first.pods))]


# ---------------------------------------------------------------------------------------------- karpenter


@dataclass(frozen=True)
class InstanceType:
    """One machine Karpenter may launch for a pool: a name, its allocatable, its price per hour."""

    name: str
    capacity: Mapping[str, str]
    price: float


def instance_types(pool: NodePool, template: Obj, prices: Prices) -> list[InstanceType]:
    """The machines Karpenter may launch for ``pool``, cheapest first.

    A pool here stands for a Karpenter NodePool whose largest node is the pool's size; the
    instance types are that size halved down to one cpu, keeping its memory per cpu (a CPU pool),
    or the pool's size alone (a GPU pool), like the families of the KWOK provider
    (https://github.com/kubernetes-sigs/karpenter/tree/main/kwok).
    """
    base = pool.capacity()
    cpu = parse_quantity(pool.cpu)
    memory = parse_quantity(pool.memory)
    shapes = [(cpu, memory)]
    if not pool.gpu:
        divisor = 2
        while cpu / divisor >= 1:
            shapes.append((cpu / divisor, memory / divisor))
            divisor *= 2
    out = []
    for shape_cpu, shape_memory in shapes:
        capacity = {
            **base,
            "cpu": _cpu_text(shape_cpu),
            "memory": f"{int(shape_memory // (1024 * 1024))}Mi",
        }
        node = with_capacity(template, capacity, None)
        name = shape_name(capacity)
        out.append(InstanceType(name, capacity, node_price(node, prices, pool.spot)))
    return sorted(out, key=lambda t: (t.price, t.name))


def _cpu_text(cpu: Decimal) -> str:
    return f"{int(cpu)}" if cpu == cpu.to_integral_value() else f"{int(cpu * 1000)}m"


def plan_provisioning(
    pending: Sequence[Obj],
    pools: Sequence[PoolView],
    types: Mapping[str, Sequence[InstanceType]],
    upcoming: Sequence[Obj],
    existing: Sequence[NodeState] = (),
) -> tuple[list[ScaleUp], list[NoScaleUp]]:
    """Karpenter's provisioning: bin-pack pending pods per pool, cheapest instance type per new node."""
    waiting = still_waiting(pending, existing, upcoming)
    launches: list[ScaleUp] = []
    refused: list[NoScaleUp] = []
    planned: dict[str, list[tuple[Obj, dict[str, Decimal], list[Obj]]]] = {}
    for pod in waiting:
        placed = False
        for view in pools:
            if view.backing_off or not _fits(pod, view.template, {}, 0):
                continue
            new = planned.setdefault(view.pool.name, [])
            if _place(pod, new):
                placed = True
                break
            if view.size + len(new) < view.pool.max_nodes:
                new.append((view.template, {}, []))
                _place(pod, new)
                placed = True
                break
        if not placed:
            refused.append(
                NoScaleUp(
                    pod_key(pod),
                    why_no_scale_up(pod, pools).replace("pod didn't trigger scale-up", "could not schedule pod", 1),
                )
            )
    for pool_name, new in planned.items():
        for _, _used, pods in new:
            choice = next((t for t in types.get(pool_name, ()) if _holds(t, pods)), None)
            if choice is None:  # pragma: no cover - the pool's own size always holds what fit its template
                continue
            launches.append(ScaleUp(pool_name, 1, tuple(pod_key(p) for p in pods), choice.capacity, choice.name))
    return launches, refused


def _holds(kind: InstanceType, pods: Sequence[Obj]) -> bool:
    alloc = {k: parse_quantity(v) for k, v in kind.capacity.items()}
    used = total_requests(pods)
    return all(amount <= alloc.get(name, Decimal(0)) for name, amount in used.items() if amount > 0)


def plan_consolidation(
    nodes: Sequence[NodeState],
    settled_since: Mapping[str, float],
    now: float,
    types: Mapping[str, Sequence[InstanceType]],
    spot: Mapping[str, bool],
    config: Autoscaling,
) -> tuple[list[ScaleDown], list[Blocked]]:
    """Karpenter's disruption by consolidation: at most one node (see the module docstring)."""
    blocked: list[Blocked] = []
    ripe = [
        s
        for s in nodes
        if not s.cordoned
        and s.name in settled_since
        and now - settled_since[s.name] >= config.consolidate_after_seconds
    ]
    empty = [ScaleDown(s.name, "empty") for s in ripe if not s.pods]
    if empty:
        return empty[:1], blocked
    if config.consolidation_policy != "WhenEmptyOrUnderutilized":
        return [], blocked
    # Fewer pods first, as Karpenter prefers to disrupt nodes with fewer pods.
    for state in sorted(ripe, key=lambda s: (len(s.pods), s.name)):
        stop = next(((p, why) for p in state.pods if (why := blocker(p, karpenter=True)) is not None), None)
        if stop is not None:
            blocked.append(Blocked(state.name, pod_key(stop[0]), stop[1]))
            continue
        others = [s for s in nodes if s.name != state.name]
        keys = tuple(pod_key(p) for p in state.pods)
        if fit_elsewhere(state.pods, others):
            return [ScaleDown(state.name, "underutilized", keys)], blocked
        if spot.get(state.name):
            continue  # spot-to-spot replacement needs the SpotToSpotConsolidation feature gate
        price = node_price(state.node, config.prices, False)
        cheaper = [t for t in types.get(state.pool, ()) if t.price < price and _holds(t, state.pods)]
        if cheaper:
            return [ScaleDown(state.name, "replace", keys)], blocked
    return [], blocked


# ---------------------------------------------------------------------------------------------- autopilot


#: Autopilot bills cpu in 0.25-vCPU steps and raises requests below its minimums
#: (https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests).
_AUTOPILOT_CPU_STEP = Decimal("0.25")
_AUTOPILOT_MIN_MEMORY = Decimal("0.5") * _GIB


def autopilot_capacity(pod: Obj) -> dict[str, str]:
    """A per-pod node's allocatable: the pod's requests, cpu rounded up to 0.25 vCPU."""
    req = pod_requests(pod)
    cpu = req.get("cpu", _AUTOPILOT_CPU_STEP)
    cpu = Decimal(math.ceil(cpu / _AUTOPILOT_CPU_STEP)) * _AUTOPILOT_CPU_STEP
    memory = max(req.get("memory", _AUTOPILOT_MIN_MEMORY), _AUTOPILOT_MIN_MEMORY)
    capacity = {
        "cpu": _cpu_text(cpu),
        "memory": f"{math.ceil(memory / (1024 * 1024))}Mi",
        "ephemeral-storage": f"{int(req.get('ephemeral-storage', Decimal(10 * 2**30)))}",
        "pods": "110",
    }
    if req.get("nvidia.com/gpu"):
        capacity["nvidia.com/gpu"] = str(int(req["nvidia.com/gpu"]))
    return capacity


def plan_autopilot(
    pending: Sequence[Obj], pools: Sequence[PoolView], upcoming_for: set[str], existing: Sequence[NodeState] = ()
) -> tuple[list[ScaleUp], list[NoScaleUp]]:
    """A node per pending pod (not already given one), in the first pool whose labels and taints it accepts."""
    launches: list[ScaleUp] = []
    refused: list[NoScaleUp] = []
    for pod in still_waiting(pending, existing, ()):
        key = pod_key(pod)
        if key in upcoming_for:
            continue
        capacity = autopilot_capacity(pod)
        chosen = None
        for view in pools:
            node = with_capacity(view.template, capacity, None)
            if not view.backing_off and _fits(pod, node, {}, 0):
                chosen = view
                break
        if chosen is None:
            refused.append(NoScaleUp(key, why_no_scale_up(pod, pools)))
            continue
        launches.append(ScaleUp(chosen.pool.name, 1, (key,), capacity, "autopilot-" + shape_name(capacity)))
    return launches, refused
