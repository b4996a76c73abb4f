"""What a pod and a node say about an attempt: pure functions over the API's camelCase JSON.

Where each fact comes from:

- **node, times, exit code**: the pod (``spec.nodeName``, ``metadata.creationTimestamp``, the
  container's ``state.running.startedAt`` / ``state.terminated.finishedAt`` and ``exitCode``).
- **pool**: the node's label, whichever platform wrote it: GKE ``cloud.google.com/gke-nodepool``
  (https://cloud.google.com/kubernetes-engine/docs/how-to/node-pools), Karpenter
  ``karpenter.sh/nodepool`` (https://karpenter.sh/docs/reference/instance-types/), EKS managed node
  groups ``eks.amazonaws.com/nodegroup``, the local cluster's ``gokart-k8s.io/node-pool``; else the
  pool the step was pinned to (the pod's ``gokart-k8s.io/pool`` label).
- **capacity type**: GKE ``cloud.google.com/gke-spot`` / ``gke-preemptible`` / ``gke-provisioning``
  (https://cloud.google.com/kubernetes-engine/docs/concepts/spot-vms), Karpenter
  ``karpenter.sh/capacity-type``, EKS ``eks.amazonaws.com/capacityType``, the local cluster's
  ``gokart-k8s.io/spot`` annotation; a GKE node pool without a Spot label is on-demand; else the
  capacity the step was placed on (the pod's ``gokart-k8s.io/capacity`` label).
- **machine type**: the well-known ``node.kubernetes.io/instance-type``
  (https://kubernetes.io/docs/reference/labels-annotations-taints/#nodekubernetesioinstance-type).

API timestamps have one-second precision. :func:`refine` replaces one with the moment the recorder
saw the change when that moment lies within the same second (a live observation, milliseconds
late), and keeps the API's value otherwise (a change that happened before the recorder looked).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from gokart_k8s.placement import GPU_RESOURCE, LABEL_CAPACITY, LABEL_POOL
from gokart_k8s.platforms.eks_karpenter import CAPACITY_TYPE_LABEL as KARPENTER_CAPACITY_LABEL
from gokart_k8s.platforms.gke_standard import NODEPOOL_LABEL as GKE_NODEPOOL_LABEL
from gokart_k8s.platforms.gke_standard import SPOT_LABEL as GKE_SPOT_LABEL

__all__ = ["attempt_facts", "capacity_of", "node_facts", "parse_time", "pool_of", "refine"]

#: Label the local cluster puts on each node: the pool it was created from.
LOCAL_POOL_LABEL = "gokart-k8s.io/node-pool"
#: Annotation the local cluster puts on each node (gokart_k8s.localcluster.cluster.SPOT_ANNOTATION).
LOCAL_SPOT_ANNOTATION = "gokart-k8s.io/spot"
KARPENTER_POOL_LABEL = "karpenter.sh/nodepool"
EKS_NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
EKS_CAPACITY_LABEL = "eks.amazonaws.com/capacityType"
GKE_PREEMPTIBLE_LABEL = "cloud.google.com/gke-preemptible"
GKE_PROVISIONING_LABEL = "cloud.google.com/gke-provisioning"
INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
_POOL_LABELS = (GKE_NODEPOOL_LABEL, KARPENTER_POOL_LABEL, EKS_NODEGROUP_LABEL, LOCAL_POOL_LABEL)


def parse_time(text: Any) -> float | None:
    """RFC 3339 (``2026-12-01T15:00:00Z``, fractions allowed) to epoch seconds; None if absent."""
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def refine(api_time: float | None, observed: float) -> float | None:
    """The API's second-precision time, or ``observed`` when it falls within that second."""
    if api_time is None:
        return None
    return observed if api_time <= observed < api_time + 1.0 else api_time


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def pool_of(node: Mapping[str, Any] | None) -> str | None:
    labels = _meta(node or {}).get("labels") or {}
    return next((str(labels[k]) for k in _POOL_LABELS if labels.get(k)), None)


def capacity_of(node: Mapping[str, Any] | None) -> str | None:
    """``"spot"``, ``"on-demand"`` or None, from the node's labels (see the module docstring)."""
    meta = _meta(node or {})
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    if labels.get(GKE_SPOT_LABEL) == "true" or labels.get(GKE_PREEMPTIBLE_LABEL) == "true":
        return "spot"
    if labels.get(GKE_PROVISIONING_LABEL) in ("spot", "preemptible"):
        return "spot"
    for key in (KARPENTER_CAPACITY_LABEL, EKS_CAPACITY_LABEL):
        value = str(labels.get(key) or "").lower().replace("_", "-")
        if value in ("spot", "on-demand"):
            return value
    if annotations.get(LOCAL_SPOT_ANNOTATION) in ("true", "false"):
        return "spot" if annotations[LOCAL_SPOT_ANNOTATION] == "true" else "on-demand"
    if labels.get(GKE_NODEPOOL_LABEL):
        return "on-demand"  # a GKE node pool that is neither Spot nor preemptible
    return None


def node_facts(node: Mapping[str, Any]) -> dict[str, Any]:
    """The ``node`` event fields of a Node object (its end is known only once it is gone)."""
    meta = _meta(node)
    labels = meta.get("labels") or {}
    return {
        "uid": str(meta.get("uid") or meta.get("name") or ""),
        "name": str(meta.get("name") or ""),
        "pool": pool_of(node),
        "machine_type": next((str(labels[k]) for k in INSTANCE_TYPE_LABELS if labels.get(k)), None),
        "capacity_type": capacity_of(node),
        "start": parse_time(meta.get("creationTimestamp")),
        "end": parse_time(meta.get("deletionTimestamp")),
    }


def _container_state(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return (statuses[0].get("state") or {}) if statuses else {}


def attempt_facts(
    pod: Mapping[str, Any], node: Mapping[str, Any] | None, observed: float, *, deleted: bool = False
) -> dict[str, Any]:
    """The ``attempt`` event fields a pod shows now (None where it does not tell yet)."""
    meta = _meta(pod)
    labels = meta.get("labels") or {}
    spec = pod.get("spec") or {}
    containers = spec.get("containers") or [{}]
    requests = (containers[0].get("resources") or {}).get("requests") or {}
    state = _container_state(pod)
    running = state.get("running") or {}
    terminated = state.get("terminated") or {}
    node_facts_ = node_facts(node) if node is not None else {}
    capacity = node_facts_.get("capacity_type")
    if capacity is None and labels.get(LABEL_CAPACITY) in ("spot", "on-demand"):
        capacity = labels[LABEL_CAPACITY]
    ended = refine(parse_time(terminated.get("finishedAt")), observed)
    phase = (pod.get("status") or {}).get("phase")
    if ended is None and (deleted or phase in ("Succeeded", "Failed")):
        ended = observed
    gpu = requests.get(GPU_RESOURCE)
    return {
        "pod": meta.get("name"),
        "job": labels.get("batch.kubernetes.io/job-name") or labels.get("job-name"),
        "node": spec.get("nodeName"),
        "pool": node_facts_.get("pool") or labels.get(LABEL_POOL),
        "machine_type": node_facts_.get("machine_type"),
        "capacity_type": capacity,
        "cpu": requests.get("cpu"),
        "memory": requests.get("memory"),
        "gpu": int(gpu) if gpu is not None else None,
        "submitted": refine(parse_time(meta.get("creationTimestamp")), observed),
        "started": refine(parse_time(running.get("startedAt") or terminated.get("startedAt")), observed),
        "ended": ended,
        "exit_code": terminated.get("exitCode"),
    }
