"""Job manifests: one ``batch/v1`` Job per step, as a plain dict that ``kubectl apply -f`` accepts.

:func:`build_job_manifest` is pure: the same step, placement, settings, run id, image and
environment always give the same dict, so rendering is deterministic and the driver can
resubmit a step under the same name (409 AlreadyExists finds the existing Job).

What the Job says, and why:

* ``restartPolicy: Never`` and a ``podFailurePolicy`` (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy),
  rules in order, first match wins:

  1. ``Ignore`` pods with condition ``DisruptionTarget`` -- evicted, preempted, drained, node shut
     down: retry without spending ``backoffLimit``, because the step resumes from its cache;
  2. ``Ignore`` exit code 143 from container ``step`` -- the in-pod command exits 143 only after
     SIGTERM, i.e. an eviction on a platform or path that sets no ``DisruptionTarget``;
  3. ``FailJob`` on exit codes 42 and 43 -- the step's own code raised, or the image's code
     computes another unique id: retrying cannot help.

  Anything else (OOMKilled 137, a crash) counts toward ``backoffLimit``. ``podFailurePolicy``
  needs ``restartPolicy: Never``.
* ``podReplacementPolicy: Failed`` -- the only value allowed with a podFailurePolicy: a replacement
  starts only once the old pod has fully stopped, so two copies of a step never write at once
  (beta from Kubernetes 1.29; omitted for older target versions).
* ``activeDeadlineSeconds`` from the step's ``max_runtime`` (all attempts together), and
  ``ttlSecondsAfterFinished`` so finished Jobs do not pile up.
* A restrictive security context: non-root, no privilege escalation, all capabilities dropped,
  the runtime's default seccomp profile
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted).
  The root filesystem stays *writable*: gokart writes temporary files (``local_temporary_directory``,
  ``./resources/tmp`` by default) before uploading them, and the alternative, an ``emptyDir``
  volume, would stop the cluster autoscaler from removing the node of a tolerant step
  ("pods with local storage", https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md#what-types-of-pods-can-prevent-ca-from-removing-a-node).
  The image's working directory must be writable by ``run_as_user`` (1000 by default).
* ``automountServiceAccountToken: false``: a step never calls the Kubernetes API. GKE Workload
  Identity answers through the node's metadata server and EKS IRSA injects its own projected
  token, so neither should need the automounted one (verify on a new cluster: a GCS 403 in the
  first step points here).
* Secrets only by reference (``secretKeyRef``), never their values.
* ``terminationMessagePath: /dev/termination-log`` (the default, set explicitly) with
  ``terminationMessagePolicy: FallbackToLogsOnError``, and ``GOKART_K8S_TERMINATION_MESSAGE_PATH``
  naming that file: the step supervisor writes its log (or its end) there, so the driver can show a
  short step's log from the pod's status without a log request; if the supervisor itself crashed,
  the kubelet puts the log's last lines there instead
  (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/,
  :mod:`gokart_k8s.supervision.termination_log`).

:func:`check_manifest` checks what ``kubernetes-validate`` does not: quantity spelling, DNS-1123
names and label syntax.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gokart_k8s.conventions import (
    DETERMINISTIC_EXIT_CODES,
    EXIT_EVICTED,
    LABEL_EVICTION,
    LABEL_IDENTITY,
    LABEL_MANAGED_BY,
    LABEL_PREFIX,
    LABEL_RESOURCE_CLASS,
    LABEL_RUN_ID,
    LABEL_STEP,
    LABEL_UNIQUE_ID,
    MANAGED_BY,
    is_dns1123_label,
    is_label_value,
    job_name,
    label_value,
)
from gokart_k8s.entrypoint import step_argv
from gokart_k8s.errors import QuantityError
from gokart_k8s.placement import Placement
from gokart_k8s.resources import parse_quantity
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec
from gokart_k8s.supervision.termination_log import DEFAULT_MESSAGE_PATH, MESSAGE_PATH_ENV
from gokart_k8s.termination import BUDGET_ENV

CONTAINER_NAME = "step"

# Annotations hold what labels cannot (labels are at most 63 characters of a restricted set).
ANNOTATION_UNIQUE_ID = f"{LABEL_PREFIX}/unique-id"
ANNOTATION_TASK_ID = f"{LABEL_PREFIX}/task-id"
ANNOTATION_MODULE = f"{LABEL_PREFIX}/module"
ANNOTATION_PARAMS_SHA256 = f"{LABEL_PREFIX}/params-sha256"
ANNOTATION_PLACEMENT = f"{LABEL_PREFIX}/placement"

#: The oldest Kubernetes version the manifests target by default; podReplacementPolicy is beta
#: (on by default) from 1.29 (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-replacement-policy).
DEFAULT_KUBERNETES_VERSION = "1.29"
_POD_REPLACEMENT_POLICY_SINCE = (1, 29)

DEFAULT_RUN_AS_USER = 1000


def _version(text: str) -> tuple[int, int]:
    match = re.match(r"^v?(\d+)\.(\d+)", text)
    if not match:
        raise ValueError(f"kubernetes_version must look like '1.29' or '1.33.0', got {text!r}")
    return int(match[1]), int(match[2])


def step_labels(spec: StepSpec, run_id: str, identity: str = "") -> dict[str, str]:
    """The labels of a step's Job and pod, each a valid label value."""
    labels = {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_RUN_ID: label_value(run_id),
        LABEL_STEP: label_value(spec.family),
        LABEL_UNIQUE_ID: label_value(spec.unique_id),
        LABEL_RESOURCE_CLASS: label_value(spec.resource_class.name or "one-off"),
        LABEL_EVICTION: spec.eviction.value,
    }
    if identity:
        labels[LABEL_IDENTITY] = identity
    return labels


