"""Pool sizing: which node pools the resource classes need, and which of them can be shared.

Input: *needs* -- a resource class together with the capacity type its steps run on (a tolerant
step of a Spot-allowed class on Spot; a protected step, a ``spot = false`` class, and the driver's
on-demand fallback for tolerant steps on on-demand). Output: node pools, each one machine type
and one capacity type, and the trade-off of sharing them.

1. **One pool per need**: the cheapest machine type whose *usable* capacity
   (:meth:`~gokart_k8s.cost.machines.Machine.usable`) holds the class -- cheapest by the price of
   that capacity type in the region, so a Spot pool may be another family than its on-demand twin
   (N2 Spot is a deeper discount than E2 Spot). A GPU class needs a machine with at least as many
   GPUs of its accelerator; a CPU class never gets a GPU machine. Machines without a price for the
   capacity type are skipped (and said so).
2. **Merging**: fewer pools is the point, so classes of the same capacity type and the same
   accelerator (or none) are merged greedily onto the cheapest machine that holds all of them,
   the pair that strands least first, while the merge strands less than ``max_stranded_share``.

*Stranding*, as used here, is the seed's problem measured in money: a step that runs alone keeps a
whole node alive, so moving a class from its own machine (price ``p_own``) to a shared, bigger one
(price ``p_shared``) makes a lone step of it pay ``p_shared`` for what ``p_own`` bought. The
share of the shared node it strands is ``1 - p_own / p_shared``; a merge strands the maximum of
that over its classes. Merging classes that already choose the same machine strands nothing.
:func:`tradeoff` lists every merge step (pools left, stranded share) including the refused ones,
because the right point is the team's call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from gokart_k8s.conventions import dns_label
from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import Capacity, Machine
from gokart_k8s.cost.prices import PriceCatalog, Quote
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import ResourceClass
from gokart_k8s.steps import StepSpec


@dataclass(frozen=True)
class Need:
    """A resource class and the capacity type its steps need."""

    rc: ResourceClass
    spot: bool

    @property
    def group(self) -> tuple[bool, str | None]:
        """Needs of one group may share a pool: same capacity type and accelerator."""
        return (self.spot, self.rc.accelerator if self.rc.gpu else None)


@dataclass(frozen=True)
class Pool:
    """One generated node pool."""

    name: str
    machine: Machine
    spot: bool
    classes: tuple[str, ...]
    usable: Capacity
    #: Price of one node-hour (GPUs included); ``value`` None when unknown.
    price: Quote
    max_nodes: int

    def slots(self, rc: ResourceClass) -> int:
        """How many steps of ``rc`` one node holds at once."""
        return slots(rc, self.usable)


@dataclass(frozen=True)
class MergeStep:
    """One step of the greedy merge: the pools left after it and what it strands."""

    pools: int
    merged: tuple[str, ...]
    machine: str
    spot: bool
    stranded: Decimal
    accepted: bool


@dataclass(frozen=True)
class Sizing:
    """Generated pools, the merge trade-off, the needs no machine holds, and the pools whose price is unknown."""

    pools: tuple[Pool, ...]
    steps: tuple[MergeStep, ...]
    #: Needs no machine of the catalog holds: no pool generated.
    unplaceable: tuple[str, ...]
    #: Pools generated on the smallest machine that holds their class, because none has a price.
    unpriced: tuple[str, ...]
    #: Machines passed over for want of a price for the capacity type.
    skipped_unpriced: tuple[str, ...]

    def pool_for(self, rc: ResourceClass, *, spot: bool) -> Pool | None:
        return next((p for p in self.pools if p.spot == spot and rc.name in p.classes), None)


def fits(rc: ResourceClass, machine: Machine, usable: Capacity) -> bool:
    """Whether one node of ``machine`` (usable capacity ``usable``) holds one step of ``rc``."""
    if rc.gpu:
        if machine.accelerator != rc.accelerator or machine.gpus < rc.gpu:
            return False
    elif machine.gpus:
        return False
    return rc.cpu_cores <= usable.cpu and rc.memory_bytes <= usable.memory


def slots(rc: ResourceClass, usable: Capacity) -> int:
    """Steps of ``rc`` one node holds at once (0 when it does not fit)."""
    counts = [int(usable.cpu // rc.cpu_cores), int(usable.memory // rc.memory_bytes)]
    if rc.gpu:
        counts.append(usable.gpus // rc.gpu)
    return max(0, min(counts))


def needs_for_steps(specs: Iterable[StepSpec], *, fallback: bool) -> list[Need]:
    """The needs of a pipeline's steps (:class:`~gokart_k8s.steps.StepSpec`), each once.

    ``fallback``: tolerant Spot steps also need on-demand capacity, because the driver moves a
    step evicted ``fallback_after_evictions`` times to on-demand capacity.
    """
    out: dict[tuple[str, bool], Need] = {}
    for spec in specs:
        rc = spec.resource_class
        spot = spec.eviction is Eviction.TOLERATE and rc.spot
        out.setdefault((rc.name, spot), Need(rc, spot))
        if spot and fallback:
            out.setdefault((rc.name, False), Need(rc, False))
    return sorted(out.values(), key=_need_order)


def needs_for_catalog(classes: Iterable[ResourceClass]) -> list[Need]:
    """Every class on on-demand capacity, and Spot-allowed classes on Spot too."""
    out = [Need(rc, False) for rc in classes] + [Need(rc, True) for rc in classes if rc.spot]
    return sorted(out, key=_need_order)


def _need_order(need: Need) -> tuple[bool, int, Decimal, Decimal, str]:
    return (need.spot, need.rc.gpu, need.rc.cpu_cores, need.rc.memory_bytes, need.rc.name)


class _Pricer:
    def __init__(
        self, machines: Sequence[Machine], prices: PriceCatalog, cloud: str, region: str, options: CostOptions
    ):
        self.machines = [m for m in machines if m.cloud == cloud]
        self.prices = prices
        self.cloud = cloud
        self.region = region
        self.options = options
        self.unpriced: set[str] = set()

    def usable(self, machine: Machine) -> Capacity:
        return machine.usable(self.options.daemonset_cpu, self.options.daemonset_memory)

    def quote(self, machine: Machine, *, spot: bool) -> Quote:
        return self.prices.machine_hour(
            self.cloud, self.region, machine.machine_type, gpus=machine.gpus, accelerator=machine.accelerator, spot=spot
        )

    def cheapest(self, classes: Sequence[ResourceClass], *, spot: bool) -> tuple[Machine, Quote] | None:
        """The cheapest priced machine holding every class; ties go to the smaller machine."""
        best: tuple[Decimal, int, str, Machine, Quote] | None = None
        for m in self.machines:
            usable = self.usable(m)
            if not all(fits(rc, m, usable) for rc in classes):
                continue
            quote = self.quote(m, spot=spot)
            if quote.value is None:
                self.unpriced.add(f"{m.name} ({'spot' if spot else 'on-demand'})")
                continue
            key = (quote.value, m.vcpu, m.machine_type, m, quote)
            if best is None or key[:3] < best[:3]:
                best = key
        return None if best is None else (best[3], best[4])


def stranded_share(own: Decimal, shared: Decimal) -> Decimal:
    """The share of a shared node's price a lone step strands: ``1 - own / shared`` (0 when not dearer)."""
    if shared <= 0 or own >= shared:
        return Decimal(0)
    return 1 - own / shared


