"""A driver Job made by hand from a CronJob binds the scheduled time to its creation time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.cli import main
from gokart_k8s.localcluster import LocalCluster

pytest_plugins = ["gokart_k8s.testing.cluster"]


def test_a_hand_made_driver_job_binds_scheduled_placeholders_to_its_creation_time(
    local_cluster: LocalCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from kubernetes import client

    kubeconfig = local_cluster.write_kubeconfig(tmp_path / "kubeconfig")
    api = client.BatchV1Api(local_cluster.api_client())
    job = api.create_namespaced_job(
        "default",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "nightly-by-hand", "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}},
            "spec": {
                "suspend": True,
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}},
            },
        },
    )
    day = int(job.metadata.creation_timestamp.strftime("%d"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("GOKART_K8S_JOB_NAME", "nightly-by-hand")

    assert main(["run", "tests.core.pipelines.Summarise", "--n", "{scheduled_time:%d}"]) == 0
    import gokart

    from tests.core.pipelines import Summarise

    assert gokart.build(Summarise(n=day), reset_register=False) == f"total={sum(range(day))}"
    assert "3/3 steps done" in capsys.readouterr().out


def test_outside_a_schedule_a_placeholder_is_refused_with_what_to_pass(capsys: Any) -> None:
    assert main(["run", "tests.core.pipelines.Summarise", "--n", "{scheduled_date}"]) == 2
    assert "not started by a schedule" in capsys.readouterr().err
