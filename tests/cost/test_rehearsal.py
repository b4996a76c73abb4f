"""Generated pools are what placement and the cluster agree on: the example rehearses on them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples.ml_pipeline.pipeline.Report"


def gokart_k8s(cwd: Path, config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_")}
    env.update({"PYTHONPATH": str(REPO), "LUIGI_CONFIG_PATH": str(config)})
    return subprocess.run(
        [sys.executable, "-m", "gokart_k8s", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_the_example_runs_on_the_local_cluster_built_from_its_generated_pools(tmp_path: Path) -> None:
    config = tmp_path / "luigi.cfg"
    base = (
        "[TaskOnKart]\nworkspace_directory = ./resources/\n"
        "[gokart_k8s]\nplatform = gke-standard\nregion = us-central1\n"
    )
    config.write_text(base)
    generated = gokart_k8s(tmp_path, config, "pools", EXAMPLE, "--format", "luigi-cfg")
    assert generated.returncode == 0, generated.stderr
    config.write_text(base + generated.stdout)
    done = gokart_k8s(tmp_path, config, "run", EXAMPLE, "--backend", "local-cluster", "--no-logs")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "5/5 steps done, 0 failed" in done.stdout
    # The cluster's nodes are the generated pools, and nothing else.
    pools_line = next(line for line in done.stderr.splitlines() if "local cluster at" in line)
    names = {line[len("[gokart_k8s.pools.") : -1] for line in generated.stdout.splitlines() if line.startswith("[")}
    assert set(pools_line.split("pools: ", 1)[1].split(" (", 1)[0].split(", ")) == names
    # The nodes carried the generated machine types, so their node-hours are priced from the catalog.
    node_cost = next(line for line in done.stderr.splitlines() if line.startswith("node cost (cluster time): "))
    assert "USD at list prices (" in node_cost and "not priced" not in node_cost, node_cost
    # Every attempt is priced from what the run record saw (the node's machine type, the pod's requests)...
    cost = next(line for line in done.stderr.splitlines() if line.startswith("cost: "))
    assert " USD (Spot " in cost and "not priced" not in cost and "; by step: " in cost, cost
    # ... and the prices are kept in the record, for the run report.
    (snapshot,) = (tmp_path / "resources" / "gokart_k8s" / "runs").glob("*/record.json")
    data = json.loads(snapshot.read_text())
    attempts = [a for step in data["steps"] for a in step["attempts"]]
    # (An attempt within one second costs 0: pod times are whole seconds, as the API server writes them.)
    assert attempts and all(isinstance(a["cost"], float) and a["cost"] >= 0 for a in attempts), attempts
    assert data["cost"] > 0
    assert data["cost"] == pytest.approx(sum(a["cost"] for a in attempts))
    # `gokart-k8s report` folds the record from its events again and prices it the same way.
    report = gokart_k8s(tmp_path, config, "report", "latest", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["cost"] == pytest.approx(data["cost"])
    runs = gokart_k8s(tmp_path, config, "runs")
    assert f"${data['cost']:.2f}" in runs.stdout, runs.stdout
    plan = gokart_k8s(tmp_path, config, "plan", EXAMPLE, "--backend", "local-cluster")
    assert plan.returncode == 0 and "warning" not in plan.stdout, plan.stdout
    assert "pool spot-e2-standard-16 (Spot)" in plan.stdout  # TrainModel, highcpu, tolerant
    assert "pool ondemand-e2-highmem-8 (on-demand), safe-to-evict=false" in plan.stdout  # EvaluateModel
