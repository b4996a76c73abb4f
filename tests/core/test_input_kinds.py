"""What plan passes, run can do: luigi's external and plain tasks, and bad input as one clear error.

Each CLI case runs ``gokart-k8s`` as a subprocess, so "no traceback" and the exit status are what a
user sees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gokart_k8s.errors import ClusterError
from gokart_k8s.plan import make_plan
from gokart_k8s.settings import Settings
from tests.core.input_pipelines import Tally

REPO = Path(__file__).resolve().parents[2]
PIPELINES = "tests.core.input_pipelines"


def gokart_k8s(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_") and k != "LUIGI_CONFIG_PATH"}
    environ.update(PYTHONPATH=str(REPO), **env)
    return subprocess.run(
        [sys.executable, "-m", "gokart_k8s", *argv], cwd=cwd, env=environ, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    (tmp_path / "raw.txt").write_text("a cat and the dog\n")
    return tmp_path


def test_plan_shows_an_external_task_as_an_input_that_exists_and_a_plain_luigi_task_as_a_step(raw: Path) -> None:
    done = gokart_k8s(raw, "plan", f"{PIPELINES}.Tally", "--path", "raw.txt", "--backend", "local-cluster")
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:-1]}
    assert re.search(r"external input\s+-\s+yes\s+not run: must already exist", rows["RawData"])
    assert "Tally" in rows and "Stopwords" in rows
    assert "2 steps, 0 cached, 1 external input" in done.stdout

    listed = gokart_k8s(raw, "plan", f"{PIPELINES}.Tally", "--path", "raw.txt", "-O", "json", "--backend", "inline")
    plan = json.loads(listed.stdout)
    assert [i["family"] for i in plan["inputs"]] == ["RawData"] and plan["inputs"][0]["complete"] is True
    assert [s["family"] for s in plan["steps"]] == ["Stopwords", "Tally"]
    # A plain luigi task gets a unique id that can name a Job: 32 hex digits, like gokart's.
    [tally] = [s for s in plan["steps"] if s["family"] == "Tally"]
    assert re.fullmatch(r"[0-9a-f]{32}", tally["unique_id"])


def test_a_missing_external_input_is_a_plan_problem_that_names_it(tmp_path: Path) -> None:
    done = gokart_k8s(tmp_path, "plan", f"{PIPELINES}.Tally", "--path", "absent.txt", "--backend", "local-cluster")
    assert done.returncode == 2
    assert re.search(r"RawData\s+-\s+external input\s+-\s+MISSING", done.stdout)
    assert "input RawData is missing" in done.stderr and "(absent.txt) does not exist" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("backend", ["inline", "local-cluster"])
def test_run_uses_the_external_input_and_runs_the_plain_luigi_task_as_a_step(raw: Path, backend: str) -> None:
    done = gokart_k8s(raw, "run", f"{PIPELINES}.Tally", "--path", "raw.txt", "--backend", backend)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2/2 steps done, 0 failed" in done.stdout
    # Never submitted, never shown as a step: the summary lists the two steps only.
    assert "RawData" not in done.stdout
    assert (raw / "raw.txt.tally").read_text() == "3"  # "cat", "and", "dog"
    assert (raw / "raw.txt").read_text() == "a cat and the dog\n"


def test_on_the_cluster_a_plain_luigi_task_or_input_with_a_local_file_is_refused_in_the_plan(
    raw: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(raw)
    plan = make_plan(
        [Tally(path="raw.txt")],
        Settings(image="pipeline:1"),
        backend="kubernetes",
        workspace="gs://bucket/cache/",
        check_cache=False,
    )
    assert [i.step.spec.family for i in plan.inputs] == ["RawData"] and plan.inputs[0].complete is None
    assert len(plan.problems) == 2
    assert plan.problems[0].startswith("input RawData is a plain luigi task whose output is the local file 'raw.txt'")
    assert plan.problems[1].startswith(
        "step Tally is a plain luigi task whose output is the local file 'raw.txt.tally'"
    )
    assert all("Make it a gokart.TaskOnKart" in p for p in plan.problems)


def test_render_refuses_the_local_files_too_and_writes_no_job_for_an_input(raw: Path) -> None:
    argv = ["render", f"{PIPELINES}.Tally", "--path", "raw.txt", "--image", "pipeline:1", "-o", "jobs"]
    done = gokart_k8s(raw, *argv, "--workspace", "gs://bucket/cache/")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "2 problems in the pipeline; no file was written" in done.stderr
    assert not (raw / "jobs").exists()


@pytest.mark.parametrize(
    ("task", "step"),
    [("BuildsWeighted", "Weighted (made in BuildsWeighted.requires())"), ("BuildsQuietlyWeighted", "QuietlyWeighted")],
    ids=["significant", "insignificant"],
)
def test_a_numpy_array_in_a_dict_parameter_is_one_plan_problem_naming_the_parameter(
    tmp_path: Path, task: str, step: str
) -> None:
    done = gokart_k8s(tmp_path, "plan", f"{PIPELINES}.{task}", "--backend", "inline")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    problems = [line for line in done.stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == 1, done.stderr
    assert f"step {step}: parameter 'weights' holds a value luigi cannot write as a string" in problems[0]
    assert "ndarray is not JSON serializable" in problems[0] and "array.tolist()" in problems[0]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"apiVersion: v1\nclusters: [ {name: x\n\tbad", "it does not parse as YAML at line 3, column 1"),
        (b"just some words\n", "it is YAML, but a str, not a mapping"),
        (b"- a\n- b\n", "it is YAML, but a list, not a mapping"),
        (b"\x00\xff\xfe", "it is not text"),
    ],
    ids=["not-yaml", "a-word", "a-list", "binary"],
)
def test_a_kubeconfig_that_is_not_one_is_one_clear_error_naming_the_file(
    tmp_path: Path, content: bytes, says: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(content)
    done = gokart_k8s(tmp_path, "schedule", "list", KUBECONFIG=str(kubeconfig))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"gokart-k8s: error: The kubeconfig {kubeconfig} is not a kubeconfig: {says}")
    assert "point KUBECONFIG at a working one" in done.stderr


def test_the_drivers_cluster_adapter_checks_the_kubeconfig_the_same_way(tmp_path: Path) -> None:
    from gokart_k8s.cluster.kubernetes import connect

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("clusters: [\n")
    with pytest.raises(ClusterError, match=f"The kubeconfig {kubeconfig} is not a kubeconfig: it does not parse"):
        connect(kubeconfig=str(kubeconfig))
