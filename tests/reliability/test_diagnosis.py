"""What the run says happened: a kill is not an out-of-memory, advice names the next class, every attempt shows.

Real processes: a ``gokart-k8s local-cluster start`` cluster (its kubelet reports ``OOMKilled``
only for a container over its memory limit) and ``gokart-k8s run … --backend kubernetes``
drivers, with a ``gs://`` cache on fake-gcs-server.
"""

from __future__ import annotations

import re

import pytest

from gokart_k8s.testing.gcs import FakeGCSServer
from tests.reliability.driver_support import (
    Scenario,
    cached_families,
    read_attempts,
)

pytest_plugins = ["gokart_k8s.testing.gcs", "tests.reliability.driver_support"]


@pytest.fixture
def cache(gcs_emulator: FakeGCSServer) -> str:
    return f"gs://{gcs_emulator.create_bucket()}/ws"


def test_a_pod_killed_by_sigkill_is_reported_as_killed_and_the_retry_it_cost_is_listed(
    gcs_scenario: Scenario, gcs_emulator: FakeGCSServer, cache: str
) -> None:
    gcs_scenario.start_cluster()
    driver = gcs_scenario.run(
        "KilledOnce", "--tag", "k", workspace=cache, run_id="run-1", env={"GOKART_K8S_BACKOFF_LIMIT": "1"}
    )
    assert driver.wait() == 0, driver.stderr
    err = driver.stderr
    assert re.search(r"KilledOnce: attempt 1: pod killedonce-\S+ on node \S+.*: killed \(SIGKILL, exit 137\)", err), err
    assert re.search(r"KilledOnce: attempt 2: pod killedonce-\S+ on node \S+.*: succeeded", err), err
    assert "out of memory" not in err and "highmem" not in err
    assert cached_families(gcs_emulator.url, cache) == {"KilledOnce"}
    assert len(read_attempts(gcs_scenario.attempt_log)) == 2


def test_a_step_failed_by_sigkill_gets_the_advice_for_a_kill_not_for_memory(gcs_scenario: Scenario, cache: str) -> None:
    gcs_scenario.start_cluster()
    driver = gcs_scenario.run("KilledOnce", "--tag", "k0", workspace=cache, run_id="run-1")
    assert driver.wait() == 1, driver.stderr
    err = driver.stderr
    assert "Step KilledOnce was killed (SIGKILL, exit 137) without the kubelet reporting OOMKilled." in err
    assert "kubectl describe node" in err
    assert "ran out of memory" not in err


def test_a_step_out_of_memory_is_told_the_next_class_up_of_the_catalog(gcs_scenario: Scenario, cache: str) -> None:
    gcs_scenario.start_cluster()
    driver = gcs_scenario.run("Greedy", workspace=cache, run_id="run-1")
    assert driver.wait() == 1, driver.stderr
    err = driver.stderr
    assert "Step Greedy ran out of memory on resource class 'snug' (300Mi)." in err
    # 'roomy' (700Mi, from the scenario's luigi.cfg) is the next class up, not the largest (highmem, 32Gi).
    assert "Use a bigger class (the next one up is 'roomy')" in err
    assert re.search(r"Greedy: attempt 1: pod greedy-\S+ on node \S+.*: out_of_memory \(OOMKilled, exit 137\)", err)