def job_selector(run_id: str | None = None, *, identity: str | None = None) -> str:
    """Label selector of gokart_k8s Jobs (and their pods), optionally of one run or one identity only."""
    selector = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
    if run_id is not None:
        selector += f",{LABEL_RUN_ID}={label_value(run_id)}"
    if identity is not None:
        selector += f",{LABEL_IDENTITY}={identity}"
    return selector


def pod_failure_policy() -> dict[str, Any]:
    """The Job's podFailurePolicy (see the module docstring for the order of the rules)."""
    return {
        "rules": [
            {
                "action": "Ignore",
                # status is optional in the API but required by older published schemas.
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "Ignore",
                "onExitCodes": {"containerName": CONTAINER_NAME, "operator": "In", "values": [EXIT_EVICTED]},
            },
            {
                "action": "FailJob",
                # values must be sorted and unique.
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": sorted(set(DETERMINISTIC_EXIT_CODES)),
                },
            },
        ]
    }


def build_job_manifest(
    spec: StepSpec,
    placement: Placement,
    settings: Settings,
    *,
    run_id: str,
    image: str,
    env: Mapping[str, str],
    name: str | None = None,
    secret_env: Mapping[str, tuple[str, str]] | None = None,
    run_as_user: int | None = DEFAULT_RUN_AS_USER,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    identity: str = "",
) -> dict[str, Any]:
    """The Job that runs ``spec`` with ``placement`` (see the module docstring).

    Args:
        name: the Job name; defaults to :func:`gokart_k8s.conventions.job_name`. The driver passes
            its own for the on-demand fallback (e.g. with an ``-od`` suffix).
        env: plain environment variables of the step, by name.
        secret_env: environment variables read from Secrets: ``{VAR: (secret name, key)}``; None
            takes them from setting ``secret_env``.
        run_as_user: the uid of the step; ``None`` keeps the image's ``USER`` (which must then be
            a numeric non-root uid, or the kubelet refuses to start the container).
        kubernetes_version: the oldest cluster version the manifest must suit.
        identity: :func:`gokart_k8s.conventions.step_identity` of the image and env (label and name).
    """
    labels = step_labels(spec, run_id, identity)
    pod_labels = {**placement.labels, **labels}
    job_annotations = {
        ANNOTATION_UNIQUE_ID: spec.unique_id,
        ANNOTATION_TASK_ID: spec.task_id,
        ANNOTATION_MODULE: spec.module,
        ANNOTATION_PARAMS_SHA256: hashlib.sha256(spec.params_json().encode()).hexdigest(),
        ANNOTATION_PLACEMENT: placement.describe(),
    }
    # The SIGTERM budget belongs to the Job like its grace period: every path that makes one
    # (driver, render, schedule) gives the pod the configured value, not the in-pod default.
    env = {BUDGET_ENV: str(settings.termination_budget_seconds), MESSAGE_PATH_ENV: DEFAULT_MESSAGE_PATH, **env}
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    if secret_env is None:
        # The setting: the same references for every step, and for a scheduled driver's steps the
        # ones its schedule was given (GOKART_K8S_SECRET_ENV in the driver pod).
        secret_env = {ref.var: (ref.secret, ref.key) for ref in settings.secret_env}
    env_list += [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for var, (secret, key) in sorted(secret_env.items())
    ]
    resources: dict[str, Any] = {}
    if placement.requests:
        resources["requests"] = dict(placement.requests)
    if placement.limits:
        resources["limits"] = dict(placement.limits)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": step_argv(spec),
        "resources": resources,
        "terminationMessagePath": DEFAULT_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": False,
        },
    }
    if env_list:
        container["env"] = env_list
    pod_security: dict[str, Any] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    if run_as_user is not None:
        pod_security["runAsUser"] = run_as_user
        pod_security["runAsGroup"] = run_as_user
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": settings.termination_grace_seconds,
        "securityContext": pod_security,
        "containers": [container],
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if placement.node_selector:
        pod_spec["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in placement.tolerations]
    if placement.affinity:
        pod_spec["affinity"] = placement.affinity
    template_metadata: dict[str, Any] = {"labels": pod_labels}
    if placement.annotations:
        template_metadata["annotations"] = dict(placement.annotations)
    job_spec: dict[str, Any] = {
        "backoffLimit": settings.backoff_limit,
        "podFailurePolicy": pod_failure_policy(),
    }
    if _version(kubernetes_version) >= _POD_REPLACEMENT_POLICY_SINCE:
        job_spec["podReplacementPolicy"] = "Failed"
    if spec.max_runtime_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.max_runtime_seconds
    job_spec["ttlSecondsAfterFinished"] = settings.ttl_seconds_after_finished
    job_spec["template"] = {"metadata": template_metadata, "spec": pod_spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name or job_name(spec.family, spec.unique_id, identity),
            "namespace": settings.namespace,
            "labels": labels,
            "annotations": job_annotations,
        },
        "spec": job_spec,
    }


