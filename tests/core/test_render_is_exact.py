"""What ``render`` writes is what ``run`` submits: compared Job by Job with the driver's create_job calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gokart_k8s.cli import main

pytest_plugins = ["gokart_k8s.testing.gcs"]


def test_rendered_manifests_equal_the_jobs_a_run_submits(
    gcs_bucket: str, tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gokart_k8s.cluster.kubernetes import KubernetesCluster

    submitted: list[dict[str, Any]] = []
    create_job = KubernetesCluster.create_job

    def record(self: Any, namespace: str, manifest: Any) -> Any:
        submitted.append(yaml.safe_load(yaml.safe_dump(dict(manifest))))  # a plain copy, as sent
        return create_job(self, namespace, manifest)

    monkeypatch.setattr(KubernetesCluster, "create_job", record)
    common = [
        "tests.core.words.TopWords",
        "--CountWords-chunk",
        "50",
        "--workspace",
        f"gs://{gcs_bucket}/ws",
        "--image",
        "registry.example/pipeline:1",
        "--run-id",
        "run-1",
    ]
    assert main(["run", *common, "--backend", "local-cluster"]) == 0, capsys.readouterr().err
    assert main(["render", *common, "--platform", "plain", "-o", str(tmp_path / "out")]) == 0
    rendered = {p.stem: yaml.safe_load(p.read_text()) for p in (tmp_path / "out").glob("*.yaml")}
    assert len(submitted) == 3
    assert {job["metadata"]["name"]: job for job in submitted} == rendered
    env = {
        e["name"]: e.get("value")
        for e in rendered[submitted[0]["metadata"]["name"]]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["GOKART_K8S_RUN_ID"] == "run-1" and "GOKART_K8S_TERMINATION_BUDGET_SECONDS" in env
