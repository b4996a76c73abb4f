"""A driver stopped by any signal leaves no process and no scratch folder, and a rerun finishes the job.

Each test runs ``gokart-k8s run ... --backend local-cluster`` as a real process, sends it a real
signal while ``Crunch`` is mid-way, checks the exit status and the process table, then reruns
until done and checks, from the steps' own attempt log, that no two attempts of a step ever ran
at the same time, and that the outputs are byte-identical to a calm run's.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.reliability.conftest import RunFactory
from tests.reliability.harness import (
    DriverProcess,
    gokart_k8s_argv,
    has_summary,
    summary_states,
    wait_for_no_leftovers,
    wait_until,
)

pytest_plugins = ["gokart_k8s.testing.gcs"]
pytestmark = pytest.mark.slow

TASK = ["tests.reliability.pipeline.Summarize", "--units", "12", "--seconds-per-unit", "0.25"]
GENEROUS = 240.0


@pytest.fixture(scope="module")
def calm_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The outputs of the same pipeline run calmly (plain gokart in one process)."""
    from tests.reliability.harness import Run

    run = Run(tmp_path_factory.mktemp("calm"), TASK)
    driver = DriverProcess(gokart_k8s_argv("run", *TASK, "--backend", "inline"), cwd=run.directory, env=run.env())
    try:
        assert driver.wait(GENEROUS) == 0, driver.stderr[-3000:]
    finally:
        run.cleanup()
    outputs = run.outputs()
    assert len(outputs) == 3
    return outputs


#: Exit status of ``gokart-k8s run`` per signal: SIGKILL cannot be handled; SIGINT and SIGTERM
#: stop the run the same way and say which it was (128 + signal number).
EXPECTED_EXIT = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_driver_stopped_by_a_signal_leaves_nothing_behind_and_a_rerun_finishes_like_a_calm_run(
    make_run: RunFactory, calm_outputs: dict[str, bytes], sig: signal.Signals
) -> None:
    run = make_run(TASK)
    first = run.start()
    wait_until(lambda: len(run.attempts().units("Crunch")) >= 2, GENEROUS, "Crunch to be mid-way")
    first.send(sig)
    assert first.wait(GENEROUS) == EXPECTED_EXIT[sig], first.stderr[-3000:]
    if sig != signal.SIGKILL:
        # Stopped as Ctrl-C stops it: in-flight Jobs handled (the rehearsal deletes them), summary printed.
        assert "Deleted 1 Job in flight" in first.stderr, first.stderr[-3000:]
        assert has_summary(first.stdout), first.stdout
        assert summary_states(first.stdout)["Prepare"] == "succeeded"
        assert summary_states(first.stdout)["Crunch"] == "interrupted"
        assert list(run.tmpdir.glob("gokart-k8s-scratch-*")) == []
    # Every pod process died with the embedded cluster, even when the driver was SIGKILLed.
    assert wait_for_no_leftovers(run.directory) == []

    second = run.start()
    assert second.wait(GENEROUS) == 0, second.stderr[-3000:]
    assert set(summary_states(second.stdout).values()) <= {"cached", "succeeded"}
    assert run.outputs() == calm_outputs
    attempts = run.attempts()
    assert attempts.concurrent == 0, attempts.records
    assert len(attempts.starts("Crunch")) == 2
    assert wait_for_no_leftovers(run.directory) == []
    # The scratch folder of a SIGKILLed driver is swept by the next run.
    assert list(run.tmpdir.glob("gokart-k8s-scratch-*")) == []


def test_a_second_sigterm_does_not_cut_the_cleanup_short(make_run: RunFactory) -> None:
    run = make_run(TASK)
    driver = run.start()
    wait_until(lambda: run.attempts().units("Crunch"), GENEROUS, "Crunch to be running")
    driver.send(signal.SIGTERM)
    driver.send(signal.SIGTERM)
    assert driver.wait(GENEROUS) == 143, driver.stderr[-3000:]
    assert has_summary(driver.stdout)
    assert wait_for_no_leftovers(run.directory) == []
    assert list(run.tmpdir.glob("gokart-k8s-scratch-*")) == []


