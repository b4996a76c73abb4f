"""Resource classes take Kubernetes quantities and refuse anything the API server would."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gokart_k8s import QuantityError, ResourceClass
from gokart_k8s.resources import BUILTIN_CLASSES, Catalog, parse_quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("16Gi", Decimal(16 * 2**30)),
        ("1.5G", Decimal("1.5e9")),
        ("1e3", Decimal(1000)),
        ("128Mi", Decimal(128 * 2**20)),
        ("0.5", Decimal("0.5")),
        ("100k", Decimal(100000)),
    ],
)
def test_kubernetes_quantities_parse_to_their_value(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["4 GB", "-1", "1Gb", "two", "", "1.5 Gi", "Gi", "1GiB", "1e"])
def test_quantities_the_api_server_refuses_are_refused(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_a_bad_quantity_error_names_the_class_and_the_field() -> None:
    with pytest.raises(
        QuantityError, match=r"resource class 'big', field 'memory': '4 GB' is not a Kubernetes quantity"
    ):
        ResourceClass(cpu="2", memory="4 GB", name="big")
    with pytest.raises(QuantityError, match=r"field 'cpu': '-1' is negative"):
        ResourceClass(cpu="-1", memory="1Gi")
    with pytest.raises(QuantityError, match=r"field 'disk'"):
        ResourceClass(disk="lots")


def test_a_gpu_needs_an_accelerator_type_and_the_reverse() -> None:
    with pytest.raises(QuantityError, match=r"gpu=1 needs accelerator="):
        ResourceClass(gpu=1)
    with pytest.raises(QuantityError, match=r"gpu is 0"):
        ResourceClass(accelerator="nvidia-l4")
    with pytest.raises(QuantityError, match=r"whole number of GPUs"):
        ResourceClass(gpu=-1, accelerator="nvidia-l4")


def test_numbers_are_accepted_for_cpu_and_kept_as_kubernetes_strings() -> None:
    rc = ResourceClass(cpu=2, memory="1Gi")  # type: ignore[arg-type]
    assert rc.cpu == "2"
    assert rc.cpu_cores == 2


def test_the_builtin_catalog_covers_small_to_gpu_classes_so_no_config_is_needed() -> None:
    catalog = Catalog()
    assert set(BUILTIN_CLASSES) <= set(catalog)
    assert catalog["gpu-t4"].gpu == 1
    assert catalog["small"].memory_bytes < catalog["highmem"].memory_bytes


def test_a_team_catalog_adds_and_overrides_classes() -> None:
    catalog = Catalog({"standard": ResourceClass(cpu="2", memory="8Gi"), "xl": ResourceClass(cpu="32", memory="256Gi")})
    assert catalog["standard"].memory == "8Gi"
    assert catalog["xl"].name == "xl"
