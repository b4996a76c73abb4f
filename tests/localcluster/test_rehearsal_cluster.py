"""The rehearsal's cluster is the one a user can look at: ``gokart-k8s local-cluster start`` creates the
pools ``run --backend local-cluster`` creates, and a rehearsal prints a KUBECONFIG that kubectl can
use while the run lasts (README: "then: kubectl get jobs,pods")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from gokart_k8s.platforms import get_profile
from gokart_k8s.resources import BUILTIN_CLASSES, parse_quantity
from gokart_k8s.settings import Settings
from gokart_k8s.testing.cluster import cluster_command
from tests.localcluster.kubectl_tool import KUBECTL, Stream, table

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("LUIGI_CONFIG_PATH", None)
    return env


def test_local_cluster_start_on_plain_has_the_rehearsals_pools_sized_for_the_largest_class(tmp_path: Path) -> None:
    with cluster_command(tmp_path, _env(GOKART_K8S_PLATFORM="plain"), timeout=60) as started:
        pass
    printed = started.output
    # Pools autoscale from their minimum (0 nodes), so compare the pools the command announces.
    got = {
        m.group(1): (m.group(2), m.group(3))
        for m in re.finditer(r"^  pool (\S+): \d+ to \d+ node\(s\) of (\S+) CPU, (\S+?)(?:, Spot)?$", printed, re.M)
    }
    # What `run --backend local-cluster` creates: the profile's pools (runner._run_on_cluster).
    expected = {
        pool.name: (str(pool.cpu), str(pool.memory)) for pool in get_profile(Settings(platform="plain")).pools()
    }
    assert got == expected, printed
    largest = max(rc.cpu_cores for rc in BUILTIN_CLASSES.values() if not rc.gpu)
    assert parse_quantity(got["default"][0]) >= largest


def test_a_rehearsal_prints_a_kubeconfig_kubectl_can_use_while_the_run_lasts(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gokart_k8s",
            "run",
            "tests.localcluster.rehearsal_pipeline.WaitsForFlag",
            "--flag",
            str(flag),
            "--backend",
            "local-cluster",
            "--workspace",
            str(tmp_path / "ws"),
        ],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = Stream(run)
    try:
        export = output.wait_for(lambda line: "export KUBECONFIG=" in line, timeout=120)
        kubeconfig = export.split("export KUBECONFIG=", 1)[1].split()[0]
        env = {**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path)}

        def jobs() -> list[dict[str, str]]:
            out = subprocess.run(
                [KUBECTL, "get", "jobs"], env=env, capture_output=True, text=True, timeout=60, check=True
            ).stdout
            return table(out) if out.strip() else []

        deadline = time.monotonic() + 120
        while not jobs() and time.monotonic() < deadline:
            time.sleep(0.1)
        [job] = jobs()
        assert job["NAME"].startswith("waitsforflag-") and job["STATUS"] == "Running"
        flag.touch()
        code, _ = output.finish(timeout=300)
    finally:
        output.stop()
    assert code == 0, "\n".join(output.lines)
    assert not Path(kubeconfig).exists()  # a temporary file: it goes with the run
