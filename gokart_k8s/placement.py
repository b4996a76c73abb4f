"""Placement: where one step runs, as plain data that the Job manifest copies verbatim.

A platform profile (:mod:`gokart_k8s.platforms`) turns a step's resource class and eviction
tolerance into a :class:`Placement`: node selector, tolerations, pod annotations and labels, and
the container's resource requests and limits. The manifest copies it without interpretation, so
what the plan table shows (:meth:`Placement.describe`) is exactly what the cluster receives.

This module also holds the platform-neutral rules every profile shares, so each profile module
stays independent of the others:

* :func:`resources_for` -- requests and limits of a resource class;
* :func:`suits` and :func:`pool_size` -- whether one node of a pool should hold a step, and which
  pool is smaller;
* :func:`accepts` -- whether a pod with this placement may land on a pool's nodes (node selector
  and taints, what the scheduler checks);
* :func:`holds` -- whether some pool of a profile's declared capacity takes a step so placed;
* :func:`node_envelope` and :func:`accelerator_nodes` -- the emulated nodes a profile derives from
  the resource-class catalog when no pools are declared;
* :func:`step_title` and :func:`wants_spot` -- one spelling of the step in messages, and the one
  rule for when a step asks for Spot capacity;
* :func:`spot_grace_warning` -- the warning for a termination budget longer than the grace a
  platform gives a Spot pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gokart_k8s.conventions import LABEL_PREFIX
from gokart_k8s.eviction import Eviction
from gokart_k8s.pools import NodePool, Taint
from gokart_k8s.resources import ResourceClass, format_bytes, parse_quantity
from gokart_k8s.steps import StepSpec

#: Pod label: the capacity a step was placed on (``spot``, ``on-demand`` or ``any``), so
#: ``kubectl get pods -L gokart-k8s.io/capacity`` shows at a glance what ran where.
LABEL_CAPACITY = f"{LABEL_PREFIX}/capacity"
#: Pod label: the node pool a step was pinned to, on profiles that pin pools.
LABEL_POOL = f"{LABEL_PREFIX}/pool"

#: Pod annotation the cluster autoscaler honours: ``"false"`` keeps it from draining the node
#: (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md#what-types-of-pods-can-prevent-ca-from-removing-a-node).
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"

#: The extended resource NVIDIA's device plugin advertises
#: (https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/).
GPU_RESOURCE = "nvidia.com/gpu"

#: GPU nodes are usually tainted ``nvidia.com/gpu:NoSchedule`` so that CPU-only pods stay off
#: them (GKE does it itself). Tolerating the taint is harmless where it is absent.
GPU_TOLERATION: dict[str, str] = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}

# Taint effects that keep a pod off a node. PreferNoSchedule only steers
# (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/).
_BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")

_GIB = Decimal(2**30)
# The smallest node an emulation offers, however small the classes it holds.
_MIN_NODE_CPU = Decimal(4)
_MIN_NODE_MEMORY = Decimal(16) * _GIB


@dataclass(frozen=True)
class Placement:
    """Where one step runs on one platform; every field goes into the pod spec as it is.

    Attributes:
        pool: the node pool the step is pinned to, or ``None`` where the platform has no pools
            (Autopilot, Karpenter) or they are not selected (plain).
        spot: whether the step runs on Spot capacity.
        node_selector: ``spec.nodeSelector`` of the pod.
        tolerations: ``spec.tolerations`` of the pod.
        affinity: ``spec.affinity`` of the pod, or ``None``.
        annotations: pod annotations (e.g. ``cluster-autoscaler.kubernetes.io/safe-to-evict``).
        labels: extra pod labels (capacity, pool).
        requests: the container's ``resources.requests``.
        limits: the container's ``resources.limits``.
        summary: the head of :meth:`describe` where there is no pool (``"Autopilot Spot"``).
        details: further short phrases for :meth:`describe` (``"compute-class Balanced"``).
        warnings: things the plan should show that do not stop the step (grace-period caps).
    """

    pool: str | None
    spot: bool
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    affinity: dict[str, Any] | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    limits: dict[str, str] = field(default_factory=dict)
    summary: str = ""
    details: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """Short text for the plan table: ``pool spot-small (Spot)``, ``Autopilot Spot, compute-class Balanced``."""
        if self.pool is not None:
            head = f"pool {self.pool} ({'Spot' if self.spot else 'on-demand'})"
        else:
            head = self.summary or ("Spot" if self.spot else "on-demand")
        return ", ".join([head, *self.details])


def step_title(spec: StepSpec) -> str:
    """The step as every planning message names it: ``Step TrainModel (resource class 'gpu-t4', eviction=protect)``."""
    name = spec.resource_class.name or "one-off"
    return f"Step {spec.family} (resource class {name!r}, eviction={spec.eviction.value})"


def wants_spot(spec: StepSpec, *, on_demand: bool = False) -> bool:
    """A step asks for Spot capacity when it tolerates eviction and its class allows Spot.

    A protected step never runs on Spot: a Spot VM is reclaimed whatever the pod's annotations
    say. ``on_demand=True`` is the driver's fallback after repeated evictions of a tolerant step.
    """
    return spec.eviction is Eviction.TOLERATE and spec.resource_class.spot and not on_demand


def spot_grace_warning(spec: StepSpec, budget_seconds: float, grace_seconds: int, reclaim: str) -> list[str]:
    """A warning when the termination budget is longer than the grace the platform gives a Spot pod.

    ``reclaim`` says how the platform reclaims Spot capacity, after the step's title: ``runs on
    Spot, which EC2 reclaims 120 s after its notice``. Empty when the budget fits the grace.
    """
    if budget_seconds > grace_seconds:
        return [
            f"{step_title(spec)} {reclaim}, but termination_budget_seconds is {budget_seconds:g}: the final "
            f"checkpoint may be cut off. Set termination_budget_seconds below {grace_seconds}."
        ]
    return []


def resources_for(rc: ResourceClass) -> tuple[dict[str, str], dict[str, str]]:
    """The container's ``(requests, limits)`` for a resource class.

    * cpu: a request only. A CPU limit throttles the step (CFS quota) even on an idle node, and
      CPU is compressible: a step over its request slows down but is never killed for it
      (https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#how-pods-with-resource-limits-are-run).
    * memory: request and limit equal, so a step over its class ends ``OOMKilled`` with clear
      advice instead of starving its neighbours and being evicted for node pressure.
    * ephemeral-storage (only when the class names ``disk``): request and limit, so the scheduler
      picks a node with room and the kubelet evicts a step that writes more than it declared.
    * GPUs: a limit only; for extended resources the request defaults to the limit and may not
      differ from it (https://kubernetes.io/docs/tasks/manage-gpus/scheduling-gpus/).
    """
    requests = {"cpu": rc.cpu, "memory": rc.memory}
    limits = {"memory": rc.memory}
    if rc.disk is not None:
        requests["ephemeral-storage"] = rc.disk
        limits["ephemeral-storage"] = rc.disk
    if rc.gpu:
        limits[GPU_RESOURCE] = str(rc.gpu)
    return requests, limits


def suits(rc: ResourceClass, pool: NodePool) -> bool:
    """Whether one node of ``pool`` should hold a step of class ``rc``.

    The node must offer the class's cpu, memory and disk; a GPU class needs a pool with at least
    as many GPUs of its exact accelerator type, and a CPU-only class never goes to a GPU pool
    (a GPU node costs many times a CPU node of the same size, and a long CPU step there would
    keep it alive).
    """
    if rc.cpu_cores > parse_quantity(pool.cpu) or rc.memory_bytes > parse_quantity(pool.memory):
        return False
    if (rc.disk_bytes or Decimal(0)) > parse_quantity(pool.ephemeral_storage):
        return False
    if rc.gpu:
        return pool.accelerator == rc.accelerator and pool.gpu >= rc.gpu
    return pool.gpu == 0


def pool_size(pool: NodePool) -> tuple[int, Decimal, Decimal, Decimal, str]:
    """Sort key from the smallest to the biggest node: GPUs, then cpu, memory, disk (name breaks ties)."""
    return (
        pool.gpu,
        parse_quantity(pool.cpu),
        parse_quantity(pool.memory),
        parse_quantity(pool.ephemeral_storage),
        pool.name,
    )


def smallest(pools: Iterable[NodePool]) -> NodePool | None:
    """The smallest pool of ``pools`` by :func:`pool_size`, or ``None`` when there is none."""
    ordered = sorted(pools, key=pool_size)
    return ordered[0] if ordered else None


def node_envelope(
    classes: Iterable[ResourceClass], cpu: Decimal = _MIN_NODE_CPU, memory: Decimal = _MIN_NODE_MEMORY
) -> tuple[str, str]:
    """cpu and memory of an emulated node big enough for every class given (at least cpu/memory)."""
    for rc in classes:
        cpu = max(cpu, rc.cpu_cores)
        memory = max(memory, rc.memory_bytes)
    return f"{cpu.normalize():f}", format_bytes(memory)


def accelerator_nodes(classes: Iterable[ResourceClass]) -> list[tuple[str, str, str, int]]:
    """One emulated GPU node per accelerator the GPU classes name, in name order:
    ``(accelerator, cpu, memory, gpus)``, big enough for every class of that accelerator."""
    classes = list(classes)
    nodes: list[tuple[str, str, str, int]] = []
    for accelerator in sorted({rc.accelerator or "" for rc in classes if rc.gpu}):
        same = [rc for rc in classes if rc.accelerator == accelerator]
        cpu, memory = node_envelope(same)
        nodes.append((accelerator, cpu, memory, max(rc.gpu for rc in same)))
    return nodes


def toleration_for(taint: Taint) -> dict[str, str]:
    """The toleration that matches exactly one taint."""
    if taint.value:
        return {"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect}
    return {"key": taint.key, "operator": "Exists", "effect": taint.effect}


def tolerates(tolerations: Iterable[Mapping[str, str]], taint: Taint) -> bool:
    """Whether any toleration matches ``taint``, by the scheduler's rules
    (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/#concepts)."""
    for t in tolerations:
        effect = t.get("effect", "")
        if effect and effect != taint.effect:
            continue
        operator = t.get("operator", "Equal")
        key = t.get("key", "")
        if operator == "Exists":
            if not key or key == taint.key:
                return True
        elif key == taint.key and t.get("value", "") == taint.value:
            return True
    return False


def accepts(pool: NodePool, placement: Placement) -> bool:
    """Whether the pool's nodes accept a pod placed so: every selected label is on the node, and
    every blocking taint of the node is tolerated. (``placement.affinity`` is not used by any
    built-in profile and is not evaluated here.)"""
    for key, value in placement.node_selector.items():
        if pool.labels.get(key) != value:
            return False
    return all(tolerates(placement.tolerations, taint) for taint in pool.taints if taint.effect in _BLOCKING_EFFECTS)


def holds(pools: Iterable[NodePool], rc: ResourceClass, placement: Placement) -> bool:
    """Whether some pool both :func:`suits` class ``rc`` and :func:`accepts` the placement."""
    return any(suits(rc, p) and accepts(p, placement) for p in pools)


def merge_tolerations(*groups: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Tolerations of all groups in order, each distinct one once; one that an ``Exists``
    toleration of the same key and effect already covers is dropped."""
    items: list[dict[str, str]] = []
    for group in groups:
        for t in group:
            item = dict(t)
            if item not in items:
                items.append(item)
    covering = {(t.get("key", ""), t.get("effect", "")) for t in items if t.get("operator") == "Exists"}
    return [
        t for t in items if t.get("operator") == "Exists" or (t.get("key", ""), t.get("effect", "")) not in covering
    ]


def need_phrase(rc: ResourceClass) -> str:
    """What a class needs from a node, for messages: ``at least 4 cpu, 32Gi memory, 1x nvidia-l4``."""
    parts = [f"at least {rc.cpu} cpu", f"{format_bytes(rc.memory_bytes)} memory"]
    if rc.gpu:
        parts.append(f"{rc.gpu}x {rc.accelerator}")
    if rc.disk is not None:
        parts.append(f"{rc.disk} disk")
    return ", ".join(parts)
