"""A replacement Job starts only after the pods of the Job it replaces have stopped, and its own
deletion events never fail the step.

The driver is fed Job and pod changes by hand through a recording in-memory cluster, so the
order of events is exactly the one that matters (a real cluster decides it by timing).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from gokart_k8s.cluster.watching import Change
from gokart_k8s.conventions import LABEL_IDENTITY, LABEL_RUN_ID, job_name, step_identity
from gokart_k8s.driver import _Driver, _Run
from gokart_k8s.platforms import get_profile
from gokart_k8s.settings import Settings
from gokart_k8s.steps import collect
from gokart_k8s.workspace import WORKSPACE_ENV
from tests.driver.fakes import QuietCluster
from tests.driver.pipelines import Leaf

ENV = {WORKSPACE_ENV: "gs://bucket/ws/"}
IMAGE = "img:1"


class RecordingCluster(QuietCluster):
    """Creates and deletes nothing for real: records what the driver asks for."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.deleted: list[str] = []

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        name = str(manifest["metadata"]["name"])
        self.created.append(name)
        return {**manifest, "metadata": {**manifest["metadata"], "uid": f"new-{len(self.created)}"}}, True

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def delete_job(self, namespace: str, name: str) -> None:
        self.deleted.append(name)


def driver_for(api: RecordingCluster, settings: Settings) -> tuple[_Driver, _Run, str]:
    steps, problems = collect([Leaf(i=41)], settings)
    assert not problems
    driver = _Driver(
        steps,
        settings,
        api,  # type: ignore[arg-type]
        run_id="run-2",
        image=IMAGE,
        env=ENV,
        profile=get_profile(settings),
        progress=None,
        log_sink=None,
        notice=lambda text: None,
        on_interrupt="keep",
        is_complete=lambda steps: set(),
        clock=time.monotonic,
    )
    (run,) = driver.runs
    return driver, run, job_name(run.spec.family, run.spec.unique_id, step_identity(IMAGE, ENV))


def settle(driver: _Driver) -> None:
    """Wait for the driver's Job creations in flight, and apply their answers as its loop does."""
    assert driver.submitter.settle(timeout=30)
    for answer in driver.submitter.results():
        driver._submitted(answer)


def old_job(name: str) -> dict[str, Any]:
    """A Job of an earlier run that failed, as the API lists it."""
    return {
        "metadata": {"name": name, "uid": "old-job", "labels": {LABEL_RUN_ID: "run-1"}},
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]},
    }


def old_pod(name: str, phase: str) -> dict[str, Any]:
    """Its pod: still terminating (Running), or stopped."""
    return {
        "metadata": {"name": f"{name}-x1", "uid": "old-pod", "ownerReferences": [{"kind": "Job", "uid": "old-job"}]},
        "status": {"phase": phase},
    }


def test_the_replacement_of_a_failed_job_waits_until_the_old_pod_has_stopped() -> None:
    api = RecordingCluster()
    driver, run, name = driver_for(api, Settings())
    driver._apply(Change("jobs", "MODIFIED", old_job(name)))
    driver._apply(Change("pods", "MODIFIED", old_pod(name, "Running")))

    driver._start(run)
    settle(driver)
    assert (api.deleted, api.created) == ([name], [])  # deleted, but its pod still runs: not yet
    driver._evaluate(run)
    settle(driver)
    assert api.created == []

    touched = driver._apply(Change("pods", "MODIFIED", old_pod(name, "Failed")))
    assert touched is run
    driver._evaluate(run)
    settle(driver)
    assert api.created == [name]  # the same name, now that nothing of the old Job runs


def test_the_deletion_of_the_replaced_job_is_not_mistaken_for_the_loss_of_its_replacement() -> None:
    api = RecordingCluster()
    driver, run, name = driver_for(api, Settings())
    driver._apply(Change("jobs", "MODIFIED", old_job(name)))
    driver._start(run)
    settle(driver)
    assert api.created == [name] and run.job_uid == "new-1"

    # The watch reports the old Job (same name, old uid) going away, late.
    driver._apply(Change("jobs", "DELETED", old_job(name)))
    assert (run.state, run.report.state, run.report.error) == ("in-flight", "not-run", None)

    # The replacement itself deleted by someone else is a lost step.
    replacement = {"metadata": {"name": name, "uid": "new-1"}, "status": {}}
    driver._apply(Change("jobs", "DELETED", replacement))
    assert run.report.state == "failed" and "deleted by someone else" in str(run.report.error)


class _TakenNameCluster(RecordingCluster):
    """Answers every create with 409: the name belongs to a Job of another identity."""

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        meta = manifest["metadata"]
        return {"metadata": {"name": meta["name"], "uid": "theirs", "labels": {LABEL_IDENTITY: "ffffff"}}}, False


def test_a_job_name_taken_by_a_job_of_another_identity_is_never_adopted() -> None:
    api = _TakenNameCluster()
    driver, run, name = driver_for(api, Settings())
    driver._start(run)
    settle(driver)
    assert run.report.state == "failed" and not run.report.adopted and run.job is None
    assert f"the Job name {name} is taken by a Job that is not this step's" in str(run.report.error)
    assert api.deleted == []  # not ours to delete


def test_a_job_an_earlier_driver_was_deleting_is_waited_for_too() -> None:
    api = RecordingCluster()
    driver, run, name = driver_for(api, Settings())
    dying = old_job(name)
    dying["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    driver._apply(Change("jobs", "MODIFIED", dying))
    driver._apply(Change("pods", "MODIFIED", old_pod(name, "Running")))
    driver._start(run)
    settle(driver)
    assert (api.deleted, api.created) == ([], [])  # not ours to delete, and its pod still runs
    driver._apply(Change("pods", "DELETED", old_pod(name, "Running")))
    driver._evaluate(run)
    settle(driver)
    assert api.created == [name]
