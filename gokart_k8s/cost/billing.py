"""After a run: what each attempt and each node cost, from what really ran.

An *attempt* is one pod of one step, as the run record keeps it (:mod:`gokart_k8s.history`):
a mapping with the keys ``pod``, ``node``, ``pool``, ``machine_type``, ``capacity_type``
(``"spot"``, ``"on-demand"`` or ``None``), ``cpu``, ``memory``, ``gpu`` (the requests, as
Kubernetes quantities or numbers), ``submitted``, ``started``, ``ended`` (epoch seconds),
``outcome``, ``reason`` and ``exit_code`` -- or an object with those attributes, such as the run
record's ``Attempt``. Extra keys are ignored; a missing or ``None`` value makes what depends on it
unknown, never zero. Optional: ``accelerator`` (GPU type), ``compute_class`` (Autopilot) and
``checkpoint_seconds`` (work the attempt's last checkpoint saved, counted from its start).

How an attempt is billed depends on the platform's billing model:

``gke-autopilot``
    per second of the pod's **requests**, from start to end (Autopilot bills pod requests, with
    CPU rounded up to 0.25 vCPU steps; https://cloud.google.com/kubernetes-engine/pricing), at the
    compute class's rate (general-purpose unless the attempt says ``compute_class``).
``gke-standard``, ``eks-karpenter``, ``plain``
    the platform bills **nodes**. An attempt is charged its share of its node's price: the largest
    of its cpu, memory and GPU requests over the node's usable capacity (capped at the whole node),
    for the time it ran. Nodes are billed from creation to deletion whoever runs on them; the
    node's true cost is :func:`price_nodes`, from node lifetimes, which also shows the idle time.

Eviction's price: an attempt that ended ``evicted`` (or ``preempted``) is counted again as
*redone* -- the work it did is done once more by the next attempt, minus what its last checkpoint
saved (``checkpoint_seconds`` in the attempt when known; else all of it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import GIB, Capacity, Machine
from gokart_k8s.cost.prices import PriceCatalog
from gokart_k8s.errors import QuantityError
from gokart_k8s.resources import parse_quantity

#: Outcomes that mean the step's work was lost and runs again.
EVICTED_OUTCOMES = ("evicted", "preempted")
#: Autopilot rounds CPU requests up to steps of a quarter vCPU.
AUTOPILOT_CPU_STEP = Decimal("0.25")
_HOUR = Decimal(3600)


@dataclass(frozen=True)
class AttemptCost:
    """What one attempt cost; ``cost`` None when unknown, with ``missing`` saying why."""

    pod: str | None
    seconds: Decimal | None
    cost: Decimal | None
    spot: bool | None
    redone_seconds: Decimal = Decimal(0)
    redone_cost: Decimal | None = Decimal(0)
    missing: str = ""


@dataclass(frozen=True)
class AttemptsCost:
    """The sum over attempts: known costs added, unknown ones counted and explained."""

    attempts: tuple[AttemptCost, ...]
    total: Decimal
    spot: Decimal
    on_demand: Decimal
    redone_seconds: Decimal
    redone_cost: Decimal
    unknown: int
    missing: tuple[str, ...] = field(default=())

    def describe(self) -> str:
        """``0.4213 USD (Spot 0.1200, on-demand 0.3013), redone work 95 s = 0.0100 USD``, with unknowns said."""
        text = f"{self.total:.4f} USD (Spot {self.spot:.4f}, on-demand {self.on_demand:.4f})"
        if self.redone_seconds:
            text += f", redone work {self.redone_seconds:.0f} s = {self.redone_cost:.4f} USD"
        if self.unknown:
            shown = "; ".join(self.missing[:3]) + ("; ..." if len(self.missing) > 3 else "")
            text += f"; {self.unknown} attempt(s) not priced: {shown}"
        return text


def as_mapping(item: Any) -> Mapping[str, Any]:
    """An attempt or node lifetime as a mapping: a mapping as it is, a dataclass (such as the run
    record's ``Attempt`` and ``NodeLife``) or any object by its attributes."""
    if isinstance(item, Mapping):
        return item
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: getattr(item, f.name) for f in dataclasses.fields(item)}
    return dict(vars(item))


def _seconds(attempt: Mapping[str, Any]) -> Decimal | None:
    started, ended = attempt.get("started"), attempt.get("ended")
    if started is None or ended is None:
        return None
    return max(Decimal(0), Decimal(str(ended)) - Decimal(str(started)))


