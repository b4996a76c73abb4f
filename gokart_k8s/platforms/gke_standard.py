"""GKE Standard: every step pinned to the smallest node pool that suits it.

This is the seed team's hand-made setup, done by the tool. The cluster has node pools from small
to large, CPU and GPU, Spot and on-demand; each step's pod carries a ``nodeSelector`` on
``cloud.google.com/gke-nodepool`` (GKE labels every node with its pool's name,
https://cloud.google.com/kubernetes-engine/docs/concepts/node-pools), so

* a tolerant step whose class allows Spot goes to the smallest Spot pool that suits it
  (``cloud.google.com/gke-spot: "true"`` and its toleration; GKE Standard leaves the taint to you,
  ``--node-taints=cloud.google.com/gke-spot=true:NoSchedule``,
  https://cloud.google.com/kubernetes-engine/docs/how-to/spot-vms), else to the smallest
  on-demand pool;
* a protected step goes to the smallest *on-demand* pool that suits it and carries
  ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``, which stops the cluster autoscaler
  from draining its node
  (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md#what-types-of-pods-can-prevent-ca-from-removing-a-node).

Pinning the pool is what keeps a small protected step off a big node: without it, the scheduler
may put it next to a big step, and when the big step ends the small one keeps the expensive node
alive. :meth:`GkeStandardProfile.place` picks the smallest suitable pool; it also warns when even
that pool is so much bigger than the step that the autoscaler would otherwise have removed the node.

Pools come from ``[gokart_k8s.pools.NAME]`` sections (``settings.pools``), or
:func:`default_pools` when there are none. Labels GKE puts on every node itself (pool name, Spot,
accelerator) and the GPU taint GKE adds are filled in, so :meth:`GkeStandardProfile.pools` is
what the nodes really look like and the local cluster can rehearse on it.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from gokart_k8s.errors import PlanError
from gokart_k8s.eviction import Eviction
from gokart_k8s.placement import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    LABEL_CAPACITY,
    LABEL_POOL,
    SAFE_TO_EVICT,
    Placement,
    merge_tolerations,
    need_phrase,
    pool_size,
    resources_for,
    smallest,
    spot_grace_warning,
    step_title,
    suits,
    toleration_for,
    wants_spot,
)
from gokart_k8s.pools import NodePool, Taint
from gokart_k8s.resources import parse_quantity
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec

PLATFORM = "gke-standard"

NODEPOOL_LABEL = "cloud.google.com/gke-nodepool"
SPOT_LABEL = "cloud.google.com/gke-spot"
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
#: The machine type of a node, which every cloud's nodes carry
#: (https://kubernetes.io/docs/reference/labels-annotations-taints/#nodekubernetesioinstance-type).
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"

SPOT_TAINT = Taint(key=SPOT_LABEL, value="true", effect="NoSchedule")
SPOT_TOLERATION: dict[str, str] = {"key": SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
# GKE taints GPU nodes nvidia.com/gpu=present:NoSchedule itself
# (https://cloud.google.com/kubernetes-engine/docs/how-to/gpus#create).
GPU_TAINT = Taint(key=GPU_RESOURCE, value="present", effect="NoSchedule")

#: On a Spot preemption GKE gives pods 15 of the 30 seconds' notice
#: (https://cloud.google.com/kubernetes-engine/docs/concepts/spot-vms#termination-graceful-shutdown).
SPOT_GRACE_SECONDS = 15

#: The cluster autoscaler removes a node whose pods request less than half its cpu and memory
#: (``--scale-down-utilization-threshold=0.5``). A protected step below that on its pool is the
#: only thing keeping the node alive, which the plan should say.
SCALE_DOWN_UTILIZATION = Decimal("0.5")


def _pool(name: str, cpu: str, memory: str, *, spot: bool, gpu: int = 0, accelerator: str | None = None) -> NodePool:
    taints = ((SPOT_TAINT,) if spot else ()) + ((GPU_TAINT,) if gpu else ())
    return NodePool(name=name, cpu=cpu, memory=memory, spot=spot, gpu=gpu, accelerator=accelerator, taints=taints)


def default_pools() -> tuple[NodePool, ...]:
    """The pools assumed when no ``[gokart_k8s.pools.*]`` section exists: a Spot and an on-demand
    pool of each size, enough for every built-in resource class.

    The quantities are the allocatable of one node, a little below the machine type's size
    (GKE reserves some for the kubelet and system pods): e2-standard-4, e2-standard-16,
    e2-highmem-8, n1-standard-8 with one T4, g2-standard-12 with one L4. Declare your real pools in
    ``luigi.cfg`` for a real cluster.
    """
    shapes: tuple[tuple[str, str, str, int, str | None, str], ...] = (
        ("small", "3920m", "13Gi", 0, None, "e2-standard-4"),
        ("large", "15890m", "57Gi", 0, None, "e2-standard-16"),
        ("highmem", "7910m", "57Gi", 0, None, "e2-highmem-8"),
        ("gpu-t4", "7910m", "26Gi", 1, "nvidia-tesla-t4", "n1-standard-8"),
        ("gpu-l4", "11900m", "42Gi", 1, "nvidia-l4", "g2-standard-12"),
    )
    return tuple(
        dataclasses.replace(
            _pool(f"{kind}-{shape}", cpu, memory, spot=kind == "spot", gpu=gpu, accelerator=acc),
            # GKE labels each node with its machine type; the rehearsal's nodes carry it too, so its
            # run report and cost lines can price them.
            labels={INSTANCE_TYPE_LABEL: machine},
        )
        for shape, cpu, memory, gpu, acc, machine in shapes
        for kind in ("spot", "ondemand")
    )


def _as_gke_shows_it(pool: NodePool) -> NodePool:
    """Add the labels GKE puts on every node of a pool, and the GPU taint it adds itself."""
    labels = {NODEPOOL_LABEL: pool.name}
    if pool.spot:
        labels[SPOT_LABEL] = "true"
    if pool.gpu and pool.accelerator:
        labels[ACCELERATOR_LABEL] = pool.accelerator
    labels.update(pool.labels)
    taints = pool.taints
    if pool.gpu and not any(t.key == GPU_RESOURCE for t in taints):
        taints = (*taints, GPU_TAINT)
    return dataclasses.replace(pool, labels=labels, taints=taints)


class GkeStandardProfile:
    """Places steps on GKE Standard node pools (see the module docstring)."""

    name = PLATFORM

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._configured = bool(settings.pools)
        self._pools = tuple(_as_gke_shows_it(p) for p in (settings.pools or default_pools()))

    def pools(self) -> tuple[NodePool, ...]:
        return self._pools

    def _suitable(self, spec: StepSpec, *, spot: bool) -> NodePool | None:
        return smallest(p for p in self._pools if p.spot == spot and suits(spec.resource_class, p))

    def choose_pool(self, spec: StepSpec, *, on_demand: bool = False) -> NodePool | None:
        """The smallest suitable pool of the right kind, or ``None`` when the step cannot run.

        Spot when :func:`wants_spot` (falling back to on-demand when no Spot pool suits); otherwise
        on-demand only. A tolerant step forced to on-demand stays on Spot when no on-demand pool
        suits, so the driver's fallback never makes a runnable step unrunnable.
        """
        if wants_spot(spec, on_demand=on_demand):
            return self._suitable(spec, spot=True) or self._suitable(spec, spot=False)
        chosen = self._suitable(spec, spot=False)
        if chosen is None and spec.eviction is Eviction.TOLERATE and spec.resource_class.spot:
            return self._suitable(spec, spot=True)
        return chosen

    def place(self, spec: StepSpec, *, on_demand: bool = False) -> Placement:
        pool = self.choose_pool(spec, on_demand=on_demand)
        if pool is None:
            raise PlanError(self.check(spec))
        rc = spec.resource_class
        selector = {NODEPOOL_LABEL: pool.name}
        tolerations = [toleration_for(t) for t in pool.taints]
        if pool.spot:
            selector[SPOT_LABEL] = "true"
            tolerations.append(SPOT_TOLERATION)
        if rc.gpu and rc.accelerator:
            selector[ACCELERATOR_LABEL] = rc.accelerator
            tolerations.append(GPU_TOLERATION)
        annotations: dict[str, str] = {}
        details: list[str] = []
        warnings: list[str] = []
        if spec.eviction is Eviction.PROTECT:
            annotations[SAFE_TO_EVICT] = "false"
            details.append("safe-to-evict=false")
            if self._underuses(spec, pool):
                warnings.append(
                    f"{step_title(spec)} is protected on pool {pool.name!r} ({pool.cpu} cpu, {pool.memory}) "
                    f"but requests less than half of a node, which is sized for bigger steps: while it "
                    f"runs, the autoscaler cannot remove that node. Add a smaller on-demand pool "
                    f"({need_phrase(rc)}) to pay less."
                )
        if on_demand and pool.spot:
            warnings.append(
                f"{step_title(spec)}: no on-demand pool suits {rc.describe()}, so the on-demand "
                f"fallback stays on Spot pool {pool.name!r}. Add an on-demand pool to make the fallback work."
            )
        if pool.spot:
            warnings += spot_grace_warning(
                spec,
                self._settings.termination_budget_seconds,
                SPOT_GRACE_SECONDS,
                f"runs on Spot, where GKE gives a pod {SPOT_GRACE_SECONDS} s after a preemption notice",
            )
        requests, limits = resources_for(rc)
        return Placement(
            pool=pool.name,
            spot=pool.spot,
            node_selector=selector,
            tolerations=merge_tolerations(tolerations),
            annotations=annotations,
            labels={LABEL_CAPACITY: "spot" if pool.spot else "on-demand", LABEL_POOL: pool.name},
            requests=requests,
            limits=limits,
            details=tuple(details),
            warnings=tuple(warnings),
        )

    def _underuses(self, spec: StepSpec, pool: NodePool) -> bool:
        """True when a protected step alone would not keep ``pool``'s node busy enough to stay, and
        the cluster has smaller pools of the same kind: nodes this size were meant for bigger steps."""
        rc = spec.resource_class
        cpu_share = rc.cpu_cores / parse_quantity(pool.cpu)
        memory_share = rc.memory_bytes / parse_quantity(pool.memory)
        if cpu_share >= SCALE_DOWN_UTILIZATION or memory_share >= SCALE_DOWN_UTILIZATION:
            return False
        same_kind = smallest(p for p in self._pools if p.gpu == pool.gpu and p.accelerator == pool.accelerator)
        return same_kind is not None and same_kind.name != pool.name

    def check(self, spec: StepSpec) -> list[str]:
        rc = spec.resource_class
        if self.choose_pool(spec) is not None:
            return []
        where = "the pools in luigi.cfg" if self._configured else "the default pools"
        head = f"{step_title(spec)} cannot run on platform {PLATFORM!r}"
        add_pool = f"add a pool [gokart_k8s.pools.NAME] with {need_phrase(rc)}"
        spot_fit = [p.name for p in self._pools if p.spot and suits(rc, p)]
        if spot_fit:
            # Only Spot pools suit: the step is protected, or its class forbids Spot.
            reason = (
                "protected steps run on on-demand nodes"
                if spec.eviction is Eviction.PROTECT
                else f"resource class {rc.name or 'one-off'!r} has spot=false"
            )
            fix = (
                "eviction='tolerate' (the step resumes from its last cached output)"
                if spec.eviction is Eviction.PROTECT
                else f"spot=true for {rc.name or 'the class'!r}"
            )
            return [
                f"{head}: {reason}, and of {where} only Spot pools suit {rc.describe()} "
                f"({', '.join(spot_fit)}). Change one: {fix}, or {add_pool} and spot=false."
            ]
        if rc.gpu and not any(p.accelerator == rc.accelerator for p in self._pools):
            gpu_pools = sorted({f"{p.accelerator} ({p.name})" for p in self._pools if p.gpu})
            return [
                f"{head}: none of {where} has {rc.accelerator!r} GPUs "
                f"(GPU pools: {', '.join(gpu_pools) or 'none'}). Change one: an accelerator a pool has, "
                f"or {add_pool}."
            ]
        same_kind = [p for p in self._pools if (p.gpu > 0) == (rc.gpu > 0)]
        largest = sorted(same_kind, key=pool_size)[-1:] or sorted(self._pools, key=pool_size)[-1:]
        shown = ", ".join(f"{p.name} ({p.cpu} cpu, {p.memory}, disk {p.ephemeral_storage})" for p in largest)
        return [
            f"{head}: no pool of {where} is big enough for {rc.describe()} "
            f"(the largest: {shown or 'none'}). Change one: a smaller resource class, or {add_pool}."
        ]
