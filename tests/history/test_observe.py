"""Pool, capacity type and machine type come from each platform's own node labels."""

from __future__ import annotations

from typing import Any

import pytest

from gokart_k8s.history.observe import attempt_facts, capacity_of, node_facts, pool_of, refine
from gokart_k8s.localcluster.cluster import node_manifest
from gokart_k8s.platforms import get_profile
from gokart_k8s.settings import PLATFORMS, Settings


def node(labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "n", "uid": "u", "labels": labels, "annotations": annotations or {}}}


@pytest.mark.parametrize(
    ("labels", "pool", "capacity"),
    [
        ({"cloud.google.com/gke-nodepool": "spot-small", "cloud.google.com/gke-spot": "true"}, "spot-small", "spot"),
        ({"cloud.google.com/gke-nodepool": "highmem"}, "highmem", "on-demand"),
        ({"cloud.google.com/gke-nodepool": "old", "cloud.google.com/gke-preemptible": "true"}, "old", "spot"),
        ({"karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": "spot"}, "default", "spot"),
        ({"karpenter.sh/nodepool": "default", "karpenter.sh/capacity-type": "on-demand"}, "default", "on-demand"),
        ({"eks.amazonaws.com/nodegroup": "ng", "eks.amazonaws.com/capacityType": "ON_DEMAND"}, "ng", "on-demand"),
        ({"eks.amazonaws.com/nodegroup": "ng", "eks.amazonaws.com/capacityType": "SPOT"}, "ng", "spot"),
        ({"kubernetes.io/hostname": "kind-worker"}, None, None),
    ],
)
def test_pool_and_capacity_type_are_read_from_the_platforms_node_labels(
    labels: dict[str, str], pool: str | None, capacity: str | None
) -> None:
    assert (pool_of(node(labels)), capacity_of(node(labels))) == (pool, capacity)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_local_cluster_node_names_its_pool_and_capacity_type(platform: str) -> None:
    profile = get_profile(Settings(platform=platform))
    for pool in profile.pools():
        facts = node_facts(node_manifest(pool, 0))
        assert (facts["pool"], facts["capacity_type"]) == (pool.name, "spot" if pool.spot else "on-demand")


def test_an_api_time_is_refined_by_an_observation_within_its_second_only() -> None:
    assert refine(100.0, 100.4) == 100.4
    assert refine(100.0, 103.0) == 100.0  # seen late: the API's time is closer to the truth
    assert refine(None, 100.4) is None


def test_a_pod_tells_its_node_requests_times_and_exit_code() -> None:
    pod = {
        "metadata": {
            "name": "train-abc",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"batch.kubernetes.io/job-name": "train", "gokart-k8s.io/capacity": "spot"},
        },
        "spec": {
            "nodeName": "spot-large-0",
            "containers": [{"resources": {"requests": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "1"}}}],
        },
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "state": {
                        "terminated": {
                            "exitCode": 143,
                            "startedAt": "2026-01-01T00:00:02Z",
                            "finishedAt": "2026-01-01T00:00:09Z",
                        }
                    }
                }
            ],
        },
    }
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    facts = attempt_facts(pod, node({"cloud.google.com/gke-nodepool": "spot-large"}), t0 + 60)
    assert facts["job"] == "train" and facts["node"] == "spot-large-0" and facts["pool"] == "spot-large"
    # The node has no Spot label but the pod was placed on Spot: the node's word wins.
    assert facts["capacity_type"] == "on-demand"
    assert (facts["cpu"], facts["memory"], facts["gpu"], facts["exit_code"]) == ("8", "16Gi", 1, 143)
    assert (facts["submitted"], facts["started"], facts["ended"]) == (t0, t0 + 2, t0 + 9)
    unknown_node = attempt_facts(pod, None, t0 + 60)
    assert unknown_node["capacity_type"] == "spot" and unknown_node["machine_type"] is None