# --- checks kubernetes-validate does not make -------------------------------------------------

_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Environment variable names as the API server accepted them up to 1.33
# (https://kubernetes.io/docs/tasks/inject-data-application/define-environment-variable-container/).
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Extended resources (vendor-domain/name) must be whole numbers, and requests equal limits
# (https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#extended-resources).
_NATIVE_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def _key_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label or annotation key, or None
    (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set)."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.match(prefix)):
        return f"prefix {prefix!r} is not a DNS subdomain"
    if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name):
        return f"name {name!r} must be 1-63 characters of [A-Za-z0-9-_.], alphanumeric at both ends"
    return None


def _check_labels(where: str, labels: Mapping[str, Any], *, values: bool) -> Iterable[str]:
    for key, value in labels.items():
        problem = _key_problem(str(key))
        if problem:
            yield f"{where}: key {key!r}: {problem}"
        if not isinstance(value, str):
            yield f"{where}[{key!r}]: value must be a string, got {value!r}"
        elif values and not is_label_value(value):
            yield (
                f"{where}[{key!r}]: {value!r} is not a label value (at most 63 characters of "
                "[A-Za-z0-9-_.], alphanumeric at both ends)"
            )


def _check_resources(where: str, resources: Mapping[str, Any]) -> Iterable[str]:
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("requests", "limits"):
        for resource, quantity in (resources.get(kind) or {}).items():
            try:
                amount = parse_quantity(quantity if isinstance(quantity, (str, int, float)) else repr(quantity))
            except QuantityError as exc:
                yield f"{where}.{kind}[{resource!r}]: {exc}"
                continue
            parsed.setdefault(kind, {})[resource] = amount
            if resource not in _NATIVE_RESOURCES and "/" in resource and amount != amount.to_integral_value():
                yield f"{where}.{kind}[{resource!r}]: extended resources must be whole numbers, got {quantity!r}"
    requests, limits = parsed.get("requests", {}), parsed.get("limits", {})
    for resource, amount in requests.items():
        if resource in limits and amount > limits[resource]:
            yield f"{where}: request of {resource} ({amount}) is above its limit ({limits[resource]})"
        if resource not in _NATIVE_RESOURCES and resource in limits and amount != limits[resource]:
            yield f"{where}: request and limit of extended resource {resource} must be equal"


def check_manifest(manifest: Mapping[str, Any]) -> list[str]:
    """Every problem of a Job manifest that ``kubernetes-validate`` (a JSON schema) cannot see:
    quantity spelling, name lengths and DNS-1123 rules, label and annotation syntax, env names."""
    problems: list[str] = []
    metadata = manifest.get("metadata") or {}
    name = metadata.get("name", "")
    # A Job name is a DNS subdomain, but its pods' names and the batch.kubernetes.io/job-name label
    # are derived from it, so it must be a DNS-1123 label of at most 63 characters
    # (https://kubernetes.io/docs/concepts/workloads/controllers/job/#writing-a-job-spec).
    if not isinstance(name, str) or not is_dns1123_label(name):
        problems.append(
            f"metadata.name {name!r} is not a DNS-1123 label (at most 63 characters of a-z, 0-9 and '-', "
            "alphanumeric at both ends)"
        )
    namespace = metadata.get("namespace")
    if namespace is not None and not is_dns1123_label(str(namespace)):
        problems.append(f"metadata.namespace {namespace!r} is not a DNS-1123 label")
    problems += _check_labels("metadata.labels", metadata.get("labels") or {}, values=True)
    problems += _check_labels("metadata.annotations", metadata.get("annotations") or {}, values=False)
    template = (manifest.get("spec") or {}).get("template") or {}
    tmeta = template.get("metadata") or {}
    problems += _check_labels("spec.template.metadata.labels", tmeta.get("labels") or {}, values=True)
    problems += _check_labels("spec.template.metadata.annotations", tmeta.get("annotations") or {}, values=False)
    pod = template.get("spec") or {}
    problems += _check_labels("spec.template.spec.nodeSelector", pod.get("nodeSelector") or {}, values=True)
    for i, container in enumerate(pod.get("containers") or []):
        where = f"spec.template.spec.containers[{i}]"
        cname = container.get("name", "")
        if not is_dns1123_label(str(cname)):
            problems.append(f"{where}.name {cname!r} is not a DNS-1123 label")
        problems += _check_resources(f"{where}.resources", container.get("resources") or {})
        for var in container.get("env") or []:
            if not _ENV_NAME_RE.match(str(var.get("name", ""))):
                problems.append(
                    f"{where}.env: {var.get('name')!r} is not a valid environment variable name "
                    "(letters, digits, '-', '_', '.'; not starting with a digit)"
                )
    return problems
