"""A recorder writes as the run goes: a killed driver leaves a readable record, a rerun continues it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.history import RunRecorder, list_records, load_record
from gokart_k8s.history.store import RecordStore, open_store
from gokart_k8s.steps import StepSpec
from gokart_k8s.testing.cluster import wait_for
from tests.planning.specimens import make_spec

pytest_plugins = ["gokart_k8s.testing.gcs"]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["local", "gcs"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RecordStore:
    """A record store on a local directory and on the GCS emulator (gs://)."""
    if request.param == "local":
        return open_store(str(tmp_path / "ws"))
    bucket = request.getfixturevalue("gcs_bucket")
    return open_store(f"gs://{bucket}/ws")


def pod(name: str, *, phase: str = "Pending", node: str | None = None, exit_code: int | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if phase == "Running":
        state = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
    elif exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "startedAt": "2026-01-01T00:00:01Z",
                "finishedAt": "2026-01-01T00:00:05Z",
            }
        }
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"job-name": name.rsplit("-", 1)[0], "gokart-k8s.io/capacity": "spot"},
        },
        "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]},
        "status": {"phase": phase, "containerStatuses": [{"state": state}] if state else []},
    }


class Ended:
    class kind:  # stands in for OutcomeKind
        value = "evicted"

    reason = "TerminationByKubelet"


def recorder(store: RecordStore, run_id: str = "r1") -> RunRecorder:
    return RunRecorder(store, run_id, flush_seconds=0.05, snapshot_seconds=0.1, render=lambda r: "<html>")


def events_written(store: RecordStore, run_id: str, count: int) -> Callable[[], bool]:
    return lambda: sum(c.count(b"\n") for c in store.read_events(run_id)) >= count


def test_a_driver_killed_mid_run_leaves_a_readable_record_and_the_rerun_continues_it(store: RecordStore) -> None:
    spec: StepSpec = make_spec(family="Train")
    facts = [{"unique_id": spec.unique_id, "family": "Train", "cached": False}]
    first = recorder(store)
    first.start({"backend": "kubernetes", "root": {"family": "Train"}}, facts)
    first.pod_seen(spec, pod("train-a", phase="Running", node="spot-0"))
    first.pod_ended(spec, pod("train-a", phase="Failed", node="spot-0", exit_code=143), Ended())
    first.pod_seen(spec, pod("train-b", phase="Running", node="spot-1"))
    # Killed: never finishes. What it flushed is the record.
    wait_for(events_written(store, "r1", 5), timeout=30, interval=0.05, what="events flushed")
    wait_for(lambda: store.read("r1", "record.json") is not None, timeout=30, interval=0.05, what="snapshot")
    partial = load_record(store, "r1")
    assert partial.state == "running"
    (train,) = partial.steps
    assert [(a.pod, a.outcome) for a in train.attempts] == [("train-a", "evicted"), ("train-b", None)]
    assert train.attempts[0].exit_code == 143 and train.attempts[1].node == "spot-1"
    first._stop.set()  # the thread of a killed process is gone too

    second = recorder(store)
    second.start({"backend": "kubernetes"}, facts)
    second.pod_seen(spec, pod("train-b", phase="Succeeded", node="spot-1", exit_code=0))
    second.step_state(spec, "succeeded")
    assert second.finish("succeeded") == store.path("r1", "report.html")
    record = load_record(store, "r1")
    assert [d.state for d in record.drivers] == ["lost", "succeeded"] and record.state == "succeeded"
    assert [(a.pod, a.driver) for a in record.steps[0].attempts] == [
        ("train-a", first.driver_id),
        ("train-b", first.driver_id),
    ]
    assert record.steps[0].attempts[1].ended is not None and record.steps[0].state == "succeeded"
    snapshot = json.loads(store.read("r1", "record.json") or b"{}")
    assert snapshot["state"] == "succeeded" and len(snapshot["drivers"]) == 2
    assert [r.run_id for r in list_records(store)] == ["r1"]


def test_an_inline_attempt_is_the_step_from_running_to_its_end(store: RecordStore) -> None:
    spec = make_spec(family="Train")
    rec = RunRecorder(store, "inline-run", inline=True, render=None)
    rec.start({"backend": "inline"}, [{"unique_id": spec.unique_id, "family": "Train"}])
    rec.step_state(spec, "running")
    rec.step_state(spec, "failed", "RuntimeError: boom")
    rec.finish("failed")
    (attempt,) = load_record(store, "inline-run").steps[0].attempts
    assert attempt.outcome == "failed" and attempt.reason == "RuntimeError: boom"
    assert attempt.started is not None and attempt.ended is not None and attempt.pod is None


def test_a_pod_that_never_ran_ends_abandoned_when_its_step_moves_to_a_new_job(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "ws"))
    spec = make_spec(family="Train")
    rec = recorder(store, "moved")
    rec.start({"backend": "kubernetes"}, [{"unique_id": spec.unique_id, "family": "Train"}])
    rec.pod_seen(spec, pod("train-x"))  # Pending on Spot, never scheduled
    rec.pod_seen(spec, pod("train-od-y", phase="Running", node="od-0"))  # the on-demand Job's pod
    rec.finish("running")
    attempts = {a.job: a for a in load_record(store, "moved").steps[0].attempts}
    assert (attempts["train"].outcome, attempts["train"].started) == ("abandoned", None)
    assert attempts["train"].ended is not None
    assert (attempts["train-od"].outcome, attempts["train-od"].ended) == (None, None)


class BrokenStore:
    """A cache that refuses every write (full disk, revoked permission)."""

    location = "/nowhere"

    def run_ids(self) -> list[str]:
        return []

    def append_events(self, run_id: str, driver: str, sequence: int, data: bytes) -> None:
        raise OSError("No space left on device")

    def read_events(self, run_id: str) -> list[bytes]:
        return []

    def write(self, run_id: str, name: str, data: bytes) -> str:
        raise OSError("No space left on device")

    def read(self, run_id: str, name: str) -> bytes | None:
        return None

    def path(self, run_id: str, name: str) -> str:
        return f"/nowhere/{run_id}/{name}"


def test_a_cache_that_cannot_be_written_costs_one_warning_never_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    spec = make_spec(family="Train")
    rec = RunRecorder(BrokenStore(), "r", flush_seconds=0.01, render=lambda r: "<html>")
    rec.start({"backend": "kubernetes"}, [{"unique_id": spec.unique_id, "family": "Train"}])
    rec.pod_seen(spec, pod("train-a", phase="Running", node="n"))
    rec.step_state(spec, "succeeded")
    assert rec.finish("succeeded") is None
    err = capsys.readouterr().err
    assert err.count("could not write") == 1 and "No space left on device" in err
    # What it could not write is still known to this driver.
    assert rec.record().steps[0].state == "succeeded"


def test_a_pricer_fills_the_costs_of_the_snapshot(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "ws"))
    spec = make_spec(family="Train")
    rec = RunRecorder(store, "priced", render=None, pricer=lambda a: 0.5 if a.capacity_type == "spot" else None)
    rec.start({"backend": "kubernetes"}, [{"unique_id": spec.unique_id, "family": "Train"}])
    rec.pod_seen(spec, pod("train-a", phase="Running", node="n"))
    rec.finish("succeeded")
    snapshot = json.loads(store.read("priced", "record.json") or b"{}")
    assert snapshot["cost"] == 0.5 and snapshot["steps"][0]["attempts"][0]["cost"] == 0.5
