"""The objects of a schedule: least-privilege RBAC, a protected driver pod, a CronJob that restarts it."""

from __future__ import annotations

import configparser
from typing import Any

import kubernetes_validate
import pytest

from gokart_k8s.eviction import Eviction
from gokart_k8s.manifests import build_job_manifest, check_manifest
from gokart_k8s.platforms import get_profile
from gokart_k8s.scheduling import (
    DO_NOT_DISRUPT,
    ENV_JOB_NAME,
    ENV_SCHEDULE_TIMEZONE,
    GKE_GSA_ANNOTATION,
    SAFE_TO_EVICT,
    ScheduleConfig,
    build_objects,
)
from gokart_k8s.settings import PLATFORMS, Settings, load_settings, parse_secret_refs
from gokart_k8s.steps import StepSpec


def config(**changes: Any) -> ScheduleConfig:
    values: dict[str, Any] = {
        "name": "nightly-report",
        "task_argv": ("examples.pipeline.Report", "--date", "{scheduled_date}"),
        "cron": "0 3 * * *",
        "timezone": "Asia/Tokyo",
        "image": "europe-docker.pkg.dev/p/r/pipeline:1",
        "workspace": "gs://bucket/cache/",
        "namespace": "ml",
    }
    values.update(changes)
    return ScheduleConfig(**values)


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["kind"]: o for o in objects}


def driver_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(by_kind(objects)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"])


def test_a_schedule_is_a_service_account_role_binding_and_cronjob_in_one_namespace() -> None:
    objects = build_objects(config())
    assert [o["kind"] for o in objects] == ["ServiceAccount", "Role", "RoleBinding", "CronJob"]
    assert {o["metadata"]["namespace"] for o in objects} == {"ml"}


def test_the_role_grants_exactly_what_the_driver_needs_and_nothing_cluster_wide() -> None:
    objects = build_objects(config())
    role = by_kind(objects)["Role"]
    granted = {
        (g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }
    expected = {("batch", "jobs", v) for v in ("create", "get", "list", "watch", "delete")}
    expected |= {("", "pods", v) for v in ("get", "list", "watch")}
    expected |= {("", "pods/log", "get"), ("", "events", "list")}
    assert granted == expected
    assert not {o["kind"] for o in objects} & {"ClusterRole", "ClusterRoleBinding"}
    binding = by_kind(objects)["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "nightly-report-driver",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nightly-report-driver", "namespace": "ml"}]


def test_the_driver_pod_runs_as_the_bound_service_account() -> None:
    objects = build_objects(config())
    assert driver_pod(objects)["spec"]["serviceAccountName"] == by_kind(objects)["ServiceAccount"]["metadata"]["name"]


def test_workload_identity_annotation_only_when_a_gcp_service_account_is_given() -> None:
    plain = by_kind(build_objects(config()))["ServiceAccount"]["metadata"]
    assert "annotations" not in plain
    gsa = "pipeline@my-project.iam.gserviceaccount.com"
    annotated = by_kind(build_objects(config(gcp_service_account=gsa)))["ServiceAccount"]["metadata"]
    assert annotated["annotations"] == {GKE_GSA_ANNOTATION: gsa}


def test_cronjob_forbids_overlap_keeps_history_and_has_its_time_zone() -> None:
    spec = by_kind(build_objects(config(failed_jobs_history_limit=5)))["CronJob"]["spec"]
    assert spec["schedule"] == "0 3 * * *"
    assert spec["timeZone"] == "Asia/Tokyo"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["successfulJobsHistoryLimit"] == 3
    assert spec["failedJobsHistoryLimit"] == 5


def test_without_a_time_zone_the_schedule_is_utc_not_the_controllers_zone() -> None:
    spec = by_kind(build_objects(config(timezone=None)))["CronJob"]["spec"]
    assert spec["timeZone"] == "Etc/UTC"


def test_the_driver_command_carries_the_date_placeholder_literally() -> None:
    container = driver_pod(build_objects(config()))["spec"]["containers"][0]
    assert container["command"] == [
        "gokart-k8s",
        "run",
        "examples.pipeline.Report",
        "--date",
        "{scheduled_date}",
        "--backend",
        "kubernetes",
        "--workspace",
        "gs://bucket/cache/",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env[ENV_SCHEDULE_TIMEZONE]["value"] == "Asia/Tokyo"
    assert env[ENV_JOB_NAME]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}
    }
    assert env["GOKART_K8S_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_driver_pod_is_small_and_protected_from_voluntary_eviction_on_every_platform(platform: str) -> None:
    pod = driver_pod(build_objects(config(platform=platform)))
    annotations = pod["metadata"]["annotations"]
    assert annotations[SAFE_TO_EVICT] == "false"
    assert annotations[DO_NOT_DISRUPT] == "true"
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "250m", "memory": "512Mi"}
    selector = pod["spec"].get("nodeSelector") or {}
    assert selector.get("cloud.google.com/gke-spot") != "true"
    assert selector.get("karpenter.sh/capacity-type") != "spot"


