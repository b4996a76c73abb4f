"""Price catalog: hourly list prices, each row with where it comes from and when it was read.

The catalog shipped with the package is ``data/prices.csv``. Every row names its source (a URL,
with a commit for catalogs kept in repositories), the date it was read or generated, and a tag:
``P`` primary (the provider's own page or code), ``S`` secondary (a third-party catalog), ``D``
derived by arithmetic from a sourced row (the note says how) and ``NF`` looked for and not found.
Where no number was found the value is **absent**, never guessed: anything that needs it is shown
as unknown, and the message says how to supply it.

Kinds of rows (``kind`` column):

``machine``
    a machine type's price per node-hour, on-demand and Spot. For GPU machines this is the host
    alone; the GPUs are priced by their ``gpu`` rows (Compute Engine bills attached GPUs apart,
    https://cloud.google.com/compute/gpus-pricing).
``gpu``
    one GPU of an accelerator type, per hour.
``cluster-fee``
    the cluster management fee per cluster-hour (GKE: 0.10 USD for Standard and Autopilot,
    https://cloud.google.com/kubernetes-engine/pricing), region ``*``.
``autopilot-cpu``, ``autopilot-memory``, ``autopilot-gpu``
    Autopilot's per-pod rates by compute class (per vCPU-hour, GiB-hour, GPU-hour of the pod's
    requests). Only asia-southeast1 numbers were found (secondary).

Prices change (Spot prices up to once every 30 days), so the table is data the user can refresh
or override, from highest to lowest precedence:

1. ``--prices FILE``: a CSV with the same columns; its rows replace the matching rows;
2. ``[gokart_k8s.prices]`` in luigi.cfg: ``<item> = <on-demand>`` or ``<item> = <on-demand> / <spot>``
   for the configured region (``e2-standard-4 = 0.17 / 0.07``; ``autopilot-cpu.general-purpose =
   0.0549 / 0.0165``; ``gpu.nvidia-l4 = 0.7192 / 0.2853``; ``cluster-fee.gke-standard = 0.10``);
   their source reads ``luigi.cfg`` and their date is today;
3. the shipped catalog.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path

from gokart_k8s.errors import ConfigurationError

COLUMNS = ("cloud", "region", "kind", "item", "on_demand", "spot", "unit", "tag", "source", "date", "note")
KINDS = ("machine", "gpu", "cluster-fee", "autopilot-cpu", "autopilot-memory", "autopilot-gpu")

#: The AWS region priced when the configured (GCP-named) region is given, for side-by-side
#: comparison: the same metro area where there is one, else the usual US region.
AWS_REGION_FOR = {"asia-northeast1": "ap-northeast-1", "us-central1": "us-east-1"}


@dataclass(frozen=True)
class PriceRow:
    """One row of the catalog; ``on_demand``/``spot`` are ``None`` when not known."""

    cloud: str
    region: str
    kind: str
    item: str
    on_demand: Decimal | None
    spot: Decimal | None
    unit: str = ""
    tag: str = ""
    source: str = ""
    date: str = ""
    note: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.cloud, self.region, self.kind, self.item)

    def price(self, *, spot: bool) -> Decimal | None:
        return self.spot if spot else self.on_demand


@dataclass(frozen=True)
class Quote:
    """A price found (or not) for one thing, with the rows it came from."""

    value: Decimal | None
    rows: tuple[PriceRow, ...] = ()
    #: What is missing when ``value`` is None, and how to supply it.
    missing: str = ""

    @property
    def known(self) -> bool:
        return self.value is not None


class PriceCatalog:
    """All price rows by (cloud, region, kind, item); later rows replace earlier ones."""

    def __init__(self, rows: Iterable[PriceRow]) -> None:
        self._rows: dict[tuple[str, str, str, str], PriceRow] = {}
        for row in rows:
            self._rows[row.key] = row

    def rows(self) -> list[PriceRow]:
        return list(self._rows.values())

    def overridden(self, rows: Iterable[PriceRow]) -> PriceCatalog:
        """A new catalog with ``rows`` replacing the rows of the same key."""
        return PriceCatalog([*self._rows.values(), *rows])

    def row(self, cloud: str, region: str, kind: str, item: str) -> PriceRow | None:
        return self._rows.get((cloud, region, kind, item)) or self._rows.get((cloud, "*", kind, item))

    def quote(self, cloud: str, region: str, kind: str, item: str, *, spot: bool) -> Quote:
        """The price of one item, or why it is unknown."""
        row = self.row(cloud, region, kind, item)
        capacity = "spot" if spot else "on-demand"
        value = row.price(spot=spot) if row else None
        if row is None or value is None:
            return Quote(
                None,
                (row,) if row else (),
                missing=f"no {capacity} price for {kind} {item!r} in {region}: set it in [gokart_k8s.prices] "
                f"({override_key(kind, item)} = <on-demand> / <spot>) or pass --prices FILE",
            )
        return Quote(value, (row,))

    def machine_hour(
        self, cloud: str, region: str, machine_type: str, *, gpus: int = 0, accelerator: str | None = None, spot: bool
    ) -> Quote:
        """One node-hour of a machine, its GPUs included (host row + GPUs x gpu row on GCP)."""
        host = self.quote(cloud, region, "machine", machine_type, spot=spot)
        if cloud != "gcp" or not gpus:
            return host
        gpu = self.quote(cloud, region, "gpu", accelerator or "", spot=spot)
        if host.value is None or gpu.value is None:
            return Quote(None, host.rows + gpu.rows, missing=host.missing or gpu.missing)
        return Quote(host.value + gpus * gpu.value, host.rows + gpu.rows)

    def regions(self, cloud: str) -> list[str]:
        return sorted({r.region for r in self._rows.values() if r.cloud == cloud and r.region != "*"})


def override_key(kind: str, item: str) -> str:
    """The key of ``[gokart_k8s.prices]`` that overrides a row: the machine type alone, else ``kind.item``."""
    return item if kind == "machine" else f"{kind}.{item}"


def _decimal(text: str, where: str) -> Decimal | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ConfigurationError(f"{where}: a price must be a number of USD per hour, got {text!r}") from None
    if value < 0 or not value.is_finite():
        raise ConfigurationError(f"{where}: a price must be zero or more, got {text!r}")
    return value


def parse_rows(text: str, *, where: str) -> list[PriceRow]:
    """Rows of a price CSV (the shipped one or a ``--prices`` file); ``#`` lines are comments."""
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigurationError(
            f"{where}: a price file needs the columns {', '.join(COLUMNS)}; missing: {', '.join(missing)}"
        )
    rows = []
    for number, raw in enumerate(reader, 2):
        at = f"{where}: row {number}"
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        if row["kind"] not in KINDS:
            raise ConfigurationError(f"{at}: kind must be one of {', '.join(KINDS)}, got {row['kind']!r}")
        if not row["source"] or not row["date"]:
            raise ConfigurationError(f"{at}: every price row needs a source and a date (when it was read)")
        rows.append(
            PriceRow(
                cloud=row["cloud"],
                region=row["region"],
                kind=row["kind"],
                item=row["item"],
                on_demand=_decimal(row["on_demand"], at),
                spot=_decimal(row["spot"], at),
                unit=row["unit"],
                tag=row["tag"],
                source=row["source"],
                date=row["date"],
                note=row["note"],
            )
        )
    return rows


