"""Placement: every platform x built-in resource class x eviction tolerance lands where it should."""

from __future__ import annotations

import pytest

from gokart_k8s.eviction import Eviction
from gokart_k8s.placement import GPU_RESOURCE, accepts, smallest, suits
from gokart_k8s.platforms import PROFILES, get_profile
from gokart_k8s.platforms.eks_karpenter import gpu_name
from gokart_k8s.pools import NodePool
from gokart_k8s.resources import BUILTIN_CLASSES, ResourceClass

from .specimens import COMBINATION_IDS, COMBINATIONS, make_spec, settings_for

#: What marks a protected step on each platform.
PROTECT_MARKER = {
    "gke-standard": ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false"),
    "gke-autopilot": ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false"),
    "eks-karpenter": ("karpenter.sh/do-not-disrupt", "true"),
    "plain": ("cluster-autoscaler.kubernetes.io/safe-to-evict", "false"),
}
SPOT_SELECTOR = {
    "gke-standard": ("cloud.google.com/gke-spot", "true"),
    "gke-autopilot": ("cloud.google.com/gke-spot", "true"),
    "eks-karpenter": ("karpenter.sh/capacity-type", "spot"),
}
GKE_SPOT_TOLERATION = {
    "key": "cloud.google.com/gke-spot",
    "operator": "Equal",
    "value": "true",
    "effect": "NoSchedule",
}


@pytest.mark.parametrize(("platform", "class_name", "eviction"), COMBINATIONS, ids=COMBINATION_IDS)
class TestEveryCombination:
    def test_protected_steps_never_run_on_spot_and_tolerant_ones_do_where_the_platform_has_spot(
        self, platform: str, class_name: str, eviction: Eviction
    ) -> None:
        placement = get_profile(settings_for(platform)).place(make_spec(class_name, eviction))
        expect_spot = eviction is Eviction.TOLERATE and platform != "plain"
        assert placement.spot is expect_spot
        if platform in SPOT_SELECTOR:
            key, value = SPOT_SELECTOR[platform]
            assert (placement.node_selector.get(key) == value) is expect_spot

    def test_protected_steps_carry_the_platforms_do_not_evict_marker_and_tolerant_ones_do_not(
        self, platform: str, class_name: str, eviction: Eviction
    ) -> None:
        placement = get_profile(settings_for(platform)).place(make_spec(class_name, eviction))
        key, value = PROTECT_MARKER[platform]
        if eviction is Eviction.PROTECT:
            assert placement.annotations[key] == value
        else:
            assert placement.annotations == {}

    def test_the_placement_schedules_onto_a_pool_the_profile_offers(
        self, platform: str, class_name: str, eviction: Eviction
    ) -> None:
        profile = get_profile(settings_for(platform))
        spec = make_spec(class_name, eviction)
        placement = profile.place(spec)
        landing = [p for p in profile.pools() if suits(spec.resource_class, p) and accepts(p, placement)]
        assert landing, f"{placement} lands on none of {profile.pools()}"
        assert all(p.spot == placement.spot for p in landing) or platform == "plain"

    def test_built_in_classes_pass_the_check_with_default_configuration(
        self, platform: str, class_name: str, eviction: Eviction
    ) -> None:
        assert get_profile(settings_for(platform)).check(make_spec(class_name, eviction)) == []

    def test_requests_cpu_and_memory_and_limits_memory_and_gpus_but_never_cpu(
        self, platform: str, class_name: str, eviction: Eviction
    ) -> None:
        rc = BUILTIN_CLASSES[class_name]
        placement = get_profile(settings_for(platform)).place(make_spec(class_name, eviction))
        assert placement.requests == {"cpu": rc.cpu, "memory": rc.memory}
        expected_limits = {"memory": rc.memory} | ({GPU_RESOURCE: str(rc.gpu)} if rc.gpu else {})
        assert placement.limits == expected_limits

    def test_gpu_steps_tolerate_the_gpu_taint_and_cpu_steps_do_not(
        self, platform: str, class_name: str, eviction: Eviction
    ) -> None:
        placement = get_profile(settings_for(platform)).place(make_spec(class_name, eviction))
        gpu_toleration = {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}
        assert (gpu_toleration in placement.tolerations) is bool(BUILTIN_CLASSES[class_name].gpu)

    def test_forcing_on_demand_never_lands_on_spot(self, platform: str, class_name: str, eviction: Eviction) -> None:
        placement = get_profile(settings_for(platform)).place(make_spec(class_name, eviction), on_demand=True)
        assert placement.spot is False

    def test_placement_is_a_pure_function_of_the_step(self, platform: str, class_name: str, eviction: Eviction) -> None:
        settings = settings_for(platform)
        spec = make_spec(class_name, eviction)
        assert get_profile(settings).place(spec) == get_profile(settings).place(spec)


