"""After a run: attempts priced by the platform's billing model, node lifetimes priced by pool."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gokart_k8s.cost import load_machines, price_attempt, price_attempts, price_nodes, shipped_catalog

PRICES = shipped_catalog()
MACHINES = load_machines()
T0 = 1_780_000_000.0


def attempt(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pod": "train-abc-1",
        "node": "node-1",
        "pool": "spot-e2-standard-4",
        "machine_type": "e2-standard-4",
        "capacity_type": "spot",
        "cpu": "500m",
        "memory": "1Gi",
        "gpu": 0,
        "submitted": T0 - 30,
        "started": T0,
        "ended": T0 + 3600,
        "outcome": "succeeded",
        "reason": None,
        "exit_code": 0,
    }
    base.update(changes)
    return base


def test_autopilot_bills_the_pods_requests_with_cpu_in_quarter_steps() -> None:
    # asia-southeast1 Spot general-purpose: 0.0165 per vCPU-hour, 0.0018219 per GiB-hour.
    cost = price_attempt(
        attempt(cpu="300m"), platform="gke-autopilot", region="asia-southeast1", prices=PRICES, machines=MACHINES
    )
    assert cost.cost == Decimal("0.5") * Decimal("0.0165") + Decimal("0.0018219")
    assert cost.seconds == 3600 and cost.spot is True


def test_node_billed_platforms_charge_the_attempts_share_of_its_node() -> None:
    # e2-standard-4 usable memory: 16384 - 336 (kernel) - 2623 (reserved) - 100 (eviction) - 614.4 MiB = 12710.6 MiB;
    # 4Gi of it is the largest share (1 cpu of 3.47 is less). us-central1 on-demand: 0.13402 per node-hour.
    a = attempt(capacity_type="on-demand", cpu="1", memory="4Gi", ended=T0 + 1800)
    cost = price_attempt(a, platform="gke-standard", region="us-central1", prices=PRICES, machines=MACHINES)
    expected = Decimal("0.13402") * Decimal(4096) / Decimal("12710.6") / 2
    assert cost.cost is not None and abs(cost.cost - expected) < Decimal("1e-9")


def test_a_gpu_attempt_pays_for_its_whole_gpu_node() -> None:
    a = attempt(machine_type="n1-standard-8", cpu="4", memory="16Gi", gpu=1, accelerator="nvidia-tesla-t4")
    cost = price_attempt(a, platform="gke-standard", region="asia-northeast1", prices=PRICES, machines=MACHINES)
    assert cost.cost == Decimal("0.13323") + Decimal("0.1342")


def test_eks_attempts_are_priced_with_ec2_prices() -> None:
    a = attempt(machine_type="m6i.2xlarge", cpu="8", memory="8Gi")
    cost = price_attempt(a, platform="eks-karpenter", region="ap-northeast-1", prices=PRICES, machines=MACHINES)
    assert cost.cost == Decimal("0.2186")  # 8 cpu is more than the node's usable 7.46: the whole node


@pytest.mark.parametrize(
    ("changes", "platform", "region", "why"),
    [
        ({"capacity_type": None}, "gke-standard", "us-central1", "capacity type unknown"),
        ({"machine_type": "x9-giant"}, "gke-standard", "us-central1", "not in the machine catalog"),
        ({"ended": None}, "gke-standard", "us-central1", "start or end time unknown"),
        ({}, "gke-autopilot", "asia-northeast1", "[gokart_k8s.prices]"),
        ({"machine_type": "r6i.2xlarge"}, "eks-karpenter", "ap-northeast-1", "no spot price"),
    ],
)
def test_an_attempt_without_a_price_is_unknown_never_zero(
    changes: dict[str, Any], platform: str, region: str, why: str
) -> None:
    cost = price_attempt(attempt(**changes), platform=platform, region=region, prices=PRICES, machines=MACHINES)
    assert cost.cost is None
    assert why in cost.missing


def test_an_attempt_deleted_before_it_started_costs_nothing_even_with_no_node_known() -> None:
    """A pending pod deleted with its Job (the step moved to on-demand) held no node."""
    pending = attempt(node=None, machine_type=None, started=None, ended=T0, outcome=None, exit_code=None)
    cost = price_attempt(pending, platform="gke-standard", region="us-central1", prices=PRICES, machines=MACHINES)
    assert (cost.cost, cost.seconds, cost.missing) == (0, 0, "")
    assert (
        price_attempt(
            {**pending, "ended": None}, platform="gke-standard", region="us-central1", prices=PRICES, machines=MACHINES
        ).cost
        is None
    )  # still waiting: not known yet


def test_a_list_of_attempts_sums_spot_and_on_demand_and_the_work_redone_after_evictions() -> None:
    attempts = [
        attempt(outcome="evicted", ended=T0 + 1200, checkpoint_seconds=900),  # 20 min, 15 min saved: 5 min redone
        attempt(started=T0 + 1300, ended=T0 + 2500),
        attempt(capacity_type="on-demand", started=T0 + 2600, ended=T0 + 3200, outcome="failed"),
        attempt(capacity_type=None),
    ]
    total = price_attempts(
        attempts, platform="gke-standard", region="asia-northeast1", prices=PRICES, machines=MACHINES
    )
    costs = [a.cost for a in total.attempts]
    assert costs[3] is None and total.unknown == 1
    assert total.total == costs[0] + costs[1] + costs[2]  # type: ignore[operator]
    assert total.spot == costs[0] + costs[1] and total.on_demand == costs[2]  # type: ignore[operator]
    assert total.redone_seconds == 300
    assert abs(total.redone_cost - costs[0] * Decimal(300) / Decimal(1200)) < Decimal("1e-12")  # type: ignore[operator]
    assert "1 attempt(s) not priced: pod train-abc-1: capacity type unknown" in total.describe()


def test_an_eviction_without_a_checkpoint_redoes_all_of_its_work() -> None:
    cost = price_attempt(
        attempt(outcome="preempted"),
        platform="gke-standard",
        region="asia-northeast1",
        prices=PRICES,
        machines=MACHINES,
    )
    assert cost.redone_seconds == 3600 and cost.redone_cost == cost.cost


def test_node_lifetimes_give_node_hours_and_cost_by_pool() -> None:
    lifetimes = [
        {
            "pool": "spot-e2-standard-4",
            "machine_type": "e2-standard-4",
            "capacity_type": "spot",
            "start": T0,
            "end": T0 + 1800,
        },
        {
            "pool": "spot-e2-standard-4",
            "machine_type": "e2-standard-4",
            "capacity_type": "spot",
            "start": T0,
            "end": T0 + 1800,
        },
        {
            "pool": "ondemand-g2-standard-12",
            "machine_type": "g2-standard-12",
            "capacity_type": "on-demand",
            "start": T0,
            "end": None,
        },
        {"pool": "mystery", "machine_type": "x9-giant", "capacity_type": "spot", "start": T0, "end": T0 + 60},
        # A rehearsal's ledger: 6 wall seconds that stand for 0.5 cluster hours.
        {
            "pool": "od",
            "machine_type": "e2-standard-4",
            "capacity_type": "on-demand",
            "start": T0,
            "end": T0 + 6,
            "hours": 0.5,
        },
    ]
    by_pool = {
        c.pool: c
        for c in price_nodes(
            lifetimes, cloud="gcp", region="asia-northeast1", prices=PRICES, machines=MACHINES, now=T0 + 7200
        )
    }
    spot = by_pool["spot-e2-standard-4"]
    assert (spot.nodes, spot.node_hours, spot.cost) == (2, 1, Decimal("0.06878"))
    gpu = by_pool["ondemand-g2-standard-12"]
    assert gpu.node_hours == 2 and gpu.cost == 2 * (Decimal("0.56553") + Decimal("0.7192"))
    assert by_pool["mystery"].cost is None and "x9-giant" in by_pool["mystery"].missing
    assert (by_pool["od"].node_hours, by_pool["od"].cost) == (Decimal("0.5"), Decimal("0.17193") / 2)


def test_run_record_attempts_are_priced_by_their_attributes_and_summed_for_the_summary() -> None:
    import dataclasses

    from gokart_k8s.cost.billing import attempt_pricer, run_cost_line
    from gokart_k8s.cost.config import CostOptions

    @dataclasses.dataclass
    class Attempt:  # the run record's shape (gokart_k8s.history.record.Attempt)
        uid: str
        pod: str | None = None
        machine_type: str | None = None
        capacity_type: str | None = None
        cpu: str | None = None
        memory: str | None = None
        gpu: int | None = None
        started: float | None = None
        ended: float | None = None
        outcome: str | None = None

    a = Attempt("u1", "p1", "n1-standard-8", "spot", "4", "16Gi", 1, T0, T0 + 1800, "evicted")
    options = CostOptions(region="asia-northeast1")
    assert attempt_pricer("gke-standard", options, MACHINES)(a) == pytest.approx(0.26743 / 2)
    line = run_cost_line([a], platform="gke-standard", options=options, machines=MACHINES)
    assert line == "cost: 0.1337 USD (Spot 0.1337, on-demand 0.0000), redone work 1800 s = 0.1337 USD"
    assert "plain cluster" in run_cost_line([a], platform="plain", options=options, machines=MACHINES)
    assert "set [gokart_k8s] region" in run_cost_line(
        [a], platform="gke-standard", options=CostOptions(), machines=MACHINES
    )


def test_the_node_cost_line_prices_pools_and_names_the_ones_it_cannot() -> None:
    from gokart_k8s.cost.billing import node_cost_line
    from gokart_k8s.cost.config import CostOptions

    lifetimes = [
        {"pool": "spot-e2-standard-4", "machine_type": "e2-standard-4", "capacity_type": "spot", "hours": 2},
        {"pool": "general", "machine_type": "4cpu-16Gi", "capacity_type": "on-demand", "hours": 1},
    ]
    options = CostOptions(region="asia-northeast1")
    line = node_cost_line(lifetimes, platform="gke-standard", options=options, machines=MACHINES)
    assert line == (
        "node cost: 0.1376 USD at list prices (spot-e2-standard-4 0.1376); not priced: general "
        "(1.00 node-hours, machine '4cpu-16Gi' has no price in the catalog)"
    )
    assert "bills the pods" in node_cost_line(lifetimes, platform="gke-autopilot", options=options, machines=MACHINES)
    assert "set [gokart_k8s] region" in node_cost_line(
        lifetimes, platform="gke-standard", options=CostOptions(), machines=MACHINES
    )


def test_the_rehearsals_autoscaler_compares_nodes_by_the_catalogs_list_prices() -> None:
    from gokart_k8s.cost.billing import CatalogNodePrices
    from gokart_k8s.localcluster.autoscaler.config import LinearPrices
    from gokart_k8s.runner import _catalog_prices
    from gokart_k8s.settings import Settings

    prices = _catalog_prices(Settings(platform="gke-standard", region="asia-northeast1"))["prices"]
    assert isinstance(prices, CatalogNodePrices)
    gib = Decimal(2**30)
    # asia-northeast1 e2-standard-4: 0.17193 on-demand, 0.06878 Spot (the catalog's rows).
    assert prices.hourly(Decimal("3.92"), 13 * gib, 0, False, "e2-standard-4") == pytest.approx(0.17193)
    assert prices.hourly(Decimal("3.92"), 13 * gib, 0, True, "e2-standard-4") == pytest.approx(0.06878)
    # A shape the catalog cannot price (a declared pool without a machine type) keeps a price.
    linear = LinearPrices().hourly(Decimal(2), 8 * gib, 0, True, "2000mcpu-8Gi")
    assert prices.hourly(Decimal(2), 8 * gib, 0, True, "2000mcpu-8Gi") == linear
    assert _catalog_prices(Settings(platform="gke-standard")) == {}  # no region: the stand-in
