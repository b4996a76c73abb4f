"""A step's Job is the step *and* where it writes: drivers with different caches never share Jobs.

Real processes: a ``gokart-k8s local-cluster start`` cluster, drivers as ``gokart-k8s run …
--backend kubernetes`` processes, ``gs://`` caches on fake-gcs-server, and the attempt log each
step writes from inside its pod.
"""

from __future__ import annotations

from gokart_k8s.testing.gcs import FakeGCSServer
from tests.reliability.driver_support import (
    Scenario,
    cached_families,
    overlaps,
    read_attempts,
)

pytest_plugins = ["gokart_k8s.testing.gcs", "tests.reliability.driver_support"]

CHAIN = {"Slow", "Middle", "End"}


def test_two_drivers_with_different_gs_caches_each_run_every_step_into_their_own_cache(
    gcs_scenario: Scenario, gcs_emulator: FakeGCSServer
) -> None:
    bucket = gcs_emulator.create_bucket()
    cache_a, cache_b = f"gs://{bucket}/cache-a", f"gs://{bucket}/cache-b"
    gcs_scenario.start_cluster()
    first = gcs_scenario.run("End", "--seconds", "6", "--tag", "same", workspace=cache_a, run_id="run-a")
    first.wait_for("running    Slow")
    # The same pipeline, the same parameters, the same namespace -- another cache.
    second = gcs_scenario.run("End", "--seconds", "6", "--tag", "same", workspace=cache_b, run_id="run-b")

    assert second.wait() == 0, second.stderr
    assert first.wait() == 0, first.stderr
    assert "adopted" not in second.stderr  # the first driver's Jobs write elsewhere
    assert "3/3 steps done, 0 failed" in second.stdout
    # Reported done means in *this* run's cache.
    assert cached_families(gcs_emulator.url, cache_a) == CHAIN
    assert cached_families(gcs_emulator.url, cache_b) == CHAIN
    # From the steps' side: each step ran once per cache, never twice at once.
    attempts = read_attempts(gcs_scenario.attempt_log)
    ran = sorted((a.step, a.workspace.rstrip("/")) for a in attempts)
    assert ran == sorted((step, cache) for step in CHAIN for cache in (cache_a, cache_b))
    assert overlaps(attempts) == []
