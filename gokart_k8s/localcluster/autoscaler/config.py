"""How the embedded cluster autoscales: one frozen record of modes, timers and prices.

Every timer is in **cluster seconds**, the time the real autoscaler would take, with the upstream
default (sources below). ``time_scale`` says how many cluster seconds pass per wall second: at the
default 60, the cluster autoscaler's 10-minute ``--scale-down-unneeded-time`` rehearses in 10 s and
a 2-minute provisioning delay in 2 s. What is *reported* -- node lifetimes in hours, node-hours,
costs -- is converted back to cluster time, so a rehearsal prints what the real cluster would bill.
Pods themselves still run in wall time: a step that sleeps 5 s stands for ``5 * time_scale`` s.

Sources for the defaults:

* cluster autoscaler flags (``cluster-autoscaler/config/flags/flags.go`` and FAQ.md,
  https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md): ``--scan-interval``
  10 s, ``--expander`` least-waste, ``--scale-down-utilization-threshold`` 0.5,
  ``--scale-down-unneeded-time`` 10 min, ``--scale-down-delay-after-add`` 10 min,
  ``--scale-down-delay-after-failure`` 3 min, ``--max-graceful-termination-sec`` 600, node-group
  back-off after a failed scale-up 5 min, empty nodes deleted in bulk (``--max-empty-bulk-delete`` 10);
* provisioning: "usually takes 3 to 4 minutes from CA request to when pods can be scheduled" on GCE
  (FAQ); 120 s here, the lower end, so rehearsals stay short;
* Karpenter (https://karpenter.sh/docs/concepts/disruption/): ``consolidationPolicy``
  ``WhenEmptyOrUnderutilized`` and ``consolidateAfter`` 0 s by default; Spot interruption notice 2 min.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

#: Which autoscaler the cluster runs: the open-source cluster autoscaler (GKE Standard, plain),
#: Karpenter (EKS), or Autopilot's node-per-pod provisioning.
MODES = ("cluster-autoscaler", "karpenter", "autopilot")
EXPANDERS = ("least-waste", "price")
CONSOLIDATION_POLICIES = ("WhenEmpty", "WhenEmptyOrUnderutilized")

#: Cluster seconds per wall second in a rehearsal (``gokart-k8s run --backend local-cluster`` and
#: ``gokart-k8s local-cluster start``).
DEFAULT_TIME_SCALE = 60.0

#: The autoscaler each platform profile runs.
PLATFORM_MODES = {
    "plain": "cluster-autoscaler",
    "gke-standard": "cluster-autoscaler",
    "gke-autopilot": "autopilot",
    "eks-karpenter": "karpenter",
}

_GIB = Decimal(2**30)


class Prices(Protocol):
    """Hourly price of one node (or, on Autopilot, of one pod's requests)."""

    def hourly(self, cpu: Decimal, memory_bytes: Decimal, gpu: int, spot: bool, machine_type: str) -> float:
        """USD per hour of a node with this allocatable cpu (cores), memory (bytes) and GPUs."""
        ...


@dataclass(frozen=True)
class LinearPrices:
    """A price per vCPU-hour and GiB-hour, Spot a share of on-demand, a price per GPU-hour.

    The stand-in when a rehearsal has no region (with one, the runner passes the price catalog's
    list prices, :class:`gokart_k8s.cost.billing.CatalogNodePrices`): the defaults are the E2
    rates derived for asia-northeast1 from list prices (research notes
    cost-pools-reports.md B.3: 0.028025 USD per vCPU-hour, 0.003739 per GiB-hour, Spot about 40 %)
    and one T4 (0.37 on-demand, 0.1342 Spot, B.1). Only the *price expander* and Karpenter's
    "cheapest instance type" use prices to decide; the cost of a run is computed afterwards from
    the node lifetimes (:func:`gokart_k8s.localcluster.autoscaler.ledger.node_costs`).
    """

    cpu_hour: float = 0.028025
    gib_hour: float = 0.003739
    spot_share: float = 0.4
    gpu_hour: float = 0.37
    spot_gpu_hour: float = 0.1342

    def hourly(self, cpu: Decimal, memory_bytes: Decimal, gpu: int, spot: bool, machine_type: str) -> float:
        base = float(cpu) * self.cpu_hour + float(memory_bytes / _GIB) * self.gib_hour
        if spot:
            return base * self.spot_share + gpu * self.spot_gpu_hour
        return base + gpu * self.gpu_hour


@dataclass(frozen=True)
class Autoscaling:
    """What the embedded cluster's autoscaler does, and how fast (see the module docstring)."""

    mode: str = "cluster-autoscaler"
    time_scale: float = DEFAULT_TIME_SCALE
    #: Cluster autoscaler: how a node group is chosen among those that could hold pending pods.
    expander: str = "least-waste"
    scan_interval_seconds: float = 10.0
    provision_seconds: float = 120.0
    utilization_threshold: float = 0.5
    unneeded_seconds: float = 600.0
    delay_after_add_seconds: float = 600.0
    delay_after_failure_seconds: float = 180.0
    max_graceful_termination_seconds: float = 600.0
    #: A node group whose scale-up failed (a Spot stockout) is not tried again for this long.
    backoff_seconds: float = 300.0
    max_empty_bulk_delete: int = 10
    #: Karpenter.
    consolidation_policy: str = "WhenEmptyOrUnderutilized"
    consolidate_after_seconds: float = 0.0
    interruption_notice_seconds: float = 120.0
    #: Autopilot: an empty per-pod node is removed after this long.
    autopilot_empty_seconds: float = 10.0
    prices: Prices = field(default_factory=LinearPrices)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Autoscaling.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.expander not in EXPANDERS:
            raise ValueError(f"Autoscaling.expander must be one of {', '.join(EXPANDERS)}, got {self.expander!r}")
        if self.consolidation_policy not in CONSOLIDATION_POLICIES:
            raise ValueError(
                f"Autoscaling.consolidation_policy must be one of {', '.join(CONSOLIDATION_POLICIES)}, "
                f"got {self.consolidation_policy!r}"
            )
        if self.time_scale <= 0:
            raise ValueError(
                f"Autoscaling.time_scale must be above 0 cluster seconds per second, got {self.time_scale}"
            )

    @classmethod
    def for_platform(cls, platform: str, **overrides: object) -> Autoscaling:
        """The autoscaler ``platform`` runs (``PLATFORM_MODES``), with ``overrides``."""
        return cls(mode=PLATFORM_MODES.get(platform, "cluster-autoscaler"), **overrides)  # type: ignore[arg-type]
