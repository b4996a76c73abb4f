"""The price catalog: every row sourced and dated, absent values absent, overrides in order."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.cost.config import load_cost_options
from gokart_k8s.cost.prices import (
    COLUMNS,
    PriceRow,
    effective_catalog,
    parse_rows,
    rows_from_config,
    rows_to_csv,
    shipped_catalog,
)
from gokart_k8s.errors import ConfigurationError


def test_every_shipped_row_has_a_source_a_date_and_a_tag() -> None:
    rows = shipped_catalog().rows()
    assert len(rows) > 40
    for row in rows:
        assert row.source.startswith("https://"), row
        assert len(row.date) == 10 and row.date[4] == "-", row
        assert row.tag in ("P", "S", "D", "P/S", "NF"), row


def test_rows_not_found_have_no_value_and_found_rows_have_one() -> None:
    for row in shipped_catalog().rows():
        if row.tag == "NF":
            assert row.on_demand is None and row.spot is None, row
        elif row.kind != "cluster-fee":
            assert row.on_demand is not None, row


@pytest.mark.parametrize("region", ["asia-northeast1", "us-central1"])
def test_both_required_regions_price_every_gcp_machine_on_demand_and_spot(region: str) -> None:
    from gokart_k8s.cost.machines import load_machines

    catalog = shipped_catalog()
    for m in load_machines():
        if m.cloud != "gcp":
            continue
        for spot in (False, True):
            quote = catalog.machine_hour(
                "gcp", region, m.machine_type, gpus=m.gpus, accelerator=m.accelerator, spot=spot
            )
            assert quote.value is not None and quote.value > 0, (m, spot)


def test_a_gpu_machine_is_its_host_plus_its_gpus() -> None:
    quote = shipped_catalog().machine_hour(
        "gcp", "asia-northeast1", "g2-standard-12", gpus=1, accelerator="nvidia-l4", spot=False
    )
    assert quote.value == Decimal("0.56553") + Decimal("0.7192")  # the research's 1.28473 total
    assert {r.kind for r in quote.rows} == {"machine", "gpu"}


def test_the_gke_cluster_fee_is_in_the_catalog() -> None:
    row = shipped_catalog().row("gcp", "us-central1", "cluster-fee", "gke-standard")
    assert row is not None and row.on_demand == Decimal("0.10")
    assert row.source == "https://cloud.google.com/kubernetes-engine/pricing"


def test_an_absent_price_is_unknown_with_how_to_supply_it() -> None:
    quote = shipped_catalog().quote("gcp", "asia-northeast1", "autopilot-cpu", "general-purpose", spot=False)
    assert quote.value is None
    assert "[gokart_k8s.prices]" in quote.missing and "autopilot-cpu.general-purpose" in quote.missing


def test_luigi_cfg_prices_override_the_catalog_for_the_region(luigi_cfg: Any) -> None:
    luigi_cfg(
        "[gokart_k8s.prices]\ne2-standard-4 = 0.2 / 0.05\nautopilot-cpu.general-purpose = 0.06 / 0.02\n"
        "m6i.xlarge = 0.3 / 0.1\n"
    )
    options = load_cost_options(region="asia-northeast1")
    machine = options.prices.quote("gcp", "asia-northeast1", "machine", "e2-standard-4", spot=True)
    assert machine.value == Decimal("0.05") and machine.rows[0].source == "luigi.cfg [gokart_k8s.prices]"
    assert options.prices.quote(
        "gcp", "asia-northeast1", "autopilot-cpu", "general-purpose", spot=False
    ).value == Decimal("0.06")
    # An EC2 type (it has a dot) is priced in the AWS region nearest the configured one.
    assert options.prices.quote("aws", "ap-northeast-1", "machine", "m6i.xlarge", spot=True).value == Decimal("0.1")


def test_a_prices_file_overrides_luigi_cfg(luigi_cfg: Any, tmp_path: Path) -> None:
    luigi_cfg("[gokart_k8s.prices]\ne2-standard-4 = 0.2 / 0.05\n")
    row = PriceRow(
        "gcp",
        "asia-northeast1",
        "machine",
        "e2-standard-4",
        Decimal("0.3"),
        Decimal("0.07"),
        source="quote",
        date="2026-12-01",
    )
    path = tmp_path / "prices.csv"
    path.write_text(rows_to_csv([row]))
    options = load_cost_options(region="asia-northeast1", prices_file=path)
    assert options.prices.quote("gcp", "asia-northeast1", "machine", "e2-standard-4", spot=False).value == Decimal(
        "0.3"
    )


def test_a_price_file_row_without_source_or_date_is_refused() -> None:
    header = ",".join(COLUMNS)
    with pytest.raises(ConfigurationError, match="source and a date"):
        parse_rows(f"{header}\ngcp,us-central1,machine,e2-standard-4,0.1,0.05,USD/hour,user,,,\n", where="f.csv")


@pytest.mark.parametrize("text", ["cloud,region\ngcp,x\n", ",".join(COLUMNS) + "\ngcp,r,machine,x,cheap,,,,s,d,\n"])
def test_a_bad_price_file_says_what_to_change(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_rows(text, where="f.csv")


def test_a_missing_prices_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--prices"):
        effective_catalog(prices_file=tmp_path / "nope.csv")


def test_a_config_price_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="e2-standard-4"):
        rows_from_config({"e2-standard-4": "cheap"}, region="us-central1")
