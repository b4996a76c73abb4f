"""Admission: the defaults and validation the API server applies before an object is stored.

Only what the project's manifests touch is checked, but each check answers like the real API
server: ``422 Invalid`` with ``details.causes[].field`` naming the field at fault and the same
message wording (``Required value``, ``Invalid value: …``, ``Unsupported value: …: supported
values: …``) (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).
Defaults follow the API reference for Pod, Job and CronJob
(https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/job-v1/).

Things this emulator cannot run are refused with a message saying so (``parallelism`` or
``completions`` above 1, ``completionMode: Indexed``), rather than silently mis-emulated.
"""

from __future__ import annotations

import json
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gokart_k8s.scheduling import cron

from . import resources as r
from .quantity import QUANTITY_PATTERN, is_quantity, parse_quantity
from .resources import ResourceType
from .status import Cause, invalid

Obj = dict[str, Any]

_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_RESOURCE_NAMES = ("cpu", "memory", "ephemeral-storage", "nvidia.com/gpu")

JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")


def required(field: str) -> Cause:
    return Cause(field, "Required value", "FieldValueRequired")


def bad_value(field: str, value: Any, detail: str) -> Cause:
    return Cause(field, f"Invalid value: {json.dumps(value)}: {detail}", "FieldValueInvalid")


def unsupported(field: str, value: Any, supported: tuple[str, ...]) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    return Cause(field, f"Unsupported value: {json.dumps(value)}: supported values: {listed}", "FieldValueNotSupported")


