"""EKS with Karpenter: capacity type by node selector, protection by ``do-not-disrupt``.

Karpenter creates a node sized for the pending pods, so there is no pool to pin; a step says which
capacity type it wants and Karpenter picks the instance
(https://karpenter.sh/docs/concepts/scheduling/#well-known-labels):

* **tolerate** (class allows Spot): ``karpenter.sh/capacity-type: spot``. The cluster's Karpenter
  NodePool must allow ``spot`` in its requirements, or the pod stays pending.
* **protect**: ``karpenter.sh/capacity-type: on-demand`` and the pod annotation
  ``karpenter.sh/do-not-disrupt: "true"``, which Karpenter treats as "a single-pod, permanently
  blocking PDB": the node is not consolidated or drifted away while the step runs. It does not stop
  forceful disruption -- expiration (``expireAfter``, 720 h by default), Spot interruption, node
  repair -- after which the step resumes like a tolerant one
  (https://karpenter.sh/docs/concepts/disruption/#pod-level-controls).
* **GPUs**: ``karpenter.k8s.aws/instance-gpu-name`` (e.g. ``t4``, ``l4``, ``a10g``), plus the
  ``nvidia.com/gpu`` limit and a toleration for the usual ``nvidia.com/gpu`` taint of GPU NodePools
  (https://karpenter.sh/docs/reference/instance-types/). Resource classes use GKE's accelerator
  names so one catalog serves both clouds; :func:`gpu_name` maps them (``nvidia-tesla-t4`` ->
  ``t4``). A class may also name the AWS GPU directly (``accelerator = a10g``).

Nothing is refused on this platform by default: Karpenter has no 7-day limit and no fixed largest
node. As on Autopilot, :meth:`EksKarpenterProfile.pools` emulates Karpenter's nodes for the local
cluster (from the catalog), and ``[gokart_k8s.pools.*]`` sections, when present, replace the
emulation and restrict what placement may ask for.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from gokart_k8s.conventions import dns_label
from gokart_k8s.eviction import Eviction
from gokart_k8s.placement import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    LABEL_CAPACITY,
    Placement,
    accelerator_nodes,
    holds,
    merge_tolerations,
    need_phrase,
    node_envelope,
    resources_for,
    spot_grace_warning,
    step_title,
    suits,
    wants_spot,
)
from gokart_k8s.pools import NodePool, Taint
from gokart_k8s.resources import ResourceClass
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec

PLATFORM = "eks-karpenter"

CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
GPU_NAME_LABEL = "karpenter.k8s.aws/instance-gpu-name"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
GPU_TAINT = Taint(key=GPU_RESOURCE, value="true", effect="NoSchedule")

#: EC2 gives a Spot instance a 2-minute interruption notice, and Karpenter drains at once
#: (https://karpenter.sh/docs/concepts/disruption/#interruption).
SPOT_NOTICE_SECONDS = 120


def gpu_name(accelerator: str) -> str:
    """Karpenter's GPU name for an accelerator: ``nvidia-tesla-t4`` -> ``t4``,
    ``nvidia-a100-80gb`` -> ``a100``; a name without the ``nvidia-`` prefix is kept as it is."""
    name = accelerator.lower()
    if name.startswith("nvidia-"):
        name = re.sub(r"^nvidia-(tesla-)?", "", name)
        name = re.sub(r"-\d+gb$", "", name)
    return name


def _labelled(pool: NodePool) -> NodePool:
    """A pool's nodes as Karpenter labels them (capacity type, GPU name), GPU nodes tainted."""
    labels = {CAPACITY_TYPE_LABEL: "spot" if pool.spot else "on-demand"}
    taints = pool.taints
    if pool.gpu and pool.accelerator:
        labels[GPU_NAME_LABEL] = gpu_name(pool.accelerator)
        if not any(t.key == GPU_RESOURCE for t in taints):
            taints = (*taints, GPU_TAINT)
    labels.update(pool.labels)
    return dataclasses.replace(pool, labels=labels, taints=taints)


