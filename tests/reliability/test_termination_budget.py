"""The SIGTERM budget holds whatever the step's main thread is doing, and every pod gets it.

Each test runs the real in-pod command (``gokart-k8s step``) or a real rehearsal, sends a real
SIGTERM, and waits with a generous timeout for the outcome; none measures time.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from gokart_k8s.conventions import EXIT_EVICTED, EXIT_OK
from gokart_k8s.entrypoint import step_argv
from gokart_k8s.settings import load_settings
from gokart_k8s.steps import spec_for
from gokart_k8s.termination import BUDGET_ENV
from tests.reliability.conftest import RunFactory
from tests.reliability.harness import (
    REPO,
    DriverProcess,
    gokart_k8s_argv,
    processes,
    wait_for_no_leftovers,
    wait_until,
)
from tests.reliability.pipeline import Crunch, HoldInC

#: Far longer than any budget used here: an attempt that is still alive then did not hold it.
GENEROUS = 90.0


def start_step(run_dir: Path, task: object, env: dict[str, str]) -> DriverProcess:
    spec = spec_for(task, load_settings())
    return DriverProcess(gokart_k8s_argv(*step_argv(spec)[1:]), cwd=run_dir, env=env)


def test_sigterm_inside_a_long_c_call_ends_the_attempt_with_143_when_the_budget_is_spent(
    make_run: RunFactory,
) -> None:
    run = make_run([])
    marker = run.directory / "inside-c"
    step = start_step(run.directory, HoldInC(marker=str(marker)), run.env(**{BUDGET_ENV: "2"}))
    worker = int(wait_until(lambda: marker.exists() and marker.read_text(), GENEROUS, "the step to enter its C call"))
    step.send(signal.SIGTERM)
    # The C call runs for many minutes: only the supervisor can end the attempt within the timeout.
    assert step.wait(GENEROUS) == EXIT_EVICTED, step.stderr[-2000:]
    assert "termination budget of 2 s is spent" in step.stderr
    assert not Path(str(marker) + ".returned").exists()
    assert worker not in {p.pid for p in processes() if p.state != "Z"}
    assert wait_for_no_leftovers(run.directory) == []


def test_sigterm_of_a_step_in_python_code_saves_its_final_checkpoint_and_exits_143(make_run: RunFactory) -> None:
    run = make_run([])
    env = run.env(**{BUDGET_ENV: "30", "GOKART_K8S_WORKSPACE": f"{run.workspace}/"})
    prepare = start_step(run.directory, Crunch(units=1000).requires(), env)
    assert prepare.wait(GENEROUS) == EXIT_OK, prepare.stderr[-2000:]
    step = start_step(run.directory, Crunch(units=1000), env)
    wait_until(lambda: run.attempts().units("Crunch"), GENEROUS, "the first unit of work")
    step.send(signal.SIGTERM)
    assert step.wait(GENEROUS) == EXIT_EVICTED, step.stderr[-2000:]
    assert "termination budget" not in step.stderr  # the worker stopped by itself
    assert list((run.workspace / "gokart_k8s" / "checkpoints").rglob("ckpt-*.pkl"))
    assert wait_for_no_leftovers(run.directory) == []


def test_the_in_process_watchdog_ends_a_step_that_swallows_the_stop_and_keeps_running(tmp_path: Path) -> None:
    # Without a supervisor (the worker alone, or an inline step), the handler's own watchdog
    # thread is what ends a step whose code catches StepTerminated and carries on in Python.
    script = textwrap.dedent(
        """
        import os, signal, time
        from gokart_k8s.termination import install_termination_handler
        def swallow_every_stop():
            while True:
                try:
                    while True:
                        time.sleep(0.05)
                except BaseException:
                    pass

        try:
            install_termination_handler(1.0)
            print("ready", flush=True)
            swallow_every_stop()
        except BaseException:
            swallow_every_stop()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(GENEROUS) == EXIT_EVICTED
    finally:
        proc.kill()
        proc.wait()


def test_every_step_pod_of_a_rehearsal_gets_the_configured_budget(make_run: RunFactory) -> None:
    run = make_run(
        ["tests.reliability.pipeline.Summarize", "--units", "2", "--seconds-per-unit", "0"],
        config="[gokart_k8s]\ntermination_budget_seconds = 7.5\n",
    )
    driver = run.start("--no-logs")
    assert driver.wait(300) == 0, driver.stderr[-3000:]
    (start,) = run.attempts().starts("Crunch")
    assert start["budget"] == "7.5"