def admit(rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    """Default and validate ``obj`` (a new object when ``old`` is None); raise 422 on problems."""
    causes: list[Cause] = []
    meta = obj.setdefault("metadata", {})
    _check_metadata(rt, meta, causes)
    if rt is r.POD:
        _default_pod(obj)
        _check_pod_spec(obj.get("spec"), "spec", causes, job=False)
    elif rt is r.JOB:
        _default_job(obj, old)
        _check_job_spec(obj.get("spec"), "spec", causes)
    elif rt is r.CRONJOB:
        _check_cronjob(obj, causes)
    elif rt is r.NODE:
        for i, taint in enumerate(((obj.get("spec") or {}).get("taints")) or []):
            effect = taint.get("effect")
            if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                causes.append(
                    unsupported(f"spec.taints[{i}].effect", effect, ("NoSchedule", "PreferNoSchedule", "NoExecute"))
                )
    if causes:
        raise invalid(rt.kind, rt.group, meta.get("name") or meta.get("generateName") or "", causes)


def _check_metadata(rt: ResourceType, meta: Obj, causes: list[Cause]) -> None:
    name = meta.get("name")
    if not name:
        causes.append(Cause("metadata.name", "Required value: name or generateName is required", "FieldValueRequired"))
        return
    if rt in (r.NAMESPACE,) and not _LABEL_RE.match(name):
        causes.append(bad_value("metadata.name", name, _LABEL_MSG))
    elif len(name) > 253 or not _SUBDOMAIN_RE.match(name):
        causes.append(bad_value("metadata.name", name, _SUBDOMAIN_MSG))
    elif rt is r.JOB and len(name) > 63:
        # The name becomes a label value on the pods, so it must fit in 63 characters
        # (https://kubernetes.io/docs/concepts/workloads/controllers/job/#writing-a-job-spec).
        causes.append(bad_value("metadata.name", name, "must be no more than 63 characters"))
    elif rt is r.CRONJOB and len(name) > 52:
        # CronJob names leave 11 characters for the scheduled-time suffix of their Jobs
        # (https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#writing-a-cronjob-spec).
        causes.append(bad_value("metadata.name", name, "must be no more than 52 characters"))
    for key, value in (meta.get("labels") or {}).items():
        _check_label("metadata.labels", key, value, causes)


def _check_label(field: str, key: str, value: Any, causes: list[Cause]) -> None:
    prefix, _, name = key.rpartition("/")
    if (prefix and not _SUBDOMAIN_RE.match(prefix)) or len(name) > 63 or not _QUALIFIED_NAME_RE.match(name):
        causes.append(bad_value(field, key, "name part must consist of alphanumeric characters, '-', '_' or '.'"))
    if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE_RE.match(value):
        causes.append(
            bad_value(
                f"{field}",
                value,
                "a valid label must be an empty string or consist of alphanumeric characters, "
                "'-', '_' or '.', and must start and end with an alphanumeric character",
            )
        )


# ------------------------------------------------------------------------------------------ pods
def _default_pod_spec(spec: Obj, *, restart_policy: str | None) -> None:
    if restart_policy and "restartPolicy" not in spec:
        spec["restartPolicy"] = restart_policy
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        image = str(container.get("image") or "")
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def _default_pod(pod: Obj) -> None:
    spec = pod.setdefault("spec", {})
    if isinstance(spec, dict):
        _default_pod_spec(spec, restart_policy="Always")
    status = pod.setdefault("status", {})
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", qos_class(spec if isinstance(spec, dict) else {}))


def qos_class(spec: Obj) -> str:
    """Guaranteed / Burstable / BestEffort from the containers' requests and limits
    (https://kubernetes.io/docs/concepts/workloads/pods/pod-qos/)."""
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        any_set = any_set or bool(req or lim)
        for name in ("cpu", "memory"):
            if name not in lim or (name in req and req[name] != lim[name]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _check_pod_spec(spec: Any, path: str, causes: list[Cause], *, job: bool) -> None:
    if not isinstance(spec, dict):
        causes.append(required(path))
        return
    containers = spec.get("containers")
    if not containers or not isinstance(containers, list):
        causes.append(required(f"{path}.containers"))
    else:
        seen: set[str] = set()
        for i, c in enumerate(containers):
            _check_container(c, f"{path}.containers[{i}]", causes, seen)
    policy = spec.get("restartPolicy")
    allowed = ("OnFailure", "Never") if job else ("Always", "OnFailure", "Never")
    if job and policy is None:
        causes.append(
            Cause(f"{path}.restartPolicy", 'Required value: valid values: "OnFailure", "Never"', "FieldValueRequired")
        )
    elif policy not in allowed:
        causes.append(unsupported(f"{path}.restartPolicy", policy, allowed))
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        causes.append(bad_value(f"{path}.terminationGracePeriodSeconds", grace, "must be greater than or equal to 0"))
    for i, tol in enumerate(spec.get("tolerations") or []):
        op = tol.get("operator", "Equal")
        if op not in ("Equal", "Exists"):
            causes.append(unsupported(f"{path}.tolerations[{i}].operator", op, ("Equal", "Exists")))
        if op == "Exists" and tol.get("value"):
            causes.append(
                bad_value(f"{path}.tolerations[{i}].operator", op, "value must be empty when `operator` is 'Exists'")
            )
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for t, term in enumerate(affinity.get("nodeSelectorTerms") or []):
        for e, expr in enumerate(term.get("matchExpressions") or []):
            op = expr.get("operator")
            ops = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
            required_path = f"{path}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            field = f"{required_path}.nodeSelectorTerms[{t}].matchExpressions[{e}]"
            if op not in ops:
                causes.append(unsupported(f"{field}.operator", op, ops))
            elif op in ("In", "NotIn") and not expr.get("values"):
                causes.append(
                    Cause(
                        f"{field}.values",
                        "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                        "FieldValueRequired",
                    )
                )


def _check_container(c: Any, path: str, causes: list[Cause], seen: set[str]) -> None:
    if not isinstance(c, dict):
        causes.append(bad_value(path, c, "must be an object"))
        return
    name = c.get("name")
    if not name:
        causes.append(required(f"{path}.name"))
    elif not _LABEL_RE.match(name) or len(name) > 63:
        causes.append(bad_value(f"{path}.name", name, _LABEL_MSG))
    elif name in seen:
        causes.append(Cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
    else:
        seen.add(name)
    if not c.get("image"):
        causes.append(required(f"{path}.image"))
    for key in ("command", "args"):
        value = c.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            causes.append(bad_value(f"{path}.{key}", value, "must be a list of strings"))
    resources = c.get("resources") or {}
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("requests", "limits"):
        for res_name, quantity in (resources.get(kind) or {}).items():
            field = f"{path}.resources.{kind}[{res_name}]"
            if not is_quantity(quantity):
                causes.append(
                    bad_value(field, quantity, f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
                )
                continue
            value = parse_quantity(quantity)
            if value < 0:
                causes.append(bad_value(field, quantity, "must be greater than or equal to 0"))
            parsed.setdefault(kind, {})[res_name] = value
    for res_name, req in parsed.get("requests", {}).items():
        lim = parsed.get("limits", {}).get(res_name)
        if lim is not None and req > lim:
            causes.append(
                bad_value(
                    f"{path}.resources.requests",
                    (resources.get("requests") or {})[res_name],
                    f"must be less than or equal to {res_name} limit of {(resources.get('limits') or {})[res_name]}",
                )
            )
    for i, env in enumerate(c.get("env") or []):
        if not isinstance(env, dict) or not env.get("name"):
            causes.append(required(f"{path}.env[{i}].name"))


# ------------------------------------------------------------------------------------------ jobs
def _default_job(job: Obj, old: Obj | None) -> None:
    spec = job.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    meta = job["metadata"]
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    # With a podFailurePolicy, Failed is the only allowed replacement policy and the default
    # (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-replacement-policy).
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    uid = (old or job)["metadata"].get("uid", "")
    if old is None and not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {JOB_UID_LABELS[0]: uid}}
        template = spec.setdefault("template", {})
        if isinstance(template, dict):
            labels = template.setdefault("metadata", {}).setdefault("labels", {})
            for key in JOB_UID_LABELS:
                labels[key] = uid
            for key in JOB_NAME_LABELS:
                labels[key] = meta.get("name", "")
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _default_pod_spec(template["spec"], restart_policy=None)
    job.setdefault("status", {})


def _check_job_spec(spec: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(spec, dict):
        causes.append(required(path))
        return
    for key in ("parallelism", "completions"):
        value = spec.get(key, 1)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(bad_value(f"{path}.{key}", value, "must be greater than or equal to 0"))
        elif value is not None and value > 1:
            causes.append(bad_value(f"{path}.{key}", value, "the gokart-k8s local cluster runs one pod per Job; use 1"))
    if spec.get("completionMode", "NonIndexed") not in ("NonIndexed",):
        causes.append(
            bad_value(
                f"{path}.completionMode",
                spec.get("completionMode"),
                "the gokart-k8s local cluster emulates only NonIndexed Jobs",
            )
        )
    for key, minimum in (("backoffLimit", 0), ("activeDeadlineSeconds", 1), ("ttlSecondsAfterFinished", 0)):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < minimum):
            word = "greater than or equal to 0" if minimum == 0 else "greater than 0"
            causes.append(bad_value(f"{path}.{key}", value, f"must be {word}"))
    template = spec.get("template")
    if not isinstance(template, dict):
        causes.append(required(f"{path}.template"))
        return
    pod_spec = template.get("spec")
    _check_pod_spec(pod_spec, f"{path}.template.spec", causes, job=True)
    policy = spec.get("podFailurePolicy")
    if policy is not None:
        restart = (pod_spec or {}).get("restartPolicy") if isinstance(pod_spec, dict) else None
        if restart == "OnFailure":
            # (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy)
            causes.append(
                bad_value(
                    f"{path}.template.spec.restartPolicy",
                    restart,
                    'only "Never" is supported when podFailurePolicy is specified',
                )
            )
        _check_pod_failure_policy(policy, f"{path}.podFailurePolicy", causes)
        replacement = spec.get("podReplacementPolicy")
        if replacement not in (None, "Failed"):
            causes.append(
                Cause(
                    f"{path}.podReplacementPolicy",
                    f'Unsupported value: "{replacement}": supported values: "Failed"',
                    "FieldValueNotSupported",
                )
            )
    elif spec.get("podReplacementPolicy") not in (None, "Failed", "TerminatingOrFailed"):
        causes.append(
            unsupported(
                f"{path}.podReplacementPolicy", spec.get("podReplacementPolicy"), ("Failed", "TerminatingOrFailed")
            )
        )


def _check_pod_failure_policy(policy: Any, path: str, causes: list[Cause]) -> None:
    rules = policy.get("rules") if isinstance(policy, dict) else None
    if not isinstance(rules, list):
        causes.append(required(f"{path}.rules"))
        return
    if len(rules) > 20:
        causes.append(
            Cause(f"{path}.rules", f"Too many: {len(rules)}: must have at most 20 items", "FieldValueTooMany")
        )
    for i, rule in enumerate(rules):
        rp = f"{path}.rules[{i}]"
        action = rule.get("action")
        if action not in ("Ignore", "FailJob", "Count"):
            # FailIndex needs backoffLimitPerIndex, which only Indexed Jobs have.
            causes.append(unsupported(f"{rp}.action", action, ("Count", "FailJob", "Ignore")))
        on_codes, on_conditions = rule.get("onExitCodes"), rule.get("onPodConditions")
        if on_codes is not None and on_conditions is not None:
            causes.append(bad_value(rp, "", "specifying both OnExitCodes and OnPodConditions is not supported"))
        elif on_codes is None and on_conditions is None:
            causes.append(bad_value(rp, "", "specifying one of OnExitCodes and OnPodConditions is required"))
        if on_codes is not None:
            op = on_codes.get("operator")
            values = on_codes.get("values") or []
            if op not in ("In", "NotIn"):
                causes.append(unsupported(f"{rp}.onExitCodes.operator", op, ("In", "NotIn")))
            if not values or len(values) > 255:
                causes.append(
                    bad_value(f"{rp}.onExitCodes.values", values, "must have at least 1 and at most 255 items")
                )
            for j, v in enumerate(values):
                if op == "In" and v == 0:
                    causes.append(bad_value(f"{rp}.onExitCodes.values[{j}]", v, "must not be 0 for the In operator"))
                if j and v <= values[j - 1]:
                    causes.append(
                        bad_value(f"{rp}.onExitCodes.values[{j}]", v, "must be ordered and without duplicates")
                    )
        for j, pattern in enumerate(on_conditions or []):
            status = pattern.setdefault("status", "True")
            if status not in ("True", "False", "Unknown"):
                causes.append(unsupported(f"{rp}.onPodConditions[{j}].status", status, ("True", "False", "Unknown")))
            if not pattern.get("type"):
                causes.append(required(f"{rp}.onPodConditions[{j}].type"))


# ------------------------------------------------------------------------------------------ cronjobs
def _check_cronjob(obj: Obj, causes: list[Cause]) -> None:
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        causes.append(required("spec"))
        return
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    obj.setdefault("status", {})
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        try:
            cron.parse(schedule)
        except cron.CronError as exc:
            causes.append(bad_value("spec.schedule", schedule, str(exc)))
    tz = spec.get("timeZone")
    if tz is not None:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            causes.append(bad_value("spec.timeZone", tz, f"unknown time zone {tz}"))
    policy = spec.get("concurrencyPolicy")
    if policy not in ("Allow", "Forbid", "Replace"):
        causes.append(unsupported("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace")))
    deadline = spec.get("startingDeadlineSeconds")
    if deadline is not None and (not isinstance(deadline, int) or deadline < 0):
        causes.append(bad_value("spec.startingDeadlineSeconds", deadline, "must be greater than or equal to 0"))
    template = spec.get("jobTemplate")
    if not isinstance(template, dict):
        causes.append(required("spec.jobTemplate"))
        return
    job_spec = template.get("spec")
    if isinstance(job_spec, dict) and isinstance(job_spec.get("template"), dict):
        if isinstance(job_spec["template"].get("spec"), dict):
            _default_pod_spec(job_spec["template"]["spec"], restart_policy=None)
    _check_job_spec(job_spec, "spec.jobTemplate.spec", causes)


def resource_names() -> tuple[str, ...]:
    """The resources the scheduler accounts for."""
    return _RESOURCE_NAMES
