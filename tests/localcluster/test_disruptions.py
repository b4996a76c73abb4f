"""Evictions, Spot preemptions and seeded chaos.

References: https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/,
https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions,
https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from gokart_k8s.localcluster import ChaosConfig, EvictionRefusedError, LocalCluster
from gokart_k8s.pools import NodePool
from tests.localcluster.conftest import condition, job_condition, job_manifest, pod_events, pod_manifest, wait_for

SPOT = [NodePool("spot", cpu="4", memory="8Gi", spot=True, labels={"cloud.google.com/gke-spot": "true"})]


def _running(core: client.CoreV1Api, name: str) -> bool:
    return bool(core.read_namespaced_pod(name, "default").status.phase == "Running")


def test_eviction_api_adds_disruption_target_and_terminates(
    local_cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    """Eviction: DisruptionTarget reason EvictionByEvictionAPI, then graceful deletion (api-eviction.md)."""
    core.create_namespaced_pod("default", pod_manifest("evictee", "sleep 30"))
    wait_for(lambda: _running(core, "evictee"), what="Running")
    rv = core.read_namespaced_pod("evictee", "default").metadata.resource_version
    core.create_namespaced_pod_eviction(
        "evictee",
        "default",
        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "evictee", "namespace": "default"}},
    )
    history = [
        (e["type"], e["object"])
        for e in pod_events(core, "evictee", rv, timeout=10)
        if e["type"] in ("MODIFIED", "DELETED")
    ]
    target = condition(history[0][1], "DisruptionTarget")
    assert (target.status, target.reason) == ("True", "EvictionByEvictionAPI")
    assert history[1][1].metadata.deletion_timestamp is not None
    assert history[-1][0] == "DELETED" and history[-1][1].status.phase == "Failed"
    assert [e.action for e in local_cluster.chaos_log] == ["evict"]


@pytest.mark.parametrize(
    "annotation", [{"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}, {"karpenter.sh/do-not-disrupt": "true"}]
)
def test_protected_pod_eviction_is_refused_with_429(
    local_cluster: LocalCluster, core: client.CoreV1Api, annotation: dict[str, str]
) -> None:
    core.create_namespaced_pod("default", pod_manifest("precious", "sleep 30", annotations=annotation))
    wait_for(lambda: _running(core, "precious"), what="Running")
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_eviction("precious", "default", {"metadata": {"name": "precious"}})
    assert err.value.status == 429 and json.loads(err.value.body)["reason"] == "TooManyRequests"
    with pytest.raises(EvictionRefusedError):
        local_cluster.evict_pod("default", "precious")
    assert _running(core, "precious")


def test_spot_preemption_fails_pods_with_termination_by_kubelet_and_node_returns(local_cluster_factory: Any) -> None:
    cluster: LocalCluster = local_cluster_factory(SPOT, node_return_seconds=0.5)
    core = client.CoreV1Api(cluster.api_client())
    batch = client.BatchV1Api(cluster.api_client())
    core.create_namespaced_pod(
        "default", pod_manifest("protected-but-spot", "sleep 30", annotations={"karpenter.sh/do-not-disrupt": "true"})
    )
    wait_for(lambda: _running(core, "protected-but-spot"), what="Running")
    spot_uid = core.read_node("spot-0").metadata.uid
    rv = core.read_namespaced_pod("protected-but-spot", "default").metadata.resource_version
    cluster.preempt_node("spot-0")
    final = next(e["object"] for e in pod_events(core, "protected-but-spot", rv, timeout=30) if e["type"] == "DELETED")
    target = condition(final, "DisruptionTarget")
    assert (final.status.phase, final.status.reason) == ("Failed", "Terminated")
    assert (target.status, target.reason) == ("True", "TerminationByKubelet")
    wait_for(lambda: (n := core.list_node().items) and n[0].metadata.uid != spot_uid, what="node back")
    batch.create_namespaced_job("default", job_manifest("after", "true"))
    wait_for(lambda: job_condition(batch, "after", "Complete"), what="job on the returned node")


def test_chaos_with_a_seed_is_reproducible(local_cluster_factory: Any) -> None:
    """Same seed and workload, same plan of disruptions."""
    plans = []
    for _ in range(2):
        cluster: LocalCluster = local_cluster_factory(
            SPOT, chaos=ChaosConfig(seed=7, rate=600.0), node_return_seconds=0.2
        )
        batch = client.BatchV1Api(cluster.api_client())
        rule = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
        for name in ("a", "b"):
            batch.create_namespaced_job(
                "default", job_manifest(name, "sleep 30", backoffLimit=0, podFailurePolicy=rule)
            )
        wait_for(lambda c=cluster: len(c.monkey.planned) >= 4, what="four planned disruptions")
        plans.append(sorted(cluster.monkey.planned)[:4])
        wait_for(lambda c=cluster: c.chaos_log, what="a disruption")
        cluster.stop()
    assert plans[0] == plans[1]
    assert {p[3] for p in plans[0]} <= {"evict", "preempt"}


def test_chaos_plans_a_steps_pods_alike_whatever_its_jobs_name(local_cluster_factory: Any) -> None:
    """A step's Job name hashes its cache and code package, which change from run to run; the
    chaos plan follows the step (its unique-id label), so the demo evicts the same steps each time."""
    delays = []
    for job in ("step-aaaa-cache1", "step-aaaa-cache2"):
        cluster: LocalCluster = local_cluster_factory(SPOT, chaos=ChaosConfig(seed=7, rate=1.0))
        batch = client.BatchV1Api(cluster.api_client())
        manifest = job_manifest(job, "sleep 30", backoffLimit=0)
        manifest["spec"]["template"]["metadata"] = {"labels": {"gokart-k8s.io/unique-id": "aaaa"}}
        batch.create_namespaced_job("default", manifest)
        wait_for(lambda c=cluster: c.monkey.planned, what="a planned disruption")
        delays.append([(owner, action, delay) for _ns, owner, _n, action, delay in cluster.monkey.planned])
        cluster.stop()
    assert delays[0] == delays[1] and delays[0][0][0] == "aaaa"


def test_chaos_config_refuses_negative_rate() -> None:
    with pytest.raises(ValueError, match="rate"):
        ChaosConfig(rate=-1)
