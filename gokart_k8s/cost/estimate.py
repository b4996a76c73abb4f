"""Before a run: what each step of a plan is expected to cost (``gokart-k8s plan --cost``).

``cost = price per hour x expected run time``, where the price per hour follows the platform's
billing model:

``gke-autopilot``
    the pod's requests at Autopilot's rates (Spot rates for Spot Pods); CPU rounded up to 0.25.
``gke-standard``
    nodes: the step runs on the pool :mod:`~gokart_k8s.cost.sizing` generates for its class and
    capacity type. It is charged its share of a node (its largest share of the node's usable cpu,
    memory or GPUs) when other steps of the plan use the same pool, and **the whole node** when it
    is the only one: then nothing else pays for the node it keeps alive.
``eks-karpenter``
    the same, with EC2 instance types and prices (Karpenter launches the cheapest type that fits).
``plain``
    unknown: the nodes of a plain cluster are not known.

The expected run time of a step comes from, first to last: the step's past runs (a callable the
caller passes, e.g. from run records: what it really took beats a guess),
``@gokart_k8s.job(expected_runtime=...)``, ``[gokart_k8s.expected_runtime] <TaskFamily>`` in
luigi.cfg, else it is unknown and shown as unknown.

A Spot step also redoes work when it is preempted: ``preemptions x work lost per preemption``,
with ``preemptions = spot_preemptions_per_hour x run time`` and the work lost at most one
``checkpoint_interval`` (the whole run time for a step that saves no checkpoints). Both are
settings of ``[gokart_k8s.cost]``; without a preemption rate the redone work is unknown.
Cached steps cost nothing: they do not run.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gokart_k8s.cost.billing import hourly_rate
from gokart_k8s.cost.config import CostOptions, expected_runtime_for
from gokart_k8s.cost.machines import Machine, load_machines
from gokart_k8s.cost.sizing import Sizing, needs_for_steps, size_pools
from gokart_k8s.declaration import declaration_of
from gokart_k8s.eviction import Eviction
from gokart_k8s.platforms.gke_autopilot import compute_class
from gokart_k8s.steps import StepSpec

#: The platforms ``--compare-platforms`` prices side by side.
COMPARED = ("gke-standard", "gke-autopilot", "eks-karpenter")
_HOUR = Decimal(3600)

#: ``(step spec) -> seconds`` from past runs, or None when the step never ran.
History = Callable[[StepSpec], float | None]


@dataclass(frozen=True)
class StepEstimate:
    """One step's expected cost on one platform; None fields are unknown (``note`` says why)."""

    family: str
    cached: bool
    spot: bool
    where: str
    runtime_seconds: int | None
    runtime_source: str
    hourly: Decimal | None
    cost: Decimal | None
    redone_seconds: Decimal | None
    redone_cost: Decimal | None
    note: str = ""


