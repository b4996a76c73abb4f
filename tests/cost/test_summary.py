"""The end-of-run cost line from the driver's attempt log."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import load_machines
from gokart_k8s.cost.summary import billable_attempts, summary_line
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import Catalog
from gokart_k8s.steps import StepSpec

T0 = 1_780_000_000.0


@dataclass
class StepReport:  # what the driver reports per step: its spec and one entry per pod
    spec: StepSpec
    attempt_log: list[dict[str, Any]] = field(default_factory=list)


def pod(pool: str | None, capacity: str, seconds: int, outcome: str = "succeeded") -> dict[str, Any]:
    return {
        "pod": f"p-{pool}",
        "node": "n1",
        "pool": pool,
        "capacity_type": capacity,
        "submitted": T0 - 5,
        "started": T0,
        "ended": T0 + seconds,
        "outcome": outcome,
        "reason": "",
        "exit_code": 0,
    }


def steps() -> list[StepReport]:
    catalog = Catalog()
    small = StepSpec("Prep", "m", "a" * 32, "t", {}, catalog["small"], Eviction.TOLERATE)
    train = StepSpec("Train", "m", "b" * 32, "t", {}, catalog["highmem"], Eviction.PROTECT)
    return [
        StepReport(small, [pod("spot-e2-standard-4", "spot", 600, "evicted"), pod("spot-e2-standard-4", "spot", 1200)]),
        StepReport(train, [pod("ondemand-e2-highmem-8", "on-demand", 3600)]),
    ]


def test_attempts_get_the_steps_requests_and_their_generated_pools_machine() -> None:
    attempts = billable_attempts(
        steps(), platform="gke-standard", options=CostOptions(region="asia-northeast1"), machines=load_machines()
    )
    assert [(a["machine_type"], a["cpu"], a["memory"]) for a in attempts] == [
        ("e2-standard-4", "500m", "1Gi"),
        ("e2-standard-4", "500m", "1Gi"),
        ("e2-highmem-8", "4", "32Gi"),
    ]


def test_the_summary_line_totals_spot_and_on_demand_and_the_redone_work() -> None:
    line = summary_line(
        steps(), platform="gke-standard", options=CostOptions(region="asia-northeast1"), machines=load_machines()
    )
    # Train: 4 of 7.46 usable cpu vs 32 GiB of an e2-highmem-8's usable memory (0.46351/h) for an hour:
    # 65536 MiB - 1104 (kernel) - 5572 (reserved) - 100 (eviction) - 614.4 (DaemonSets) = 58145.6 MiB.
    share = Decimal(32 * 1024) / Decimal("58145.6")
    assert f"on-demand {Decimal('0.46351') * share:.4f}" in line
    assert "redone work 600 s" in line and "not priced" not in line
    assert line.endswith(f"; by step: Train {Decimal('0.46351') * share:.4f}, Prep 0.0050")


def test_an_attempt_on_a_hand_made_pool_is_left_unpriced_and_said_so() -> None:
    reports = steps()
    reports[1].attempt_log[0]["pool"] = "my-big-pool"
    line = summary_line(
        reports, platform="gke-standard", options=CostOptions(region="asia-northeast1"), machines=load_machines()
    )
    assert "1 attempt(s) not priced" in line
    assert "machine type unknown (pool 'my-big-pool' is not one `gokart-k8s pools` generated)" in line


def test_karpenter_attempts_take_the_generated_nodepools_instance_type() -> None:
    reports = steps()
    for report in reports:
        for entry in report.attempt_log:
            entry["pool"] = None  # Karpenter has no pools to pin
    attempts = billable_attempts(
        reports, platform="eks-karpenter", options=CostOptions(region="asia-northeast1"), machines=load_machines()
    )
    assert attempts[0]["machine_type"] == "m6i.2xlarge"  # the only priced Spot type that holds small


def test_the_runner_logs_the_cost_line_after_a_cluster_run(luigi_cfg: Any) -> None:
    from gokart_k8s.progress import ProgressDisplay
    from gokart_k8s.runner import _report_cost
    from gokart_k8s.settings import load_settings

    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\nregion = asia-northeast1\n")
    reports = steps()
    with ProgressDisplay([r.spec for r in reports]) as progress:
        logged: list[str] = []
        progress.log = logged.append  # type: ignore[method-assign]
        _report_cost(reports, load_settings(), progress)
        _report_cost([StepReport(reports[0].spec)], load_settings(), progress)  # no attempts: no line
    assert len(logged) == 1 and logged[0].startswith("cost: 0.26") and "redone work 600 s" in logged[0]


def test_run_record_steps_are_priced_by_their_requests_and_node_machine_types() -> None:
    from gokart_k8s.history.record import Attempt, StepRecord

    step = StepRecord(
        unique_id="a" * 32,
        family="Train",
        resource_class="highmem",
        requests={"cpu": "4", "memory": "32Gi", "gpu": 0, "accelerator": None},
        eviction="protect",
    )
    # The record read the node's machine type; the other attempt ran on a generated pool, named so.
    step.attempts = [
        Attempt(uid="1", pod="p1", machine_type="e2-highmem-8", capacity_type="on-demand", started=T0, ended=T0 + 1800),
        Attempt(
            uid="2", pod="p2", pool="ondemand-e2-highmem-8", capacity_type="on-demand", started=T0, ended=T0 + 1800
        ),
    ]
    options = CostOptions(region="asia-northeast1")
    attempts = billable_attempts([step], platform="gke-standard", options=options, machines=load_machines())
    assert [(a["machine_type"], a["cpu"], a["memory"]) for a in attempts] == [("e2-highmem-8", "4", "32Gi")] * 2
    line = summary_line([step], platform="gke-standard", options=options, machines=load_machines())
    share = Decimal(32 * 1024) / Decimal("58145.6")
    assert (
        line == f"cost: {Decimal('0.46351') * share:.4f} USD (Spot 0.0000, on-demand {Decimal('0.46351') * share:.4f})"
    )