def _amount(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_quantity(value if isinstance(value, str) else str(value))
    except QuantityError:
        return None


def _spot(attempt: Mapping[str, Any]) -> bool | None:
    capacity = attempt.get("capacity_type")
    return None if capacity is None else capacity == "spot"


def _machine(catalog: Sequence[Machine], cloud: str, machine_type: str | None, gpus: int = 0) -> Machine | None:
    """The catalog's machine of this type: with GPUs attached when the pod or node has GPUs, else
    the bare one; a type the catalog lists only with GPUs (``n1-standard-8`` + T4) is that one."""
    if not machine_type:
        return None
    same = [m for m in catalog if m.cloud == cloud and m.machine_type == machine_type]
    if not same:
        return None
    return max(same, key=lambda m: m.gpus) if gpus else min(same, key=lambda m: m.gpus)


def hourly_rate(
    attempt: Mapping[str, Any] | Any,
    *,
    platform: str,
    region: str,
    prices: PriceCatalog,
    machines: Sequence[Machine],
    options: CostOptions | None = None,
) -> tuple[Decimal | None, str]:
    """The USD per hour an attempt is charged, or ``(None, why)``."""
    attempt = as_mapping(attempt)
    spot = _spot(attempt)
    if spot is None:
        return None, f"pod {attempt.get('pod')}: capacity type unknown"
    cpu, memory, gpu = _amount(attempt.get("cpu")), _amount(attempt.get("memory")), _amount(attempt.get("gpu") or 0)
    if cpu is None or memory is None or gpu is None:
        return None, f"pod {attempt.get('pod')}: requests unknown"
    if platform == "gke-autopilot":
        if gpu:
            quote = prices.quote("gcp", region, "autopilot-gpu", str(attempt.get("accelerator") or ""), spot=spot)
            return quote.value, quote.missing
        klass = str(attempt.get("compute_class") or "general-purpose")
        cpu_rate = prices.quote("gcp", region, "autopilot-cpu", klass, spot=spot)
        mem_rate = prices.quote("gcp", region, "autopilot-memory", klass, spot=spot)
        if cpu_rate.value is None or mem_rate.value is None:
            return None, cpu_rate.missing or mem_rate.missing
        billed_cpu = (cpu / AUTOPILOT_CPU_STEP).to_integral_value(ROUND_CEILING) * AUTOPILOT_CPU_STEP
        return billed_cpu * cpu_rate.value + memory / GIB * mem_rate.value, ""
    cloud = "aws" if platform == "eks-karpenter" else "gcp"
    machine = _machine(machines, cloud, attempt.get("machine_type"), int(gpu))
    if machine is None:
        if not attempt.get("machine_type"):
            pool = attempt.get("pool")
            where = f" (pool {pool!r} is not one `gokart-k8s pools` generated)" if pool else ""
            return None, f"pod {attempt.get('pod')}: machine type unknown{where}"
        return (
            None,
            f"pod {attempt.get('pod')}: machine type {attempt.get('machine_type')!r} not in the machine catalog",
        )
    node = prices.machine_hour(
        cloud, region, machine.machine_type, gpus=machine.gpus, accelerator=machine.accelerator, spot=spot
    )
    if node.value is None:
        return None, node.missing
    opts = options or CostOptions(region=region, prices=prices)
    usable = machine.usable(opts.daemonset_cpu, opts.daemonset_memory)
    return node.value * node_share(cpu, memory, int(gpu), usable), ""


def node_share(cpu: Decimal, memory: Decimal, gpus: int, usable: Capacity) -> Decimal:
    """The largest share of a node's usable cpu, memory or GPUs the requests take, at most 1."""
    shares = [
        cpu / usable.cpu if usable.cpu > 0 else Decimal(1),
        memory / usable.memory if usable.memory > 0 else Decimal(1),
    ]
    if usable.gpus:
        shares.append(Decimal(gpus) / usable.gpus)
    return min(Decimal(1), max(shares))


def price_attempt(
    attempt: Mapping[str, Any] | Any,
    *,
    platform: str,
    region: str,
    prices: PriceCatalog,
    machines: Sequence[Machine],
    options: CostOptions | None = None,
) -> AttemptCost:
    """The cost of one attempt (see the module docstring); unknown parts are ``None``, never 0."""
    attempt = as_mapping(attempt)
    if attempt.get("started") is None and attempt.get("ended") is not None:
        # Ended before its container started (deleted while pending: its Job was replaced): it
        # held no node and ran nothing, so it cost nothing, whatever else is unknown of it.
        return AttemptCost(pod=attempt.get("pod"), seconds=Decimal(0), cost=Decimal(0), spot=_spot(attempt))
    seconds = _seconds(attempt)
    rate, missing = hourly_rate(
        attempt, platform=platform, region=region, prices=prices, machines=machines, options=options
    )
    if seconds is None:
        missing = missing or f"pod {attempt.get('pod')}: start or end time unknown"
    cost = None if rate is None or seconds is None else rate * seconds / _HOUR
    redone = Decimal(0)
    if attempt.get("outcome") in EVICTED_OUTCOMES and seconds is not None:
        saved = attempt.get("checkpoint_seconds")
        redone = max(Decimal(0), seconds - Decimal(str(saved))) if saved is not None else seconds
    redone_cost = None if rate is None else rate * redone / _HOUR
    return AttemptCost(
        pod=attempt.get("pod"),
        seconds=seconds,
        cost=cost,
        spot=_spot(attempt),
        redone_seconds=redone,
        redone_cost=redone_cost,
        missing=missing if cost is None else "",
    )


def price_attempts(
    attempts: Iterable[Mapping[str, Any] | Any],
    *,
    platform: str,
    region: str,
    prices: PriceCatalog,
    machines: Sequence[Machine],
    options: CostOptions | None = None,
) -> AttemptsCost:
    """Every attempt priced and summed, Spot and on-demand apart, with the cost of redone work."""
    priced = tuple(
        price_attempt(a, platform=platform, region=region, prices=prices, machines=machines, options=options)
        for a in attempts
    )
    known = [p for p in priced if p.cost is not None]
    return AttemptsCost(
        attempts=priced,
        total=sum((p.cost for p in known if p.cost is not None), Decimal(0)),
        spot=sum((p.cost for p in known if p.spot and p.cost is not None), Decimal(0)),
        on_demand=sum((p.cost for p in known if not p.spot and p.cost is not None), Decimal(0)),
        redone_seconds=sum((p.redone_seconds for p in priced), Decimal(0)),
        redone_cost=sum((p.redone_cost for p in priced if p.redone_cost is not None), Decimal(0)),
        unknown=len(priced) - len(known),
        missing=tuple(dict.fromkeys(p.missing for p in priced if p.missing)),
    )


@dataclass(frozen=True)
class PoolNodeCost:
    """Node-hours and cost of one pool's nodes (cost None when a price is unknown)."""

    pool: str
    machine_type: str
    capacity_type: str | None
    nodes: int
    node_hours: Decimal
    cost: Decimal | None
    missing: str = ""


def price_nodes(
    lifetimes: Iterable[Mapping[str, Any] | Any],
    *,
    cloud: str,
    region: str,
    prices: PriceCatalog,
    machines: Sequence[Machine] = (),
    now: float | None = None,
) -> list[PoolNodeCost]:
    """Node-hours and cost by pool from node lifetimes.

    Each lifetime is a mapping with ``pool``, ``machine_type``, ``capacity_type`` (``"spot"`` or
    ``"on-demand"``), ``start`` and ``end`` (epoch seconds; ``end`` None for a node still up,
    counted to ``now``); a lifetime that says its ``hours`` (the local cluster's ledger does, in
    cluster time) is billed for those. GPUs of a machine listed with attached GPUs are priced with it.
    A node bills from creation to deletion, busy or idle: this is what the cloud charges.
    """
    groups: dict[tuple[str, str, str | None], list[Decimal]] = {}
    for item in lifetimes:
        life = as_mapping(item)
        key = (str(life.get("pool") or ""), str(life.get("machine_type") or ""), life.get("capacity_type"))
        if life.get("hours") is not None:
            # A rehearsal's ledger says the hours in cluster time (its clock runs time_scale faster).
            groups.setdefault(key, []).append(Decimal(str(life["hours"])))
            continue
        start, end = life.get("start"), life.get("end", now)
        if end is None:
            end = now
        if start is None or end is None:
            continue
        groups.setdefault(key, []).append(max(Decimal(0), Decimal(str(end)) - Decimal(str(start))) / _HOUR)
    out = []
    for (pool, machine_type, capacity), hours in sorted(groups.items(), key=lambda kv: kv[0][0]):
        node_hours = sum(hours, Decimal(0))
        machine = _machine(machines, cloud, machine_type, 1)
        if capacity is None:
            cost, missing = None, f"pool {pool}: capacity type unknown"
        else:
            quote = prices.machine_hour(
                cloud,
                region,
                machine_type,
                gpus=machine.gpus if machine else 0,
                accelerator=machine.accelerator if machine else None,
                spot=capacity == "spot",
            )
            cost = None if quote.value is None else quote.value * node_hours
            missing = quote.missing
        out.append(
            PoolNodeCost(
                pool=pool,
                machine_type=machine_type,
                capacity_type=capacity,
                nodes=len(hours),
                node_hours=node_hours,
                cost=cost,
                missing="" if cost is not None else missing,
            )
        )
    return out


def _region_for(platform: str, options: CostOptions) -> str:
    return options.ec2_region() if platform == "eks-karpenter" else options.gcp_region()


def attempt_pricer(platform: str, options: CostOptions, machines: Sequence[Machine]) -> Callable[[Any], float | None]:
    """``attempt -> USD or None``: the pricing hook the run record takes (``gokart_k8s.history.price``)."""
    region = _region_for(platform, options)

    def pricer(attempt: Any) -> float | None:
        cost = price_attempt(
            attempt, platform=platform, region=region, prices=options.prices, machines=machines, options=options
        ).cost
        return None if cost is None else float(cost)

    return pricer


def run_cost_line(attempts: Iterable[Any], *, platform: str, options: CostOptions, machines: Sequence[Machine]) -> str:
    """The end-of-run summary's cost line: ``cost: 0.4213 USD (Spot ..., on-demand ...), redone work ...``.

    Says why instead when nothing can be priced (a plain cluster, no region set).
    """
    if platform == "plain":
        return "cost: not estimated on a plain cluster (its nodes and prices are not known)"
    if not options.region:
        return "cost: not estimated; set [gokart_k8s] region to price the run"
    total = price_attempts(
        attempts,
        platform=platform,
        region=_region_for(platform, options),
        prices=options.prices,
        machines=machines,
        options=options,
    )
    if not total.attempts:
        return "cost: 0 USD (no step ran)"
    return f"cost: {total.describe()}"


def node_cost_line(
    lifetimes: Iterable[Mapping[str, Any] | Any],
    *,
    platform: str,
    options: CostOptions,
    machines: Sequence[Machine],
    label: str = "node cost",
) -> str:
    """``node cost: 1.2345 USD at list prices (pool a 0.1000, pool b 1.2345)`` from node lifetimes,
    naming the pools whose machine has no price. Autopilot bills pods, not nodes; a plain cluster's
    prices are not known: both are said instead. ``label`` names the priced line (a rehearsal's says
    its hours are the autoscaler's compressed clock)."""
    if platform == "gke-autopilot":
        return "node cost: none on Autopilot, which bills the pods' requests (see the cost line)"
    if platform == "plain":
        return "node cost: not estimated on a plain cluster (its nodes and prices are not known)"
    if not options.region:
        return "node cost: not estimated; set [gokart_k8s] region to price the nodes"
    cloud = "aws" if platform == "eks-karpenter" else "gcp"
    costs = price_nodes(
        lifetimes, cloud=cloud, region=_region_for(platform, options), prices=options.prices, machines=machines
    )
    known = [c for c in costs if c.cost is not None]
    total = sum((c.cost for c in known if c.cost is not None), Decimal(0))
    text = f"{label}: {total:.4f} USD at list prices"
    if known:
        text += " (" + ", ".join(f"{c.pool} {c.cost:.4f}" for c in known) + ")"
    unknown = [c for c in costs if c.cost is None]
    if unknown:
        text += "; not priced: " + "; ".join(
            f"{c.pool} ({c.node_hours:.2f} node-hours, machine {c.machine_type!r} has no price in the catalog)"
            for c in unknown
        )
    return text


@dataclass(frozen=True)
class CatalogNodePrices:
    """Node prices for the rehearsal's autoscaler from the price catalog (its ``Prices`` protocol,
    :mod:`gokart_k8s.localcluster.autoscaler.config`): the price expander and Karpenter's cheapest
    instance type then choose as the real ones do, by the region's list prices.

    A node whose machine type the catalog does not price (a synthetic Karpenter shape, a declared
    pool that names no machine type) is priced by ``fallback`` (per vCPU- and GiB-hour), so the
    autoscaler always has a price to compare; the run's cost lines still say what they could not
    price.
    """

    platform: str
    options: CostOptions
    machines: Sequence[Machine]
    fallback: Any

    def hourly(self, cpu: Decimal, memory_bytes: Decimal, gpu: int, spot: bool, machine_type: str) -> float:
        cloud = "aws" if self.platform == "eks-karpenter" else "gcp"
        machine = _machine(self.machines, cloud, machine_type, gpu)
        if machine is not None:
            quote = self.options.prices.machine_hour(
                cloud,
                _region_for(self.platform, self.options),
                machine.machine_type,
                gpus=machine.gpus,
                accelerator=machine.accelerator,
                spot=spot,
            )
            if quote.value is not None:
                return float(quote.value)
        return float(self.fallback.hourly(cpu, memory_bytes, gpu, spot, machine_type))
