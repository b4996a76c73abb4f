"""Which Jobs are a step's, and what the driver does with those it finds (the rules of cluster.adoption)."""

from __future__ import annotations

from typing import Any

from gokart_k8s.cluster.adoption import Decision, decide, job_finished
from gokart_k8s.conventions import LABEL_RUN_ID, RUN_ID_ENV, is_dns1123_label, job_name, step_identity
from gokart_k8s.workspace import WORKSPACE_ENV

PRIMARY = "train-0123456789ab-a1b2c3"
FALLBACK = "train-0123456789ab-a1b2c3-od"


def job(name: str, state: str = "active", *, run_id: str = "earlier-run", deleting: bool = False) -> dict[str, Any]:
    conditions = {
        "active": [],
        "succeeded": [{"type": "Complete", "status": "True"}],
        "failed": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}],
        "failing": [{"type": "FailureTarget", "status": "True"}],
    }[state]
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}-{state}", "labels": {LABEL_RUN_ID: run_id}}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"conditions": conditions}}


def decided(*jobs: dict[str, Any], run_id: str = "this-run") -> Decision:
    return decide(list(jobs), primary=PRIMARY, fallback=FALLBACK, run_id=run_id)


def test_no_job_means_submit_the_original() -> None:
    assert decided() == Decision("submit", PRIMARY, False)


def test_a_running_job_of_an_earlier_run_is_adopted() -> None:
    decision = decided(job(PRIMARY))
    assert (decision.action, decision.job, decision.on_demand, decision.retire) == ("follow", PRIMARY, False, ())


def test_after_a_fallback_the_rerun_adopts_the_on_demand_job_instead_of_submitting_the_original() -> None:
    decision = decided(job(FALLBACK))
    assert (decision.action, decision.job, decision.on_demand) == ("follow", FALLBACK, True)


def test_two_active_variants_are_cut_down_to_one_keeping_the_on_demand_job() -> None:
    decision = decided(job(PRIMARY), job(FALLBACK))
    assert (decision.action, decision.job, decision.retire) == ("follow", FALLBACK, (PRIMARY,))


def test_a_finished_job_of_an_earlier_run_is_deleted_and_the_step_submitted_again() -> None:
    for state in ("succeeded", "failed"):
        decision = decided(job(PRIMARY, state))
        assert (decision.action, decision.job, decision.retire) == ("submit", PRIMARY, (PRIMARY,))


def test_a_step_that_had_moved_to_on_demand_capacity_is_submitted_there_again() -> None:
    decision = decided(job(FALLBACK, "failed"))
    assert (decision.action, decision.job, decision.on_demand, decision.retire) == (
        "submit",
        FALLBACK,
        True,
        (FALLBACK,),
    )
    # ...even while its old Job is still being deleted.
    assert decided(job(FALLBACK, "failed", deleting=True)) == Decision("submit", FALLBACK, True)


def test_a_failed_job_of_this_same_run_stands_so_a_replacement_driver_does_not_run_it_again() -> None:
    decision = decided(job(PRIMARY, "failed", run_id="this-run"))
    assert (decision.action, decision.job, decision.retire) == ("follow", PRIMARY, ())


def test_a_job_being_deleted_is_never_adopted() -> None:
    decision = decided(job(PRIMARY, deleting=True))
    assert (decision.action, decision.job, decision.retire) == ("submit", PRIMARY, ())


def test_jobs_of_other_names_are_ignored() -> None:
    assert decided(job("other-0123456789ab-ffffff")) == Decision("submit", PRIMARY, False)


def test_a_job_is_finished_by_its_terminal_conditions_including_the_early_ones() -> None:
    assert [job_finished(job(PRIMARY, s)) for s in ("active", "succeeded", "failed", "failing")] == [
        False,
        True,
        True,
        True,
    ]


# --- a step's identity ------------------------------------------------------------------------


def test_a_steps_identity_changes_with_its_cache_image_and_pod_settings_but_not_with_the_run() -> None:
    base = step_identity("img:1", {WORKSPACE_ENV: "gs://a/ws", RUN_ID_ENV: "run-1", "BUDGET": "10"})
    assert base == step_identity("img:1", {WORKSPACE_ENV: "gs://a/ws", RUN_ID_ENV: "run-2", "BUDGET": "10"})
    others = [
        step_identity("img:1", {WORKSPACE_ENV: "gs://b/ws", RUN_ID_ENV: "run-1", "BUDGET": "10"}),
        step_identity("img:2", {WORKSPACE_ENV: "gs://a/ws", RUN_ID_ENV: "run-1", "BUDGET": "10"}),
        step_identity("img:1", {WORKSPACE_ENV: "gs://a/ws", RUN_ID_ENV: "run-1", "BUDGET": "20"}),
    ]
    assert base not in others and len(set(others)) == 3


def test_job_names_hold_the_identity_whole_even_for_long_step_names_and_stay_valid() -> None:
    family = "AVeryLongStepNameThatGoesOnAndOnBeyondWhatAJobNameCanHold"
    names = {
        job_name(family, "0123456789abcdef", identity, variant=variant)
        for identity in ("a1b2c3", "a1b2c4")
        for variant in ("", "od")
    }
    assert len(names) == 4  # two identities x two variants, all distinct
    assert all(is_dns1123_label(n) and len(n) <= 63 for n in names)
    assert job_name(family, "0123456789abcdef", "a1b2c3", variant="od").endswith("-0123456789ab-a1b2c3-od")
    assert job_name("Train", "0123456789abcdef") == "train-0123456789ab"  # rendered manifests keep their names