def emulated_pools(classes: Iterable[ResourceClass]) -> tuple[NodePool, ...]:
    """Nodes like the ones Karpenter would launch for these classes, Spot and on-demand of each."""
    classes = list(classes)
    shapes: list[tuple[str, str, str, int, str | None]] = []
    cpu, memory = node_envelope(rc for rc in classes if not rc.gpu)
    shapes.append(("general", cpu, memory, 0, None))
    for accelerator, cpu, memory, gpu in accelerator_nodes(classes):
        shapes.append((dns_label(f"gpu-{gpu_name(accelerator)}"), cpu, memory, gpu, accelerator))
    return tuple(
        _labelled(
            NodePool(
                name=f"{name}-{'spot' if spot else 'on-demand'}",
                cpu=cpu,
                memory=memory,
                gpu=gpu,
                accelerator=accelerator,
                spot=spot,
            )
        )
        for name, cpu, memory, gpu, accelerator in shapes
        for spot in (True, False)
    )


class EksKarpenterProfile:
    """Places steps on EKS nodes launched by Karpenter (see the module docstring)."""

    name = PLATFORM

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._declared = bool(settings.pools)
        if settings.pools:
            self._pools = tuple(_labelled(p) for p in settings.pools)
        else:
            self._pools = emulated_pools(settings.catalog.values())

    def pools(self) -> tuple[NodePool, ...]:
        return self._pools

    def place(self, spec: StepSpec, *, on_demand: bool = False) -> Placement:
        rc = spec.resource_class
        spot = wants_spot(spec, on_demand=on_demand)
        selector = {CAPACITY_TYPE_LABEL: "spot" if spot else "on-demand"}
        tolerations: list[dict[str, str]] = []
        details: list[str] = []
        warnings: list[str] = []
        if rc.gpu and rc.accelerator:
            selector[GPU_NAME_LABEL] = gpu_name(rc.accelerator)
            tolerations.append(GPU_TOLERATION)
            details.append(f"{rc.gpu}x {gpu_name(rc.accelerator)}")
        annotations: dict[str, str] = {}
        if spec.eviction is Eviction.PROTECT:
            annotations[DO_NOT_DISRUPT] = "true"
            details.append("do-not-disrupt")
        if spot:
            warnings += spot_grace_warning(
                spec,
                self._settings.termination_budget_seconds,
                SPOT_NOTICE_SECONDS,
                f"runs on Spot, which EC2 reclaims {SPOT_NOTICE_SECONDS} s after its notice",
            )
        requests, limits = resources_for(rc)
        return Placement(
            pool=None,
            spot=spot,
            node_selector=selector,
            tolerations=merge_tolerations(tolerations),
            annotations=annotations,
            labels={LABEL_CAPACITY: "spot" if spot else "on-demand"},
            requests=requests,
            limits=limits,
            summary=f"karpenter {'spot' if spot else 'on-demand'}",
            details=tuple(details),
            warnings=tuple(warnings),
        )

    def check(self, spec: StepSpec) -> list[str]:
        if not self._declared:
            return []
        rc = spec.resource_class
        placement = self.place(spec)
        if holds(self._pools, rc, placement):
            return []
        head = f"{step_title(spec)} cannot run on platform {PLATFORM!r}"
        name = rc.name or "one-off"
        capacity = placement.node_selector[CAPACITY_TYPE_LABEL]
        if spec.eviction is Eviction.PROTECT and any(suits(rc, p) and p.spot for p in self._pools):
            why = "protected steps run on on-demand nodes, and the declared pools offer it only as Spot"
            fix = "eviction='tolerate' (the step resumes from its last cached output)"
        elif not rc.spot and any(suits(rc, p) and p.spot for p in self._pools):
            why = f"resource class {name!r} has spot=false, and the declared pools offer it only as Spot"
            fix = f"spot=true for {name!r}"
        else:
            why = f"no declared pool ([gokart_k8s.pools.*]) offers {capacity} capacity that can hold it"
            fix = "a resource class the declared pools can hold"
        return [
            f"{head}: {rc.describe()}: {why}. Change one: {fix}, or declare a pool with {need_phrase(rc)} "
            f"and spot={'true' if capacity == 'spot' else 'false'}."
        ]
