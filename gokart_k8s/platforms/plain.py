"""Plain: any Kubernetes cluster (kind, minikube, on-premises): resources only, no selectors.

Nothing is known about the cluster's nodes, so a step carries only its requests and limits and
the scheduler puts it on any node with room. There is no Spot: a tolerant step simply runs
anywhere, and still resumes from its cache when evicted.

A protected step carries ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``: a cluster
without an autoscaler ignores it, and any cluster running the open-source cluster autoscaler
honours it
(https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md#what-types-of-pods-can-prevent-ca-from-removing-a-node).
A GPU step tolerates the common ``nvidia.com/gpu`` taint; the GPU *type* cannot be chosen
without a node label, so on a cluster with several GPU types use a platform that selects it.

:meth:`PlainProfile.pools` is one default pool big enough for every CPU class of the catalog
(one node up from the start; plus one pool per accelerator the catalog names, from zero nodes and
tainted ``nvidia.com/gpu``), for the local cluster; ``[gokart_k8s.pools.*]`` sections, when
present, replace them and a step no declared pool can hold is refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from gokart_k8s.conventions import dns_label
from gokart_k8s.eviction import Eviction
from gokart_k8s.placement import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    LABEL_CAPACITY,
    SAFE_TO_EVICT,
    Placement,
    accelerator_nodes,
    holds,
    need_phrase,
    node_envelope,
    resources_for,
    step_title,
)
from gokart_k8s.pools import NodePool, Taint
from gokart_k8s.resources import ResourceClass
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec

PLATFORM = "plain"

#: What the default GPU pools' nodes carry, as GPU node pools usually do (GKE adds it itself; EKS
#: and Karpenter GPU pools are given it): only pods that tolerate it, i.e. GPU steps
#: (``GPU_TOLERATION``), land there, so a rehearsal's autoscaler never puts a CPU step on a GPU node.
GPU_TAINT = Taint(key=GPU_RESOURCE, value="present", effect="NoSchedule")


def default_pools(classes: Iterable[ResourceClass]) -> tuple[NodePool, ...]:
    """One ``default`` pool for every CPU class, one GPU pool per accelerator of the catalog.

    The default pool keeps one node up: a plain cluster (kind, minikube, on-premises) is never
    empty, so its first step does not wait for a node as a scale-from-zero cloud pool's would.
    GPU nodes are costly and scale from zero, as on a cloud.
    """
    classes = list(classes)
    cpu, memory = node_envelope(rc for rc in classes if not rc.gpu)
    pools = [NodePool(name="default", cpu=cpu, memory=memory, min_nodes=1)]
    for accelerator, cpu, memory, gpu in accelerator_nodes(classes):
        pools.append(
            NodePool(
                name=dns_label(f"gpu-{accelerator}"),
                cpu=cpu,
                memory=memory,
                gpu=gpu,
                accelerator=accelerator,
                taints=(GPU_TAINT,),
            )
        )
    return tuple(pools)


class PlainProfile:
    """Places steps on any cluster by resources alone (see the module docstring)."""

    name = PLATFORM

    def __init__(self, settings: Settings) -> None:
        self._declared = bool(settings.pools)
        self._pools = tuple(settings.pools) if settings.pools else default_pools(settings.catalog.values())

    def pools(self) -> tuple[NodePool, ...]:
        return self._pools

    def place(self, spec: StepSpec, *, on_demand: bool = False) -> Placement:
        # on_demand changes nothing: this profile never asks for Spot.
        rc = spec.resource_class
        requests, limits = resources_for(rc)
        annotations: dict[str, str] = {}
        details: list[str] = []
        if rc.gpu:
            details.append(f"{rc.gpu}x GPU")
        if spec.eviction is Eviction.PROTECT:
            annotations[SAFE_TO_EVICT] = "false"
            details.append("safe-to-evict=false")
        return Placement(
            pool=None,
            spot=False,
            tolerations=[dict(GPU_TOLERATION)] if rc.gpu else [],
            annotations=annotations,
            labels={LABEL_CAPACITY: "any"},
            requests=requests,
            limits=limits,
            summary="any node",
            details=tuple(details),
        )

    def check(self, spec: StepSpec) -> list[str]:
        if not self._declared:
            return []
        rc = spec.resource_class
        if holds(self._pools, rc, self.place(spec)):
            return []
        return [
            f"{step_title(spec)} cannot run on platform {PLATFORM!r}: no declared pool "
            f"([gokart_k8s.pools.*]) can hold {rc.describe()}. Change one: a resource class the declared "
            f"pools can hold, or declare a pool with {need_phrase(rc)}."
        ]
