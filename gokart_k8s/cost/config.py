"""Cost options: ``[gokart_k8s] region``, ``[gokart_k8s.cost]``, ``[gokart_k8s.prices]`` and
``[gokart_k8s.expected_runtime]`` of luigi.cfg, read once into a :class:`CostOptions`.

::

    [gokart_k8s]
    region = asia-northeast1          # prices are per region; AWS is priced in the nearest region

    [gokart_k8s.cost]
    daemonset_cpu = 0.45              # DaemonSet requests per node, subtracted from allocatable
    daemonset_memory = 0.6Gi
    max_stranded_share = 0.25         # merge classes onto one pool while a lone step strands < 25 %
    max_nodes = 10                    # autoscaling maximum of each generated pool
    spot_preemptions_per_hour = 0.1   # expected preemptions of a Spot step, for plan --cost
    checkpoint_interval = 10m         # how much work one preemption redoes at most

    [gokart_k8s.prices]
    e2-standard-4 = 0.17193 / 0.06878
    autopilot-cpu.general-purpose = 0.0549 / 0.0165

    [gokart_k8s.expected_runtime]
    TrainModel = 3h                   # a step family's expected run time, for plan --cost
"""

from __future__ import annotations

import configparser
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from gokart_k8s.cost.machines import DEFAULT_DAEMONSET_CPU, DEFAULT_DAEMONSET_MEMORY
from gokart_k8s.cost.prices import AWS_REGION_FOR, PriceCatalog, effective_catalog, rows_from_config
from gokart_k8s.declaration import parse_duration
from gokart_k8s.errors import ConfigurationError, QuantityError
from gokart_k8s.resources import parse_quantity

COST_SECTION = "gokart_k8s.cost"
PRICES_SECTION = "gokart_k8s.prices"
RUNTIME_SECTION = "gokart_k8s.expected_runtime"


@dataclass(frozen=True)
class CostOptions:
    """Everything pool generation and cost estimates are told (see the module docstring)."""

    region: str | None = None
    aws_region: str | None = None
    daemonset_cpu: Decimal = DEFAULT_DAEMONSET_CPU
    daemonset_memory: Decimal = DEFAULT_DAEMONSET_MEMORY
    max_stranded_share: Decimal = Decimal("0.25")
    max_nodes: int = 10
    cluster: str = "CLUSTER"
    location_policy: str = "ANY"
    gpu_driver_version: str = "default"
    spot_preemptions_per_hour: Decimal | None = None
    checkpoint_interval_seconds: int | None = None
    expected_runtime: Mapping[str, int] = field(default_factory=dict)
    prices: PriceCatalog = field(default_factory=lambda: effective_catalog())

    def gcp_region(self) -> str:
        """The configured region, or one clear error saying how to set it."""
        if not self.region:
            known = ", ".join(self.prices.regions("gcp"))
            raise ConfigurationError(
                "no region is set, and prices are per region. Set [gokart_k8s] region = <region> in luigi.cfg "
                f"(or GOKART_K8S_REGION, or --region); regions with prices: {known}"
            )
        return self.region

    def ec2_region(self) -> str:
        """The AWS region priced for eks-karpenter: ``aws_region``, else the one nearest the GCP region."""
        if self.aws_region:
            return self.aws_region
        region = self.gcp_region()
        if region in AWS_REGION_FOR:
            return AWS_REGION_FOR[region]
        raise ConfigurationError(
            f"no AWS region is known for {region!r}: set [gokart_k8s.cost] aws_region = <region> "
            f"(regions with EC2 prices: {', '.join(self.prices.regions('aws'))})"
        )


def _number(raw: str, where: str, *, share: bool = False) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigurationError(f"{where}: expected a number, got {raw!r}") from None
    if value < 0 or not value.is_finite() or (share and value > 1):
        raise ConfigurationError(f"{where}: expected a number {'from 0 to 1' if share else '0 or more'}, got {raw!r}")
    return value


def parse_cost_section(
    items: Mapping[str, str], locate: Callable[[str], str] = lambda key: f"[{COST_SECTION}] {key}"
) -> dict[str, object]:
    """The keyword arguments of :class:`CostOptions` a ``[gokart_k8s.cost]`` section gives;
    ``locate(key)`` says where a key is (``luigi.cfg:12``) in messages."""
    out: dict[str, object] = {}
    for key, raw in items.items():
        at = f"{locate(key)}: [{COST_SECTION}] {key}"
        try:
            if key == "daemonset_cpu":
                out[key] = parse_quantity(raw.strip())
            elif key == "daemonset_memory":
                out[key] = parse_quantity(raw.strip())
            elif key == "max_stranded_share":
                out[key] = _number(raw, at, share=True)
            elif key == "max_nodes":
                out[key] = int(_number(raw, at))
            elif key == "spot_preemptions_per_hour":
                out[key] = _number(raw, at)
            elif key == "checkpoint_interval":
                out["checkpoint_interval_seconds"] = parse_duration(raw.strip(), what=at)
            elif key in ("aws_region", "cluster", "location_policy", "gpu_driver_version"):
                out[key] = raw.strip()
            else:
                valid = (
                    "aws_region, checkpoint_interval, cluster, daemonset_cpu, daemonset_memory, gpu_driver_version, "
                )
                valid += "location_policy, max_nodes, max_stranded_share, spot_preemptions_per_hour"
                raise ConfigurationError(f"{at}: unknown key; valid keys: {valid}")
        except (QuantityError, ValueError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"{at}: {exc}") from None
    if out.get("location_policy", "ANY") not in ("ANY", "BALANCED"):
        raise ConfigurationError(
            f"{locate('location_policy')}: [{COST_SECTION}] location_policy must be ANY or BALANCED, "
            f"got {out['location_policy']!r}"
        )
    return out


def load_cost_options(
    *,
    region: str | None = None,
    prices_file: str | Path | None = None,
    config: configparser.RawConfigParser | None = None,
) -> CostOptions:
    """Cost options from the luigi config (``config``, default: luigi's), ``region`` from the
    settings, and ``--prices FILE``."""
    if config is None:
        import luigi.configuration

        config = luigi.configuration.get_config()
    from gokart_k8s.settings import _locate, config_files

    files = config_files()
    cost = dict(config.items(COST_SECTION, raw=True)) if config.has_section(COST_SECTION) else {}
    kwargs = parse_cost_section(cost, lambda key: _locate(files, COST_SECTION, key))
    runtimes: dict[str, int] = {}
    if config.has_section(RUNTIME_SECTION):
        for family, raw in config.items(RUNTIME_SECTION, raw=True):
            try:
                runtimes[family] = parse_duration(raw.strip(), what=f"[{RUNTIME_SECTION}] {family}")
            except ValueError as exc:
                raise ConfigurationError(str(exc)) from None
    # configparser lower-cases keys; task families are matched case-insensitively through this map.
    kwargs["expected_runtime"] = runtimes
    config_rows = []
    if config.has_section(PRICES_SECTION):
        items = dict(config.items(PRICES_SECTION, raw=True))
        aws_region = kwargs.get("aws_region")
        config_rows = rows_from_config(
            items, region=region or "*", aws_region=aws_region if isinstance(aws_region, str) else None
        )
    kwargs["prices"] = effective_catalog(config_rows=config_rows, prices_file=prices_file)
    return CostOptions(region=region, **kwargs)  # type: ignore[arg-type]


def expected_runtime_for(options: CostOptions, family: str) -> int | None:
    """``[gokart_k8s.expected_runtime]`` of a step family (keys are case-insensitive in luigi.cfg)."""
    return options.expected_runtime.get(family) or options.expected_runtime.get(family.lower())
