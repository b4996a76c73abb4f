"""GKE Autopilot: no node pools; compute classes, Spot Pods and extended run time.

Autopilot provisions nodes from each pod's requests and selectors and bills the pod's requests,
so there is nothing to pin. A step becomes:

* **compute class**: none for the default general-purpose platform ("you can't explicitly select
  the general-purpose platform"), ``cloud.google.com/compute-class: Balanced`` for a class that
  general-purpose cannot hold, or whose memory per cpu is above general-purpose's ratio (Autopilot
  would otherwise raise the cpu request to match, and bill it)
  (https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-compute-classes,
  https://cloud.google.com/kubernetes-engine/docs/concepts/autopilot-resource-requests).
  GPU steps select the accelerator instead: ``cloud.google.com/gke-accelerator`` and
  ``cloud.google.com/gke-accelerator-count`` (https://cloud.google.com/kubernetes-engine/docs/how-to/autopilot-gpus).
* **tolerate** (class allows Spot): a Spot Pod, by ``nodeSelector cloud.google.com/gke-spot: "true"``
  (https://cloud.google.com/kubernetes-engine/docs/how-to/autopilot-spot-pods). Autopilot adds the
  matching toleration itself; we add it too, because it is harmless there and makes the same pod
  spec schedule on the local cluster's tainted Spot nodes and on Autopilot-mode compute classes
  in Standard clusters.
* **protect**: an on-demand pod with ``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``,
  which Autopilot honours as *extended run time*: no eviction by scale-down or node upgrade for at
  most 7 days (https://cloud.google.com/kubernetes-engine/docs/how-to/extended-duration-pods).

Refused before submission, with what to change:

* a protected step with ``max_runtime`` above 7 days (extended run time ends there);
* a protected step whose declared capacity offers only Spot (see below): Autopilot does not
  honour safe-to-evict on Spot Pods ("You can't request extended run time for Spot Pods");
* a class bigger than the largest compute class Autopilot offers.

Capacity. Autopilot has no pools; :meth:`GkeAutopilotProfile.pools` returns nodes that *emulate*
what Autopilot would create (labelled with exactly the selectors placement uses), for the local
cluster. They are derived from the resource-class catalog. When ``[gokart_k8s.pools.*]`` sections
exist they replace the emulation and say what the project can actually get -- e.g. a project with
Spot-only T4 quota declares only a Spot T4 pool -- and a step no declared pool accepts is refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from decimal import Decimal

from gokart_k8s.conventions import dns_label
from gokart_k8s.eviction import Eviction
from gokart_k8s.placement import (
    GPU_RESOURCE,
    GPU_TOLERATION,
    LABEL_CAPACITY,
    SAFE_TO_EVICT,
    Placement,
    holds,
    merge_tolerations,
    need_phrase,
    node_envelope,
    resources_for,
    spot_grace_warning,
    step_title,
    suits,
    wants_spot,
)
from gokart_k8s.pools import NodePool, Taint
from gokart_k8s.resources import ResourceClass, format_bytes
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec

PLATFORM = "gke-autopilot"

COMPUTE_CLASS_LABEL = "cloud.google.com/compute-class"
SPOT_LABEL = "cloud.google.com/gke-spot"
ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
ACCELERATOR_COUNT_LABEL = "cloud.google.com/gke-accelerator-count"
BALANCED = "Balanced"

SPOT_TAINT = Taint(key=SPOT_LABEL, value="true", effect="NoSchedule")
SPOT_TOLERATION: dict[str, str] = {"key": SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
GPU_TAINT = Taint(key=GPU_RESOURCE, value="present", effect="NoSchedule")

#: "You can tell Autopilot to avoid evicting specific workloads for up to 7 days."
EXTENDED_RUN_TIME_SECONDS = 7 * 24 * 3600
#: A Spot Pod gets at most 25 s of grace on preemption, whatever terminationGracePeriodSeconds says.
SPOT_GRACE_SECONDS = 25

# Largest pod and memory:cpu ratio of the default general-purpose platform, and the largest pod
# of Balanced, from the resource-requests page above. The ratio table could not be re-read when
# this was written (see /work/shared/research/platform-facts.md 2.4); check it when Google changes
# the limits: too low a limit only sends steps to Balanced early, which costs a little more per cpu.
_GIB = Decimal(2**30)
GENERAL_PURPOSE_MAX_CPU = Decimal(30)
GENERAL_PURPOSE_MAX_MEMORY = Decimal(110) * _GIB
GENERAL_PURPOSE_MAX_GIB_PER_CPU = Decimal("6.5")
BALANCED_MAX_CPU = Decimal(222)
BALANCED_MAX_MEMORY = Decimal(851) * _GIB


def compute_class(rc: ResourceClass) -> str | None:
    """The compute class a CPU-only class needs: ``None`` (general-purpose) or ``"Balanced"``."""
    if rc.gpu:
        return None
    per_cpu = rc.memory_bytes / _GIB / rc.cpu_cores
    if (
        rc.cpu_cores > GENERAL_PURPOSE_MAX_CPU
        or rc.memory_bytes > GENERAL_PURPOSE_MAX_MEMORY
        or per_cpu > GENERAL_PURPOSE_MAX_GIB_PER_CPU
    ):
        return BALANCED
    return None


def _labelled(pool: NodePool) -> NodePool:
    """A pool's nodes as Autopilot labels and taints them: Spot nodes tainted, GPU nodes labelled
    with their accelerator and count and tainted."""
    labels: dict[str, str] = {}
    taints = list(pool.taints)
    if pool.spot:
        labels[SPOT_LABEL] = "true"
        if SPOT_TAINT not in taints:
            taints.append(SPOT_TAINT)
    if pool.gpu and pool.accelerator:
        labels[ACCELERATOR_LABEL] = pool.accelerator
        labels[ACCELERATOR_COUNT_LABEL] = str(pool.gpu)
        if not any(t.key == GPU_RESOURCE for t in taints):
            taints.append(GPU_TAINT)
    labels.update(pool.labels)
    return dataclasses.replace(pool, labels=labels, taints=tuple(taints))


def emulated_pools(classes: Iterable[ResourceClass]) -> tuple[NodePool, ...]:
    """Nodes like the ones Autopilot would create for these classes, Spot and on-demand of each."""
    classes = list(classes)
    general = [rc for rc in classes if not rc.gpu and compute_class(rc) is None]
    balanced = [rc for rc in classes if not rc.gpu and compute_class(rc) == BALANCED]
    shapes: list[tuple[str, str, str, dict[str, str], int, str | None]] = []
    cpu, memory = node_envelope(general)
    shapes.append(("general", cpu, memory, {}, 0, None))
    cpu, memory = node_envelope(balanced, Decimal(8), Decimal(64) * _GIB)
    shapes.append(("balanced", cpu, memory, {COMPUTE_CLASS_LABEL: BALANCED}, 0, None))
    for accelerator, count in sorted({(rc.accelerator or "", rc.gpu) for rc in classes if rc.gpu}):
        same = [rc for rc in classes if rc.accelerator == accelerator and rc.gpu == count]
        cpu, memory = node_envelope(same)
        shapes.append((dns_label(f"{accelerator}-x{count}"), cpu, memory, {}, count, accelerator))
    return tuple(
        _labelled(
            NodePool(
                name=f"{name}-spot" if spot else name,
                cpu=cpu,
                memory=memory,
                labels=labels,
                gpu=gpu,
                accelerator=accelerator,
                spot=spot,
            )
        )
        for name, cpu, memory, labels, gpu, accelerator in shapes
        for spot in (False, True)
    )


class GkeAutopilotProfile:
    """Places steps on GKE Autopilot (see the module docstring)."""

    name = PLATFORM

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._declared = bool(settings.pools)
        if settings.pools:
            self._pools = tuple(_labelled(p) for p in settings.pools)
        else:
            self._pools = emulated_pools(settings.catalog.values())

    def pools(self) -> tuple[NodePool, ...]:
        return self._pools

    def place(self, spec: StepSpec, *, on_demand: bool = False) -> Placement:
        rc = spec.resource_class
        spot = wants_spot(spec, on_demand=on_demand)
        selector: dict[str, str] = {}
        tolerations: list[dict[str, str]] = []
        details: list[str] = []
        warnings: list[str] = []
        if rc.gpu and rc.accelerator:
            selector[ACCELERATOR_LABEL] = rc.accelerator
            selector[ACCELERATOR_COUNT_LABEL] = str(rc.gpu)
            tolerations.append(GPU_TOLERATION)
            details.append(f"{rc.gpu}x {rc.accelerator}")
        else:
            cc = compute_class(rc)
            if cc is not None:
                selector[COMPUTE_CLASS_LABEL] = cc
            details.append(f"compute-class {cc or 'general-purpose'}")
        if spot:
            selector[SPOT_LABEL] = "true"
            tolerations.append(SPOT_TOLERATION)
            warnings += spot_grace_warning(
                spec,
                self._settings.termination_budget_seconds,
                SPOT_GRACE_SECONDS,
                f"runs as a Spot Pod, which Autopilot gives at most {SPOT_GRACE_SECONDS} s on preemption",
            )
        annotations: dict[str, str] = {}
        if spec.eviction is Eviction.PROTECT:
            annotations[SAFE_TO_EVICT] = "false"
            details.append("extended run time")
            if spec.max_runtime_seconds is None:
                warnings.append(
                    f"{step_title(spec)} is protected by Autopilot's extended run time, which lasts at "
                    f"most 7 days; after that the pod may be evicted. Set max_runtime= to say how long it may run."
                )
        requests, limits = resources_for(rc)
        return Placement(
            pool=None,
            spot=spot,
            node_selector=selector,
            tolerations=merge_tolerations(tolerations),
            annotations=annotations,
            labels={LABEL_CAPACITY: "spot" if spot else "on-demand"},
            requests=requests,
            limits=limits,
            summary=f"Autopilot {'Spot' if spot else 'on-demand'}",
            details=tuple(details),
            warnings=tuple(warnings),
        )

    def check(self, spec: StepSpec) -> list[str]:
        rc = spec.resource_class
        head = f"{step_title(spec)} cannot run on platform {PLATFORM!r}"
        problems: list[str] = []
        protected = spec.eviction is Eviction.PROTECT
        if protected and spec.max_runtime_seconds is not None and spec.max_runtime_seconds > EXTENDED_RUN_TIME_SECONDS:
            problems.append(
                f"{head}: max_runtime is {spec.max_runtime_seconds} s, but Autopilot protects a pod from "
                f"eviction for at most 7 days ({EXTENDED_RUN_TIME_SECONDS} s). Change one: "
                f"eviction='tolerate' (the step resumes from its last cached output), split the step or "
                f"save checkpoints so one attempt stays under 7 days, or platform 'gke-standard'."
            )
        if not rc.gpu and (rc.cpu_cores > BALANCED_MAX_CPU or rc.memory_bytes > BALANCED_MAX_MEMORY):
            problems.append(
                f"{head}: {rc.describe()} is more than the largest Autopilot pod "
                f"({BALANCED_MAX_CPU} cpu, {format_bytes(BALANCED_MAX_MEMORY)} on compute class Balanced). "
                f"Change one: a smaller resource class, or platform 'gke-standard' with a pool that big."
            )
        if self._declared:
            problems.extend(self._capacity_problems(spec, head))
        return problems

    def _capacity_problems(self, spec: StepSpec, head: str) -> list[str]:
        rc = spec.resource_class
        placement = self.place(spec)
        if holds(self._pools, rc, placement):
            return []
        name = rc.name or "one-off"
        if spec.eviction is Eviction.PROTECT and any(suits(rc, p) and p.spot for p in self._pools):
            return [
                f"{head}: the declared capacity offers {rc.describe()} only as Spot, and Autopilot does "
                f"not honour safe-to-evict on Spot pods. Change one: eviction='tolerate' (the step resumes "
                f"from its last cached output), or declare on-demand capacity for {name!r} "
                f"([gokart_k8s.pools.NAME] with spot=false and {need_phrase(rc)})."
            ]
        if not rc.spot and any(suits(rc, p) and p.spot for p in self._pools):
            return [
                f"{head}: resource class {name!r} has spot=false, and the declared capacity offers "
                f"{rc.describe()} only as Spot. Change one: spot=true for {name!r}, or declare on-demand "
                f"capacity ([gokart_k8s.pools.NAME] with spot=false and {need_phrase(rc)})."
            ]
        return [
            f"{head}: no declared pool ([gokart_k8s.pools.*]) can hold {rc.describe()} with node selector "
            f"{placement.node_selector or '{}'}. Change one: a resource class the declared pools can hold, "
            f"or declare a pool with {need_phrase(rc)}"
            f"{' and spot=true' if placement.spot else ''}."
        ]
