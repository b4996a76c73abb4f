"""Every run leaves a record; `gokart-k8s runs` lists them and `gokart-k8s report` shows one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.cli import main
from gokart_k8s.history import load_record
from gokart_k8s.history.store import open_store

pytest_plugins = ["gokart_k8s.testing.gcs"]
pytestmark = pytest.mark.timeout(240)


def test_an_inline_run_is_recorded_listed_and_reported_in_every_format(tmp_path: Path, capsys: Any) -> None:
    assert main(["run", "tests.core.pipelines.Summarise", "--n", "4", "--run-id", "first"]) == 0
    summary = capsys.readouterr().out
    report = tmp_path / "resources" / "gokart_k8s" / "runs" / "first" / "report.html"
    # The end-of-run summary names the report.
    assert f"run first: report {report}" in summary and report.is_file()
    assert main(["run", "tests.core.pipelines.Boom", "--run-id", "second"]) == 1
    capsys.readouterr()

    assert main(["runs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["RUN", "ROOT", "STARTED", "DURATION", "STATE"]
    # Newest first; steps done/failed, evictions, redone time and cost per run.
    assert [line.split()[0] for line in lines[1:]] == ["second", "first"]
    assert re.match(r"second\s+Boom\s+\S+ \S+\s+\S+\s+failed\s+0/1\s+1\s+0\s+0:00\s+-", lines[1]), lines[1]
    assert re.match(r"first\s+Summarise\s+\S+ \S+\s+\S+\s+succeeded\s+3/3\s+0\s+0\s+0:00\s+-", lines[2]), lines[2]

    record = load_record(open_store(str(tmp_path / "resources")), "first")
    assert record.backend == "inline" and record.root["params"] == {"n": "4"}
    assert [(s.family, s.state, len(s.attempts)) for s in record.steps] == [
        ("Source", "succeeded", 1),
        ("Train", "succeeded", 1),
        ("Summarise", "succeeded", 1),
    ]
    assert all(s.outputs and s.outputs[0].startswith(str(tmp_path)) for s in record.steps)

    assert main(["report", "latest", "--format", "json", "-o", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["run_id"] == "second"
    assert main(["report", "first", "--format", "trace", "-o", str(tmp_path / "t.json")]) == 0
    trace = json.loads((tmp_path / "t.json").read_text())
    assert {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "thread_name"} == {
        "Source",
        "Train",
        "Summarise",
    }
    assert main(["report", "first", "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().count('class="attempt"') == 3


def test_a_rerun_with_everything_cached_records_a_run_of_cached_steps(capsys: Any) -> None:
    assert main(["run", "tests.core.pipelines.Summarise", "--run-id", "a"]) == 0
    assert main(["run", "tests.core.pipelines.Summarise", "--run-id", "b"]) == 0
    capsys.readouterr()
    assert main(["report", "b", "--format", "json", "-o", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(s["state"], s["cached"], s["attempts"]) for s in data["steps"]] == [("cached", True, [])] * 3


def test_an_unknown_run_is_one_clear_error(capsys: Any) -> None:
    assert main(["report", "no-such-run"]) == 2
    err = capsys.readouterr().err
    assert "There is no run 'no-such-run'" in err and "gokart-k8s runs" in err and "Traceback" not in err
    assert main(["report", "latest"]) == 2
    assert "no recorded runs" in capsys.readouterr().err


def test_a_rehearsal_on_a_gs_cache_writes_its_record_into_the_bucket(gcs_bucket: str, capsys: Any) -> None:
    workspace = f"gs://{gcs_bucket}/ws"
    argv = ["run", "tests.core.pipelines.Summarise", "--backend", "local-cluster", "--workspace", workspace]
    assert main([*argv, "--run-id", "on-gcs"]) == 0
    assert f"run on-gcs: report {workspace}/gokart_k8s/runs/on-gcs/report.html" in capsys.readouterr().out
    record = load_record(open_store(workspace), "on-gcs")
    assert record.state == "succeeded" and record.backend == "local-cluster"
    attempts = [a for s in record.steps for a in s.attempts]
    assert len(attempts) == 3 and all(a.node and a.pool and a.outcome == "succeeded" for a in attempts)
    # Seen live by the driver's watch: times finer than the API's whole seconds.
    assert any(a.submitted is not None and a.submitted % 1 for a in attempts)
    assert {n.name for n in record.nodes or []} == {a.node for a in attempts}
    assert main(["runs", "--workspace", workspace]) == 0
    assert "on-gcs" in capsys.readouterr().out


def test_a_running_record_whose_driver_went_silent_says_so() -> None:
    from gokart_k8s.history.command import runs_table
    from gokart_k8s.history.record import RunRecord

    live = RunRecord(run_id="live", start=1000.0, updated=1990.0, state="running")
    dead = RunRecord(run_id="dead", start=1000.0, updated=1100.0, state="running")
    table = runs_table([live, dead], now=2000.0).splitlines()
    assert "running" in table[1] and "silent" not in table[1]
    assert "running? (silent 15:00)" in table[2]


def test_records_in_a_bucket_that_does_not_exist_are_one_clear_error(gcs_bucket: str, capsys: Any) -> None:
    assert main(["runs", "--workspace", f"gs://{gcs_bucket}-missing/ws"]) == 2
    err = capsys.readouterr().err
    assert "Cannot read the run records at gs://" in err and "Traceback" not in err


def test_the_report_of_a_run_whose_driver_died_says_so_and_ends_at_its_last_news(tmp_path: Path, capsys: Any) -> None:
    from gokart_k8s.history import RunRecorder

    store = open_store(str(tmp_path / "resources"))
    old = RunRecorder(store, "dead", clock=lambda: 1_000_000.0, render=None)
    old.start({"backend": "kubernetes", "root": {"family": "Nightly"}}, [])
    old._flush()
    old._stop.set()  # killed: never finishes
    assert main(["report", "dead", "-o", str(tmp_path / "dead.html")]) == 0
    page = (tmp_path / "dead.html").read_text()
    assert "running? (silent" in page and "duration: <b>0.0 s</b>" in page
