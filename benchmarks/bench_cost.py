"""What one ML team's pipeline costs: the setup teams start from vs this project on three platforms.

Run:  PYTHONPATH=. python benchmarks/bench_cost.py [--region asia-northeast1] [--preemptions-per-hour 0.5]

The workload, shaped like the seed team's batches (durations are this file's assumptions):

* 40 **small short** steps: 0.5 cpu, 1Gi, 5 minutes each, tolerant, no checkpoints;
* 6 **big short** steps: 6 cpu, 24Gi, 20 minutes each, tolerant, a checkpoint every 10 minutes;
* 1 **small long** step that must not be lost: 1 cpu, 4Gi, 6 hours, protected;
* 1 **GPU** step: 3 cpu, 12Gi, 1 NVIDIA L4, 45 minutes, tolerant, a checkpoint every 10 minutes.

Steps are submitted in the order long, GPU, big, small, at most 16 at once (``max_concurrent_steps``).

Scenarios, priced with the shipped catalog (gokart_k8s/cost/data) through gokart_k8s.cost:

1. **the setup teams start from**: every step protected (``safe-to-evict: "false"``) on one shared
   pool of big on-demand nodes (n2-standard-32); the GPU step, which needs a GPU node, on an
   on-demand g2-standard-12. A node that runs a protected pod cannot be scaled down.
2. **gke-standard** with the pools ``gokart-k8s pools`` generates for these steps: Spot for the
   tolerant steps, the long step alone on a small on-demand pool.
3. **gke-autopilot**: each pod billed on its requests (CPU rounded up to 0.25). Autopilot's rates
   were only found for asia-southeast1 (secondary source); they stand in for other regions, and
   Autopilot GPU pod prices were not found at all, so the GPU step is left out of (3) and said so.
4. **eks-karpenter**: the NodePools ``gokart-k8s pools --platform eks-karpenter`` generates,
   in the nearest AWS region.

Node-billed scenarios (1, 2, 4) are simulated: first-fit packing onto the pool's nodes, a new node
when none has room (billed from creation, ready after ``PROVISION_SECONDS``), and a node removed
once empty for the autoscaler's unneeded time (cluster autoscaler: 10 minutes; Karpenter's
``consolidateAfter`` of the generated NodePools: 1 minute). Tolerant Spot steps run longer by the
expected redone work: ``preemptions/hour x run time x min(checkpoint interval, run time)``; the
preemption rate is an assumption of this file (``--preemptions-per-hour``), not a sourced figure.
The GKE cluster fee (0.10 USD/hour) is the same for (1)-(3) and left out.

Goal: (2) costs at most 45% of (1).
"""

from __future__ import annotations

import argparse
import functools
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gokart_k8s.cost import CostOptions, load_machines, price_attempts, price_nodes
from gokart_k8s.cost.machines import Machine
from gokart_k8s.cost.prices import effective_catalog
from gokart_k8s.cost.sizing import Need, Pool, size_pools
from gokart_k8s.resources import ResourceClass

CONCURRENCY = 16
PROVISION_SECONDS = 120
CA_UNNEEDED_SECONDS = 600
KARPENTER_CONSOLIDATE_SECONDS = 60
CHECKPOINT_SECONDS = 600

SMALL = ResourceClass(cpu="500m", memory="1Gi", name="small")
BIG = ResourceClass(cpu="6", memory="24Gi", name="big")
LONG = ResourceClass(cpu="1", memory="4Gi", name="long")
GPU = ResourceClass(cpu="3", memory="12Gi", gpu=1, accelerator="nvidia-l4", name="gpu-l4-small")


@dataclass(frozen=True)
class Step:
    name: str
    rc: ResourceClass
    seconds: int
    protected: bool
    checkpoints: bool


def workload() -> list[Step]:
    steps = [Step("long", LONG, 6 * 3600, True, False), Step("gpu", GPU, 45 * 60, False, True)]
    steps += [Step(f"big-{i}", BIG, 20 * 60, False, True) for i in range(6)]
    steps += [Step(f"small-{i}", SMALL, 5 * 60, False, False) for i in range(40)]
    return steps


def effective_seconds(step: Step, spot: bool, rate: Decimal) -> Decimal:
    """Run time plus the expected work redone after Spot preemptions."""
    seconds = Decimal(step.seconds)
    if not spot:
        return seconds
    lost = min(Decimal(CHECKPOINT_SECONDS), seconds) if step.checkpoints else seconds
    return seconds + rate * seconds / 3600 * lost


