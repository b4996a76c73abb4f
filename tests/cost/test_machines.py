"""The machine catalog: allocatable by GKE's reservation formula, usable after DaemonSets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gokart_k8s.cost.machines import GIB, MIB, Machine, gke_memory_reserved_mib, load_machines
from gokart_k8s.errors import ConfigurationError

KI = Decimal(1024)


def machine(name: str) -> Machine:
    return next(m for m in load_machines() if m.machine_type == name)


@pytest.mark.parametrize(
    ("nominal_gib", "capacity_ki", "allocatable_ki"),
    [
        # Measured on GKE 1.25 (2i2c-org/infrastructure issue #2121): n2-highmem-4 and n2-highmem-16.
        (32, 32880872, 29085928),
        (128, 131919220, 122210676),
    ],
)
def test_allocatable_memory_reproduces_measured_gke_nodes_exactly(
    nominal_gib: int, capacity_ki: int, allocatable_ki: int
) -> None:
    # Only the 1000-MiB "GB" of the upstream brackets gives these exact values.
    m = Machine(cloud="gcp", machine_type="n2-highmem", vcpu=4, memory_gib=Decimal(nominal_gib))
    alloc = m.allocatable(capacity_memory=capacity_ki * KI)
    assert alloc.memory == allocatable_ki * KI


def test_reservation_brackets_count_gb_as_1000_mib() -> None:
    # 16 GiB: 25% of 4000 + 20% of 4000 + 10% of 8000 + 6% of 384 MiB = 2623 MiB (1024-MiB brackets: 2662).
    assert gke_memory_reserved_mib(16 * 1024) == 2623
    assert gke_memory_reserved_mib(512) == 255


@pytest.mark.parametrize(
    ("name", "cpu", "memory_gib"),
    [
        # cost-pools-reports.md A.2: CPU allocatable and estimated allocatable memory (GiB, 2 decimals).
        ("e2-standard-4", "3.92", "13.01"),
        ("e2-standard-16", "15.89", "57.38"),
        ("n2-standard-32", "31.85", "116.66"),
        ("g2-standard-12", "11.9", "42.59"),
        ("n1-standard-8", "7.91", "25.95"),
    ],
)
def test_allocatable_of_catalog_machines_matches_the_researched_table(name: str, cpu: str, memory_gib: str) -> None:
    alloc = machine(name).allocatable()
    assert alloc.cpu == Decimal(cpu)
    assert round(alloc.memory / GIB, 2) == Decimal(memory_gib)


def test_usable_is_allocatable_minus_the_configured_daemonset_overhead() -> None:
    m = machine("e2-standard-4")
    alloc = m.allocatable()
    usable = m.usable(Decimal("0.5"), 512 * MIB)
    assert usable.cpu == alloc.cpu - Decimal("0.5")
    assert usable.memory == alloc.memory - 512 * MIB


def test_gpu_machines_carry_their_gpus() -> None:
    assert machine("g2-standard-12").allocatable().gpus == 1
    assert machine("n1-standard-8").accelerator == "nvidia-tesla-t4"


def test_eks_nodes_reserve_memory_per_pod() -> None:
    # eksctl: 11 MiB x 110 pods + 255 MiB, plus the 100 MiB eviction threshold, from the nominal 16 GiB.
    assert machine("m6i.xlarge").allocatable().memory == (16 * 1024 - 1465 - 100) * MIB


def test_a_broken_machine_row_is_one_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="machine row"):
        load_machines("cloud,machine_type,vcpu,memory_gib,gpus,accelerator,source\ngcp,x,four,16,0,,s\n")


def test_the_default_gke_standard_pools_name_catalog_machines_so_a_rehearsal_is_priced() -> None:
    from gokart_k8s.cost.prices import shipped_catalog
    from gokart_k8s.platforms.gke_standard import INSTANCE_TYPE_LABEL, default_pools

    machines = {m.machine_type: m for m in load_machines() if m.cloud == "gcp"}
    for pool in default_pools():
        machine = machines[pool.labels[INSTANCE_TYPE_LABEL]]
        assert (machine.gpus, machine.accelerator or None) == (pool.gpu, pool.accelerator), pool.name
        quote = shipped_catalog().machine_hour(
            "gcp",
            "asia-northeast1",
            machine.machine_type,
            gpus=machine.gpus,
            accelerator=machine.accelerator,
            spot=pool.spot,
        )
        assert quote.value is not None, (pool.name, quote.missing)
