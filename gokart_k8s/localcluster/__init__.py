"""An embedded local Kubernetes cluster: a real HTTP API server, Job/CronJob controllers, a
scheduler over node pools, a kubelet that runs pods as local processes, and chaos.

The official ``kubernetes`` client and ``kubectl`` talk to it as to a real cluster. What it
emulates and what it does not is listed in ``docs/local-cluster.md``.

Public API::

    LocalCluster(pools=None, *, host="127.0.0.1", port=0, pod_env=None, workdir=None, chaos=None,
                 autoscaling=None, warm_interpreter=True, ...)
    ChaosConfig(seed=DEFAULT_CHAOS_SEED, rate=DEFAULT_CHAOS_RATE, preempt_share=0.5, stockout_seconds=0.0)
    Autoscaling(mode="cluster-autoscaler", time_scale=60.0, ...)   # see .autoscaler
    ManualClock(start=None)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .autoscaler import Autoscaling
    from .chaos import DEFAULT_CHAOS_RATE, DEFAULT_CHAOS_SEED, ChaosConfig, ChaosEvent
    from .cluster import EvictionRefusedError, LocalCluster, LocalClusterError, default_pools
    from .controllers import ManualClock

# Each public name and its module, imported when first asked for: the warm interpreter
# (:mod:`.warm`) imports its own modules from here without the whole cluster.
_WHERE = {
    "Autoscaling": ".autoscaler",
    "DEFAULT_CHAOS_RATE": ".chaos",
    "DEFAULT_CHAOS_SEED": ".chaos",
    "ChaosConfig": ".chaos",
    "ChaosEvent": ".chaos",
    "EvictionRefusedError": ".cluster",
    "LocalCluster": ".cluster",
    "LocalClusterError": ".cluster",
    "default_pools": ".cluster",
    "ManualClock": ".controllers",
}

__all__ = [
    "DEFAULT_CHAOS_RATE",
    "DEFAULT_CHAOS_SEED",
    "Autoscaling",
    "ChaosConfig",
    "ChaosEvent",
    "EvictionRefusedError",
    "LocalCluster",
    "LocalClusterError",
    "ManualClock",
    "default_pools",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
