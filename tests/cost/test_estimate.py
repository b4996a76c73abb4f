"""plan --cost: each step's expected cost by the platform's billing model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gokart_k8s.cost.config import load_cost_options
from gokart_k8s.cost.estimate import compare, compare_table, estimate, table
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import Catalog
from gokart_k8s.settings import load_settings
from gokart_k8s.steps import StepSpec, collect

CFG = "[gokart_k8s]\nregion = asia-northeast1\n[gokart_k8s.expected_runtime]\nCostReport = 1h\n"


def rows(cached: tuple[str, ...] = ()) -> list[tuple[Any, Any, bool]]:
    from tests.cost.pipelines import CostReport

    steps, problems = collect([CostReport()], load_settings())
    assert not problems
    return [(s.spec, s.task, s.spec.family in cached) for s in steps]


def by_family(est: Any) -> dict[str, Any]:
    return {s.family: s for s in est.steps}


def test_a_step_alone_on_its_pool_pays_the_whole_node_and_shared_steps_their_share(luigi_cfg: Any) -> None:
    luigi_cfg(CFG)
    est = by_family(estimate(rows(), platform="gke-standard", options=load_cost_options(region="asia-northeast1")))
    train = est["CostTrain"]
    # Only step on the on-demand e2-highmem-8 pool: 2 h x 0.46351.
    assert (train.hourly, train.cost, train.spot) == (Decimal("0.46351"), Decimal("0.92702"), False)
    assert "alone on its node" in train.where
    # CostPrep and CostReport share the Spot e2-standard-4 pool: 0.5 of 3.47 usable cpu is CostPrep's largest share.
    prep = est["CostPrep"]
    assert abs(prep.cost - Decimal("0.06878") * Decimal("0.5") / Decimal("3.47") / 2) < Decimal("1e-9")
    assert (prep.runtime_seconds, prep.runtime_source) == (1800, "declared")
    assert (est["CostReport"].runtime_seconds, est["CostReport"].runtime_source) == (3600, "luigi.cfg")


def test_autopilot_prices_the_requests_and_leaves_unknown_rates_unknown(luigi_cfg: Any) -> None:
    luigi_cfg(
        CFG + "[gokart_k8s.prices]\nautopilot-cpu.general-purpose = 0.06 / 0.02\n"
        "autopilot-memory.general-purpose = 0.007 / 0.002\n"
    )
    est = estimate(rows(), platform="gke-autopilot", options=load_cost_options(region="asia-northeast1"))
    steps = by_family(est)
    # CostReport: 1 cpu + 4 GiB on a Spot Pod for 1 h.
    assert steps["CostReport"].cost == Decimal("0.02") + 4 * Decimal("0.002")
    # CostTrain (8 GiB per cpu) needs compute class Balanced, whose rate is not known: unknown, not zero.
    assert steps["CostTrain"].cost is None and "autopilot-cpu.balanced" in steps["CostTrain"].note
    assert est.total_text().startswith("at least") and "1 step(s) unknown" in est.total_text()


def test_spot_steps_add_the_work_redone_after_preemptions(luigi_cfg: Any) -> None:
    luigi_cfg(CFG + "[gokart_k8s.cost]\nspot_preemptions_per_hour = 0.5\ncheckpoint_interval = 10m\n")
    est = by_family(estimate(rows(), platform="gke-standard", options=load_cost_options(region="asia-northeast1")))
    # CostPrep: 0.5/h x 0.5 h = 0.25 preemptions, each redoing at most one 10-minute checkpoint interval.
    assert est["CostPrep"].redone_seconds == 150
    assert est["CostPrep"].redone_cost == est["CostPrep"].hourly * 150 / 3600
    assert est["CostTrain"].redone_seconds == 0  # protected: on-demand, not preempted


def test_without_a_preemption_rate_the_redone_work_is_unknown(luigi_cfg: Any) -> None:
    luigi_cfg(CFG)
    est = estimate(rows(), platform="gke-standard", options=load_cost_options(region="asia-northeast1"))
    assert by_family(est)["CostPrep"].redone_cost is None
    assert "spot_preemptions_per_hour" in table(est)


def test_run_time_unknown_is_shown_as_unknown_and_cached_steps_cost_nothing(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nregion = asia-northeast1\n")
    est = estimate(
        rows(cached=("CostPrep",)), platform="gke-standard", options=load_cost_options(region="asia-northeast1")
    )
    steps = by_family(est)
    assert steps["CostPrep"].cached and steps["CostPrep"].cost == 0
    assert steps["CostReport"].cost is None and "expected_runtime" in steps["CostReport"].note
    text = table(est)
    assert "unknown" in text and "cached" in text
    assert "plus the cluster fee, 0.10 USD per cluster-hour" in text


def test_past_runs_give_the_run_time_when_nothing_is_declared(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\nregion = asia-northeast1\n")
    est = estimate(
        rows(),
        platform="gke-standard",
        options=load_cost_options(region="asia-northeast1"),
        history=lambda spec: 900.0 if spec.family == "CostReport" else None,
    )
    assert (by_family(est)["CostReport"].runtime_seconds, by_family(est)["CostReport"].runtime_source) == (
        900,
        "past runs",
    )


def test_past_runs_come_before_a_declared_run_time(luigi_cfg: Any) -> None:
    luigi_cfg(CFG)
    est = estimate(
        rows(),
        platform="gke-standard",
        options=load_cost_options(region="asia-northeast1"),
        history=lambda spec: 600.0 if spec.family == "CostPrep" else None,
    )
    prep = by_family(est)["CostPrep"]
    assert (prep.runtime_seconds, prep.runtime_source) == (600, "past runs")


def test_platforms_side_by_side_with_spot_and_on_demand_shares(luigi_cfg: Any) -> None:
    luigi_cfg(CFG)
    results = compare(rows(), options=load_cost_options(region="asia-northeast1"))
    assert [est.platform for est, _ in results] == ["gke-standard", "gke-autopilot", "eks-karpenter"]
    assert results[2][0].region == "ap-northeast-1"
    text = compare_table(results)
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["PLATFORM", "REGION", "TOTAL", "(USD)"]
    standard = results[0][0]
    spot_share = standard.spot_total / standard.total * 100
    assert f"{spot_share:.1f}%" in lines[1]


def test_past_runs_are_the_median_of_succeeded_attempts_by_step_then_by_family() -> None:
    from dataclasses import dataclass, field

    from gokart_k8s.cost.estimate import history_from_records

    @dataclass
    class Attempt:
        outcome: str
        started: float | None
        ended: float | None

    @dataclass
    class Step:
        unique_id: str
        family: str
        attempts: list[Attempt] = field(default_factory=list)

    @dataclass
    class Record:
        steps: list[Step]

    records = [
        Record([Step("a" * 32, "Train", [Attempt("evicted", 0, 50), Attempt("succeeded", 60, 160)])]),
        Record([Step("a" * 32, "Train", [Attempt("succeeded", 0, 300)]), Step("c" * 32, "Train", [])]),
        Record([Step("b" * 32, "Train", [Attempt("succeeded", 0, 1000), Attempt("succeeded", 5, None)])]),
    ]
    past = history_from_records(records)
    rc = Catalog()["small"]
    assert past(StepSpec("Train", "m", "a" * 32, "t", {}, rc, Eviction.TOLERATE)) == 200  # median of 100, 300
    assert past(StepSpec("Train", "m", "z" * 32, "t", {}, rc, Eviction.TOLERATE)) == 300  # family: 100, 300, 1000
    assert past(StepSpec("Other", "m", "y" * 32, "t", {}, rc, Eviction.TOLERATE)) is None