# --- gke-standard -------------------------------------------------------------------------------


@pytest.mark.parametrize(("class_name", "eviction"), [(c, e) for c in BUILTIN_CLASSES for e in Eviction])
def test_gke_standard_picks_the_smallest_suitable_pool_of_the_right_kind(class_name: str, eviction: Eviction) -> None:
    profile = get_profile(settings_for("gke-standard"))
    spec = make_spec(class_name, eviction)
    placement = profile.place(spec)
    want_spot = eviction is Eviction.TOLERATE
    candidates = [p for p in profile.pools() if p.spot == want_spot and suits(spec.resource_class, p)]
    best = smallest(candidates)
    assert best is not None
    assert placement.pool == best.name
    assert placement.node_selector["cloud.google.com/gke-nodepool"] == best.name


def test_gke_standard_tolerant_steps_get_the_spot_selector_and_toleration() -> None:
    placement = get_profile(settings_for("gke-standard")).place(make_spec("small"))
    assert placement.node_selector == {
        "cloud.google.com/gke-nodepool": "spot-small",
        "cloud.google.com/gke-spot": "true",
    }
    assert placement.tolerations == [GKE_SPOT_TOLERATION]
    assert placement.describe() == "pool spot-small (Spot)"


def test_gke_standard_protected_steps_pin_an_on_demand_pool_and_block_scale_down() -> None:
    placement = get_profile(settings_for("gke-standard")).place(make_spec("small", Eviction.PROTECT))
    assert placement.node_selector == {"cloud.google.com/gke-nodepool": "ondemand-small"}
    assert placement.tolerations == []
    assert placement.annotations == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert placement.describe() == "pool ondemand-small (on-demand), safe-to-evict=false"


def test_gke_standard_gpu_steps_select_the_accelerator_and_tolerate_the_gpu_taint() -> None:
    placement = get_profile(settings_for("gke-standard")).place(make_spec("gpu-t4"))
    assert placement.node_selector["cloud.google.com/gke-accelerator"] == "nvidia-tesla-t4"
    assert placement.pool == "spot-gpu-t4"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in placement.tolerations
    assert placement.limits["nvidia.com/gpu"] == "1"


def test_gke_standard_a_class_that_forbids_spot_runs_on_demand_even_when_tolerant() -> None:
    no_spot = ResourceClass(cpu="1", memory="4Gi", spot=False, name="steady")
    placement = get_profile(settings_for("gke-standard")).place(make_spec(no_spot))
    assert placement.pool == "ondemand-small"
    assert placement.spot is False


def test_gke_standard_the_on_demand_fallback_moves_a_tolerant_step_to_the_on_demand_twin() -> None:
    placement = get_profile(settings_for("gke-standard")).place(make_spec("highcpu"), on_demand=True)
    assert placement.pool == "ondemand-large"
    assert "cloud.google.com/gke-spot" not in placement.node_selector


POOLS_SMALL_AND_HUGE = (
    NodePool(name="spot-small", cpu="4", memory="16Gi", spot=True),
    NodePool(name="ondemand-small", cpu="4", memory="16Gi"),
    NodePool(name="ondemand-huge", cpu="96", memory="384Gi"),
)


def test_a_protected_small_step_never_lands_on_a_pool_meant_for_big_steps() -> None:
    profile = get_profile(settings_for("gke-standard", pools=POOLS_SMALL_AND_HUGE))
    placement = profile.place(make_spec("small", Eviction.PROTECT))
    assert placement.pool == "ondemand-small"
    assert placement.node_selector["cloud.google.com/gke-nodepool"] == "ondemand-small"
    big = profile.place(make_spec(ResourceClass(cpu="32", memory="128Gi", name="huge"), Eviction.PROTECT))
    assert big.pool == "ondemand-huge"


def test_a_protected_small_step_forced_onto_a_big_pool_is_warned_about() -> None:
    pools = (
        NodePool(name="spot-small", cpu="4", memory="16Gi", spot=True),
        NodePool(name="od-huge", cpu="96", memory="384Gi"),
    )
    placement = get_profile(settings_for("gke-standard", pools=pools)).place(make_spec("small", Eviction.PROTECT))
    assert placement.pool == "od-huge"
    assert any("Add a smaller on-demand pool" in w for w in placement.warnings)