def test_a_step_killed_with_the_driver_resumes_from_its_checkpoint(make_run: RunFactory) -> None:
    run = make_run(TASK)
    driver = run.start()
    wait_until(lambda: len(run.attempts().units("Crunch")) >= 3, GENEROUS, "three units of Crunch")
    driver.send(signal.SIGKILL)
    driver.wait(GENEROUS)
    assert wait_for_no_leftovers(run.directory) == []
    done_before = set(run.attempts().units("Crunch"))
    rerun = run.start()
    assert rerun.wait(GENEROUS) == 0, rerun.stderr[-3000:]
    attempts = run.attempts()
    # A checkpoint after every unit: the rerun redoes at most the unit that was cut off.
    assert attempts.redone_units("Crunch") <= 1
    assert len(set(attempts.units("Crunch"))) == 12
    assert done_before


def test_the_scratch_folder_of_a_live_driver_is_never_swept(tmp_path: Path) -> None:
    import os

    from gokart_k8s.supervision.stopsignals import scratch_directory

    with scratch_directory() as mine:
        dead = mine.parent / f"gokart-k8s-scratch-{2**22 + 12345}-x"  # above pid_max's default: never alive
        dead.mkdir()
        alive = mine.parent / f"gokart-k8s-scratch-{os.getppid()}-y"
        alive.mkdir()
        try:
            with scratch_directory() as other:
                assert other.exists() and mine.exists()
            assert not dead.exists()
            assert alive.exists()
            assert not other.exists()
        finally:
            alive.rmdir()
    assert not mine.exists()


def test_sigterm_never_asks_a_question_it_keeps_the_jobs_of_a_cluster_run_for_a_rerun_to_adopt(
    make_run: RunFactory, gcs_bucket: str
) -> None:
    import os
    import pty

    run = make_run(TASK)
    kubeconfig = run.directory / "kubeconfig"
    cluster = DriverProcess(
        gokart_k8s_argv(
            "local-cluster",
            "start",
            "--kubeconfig",
            str(kubeconfig),
            "--pod-env",
            f"STORAGE_EMULATOR_HOST={os.environ['STORAGE_EMULATOR_HOST']}",
            "--pod-env",
            f"LUIGI_CONFIG_PATH={run.config}",
        ),
        cwd=run.directory,
        env=run.env(),
    )
    wait_until(lambda: "Press Ctrl-C" in cluster.stdout, GENEROUS, "the cluster to start")
    # A terminal on stdin: Ctrl-C would ask whether to delete the Jobs; SIGTERM must not.
    terminal, terminal_side = pty.openpty()
    try:
        argv = gokart_k8s_argv("run", *TASK, "--backend", "kubernetes", "--image", "pipeline:test")
        driver = DriverProcess(
            [*argv, "--workspace", f"gs://{gcs_bucket}/ws"],
            cwd=run.directory,
            env=run.env(KUBECONFIG=str(kubeconfig)),
            stdin=terminal_side,
        )
        wait_until(lambda: run.attempts().units("Crunch"), GENEROUS, "Crunch to be running")
        driver.send(signal.SIGTERM)
        assert driver.wait(GENEROUS) == 143, driver.stderr[-3000:]
    finally:
        os.close(terminal)
        os.close(terminal_side)
    assert "in flight? [y/N]" not in driver.stderr + driver.stdout
    assert "Left 1 Job running in namespace default" in driver.stderr
    assert summary_states(driver.stdout)["Crunch"] == "interrupted"
    assert list(run.tmpdir.glob("gokart-k8s-scratch-*")) == []
    cluster.send(signal.SIGTERM)
    assert cluster.wait(GENEROUS) == 0
    assert wait_for_no_leftovers(run.directory) == []


def test_a_rehearsal_stopped_by_sigterm_lets_its_steps_save_a_final_checkpoint(make_run: RunFactory) -> None:
    import pickle

    # Periodic saves at most once an hour: only the first unit is saved periodically, so a later
    # state in the checkpoint can only come from the final save on SIGTERM, which takes 3 s here
    # (within the 10 s budget): the cluster must not SIGKILL the step while it saves.
    task = ["tests.reliability.pipeline.Crunch", "--units", "1000", "--save-every", "3600", "--slow-stop-seconds", "3"]
    run = make_run(task)
    driver = run.start()
    wait_until(lambda: len(run.attempts().units("Crunch")) >= 3, GENEROUS, "three units of Crunch")
    driver.send(signal.SIGTERM)
    assert driver.wait(GENEROUS) == 143, driver.stderr[-3000:]
    saved = sorted((run.workspace / "gokart_k8s" / "checkpoints").rglob("ckpt-*.pkl"))
    assert saved, "no checkpoint at all"
    assert pickle.loads(saved[-1].read_bytes())["i"] >= 3
    assert wait_for_no_leftovers(run.directory) == []
