"""Node pools: the capacity a platform profile offers, as plain data.

A platform profile describes its pools (what labels and taints their nodes carry, how big a node
is, whether it is Spot); placement chooses among them; the embedded local cluster creates its nodes
from them so a rehearsal proves that a placement really schedules.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Taint:
    """A node taint, as in ``Node.spec.taints``."""

    key: str
    value: str = ""
    effect: str = "NoSchedule"

    def as_dict(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class NodePool:
    """One pool of identical nodes.

    Quantities use Kubernetes spelling. ``cpu``/``memory``/``gpu``/``ephemeral_storage`` are the
    *allocatable* amounts of one node of the pool.
    """

    name: str
    cpu: str
    memory: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    gpu: int = 0
    accelerator: str | None = None
    ephemeral_storage: str = "100Gi"
    spot: bool = False
    #: How many nodes of this pool the local cluster creates when it does not autoscale.
    nodes: int = 1
    #: Autoscaling bounds (GKE's ``--min-nodes``/``--max-nodes``): an autoscaling local cluster
    #: starts the pool at ``min_nodes`` and never grows it past ``max_nodes``.
    min_nodes: int = 0
    max_nodes: int = 3

    def __post_init__(self) -> None:
        if not 0 <= self.min_nodes <= self.max_nodes:
            raise ValueError(
                f"node pool {self.name!r}: min_nodes and max_nodes must satisfy 0 <= min_nodes <= max_nodes, "
                f"got {self.min_nodes} and {self.max_nodes}"
            )

    def capacity(self) -> dict[str, str]:
        """The node's capacity as ``Node.status.capacity`` spells it."""
        out = {
            "cpu": self.cpu,
            "memory": self.memory,
            "ephemeral-storage": self.ephemeral_storage,
            "pods": "110",
        }
        if self.gpu:
            out["nvidia.com/gpu"] = str(self.gpu)
        return out
