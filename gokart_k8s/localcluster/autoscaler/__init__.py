"""The embedded cluster's autoscaler: pools that grow for pending pods and shrink when idle.

Three autoscalers, one per kind of platform (:data:`config.PLATFORM_MODES`): the cluster autoscaler
(GKE Standard, plain clusters), Karpenter (EKS) and Autopilot's node per pod. The decisions are
pure functions (:mod:`.core`); :mod:`.loop` runs them against the store; :mod:`.ledger` records
each node's lifetime for node-hours and cost. Timers are in cluster seconds and scaled by
``Autoscaling.time_scale`` (:mod:`.config`). What is emulated is listed in docs/local-cluster.md.

Public API::

    Autoscaling(mode="cluster-autoscaler", time_scale=60.0, expander="least-waste", ...)
    LinearPrices(cpu_hour=..., gib_hour=..., spot_share=0.4, ...)
    node_hours(lifetimes, by=("pool",)) -> {key: hours}
    node_costs(lifetimes, prices) -> {pool: usd}
"""

from __future__ import annotations

from .config import DEFAULT_TIME_SCALE, MODES, PLATFORM_MODES, Autoscaling, LinearPrices, Prices
from .ledger import NodeLedger, node_costs, node_hours, summary_lines
from .loop import Autoscaler

__all__ = [
    "DEFAULT_TIME_SCALE",
    "MODES",
    "PLATFORM_MODES",
    "Autoscaler",
    "Autoscaling",
    "LinearPrices",
    "NodeLedger",
    "Prices",
    "node_costs",
    "node_hours",
    "summary_lines",
]
