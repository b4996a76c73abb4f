"""kubectl works against the local cluster through a kubeconfig.

Reference: https://kubernetes.io/docs/reference/kubectl/
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kubernetes import client

from gokart_k8s.localcluster import LocalCluster
from tests.localcluster.conftest import job_condition, job_manifest, job_pods, wait_for
from tests.localcluster.kubectl_tool import KUBECTL


def kubectl(cluster: LocalCluster, tmp_path: Path, *args: str) -> str:
    config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
    env = dict(os.environ, KUBECONFIG=str(config), HOME=str(tmp_path))
    result = subprocess.run(
        [KUBECTL, "--cache-dir", str(tmp_path / "cache"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_kubectl_get_jobs_pods_nodes_and_logs(
    local_cluster: LocalCluster, batch: client.BatchV1Api, core: client.CoreV1Api, tmp_path: Path
) -> None:
    batch.create_namespaced_job("default", job_manifest("greeter", "echo hello from the pod"))
    wait_for(lambda: job_condition(batch, "greeter", "Complete"), what="Complete")
    pod = job_pods(core, "greeter")[0].metadata.name
    listing = kubectl(local_cluster, tmp_path, "get", "jobs,pods")
    assert "job.batch/greeter" in listing and "Complete" in listing
    assert f"pod/{pod}" in listing and "Completed" in listing
    assert "default-0" in kubectl(local_cluster, tmp_path, "get", "nodes")
    assert kubectl(local_cluster, tmp_path, "logs", pod) == "hello from the pod\n"


def test_kubectl_create_job_from_cronjob(local_cluster: LocalCluster, batch: client.BatchV1Api, tmp_path: Path) -> None:
    """kubectl create job --from=cronjob/X posts a Job annotated cronjob.kubernetes.io/instantiate=manual."""
    template = job_manifest("unused", "true")["spec"]
    batch.create_namespaced_cron_job(
        "default",
        {"metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": template}}},
    )
    assert "job.batch/by-hand created" in kubectl(
        local_cluster, tmp_path, "create", "job", "by-hand", "--from=cronjob/nightly"
    )
    job = wait_for(lambda: job_condition(batch, "by-hand", "Complete"), what="Complete")
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
