"""The API server gone mid-run: the driver says so at once, retries for a bounded time, then stops clearly.

Real processes: the ``gokart-k8s local-cluster start`` process is stopped (SIGTERM) while a
``gokart-k8s run … --backend kubernetes`` driver follows a running step.
"""

from __future__ import annotations

import signal

from gokart_k8s.testing.gcs import FakeGCSServer
from tests.reliability.driver_support import Scenario

pytest_plugins = ["gokart_k8s.testing.gcs", "tests.reliability.driver_support"]


def test_a_driver_that_loses_the_api_server_says_so_retries_then_stops_with_advice(
    gcs_scenario: Scenario, gcs_emulator: FakeGCSServer
) -> None:
    cache = f"gs://{gcs_emulator.create_bucket()}/ws"
    gcs_scenario.start_cluster()
    driver = gcs_scenario.run(
        "Slow",
        "--seconds",
        "600",
        workspace=cache,
        run_id="run-1",
        env={"GOKART_K8S_API_UNREACHABLE_TIMEOUT_SECONDS": "5"},
    )
    driver.wait_for("running    Slow")
    assert gcs_scenario.cluster is not None
    gcs_scenario.cluster.send_signal(signal.SIGTERM)  # the API server goes away
    driver.wait_for("cluster unreachable, retrying for up to 5 s")
    # Bounded: the driver ends by itself (the wait fails the test if it hangs), with an error.
    assert driver.wait(timeout=180) == 1
    err = driver.stderr
    assert "The Kubernetes API did not answer for" in err
    assert "api_unreachable_timeout_seconds=5" in err
    assert "may still be running" in err and "slow-" in err
    assert "Run the same command again once the cluster answers: it adopts the running Jobs" in err
