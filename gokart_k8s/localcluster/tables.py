"""Server-side printing: ``meta.k8s.io/v1`` Tables for ``kubectl get``.

``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
the server chooses (https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables).
The columns here follow the real API server's printers for pods, jobs, cronjobs, nodes, events
and namespaces (k8s.io/kubernetes/pkg/printers/internalversion/printers.go), including the
priority-1 columns ``-o wide`` shows; other kinds get NAME and AGE. The same Table answers a list,
a single-object read and each watch event (``as=Table`` applies to all three).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from . import resources as r
from .resources import ResourceType
from .store import parse_timestamp

Obj = dict[str, Any]
Column = tuple[str, str, int]  # name, type, priority (1 = -o wide only)


def human_duration(seconds: float) -> str:
    """Like k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d"


def _age(text: str | None) -> str:
    if not text:
        return "<unknown>"
    return human_duration((datetime.now(timezone.utc) - parse_timestamp(text)).total_seconds())


def _pod_status(pod: Obj) -> str:
    status = pod.get("status") or {}
    reason = status.get("phase", "Pending")
    if status.get("reason"):
        reason = status["reason"]
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "terminated" in state:
            reason = state["terminated"].get("reason") or reason
        elif "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
    if (pod.get("metadata") or {}).get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return str(reason)


def _pod_row(pod: Obj) -> list[Any]:
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        _pod_status(pod),
        restarts,
        _age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        _readiness_gates(pod),
    ]


def _readiness_gates(pod: Obj) -> str:
    gates = (pod.get("spec") or {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    true = {c.get("type") for c in (pod.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    return f"{sum(1 for g in gates if g.get('conditionType') in true)}/{len(gates)}"


def _workload_columns(template: Obj, selector: Obj | None) -> list[Any]:
    """CONTAINERS, IMAGES, SELECTOR: the wide columns of jobs and cronjobs."""
    containers = (template.get("spec") or {}).get("containers") or []
    labels = (selector or {}).get("matchLabels") or {}
    expressions = (selector or {}).get("matchExpressions") or []
    parts = [f"{k}={v}" for k, v in sorted(labels.items())]
    parts += [
        f"{e.get('key')} {str(e.get('operator', '')).lower()} ({','.join(e.get('values') or [])})" for e in expressions
    ]
    return [
        ",".join(str(c.get("name", "")) for c in containers),
        ",".join(str(c.get("image", "")) for c in containers),
        ",".join(parts) or "<none>",
    ]


def _job_status(job: Obj) -> str:
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}
    for name in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
        if name in conditions:
            return "Failing" if name == "FailureTarget" else name
    return "Running"


def _job_row(job: Obj) -> list[Any]:
    status = job.get("status") or {}
    completions = (job.get("spec") or {}).get("completions", 1)
    duration = ""
    if status.get("startTime"):
        end = parse_timestamp(status["completionTime"]) if status.get("completionTime") else datetime.now(timezone.utc)
        duration = human_duration((end - parse_timestamp(status["startTime"])).total_seconds())
    return [
        job["metadata"]["name"],
        _job_status(job),
        f"{status.get('succeeded', 0)}/{completions}",
        duration,
        _age(job["metadata"].get("creationTimestamp")),
        *_workload_columns((job.get("spec") or {}).get("template") or {}, (job.get("spec") or {}).get("selector")),
    ]


def _cronjob_row(cj: Obj) -> list[Any]:
    spec, status = cj.get("spec") or {}, cj.get("status") or {}
    last = status.get("lastScheduleTime")
    return [
        cj["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        "True" if spec.get("suspend") else "False",
        len(status.get("active") or []),
        _age(last) if last else "<none>",
        _age(cj["metadata"].get("creationTimestamp")),
        *_workload_columns(((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}, None),
    ]


def _node_row(node: Obj) -> list[Any]:
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )
    state = "Ready" if ready else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    info = (node.get("status") or {}).get("nodeInfo") or {}
    addresses = {a.get("type"): a.get("address") for a in (node.get("status") or {}).get("addresses") or []}
    return [
        node["metadata"]["name"],
        state,
        "<none>",
        _age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP") or "<none>",
        addresses.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


def _event_row(ev: Obj) -> list[Any]:
    inv = ev.get("involvedObject") or {}
    return [
        _age(ev.get("lastTimestamp") or ev["metadata"].get("creationTimestamp")),
        ev.get("type", ""),
        ev.get("reason", ""),
        f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}",
        ev.get("message", ""),
    ]


_WORKLOAD_WIDE: list[Column] = [("Containers", "string", 1), ("Images", "string", 1), ("Selector", "string", 1)]

_PRINTERS: dict[str, tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    r.POD.key: (
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "integer", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        _pod_row,
    ),
    r.JOB.key: (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            ("Age", "string", 0),
            *_WORKLOAD_WIDE,
        ],
        _job_row,
    ),
    r.CRONJOB.key: (
        [
            ("Name", "string", 0),
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            ("Age", "string", 0),
            *_WORKLOAD_WIDE,
        ],
        _cronjob_row,
    ),
    r.NODE.key: (
        [
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        _node_row,
    ),
    r.EVENT.key: (
        [
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _event_row,
    ),
    r.NAMESPACE.key: (
        [("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        lambda ns: [
            ns["metadata"]["name"],
            (ns.get("status") or {}).get("phase", "Active"),
            _age(ns["metadata"].get("creationTimestamp")),
        ],
    ),
}


def table(rt: ResourceType, items: list[Obj], resource_version: int, include_object: str) -> Obj:
    columns, printer = _PRINTERS.get(
        rt.key,
        (
            [("Name", "string", 0), ("Age", "string", 0)],
            lambda o: [o["metadata"]["name"], _age(o["metadata"].get("creationTimestamp"))],
        ),
    )
    rows = []
    for item in items:
        if include_object == "None":
            embedded: Obj | None = None
        elif include_object == "Object":
            embedded = item
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]}
        row: Obj = {"cells": printer(item)}
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": str(resource_version)},
        "columnDefinitions": [
            {
                "name": name,
                "type": type_,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, type_, priority in columns
        ],
        "rows": rows,
    }
