"""The README's main command works: the example on the local cluster, with chaos, ends like a calm run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = "examples.ml_pipeline.pipeline.Report"


def gokart_k8s(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LUIGI_CONFIG_PATH": str(REPO / "examples" / "ml_pipeline" / "luigi.cfg"),
    }
    env = {k: v for k, v in env.items() if not k.startswith("GOKART_K8S_")}
    return subprocess.run(
        [sys.executable, "-m", "gokart_k8s", *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def outputs(workspace: Path) -> dict[str, bytes]:
    """Every step output, by path (gokart's log/ side files and checkpoints excluded)."""
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in workspace.rglob("*")
        if p.is_file() and p.relative_to(workspace).parts[0] not in ("log", "gokart_k8s")
    }


def test_the_example_survives_chaos_on_the_local_cluster_with_outputs_identical_to_a_calm_run(tmp_path: Path) -> None:
    calm, chaos = tmp_path / "calm", tmp_path / "chaos"
    calm.mkdir()
    chaos.mkdir()
    done = gokart_k8s(calm, "run", EXAMPLE)
    assert done.returncode == 0, done.stderr
    # Exactly the README's main command: the default chaos seed and rate.
    done = gokart_k8s(chaos, "run", EXAMPLE, "--backend", "local-cluster", "--chaos")
    assert done.returncode == 0, done.stderr[-3000:]
    disruptions = re.search(r"(\d+) disruption\(s\)", done.stderr)
    assert disruptions and int(disruptions.group(1)) >= 1, done.stderr[-3000:]
    assert "evicted" in done.stderr
    assert "5/5 steps done, 0 failed" in done.stdout
    calm_outputs = outputs(calm / "resources")
    assert len(calm_outputs) == 5
    assert outputs(chaos / "resources") == calm_outputs


def test_plan_shows_where_each_example_step_would_run_on_every_platform(tmp_path: Path) -> None:
    for platform, protected in (
        ("gke-standard", "ondemand-highmem (on-demand), safe-to-evict=false"),
        ("gke-autopilot", "extended run time"),
        ("eks-karpenter", "do-not-disrupt"),
        ("plain", "safe-to-evict=false"),
    ):
        done = gokart_k8s(tmp_path, "plan", EXAMPLE, "--backend", "local-cluster", "--platform", platform)
        assert done.returncode == 0, done.stderr
        (evaluate,) = [line for line in done.stdout.splitlines() if line.startswith("EvaluateModel")]
        assert protected in evaluate, evaluate
