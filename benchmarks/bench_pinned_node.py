"""Benchmark: the seed's pinned node, measured on the embedded cluster with its autoscaler.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_pinned_node.py [--time-scale 300] [--seed 5]

One pipeline (``benchmarks/pinned_pipeline.py``): a big short step (14 cpu, 48 GiB, 1 h), a small
long step that must not be lost (1 cpu, 3 GiB, 8 h, protected) and four small tolerant steps
(2 cpu, 6 GiB, 40 min), all independent, so they are pending together as in the seed. Tolerant
steps save a checkpoint every 10 minutes of work. Three setups, each on a fresh autoscaling local
cluster (``time_scale`` cluster seconds per wall second):

(a) the setup teams start from: one pool of big on-demand nodes (e2-standard-16), the cluster
    autoscaler, every pod ``safe-to-evict: "false"`` -- the small long step lands next to the big
    one and keeps its node alive for 8 hours;
(b) this project on gke-standard: e2-standard-4 and e2-standard-16 pools, Spot and on-demand; the
    small long step on a small on-demand pool, tolerant steps on Spot with checkpoints; chaos on
    (random evictions and Spot preemptions; a preemption also stocks the Spot pool out for 30 min,
    so the driver's Spot-unavailable fallback can show);
(c) eks-karpenter: Karpenter picks the cheapest instance type per pod set and consolidates;
    chaos on as in (b).

After the steps end, each cluster runs until its autoscaler has removed every node (the scale-down
delays are part of what a real cluster bills). Printed: node-hours by machine shape and capacity
type, cost, evictions (by chaos and by the autoscaler), cluster seconds of work redone (units
started more than once), wall time, and the cost ratio to (a).

Prices: asia-northeast1 list prices from the research notes (cost-pools-reports.md B.1):
e2-standard-4 0.17193 / Spot 0.06878, e2-standard-16 0.68772 / Spot 0.27512 USD per hour; the
shapes Karpenter launches are priced at the same E2 per-vCPU and per-GiB rates (B.3), so the three
setups differ only in placement and autoscaling, not in price list. Goal: (b) at most 45 % of (a).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import luigi

from benchmarks import pinned_pipeline as pipeline
from gokart_k8s.cluster.kubernetes import connect
from gokart_k8s.driver import RunReport, run_steps
from gokart_k8s.localcluster import ChaosConfig, LocalCluster
from gokart_k8s.localcluster.autoscaler import Autoscaling, LinearPrices, node_costs, node_hours
from gokart_k8s.placement import SAFE_TO_EVICT, Placement
from gokart_k8s.platforms import get_profile
from gokart_k8s.platforms.gke_standard import default_pools as gke_pools
from gokart_k8s.platforms.plain import PlainProfile
from gokart_k8s.pools import NodePool
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec, collect
from gokart_k8s.workspace import WORKSPACE_ENV

REPO = Path(__file__).resolve().parents[1]
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
#: (on-demand, Spot) USD per hour, asia-northeast1 (research notes B.1).
TABLE = {"e2-standard-4": (0.17193, 0.06878), "e2-standard-16": (0.68772, 0.27512)}
#: E2 asia-northeast1 per-unit rates (B.3), for shapes the table does not name.
E2 = LinearPrices(cpu_hour=0.028025, gib_hour=0.003739, spot_share=0.4)


@dataclasses.dataclass(frozen=True)
class TablePrices:
    """Known machine types from the table, anything else at E2 rates."""

    def hourly(self, cpu: Decimal, memory_bytes: Decimal, gpu: int, spot: bool, machine_type: str) -> float:
        if machine_type in TABLE:
            return TABLE[machine_type][1 if spot else 0]
        return E2.hourly(cpu, memory_bytes, gpu, spot, machine_type)


class EverythingProtected:
    """Setup (a): one pool for everything, every pod ``safe-to-evict: "false"``."""

    name = "plain"

    def __init__(self, settings: Settings) -> None:
        self._inner = PlainProfile(settings)

    def pools(self) -> tuple[NodePool, ...]:
        return self._inner.pools()

    def check(self, spec: StepSpec) -> list[str]:
        return self._inner.check(spec)

    def place(self, spec: StepSpec, *, on_demand: bool = False) -> Placement:
        placed = self._inner.place(spec, on_demand=on_demand)
        return dataclasses.replace(placed, annotations={**placed.annotations, SAFE_TO_EVICT: "false"})


def machine(pool: NodePool, machine_type: str, **changes: Any) -> NodePool:
    return dataclasses.replace(pool, labels={**pool.labels, INSTANCE_TYPE: machine_type}, max_nodes=5, **changes)


def scenarios(time_scale: float) -> list[tuple[str, Settings, bool]]:
    fallback = 600.0 / time_scale  # the driver's timer runs in wall seconds
    common: dict[str, Any] = {
        "watch_timeout_seconds": 60,
        "request_timeout_seconds": 30,
        "backoff_limit": 2,
        "termination_budget_seconds": 3.0,
        "spot_unavailable_fallback_seconds": fallback,
    }
    big = machine(NodePool("big-ondemand", cpu="15890m", memory="57Gi"), "e2-standard-16")
    gke = [
        machine(p, "e2-standard-4" if p.name.endswith("small") else "e2-standard-16")
        for p in gke_pools()
        if p.name.endswith(("-small", "-large"))
    ]
    karpenter = [
        NodePool("general-spot", cpu="16", memory="64Gi", spot=True, max_nodes=8),
        NodePool("general-on-demand", cpu="16", memory="64Gi", max_nodes=8),
    ]
    return [
        ("(a) one big pool, all protected", Settings(platform="plain", pools=(big,), **common), False),
        ("(b) gke-standard, this project", Settings(platform="gke-standard", pools=tuple(gke), **common), True),
        ("(c) eks-karpenter, this project", Settings(platform="eks-karpenter", pools=tuple(karpenter), **common), True),
    ]


def run_one(
    name: str, settings: Settings, chaos_on: bool, *, time_scale: float, seed: int, rate: float, workdir: Path
) -> dict[str, Any]:
    workspace = f"{workdir}/{name[:3].strip('()')}/"
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", workspace)
    # luigi caches task instances by parameters: new ones, so they read this workspace.
    luigi.task_register.Register.clear_instance_cache()
    profile: Any = EverythingProtected(settings) if name.startswith("(a)") else get_profile(settings)
    steps, problems = collect(pipeline.roots(), settings)
    assert not problems, problems
    chaos = ChaosConfig(seed=seed, rate=rate, stockout_seconds=1800) if chaos_on else None
    autoscaling = Autoscaling.for_platform(settings.platform, time_scale=time_scale, prices=TablePrices())
    env = {"PYTHONPATH": str(REPO), "BENCH_TIME_SCALE": str(time_scale)}
    with LocalCluster(profile.pools(), pod_env=env, chaos=chaos, autoscaling=autoscaling, workdir=workdir) as cluster:
        api = connect(kubeconfig=str(cluster.write_kubeconfig(workdir / f"kubeconfig-{name[1]}")), request_timeout=30)
        began = time.monotonic()
        report: RunReport = run_steps(
            steps,
            settings,
            api,
            run_id=f"bench-{name[1]}",
            image="bench/pinned:local",
            env={WORKSPACE_ENV: workspace},
            profile=profile,
            on_interrupt="delete",
        )
        wall = time.monotonic() - began
        # A real cluster keeps billing until its autoscaler has removed the nodes.
        deadline = time.monotonic() + 120
        while cluster.node_names() and time.monotonic() < deadline:
            time.sleep(0.2)
        tail = time.monotonic() - began - wall
        log = cluster.chaos_log
    lives = cluster.node_lifetimes()
    redone_units = 0
    finished_twice = 0
    over_budget = 0
    for step, task in zip(report.steps, [s.task for s in steps], strict=True):
        lines = pipeline.ledger_path(task).read_text().splitlines()
        extra = sum(1 for line in lines if line.startswith("start")) - pipeline.units_needed(task)
        redone_units += extra
        finished_twice += max(0, lines.count("done") - 1)
        over_budget += max(0, extra - step.evictions)
    return {
        "name": name,
        "ok": report.ok,
        "failures": [str(s.error) for s in report.failures()],
        "hours": node_hours(lives, ("machine_type", "capacity_type")),
        "cost": sum(node_costs(lives, TablePrices()).values()),
        "evictions": sum(s.evictions for s in report.steps),
        "by_source": {src: sum(1 for e in log if e.source == src) for src in sorted({e.source for e in log})},
        "fallbacks": sum(1 for s in report.steps if s.fallback),
        "redone": redone_units * pipeline.UNIT_SECONDS,
        "finished_twice": finished_twice,
        "over_budget": over_budget,
        "wall": wall,
        "tail": tail,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time-scale", type=float, default=pipeline.TIME_SCALE)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--chaos-rate", type=float, default=3.0, help="disruptions per wall minute of a running pod")
    args = parser.parse_args()
    os.environ["BENCH_TIME_SCALE"] = str(args.time_scale)
    pipeline.TIME_SCALE = args.time_scale
    logging.getLogger("luigi-interface").setLevel(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings, chaos_on in scenarios(args.time_scale):
            results.append(
                run_one(
                    name,
                    settings,
                    chaos_on,
                    time_scale=args.time_scale,
                    seed=args.seed,
                    rate=args.chaos_rate,
                    workdir=Path(tmp),
                )
            )
    base = results[0]["cost"]
    print(
        f"time scale {args.time_scale:g} cluster s per wall s; chaos seed {args.seed}, "
        f"{args.chaos_rate:g} per pod-minute in (b) and (c); hours and seconds below are cluster time"
    )
    print(
        f"{'setup':34} {'cost USD':>9} {'ratio':>6} {'evictions':>9} {'redone s':>9} {'wall s':>7}  node-hours by shape"
    )
    for r in results:
        shapes = ", ".join(f"{m} {c} {h:.2f}" for (m, c), h in sorted(r["hours"].items()))
        print(
            f"{r['name']:34} {r['cost']:9.3f} {r['cost'] / base:6.0%} {r['evictions']:9d} {r['redone']:9.0f} "
            f"{r['wall']:7.1f}  {shapes}"
        )
    for r in results:
        print(
            f"{r['name'][:3]} ok={r['ok']} disruptions by source {r['by_source']}, "
            f"on-demand fallbacks {r['fallbacks']}, "
            f"finished steps redone {r['finished_twice']}, evictions that cost more than one checkpoint interval "
            f"{r['over_budget']}, wall after the run until the last node went {r['tail']:.1f} s"
            + (f"; failures: {r['failures']}" if r["failures"] else "")
        )


if __name__ == "__main__":
    main()