def test_an_evicted_driver_is_replaced_without_spending_the_retry_budget() -> None:
    job_spec = by_kind(build_objects(config()))["CronJob"]["spec"]["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] > 0
    assert job_spec["template"]["spec"]["restartPolicy"] == "Never"
    first = job_spec["podFailurePolicy"]["rules"][0]
    assert first["action"] == "Ignore"
    assert first["onPodConditions"][0]["type"] == "DisruptionTarget"


@pytest.mark.parametrize("version", [f"1.{minor}.0" for minor in range(29, 38)])
@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_object_passes_strict_schema_validation(version: str, platform: str) -> None:
    for obj in build_objects(
        config(
            platform=platform,
            gcp_service_account="a-pipeline@p.iam.gserviceaccount.com",
            env={"LUIGI_CONFIG_PATH": "/app/luigi.cfg"},
            secret_env=parse_secret_refs("GCS_CREDENTIAL=gcs-key/key.json"),
        )
    ):
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_driver_pod_runs_as_the_same_user_and_group_as_step_pods() -> None:
    pod_security = driver_pod(build_objects(config()))["spec"]["securityContext"]
    settings = Settings()
    spec = StepSpec("Step", "m", "u" * 32, "Step_u", {}, settings.default_class(), Eviction.TOLERATE)
    step = build_job_manifest(spec, get_profile(settings).place(spec), settings, run_id="r", image="i", env={})
    step_security = step["spec"]["template"]["spec"]["securityContext"]
    assert (pod_security["runAsUser"], pod_security["runAsGroup"]) == (
        step_security["runAsUser"],
        step_security["runAsGroup"],
    )
    assert pod_security["runAsNonRoot"] is True


def test_secret_env_reaches_the_driver_by_reference_and_is_passed_on_to_the_steps_by_name_only() -> None:
    objects = build_objects(config(secret_env=parse_secret_refs("GCS_CREDENTIAL=gcs-key/key.json,API_TOKEN=api/token")))
    [container] = driver_pod(objects)["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GCS_CREDENTIAL"] == {
        "name": "GCS_CREDENTIAL",
        "valueFrom": {"secretKeyRef": {"name": "gcs-key", "key": "key.json"}},
    }
    assert env["API_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "api", "key": "token"}}
    # The driver reads setting secret_env from its environment and gives every step the same references.
    passed_on = env["GOKART_K8S_SECRET_ENV"]["value"]
    settings = load_settings(configparser.ConfigParser(), {"GOKART_K8S_SECRET_ENV": passed_on}, files=[])
    assert {str(ref) for ref in settings.secret_env} == {"GCS_CREDENTIAL=gcs-key/key.json", "API_TOKEN=api/token"}


def test_without_secret_env_the_driver_has_no_secret_references() -> None:
    [container] = driver_pod(build_objects(config()))["spec"]["containers"]
    assert not [e for e in container["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
    assert "GOKART_K8S_SECRET_ENV" not in {e["name"] for e in container["env"]}


def test_the_driver_job_passes_the_manifest_checks_of_step_jobs() -> None:
    cronjob = by_kind(build_objects(config()))["CronJob"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "nightly-report-29000000", "namespace": "ml"},
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    }
    assert check_manifest(job) == []
