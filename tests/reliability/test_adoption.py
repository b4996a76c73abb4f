"""Reruns and replacement drivers adopt what is there: at most one Job of a step is ever active.

Real processes (a ``gokart-k8s local-cluster start`` cluster, ``gokart-k8s run … --backend
kubernetes`` drivers killed with real signals), a ``gs://`` cache on fake-gcs-server, and the
attempt log each step writes from inside its pod to count attempts from the step's side.
"""

from __future__ import annotations

import signal

import pytest

from gokart_k8s.testing.gcs import FakeGCSServer
from tests.reliability.driver_support import (
    Scenario,
    cached_families,
    overlaps,
    read_attempts,
    wait_until,
)

pytest_plugins = ["gokart_k8s.testing.gcs", "tests.reliability.driver_support"]

DELETED = "deleted by someone else"


@pytest.fixture
def cache(gcs_emulator: FakeGCSServer) -> str:
    return f"gs://{gcs_emulator.create_bucket()}/ws"


def test_a_rerun_after_the_on_demand_fallback_adopts_the_od_job_and_the_step_never_runs_twice_at_once(
    gcs_scenario: Scenario, gcs_emulator: FakeGCSServer, cache: str
) -> None:
    gcs_scenario.start_cluster()
    moves = {"GOKART_K8S_FALLBACK_AFTER_EVICTIONS": "1", "GOKART_K8S_EVICTION_RETRIES": "5"}
    first = gcs_scenario.run("Slow", "--seconds", "12", workspace=cache, run_id="run-1", env=moves)
    first.wait_for("running    Slow")
    wait_until(lambda: read_attempts(gcs_scenario.attempt_log), 60, "Slow's first attempt to start")
    gcs_scenario.evict(gcs_scenario.running_pods("slow-")[0])
    first.wait_for("moving to on-demand capacity")
    first.wait_for("-od\n")  # running on its -od Job
    first.send(signal.SIGKILL)
    first.wait()

    rerun = gcs_scenario.run("Slow", "--seconds", "12", workspace=cache, run_id="run-2", env=moves)
    assert rerun.wait() == 0, rerun.stderr
    assert "adopted running Job slow-" in rerun.stderr and "-od" in rerun.stderr
    assert cached_families(gcs_emulator.url, cache) == {"Slow"}
    attempts = read_attempts(gcs_scenario.attempt_log)
    assert overlaps(attempts) == []
    # The evicted one on Spot and the one on on-demand capacity (and perhaps the Spot Job's own
    # replacement pod, stopped before the -od Job was submitted) -- one after the other.
    assert len(attempts) >= 2
    assert [name for name in gcs_scenario.jobs() if name.startswith("slow-")] == [
        next(n for n in gcs_scenario.jobs() if n.endswith("-od"))
    ]


def test_a_rerun_replaces_its_failed_job_under_the_same_name_without_calling_it_deleted(
    gcs_scenario: Scenario, gcs_emulator: FakeGCSServer, cache: str
) -> None:
    gcs_scenario.start_cluster()
    first = gcs_scenario.run("CrashOnce", "--tag", "x", workspace=cache, run_id="run-1")
    assert first.wait() == 1, first.stderr  # crashed (exit 1), backoff_limit 0: the step failed

    rerun = gcs_scenario.run("CrashOnce", "--tag", "x", workspace=cache, run_id="run-2")
    assert rerun.wait() == 0, rerun.stderr
    assert DELETED not in rerun.stderr
    assert "1/1 steps done, 0 failed" in rerun.stdout
    assert cached_families(gcs_emulator.url, cache) == {"CrashOnce"}
    attempts = read_attempts(gcs_scenario.attempt_log)
    assert len(attempts) == 2 and overlaps(attempts) == []


def test_a_replacement_driver_of_the_same_run_does_not_run_a_step_with_a_code_error_again(
    gcs_scenario: Scenario, cache: str
) -> None:
    gcs_scenario.start_cluster()
    first = gcs_scenario.run("Faulty", "--tag", "y", workspace=cache, run_id="nightly-1")
    assert first.wait() == 1, first.stderr
    assert "ValueError: bad input row in y" in first.stderr

    # A scheduled run's driver pod started again (same run id): the failure stands, reported once more.
    again = gcs_scenario.run("Faulty", "--tag", "y", workspace=cache, run_id="nightly-1")
    assert again.wait() == 1, again.stderr
    assert DELETED not in again.stderr
    assert "user_error (exit 42)" in again.stderr and "it was not retried" in again.stderr
    attempts = read_attempts(gcs_scenario.attempt_log)
    assert len(attempts) == 1  # the step ran once, not once per driver


def test_a_replacement_driver_of_the_same_run_adopts_the_running_step(
    gcs_scenario: Scenario, gcs_emulator: FakeGCSServer, cache: str
) -> None:
    gcs_scenario.start_cluster()
    first = gcs_scenario.run("End", "--seconds", "6", "--tag", "z", workspace=cache, run_id="nightly-2")
    first.wait_for("running    Slow")
    first.send(signal.SIGKILL)
    first.wait()

    replacement = gcs_scenario.run("End", "--seconds", "6", "--tag", "z", workspace=cache, run_id="nightly-2")
    assert replacement.wait() == 0, replacement.stderr
    assert DELETED not in replacement.stderr
    assert "adopted running Job slow-" in replacement.stderr
    assert "3/3 steps done, 0 failed" in replacement.stdout
    assert cached_families(gcs_emulator.url, cache) == {"Slow", "Middle", "End"}
    attempts = read_attempts(gcs_scenario.attempt_log)
    assert sorted(a.step for a in attempts) == ["End", "Middle", "Slow"]  # each step once
    assert overlaps(attempts) == []
