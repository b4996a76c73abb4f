"""Machine catalog: what one node of each machine type offers to the steps placed on it.

Three amounts per machine, from the biggest to what a step can use:

*nominal*
    the machine type's vCPUs and memory as the cloud sells them (``data/machines.csv``).
*allocatable*
    what the kubelet lets pods request: capacity minus ``kube-reserved`` minus the hard eviction
    threshold. On GKE this is GKE's documented reservation formula
    (https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes#memory_cpu), written
    down as code in the cluster autoscaler's GCE provider
    (https://github.com/kubernetes/autoscaler/blob/729ba955/cluster-autoscaler/cloudprovider/gce/reserved.go).
    Note that code's "GB": the memory brackets are counted in units of **1000 MiB**, not 1024 MiB
    ("Duplicating an upstream bug treating GB as 1000*MiB"); with 1024-MiB brackets the result is
    off by tens of MiB, and it is the 1000-MiB version that reproduces measured nodes exactly
    (2i2c-org/infrastructure issue #2121: n2-highmem-4 and n2-highmem-16 on GKE 1.25).
    The kubelet's memory capacity is below the nominal memory (the kernel keeps some); the
    autoscaler's estimate of it is used here (``memory/64 + 16 MiB``, plus 64 MiB above 3 GiB).
    On EKS the reservation is eksctl's/the EKS AMI's: the same cpu brackets, and
    ``11 MiB x max pods + 255 MiB`` of memory
    (https://github.com/weaveworks/eksctl/blob/v0.44.0-rc.0/pkg/nodebootstrap/reserved.go, secondary);
    max pods is taken as Kubernetes' default 110.
*usable*
    allocatable minus the DaemonSets every node runs (logging, monitoring, CNI, GPU device
    plugin). That overhead is not documented; about 0.45 cpu and 0.6 GiB per node was measured on
    GKE (2i2c-org/infrastructure, node-capacity-info.json). It is a setting
    (``[gokart_k8s.cost] daemonset_cpu`` and ``daemonset_memory``) because each cluster runs its own.

A machine with GPUs is one row with its attached GPUs (``n1-standard-8`` + 1 T4): that is the
shape a GPU pool's node has.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

from gokart_k8s.errors import ConfigurationError

MIB = Decimal(2**20)
GIB = Decimal(2**30)

#: The "GB" of GKE's reservation brackets: 1000 MiB (see the module docstring).
RESERVATION_GB_MIB = 1000
#: kubelet ``evictionHard: memory.available`` on GKE and the EKS AMI.
EVICTION_HARD_MIB = 100
#: Kubernetes' default pods per node, used for the EKS memory reservation.
DEFAULT_MAX_PODS = 110

#: Measured DaemonSet overhead per GKE node (2i2c-org/infrastructure node-capacity-info.json): the default.
DEFAULT_DAEMONSET_CPU = Decimal("0.45")
DEFAULT_DAEMONSET_MEMORY = Decimal("0.6") * GIB

_CPU_BRACKETS = ((0, Decimal("0.06")), (1000, Decimal("0.01")), (2000, Decimal("0.005")), (4000, Decimal("0.0025")))
_MEMORY_BRACKETS = (
    (0, Decimal("0.25")),
    (4 * RESERVATION_GB_MIB, Decimal("0.2")),
    (8 * RESERVATION_GB_MIB, Decimal("0.1")),
    (16 * RESERVATION_GB_MIB, Decimal("0.06")),
    (128 * RESERVATION_GB_MIB, Decimal("0.02")),
)


@dataclass(frozen=True)
class Capacity:
    """cpu in cores and memory in bytes (and whole GPUs) of one node."""

    cpu: Decimal
    memory: Decimal
    gpus: int = 0

    def describe(self) -> str:
        return f"{self.cpu:.2f} cpu, {self.memory / GIB:.2f}Gi" + (f", {self.gpus} GPU" if self.gpus else "")


@dataclass(frozen=True)
class Machine:
    """One machine type of the catalog (nominal shape)."""

    cloud: str
    machine_type: str
    vcpu: int
    memory_gib: Decimal
    gpus: int = 0
    accelerator: str | None = None
    source: str = ""

    @property
    def name(self) -> str:
        """The machine and its GPUs: ``n1-standard-8+1xnvidia-tesla-t4``."""
        return self.machine_type + (f"+{self.gpus}x{self.accelerator}" if self.gpus else "")

    def allocatable(self, *, capacity_memory: Decimal | None = None) -> Capacity:
        """What the kubelet lets pods request (see the module docstring).

        ``capacity_memory`` is the kubelet's measured memory capacity in bytes when known; by
        default the autoscaler's estimate from the nominal memory is used.
        """
        millicores = self.vcpu * 1000
        cpu = Decimal(millicores - reserved(millicores, _CPU_BRACKETS)) / 1000
        nominal_mib = int(self.memory_gib * 1024)
        if self.cloud == "aws":
            reserved_mib = 11 * DEFAULT_MAX_PODS + 255
            capacity_mib = Decimal(nominal_mib)
        else:
            reserved_mib = gke_memory_reserved_mib(nominal_mib)
            capacity_mib = Decimal(nominal_mib - kernel_reserved_mib(nominal_mib))
        if capacity_memory is not None:
            capacity_mib = capacity_memory / MIB
        memory = (capacity_mib - reserved_mib - EVICTION_HARD_MIB) * MIB
        return Capacity(cpu=cpu, memory=memory, gpus=self.gpus)

    def usable(
        self, daemonset_cpu: Decimal = DEFAULT_DAEMONSET_CPU, daemonset_memory: Decimal = DEFAULT_DAEMONSET_MEMORY
    ) -> Capacity:
        """Allocatable minus the DaemonSets' requests: what steps can use."""
        alloc = self.allocatable()
        return Capacity(cpu=alloc.cpu - daemonset_cpu, memory=alloc.memory - daemonset_memory, gpus=alloc.gpus)


