"""The cost lines of the end-of-run summary, from the attempts a run reports.

The attempts come from the run record (:mod:`gokart_k8s.history`: each step's ``requests`` and
``attempts``, each attempt with ``pod``, ``node``, ``pool``, ``machine_type``, ``capacity_type``,
``cpu``, ``memory``, ``gpu``, ``started``, ``ended``, ``outcome``...) or from a driver's report
(each step's ``spec`` and ``attempt_log``). Billing (:mod:`gokart_k8s.cost.billing`) needs the
requests and, on node-billed platforms, the machine type. An attempt that names its machine type
(the node's ``node.kubernetes.io/instance-type`` label, which the record reads) keeps it;
otherwise it is the machine of the *generated* pool the attempt ran on -- by pool name on
gke-standard (``spot-e2-standard-4``), by the instance type the generated NodePool offers for the
class and capacity type on eks-karpenter. An attempt on a hand-made pool of unknown machine type
stays unpriced, and the line says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gokart_k8s.cost.billing import as_mapping, price_attempts, run_cost_line
from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import Machine
from gokart_k8s.cost.sizing import Need, pool_name, size_pools
from gokart_k8s.errors import GokartK8sError, QuantityError
from gokart_k8s.resources import ResourceClass

#: Steps the summary line names, dearest first.
_SHOWN_STEPS = 5


def _family(step: Any) -> str:
    spec = getattr(step, "spec", None)
    return str(spec.family if spec is not None else getattr(step, "family", ""))


def _resource_class(step: Any) -> ResourceClass | None:
    """The step's class: its spec's (a driver report) or rebuilt from its recorded requests."""
    spec = getattr(step, "spec", None)
    if spec is not None:
        return spec.resource_class  # type: ignore[no-any-return]
    requests = getattr(step, "requests", None) or {}
    try:
        return ResourceClass(
            cpu=str(requests["cpu"]),
            memory=str(requests["memory"]),
            gpu=int(requests.get("gpu") or 0),
            accelerator=requests.get("accelerator"),
            name=str(getattr(step, "resource_class", None) or ""),
        )
    except (KeyError, ValueError, TypeError, QuantityError):
        return None


def _attempts(step: Any) -> list[Any]:
    return list(getattr(step, "attempt_log", None) or getattr(step, "attempts", None) or ())


def billable_attempts(
    steps: Iterable[Any], *, platform: str, options: CostOptions, machines: Sequence[Machine]
) -> list[dict[str, Any]]:
    """Every attempt of ``steps`` as billing reads one (see the module docstring)."""
    steps = list(steps)
    cloud = "aws" if platform == "eks-karpenter" else "gcp"
    by_pool = {pool_name(m, spot=spot): m.machine_type for m in machines if m.cloud == cloud for spot in (False, True)}
    by_need: dict[tuple[str, bool], str] = {}
    if platform == "eks-karpenter" and options.region:
        needs = {}
        for step in steps:
            rc = _resource_class(step)
            for item in _attempts(step):
                capacity = as_mapping(item).get("capacity_type")
                if rc is not None and capacity is not None:
                    needs[(rc.name, capacity == "spot")] = Need(rc, capacity == "spot")
        try:
            sizing = size_pools(list(needs.values()), machines, options, cloud=cloud, region=options.ec2_region())
            by_need = {(name, p.spot): p.machine.machine_type for p in sizing.pools for name in p.classes}
        except GokartK8sError:
            pass
    out = []
    for step in steps:
        rc = _resource_class(step)
        for item in _attempts(step):
            attempt = dict(as_mapping(item))
            if rc is not None:
                for key, value in (("cpu", rc.cpu), ("memory", rc.memory), ("gpu", rc.gpu)):
                    if attempt.get(key) is None:
                        attempt[key] = value
                attempt.setdefault("accelerator", rc.accelerator)
            if not attempt.get("machine_type"):
                pool = attempt.get("pool")
                spot = attempt.get("capacity_type") == "spot"
                attempt["machine_type"] = by_pool.get(str(pool)) if pool else by_need.get((rc.name if rc else "", spot))
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
            by_step.append((cost.total, _family(step)))
    by_step.sort(reverse=True)
    if len(by_step) > 1:
        shown = ", ".join(f"{family} {cost:.4f}" for cost, family in by_step[:_SHOWN_STEPS])
        line += f"; by step: {shown}" + (", ..." if len(by_step) > _SHOWN_STEPS else "")
    return line
