"""Opt-in: the example pipeline on a real cluster (kind, minikube or GKE).

Skipped unless all of these are set, because no machine here reaches a cluster:

- ``GOKART_K8S_E2E_KUBECONFIG``: kubeconfig of the cluster;
- ``GOKART_K8S_E2E_IMAGE``: an image with this repository installed (``pip install .``) whose
  working directory holds ``examples/`` (see the Dockerfile snippet in docs/platforms.md);
- ``GOKART_K8S_E2E_WORKSPACE``: a ``gs://bucket/prefix`` the cluster's pods can write (Workload
  Identity or ``GCS_CREDENTIAL``), also readable from here;
- optionally ``GOKART_K8S_E2E_PLATFORM`` (default ``plain``, right for kind and minikube).

Run: ``GOKART_K8S_E2E_KUBECONFIG=~/.kube/config GOKART_K8S_E2E_IMAGE=... GOKART_K8S_E2E_WORKSPACE=gs://...
pytest tests/test_real_cluster.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ("GOKART_K8S_E2E_KUBECONFIG", "GOKART_K8S_E2E_IMAGE", "GOKART_K8S_E2E_WORKSPACE")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not all(os.environ.get(name) for name in REQUIRED),
        reason=f"no real cluster configured (set {', '.join(REQUIRED)})",
    ),
]


def test_the_example_pipeline_runs_each_step_as_a_job_on_a_real_cluster(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KUBECONFIG": os.environ["GOKART_K8S_E2E_KUBECONFIG"],
        "GOKART_K8S_IMAGE": os.environ["GOKART_K8S_E2E_IMAGE"],
        "GOKART_K8S_PLATFORM": os.environ.get("GOKART_K8S_E2E_PLATFORM", "plain"),
        "LUIGI_CONFIG_PATH": str(REPO / "examples" / "ml_pipeline" / "luigi.cfg"),
        "PYTHONPATH": str(REPO),
    }
    workspace = os.environ["GOKART_K8S_E2E_WORKSPACE"].rstrip("/") + f"/e2e-{os.getpid()}"
    argv = [sys.executable, "-m", "gokart_k8s", "run", "examples.ml_pipeline.pipeline.Report", "--epochs", "5"]
    argv += ["--backend", "kubernetes", "--workspace", workspace, "--on-interrupt", "delete"]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-5000:]
    assert "5/5 steps done, 0 failed" in done.stdout
    again = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stderr.count("cached") >= 5, again.stderr[-3000:]