def size_pools(
    needs: Sequence[Need],
    machines: Sequence[Machine],
    options: CostOptions,
    *,
    cloud: str = "gcp",
    region: str | None = None,
    merge: bool = True,
) -> Sizing:
    """Generate pools for ``needs`` (see the module docstring)."""
    region = region or (options.gcp_region() if cloud == "gcp" else options.ec2_region())
    pricer = _Pricer(machines, options.prices, cloud, region, options)
    unplaceable: list[str] = []
    unpriced: list[str] = []
    # group -> list of (classes, machine, quote)
    own: dict[tuple[bool, str], Decimal] = {}
    groups: dict[tuple[bool, str | None], list[tuple[tuple[ResourceClass, ...], Machine, Quote]]] = {}
    for need in needs:
        found = pricer.cheapest([need.rc], spot=need.spot)
        capacity = "spot" if need.spot else "on-demand"
        if found is None:
            holding = sorted(
                (m for m in pricer.machines if fits(need.rc, m, pricer.usable(m))), key=lambda m: (m.vcpu, m.memory_gib)
            )
            if not holding:
                unplaceable.append(
                    f"resource class {need.rc.name!r} ({need.rc.describe()}, {capacity}): no {cloud} machine of the "
                    "machine catalog holds it; use a smaller class, or provision that capacity by hand"
                )
                continue
            # No price to choose by: the smallest machine that holds it, its price unknown (and said so).
            machine = holding[0]
            quote = pricer.quote(machine, spot=need.spot)
            unpriced.append(
                f"pool for {need.rc.name!r} ({capacity}) on {machine.name}: no {capacity} price in {region} for "
                f"{', '.join(m.name for m in holding)}; supply one in [gokart_k8s.prices] or with --prices FILE"
            )
            groups.setdefault(need.group, []).append(((need.rc,), machine, quote))
            continue
        machine, quote = found
        assert quote.value is not None
        own[(need.spot, need.rc.name)] = quote.value
        groups.setdefault(need.group, []).append(((need.rc,), machine, quote))
    steps: list[MergeStep] = []
    total = sum(len(v) for v in groups.values())
    refused: set[tuple[bool, str | None]] = set()
    while merge:
        best: tuple[Decimal, tuple[bool, str | None], int, int, Machine, Quote] | None = None
        for key, members in groups.items():
            if key in refused:
                continue
            for i in range(len(members)):
                for j in range(i + 1, len(members)):
                    classes = members[i][0] + members[j][0]
                    if any((key[0], rc.name) not in own for rc in classes):
                        continue  # a pool without a price is never merged: nothing to weigh it by
                    found = pricer.cheapest(classes, spot=key[0])
                    if found is None:
                        continue
                    machine, quote = found
                    assert quote.value is not None
                    share = max(stranded_share(own[(key[0], rc.name)], quote.value) for rc in classes)
                    if best is None or share < best[0]:
                        best = (share, key, i, j, machine, quote)
        if best is None:
            break
        share, key, i, j, machine, quote = best
        members = groups[key]
        classes = members[i][0] + members[j][0]
        accepted = share <= options.max_stranded_share
        steps.append(
            MergeStep(
                pools=total - 1,
                merged=tuple(rc.name for rc in classes),
                machine=machine.name,
                spot=key[0],
                stranded=share,
                accepted=accepted,
            )
        )
        if not accepted:
            # The cheapest merge of this group is refused: every other one strands more.
            refused.add(key)
            continue
        total -= 1
        groups[key] = [m for n, m in enumerate(members) if n not in (i, j)] + [(classes, machine, quote)]
    pools: list[Pool] = []
    for (spot, _acc), members in groups.items():
        for classes, machine, quote in members:
            ordered = tuple(rc.name for rc in sorted(classes, key=lambda rc: (rc.gpu, rc.cpu_cores, rc.memory_bytes)))
            pools.append(
                Pool(
                    name=pool_name(machine, spot=spot),
                    machine=machine,
                    spot=spot,
                    classes=ordered,
                    usable=pricer.usable(machine),
                    price=quote,
                    max_nodes=options.max_nodes,
                )
            )
    pools.sort(key=lambda p: (p.spot, p.machine.gpus, p.machine.vcpu, p.machine.memory_gib, p.name))
    return Sizing(
        pools=_unique_names(pools),
        steps=tuple(steps),
        unplaceable=tuple(unplaceable),
        unpriced=tuple(unpriced),
        skipped_unpriced=tuple(sorted(pricer.unpriced)),
    )


