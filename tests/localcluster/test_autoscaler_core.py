"""The autoscalers' decisions, as pure functions: no cluster, no clock.

References: https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md (scale-up,
expanders, scale-down conditions and timers), https://karpenter.sh/docs/concepts/disruption/
(consolidation, do-not-disrupt), https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests.
"""

from __future__ import annotations

from typing import Any

import pytest

from gokart_k8s.localcluster.autoscaler import Autoscaling, LinearPrices, node_costs, node_hours
from gokart_k8s.localcluster.autoscaler.core import (
    NodeState,
    PoolView,
    autopilot_capacity,
    instance_types,
    plan_autopilot,
    plan_consolidation,
    plan_provisioning,
    plan_scale_down,
    plan_scale_up,
    unneeded_nodes,
)
from gokart_k8s.localcluster.cluster import node_manifest
from gokart_k8s.pools import NodePool, Taint

CA = Autoscaling()
SMALL = NodePool("small", cpu="4", memory="16Gi", max_nodes=3)
BIG = NodePool("big", cpu="16", memory="64Gi", max_nodes=2)
SPOT_TAINT = Taint("cloud.google.com/gke-spot", "true")


def pod(
    name: str,
    cpu: str,
    memory: str = "1Gi",
    *,
    annotations: dict[str, str] | None = None,
    owned: bool = True,
    selector: dict[str, str] | None = None,
    tolerations: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "default",
        "uid": f"uid-{name}",
        "annotations": annotations or {},
    }
    if owned:
        meta["ownerReferences"] = [
            {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": "j", "controller": True}
        ]
    spec: dict[str, Any] = {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"metadata": meta, "spec": spec, "status": {"phase": "Pending"}}


def view(pool: NodePool, size: int = 0, *, backing_off: bool = False) -> PoolView:
    return PoolView(pool, node_manifest(pool, f"{pool.name}-template"), size, backing_off)


def state(pool: NodePool, index: int, *pods: dict[str, Any]) -> NodeState:
    node = node_manifest(pool, index)
    return NodeState(node, list(pods))


# ------------------------------------------------------------------------------------------ scale-up


def test_least_waste_picks_the_pool_that_leaves_the_least_idle_cpu() -> None:
    ups, refused = plan_scale_up([pod("a", "3")], [view(SMALL), view(BIG)], [], CA)
    assert [(u.pool, u.count, u.pods) for u in ups] == [("small", 1, ("default/a",))]
    assert refused == []


def test_least_waste_packs_pending_pods_onto_as_few_nodes_as_the_pool_needs() -> None:
    ups, _ = plan_scale_up([pod("a", "10"), pod("b", "3")], [view(SMALL), view(BIG)], [], CA)
    # small cannot hold the 10-cpu pod; big holds both on one node, wasting 3/16 of its cpu.
    assert [(u.pool, u.count, sorted(u.pods)) for u in ups] == [("big", 1, ["default/a", "default/b"])]


def test_a_plain_platforms_default_node_is_up_and_cpu_steps_scale_up_its_pool_gpu_steps_their_gpu_pool() -> None:
    """The default GPU pools are tainted as GPU pools usually are, so least-waste, which would
    prefer a GPU pool's smaller node for a 1-cpu step, never puts a CPU step there."""
    from gokart_k8s.placement import GPU_TOLERATION
    from gokart_k8s.platforms.plain import PlainProfile
    from gokart_k8s.settings import load_settings

    pools = PlainProfile(load_settings()).pools()
    # A plain cluster is never empty: one default node from the start; GPU nodes from zero.
    assert {p.name: p.min_nodes for p in pools} == {"default": 1, **{p.name: 0 for p in pools if p.gpu}}
    views = [view(p) for p in pools]
    ups, _ = plan_scale_up([pod("cpu", "1", "4Gi")], views, [], CA)
    assert [u.pool for u in ups] == ["default"]
    gpu = pod("gpu", "1", "4Gi", tolerations=[dict(GPU_TOLERATION)])
    gpu["spec"]["containers"][0]["resources"]["limits"] = {"nvidia.com/gpu": "1"}
    ups, _ = plan_scale_up([gpu], views, [], CA)
    assert [u.pool for u in ups] and all(u.pool.startswith("gpu-") for u in ups)


def test_the_price_expander_prefers_the_cheaper_node_group() -> None:
    spot = NodePool("spot", cpu="16", memory="64Gi", spot=True, max_nodes=2)
    ondemand = NodePool("ondemand", cpu="16", memory="64Gi", max_nodes=2)
    ups, _ = plan_scale_up([pod("a", "2")], [view(ondemand), view(spot)], [], Autoscaling(expander="price"))
    assert ups[0].pool == "spot"
    # least-waste cannot tell them apart and goes by name.
    ups, _ = plan_scale_up([pod("a", "2")], [view(ondemand), view(spot)], [], CA)
    assert ups[0].pool == "ondemand"


def test_pods_that_fit_a_node_being_provisioned_or_an_existing_node_trigger_nothing() -> None:
    upcoming = node_manifest(SMALL, "small-9")
    assert plan_scale_up([pod("a", "3")], [view(SMALL, 1)], [upcoming], CA) == ([], [])
    existing = state(SMALL, 0, pod("x", "1"))
    assert plan_scale_up([pod("a", "3")], [view(SMALL, 1)], [], CA, [existing]) == ([], [])


def test_a_full_or_backing_off_group_does_not_scale_and_the_pod_is_told_why() -> None:
    ups, refused = plan_scale_up([pod("a", "3")], [view(SMALL, 3), view(BIG, 0, backing_off=True)], [], CA)
    assert ups == []
    assert [r.message for r in refused] == [
        "pod didn't trigger scale-up: 1 in backoff after failed scale-up, 1 max node group size reached"
    ]


def test_a_pod_no_pool_accepts_names_the_filter_that_refused_it() -> None:
    spot = NodePool("spot", cpu="4", memory="16Gi", spot=True, taints=(SPOT_TAINT,))
    _, refused = plan_scale_up([pod("a", "1")], [view(spot)], [], CA)
    assert refused[0].message == (
        "pod didn't trigger scale-up: 1 node(s) had untolerated taint {cloud.google.com/gke-spot: true}"
    )


# ------------------------------------------------------------------------------------------ scale-down


@pytest.mark.parametrize(
    ("cpu", "memory", "unneeded"),
    [("1", "1Gi", True), ("3", "1Gi", False), ("1", "12Gi", False)],
    ids=["both-under-half", "cpu-over-half", "memory-over-half"],
)
def test_a_node_is_unneeded_only_when_cpu_and_memory_requests_are_both_under_half(
    cpu: str, memory: str, unneeded: bool
) -> None:
    nodes = [state(SMALL, 0, pod("a", cpu, memory)), state(SMALL, 1)]
    found, _ = unneeded_nodes(nodes, {"small": 2}, {"small": 0}, 0.5)
    assert ("small-0" in found) is unneeded


@pytest.mark.parametrize(
    ("annotations", "owned", "why"),
    [
        ({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}, True, "safe-to-evict"),
        ({"karpenter.sh/do-not-disrupt": "true"}, True, "do-not-disrupt"),
        ({}, False, "not backed by a controller"),
    ],
)
def test_a_protected_or_unowned_pod_blocks_scale_down(annotations: dict[str, str], owned: bool, why: str) -> None:
    nodes = [state(SMALL, 0, pod("a", "1", annotations=annotations, owned=owned)), state(SMALL, 1)]
    found, blocked = unneeded_nodes(nodes, {"small": 2}, {"small": 0}, 0.5)
    assert "small-0" not in found
    assert [(b.node, b.pod) for b in blocked] == [("small-0", "default/a")] and why in blocked[0].why


def test_a_node_whose_pods_fit_nowhere_else_or_that_the_pool_minimum_needs_stays() -> None:
    lonely = [state(SMALL, 0, pod("a", "1"))]
    assert unneeded_nodes(lonely, {"small": 1}, {"small": 0}, 0.5)[0] == set()
    empty = [state(SMALL, 0)]
    assert unneeded_nodes(empty, {"small": 1}, {"small": 1}, 0.5)[0] == set()
    assert unneeded_nodes(empty, {"small": 1}, {"small": 0}, 0.5)[0] == {"small-0"}


def test_scale_down_waits_for_the_unneeded_time_and_the_delay_after_a_scale_up() -> None:
    nodes = [state(SMALL, 0), state(SMALL, 1, pod("a", "1")), state(SMALL, 2, pod("b", "1"))]
    since = {"small-0": 0.0, "small-1": 0.0}
    assert plan_scale_down(nodes, since, 599.0, None, None, CA) == []
    assert plan_scale_down(nodes, since, 700.0, 200.0, None, CA) == []  # 10 min after a scale-up
    assert plan_scale_down(nodes, since, 700.0, None, 600.0, CA) == []  # 3 min after a failed scale-down
    # Empty nodes first, in bulk; a busy one alone, with its pods to evict.
    assert [(d.node, d.reason) for d in plan_scale_down(nodes, since, 700.0, None, None, CA)] == [("small-0", "empty")]
    (down,) = plan_scale_down(nodes[1:], since, 700.0, None, None, CA)
    assert (down.node, down.reason, down.pods) == ("small-1", "underutilized", ("default/a",))


# ------------------------------------------------------------------------------------------ karpenter


def test_karpenter_launches_the_cheapest_instance_type_that_holds_the_pods_per_capacity_type() -> None:
    spot = NodePool("general-spot", cpu="16", memory="64Gi", spot=True, labels={"karpenter.sh/capacity-type": "spot"})
    ondemand = NodePool(
        "general-on-demand", cpu="16", memory="64Gi", labels={"karpenter.sh/capacity-type": "on-demand"}
    )
    views = [view(spot), view(ondemand)]
    types = {p.name: instance_types(p, v.template, CA.prices) for p, v in ((spot, views[0]), (ondemand, views[1]))}
    assert [t.name for t in types["general-spot"]] == ["1cpu-4Gi", "2cpu-8Gi", "4cpu-16Gi", "8cpu-32Gi", "16cpu-64Gi"]
    pending = [
        pod("tolerant", "3", "4Gi", selector={"karpenter.sh/capacity-type": "spot"}),
        pod("protected", "1", "2Gi", selector={"karpenter.sh/capacity-type": "on-demand"}),
    ]
    launches, refused = plan_provisioning(pending, views, types, [])
    assert refused == []
    assert sorted((u.pool, u.machine_type, u.pods) for u in launches) == [
        ("general-on-demand", "1cpu-4Gi", ("default/protected",)),
        ("general-spot", "4cpu-16Gi", ("default/tolerant",)),
    ]


def test_karpenter_consolidates_empty_then_underutilized_nodes_but_not_do_not_disrupt_ones() -> None:
    pool = NodePool("od", cpu="8", memory="32Gi", max_nodes=5)
    types = {"od": instance_types(pool, node_manifest(pool, "t"), CA.prices)}
    settled = {"od-0": 0.0, "od-1": 0.0, "od-2": 0.0}
    empty = [state(pool, 0), state(pool, 1, pod("a", "1"))]
    downs, _ = plan_consolidation(empty, settled, 0.0, types, {}, CA)
    assert [(d.node, d.reason) for d in downs] == [("od-0", "empty")]
    # consolidateAfter: nothing happens before it has passed since the node's last pod change.
    assert plan_consolidation(empty, settled, 5.0, types, {}, Autoscaling(consolidate_after_seconds=60))[0] == []
    # A node whose pod fits on another node is deleted...
    two = [state(pool, 1, pod("a", "1")), state(pool, 2, pod("b", "4"))]
    downs, _ = plan_consolidation(two, settled, 0.0, types, {}, CA)
    assert [(d.node, d.reason, d.pods) for d in downs] == [("od-1", "underutilized", ("default/a",))]
    # ... unless a pod on it is do-not-disrupt (the other node's pod still moves onto it).
    guarded = [
        state(pool, 1, pod("a", "1", annotations={"karpenter.sh/do-not-disrupt": "true"})),
        state(pool, 2, pod("b", "4")),
    ]
    downs, blocked = plan_consolidation(guarded, settled, 0.0, types, {}, CA)
    assert [(b.node, b.pod) for b in blocked] == [("od-1", "default/a")]
    assert [(d.node, d.reason) for d in downs] == [("od-2", "underutilized")]
    # A lone on-demand node bigger than its pods need is replaced by a cheaper instance type.
    downs, _ = plan_consolidation([state(pool, 2, pod("b", "4"))], settled, 0.0, types, {}, CA)
    assert [(d.node, d.reason) for d in downs] == [("od-2", "replace")]
    # Spot-to-spot replacement needs a feature gate: a lone Spot node stays.
    assert plan_consolidation([state(pool, 2, pod("b", "4"))], settled, 0.0, types, {"od-2": True}, CA)[0] == []
    # WhenEmpty leaves busy nodes alone.
    assert plan_consolidation(two, settled, 0.0, types, {}, Autoscaling(consolidation_policy="WhenEmpty"))[0] == []


# ------------------------------------------------------------------------------------------ autopilot


def test_autopilot_gives_each_pod_a_node_sized_to_its_requests_in_the_pool_its_selector_asks_for() -> None:
    general = NodePool("general", cpu="8", memory="32Gi")
    spot = NodePool(
        "general-spot",
        cpu="8",
        memory="32Gi",
        spot=True,
        labels={"cloud.google.com/gke-spot": "true"},
        taints=(SPOT_TAINT,),
    )
    toleration = [{"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    pending = [
        pod("a", "300m", "1Gi"),
        pod("b", "2", "4Gi", selector={"cloud.google.com/gke-spot": "true"}, tolerations=toleration),
    ]
    launches, refused = plan_autopilot(pending, [view(general), view(spot)], set())
    assert refused == []
    assert sorted((u.pool, u.capacity and u.capacity["cpu"], u.machine_type) for u in launches) == [
        ("general", "500m", "autopilot-500mcpu-1Gi"),
        ("general-spot", "2", "autopilot-2cpu-4Gi"),
    ]
    assert autopilot_capacity(pod("c", "100m", "100Mi"))["memory"] == "512Mi"  # raised to the minimum
    assert plan_autopilot(pending, [view(general), view(spot)], {"default/a", "default/b"}) == ([], [])


# ------------------------------------------------------------------------------------------ ledger


def test_node_hours_and_costs_add_up_lifetimes_by_pool() -> None:
    lives = [
        {
            "pool": "a",
            "machine_type": "4cpu-16Gi",
            "capacity_type": "on-demand",
            "hours": 2.0,
            "allocatable": {"cpu": "4", "memory": "16Gi"},
        },
        {
            "pool": "a",
            "machine_type": "4cpu-16Gi",
            "capacity_type": "on-demand",
            "hours": 1.0,
            "allocatable": {"cpu": "4", "memory": "16Gi"},
        },
        {
            "pool": "b",
            "machine_type": "4cpu-16Gi",
            "capacity_type": "spot",
            "hours": 3.0,
            "allocatable": {"cpu": "4", "memory": "16Gi"},
        },
    ]
    assert node_hours(lives) == {("a",): 3.0, ("b",): 3.0}
    prices = LinearPrices(cpu_hour=0.25, gib_hour=0.0, spot_share=0.5)
    assert node_costs(lives, prices) == {"a": 3.0, "b": 1.5}
