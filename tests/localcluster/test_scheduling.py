"""Nodes come from NodePools and the scheduler filters like kube-scheduler.

References: https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/,
https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/,
https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.pools import NodePool, Taint
from tests.localcluster.conftest import condition, pod_manifest, wait_for

POOLS = [
    NodePool("small", cpu="2", memory="4Gi", labels={"pool": "small"}, nodes=2),
    NodePool(
        "gpu",
        cpu="8",
        memory="32Gi",
        labels={"pool": "gpu"},
        gpu=1,
        taints=(Taint("nvidia.com/gpu", "present", "NoSchedule"),),
    ),
]


def _node_of(core: client.CoreV1Api, name: str) -> str:
    return wait_for(lambda: core.read_namespaced_pod(name, "default").spec.node_name, what=f"{name} bound")


def _unschedulable(core: client.CoreV1Api, name: str) -> Any:
    def check() -> Any:
        c = condition(core.read_namespaced_pod(name, "default"), "PodScheduled")
        return c if c is not None and c.status == "False" else None

    return wait_for(check, what=f"{name} Unschedulable")


def test_nodes_are_created_from_pools(local_cluster_factory: Any) -> None:
    cluster: LocalCluster = local_cluster_factory(POOLS)
    nodes = {n.metadata.name: n for n in client.CoreV1Api(cluster.api_client()).list_node().items}
    assert sorted(nodes) == ["gpu-0", "small-0", "small-1"]
    gpu = nodes["gpu-0"]
    assert gpu.metadata.labels["pool"] == "gpu" and gpu.metadata.labels["kubernetes.io/hostname"] == "gpu-0"
    assert gpu.status.allocatable["nvidia.com/gpu"] == "1"
    assert [(t.key, t.effect) for t in gpu.spec.taints] == [("nvidia.com/gpu", "NoSchedule")]


def test_pod_is_bound_only_where_selector_and_toleration_allow(local_cluster_factory: Any) -> None:
    cluster: LocalCluster = local_cluster_factory(POOLS)
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", pod_manifest("plain", "sleep 30"))
    core.create_namespaced_pod(
        "default",
        pod_manifest(
            "trainer",
            "sleep 30",
            nodeSelector={"pool": "gpu"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            resources={"limits": {"nvidia.com/gpu": "1"}},
        ),
    )
    core.create_namespaced_pod(
        "default",
        pod_manifest(
            "affine",
            "sleep 30",
            affinity={
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "pool", "operator": "NotIn", "values": ["gpu"]}]}
                        ]
                    }
                }
            },
        ),
    )
    assert _node_of(core, "plain").startswith("small-")
    assert _node_of(core, "trainer") == "gpu-0"
    assert _node_of(core, "affine").startswith("small-")
    scheduled = condition(core.read_namespaced_pod("trainer", "default"), "PodScheduled")
    assert scheduled.status == "True"


def test_pod_that_fits_nowhere_is_unschedulable_with_scheduler_message(local_cluster_factory: Any) -> None:
    """Pending, PodScheduled=False reason Unschedulable, "0/3 nodes are available: ..." and a FailedScheduling event."""
    cluster: LocalCluster = local_cluster_factory(POOLS)
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", pod_manifest("huge", "sleep 1", resources={"requests": {"memory": "8Gi"}}))
    c = _unschedulable(core, "huge")
    assert c.reason == "Unschedulable"
    assert c.message.startswith(
        "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present}, 2 Insufficient memory."
    )
    events = wait_for(
        lambda: core.list_namespaced_event("default", field_selector="reason=FailedScheduling").items,
        what="FailedScheduling event",
    )
    assert events[0].involved_object.name == "huge" and events[0].type == "Warning"
    assert core.read_namespaced_pod("huge", "default").status.phase == "Pending"


def test_pending_pod_is_scheduled_when_capacity_frees(local_cluster_factory: Any) -> None:
    cluster: LocalCluster = local_cluster_factory([NodePool("one", cpu="1", memory="1Gi")])
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", pod_manifest("first", "sleep 1", resources={"requests": {"cpu": "800m"}}))
    _node_of(core, "first")
    core.create_namespaced_pod("default", pod_manifest("second", "true", resources={"requests": {"cpu": "500m"}}))
    assert "Insufficient cpu" in _unschedulable(core, "second").message
    assert _node_of(core, "second") == "one-0"
