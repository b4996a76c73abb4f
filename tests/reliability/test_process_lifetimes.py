"""No process outlives what started it: pods outlive no cluster, workers outlive no supervisor.

Each guard is tested on its own, with real processes and real signals: the parent-death signal
(as a ``preexec_fn``, and as the step command's own request to die with the kubelet), the
reaper's pipe (which also takes a pod's grandchildren), the step supervisor's worker, and
``gokart-k8s local-cluster start`` stopped by SIGINT, SIGTERM or SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from gokart_k8s.entrypoint import step_argv
from gokart_k8s.localcluster import reaper
from gokart_k8s.settings import load_settings
from gokart_k8s.steps import spec_for
from tests.reliability.conftest import RunFactory
from tests.reliability.harness import (
    REPO,
    DriverProcess,
    gokart_k8s_argv,
    leftovers,
    processes,
    wait_for_no_leftovers,
    wait_until,
)
from tests.reliability.pipeline import HoldInC
from tests.reliability.test_termination_budget import start_step

GENEROUS = 120.0


def alive(pid: int) -> bool:
    return any(p.pid == pid and p.state != "Z" for p in processes())


def test_a_child_started_with_die_with_parent_dies_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    parent_code = textwrap.dedent(
        """
        import subprocess, sys, time
        from gokart_k8s.supervision.parentdeath import die_with_parent
        child = subprocess.Popen(["sleep", "600"], preexec_fn=die_with_parent())
        print(child.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        parent.kill()
        parent.wait()
        wait_until(lambda: not alive(child), GENEROUS, "the child to die with its parent")
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_reaper_kills_every_listed_process_group_when_its_pipe_closes(tmp_path: Path) -> None:
    groups = [subprocess.Popen(["sh", "-c", "sleep 600 & sleep 600 & wait"], start_new_session=True) for _ in range(3)]
    proc = subprocess.Popen([sys.executable, "-I", "-S", reaper.__file__], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        # Listed, listed, listed and then un-listed (that container ended normally).
        proc.stdin.write(b"".join(f"+{g.pid}\n".encode() for g in groups) + f"-{groups[2].pid}\n".encode())
        proc.stdin.close()
        assert proc.wait(GENEROUS) == 0
        for group in groups[:2]:
            assert group.wait(GENEROUS) == -signal.SIGKILL
            wait_until(
                lambda group=group: not [p for p in processes() if p.pgid == group.pid and p.state != "Z"],
                GENEROUS,
                "the whole group to die",
            )
        assert groups[2].poll() is None
    finally:
        for group in groups:
            try:
                os.killpg(group.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            group.wait()


def test_a_step_worker_dies_with_its_supervisor(make_run: RunFactory) -> None:
    run = make_run([])
    marker = run.directory / "inside-c"
    step = start_step(run.directory, HoldInC(marker=str(marker)), run.env())
    worker = int(wait_until(lambda: marker.exists() and marker.read_text(), GENEROUS, "the worker to start"))
    assert worker != step.pid and alive(worker)
    step.send(signal.SIGKILL)
    step.wait(GENEROUS)
    wait_until(lambda: not alive(worker), GENEROUS, "the worker to die with its supervisor")


JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "sleeper"},
    "spec": {
        "backoffLimit": 0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                # A shell with children: the parent-death signal reaches the shell only; the
                # reaper takes the rest of its group.
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 600 & wait"]}],
            }
        },
    },
}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_local_cluster_stopped_by_any_signal_takes_its_pods_with_it(
    make_run: RunFactory, sig: signal.Signals
) -> None:
    from kubernetes import client, config

    run = make_run([])
    kubeconfig = run.directory / "kubeconfig"
    cluster = DriverProcess(
        gokart_k8s_argv("local-cluster", "start", "--kubeconfig", str(kubeconfig)), cwd=run.directory, env=run.env()
    )
    wait_until(lambda: "Press Ctrl-C" in cluster.stdout, GENEROUS, "the cluster to start")
    api = config.new_client_from_config(str(kubeconfig))
    client.BatchV1Api(api).create_namespaced_job("default", yaml.safe_load(yaml.safe_dump(JOB)))
    sleepers = wait_until(
        lambda: [p for p in leftovers(run.directory) if p.cmdline == "sleep 600"], GENEROUS, "the pod to run"
    )
    cluster.send(sig)
    code = cluster.wait(GENEROUS)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0), cluster.stderr[-2000:]
    assert wait_for_no_leftovers(run.directory) == []
    assert not any(alive(p.pid) for p in sleepers)


def test_a_step_started_by_the_kubelet_dies_with_it_without_the_reaper(make_run: RunFactory) -> None:
    # The kubelet names itself in GOKART_K8S_DIE_WITH_PARENT; here a stand-in parent does, and
    # no reaper runs: the step's own parent-death request must take supervisor and worker down.
    run = make_run([])
    marker = run.directory / "inside-c"
    spec_argv = step_argv(spec_for(HoldInC(marker=str(marker)), load_settings()))
    kubelet_code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        env = dict(os.environ, GOKART_K8S_DIE_WITH_PARENT=str(os.getpid()))
        step = subprocess.Popen({gokart_k8s_argv(*spec_argv[1:])!r}, env=env, start_new_session=True)
        print(step.pid, flush=True)
        time.sleep(600)
        """
    )
    kubelet = DriverProcess([sys.executable, "-c", kubelet_code], cwd=run.directory, env=run.env())
    supervisor = int(wait_until(lambda: kubelet.stdout.strip(), GENEROUS, "the step to start"))
    worker = int(wait_until(lambda: marker.exists() and marker.read_text(), GENEROUS, "the worker to start"))
    kubelet.send(signal.SIGKILL)
    kubelet.wait(GENEROUS)
    wait_until(lambda: not alive(supervisor) and not alive(worker), GENEROUS, "the step to die with its parent")
