"""Refusals: impossible combinations are reported before submission, all at once, saying what to change."""

from __future__ import annotations

import configparser

import pytest

from gokart_k8s.errors import ConfigurationError, PlanError
from gokart_k8s.eviction import Eviction
from gokart_k8s.platforms import check_steps, get_profile
from gokart_k8s.pools import NodePool
from gokart_k8s.resources import ResourceClass
from gokart_k8s.settings import load_settings

from .specimens import make_spec, settings_for

EIGHT_DAYS = 8 * 24 * 3600
A100 = ResourceClass(cpu="12", memory="85Gi", gpu=1, accelerator="nvidia-tesla-a100", name="gpu-a100")
GIANT = ResourceClass(cpu="300", memory="1000Gi", name="giant")
SPOT_ONLY_T4 = (
    NodePool(name="cpu", cpu="16", memory="64Gi"),
    NodePool(name="cpu-spot", cpu="16", memory="64Gi", spot=True),
    NodePool(name="t4-spot", cpu="8", memory="32Gi", gpu=1, accelerator="nvidia-tesla-t4", spot=True),
)


def assert_full_message(message: str, *, step: str, resource_class: str, platform: str) -> None:
    assert message.startswith(f"Step {step} (resource class {resource_class!r}, eviction=")
    assert f"cannot run on platform {platform!r}" in message
    assert "Change one:" in message


def test_autopilot_refuses_a_protected_step_longer_than_seven_days() -> None:
    spec = make_spec("standard", Eviction.PROTECT, family="Backfill", max_runtime_seconds=EIGHT_DAYS)
    [problem] = get_profile(settings_for("gke-autopilot")).check(spec)
    assert_full_message(problem, step="Backfill", resource_class="standard", platform="gke-autopilot")
    assert "at most 7 days" in problem
    assert "eviction='tolerate'" in problem


def test_autopilot_accepts_the_same_long_step_when_it_tolerates_eviction() -> None:
    spec = make_spec("standard", Eviction.TOLERATE, max_runtime_seconds=EIGHT_DAYS)
    assert get_profile(settings_for("gke-autopilot")).check(spec) == []


def test_autopilot_refuses_protection_where_the_declared_capacity_is_spot_only() -> None:
    profile = get_profile(settings_for("gke-autopilot", pools=SPOT_ONLY_T4))
    [problem] = profile.check(make_spec("gpu-t4", Eviction.PROTECT))
    assert_full_message(problem, step="TrainModel", resource_class="gpu-t4", platform="gke-autopilot")
    assert "Autopilot does not honour safe-to-evict on Spot pods" in problem
    assert "eviction='tolerate' (the step resumes from its last cached output)" in problem
    assert profile.check(make_spec("gpu-t4", Eviction.TOLERATE)) == []


def test_autopilot_refuses_a_class_bigger_than_any_autopilot_pod() -> None:
    [problem] = get_profile(settings_for("gke-autopilot")).check(make_spec(GIANT))
    assert_full_message(problem, step="TrainModel", resource_class="giant", platform="gke-autopilot")
    assert "Balanced" in problem


def test_gke_standard_refuses_a_gpu_type_no_pool_offers_and_names_the_offered_ones() -> None:
    [problem] = get_profile(settings_for("gke-standard")).check(make_spec(A100))
    assert_full_message(problem, step="TrainModel", resource_class="gpu-a100", platform="gke-standard")
    assert "'nvidia-tesla-a100'" in problem
    assert "nvidia-tesla-t4 (ondemand-gpu-t4)" in problem
    assert "[gokart_k8s.pools.NAME]" in problem


def test_gke_standard_refuses_a_class_bigger_than_every_pool() -> None:
    [problem] = get_profile(settings_for("gke-standard")).check(make_spec(GIANT))
    assert_full_message(problem, step="TrainModel", resource_class="giant", platform="gke-standard")
    assert "big enough" in problem
    assert "at least 300 cpu" in problem


def test_gke_standard_refuses_a_protected_step_when_only_spot_pools_suit() -> None:
    pools = (NodePool(name="spot-only", cpu="8", memory="32Gi", spot=True),)
    profile = get_profile(settings_for("gke-standard", pools=pools))
    [problem] = profile.check(make_spec("standard", Eviction.PROTECT))
    assert_full_message(problem, step="TrainModel", resource_class="standard", platform="gke-standard")
    assert "only Spot pools suit" in problem
    assert "spot=false" in problem
    with pytest.raises(PlanError) as raised:
        profile.place(make_spec("standard", Eviction.PROTECT))
    assert raised.value.problems == [problem]


def test_gke_standard_a_tolerant_step_stays_on_spot_when_no_on_demand_pool_exists_for_the_fallback() -> None:
    pools = (NodePool(name="spot-only", cpu="8", memory="32Gi", spot=True),)
    placement = get_profile(settings_for("gke-standard", pools=pools)).place(make_spec("standard"), on_demand=True)
    assert placement.pool == "spot-only"
    assert any("fallback" in w for w in placement.warnings)


def test_karpenter_refuses_only_when_declared_pools_cannot_hold_the_step() -> None:
    assert get_profile(settings_for("eks-karpenter")).check(make_spec(A100)) == []
    declared = get_profile(settings_for("eks-karpenter", pools=SPOT_ONLY_T4))
    [problem] = declared.check(make_spec("gpu-t4", Eviction.PROTECT))
    assert_full_message(problem, step="TrainModel", resource_class="gpu-t4", platform="eks-karpenter")
    assert "only as Spot" in problem


def test_plain_refuses_a_gpu_step_when_the_declared_pools_have_no_gpus() -> None:
    pools = (NodePool(name="laptop", cpu="8", memory="16Gi"),)
    [problem] = get_profile(settings_for("plain", pools=pools)).check(make_spec("gpu-t4"))
    assert_full_message(problem, step="TrainModel", resource_class="gpu-t4", platform="plain")


def test_every_problem_of_every_step_is_reported_together_in_step_order() -> None:
    specs = [
        make_spec("standard", family="Prepare"),
        make_spec("standard", Eviction.PROTECT, family="Backfill", max_runtime_seconds=EIGHT_DAYS),
        make_spec(GIANT, Eviction.PROTECT, family="Giant", max_runtime_seconds=EIGHT_DAYS),
    ]
    problems = check_steps(specs, get_profile(settings_for("gke-autopilot")))
    assert [p.split(" ")[1] for p in problems] == ["Backfill", "Giant", "Giant"]
    error = PlanError(problems)
    assert str(error).startswith("3 problems in the pipeline; nothing was submitted:")


def test_an_unknown_platform_is_a_configuration_error_naming_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError, match="plain, gke-standard, gke-autopilot, eks-karpenter"):
        get_profile(settings_for("gke-classic"))


def test_pools_declared_in_luigi_cfg_drive_gke_standard_placement() -> None:
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(
        """
[gokart_k8s]
platform = gke-standard

[gokart_k8s.pools.batch-spot]
cpu = 8
memory = 32Gi
spot = true
taints = cloud.google.com/gke-spot=true:NoSchedule

[gokart_k8s.pools.batch]
cpu = 8
memory = 32Gi
"""
    )
    settings = load_settings(config, environ={}, files=[])
    profile = get_profile(settings)
    assert profile.place(make_spec("standard")).pool == "batch-spot"
    assert profile.place(make_spec("standard", Eviction.PROTECT)).pool == "batch"
    [problem] = profile.check(make_spec("gpu-t4"))
    assert "the pools in luigi.cfg" in problem
