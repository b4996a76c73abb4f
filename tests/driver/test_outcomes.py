"""How a step's Job and pods are classified, row by row, and the advice each outcome gives."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from gokart_k8s.cluster.outcomes import (
    DISRUPTION_REASONS,
    OutcomeKind,
    attempt_of,
    classify,
    classify_pod,
    next_class_up,
)
from gokart_k8s.conventions import LABEL_RESOURCE_CLASS, LABEL_STEP
from gokart_k8s.resources import Catalog, ResourceClass

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def job(
    *,
    conditions: list[dict[str, str]] | None = None,
    memory: str = "4Gi",
    resource_class: str = "standard",
    node_selector: dict[str, str] | None = None,
    deadline: int | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "step",
                        "image": "registry.example/pipeline:abc",
                        "resources": {
                            "requests": {"cpu": "1", "memory": memory},
                            "limits": {"memory": memory},
                        },
                    }
                ],
                "nodeSelector": node_selector or {},
                "tolerations": [{"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"}],
            }
        }
    }
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "metadata": {
            "name": "trainmodel-0123456789ab",
            "labels": {LABEL_STEP: "TrainModel", LABEL_RESOURCE_CLASS: resource_class},
        },
        "spec": spec,
        "status": {"conditions": conditions or []},
    }


def pod(
    phase: str = "Failed",
    *,
    exit_code: int | None = None,
    terminated_reason: str = "",
    waiting_reason: str = "",
    conditions: list[dict[str, str]] | None = None,
    status_reason: str = "",
    name: str = "trainmodel-0123456789ab-x1",
    created: str = "2025-01-01T11:00:00Z",
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": terminated_reason or "Error"}}
    elif waiting_reason:
        state = {"waiting": {"reason": waiting_reason, "message": "rpc error: not found"}}
    elif phase == "Running":
        state = {"running": {"startedAt": "2025-01-01T11:00:00Z"}}
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions or [],
        "containerStatuses": [{"name": "step", "state": state}] if state else [],
    }
    if status_reason:
        status["reason"] = status_reason
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": status}


def disruption(reason: str) -> dict[str, str]:
    return {"type": "DisruptionTarget", "status": "True", "reason": reason}


# --- how one pod ended ----------------------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(DISRUPTION_REASONS))
def test_a_pod_with_any_disruption_target_reason_was_evicted(reason: str) -> None:
    outcome = classify_pod(pod(exit_code=143, conditions=[disruption(reason)]))
    assert (outcome.kind, outcome.reason, outcome.final) == (OutcomeKind.EVICTED, reason, True)


@pytest.mark.parametrize("reason", ["Shutdown", "NodeShutdown", "Terminated"])
def test_a_pod_ended_by_gke_node_shutdown_was_evicted(reason: str) -> None:
    outcome = classify_pod(pod(status_reason=reason))
    assert (outcome.kind, outcome.reason) == (OutcomeKind.EVICTED, reason)


def test_a_disrupted_pod_killed_after_its_grace_period_was_evicted_not_out_of_memory() -> None:
    outcome = classify_pod(pod(exit_code=137, conditions=[disruption("TerminationByKubelet")]))
    assert outcome.kind is OutcomeKind.EVICTED


def test_a_pod_deleted_while_running_was_evicted() -> None:
    outcome = classify_pod(pod("Running"), deleted=True)
    assert (outcome.kind, outcome.reason, outcome.final) == (OutcomeKind.EVICTED, "PodDeleted", True)


def test_a_pod_that_exited_143_saved_its_checkpoint_and_was_evicted() -> None:
    assert classify_pod(pod(exit_code=143)).kind is OutcomeKind.EVICTED


def test_a_running_pod_marked_for_disruption_is_being_evicted_but_not_yet_ended() -> None:
    outcome = classify_pod(pod("Running", conditions=[disruption("EvictionByEvictionAPI")]))
    assert (outcome.kind, outcome.final) == (OutcomeKind.EVICTED, False)


def test_a_pod_the_kubelet_reports_oomkilled_ran_out_of_memory_and_is_told_the_next_class_up() -> None:
    outcome = classify_pod(pod(exit_code=137, terminated_reason="OOMKilled"), job=job())
    assert outcome.kind is OutcomeKind.OUT_OF_MEMORY
    assert outcome.message == "Step TrainModel ran out of memory on resource class 'standard' (4Gi)."
    # 4Gi -> the next class up by memory among the built-ins is 'highcpu' (16Gi), not 'highmem' (32Gi).
    assert outcome.advice.startswith(
        "Use a bigger class (the next one up is 'highcpu'), or raise memory for 'standard' in luigi.cfg"
    )


def test_a_1gi_step_out_of_memory_is_told_the_4gi_class_not_the_largest() -> None:
    outcome = classify_pod(
        pod(exit_code=137, terminated_reason="OOMKilled"), job=job(memory="1Gi", resource_class="small")
    )
    assert "the next one up is 'standard'" in outcome.advice


def test_the_next_class_up_comes_from_the_catalog_in_use() -> None:
    catalog = Catalog(
        {
            "medium": ResourceClass(cpu="1", memory="2Gi"),
            "gpu-big": ResourceClass(cpu="1", memory="3Gi", gpu=1, accelerator="nvidia-l4"),
        }
    )
    assert next_class_up("1Gi", catalog) == "medium"
    assert next_class_up("1Gi") == "standard"
    assert next_class_up("32Gi") is None  # nothing bigger: the advice names none
    outcome = classify_pod(
        pod(exit_code=137, terminated_reason="OOMKilled"),
        job=job(memory="1Gi", resource_class="small"),
        catalog=catalog,
    )
    assert "the next one up is 'medium'" in outcome.advice


@pytest.mark.parametrize("reason", ["Error", ""])
def test_exit_137_without_oomkilled_is_a_kill_not_a_lack_of_memory(reason: str) -> None:
    outcome = classify_pod(pod(exit_code=137, terminated_reason=reason), job=job())
    assert (outcome.kind, outcome.exit_code) == (OutcomeKind.KILLED, 137)
    assert outcome.message == (
        "Step TrainModel was killed (SIGKILL, exit 137) without the kubelet reporting OOMKilled."
    )
    assert "bigger class" not in outcome.advice
    assert "kubectl describe node" in outcome.advice


def test_a_job_failed_after_a_kill_blames_the_kill() -> None:
    failed = job(conditions=[{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}])
    outcome = classify(failed, [pod(exit_code=137, terminated_reason="Error")])
    assert outcome.kind is OutcomeKind.KILLED and outcome.final
    assert "ran out of memory" not in outcome.message


@pytest.mark.parametrize(
    ("exit_code", "kind"),
    [
        (42, OutcomeKind.USER_ERROR),
        (43, OutcomeKind.CODE_SKEW),
        (1, OutcomeKind.FAILED),
        (139, OutcomeKind.FAILED),
    ],
)
def test_exit_codes_of_the_step_command_name_their_cause(exit_code: int, kind: OutcomeKind) -> None:
    outcome = classify_pod(pod(exit_code=exit_code), job=job())
    assert (outcome.kind, outcome.exit_code) == (kind, exit_code)
    assert outcome.message.startswith("Step TrainModel")


def test_a_user_error_shows_the_last_lines_of_the_log() -> None:
    outcome = classify_pod(pod(exit_code=42), job=job(), log_tail=["Traceback ...", "ValueError: bad row 7"])
    assert "ValueError: bad row 7" in outcome.message
    assert "--backend inline" in outcome.advice


def test_code_skew_names_the_image_to_rebuild() -> None:
    outcome = classify_pod(pod(exit_code=43), job=job())
    assert "registry.example/pipeline:abc" in outcome.message
    assert "Rebuild" in outcome.advice


def test_a_refused_code_package_says_what_the_pod_said_not_rebuild_the_image() -> None:
    said = (
        "gokart-k8s step: The code package gs://b/ws/gokart_k8s/code/ab.tar.gz has sha256 cd, but the driver packed ab"
    )
    outcome = classify_pod(pod(exit_code=43), job=job(), log_tail=["INFO: starting", said])
    assert outcome.kind is OutcomeKind.CODE_SKEW
    assert "refused its code package (exit 43): The code package gs://b/ws" in outcome.message
    assert "Rebuild" not in outcome.advice


def test_a_succeeded_pod_succeeded() -> None:
    assert classify_pod(pod("Succeeded", exit_code=0)).kind is OutcomeKind.SUCCEEDED


@pytest.mark.parametrize(
    ("reason", "final"), [("ErrImagePull", False), ("ImagePullBackOff", True), ("InvalidImageName", True)]
)
def test_a_pod_whose_image_cannot_be_pulled_says_to_check_the_image(reason: str, final: bool) -> None:
    outcome = classify_pod(pod("Pending", waiting_reason=reason), job=job())
    assert (outcome.kind, outcome.final) == (OutcomeKind.IMAGE_PULL_FAILED, final)
    assert "registry.example/pipeline:abc" in outcome.message
    assert "pull secret" in outcome.advice


def test_an_unschedulable_pod_says_how_long_and_which_selectors_to_check() -> None:
    since = (NOW - timedelta(seconds=90)).isoformat().replace("+00:00", "Z")
    unschedulable = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "lastTransitionTime": since,
        "message": "0/3 nodes are available: 3 Insufficient memory.",
    }
    outcome = classify_pod(
        pod("Pending", conditions=[unschedulable]),
        job=job(node_selector={"cloud.google.com/gke-nodepool": "highmem"}, resource_class="highmem"),
        now=NOW,
    )
    assert (outcome.kind, outcome.final, outcome.waiting_seconds) == (OutcomeKind.UNSCHEDULABLE, False, 90.0)
    assert "cloud.google.com/gke-nodepool=highmem" in outcome.message
    assert "3 Insufficient memory" in outcome.message
    assert "resource class 'highmem'" in outcome.advice


def test_a_running_pod_is_running_and_a_new_one_pending() -> None:
    assert classify_pod(pod("Running")).kind is OutcomeKind.RUNNING
    assert classify_pod(pod("Pending")).kind is OutcomeKind.PENDING


# --- the Job with its pods ------------------------------------------------------------------


def failed_condition(kind: str, reason: str) -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": "..."}


@pytest.mark.parametrize("kind", ["Complete", "SuccessCriteriaMet"])
def test_a_job_that_completed_or_met_its_success_criteria_succeeded(kind: str) -> None:
    outcome = classify(job(conditions=[{"type": kind, "status": "True"}]), [])
    assert (outcome.kind, outcome.final, outcome.failed) == (OutcomeKind.SUCCEEDED, True, False)


@pytest.mark.parametrize("kind", ["Failed", "FailureTarget"])
def test_a_job_past_its_deadline_says_to_raise_max_runtime(kind: str) -> None:
    outcome = classify(job(conditions=[failed_condition(kind, "DeadlineExceeded")], deadline=600), [pod("Running")])
    assert (outcome.kind, outcome.failed) == (OutcomeKind.DEADLINE_EXCEEDED, True)
    assert "600 s" in outcome.message
    assert "max_runtime" in outcome.advice


def test_a_job_failed_by_its_pod_failure_policy_blames_the_user_error() -> None:
    pods = [
        pod(exit_code=143, created="2025-01-01T11:00:00Z"),
        pod(exit_code=42, created="2025-01-01T11:05:00Z"),
    ]
    outcome = classify(job(conditions=[failed_condition("Failed", "PodFailurePolicy")]), pods)
    assert (outcome.kind, outcome.reason) == (OutcomeKind.USER_ERROR, "PodFailurePolicy: exit 42")


def test_a_job_out_of_retries_blames_its_own_failure_not_an_earlier_eviction() -> None:
    pods = [
        pod(exit_code=137, terminated_reason="OOMKilled", created="2025-01-01T11:00:00Z"),
        pod(exit_code=143, conditions=[disruption("PreemptionByScheduler")], created="2025-01-01T11:09:00Z"),
    ]
    outcome = classify(job(conditions=[failed_condition("Failed", "BackoffLimitExceeded")]), pods)
    assert outcome.kind is OutcomeKind.OUT_OF_MEMORY
    assert outcome.final


def test_a_failed_job_without_pods_left_still_fails_with_the_controllers_reason() -> None:
    outcome = classify(job(conditions=[failed_condition("Failed", "BackoffLimitExceeded")]), [])
    assert (outcome.kind, outcome.reason, outcome.failed) == (
        OutcomeKind.FAILED,
        "BackoffLimitExceeded",
        True,
    )


def test_a_running_job_after_an_eviction_is_running() -> None:
    pods = [pod(exit_code=143, conditions=[disruption("EvictionByEvictionAPI")]), pod("Running", name="p2")]
    outcome = classify(job(), pods)
    assert (outcome.kind, outcome.final) == (OutcomeKind.RUNNING, False)


def test_a_job_waiting_on_an_image_reports_the_image_pull_failure() -> None:
    outcome = classify(job(), [pod("Pending", waiting_reason="ImagePullBackOff")])
    assert (outcome.kind, outcome.final) == (OutcomeKind.IMAGE_PULL_FAILED, True)


def test_a_job_without_pods_yet_is_pending() -> None:
    assert classify(job(), []).kind is OutcomeKind.PENDING


# --- attempts -------------------------------------------------------------------------------


def test_an_attempt_says_where_a_pod_ran_when_and_how_it_ended() -> None:
    ended = pod(exit_code=137, terminated_reason="OOMKilled")
    ended["spec"] = {"nodeName": "spot-1", "nodeSelector": {"cloud.google.com/gke-spot": "true"}}
    ended["metadata"]["labels"] = {"gokart-k8s.io/pool": "spot-small"}
    ended["status"]["startTime"] = "2025-01-01T11:00:05Z"
    ended["status"]["containerStatuses"][0]["state"]["terminated"].update(
        startedAt="2025-01-01T11:00:10Z", finishedAt="2025-01-01T11:05:00Z"
    )
    attempt = attempt_of(ended, classify_pod(ended, job=job()))
    assert attempt.pod == "trainmodel-0123456789ab-x1"
    assert (attempt.node, attempt.pool, attempt.capacity_type) == ("spot-1", "spot-small", "spot")
    assert attempt.submitted == datetime(2025, 1, 1, 11, 0, tzinfo=timezone.utc).timestamp()
    assert attempt.started == datetime(2025, 1, 1, 11, 0, 10, tzinfo=timezone.utc).timestamp()
    assert attempt.ended == datetime(2025, 1, 1, 11, 5, tzinfo=timezone.utc).timestamp()
    assert (attempt.outcome, attempt.reason, attempt.exit_code) == ("out_of_memory", "OOMKilled", 137)


def test_an_attempt_still_running_has_no_end_and_a_pod_deleted_before_it_started_ends_when_seen() -> None:
    running = attempt_of(pod("Running"), classify_pod(pod("Running")))
    assert (running.outcome, running.ended, running.node, running.capacity_type) == ("running", None, None, None)
    gone = pod("Pending")
    lost = attempt_of(gone, classify_pod(gone, deleted=True), ended=1234.0)
    assert (lost.outcome, lost.ended) == ("evicted", 1234.0)