@dataclass
class Node:
    pool: Pool
    created: Decimal
    ready: Decimal
    pods: list[tuple[Decimal, Decimal, ResourceClass]] = field(default_factory=list)  # (start, end, class)

    def last_end(self) -> Decimal:
        return max((end for _s, end, _rc in self.pods), default=self.ready)

    def fits(self, rc: ResourceClass, at: Decimal) -> bool:
        running = [r for start, end, r in self.pods if end > at]
        cpu = sum((r.cpu_cores for r in running), Decimal(0)) + rc.cpu_cores
        memory = sum((r.memory_bytes for r in running), Decimal(0)) + rc.memory_bytes
        gpus = sum(r.gpu for r in running) + rc.gpu
        return cpu <= self.pool.usable.cpu and memory <= self.pool.usable.memory and gpus <= self.pool.usable.gpus


def simulate(
    steps: Sequence[Step], placement: dict[str, tuple[Pool, bool]], *, unneeded: int, rate: Decimal
) -> list[dict[str, Any]]:
    """Node lifetimes of a node-billed run (see the module docstring); ``placement[step] = (pool, spot)``."""
    slots = [Decimal(0)] * CONCURRENCY
    nodes: list[Node] = []
    gone: list[Node] = []
    for step in steps:
        at = heapq.heappop(slots)
        pool, spot = placement[step.name]
        for node in [n for n in nodes if n.pool is pool]:
            if at > node.last_end() + unneeded and all(end <= at for _s, end, _r in node.pods):
                nodes.remove(node)  # scaled down while empty
                gone.append(node)
        node = next((n for n in nodes if n.pool is pool and n.fits(step.rc, max(at, n.ready))), None)
        if node is None:
            node = Node(pool, created=at, ready=at + PROVISION_SECONDS)
            nodes.append(node)
        start = max(at, node.ready)
        end = start + effective_seconds(step, spot, rate)
        node.pods.append((start, end, step.rc))
        heapq.heappush(slots, end)
    return [
        {
            "pool": n.pool.name,
            "machine_type": n.pool.machine.machine_type,
            "capacity_type": "spot" if n.pool.spot else "on-demand",
            "start": n.created,
            "end": n.last_end() + unneeded,
        }
        for n in [*gone, *nodes]
    ]


@dataclass(frozen=True)
class Result:
    name: str
    region: str
    node_hours: Decimal | None
    cost: Decimal
    note: str = ""


def node_billed(
    name: str,
    steps: Sequence[Step],
    placement: dict[str, tuple[Pool, bool]],
    *,
    cloud: str,
    region: str,
    options: CostOptions,
    machines: Sequence[Machine],
    unneeded: int,
    rate: Decimal,
) -> Result:
    lifetimes = simulate(steps, placement, unneeded=unneeded, rate=rate)
    costs = price_nodes(lifetimes, cloud=cloud, region=region, prices=options.prices, machines=machines)
    missing = [c.missing for c in costs if c.cost is None]
    if missing:
        raise SystemExit(f"{name}: a price is missing: {missing}")
    total = sum((c.cost for c in costs if c.cost is not None), Decimal(0))
    return Result(name, region, sum((c.node_hours for c in costs), Decimal(0)), total)


