"""A step's log shows the step's own output: no luigi boilerplate, an eviction as one line, a failure's
traceback once with the exception as the verdict; ``--verbose`` shows everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.cli import main
from gokart_k8s.conventions import EXIT_EVICTED, EXIT_OK, EXIT_USER_ERROR
from gokart_k8s.entrypoint import step_argv
from gokart_k8s.settings import load_settings
from gokart_k8s.steps import spec_for
from tests.core.pipelines import Boom, Chatty, Snoozer

REPO = Path(__file__).resolve().parents[2]
BOILERPLATE = ("Luigi Execution Summary", "Informed scheduler", "Running Worker", "Worker Worker(")


def pod_command(task: Any, workspace: Path, **env: str) -> tuple[list[str], dict[str, str]]:
    argv = step_argv(spec_for(task, load_settings()))
    environ = {**os.environ, "PYTHONPATH": str(REPO), "GOKART_K8S_WORKSPACE": f"{workspace}/", **env}
    environ.pop("LUIGI_CONFIG_PATH", None)
    return [sys.executable, "-m", "gokart_k8s", *argv[1:]], environ


def run_in_pod(task: Any, workspace: Path, **env: str) -> subprocess.CompletedProcess[str]:
    command, environ = pod_command(task, workspace, **env)
    return subprocess.run(command, cwd=workspace, env=environ, capture_output=True, text=True, timeout=120)


def test_a_step_log_is_the_steps_own_prints_and_logging_without_luigi_boilerplate(tmp_path: Path) -> None:
    done = run_in_pod(Chatty(), tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    log = done.stdout + done.stderr
    assert "hello from the step" in done.stdout
    assert "INFO chatty: a log line of the step" in done.stderr
    assert not [b for b in BOILERPLATE if b in log], log
    assert len(log.strip().splitlines()) == 2, log


def test_verbose_keeps_luigis_own_lines(tmp_path: Path) -> None:
    done = run_in_pod(Chatty(), tmp_path, GOKART_K8S_VERBOSE="1")
    assert done.returncode == EXIT_OK, done.stderr
    assert all(b in done.stderr for b in BOILERPLATE), done.stderr
    assert done.stderr.count("Luigi Execution Summary") == 2  # luigi's own lines, once each: no duplicates


def test_a_failure_shows_its_traceback_once_and_the_exception_as_its_verdict(tmp_path: Path) -> None:
    done = run_in_pod(Boom(), tmp_path)
    assert done.returncode == EXIT_USER_ERROR
    lines = done.stderr.strip().splitlines()
    assert done.stderr.count("Traceback (most recent call last)") == 1
    assert 'tests/core/pipelines.py", line' in done.stderr and "luigi/worker.py" not in done.stderr
    assert lines[-1] == "gokart-k8s step: step Boom failed: RuntimeError: the step's own code failed"
    assert not [b for b in BOILERPLATE if b in done.stderr], done.stderr


def test_an_eviction_is_one_line(tmp_path: Path) -> None:
    command, environ = pod_command(Snoozer(), tmp_path)
    environ.pop("PYTHONUNBUFFERED", None)  # as in a container: stdout is a pipe
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    guard = threading.Timer(90, proc.kill)  # a line that never comes ends this test, not the suite
    guard.start()
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"  # the step's print arrives while it runs
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_EVICTED
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and "SIGTERM received (eviction or preemption)" in lines[0], lines


def test_inline_step_output_goes_to_stderr_prefixed_and_the_summary_alone_to_stdout(capsys: Any) -> None:
    assert main(["run", "tests.core.pipelines.Chatty"]) == 0
    out, err = capsys.readouterr()
    assert "[Chatty] hello from the step" in err and "[Chatty] INFO chatty: a log line of the step" in err
    assert "hello" not in out and out.splitlines()[0].startswith("STEP")
    # The summary ends with where the root's output is, ready to copy.
    from tests.core.pipelines import Chatty as Root

    assert out.splitlines()[-1] == f"output: {Path(Root().output().path()).resolve()}"
    assert not [b for b in BOILERPLATE if b in out + err]

    assert main(["run", "tests.core.pipelines.Boom"]) == 1
    out, err = capsys.readouterr()
    assert err.count("Traceback (most recent call last)") == 1 and "[Boom] Traceback" in err
    assert "[Boom] RuntimeError: the step's own code failed" in err
    assert "Traceback" not in out


def test_a_failed_step_on_a_cluster_shows_its_traceback_once_and_a_one_line_verdict(capsys: Any) -> None:
    assert main(["run", "tests.core.pipelines.Boom", "--backend", "local-cluster"]) == 1
    out, err = capsys.readouterr()
    assert err.count("Traceback (most recent call last)") == 1, err
    assert "failed     Boom  Step Boom failed: RuntimeError: the step's own code failed" in err
    assert not [b for b in BOILERPLATE if b in out + err]
    row = next(line for line in out.splitlines() if line.startswith("Boom"))
    assert row.endswith("Step Boom failed: RuntimeError: the step's own code failed …")
    assert "Traceback" not in out


def interrupt_run(tmp_path: Path, *extra: str) -> tuple[int, str, str]:
    """Start `gokart-k8s run Snoozer`, press Ctrl-C (SIGINT) once the step runs; exit status and output."""
    (tmp_path / "luigi.cfg").write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path}/ws/\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}
    command = [sys.executable, "-m", "gokart_k8s", "run", "tests.core.pipelines.Snoozer", *extra]
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # blocks until the step has started
            err.append(line)
            if "[Snoozer] started" in line:
                break
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, "".join(err) + rest


@pytest.mark.parametrize("backend", ["inline", "local-cluster"])
def test_an_interrupted_run_says_interrupted_in_its_summary_and_exits_130(tmp_path: Path, backend: str) -> None:
    code, out, err = interrupt_run(tmp_path, "--backend", backend)
    assert code == 130, err
    row = next(line for line in out.splitlines() if line.startswith("Snoozer"))
    assert row.split()[1] == "interrupted"
    assert "0/1 steps done, 0 failed, 1 interrupted" in out and "Traceback" not in err


def test_verbose_reaches_every_pod_and_the_inline_backend(capsys: Any) -> None:
    from gokart_k8s.runner import pod_env, prepare_plan
    from gokart_k8s.settings import load_settings
    from gokart_k8s.steplog import VERBOSE_ENV

    plan = prepare_plan([Chatty()], load_settings(), "local-cluster")
    assert pod_env(plan, "r1", verbose=True)[VERBOSE_ENV] == "1"
    assert VERBOSE_ENV not in pod_env(plan, "r1")

    assert main(["run", "tests.core.pipelines.Chatty", "--verbose"]) == 0
    out, err = capsys.readouterr()
    assert "[Chatty] hello from the step" in err and "Luigi Execution Summary" in err
    assert "Luigi Execution Summary" not in out
