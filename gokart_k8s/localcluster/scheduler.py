"""The scheduler: binds pending pods to nodes that fit, or explains why none does.

A node fits a pod when, in the order the real scheduler's filter plugins run
(https://kubernetes.io/docs/reference/scheduling/config/#scheduling-plugins):

1. NodeUnschedulable: the node is not cordoned (``spec.unschedulable``);
2. TaintToleration: every ``NoSchedule``/``NoExecute`` taint is tolerated
   (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/);
3. NodeAffinity: ``nodeSelector`` and required node affinity (``In``, ``NotIn``, ``Exists``,
   ``DoesNotExist``, ``Gt``, ``Lt``) match the node's labels
   (https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/);
4. NodeResourcesFit: the pod's requests (limits when a request is absent) plus the requests of
   the node's non-terminal pods fit in ``allocatable`` for cpu, memory, ephemeral-storage,
   nvidia.com/gpu and the pod count.

Like the real scheduler, each node is reported under the first filter that rejects it (several
``Insufficient`` reasons may come from one node), and the message is ``0/N nodes are available:
<count> <reason>, … .`` with reasons sorted, followed by the preemption note. A pod that does not
fit stays Pending with ``PodScheduled=False, reason Unschedulable`` and a ``FailedScheduling``
event; it is retried whenever a pod finishes or a node changes. There is no preemption, no
scoring beyond "least requested first", and no inter-pod affinity.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from . import resources as r
from .loops import PassLoop
from .quantity import parse_quantity
from .store import Obj, Store, timestamp

_RESOURCES = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu")


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        requests, limits = res.get("requests") or {}, res.get("limits") or {}
        for name in _RESOURCES:
            # A container with a limit and no request requests its limit
            # (https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#requests-and-limits).
            value = requests.get(name, limits.get(name))
            if value is not None:
                totals[name] = totals.get(name, Decimal(0)) + parse_quantity(value)
    return totals


def tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint.get("effect"):
            continue
        if tol.get("operator", "Equal") == "Exists":
            if not tol.get("key") or tol["key"] == taint.get("key"):
                return True
        elif tol.get("key") == taint.get("key") and (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _expression_matches(expr: Obj, labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and values:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    # Terms are ORed; the expressions of one term are ANDed.
    for term in required.get("nodeSelectorTerms") or []:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        name_ok = all(_expression_matches(f, {"metadata.name": node["metadata"]["name"]}) for f in fields)
        if (exprs or fields) and name_ok and all(_expression_matches(e, labels) for e in exprs):
            return True
    return False


def _taint_text(taint: Obj) -> str:
    return f"{{{taint.get('key')}: {taint.get('value', '')}}}"


def fit_reasons(pod: Obj, node: Obj, used: dict[str, Decimal], pod_count: int) -> list[str]:
    """Why ``pod`` cannot go to ``node`` (empty when it can)."""
    spec = pod.get("spec") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return ["node(s) were unschedulable"]
    tolerations = spec.get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return [f"node(s) had untolerated taint {_taint_text(taint)}"]
    if not affinity_matches(spec, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    reasons = []
    if pod_count + 1 > int(parse_quantity(allocatable.get("pods", "110"))):
        reasons.append("Too many pods")
    for name, amount in sorted(pod_requests(pod).items()):
        have = parse_quantity(allocatable.get(name, "0"))
        if amount > 0 and used.get(name, Decimal(0)) + amount > have:
            reasons.append(f"Insufficient {name}")
    return reasons


def unschedulable_message(total: int, reasons: dict[str, int]) -> str:
    if total == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return (
        f"0/{total} nodes are available: {', '.join(parts)}. "
        f"preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling."
    )


class Scheduler(PassLoop):
    """Binds pods in creation order; retries the unschedulable ones whenever something changes."""

    def __init__(self, store: Store) -> None:
        super().__init__("scheduler")
        self.store = store
        self._reported: dict[str, str] = {}
        store.add_listener(self._on_event)

    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is r.NODE:
            self._wake.set()
        elif rt is r.POD:
            spec = obj.get("spec") or {}
            phase = (obj.get("status") or {}).get("phase")
            if (kind == "ADDED" and not spec.get("nodeName")) or kind == "DELETED" or phase in ("Succeeded", "Failed"):
                self._wake.set()

    def _pass(self) -> None:
        self.schedule_pending()

    def schedule_pending(self) -> None:
        """One scheduling pass over every unbound pod."""
        nodes, _ = self.store.list(r.NODE, copy=False)
        pods, _ = self.store.list(r.POD, copy=False)
        used: dict[str, dict[str, Decimal]] = {n["metadata"]["name"]: {} for n in nodes}
        counts: dict[str, int] = {n["metadata"]["name"]: 0 for n in nodes}
        pending = []
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            phase = (pod.get("status") or {}).get("phase")
            if not node_name:
                if not pod["metadata"].get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
                    pending.append(pod)
            elif phase not in ("Succeeded", "Failed") and node_name in used:
                counts[node_name] += 1
                for name, amount in pod_requests(pod).items():
                    used[node_name][name] = used[node_name].get(name, Decimal(0)) + amount
        pending.sort(key=lambda p: (p["metadata"].get("creationTimestamp", ""), int(p["metadata"]["resourceVersion"])))
        for pod in pending:
            reasons: dict[str, int] = {}
            candidates = []
            for node in nodes:
                name = node["metadata"]["name"]
                why = fit_reasons(pod, node, used[name], counts[name])
                for reason in why:
                    reasons[reason] = reasons.get(reason, 0) + 1
                if not why:
                    candidates.append(node)
            if candidates:
                node = min(candidates, key=lambda n: (counts[n["metadata"]["name"]], n["metadata"]["name"]))
                name = node["metadata"]["name"]
                if self._bind(pod, name):
                    counts[name] += 1
                    for res, amount in pod_requests(pod).items():
                        used[name][res] = used[name].get(res, Decimal(0)) + amount
            else:
                self._mark_unschedulable(pod, unschedulable_message(len(nodes), reasons))

    def _bind(self, pod: Obj, node_name: str) -> bool:
        """The Binding subresource: set nodeName and PodScheduled=True in one write."""

        def mutate(p: Obj) -> bool | None:
            if (p.get("spec") or {}).get("nodeName") or p["metadata"].get("deletionTimestamp"):
                return False
            p["spec"]["nodeName"] = node_name
            status = p.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append(
                {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": timestamp()}
            )
            status["conditions"] = conditions
            return None

        meta = pod["metadata"]
        result = self.store.update(r.POD, meta["namespace"], meta["name"], mutate, uid=meta["uid"])
        if result is None or result["spec"].get("nodeName") != node_name:
            return False
        self._reported.pop(meta["uid"], None)
        self.store.record_event(
            result,
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}",
            component="default-scheduler",
        )
        return True

    def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        if self._reported.get(meta["uid"]) == message:
            return
        self._reported[meta["uid"]] = message

        def mutate(p: Obj) -> bool | None:
            if (p.get("spec") or {}).get("nodeName"):
                return False
            status: dict[str, Any] = p.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": None,
                    "lastTransitionTime": timestamp(),
                }
            )
            status["conditions"] = conditions
            return None

        result = self.store.update(r.POD, meta["namespace"], meta["name"], mutate, uid=meta["uid"])
        if result is not None:
            self.store.record_event(result, "FailedScheduling", message, type_="Warning", component="default-scheduler")
