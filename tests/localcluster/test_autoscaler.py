"""The embedded cluster autoscales: pools grow for pending pods, shrink by eviction, run out of Spot.

References: https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md (how
scale-up and scale-down work, what blocks it, the events), https://karpenter.sh/docs/concepts/disruption/
(interruption), https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/.

Every cluster here runs at ``time_scale=600``: ten minutes of autoscaler time pass in one second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.localcluster import LocalCluster, LocalClusterError
from gokart_k8s.localcluster import resources as r
from gokart_k8s.localcluster.autoscaler import Autoscaling
from gokart_k8s.localcluster.cluster import node_manifest
from gokart_k8s.pools import NodePool
from tests.localcluster.conftest import job_manifest, wait_for

FAST = 600.0
SAFE_TO_EVICT_FALSE = {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}


def make_job(
    name: str,
    cpu: str,
    *,
    seconds: int = 60,
    annotations: dict[str, str] | None = None,
    selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    pod: dict[str, Any] = {}
    if selector:
        pod["nodeSelector"] = selector
    manifest = job_manifest(
        name, f"sleep {seconds}", backoffLimit=6, resources={"requests": {"cpu": cpu, "memory": "1Gi"}}, pod=pod
    )
    if annotations:
        manifest["spec"]["template"]["metadata"] = {"annotations": annotations}
    return manifest


def pods_of(cluster: LocalCluster, job: str) -> list[dict[str, Any]]:
    pods, _ = cluster.store.list(r.POD, "default", lambda p: p["metadata"].get("labels", {}).get("job-name") == job)
    return pods


def running_on(cluster: LocalCluster, job: str) -> str | None:
    for pod in pods_of(cluster, job):
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp"):
            return str(pod["spec"]["nodeName"])
    return None


def events(cluster: LocalCluster, reason: str, involved: str | None = None) -> list[dict[str, Any]]:
    found, _ = cluster.store.list(
        r.EVENT,
        None,
        lambda e: e["reason"] == reason and (involved is None or e["involvedObject"]["name"] == involved),
    )
    return found


def test_a_pool_starts_at_its_minimum_grows_for_a_pending_pod_and_shrinks_when_it_is_empty(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    pools = [
        NodePool("base", cpu="2", memory="8Gi", min_nodes=1, max_nodes=1),
        NodePool("burst", cpu="4", memory="16Gi"),
    ]
    cluster = local_cluster_factory(pools=pools, autoscaling=Autoscaling(time_scale=FAST))
    assert cluster.node_names() == ["base-0"]
    cluster.store.create(r.JOB, make_job("work", "3", seconds=1), "default")
    node = wait_for(lambda: running_on(cluster, "work"), what="the pod running on a new node")
    assert node == "burst-0"
    (pod,) = pods_of(cluster, "work")
    (triggered,) = events(cluster, "TriggeredScaleUp", pod["metadata"]["name"])
    assert triggered["message"] == "pod triggered scale-up: [{burst 0->1 (max: 3)}]"
    assert triggered["source"]["component"] == "cluster-autoscaler"
    # The Job ends; the empty node goes (after the delay after scale-up and the unneeded time); the
    # pool minimum stays.
    wait_for(lambda: cluster.node_names() == ["base-0"], timeout=60, what="the empty burst node removed")
    assert events(cluster, "ScaleDownEmpty", "burst-0")
    lives = {life["node"]: life for life in cluster.node_lifetimes()}
    burst = lives["burst-0"]
    assert (burst["pool"], burst["machine_type"], burst["capacity_type"]) == ("burst", "4cpu-16Gi", "on-demand")
    assert burst["start"] < burst["end"]
    # Reported in cluster time: the wall-clock lifetime times time_scale.
    assert burst["hours"] == pytest.approx((burst["end"] - burst["start"]) * FAST / 3600)
    assert lives["base-0"]["end"] is None


def two_nodes(local_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    """Pool ``p`` at its minimum of one node, plus a second node of the pool added by hand."""
    pool = NodePool("p", cpu="4", memory="16Gi", min_nodes=1)
    cluster = local_cluster_factory(pools=[pool], autoscaling=Autoscaling(time_scale=FAST))
    cluster.store.create(r.NODE, node_manifest(pool, "p-extra"))
    return cluster


def test_scale_down_drains_an_underused_node_through_the_eviction_api_and_deletes_it(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = two_nodes(local_cluster_factory)
    cluster.store.create(r.JOB, make_job("a", "500m"), "default")
    wait_for(lambda: running_on(cluster, "a") == "p-0", what="a on p-0")
    cluster.store.create(r.JOB, make_job("b", "500m"), "default")
    wait_for(lambda: running_on(cluster, "b") == "p-extra", what="b on p-extra")
    (first,) = [p["metadata"]["name"] for p in pods_of(cluster, "a")]
    # Both nodes are under half used; one can go (the pool's minimum is one), so p-0 is drained:
    # a's pod is evicted and its Job's replacement runs on p-extra.
    wait_for(lambda: "p-0" not in cluster.node_names(), timeout=60, what="p-0 removed")
    wait_for(lambda: running_on(cluster, "a") == "p-extra", timeout=60, what="a's replacement on p-extra")
    evictions = [(e.action, e.pod, e.node, e.source) for e in cluster.chaos_log]
    assert ("evict", first, "p-0", "cluster-autoscaler") in evictions
    assert events(cluster, "ScaleDown", "p-0")[0]["message"] == "marked the node as toBeDeleted/unschedulable"
    assert events(cluster, "ScaleDown", first)[0]["message"] == "deleting pod for node scale down"


def test_a_safe_to_evict_false_pod_keeps_its_node_and_the_other_node_goes_instead(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    cluster = two_nodes(local_cluster_factory)
    cluster.store.create(r.JOB, make_job("a", "500m", annotations=SAFE_TO_EVICT_FALSE), "default")
    wait_for(lambda: running_on(cluster, "a") == "p-0", what="a on p-0")
    cluster.store.create(r.JOB, make_job("b", "500m"), "default")
    wait_for(lambda: running_on(cluster, "b") == "p-extra", what="b on p-extra")
    wait_for(lambda: events(cluster, "ScaleDownBlocked", "p-0"), what="p-0 blocked")
    assert "safe-to-evict" in events(cluster, "ScaleDownBlocked", "p-0")[0]["message"]
    wait_for(lambda: cluster.node_names() == ["p-0"], timeout=60, what="p-extra removed, p-0 kept")
    wait_for(lambda: running_on(cluster, "b") == "p-0", timeout=60, what="b's replacement on p-0")
    assert not [e for e in cluster.chaos_log if e.node == "p-0"]
    assert running_on(cluster, "a") == "p-0" and len(pods_of(cluster, "a")) == 1


def test_a_spot_stockout_keeps_the_pool_from_scaling_up_until_it_ends(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    spot = NodePool("spot", cpu="2", memory="8Gi", spot=True)
    cluster = local_cluster_factory(pools=[spot], autoscaling=Autoscaling(time_scale=FAST))
    cluster.stockout("spot", 1800)  # three seconds of wall time
    cluster.store.create(r.JOB, make_job("t", "1", seconds=1), "default")
    wait_for(lambda: events(cluster, "FailedToScaleUpGroup"), what="a failed scale-up")
    assert "ZONE_RESOURCE_POOL_EXHAUSTED" in events(cluster, "FailedToScaleUpGroup")[0]["message"]
    (pod,) = pods_of(cluster, "t")
    wait_for(lambda: events(cluster, "NotTriggerScaleUp", pod["metadata"]["name"]), what="the pod told why")
    assert events(cluster, "NotTriggerScaleUp", pod["metadata"]["name"])[0]["message"] == (
        "pod didn't trigger scale-up: 1 in backoff after failed scale-up"
    )
    assert cluster.node_names() == []
    wait_for(lambda: running_on(cluster, "t"), timeout=60, what="the pod running once the stockout is over")
    with pytest.raises(LocalClusterError, match="no node pool 'nope'"):
        cluster.stockout("nope", 1)


def test_karpenter_drains_a_spot_node_on_its_interruption_notice_do_not_disrupt_or_not(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    spot = NodePool("spot", cpu="2", memory="8Gi", spot=True, labels={"karpenter.sh/capacity-type": "spot"})
    cluster = local_cluster_factory(pools=[spot], autoscaling=Autoscaling(mode="karpenter", time_scale=FAST))
    cluster.store.create(r.JOB, make_job("t", "1", annotations={"karpenter.sh/do-not-disrupt": "true"}), "default")
    node = wait_for(lambda: running_on(cluster, "t"), what="t running")
    (first,) = [p["metadata"]["name"] for p in pods_of(cluster, "t")]
    assert events(cluster, "Nominated", first)[0]["message"] == f"Pod should schedule on: nodeclaim/{node}"
    cluster.preempt_node(node)
    wait_for(lambda: events(cluster, "SpotInterrupted", node), what="the interruption event")
    wait_for(lambda: node not in cluster.node_names(), timeout=60, what="the node reclaimed")
    replacement = wait_for(lambda: running_on(cluster, "t"), timeout=60, what="the step on a new node")
    assert replacement != node
    assert ("evict", first, node, "karpenter") in [(e.action, e.pod, e.node, e.source) for e in cluster.chaos_log]
    lives = {life["node"]: life for life in cluster.node_lifetimes()}
    assert lives[node]["capacity_type"] == "spot" and lives[node]["end"] is not None


def test_autopilot_gives_each_pod_its_own_node_billed_per_pod(
    local_cluster_factory: Callable[..., LocalCluster],
) -> None:
    pool = NodePool("general", cpu="8", memory="32Gi")
    cluster = local_cluster_factory(pools=[pool], autoscaling=Autoscaling(mode="autopilot", time_scale=FAST))
    cluster.store.create(r.JOB, make_job("x", "1"), "default")
    cluster.store.create(r.JOB, make_job("y", "2"), "default")
    x = wait_for(lambda: running_on(cluster, "x"), what="x running")
    y = wait_for(lambda: running_on(cluster, "y"), what="y running")
    assert x != y
    lives = {life["node"]: life for life in cluster.node_lifetimes()}
    assert (lives[x]["machine_type"], lives[y]["machine_type"]) == ("autopilot-1cpu-1Gi", "autopilot-2cpu-1Gi")
    assert lives[x]["billing"] == "pod"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_get_nodes_watch_shows_nodes_coming_and_going(
    local_cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    cluster = local_cluster_factory(
        pools=[NodePool("burst", cpu="2", memory="8Gi")], autoscaling=Autoscaling(time_scale=FAST)
    )
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    env = dict(os.environ, KUBECONFIG=str(config), HOME=str(tmp_path))
    watcher = subprocess.Popen(
        ["kubectl", "get", "nodes", "-w", "--output-watch-events"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watcher.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    flag = tmp_path / "done"
    try:
        # The pod holds its node until the flag: kubectl must be watching before the node can go
        # (a node added and removed before kubectl's first list would never show in its watch).
        job = make_job("w", "1")
        job["spec"]["template"]["spec"]["containers"][0]["command"] = [
            "sh",
            "-c",
            f"while [ ! -e {flag} ]; do sleep 0.1; done",
        ]
        cluster.store.create(r.JOB, job, "default")
        wait_for(
            lambda: ["ADDED", "burst-0"] in [line.split()[:2] for line in lines],
            timeout=60,
            what="kubectl shows the node added",
            failure=lambda: "".join(lines),
        )
        flag.touch()
        wait_for(
            lambda: any(line.split()[:2] == ["DELETED", "burst-0"] for line in lines),
            timeout=60,
            what="the node added then deleted",
            failure=lambda: "".join(lines),
        )
        assert ["ADDED", "burst-0"] in [line.split()[:2] for line in lines]
    finally:
        watcher.kill()
        watcher.wait(timeout=10)