@dataclass(frozen=True)
class PlanEstimate:
    platform: str
    region: str
    steps: tuple[StepEstimate, ...]
    #: The platform's cluster management fee per cluster-hour, when the catalog knows it.
    cluster_fee: Decimal | None = None

    @property
    def total(self) -> Decimal:
        return sum((s.cost + (s.redone_cost or 0) for s in self.steps if s.cost is not None), Decimal(0))

    @property
    def spot_total(self) -> Decimal:
        return sum((s.cost + (s.redone_cost or 0) for s in self.steps if s.cost is not None and s.spot), Decimal(0))

    @property
    def unknown(self) -> list[StepEstimate]:
        return [s for s in self.steps if not s.cached and s.cost is None]

    def as_dict(self) -> dict[str, Any]:
        """For ``plan --cost --output json``: amounts as numbers (USD, per hour for ``hourly``), None unknown."""

        def number(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        return {
            "platform": self.platform,
            "region": self.region,
            "total_usd": float(self.total),
            "spot_usd": float(self.spot_total),
            "unknown_steps": len(self.unknown),
            "cluster_fee_per_hour": number(self.cluster_fee),
            "steps": [
                {
                    "family": s.family,
                    "cached": s.cached,
                    "spot": s.spot,
                    "where": s.where,
                    "runtime_seconds": s.runtime_seconds,
                    "runtime_source": s.runtime_source,
                    "hourly_usd": number(s.hourly),
                    "cost_usd": number(s.cost),
                    "redone_seconds": number(s.redone_seconds),
                    "redone_cost_usd": number(s.redone_cost),
                    "note": s.note,
                }
                for s in self.steps
            ],
        }

    def total_text(self) -> str:
        """``1.2345 USD`` or ``at least 1.2345 USD (2 steps unknown)``."""
        text = f"{self.total:.4f} USD"
        return text if not self.unknown else f"at least {text} ({len(self.unknown)} step(s) unknown)"


def expected_runtime(
    spec: StepSpec, task: Any, options: CostOptions, history: History | None = None
) -> tuple[int | None, str]:
    """``(seconds, where it came from)`` by the order in the module docstring."""
    if history is not None:
        past = history(spec)
        if past is not None:
            return int(past), "past runs"
    declared = declaration_of(task).expected_runtime_seconds if task is not None else None
    if declared:
        return declared, "declared"
    configured = expected_runtime_for(options, spec.family)
    if configured:
        return configured, "luigi.cfg"
    return None, "unknown"


def history_from_records(records: Iterable[Any]) -> History:
    """A :data:`History` from run records (objects with ``steps``, each with ``unique_id``,
    ``family`` and ``attempts`` that have ``outcome``, ``started`` and ``ended``).

    A step's past run time is the median run time of its succeeded attempts: of the same step
    (unique id) when it ran before, else of the same task family (other parameters).
    """
    by_id: dict[str, list[float]] = {}
    by_family: dict[str, list[float]] = {}
    for record in records:
        for step in getattr(record, "steps", ()):
            for attempt in getattr(step, "attempts", ()):
                started, ended = getattr(attempt, "started", None), getattr(attempt, "ended", None)
                if getattr(attempt, "outcome", None) != "succeeded" or started is None or ended is None:
                    continue
                by_id.setdefault(str(step.unique_id), []).append(float(ended) - float(started))
                by_family.setdefault(str(step.family), []).append(float(ended) - float(started))

    def past(spec: StepSpec) -> float | None:
        runs = by_id.get(spec.unique_id) or by_family.get(spec.family)
        return statistics.median(runs) if runs else None

    return past


def _attempt(spec: StepSpec, *, spot: bool, machine_type: str | None) -> dict[str, Any]:
    """A would-be attempt of the step, as :func:`~gokart_k8s.cost.billing.hourly_rate` reads one
    (with the Autopilot compute class placement gives it, which decides its rates)."""
    rc = spec.resource_class
    klass = compute_class(rc)
    return {
        "compute_class": klass.lower() if klass else "general-purpose",
        "pod": spec.family,
        "machine_type": machine_type,
        "capacity_type": "spot" if spot else "on-demand",
        "cpu": rc.cpu,
        "memory": rc.memory,
        "gpu": rc.gpu,
        "accelerator": rc.accelerator,
    }


def estimate(
    rows: Sequence[tuple[StepSpec, Any, bool]],
    *,
    platform: str,
    options: CostOptions,
    history: History | None = None,
    machines: Sequence[Machine] | None = None,
) -> PlanEstimate:
    """Estimate every step of a plan on ``platform``.

    ``rows`` are ``(spec, task, cached)`` per step (the task for its declared expected run time).
    """
    machines = tuple(machines if machines is not None else load_machines())
    node_billed = platform in ("gke-standard", "eks-karpenter")
    cloud = "aws" if platform == "eks-karpenter" else "gcp"
    region = options.ec2_region() if cloud == "aws" else options.gcp_region()
    sizing: Sizing | None = None
    running = [spec for spec, _task, cached in rows if not cached]
    if node_billed:
        sizing = size_pools(needs_for_steps(running, fallback=False), machines, options, cloud=cloud, region=region)
    users: Counter[str] = Counter()
    if sizing is not None:
        for spec in running:
            pool = sizing.pool_for(spec.resource_class, spot=_spot(spec))
            if pool is not None:
                users[pool.name] += 1
    out = []
    for spec, task, cached in rows:
        spot = _spot(spec)
        seconds, source = expected_runtime(spec, task, options, history)
        if cached:
            out.append(StepEstimate(spec.family, True, spot, "cached", seconds, source, None, Decimal(0), None, None))
            continue
        hourly: Decimal | None = None
        note = ""
        where = "Spot" if spot else "on-demand"
        if platform == "plain":
            note = "a plain cluster's nodes and prices are not known"
        elif sizing is not None:
            pool = sizing.pool_for(spec.resource_class, spot=spot)
            if pool is None:
                note = next((u for u in sizing.unplaceable if repr(spec.resource_class.name) in u), "no pool holds it")
            elif pool.price.value is None:
                where = f"{pool.name} ({pool.machine.name})"
                note = pool.price.missing
            else:
                alone = users[pool.name] <= 1
                where = f"{pool.name} ({pool.machine.name})" + (", alone on its node" if alone else "")
                if alone:
                    hourly = pool.price.value
                else:
                    rate, note = hourly_rate(
                        _attempt(spec, spot=spot, machine_type=pool.machine.machine_type),
                        platform=platform,
                        region=region,
                        prices=options.prices,
                        machines=[pool.machine],
                        options=options,
                    )
                    hourly = rate
        else:
            rate, note = hourly_rate(
                _attempt(spec, spot=spot, machine_type=None),
                platform=platform,
                region=region,
                prices=options.prices,
                machines=machines,
                options=options,
            )
            hourly = rate
            where = f"Autopilot {'Spot' if spot else 'on-demand'} Pod"
        cost = None if hourly is None or seconds is None else hourly * seconds / _HOUR
        if seconds is None and not note:
            note = (
                f"run time unknown: set @gokart_k8s.job(expected_runtime=...) or [gokart_k8s.expected_runtime] "
                f"{spec.family} = <duration>"
            )
        redone_seconds, redone_cost = _redone(spot, seconds, hourly, options)
        out.append(
            StepEstimate(
                spec.family, False, spot, where, seconds, source, hourly, cost, redone_seconds, redone_cost, note
            )
        )
    fee_item = {"gke-standard": "gke-standard", "gke-autopilot": "gke-autopilot", "eks-karpenter": "eks"}.get(platform)
    fee = options.prices.quote(cloud, region, "cluster-fee", fee_item, spot=False).value if fee_item else None
    return PlanEstimate(platform=platform, region=region, steps=tuple(out), cluster_fee=fee)


def _spot(spec: StepSpec) -> bool:
    return spec.eviction is Eviction.TOLERATE and spec.resource_class.spot


def _redone(
    spot: bool, seconds: int | None, hourly: Decimal | None, options: CostOptions
) -> tuple[Decimal | None, Decimal | None]:
    """Expected seconds of work redone after preemptions, and their cost (see the module docstring)."""
    if not spot:
        return Decimal(0), Decimal(0)
    if seconds is None or options.spot_preemptions_per_hour is None:
        return None, None
    preemptions = options.spot_preemptions_per_hour * seconds / _HOUR
    lost = Decimal(min(seconds, options.checkpoint_interval_seconds or seconds))
    redone = preemptions * lost
    return redone, None if hourly is None else hourly * redone / _HOUR


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds}s"