def test_gke_standard_configured_pools_replace_the_defaults_and_get_the_labels_gke_sets() -> None:
    pools = (
        NodePool(name="cheap", cpu="8", memory="32Gi", spot=True, labels={"team": "ml"}),
        NodePool(name="gpu", cpu="8", memory="32Gi", gpu=1, accelerator="nvidia-l4"),
    )
    offered = {p.name: p for p in get_profile(settings_for("gke-standard", pools=pools)).pools()}
    assert set(offered) == {"cheap", "gpu"}
    assert offered["cheap"].labels == {
        "cloud.google.com/gke-nodepool": "cheap",
        "cloud.google.com/gke-spot": "true",
        "team": "ml",
    }
    assert offered["gpu"].labels["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert [t.key for t in offered["gpu"].taints] == ["nvidia.com/gpu"]


def test_gke_standard_default_spot_pools_carry_the_label_and_taint_their_placements_expect() -> None:
    for pool in get_profile(settings_for("gke-standard")).pools():
        assert (pool.labels.get("cloud.google.com/gke-spot") == "true") is pool.spot
        assert any(t.key == "cloud.google.com/gke-spot" and t.value == "true" for t in pool.taints) is pool.spot


def test_gke_standard_warns_when_the_checkpoint_budget_exceeds_the_spot_grace_period() -> None:
    settings = settings_for("gke-standard", termination_budget_seconds=20.0)
    placement = get_profile(settings).place(make_spec("small"))
    assert any("15 s" in w and "termination_budget_seconds" in w for w in placement.warnings)


# --- gke-autopilot ------------------------------------------------------------------------------


def test_autopilot_small_steps_use_the_default_general_purpose_class_without_a_selector() -> None:
    placement = get_profile(settings_for("gke-autopilot")).place(make_spec("standard"))
    assert placement.node_selector == {"cloud.google.com/gke-spot": "true"}
    assert placement.tolerations == [GKE_SPOT_TOLERATION]
    assert placement.describe() == "Autopilot Spot, compute-class general-purpose"


def test_autopilot_memory_heavy_steps_select_the_balanced_compute_class() -> None:
    placement = get_profile(settings_for("gke-autopilot")).place(make_spec("highmem"))
    assert placement.node_selector["cloud.google.com/compute-class"] == "Balanced"
    assert placement.describe() == "Autopilot Spot, compute-class Balanced"


def test_autopilot_protected_steps_ask_for_extended_run_time_on_demand() -> None:
    spec = make_spec("standard", Eviction.PROTECT, max_runtime_seconds=3600)
    placement = get_profile(settings_for("gke-autopilot")).place(spec)
    assert placement.node_selector == {}
    assert placement.annotations == {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}
    assert placement.describe() == "Autopilot on-demand, compute-class general-purpose, extended run time"
    assert placement.warnings == ()


def test_autopilot_warns_that_a_protected_step_without_max_runtime_is_protected_for_7_days_only() -> None:
    placement = get_profile(settings_for("gke-autopilot")).place(make_spec("standard", Eviction.PROTECT))
    assert any("at most 7 days" in w for w in placement.warnings)


def test_autopilot_gpu_steps_select_accelerator_and_count() -> None:
    placement = get_profile(settings_for("gke-autopilot")).place(make_spec("gpu-l4", Eviction.PROTECT))
    assert placement.node_selector == {
        "cloud.google.com/gke-accelerator": "nvidia-l4",
        "cloud.google.com/gke-accelerator-count": "1",
    }


def test_autopilot_warns_when_the_checkpoint_budget_exceeds_the_25_second_spot_grace() -> None:
    settings = settings_for("gke-autopilot", termination_budget_seconds=30.0)
    assert any("25 s" in w for w in get_profile(settings).place(make_spec("small")).warnings)
    quiet = get_profile(settings_for("gke-autopilot", termination_budget_seconds=20.0))
    assert quiet.place(make_spec("small")).warnings == ()


# --- eks-karpenter ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accelerator", "name"),
    [("nvidia-tesla-t4", "t4"), ("nvidia-l4", "l4"), ("nvidia-a100-80gb", "a100"), ("a10g", "a10g")],
)
def test_karpenter_gpu_names_follow_aws_spelling(accelerator: str, name: str) -> None:
    assert gpu_name(accelerator) == name


def test_karpenter_selects_capacity_type_and_gpu_name() -> None:
    profile = get_profile(settings_for("eks-karpenter"))
    tolerant = profile.place(make_spec("gpu-t4"))
    assert tolerant.node_selector == {
        "karpenter.sh/capacity-type": "spot",
        "karpenter.k8s.aws/instance-gpu-name": "t4",
    }
    protected = profile.place(make_spec("small", Eviction.PROTECT))
    assert protected.node_selector == {"karpenter.sh/capacity-type": "on-demand"}
    assert protected.describe() == "karpenter on-demand, do-not-disrupt"


# --- plain --------------------------------------------------------------------------------------


def test_plain_places_by_resources_alone() -> None:
    placement = get_profile(settings_for("plain")).place(make_spec("highcpu"))
    assert placement.node_selector == {}
    assert placement.tolerations == []
    assert placement.describe() == "any node"


def test_every_platform_has_a_profile_named_after_it() -> None:
    for name, factory in PROFILES.items():
        assert factory(settings_for(name)).name == name