def shipped_catalog() -> PriceCatalog:
    """The catalog shipped with the package."""
    text = resources.files("gokart_k8s.cost").joinpath("data/prices.csv").read_text()
    return PriceCatalog(parse_rows(text, where="gokart_k8s/cost/data/prices.csv"))


def rows_from_config(
    items: Mapping[str, str],
    *,
    region: str,
    aws_region: str | None = None,
    where: str = "[gokart_k8s.prices]",
    today: str | None = None,
) -> list[PriceRow]:
    """Rows from ``[gokart_k8s.prices]`` keys (see the module docstring), for ``region``.

    A machine type with a dot (``m6i.xlarge``) is an EC2 instance type, priced in ``aws_region``
    (GCP machine types never contain one); every other key is a GCP price.
    """
    date = today or datetime.date.today().isoformat()
    out = []
    for key, raw in items.items():
        kind, _, item = key.partition(".")
        cloud, where_priced = "gcp", region
        if kind not in KINDS or not item:
            kind, item = "machine", key
            if "." in key:
                cloud, where_priced = "aws", aws_region or AWS_REGION_FOR.get(region, region)
        od_text, slash, spot_text = raw.partition("/")
        at = f"{where} {key}"
        if not od_text.strip() and not spot_text.strip():
            raise ConfigurationError(
                f"{at}: write '<on-demand>' or '<on-demand> / <spot>' in USD per hour, got {raw!r}"
            )
        out.append(
            PriceRow(
                cloud=cloud,
                region="*" if kind == "cluster-fee" else where_priced,
                kind=kind,
                item=item,
                on_demand=_decimal(od_text, at),
                spot=_decimal(spot_text, at) if slash else None,
                unit="USD/hour",
                tag="user",
                source="luigi.cfg [gokart_k8s.prices]",
                date=date,
            )
        )
    return out


def effective_catalog(*, config_rows: Iterable[PriceRow] = (), prices_file: str | Path | None = None) -> PriceCatalog:
    """Shipped rows, overridden by ``[gokart_k8s.prices]`` rows, overridden by ``--prices FILE``."""
    catalog = shipped_catalog().overridden(config_rows)
    if prices_file is not None:
        path = Path(prices_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigurationError(
                f"--prices {path}: cannot read the file ({exc.strerror}); pass a CSV file"
            ) from None
        catalog = catalog.overridden(parse_rows(text, where=str(path)))
    return catalog


def table(catalog: PriceCatalog, *, regions: Iterable[str] | None = None) -> str:
    """The effective table for ``gokart-k8s prices``: one line per row with tag, source and date."""
    wanted = set(regions) if regions is not None else None
    rows = [r for r in catalog.rows() if wanted is None or r.region in wanted or r.region == "*"]
    rows.sort(key=lambda r: (r.cloud, r.region, KINDS.index(r.kind), r.item))
    header = ("CLOUD", "REGION", "KIND", "ITEM", "ON-DEMAND", "SPOT", "TAG", "DATE", "SOURCE")
    body = [
        (
            r.cloud,
            r.region,
            r.kind,
            r.item,
            "unknown" if r.on_demand is None else f"{r.on_demand}",
            ("n/a" if r.kind == "cluster-fee" else "unknown") if r.spot is None else f"{r.spot}",
            r.tag,
            r.date,
            r.source,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *body]]
    unknown = [r for r in rows if r.on_demand is None]
    if unknown:
        lines.append(
            f"{len(unknown)} row(s) have no on-demand price: supply them in [gokart_k8s.prices] "
            "(e.g. 'autopilot-cpu.general-purpose = 0.0549 / 0.0165') or with --prices FILE."
        )
    return "\n".join(lines)


def rows_to_csv(rows: Iterable[PriceRow]) -> str:
    """Rows as a CSV a ``--prices`` file may hold."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        values = dataclasses.asdict(r)
        writer.writerow(["" if values[c] is None else str(values[c]) for c in COLUMNS])
    return out.getvalue()
