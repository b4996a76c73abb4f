"""The gokart-k8s command: plan, inline run, and a clear error for each kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.cli import main

REPO = Path(__file__).resolve().parents[2]
PIPELINES = "tests.core.pipelines"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_prints_one_row_per_step_with_class_tolerance_cache_and_placement(capsys: Any) -> None:
    code, out, _err = run_cli(capsys, "plan", f"{PIPELINES}.Summarise", "--n", "5", "--backend", "inline")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["STEP", "UNIQUE", "ID", "RESOURCE", "CLASS", "EVICTION", "CACHED", "PLACEMENT"]
    rows = {line.split()[0]: line for line in lines[1:4]}
    assert set(rows) == {"Source", "Train", "Summarise"}
    assert "highmem (4 cpu, 32Gi)" in rows["Train"] and "protect" in rows["Train"]
    assert "standard (1 cpu, 4Gi)" in rows["Source"] and "tolerate" in rows["Source"]
    assert all(" no " in row for row in rows.values())
    assert "3 steps, 0 cached" in out


def test_a_large_plan_counts_alike_steps_on_one_row_and_all_lists_every_step(capsys: Any) -> None:
    code, out, _err = run_cli(capsys, "plan", f"{PIPELINES}.Star", "--n", "70", "--backend", "inline")
    assert code == 0
    rows = out.splitlines()[1:-2]
    assert [row.split()[:2] for row in rows] == [["Ray", "x70"], ["Star", rows[1].split()[1]]]
    assert "71 steps, 0 cached" in out
    assert "2 rows for 71 steps; --all lists every step" in out

    code, out, _err = run_cli(capsys, "plan", f"{PIPELINES}.Star", "--n", "70", "--backend", "inline", "--all")
    assert code == 0
    rows = out.splitlines()[1:-1]
    assert [row.split()[0] for row in rows] == ["Ray"] * 70 + ["Star"]
    assert len({row.split()[1] for row in rows}) == 71  # each with its own unique id


def test_plan_json_gives_the_same_rows_as_data(capsys: Any) -> None:
    code, out, _err = run_cli(
        capsys, "plan", "--module", PIPELINES, "Summarise", "--output", "json", "--backend", "inline"
    )
    assert code == 0
    data = json.loads(out)
    by_family = {s["family"]: s for s in data["steps"]}
    assert by_family["Train"]["resource_class"]["memory"] == "32Gi"
    assert by_family["Train"]["eviction"] == "protect"
    assert by_family["Summarise"]["cached"] is False
    assert len(by_family["Source"]["unique_id"]) == 32
    assert by_family["Train"]["requires"] == [by_family["Source"]["unique_id"]]
    assert data["ok"] is True and data["problems"] == []


def test_plan_reports_every_problem_in_the_graph_together(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-autopilot\n")
    # A kubernetes run needs an image and a gs:// cache: both missing, both reported at once.
    code, _out, err = run_cli(capsys, "plan", f"{PIPELINES}.Summarise")
    assert code == 2
    # plan submits nothing, so it does not say so: it says what the problems would stop.
    assert "2 problems in the pipeline; a run would stop here" in err
    assert "no container image" in err and "local directory" in err


def test_a_refused_render_says_no_file_was_written_not_that_nothing_was_submitted(
    capsys: Any, luigi_cfg: Any, tmp_path: Path
) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-autopilot\n")
    code, _out, err = run_cli(capsys, "render", f"{PIPELINES}.Summarise", "-o", str(tmp_path / "jobs"))
    assert code == 2
    assert "problems in the pipeline; no file was written" in err
    assert "submitted" not in err
    assert not (tmp_path / "jobs").exists()


def test_plan_marks_cached_steps(capsys: Any) -> None:
    assert main(["run", f"{PIPELINES}.Summarise", "--n", "2"]) == 0
    capsys.readouterr()
    _code, out, _err = run_cli(
        capsys, "plan", f"{PIPELINES}.Summarise", "--n", "2", "--output", "json", "--backend", "inline"
    )
    assert all(step["cached"] for step in json.loads(out)["steps"])


def test_run_inline_builds_the_pipeline_and_prints_progress_and_a_summary(capsys: Any, tmp_path: Path) -> None:
    code, out, err = run_cli(capsys, "run", f"{PIPELINES}.Summarise", "--n", "4", "--backend", "inline")
    assert code == 0
    assert "running    Source" in err and "succeeded  Train" in err
    assert "3/3 steps done, 0 failed" in out
    import gokart

    from tests.core.pipelines import Summarise

    assert gokart.build(Summarise(n=4), reset_register=False) == "total=6"
    # A second run finds everything cached and runs nothing.
    code, out, err = run_cli(capsys, "run", f"{PIPELINES}.Summarise", "--n", "4")
    assert code == 0 and "running" not in err and err.count("cached") == 3


def test_a_failing_step_fails_the_run_with_a_summary(capsys: Any) -> None:
    code, out, err = run_cli(capsys, "run", f"{PIPELINES}.Boom")
    assert code == 1
    assert "failed     Boom  RuntimeError: the step's own code failed" in err
    assert "0/1 steps done, 1 failed" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "no_such_module.Task"], "cannot import module 'no_such_module'"),
        (["plan", "--module", "no_such_module", "Task"], "cannot import --module 'no_such_module'"),
        (["plan", f"{PIPELINES}.NoSuchTask"], "NoSuchTask"),
        (["plan", f"{PIPELINES}.Summarise", "--n", "five"], "task parameters do not parse"),
        (["plan", f"{PIPELINES}.Summarise", "--no-such-param", "1"], "task parameters do not parse"),
        (["plan"], "no task given"),
        (["run", f"{PIPELINES}.Summarise", "--platform", "gke"], "--platform must be one of"),
    ],
    ids=[
        "module-missing",
        "module-flag-missing",
        "task-missing",
        "bad-int",
        "unknown-param",
        "no-task",
        "bad-platform",
    ],
)
def test_bad_input_is_one_clear_error_without_a_traceback(capsys: Any, argv: list[str], message: str) -> None:
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_a_config_error_is_reported_with_file_and_line(capsys: Any, luigi_cfg: Any) -> None:
    path = luigi_cfg("[gokart_k8s.resources.big]\ncpu = 4\nmemory = 4 GB\n")
    code, _out, err = run_cli(capsys, "plan", f"{PIPELINES}.Summarise")
    assert code == 2
    assert f"{path}:3: resource class 'big', field 'memory'" in err


def test_debug_shows_the_traceback(capsys: Any) -> None:
    from gokart_k8s.errors import TaskNotFoundError

    with pytest.raises(TaskNotFoundError):
        main(["--debug", "plan", "no_such_module.Task"])


def test_the_console_script_runs_the_inline_backend_in_a_fresh_process(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}
    (tmp_path / "luigi.cfg").write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path}/ws/\n")
    done = subprocess.run(
        [sys.executable, "-m", "gokart_k8s", "run", f"{PIPELINES}.Summarise", "--n", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "3/3 steps done" in done.stdout


def test_importing_the_package_does_not_import_the_cluster_or_storage_clients() -> None:
    code = (
        "import sys, gokart_k8s, gokart_k8s.cli, gokart_k8s.plan, gokart_k8s.inline\n"
        "bad = [m for m in ('kubernetes', 'google.cloud.storage') if m in sys.modules]\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_parameter_that_changes_on_its_way_to_a_pod_is_a_plan_problem(capsys: Any) -> None:
    from gokart_k8s.settings import load_settings
    from gokart_k8s.steps import collect
    from tests.core.pipelines import Floaty

    _steps, problems = collect([Floaty(x=4)], load_settings())  # an int for a FloatParameter
    assert len(problems) == 1
    assert "x='4' becomes '4.0'" in problems[0] and "4.0 for a FloatParameter" in problems[0]
    from luigi.task_register import Register

    Register.clear_instance_cache()  # luigi would hand back the Floaty(x=4) above for x=4.0
    assert collect([Floaty(x=4.0)], load_settings())[1] == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[gokart_k8s]\nplatform = plain\nthis line is broken\n",
            ":3: the config file does not parse: 'this line is broken'",
        ),
        ("image = x\n", ":1: the config file does not parse: 'image = x' comes before any [section]"),
    ],
    ids=["bad-line", "no-section"],
)
def test_a_config_file_that_does_not_parse_is_one_error_with_file_and_line(
    capsys: Any, luigi_cfg: Any, text: str, message: str
) -> None:
    path = luigi_cfg("")
    path.write_text(text)
    for argv in (["config"], ["plan", f"{PIPELINES}.Summarise"]):
        code, _out, err = run_cli(capsys, *argv)
        assert code == 2
        assert f"{path}{message}" in err
        assert "Traceback" not in err


def test_output_piped_into_a_command_that_stops_reading_is_not_an_error(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LUIGI_CONFIG_PATH", None)
    done = subprocess.run(
        f"{sys.executable} -m gokart_k8s config | head -1",
        shell=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.startswith("config files read")
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
