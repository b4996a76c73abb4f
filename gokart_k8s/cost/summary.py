"""The cost line of the end-of-run summary, from the attempts the driver reports.

The driver reports, per step, its spec and an *attempt log*: one entry per pod with ``pod``,
``node``, ``pool``, ``capacity_type``, ``submitted``, ``started``, ``ended``, ``outcome``,
``reason`` and ``exit_code``. Billing (:mod:`gokart_k8s.cost.billing`) also needs the requests
(the step's resource class) and, on node-billed platforms, the machine type, which a driver does
not see: an attempt that names one (a run record's attempt does) keeps it; otherwise it is the
machine of the *generated* pool the attempt ran on (gke-standard: by pool name; eks-karpenter: the
instance type the generated NodePool offers for the class and capacity type). An attempt on a
hand-made pool of unknown machine type stays unpriced, and the line says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gokart_k8s.cost.billing import as_mapping, price_attempts, run_cost_line
from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import Machine
from gokart_k8s.cost.sizing import needs_for_steps, size_pools
from gokart_k8s.errors import GokartK8sError

#: Steps the summary line names, dearest first.
_SHOWN_STEPS = 5


def billable_attempts(
    steps: Iterable[Any], *, platform: str, options: CostOptions, machines: Sequence[Machine]
) -> list[dict[str, Any]]:
    """Every attempt of ``steps`` (objects with ``spec`` and ``attempt_log``) as billing reads one."""
    steps = list(steps)
    specs = [s.spec for s in steps]
    pools: dict[str, str] = {}
    by_need: dict[tuple[str, bool], str] = {}
    if platform in ("gke-standard", "eks-karpenter") and options.region and specs:
        cloud = "aws" if platform == "eks-karpenter" else "gcp"
        try:
            region = options.ec2_region() if cloud == "aws" else options.gcp_region()
            sizing = size_pools(needs_for_steps(specs, fallback=True), machines, options, cloud=cloud, region=region)
        except GokartK8sError:
            sizing = None
        if sizing is not None:
            for pool in sizing.pools:
                pools[pool.name] = pool.machine.machine_type
                for name in pool.classes:
                    by_need[(name, pool.spot)] = pool.machine.machine_type
    out = []
    for step in steps:
        rc = step.spec.resource_class
        for item in getattr(step, "attempt_log", ()):
            attempt = dict(as_mapping(item))
            attempt.setdefault("cpu", rc.cpu)
            attempt.setdefault("memory", rc.memory)
            attempt.setdefault("gpu", rc.gpu)
            attempt.setdefault("accelerator", rc.accelerator)
            if not attempt.get("machine_type"):
                spot = attempt.get("capacity_type") == "spot"
                pool_name = attempt.get("pool")
                attempt["machine_type"] = pools.get(str(pool_name)) if pool_name else by_need.get((rc.name, spot))
            out.append(attempt)
    return out


def summary_line(steps: Iterable[Any], *, platform: str, options: CostOptions, machines: Sequence[Machine]) -> str:
    """``cost: ...`` for the end of a run (see :func:`~gokart_k8s.cost.billing.run_cost_line`),
    then the dearest steps: ``; by step: TrainModel 0.2612, Prep 0.0050``."""
    steps = list(steps)
    attempts = billable_attempts(steps, platform=platform, options=options, machines=machines)
    line = run_cost_line(attempts, platform=platform, options=options, machines=machines)
    if platform == "plain" or not options.region:
        return line
    region = options.ec2_region() if platform == "eks-karpenter" else options.gcp_region()
    by_step = []
    for step in steps:
        own = billable_attempts([step], platform=platform, options=options, machines=machines)
        cost = price_attempts(
            own, platform=platform, region=region, prices=options.prices, machines=machines, options=options
        )
        if own and not cost.unknown:
            by_step.append((cost.total, step.spec.family))
    by_step.sort(reverse=True)
    if len(by_step) > 1:
        shown = ", ".join(f"{family} {cost:.4f}" for cost, family in by_step[:_SHOWN_STEPS])
        line += f"; by step: {shown}" + (", ..." if len(by_step) > _SHOWN_STEPS else "")
    return line