def generated_placement(
    steps: Sequence[Step], options: CostOptions, machines: Sequence[Machine], *, cloud: str, region: str
) -> dict[str, tuple[Pool, bool]]:
    """Each step on the pool gokart-k8s generates for its class and tolerance."""
    needs = {(s.rc.name, not s.protected): Need(s.rc, not s.protected) for s in steps}
    sizing = size_pools(list(needs.values()), machines, options, cloud=cloud, region=region)
    if sizing.unplaceable:
        raise SystemExit(f"{cloud}: {sizing.unplaceable}")
    out = {}
    for s in steps:
        pool = sizing.pool_for(s.rc, spot=not s.protected)
        assert pool is not None
        out[s.name] = (pool, pool.spot)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="asia-northeast1")
    parser.add_argument("--preemptions-per-hour", type=Decimal, default=Decimal("0.5"))
    args = parser.parse_args(argv)
    rate: Decimal = args.preemptions_per_hour
    machines = load_machines()
    options = CostOptions(region=args.region, prices=effective_catalog())
    steps = workload()
    results: list[Result] = []

    # (1) every step protected; CPU steps share big on-demand n2-standard-32 nodes, the GPU step a g2-standard-12.
    by_type = {m.machine_type: m for m in machines if m.cloud == "gcp"}

    def fixed_pool(machine: Machine, name: str) -> Pool:
        quote = options.prices.machine_hour(
            "gcp", args.region, machine.machine_type, gpus=machine.gpus, accelerator=machine.accelerator, spot=False
        )
        return Pool(name, machine, False, (), machine.usable(), quote, 100)

    big_pool = fixed_pool(by_type["n2-standard-32"], "shared-big")
    gpu_pool = fixed_pool(by_type["g2-standard-12"], "shared-gpu")
    placement = {s.name: (gpu_pool if s.rc.gpu else big_pool, False) for s in steps}
    # Protected pods block scale-down: a node lives until its last pod ends (plus the unneeded time).
    on_gke = functools.partial(
        node_billed,
        steps=steps,
        cloud="gcp",
        region=args.region,
        options=options,
        machines=machines,
        unneeded=CA_UNNEEDED_SECONDS,
        rate=rate,
    )
    results.append(on_gke("(1) all protected, shared big on-demand pool", placement=placement))

    # (2) gke-standard, generated pools, Spot for tolerant steps.
    placement = generated_placement(steps, options, machines, cloud="gcp", region=args.region)
    results.append(on_gke("(2) gke-standard, generated pools + Spot", placement=placement))

    # (3) gke-autopilot: requests x rates; asia-southeast1's rates stand in where the region has none.
    autopilot_region = args.region
    if options.prices.quote("gcp", args.region, "autopilot-cpu", "general-purpose", spot=False).value is None:
        autopilot_region = "asia-southeast1"
    attempts = [
        {
            "pod": s.name,
            "capacity_type": "on-demand" if s.protected else "spot",
            "cpu": s.rc.cpu,
            "memory": s.rc.memory,
            "gpu": s.rc.gpu,
            "accelerator": s.rc.accelerator,
            "started": 0,
            "ended": effective_seconds(s, not s.protected, rate),
        }
        for s in steps
    ]
    priced = price_attempts(
        attempts, platform="gke-autopilot", region=autopilot_region, prices=options.prices, machines=machines
    )
    note = ""
    if autopilot_region != args.region:
        note += f"rates of {autopilot_region} (none found for {args.region}); "
    if priced.unknown:
        note += f"{priced.unknown} step(s) not priced (Autopilot GPU pod price not found)"
    results.append(Result("(3) gke-autopilot, Spot Pods", autopilot_region, None, priced.total, note.rstrip("; ")))

    # (4) eks-karpenter, generated NodePools.
    aws_region = options.ec2_region()
    placement = generated_placement(steps, options, machines, cloud="aws", region=aws_region)
    results.append(
        node_billed(
            "(4) eks-karpenter, generated NodePools + Spot",
            steps,
            placement,
            cloud="aws",
            region=aws_region,
            options=options,
            machines=machines,
            unneeded=KARPENTER_CONSOLIDATE_SECONDS,
            rate=rate,
        )
    )

    print(
        "workload: 40 small x 5m (tolerant), 6 big 6cpu/24Gi x 20m (tolerant, checkpoint 10m), "
        "1 small x 6h (protected), 1 L4 GPU x 45m (tolerant, checkpoint 10m)"
    )
    print(f"Spot preemptions assumed: {rate}/hour per running step; at most {CONCURRENCY} steps at once")
    base = results[0].cost
    header = f"{'scenario':48s} {'region':16s} {'node-hours':>10s} {'cost USD':>9s} {'vs (1)':>7s}"
    print(header)
    for r in results:
        hours = "-" if r.node_hours is None else f"{r.node_hours:.2f}"
        prefix = ">= " if "not priced" in r.note else ""
        print(f"{r.name:48s} {r.region:16s} {hours:>10s} {r.cost:9.3f} {prefix + f'{r.cost / base * 100:.0f}%':>7s}")
        if r.note:
            print(f"    {r.note}")
    ratio = results[1].cost / base
    print(f"goal (2) <= 45% of (1): {ratio * 100:.0f}% -> {'met' if ratio <= Decimal('0.45') else 'NOT met'}")


if __name__ == "__main__":
    main()