def reserved(capacity: int, brackets: Iterable[tuple[int, Decimal]]) -> int:
    """A marginal-rate reservation: each bracket's rate applies to the capacity between its
    threshold and the next one's; the sum is truncated to a whole unit, as the autoscaler does."""
    items = list(brackets)
    total = Decimal(0)
    for i, (threshold, rate) in enumerate(items):
        upper = items[i + 1][0] if i + 1 < len(items) else None
        top = capacity if upper is None or capacity < upper else upper
        if top > threshold:
            total += (top - threshold) * rate
    return int(total)


def gke_memory_reserved_mib(nominal_mib: int) -> int:
    """GKE's kube-reserved memory for a machine of ``nominal_mib``: 255 MiB up to 1 "GB", then
    25/20/10/6/2 % brackets at 4, 8, 16 and 128 "GB" -- of 1000 MiB each."""
    if nominal_mib <= 0:
        return 0
    if nominal_mib <= RESERVATION_GB_MIB:
        return 255
    return reserved(nominal_mib, _MEMORY_BRACKETS)


def kernel_reserved_mib(nominal_mib: int) -> int:
    """The autoscaler's estimate of memory the kernel keeps: 1/64 + 16 MiB, + 64 MiB above 3 GiB."""
    return nominal_mib // 64 + 16 + (64 if nominal_mib > 3 * 1024 else 0)


def _parse_rows(text: str, where: str) -> Iterator[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for number, row in enumerate(csv.DictReader(lines), 2):
        if None in row or any(v is None for v in row.values()):
            raise ConfigurationError(f"{where}: row {number} has the wrong number of columns: {row}")
        yield {k: (v or "").strip() for k, v in row.items()}


def load_machines(text: str | None = None, *, where: str = "gokart_k8s/cost/data/machines.csv") -> tuple[Machine, ...]:
    """The machine catalog shipped with the package (or parsed from ``text``)."""
    if text is None:
        text = resources.files("gokart_k8s.cost").joinpath("data/machines.csv").read_text()
    out = []
    for row in _parse_rows(text, where):
        try:
            out.append(
                Machine(
                    cloud=row["cloud"],
                    machine_type=row["machine_type"],
                    vcpu=int(row["vcpu"]),
                    memory_gib=Decimal(row["memory_gib"]),
                    gpus=int(row["gpus"] or 0),
                    accelerator=row["accelerator"] or None,
                    source=row["source"],
                )
            )
        except (KeyError, ValueError, ArithmeticError) as exc:
            raise ConfigurationError(f"{where}: machine row {row}: {exc}") from None
    return tuple(out)