def pool_name(machine: Machine, *, spot: bool) -> str:
    """``spot-e2-standard-4``, ``ondemand-n1-standard-8-t4``: capacity type, machine type, and the
    GPU where the machine type does not already say it (GPU families g2, g5, g6 do)."""
    name = f"{'spot' if spot else 'ondemand'}-{machine.machine_type}"
    if machine.gpus and not machine.machine_type.startswith("g"):
        name += f"-{_short(machine.accelerator)}"
    return dns_label(name)


def _short(accelerator: str | None) -> str:
    name = (accelerator or "").lower()
    for prefix in ("nvidia-tesla-", "nvidia-"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _unique_names(pools: list[Pool]) -> tuple[Pool, ...]:
    seen: dict[str, int] = {}
    out = []
    for pool in pools:
        count = seen.get(pool.name, 0)
        seen[pool.name] = count + 1
        out.append(pool if count == 0 else dataclasses.replace(pool, name=f"{pool.name}-{count + 1}"))
    return tuple(out)


def tradeoff(sizing: Sizing, options: CostOptions) -> str:
    """The merge steps as a table: pools left, what was merged, the shared machine, stranded share."""
    lines = [
        f"merging classes onto shared pools while a lone step strands at most {options.max_stranded_share * 100:.0f}% "
        "of the price of the shared node ([gokart_k8s.cost] max_stranded_share):"
    ]
    if not sizing.steps:
        lines.append("  nothing to merge: every pool holds classes no other pool could share")
    for step in sizing.steps:
        verdict = "merged" if step.accepted else "not merged"
        lines.append(
            f"  {verdict:10s} {'spot' if step.spot else 'on-demand':9s} {'+'.join(step.merged):30s} onto "
            f"{step.machine:32s} stranded {step.stranded * 100:5.1f}%"
            + (f"  -> {step.pools} pools" if step.accepted else "")
        )
    lines.append(f"result: {len(sizing.pools)} pools")
    return "\n".join(lines)
