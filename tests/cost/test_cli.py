"""gokart-k8s pools, prices and plan --cost on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hcl2
import pytest

from gokart_k8s.cli import main

TASK = "tests.cost.pipelines.CostReport"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_pools_writes_every_gke_standard_format_into_a_directory(capsys: Any, luigi_cfg: Any, tmp_path: Path) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = us-central1\n")
    code, out, _ = run(capsys, "pools", "-o", str(tmp_path / "out"))
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["node-pools.sh", "node-pools.tf", "pools.cfg"]
    assert "result: 10 pools" in out and "not merged" in out
    assert len(hcl2.loads((tmp_path / "out" / "node-pools.tf").read_text())["resource"]) == 10


def test_pools_of_a_task_cover_only_its_classes_and_tolerances(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = us-central1\n")
    code, out, err = run(capsys, "pools", TASK, "--format", "luigi-cfg")
    assert code == 0
    sections = sorted(line for line in out.splitlines() if line.startswith("[gokart_k8s.pools."))
    # small and standard (tolerant: Spot, and on-demand for the fallback) share e2-standard-4; highmem is protected.
    assert sections == [
        "[gokart_k8s.pools.ondemand-e2-highmem-8]",
        "[gokart_k8s.pools.ondemand-e2-standard-4]",
        "[gokart_k8s.pools.spot-e2-standard-4]",
    ]
    assert "result: 3 pools" in err


def test_pools_for_karpenter_autopilot_and_plain(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nregion = us-central1\n")
    code, out, _ = run(capsys, "pools", "--platform", "eks-karpenter", "--format", "karpenter")
    assert code == 0 and "kind: NodePool" in out and "kind: EC2NodeClass" in out
    code, out, _ = run(capsys, "pools", "--platform", "gke-autopilot")
    assert code == 0 and "no node pools" in out
    code, out, _ = run(capsys, "pools", "--platform", "plain")
    assert code == 0 and "nothing is\ngenerated" in out


def test_a_format_of_another_platform_is_one_clear_error(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = us-central1\n")
    code, _, err = run(capsys, "pools", "--format", "karpenter")
    assert code == 2
    assert "--platform eks-karpenter" in err and "Traceback" not in err


def test_pools_without_a_region_say_how_to_set_one(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\n")
    code, _, err = run(capsys, "pools")
    assert code == 2 and "[gokart_k8s] region" in err and "us-central1" in err


def test_prices_prints_the_effective_table_with_sources(capsys: Any, luigi_cfg: Any, tmp_path: Path) -> None:
    luigi_cfg("[gokart_k8s]\nregion = us-central1\n[gokart_k8s.prices]\ne2-standard-4 = 0.2 / 0.05\n")
    code, out, _ = run(capsys, "prices")
    assert code == 0
    rows = {tuple(line.split()[2:4]): line for line in out.splitlines()[1:] if line.startswith(("gcp", "aws"))}
    assert "luigi.cfg" in rows[("machine", "e2-standard-4")] and "0.05" in rows[("machine", "e2-standard-4")]
    assert "skypilot-catalog" in rows[("machine", "n2-standard-8")]
    assert ("machine", "m6i.2xlarge") in rows  # the AWS region nearest us-central1, us-east-1
    assert not any("asia-northeast1" in line for line in rows.values())
    assert "supply them in [gokart_k8s.prices]" in out


def test_plan_cost_prints_the_estimate_after_the_plan(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = asia-northeast1\n")
    code, out, _ = run(capsys, "plan", TASK, "--backend", "inline", "--cost")
    assert code == 0
    assert "estimated total on gke-standard (asia-northeast1): at least 0.9" in out
    assert "run time unknown" in out


def test_plan_cost_in_json_carries_the_same_estimates_as_data(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = asia-northeast1\n")
    _, text, _ = run(capsys, "plan", TASK, "--backend", "inline", "--cost", "--compare-platforms")
    code, out, _ = run(capsys, "plan", TASK, "--backend", "inline", "--cost", "--compare-platforms", "--output", "json")
    assert code == 0
    estimates = json.loads(out)["cost"]["estimates"]
    assert [e["platform"] for e in estimates] == ["gke-standard", "gke-autopilot", "eks-karpenter"]
    for est in estimates:
        row = next(line for line in text.splitlines() if line.startswith(est["platform"] + " "))
        assert f"{est['total_usd']:.4f}" in row, (row, est["total_usd"])
        assert {s["family"] for s in est["steps"]} >= {"CostPrep", "CostTrain"}
    _, plain, _ = run(capsys, "plan", TASK, "--backend", "inline", "--output", "json")
    assert "cost" not in json.loads(plain)  # not asked for, not computed


def test_plan_cost_compares_the_platforms(capsys: Any, luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nregion = asia-northeast1\n")
    code, out, _ = run(capsys, "plan", TASK, "--backend", "inline", "--cost", "--compare-platforms")
    assert code == 0
    for platform in ("gke-standard ", "gke-autopilot ", "eks-karpenter "):
        assert any(line.startswith(platform) for line in out.splitlines()), platform


def test_plan_warns_when_configured_pools_differ_from_generated_ones(capsys: Any, luigi_cfg: Any) -> None:
    cfg = "[gokart_k8s]\nplatform = gke-standard\nregion = us-central1\n"
    luigi_cfg(cfg)
    _, generated, _ = run(capsys, "pools", TASK, "--format", "luigi-cfg")
    luigi_cfg(cfg + generated)
    code, out, _ = run(capsys, "plan", TASK, "--backend", "inline")
    assert code == 0 and "warning" not in out
    # A hand-made highmem pool of 16-cpu nodes instead of the generated 8-vCPU e2-highmem-8.
    generated_pool = "[gokart_k8s.pools.ondemand-e2-highmem-8]\ncpu = 7460m"
    assert generated_pool in generated
    luigi_cfg(cfg + generated.replace(generated_pool, "[gokart_k8s.pools.big-highmem]\ncpu = 15440m"))
    code, out, _ = run(capsys, "plan", TASK, "--backend", "inline")
    assert code == 0
    assert "warning: step CostTrain: the configured pool 'big-highmem' (15440m cpu" in out
    assert "'ondemand-e2-highmem-8' (7460m cpu" in out


def test_prices_reads_a_prices_file_and_refuses_a_broken_one(capsys: Any, luigi_cfg: Any, tmp_path: Path) -> None:
    luigi_cfg("[gokart_k8s]\nregion = asia-northeast1\n")
    good = tmp_path / "prices.csv"
    good.write_text(
        "cloud,region,kind,item,on_demand,spot,unit,tag,source,date,note\n"
        "gcp,asia-northeast1,autopilot-cpu,general-purpose,0.061,0.019,USD/hour,user,our invoice,2026-11-30,\n"
    )
    code, out, _ = run(capsys, "prices", "--prices", str(good))
    assert code == 0
    line = next(
        x for x in out.splitlines() if "autopilot-cpu" in x and "general-purpose" in x and "asia-northeast1" in x
    )
    assert "0.061" in line and "our invoice" in line and "2026-11-30" in line
    bad = tmp_path / "bad.csv"
    bad.write_text("cloud,region\ngcp,x\n")
    code, _, err = run(capsys, "prices", "--prices", str(bad))
    assert code == 2 and "needs the columns" in err and "Traceback" not in err


def test_plan_cost_takes_run_times_from_past_run_records(capsys: Any, luigi_cfg: Any, tmp_path: Path) -> None:
    import shutil

    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = asia-northeast1\n")
    _, before, _ = run(capsys, "plan", TASK, "--backend", "inline", "--cost")
    assert "CostReport: run time unknown" in before
    assert main(["run", TASK, "--backend", "inline"]) == 0  # the run record goes into the cache
    capsys.readouterr()
    # Drop the outputs, keep the run records: the steps run again, and their past run times are known.
    for path in (tmp_path / "resources").iterdir():
        if path.name != "gokart_k8s":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    code, out, _ = run(capsys, "plan", TASK, "--backend", "inline", "--cost")
    assert code == 0
    cost_table = out[out.rindex("\nSTEP ", 0, out.index("CAPACITY / NODE")) :]
    row = next(line for line in cost_table.splitlines() if line.startswith("CostReport "))
    assert "(past runs)" in row and "run time unknown" not in cost_table
    # What a step really took comes before its declared guess.
    assert "(past runs)" in next(line for line in cost_table.splitlines() if line.startswith("CostPrep "))
