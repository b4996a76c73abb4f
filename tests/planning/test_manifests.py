"""Job manifests: valid for Kubernetes 1.29-1.37 on every platform, and what the driver relies on."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gokart_k8s.conventions import is_dns1123_label, job_name
from gokart_k8s.eviction import Eviction
from gokart_k8s.manifests import build_job_manifest, check_manifest, job_selector
from gokart_k8s.platforms import get_profile
from gokart_k8s.settings import Settings, parse_secret_refs
from gokart_k8s.supervision.termination_log import MESSAGE_PATH_ENV
from gokart_k8s.termination import BUDGET_ENV

from .specimens import COMBINATION_IDS, COMBINATIONS, make_spec, settings_for

KUBERNETES_VERSIONS = [f"1.{minor}.0" for minor in range(29, 38)]
GOLDEN = Path(__file__).parent / "golden" / "gke-standard-gpu-t4-protect.yaml"
ENV = {"TASK_WORKSPACE_DIRECTORY": "gs://bucket/ml/", "GOKART_K8S_PLATFORM": "gke-standard"}


def manifest_for(
    platform: str, class_name: str = "standard", eviction: Eviction = Eviction.TOLERATE, **kwargs: Any
) -> dict[str, Any]:
    settings = settings_for(platform, service_account="pipeline-runner", namespace="ml-batch")
    spec = make_spec(class_name, eviction, max_runtime_seconds=6 * 3600)
    placement = get_profile(settings).place(spec)
    return build_job_manifest(
        spec,
        placement,
        settings,
        run_id="nightly-2024-06-01",
        image="europe-docker.pkg.dev/p/ml/pipeline:3f2a",
        env=ENV,
        **kwargs,
    )


@pytest.mark.parametrize(("platform", "class_name", "eviction"), COMBINATIONS, ids=COMBINATION_IDS)
def test_every_manifest_is_valid_for_kubernetes_1_29_to_1_37_and_passes_the_extra_checks(
    platform: str, class_name: str, eviction: Eviction
) -> None:
    manifest = manifest_for(platform, class_name, eviction)
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)
    assert check_manifest(manifest) == []


def test_the_golden_manifest_shows_a_protected_gpu_step_on_gke_standard() -> None:
    manifest = manifest_for("gke-standard", "gpu-t4", Eviction.PROTECT)
    text = yaml.safe_dump(manifest, sort_keys=False)
    if os.environ.get("GOKART_K8S_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_the_pod_failure_policy_ignores_disruptions_and_sigterm_and_fails_fast_on_deterministic_errors() -> None:
    spec = manifest_for("plain")["spec"]
    rules = spec["podFailurePolicy"]["rules"]
    assert [r["action"] for r in rules] == ["Ignore", "Ignore", "FailJob"]
    assert rules[0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert rules[1]["onExitCodes"] == {"containerName": "step", "operator": "In", "values": [143]}
    assert rules[2]["onExitCodes"] == {"containerName": "step", "operator": "In", "values": [42, 43]}
    assert spec["podReplacementPolicy"] == "Failed"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_pod_replacement_policy_is_left_out_for_clusters_older_than_1_29() -> None:
    manifest = manifest_for("plain", kubernetes_version="1.28")
    assert "podReplacementPolicy" not in manifest["spec"]
    assert "podReplacementPolicy" in manifest_for("plain", kubernetes_version="1.29")["spec"]


def test_job_settings_come_from_settings_and_the_step() -> None:
    manifest = manifest_for("gke-autopilot")
    spec = manifest["spec"]
    pod = spec["template"]["spec"]
    defaults = Settings()
    assert spec["backoffLimit"] == defaults.backoff_limit
    assert spec["ttlSecondsAfterFinished"] == defaults.ttl_seconds_after_finished
    assert spec["activeDeadlineSeconds"] == 6 * 3600
    assert pod["terminationGracePeriodSeconds"] == defaults.termination_grace_seconds
    assert pod["serviceAccountName"] == "pipeline-runner"
    assert pod["automountServiceAccountToken"] is False
    assert manifest["metadata"]["namespace"] == "ml-batch"


def test_the_container_runs_the_step_command_as_non_root_with_no_extra_privileges() -> None:
    pod = manifest_for("plain")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["name"] == "step"
    assert container["command"][:2] == ["gokart-k8s", "step"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert [e["name"] for e in container["env"]] == sorted([*ENV, BUDGET_ENV, MESSAGE_PATH_ENV])


def test_the_step_writes_its_log_to_the_termination_message_and_a_crash_leaves_the_logs_tail_there() -> None:
    manifest = manifest_for("plain")
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": MESSAGE_PATH_ENV, "value": "/dev/termination-log"} in container["env"]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(manifest, version, strict=True)


def test_every_step_job_carries_the_configured_sigterm_budget() -> None:
    settings = settings_for("gke-standard", termination_budget_seconds=7.5)
    spec = make_spec("standard")
    manifest = build_job_manifest(spec, get_profile(settings).place(spec), settings, run_id="r", image="i", env={})
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    assert {"name": BUDGET_ENV, "value": "7.5"} in container["env"]


def test_secrets_are_passed_by_reference_never_by_value() -> None:
    manifest = manifest_for("plain", secret_env={"GCS_CREDENTIAL": ("gcs-key", "key.json")})
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    [secret] = [e for e in container["env"] if e["name"] == "GCS_CREDENTIAL"]
    assert secret == {"name": "GCS_CREDENTIAL", "valueFrom": {"secretKeyRef": {"name": "gcs-key", "key": "key.json"}}}
    kubernetes_validate.validate(manifest, "1.29.0", strict=True)


def test_the_secret_env_setting_gives_every_step_the_same_references() -> None:
    settings = settings_for("gke-standard", secret_env=parse_secret_refs("GCS_CREDENTIAL=gcs-key/key.json,TOKEN=t/v"))
    spec = make_spec("standard")
    manifest = build_job_manifest(spec, get_profile(settings).place(spec), settings, run_id="r", image="i", env=ENV)
    [container] = manifest["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {"GCS_CREDENTIAL": {"name": "gcs-key", "key": "key.json"}, "TOKEN": {"name": "t", "key": "v"}}
    kubernetes_validate.validate(manifest, "1.29.0", strict=True)


def test_placement_goes_into_the_pod_and_step_identity_onto_job_and_pod() -> None:
    manifest = manifest_for("eks-karpenter", "gpu-l4", Eviction.PROTECT)
    template = manifest["spec"]["template"]
    assert template["metadata"]["annotations"] == {"karpenter.sh/do-not-disrupt": "true"}
    assert template["spec"]["nodeSelector"]["karpenter.sh/capacity-type"] == "on-demand"
    for labels in (manifest["metadata"]["labels"], template["metadata"]["labels"]):
        assert labels["gokart-k8s.io/step"] == "TrainModel"
        assert labels["gokart-k8s.io/resource-class"] == "gpu-l4"
        assert labels["gokart-k8s.io/eviction"] == "protect"
        assert labels["gokart-k8s.io/run-id"] == "nightly-2024-06-01"
    annotations = manifest["metadata"]["annotations"]
    assert annotations["gokart-k8s.io/task-id"] == "TrainModel_10_0123456789"
    assert annotations["gokart-k8s.io/placement"] == "karpenter on-demand, 1x l4, do-not-disrupt"


def test_long_family_names_give_deterministic_job_names_of_at_most_63_characters() -> None:
    family = "ComputeTheVeryLongFeatureMatrixForEveryCustomerSegmentAndEveryRegionOfTheWorld"
    settings = settings_for("plain")
    spec = make_spec("small", family=family)
    manifest = build_job_manifest(spec, get_profile(settings).place(spec), settings, run_id="r", image="i", env={})
    name = manifest["metadata"]["name"]
    assert len(name) <= 63
    assert is_dns1123_label(name)
    assert name == job_name(family, spec.unique_id)
    assert check_manifest(manifest) == []
    assert len(manifest["metadata"]["labels"]["gokart-k8s.io/step"]) <= 63


def test_the_driver_can_choose_the_job_name_for_the_on_demand_fallback() -> None:
    manifest = manifest_for("gke-standard", name="trainmodel-0123456789ab-od")
    assert manifest["metadata"]["name"] == "trainmodel-0123456789ab-od"


def test_awkward_run_ids_become_valid_label_values() -> None:
    settings = settings_for("plain")
    spec = make_spec("small")
    manifest = build_job_manifest(
        spec,
        get_profile(settings).place(spec),
        settings,
        run_id="manual run @ 2024-06-01T10:00:00+09:00",
        image="i",
        env={},
    )
    assert check_manifest(manifest) == []
    kubernetes_validate.validate(manifest, "1.29.0", strict=True)


def _broken(change: str) -> dict[str, Any]:
    manifest = copy.deepcopy(manifest_for("gke-standard", "gpu-t4"))
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    if change == "quantity":
        container["resources"]["requests"]["memory"] = "4 GB"
    elif change == "name":
        manifest["metadata"]["name"] = "Train_Model"
    elif change == "long-name":
        manifest["metadata"]["name"] = "x" * 64
    elif change == "label-value":
        manifest["metadata"]["labels"]["gokart-k8s.io/step"] = "-bad-"
    elif change == "label-key":
        manifest["spec"]["template"]["metadata"]["labels"]["bad key/x"] = "v"
    elif change == "request-above-limit":
        container["resources"]["requests"]["memory"] = "64Gi"
    elif change == "fractional-gpu":
        container["resources"]["limits"]["nvidia.com/gpu"] = "0.5"
    elif change == "env-name":
        container["env"].append({"name": "1BAD", "value": "x"})
    return manifest


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("quantity", "not a Kubernetes quantity"),
        ("name", "not a DNS-1123 label"),
        ("long-name", "not a DNS-1123 label"),
        ("label-value", "is not a label value"),
        ("label-key", "is not a DNS subdomain"),
        ("request-above-limit", "above its limit"),
        ("fractional-gpu", "whole numbers"),
        ("env-name", "not a valid environment variable name"),
    ],
)
def test_check_manifest_catches_what_the_schema_does_not(change: str, words: str) -> None:
    problems = check_manifest(_broken(change))
    assert len(problems) == 1
    assert words in problems[0]


def test_the_job_selector_lists_all_gokart_k8s_jobs_or_one_run() -> None:
    assert job_selector() == "app.kubernetes.io/managed-by=gokart-k8s"
    assert job_selector("nightly 2024") == "app.kubernetes.io/managed-by=gokart-k8s,gokart-k8s.io/run-id=nightly-2024"
