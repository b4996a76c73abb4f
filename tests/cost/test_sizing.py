"""Pool sizing: the cheapest machine whose usable capacity holds each class, merged while cheap."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import load_machines
from gokart_k8s.cost.sizing import Need, needs_for_catalog, needs_for_steps, size_pools, stranded_share, tradeoff
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import Catalog, ResourceClass
from gokart_k8s.steps import StepSpec


def pools_of(region: str, **options: object) -> dict[tuple[bool, str], tuple[str, ...]]:
    sizing = size_pools(
        needs_for_catalog(Catalog().values()),
        load_machines(),
        CostOptions(region=region, **options),  # type: ignore[arg-type]
    )
    assert not sizing.unplaceable
    return {(p.spot, p.machine.machine_type): p.classes for p in sizing.pools}


# Hand-computed from the research tables (usable = allocatable - 0.45 cpu - 0.6 GiB):
# - 4-vCPU machines offer 3.47 usable cpu, so highmem (4 cpu) and highcpu (8 cpu) need 8 and 16 vCPUs;
# - 8-vCPU standard machines offer 27.2 GiB, too little for highmem's 32Gi: a highmem-8 it is;
# - gpu-t4 (4 cpu, 16Gi) fits n1-standard-8 + T4 (7.46 cpu, 25.35 GiB); gpu-l4 (8 cpu, 32Gi) g2-standard-12.
# - Spot picks by Spot price: in Tokyo N2 Spot (highmem-8 0.15992, standard-16 0.23728) beats E2
#   (0.18542, 0.27512); in us-central1 E2 wins (0.14458 < 0.14976, 0.21432 < 0.22208).
# - small and standard both choose e2-standard-4, so they share a pool (0% stranded); highmem + highcpu
#   would share the 16-vCPU machine, stranding 1 - 0.46351/0.68772 = 32.6% (> 25%): kept apart.
TOKYO = {
    (False, "e2-standard-4"): ("small", "standard"),
    (False, "e2-highmem-8"): ("highmem",),
    (False, "e2-standard-16"): ("highcpu",),
    (False, "n1-standard-8"): ("gpu-t4",),
    (False, "g2-standard-12"): ("gpu-l4",),
    (True, "e2-standard-4"): ("small", "standard"),
    (True, "n2-highmem-8"): ("highmem",),
    (True, "n2-standard-16"): ("highcpu",),
    (True, "n1-standard-8"): ("gpu-t4",),
    (True, "g2-standard-12"): ("gpu-l4",),
}
US_CENTRAL = {
    **{k: v for k, v in TOKYO.items() if not k[0]},
    (True, "e2-standard-4"): ("small", "standard"),
    (True, "e2-highmem-8"): ("highmem",),
    (True, "e2-standard-16"): ("highcpu",),
    (True, "n1-standard-8"): ("gpu-t4",),
    (True, "g2-standard-12"): ("gpu-l4",),
}


@pytest.mark.parametrize(("region", "expected"), [("asia-northeast1", TOKYO), ("us-central1", US_CENTRAL)])
def test_builtin_classes_get_the_hand_computed_pools(
    region: str, expected: dict[tuple[bool, str], tuple[str, ...]]
) -> None:
    assert pools_of(region) == expected


def test_a_higher_stranding_limit_merges_highmem_and_highcpu_onto_one_pool() -> None:
    pools = pools_of("asia-northeast1", max_stranded_share=Decimal("0.4"))
    assert pools[(False, "e2-standard-16")] == ("highmem", "highcpu")
    assert pools[(True, "n2-standard-16")] == ("highmem", "highcpu")
    assert len(pools) == 8


def test_classes_choosing_the_same_machine_share_a_pool_even_at_zero_stranding() -> None:
    pools = pools_of("asia-northeast1", max_stranded_share=Decimal(0))
    assert pools[(False, "e2-standard-4")] == ("small", "standard")


def test_gpu_pools_never_merge_across_accelerators_or_with_cpu_pools() -> None:
    pools = pools_of("asia-northeast1", max_stranded_share=Decimal(1))
    gpu = {k: v for k, v in pools.items() if k[1] in ("n1-standard-8", "g2-standard-12")}
    assert sorted(gpu.values()) == [("gpu-l4",), ("gpu-l4",), ("gpu-t4",), ("gpu-t4",)]


def test_stranded_share_is_what_a_lone_step_pays_beyond_its_own_pool() -> None:
    assert stranded_share(Decimal("0.25"), Decimal("1")) == Decimal("0.75")
    assert stranded_share(Decimal("1"), Decimal("0.5")) == 0


def test_the_tradeoff_lists_merges_done_and_refused() -> None:
    options = CostOptions(region="asia-northeast1")
    sizing = size_pools(needs_for_catalog(Catalog().values()), load_machines(), options)
    text = tradeoff(sizing, options)
    assert "merged     on-demand small+standard" in text
    assert "not merged on-demand highmem+highcpu" in text and "32.6%" in text
    assert "result: 10 pools" in text


def test_the_daemonset_overhead_decides_what_fits() -> None:
    # Without DaemonSet overhead a 4-vCPU machine offers 3.92 cpu: a 3.9-cpu class fits it.
    rc = ResourceClass(cpu="3.9", memory="4Gi", name="edge")
    big = size_pools([Need(rc, False)], load_machines(), CostOptions(region="us-central1"))
    small = size_pools([Need(rc, False)], load_machines(), CostOptions(region="us-central1", daemonset_cpu=Decimal(0)))
    assert big.pools[0].machine.vcpu == 8 and small.pools[0].machine.vcpu == 4


def test_a_class_no_machine_holds_is_reported_not_invented() -> None:
    rc = ResourceClass(cpu="64", memory="4Gi", name="huge")
    sizing = size_pools([Need(rc, False)], load_machines(), CostOptions(region="us-central1"))
    assert not sizing.pools
    assert "no gcp machine of the machine catalog holds it" in sizing.unplaceable[0]


def test_a_machine_without_a_price_is_skipped_and_named() -> None:
    # In Tokyo r6i.2xlarge has no price: highmem on-demand goes to the priced m6i.4xlarge.
    rc = Catalog()["highmem"]
    sizing = size_pools([Need(rc, False)], load_machines(), CostOptions(region="asia-northeast1"), cloud="aws")
    assert sizing.pools[0].machine.machine_type == "m6i.4xlarge"
    assert "r6i.2xlarge (on-demand)" in sizing.skipped_unpriced


def test_without_any_price_a_pool_is_still_generated_on_the_smallest_machine_and_its_price_is_unknown() -> None:
    # In Tokyo no EC2 type that holds highmem (4 cpu, 32Gi) has a Spot price: the Spot pool still exists.
    rc = Catalog()["highmem"]
    sizing = size_pools([Need(rc, True)], load_machines(), CostOptions(region="asia-northeast1"), cloud="aws")
    (pool,) = sizing.pools
    assert (pool.machine.machine_type, pool.spot, pool.price.value) == ("r6i.2xlarge", True, None)
    assert "[gokart_k8s.prices]" in pool.price.missing
    assert "m6i.4xlarge, r6i.2xlarge" in sizing.unpriced[0] or "r6i.2xlarge, m6i.4xlarge" in sizing.unpriced[0]


def spec(rc: ResourceClass, eviction: Eviction) -> StepSpec:
    return StepSpec("F", "m", "u" * 32, "t", {}, rc, eviction)


def test_step_needs_follow_tolerance_and_the_on_demand_fallback() -> None:
    small, highmem = Catalog()["small"], Catalog()["highmem"]
    pinned = ResourceClass(cpu="1", memory="1Gi", spot=False, name="pinned")
    specs = [spec(small, Eviction.TOLERATE), spec(highmem, Eviction.PROTECT), spec(pinned, Eviction.TOLERATE)]
    assert {(n.rc.name, n.spot) for n in needs_for_steps(specs, fallback=False)} == {
        ("small", True),
        ("highmem", False),
        ("pinned", False),
    }
    assert ("small", False) in {(n.rc.name, n.spot) for n in needs_for_steps(specs, fallback=True)}