def table(est: PlanEstimate) -> str:
    """The per-step cost table of ``plan --cost``."""
    header = ("STEP", "CAPACITY / NODE", "RUN TIME", "USD/HOUR", "COST", "REDONE (SPOT)")
    body = []
    for s in est.steps:
        if s.cached:
            body.append((s.family, "cached", "-", "-", "0", "-"))
            continue
        redone = "-" if not s.spot else ("unknown" if s.redone_cost is None else f"{s.redone_cost:.4f}")
        body.append(
            (
                s.family,
                s.where,
                f"{_duration(s.runtime_seconds)} ({s.runtime_source})",
                "unknown" if s.hourly is None else f"{s.hourly:.4f}",
                "unknown" if s.cost is None else f"{s.cost:.4f}",
                redone,
            )
        )
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]
    lines.append(f"estimated total on {est.platform} ({est.region}): {est.total_text()}")
    if est.cluster_fee is not None:
        lines.append(f"  plus the cluster fee, {est.cluster_fee} USD per cluster-hour, whatever runs on it")
    for s in est.steps:
        if s.note and not s.cached:
            lines.append(f"  {s.family}: {s.note}")
    if any(s.spot and s.redone_cost is None and s.runtime_seconds is not None for s in est.steps):
        lines.append(
            "  redone work of Spot steps is unknown: set [gokart_k8s.cost] spot_preemptions_per_hour "
            "(and checkpoint_interval for steps that save checkpoints)"
        )
    return "\n".join(lines)


def compare(
    rows: Sequence[tuple[StepSpec, Any, bool]],
    *,
    options: CostOptions,
    check: Callable[[str, StepSpec], list[str]] | None = None,
    history: History | None = None,
) -> list[tuple[PlanEstimate, list[str]]]:
    """The plan estimated on every platform of :data:`COMPARED`, with the problems each platform
    has with the steps (``check(platform, spec)``; a step a platform refuses is still priced)."""
    out = []
    for platform in COMPARED:
        est = estimate(rows, platform=platform, options=options, history=history)
        problems = [p for spec, _t, cached in rows if not cached for p in (check(platform, spec) if check else [])]
        out.append((est, problems))
    return out


def _share(part: Decimal, total: Decimal) -> str:
    return f"{part / total * 100:.1f}%" if total else "-"


def compare_table(results: Sequence[tuple[PlanEstimate, list[str]]]) -> str:
    """Platforms side by side: total, Spot and on-demand shares, unknown steps, problems."""
    header = ("PLATFORM", "REGION", "TOTAL (USD)", "SPOT", "ON-DEMAND", "UNKNOWN STEPS", "PROBLEMS")
    body = []
    for est, problems in results:
        total = est.total
        spot = est.spot_total
        body.append(
            (
                est.platform,
                est.region,
                f"{total:.4f}" if not est.unknown else f">= {total:.4f}",
                _share(spot, total),
                _share(total - spot, total),
                str(len(est.unknown)),
                str(len(problems)),
            )
        )
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *body]]
    for est, problems in results:
        for s in est.unknown:
            lines.append(f"  {est.platform}: {s.family}: {s.note or 'unknown'}")
        for p in problems:
            lines.append(f"  {est.platform}: {p}")
    return "\n".join(lines)


__all__ = ["COMPARED", "PlanEstimate", "StepEstimate", "compare", "compare_table", "estimate", "table"]
