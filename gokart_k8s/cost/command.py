"""The cost commands: ``gokart-k8s pools``, ``gokart-k8s prices``, and ``plan --cost``.

::

    gokart-k8s pools  [TASK [luigi params]] [--platform P] [--format gcloud|terraform|karpenter|luigi-cfg] [-o DIR]
    gokart-k8s prices [--region R] [--prices FILE]
    gokart-k8s plan   TASK --cost [--compare-platforms] [--region R] [--prices FILE]

Registered in :mod:`gokart_k8s.cli` by :func:`register` (the two subcommands) and
:func:`add_plan_arguments` / :func:`plan_report` (the ``plan`` flags).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gokart_k8s.cost import generate
from gokart_k8s.cost.config import CostOptions, load_cost_options
from gokart_k8s.cost.estimate import (
    History,
    PlanEstimate,
    compare,
    compare_table,
    estimate,
    history_from_records,
    table,
)
from gokart_k8s.cost.machines import load_machines
from gokart_k8s.cost.prices import AWS_REGION_FOR
from gokart_k8s.cost.prices import table as price_table
from gokart_k8s.cost.sizing import Need, Sizing, needs_for_catalog, needs_for_steps, size_pools, tradeoff
from gokart_k8s.errors import ConfigurationError, GokartK8sError
from gokart_k8s.plan import Plan
from gokart_k8s.settings import PLATFORMS, Settings
from gokart_k8s.steps import StepSpec

#: What each platform provisions, for ``--format`` and the files ``-o DIR`` writes.
PLATFORM_FORMATS = {
    "gke-standard": ("gcloud", "terraform", "luigi-cfg"),
    "eks-karpenter": ("karpenter", "luigi-cfg"),
    "gke-autopilot": (),
    "plain": (),
}
FILE_NAMES = {
    "gcloud": "node-pools.sh",
    "terraform": "node-pools.tf",
    "karpenter": "karpenter.yaml",
    "luigi-cfg": "pools.cfg",
}


def _cost_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="price region (overrides [gokart_k8s] region), e.g. asia-northeast1")
    parser.add_argument(
        "--prices", metavar="FILE", help="a price CSV whose rows replace the catalog's (see docs/cost.md)"
    )


def register(subparsers: Any) -> None:
    """Add ``pools`` and ``prices`` to the ``gokart-k8s`` command line."""
    pools = subparsers.add_parser(
        "pools",
        allow_abbrev=False,
        help="generate the node pools the resource classes need (gcloud, Terraform, Karpenter, luigi.cfg)",
        usage="gokart-k8s pools [TASK [luigi params]] [--platform P] [--format F] [-o DIR] [--region R] [--prices F]",
        description="Node pools for the resource classes of TASK's steps (or of the whole catalog without TASK): "
        "the cheapest machine whose usable capacity holds each class, Spot for tolerant steps, merged while "
        "a lone step strands little. Writes what the platform provisions and the matching [gokart_k8s.pools.*].",
    )
    pools.add_argument("--platform", help="platform profile (overrides [gokart_k8s] platform)")
    pools.add_argument("--format", choices=generate.FORMATS, help="print only this format")
    pools.add_argument("-o", "--output-dir", type=Path, help="write every format of the platform into DIR")
    pools.add_argument("--workspace", help="the cache location, as for plan")
    pools.add_argument("--debug", action="store_true", help="show tracebacks")
    _cost_arguments(pools)
    pools.set_defaults(handler=cmd_pools)

    prices = subparsers.add_parser("prices", allow_abbrev=False, help="print the effective price table with sources")
    prices.add_argument("--debug", action="store_true", help="show tracebacks")
    _cost_arguments(prices)
    prices.set_defaults(handler=cmd_prices)


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """``plan --cost [--compare-platforms] [--region R] [--prices FILE]``."""
    parser.add_argument("--cost", action="store_true", help="estimate each step's cost on the platform")
    parser.add_argument(
        "--compare-platforms", action="store_true", help="with --cost: gke-standard, gke-autopilot, eks-karpenter"
    )
    _cost_arguments(parser)


def _options(args: argparse.Namespace, settings: Settings | None) -> CostOptions:
    region = getattr(args, "region", None) or (settings.region if settings else None)
    return load_cost_options(region=region, prices_file=getattr(args, "prices", None))


def _settings(args: argparse.Namespace) -> Settings:
    from gokart_k8s.settings import load_settings

    settings = load_settings()
    platform = getattr(args, "platform", None)
    if platform:
        if platform not in PLATFORMS:
            raise GokartK8sError(f"--platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
        settings = dataclasses.replace(settings, platform=platform)
    return settings


def cmd_prices(args: argparse.Namespace, rest: Sequence[str]) -> int:
    if rest:
        raise GokartK8sError(f"gokart-k8s prices takes no task; unrecognized arguments: {' '.join(rest)}")
    settings = _settings(args)
    options = _options(args, settings)
    regions = None
    if options.region:
        regions = [options.region, options.aws_region or AWS_REGION_FOR.get(options.region, "")]
    print(price_table(options.prices, regions=regions))
    if regions is None:
        print("(all regions: set [gokart_k8s] region or pass --region to see one)")
    return 0


def sizing_for(
    settings: Settings, options: CostOptions, specs: Sequence[StepSpec] | None, *, cloud: str
) -> tuple[Sizing, list[Need]]:
    """Pools for the steps ``specs`` (a pipeline) or, when None, for the whole catalog."""
    if specs is None:
        needs = needs_for_catalog(settings.catalog.values())
    else:
        needs = needs_for_steps(specs, fallback=settings.fallback_after_evictions > 0)
    region = options.ec2_region() if cloud == "aws" else options.gcp_region()
    return size_pools(needs, load_machines(), options, cloud=cloud, region=region), needs


def _task_specs(args: argparse.Namespace, rest: Sequence[str], settings: Settings) -> list[StepSpec] | None:
    if not rest:
        return None
    from gokart_k8s.errors import PlanError
    from gokart_k8s.runner import prepare_plan
    from gokart_k8s.tasks import task_from_argv
    from gokart_k8s.workspace import set_workspace_directory

    if getattr(args, "workspace", None):
        set_workspace_directory(args.workspace.rstrip("/") + "/")
    root = task_from_argv(list(rest))
    plan = prepare_plan([root], settings, "inline", touch_cache=False)
    if plan.problems:
        raise PlanError(plan.problems)
    return [s.spec for s in plan.steps]


def cmd_pools(args: argparse.Namespace, rest: Sequence[str]) -> int:
    settings = _settings(args)
    platform = settings.platform
    formats = PLATFORM_FORMATS[platform]
    if args.format and args.format != "luigi-cfg" and args.format not in formats:
        owner = "eks-karpenter" if args.format == "karpenter" else "gke-standard"
        raise ConfigurationError(
            f"--format {args.format} generates pools for {owner}, but the platform is {platform!r}. "
            f"Pass --platform {owner}, or one of: {', '.join(formats) or 'no format (nothing to generate)'}."
        )
    specs = _task_specs(args, rest, settings)
    if platform == "plain":
        print(generate.plain(), end="")
        return 0
    if platform == "gke-autopilot":
        classes = (
            settings.catalog.values()
            if specs is None
            else {s.resource_class.name: s.resource_class for s in specs}.values()
        )
        print(generate.autopilot(list(classes)), end="")
        return 0
    options = _options(args, settings)
    cloud = "aws" if platform == "eks-karpenter" else "gcp"
    sizing, _needs = sizing_for(settings, options, specs, cloud=cloud)
    report = [tradeoff(sizing, options)]
    for problem in sizing.unplaceable:
        report.append(f"not generated: {problem}")
    for problem in sizing.unpriced:
        report.append(f"price unknown: {problem}")
    if sizing.skipped_unpriced:
        report.append(f"skipped for want of a price: {', '.join(sizing.skipped_unpriced)}")
    texts = {
        "gcloud": lambda: generate.gcloud(sizing.pools, options),
        "terraform": lambda: generate.terraform(sizing.pools, options),
        "karpenter": lambda: generate.karpenter(sizing.pools, options),
        "luigi-cfg": lambda: generate.luigi_cfg(sizing.pools, platform=platform),
    }
    wanted = [args.format] if args.format else list(formats)
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        for fmt in wanted:
            path = args.output_dir / FILE_NAMES[fmt]
            path.write_text(texts[fmt]())
            report.append(f"wrote {path}")
        print("\n".join(report))
        return 0
    print("\n".join(report), file=sys.stderr)
    print("\n".join(texts[fmt]() for fmt in wanted), end="")
    return 0


def _rows(plan: Plan) -> list[tuple[StepSpec, Any, bool]]:
    return [(r.step.spec, r.step.task, r.cached) for r in plan.rows]


def pool_drift(plan: Plan, options: CostOptions) -> list[str]:
    """Warnings where the configured ``[gokart_k8s.pools.*]`` place a step elsewhere than the
    generated pools would: different shape (cpu, memory, GPUs) or capacity type. Empty unless the
    platform is gke-standard and pools are configured."""
    from gokart_k8s.platforms.gke_standard import GkeStandardProfile

    settings = plan.settings
    if settings.platform != "gke-standard" or not settings.pools or not options.region:
        return []
    specs = [r.step.spec for r in plan.rows if not r.problems]
    sizing, _ = sizing_for(settings, options, specs, cloud="gcp")
    profile = GkeStandardProfile(settings)
    out = []
    for spec in specs:
        spot = spec.eviction.value == "tolerate" and spec.resource_class.spot
        generated = sizing.pool_for(spec.resource_class, spot=spot)
        configured = profile.choose_pool(spec)
        if generated is None or configured is None:
            continue
        shape = (
            generate.cpu_quantity(generated.usable.cpu),
            generate.memory_quantity(generated.usable.memory),
            generated.spot,
            generated.machine.gpus,
        )
        if (configured.cpu, configured.memory, configured.spot, configured.gpu) != shape:
            out.append(
                f"step {spec.family}: the configured pool {configured.name!r} ({configured.cpu} cpu, "
                f"{configured.memory}, spot={str(configured.spot).lower()}) is not the generated one, "
                f"{generated.name!r} ({shape[0]} cpu, {shape[1]}, spot={str(generated.spot).lower()}). "
                "Regenerate the pools with `gokart-k8s pools TASK --format luigi-cfg` (and the matching "
                "gcloud/Terraform), or ignore this if the cluster's pools are meant to differ."
            )
    return out


def past_runs(plan: Plan) -> History | None:
    """Run times from the run records in the plan's cache (:mod:`gokart_k8s.history`), or None
    when there are none or they cannot be read (an estimate never fails a plan)."""
    from gokart_k8s.history import list_records
    from gokart_k8s.history.store import open_store

    try:
        records = list_records(open_store(plan.workspace))
    except (GokartK8sError, OSError, ValueError):
        return None
    return history_from_records(records) if records else None


def plan_report(args: argparse.Namespace, plan: Plan) -> str:
    """What ``plan`` prints after its table: pool drift warnings always, cost with ``--cost``."""
    found = _plan_cost(args, plan)
    if found is None:
        return ""
    warnings, estimates = found
    lines = [f"warning: {w}" for w in warnings]
    if estimates and getattr(args, "compare_platforms", False):
        lines.append(compare_table(estimates))
    elif estimates:
        lines.append(table(estimates[0][0]))
    return "\n".join(lines)


def plan_cost_json(args: argparse.Namespace, plan: Plan) -> dict[str, Any] | None:
    """``plan --output json``'s ``cost`` member: the same warnings and estimates as the text, as data."""
    found = _plan_cost(args, plan)
    if found is None:
        return None
    warnings, estimates = found
    return {
        "warnings": warnings,
        "estimates": [{**est.as_dict(), "problems": problems} for est, problems in estimates],
    }


def _plan_cost(args: argparse.Namespace, plan: Plan) -> tuple[list[str], list[tuple[PlanEstimate, list[str]]]] | None:
    """Pool drift warnings and the cost estimates (one, or one per platform with
    ``--compare-platforms``), or None when nothing was asked and there is nothing to warn of."""
    settings = plan.settings
    region = getattr(args, "region", None) or settings.region
    wants_cost = bool(getattr(args, "cost", False) or getattr(args, "compare_platforms", False))
    if not wants_cost and not (settings.platform == "gke-standard" and settings.pools and region):
        return None
    options = _options(args, settings)
    warnings = list(pool_drift(plan, options))
    estimates: list[tuple[PlanEstimate, list[str]]] = []
    if getattr(args, "compare_platforms", False):
        from gokart_k8s.platforms import get_profile

        def check(platform: str, spec: StepSpec) -> list[str]:
            return list(get_profile(dataclasses.replace(settings, platform=platform)).check(spec))

        estimates = compare(_rows(plan), options=options, check=check, history=past_runs(plan))
    elif wants_cost:
        estimates = [(estimate(_rows(plan), platform=settings.platform, options=options, history=past_runs(plan)), [])]
    return warnings, estimates
