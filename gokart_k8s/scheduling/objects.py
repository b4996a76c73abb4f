"""The objects of a schedule: a CronJob whose pod is the driver, and the driver's least-privilege account.

``gokart-k8s schedule TASK [luigi params] --cron "0 3 * * *" --timezone Asia/Tokyo`` builds four
objects, as plain dicts that ``kubectl apply -f`` accepts (:func:`build_objects`):

* a ``ServiceAccount`` for the driver (optionally annotated for GKE Workload Identity);
* a ``Role`` granting exactly what the driver does in its namespace -- jobs
  create/get/list/watch/delete, pods get/list/watch, pods/log get, events list -- and nothing
  cluster-wide, and the ``RoleBinding`` that gives it to the service account;
* a ``CronJob`` whose pod runs the driver, ``gokart-k8s run TASK [params] --backend kubernetes``,
  which submits every step as its own Job and waits for them.

**The driver pod is cheap to keep and costly to lose.** It is small (250m, 512Mi), runs on
on-demand capacity as a *protected* step would on the platform in use (the platform profile places
it), and carries both "do not disrupt" annotations, ``cluster-autoscaler.kubernetes.io/safe-to-evict:
"false"`` and ``karpenter.sh/do-not-disrupt: "true"``, whatever the platform, so a cluster that
runs either autoscaler leaves it alone. Involuntary disruptions still happen (a node dies, a
preemption): the Job then starts a new pod -- ``backoffLimit`` > 0 and a ``podFailurePolicy`` that
``Ignore``\\ s pods with the ``DisruptionTarget`` condition, so evictions never spend that budget
(https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy). It runs as the
same uid and gid as step pods (:data:`gokart_k8s.manifests.DEFAULT_RUN_AS_USER`), so one image
works for both.

**The replacement driver continues the same run.** Step Job names are deterministic
(:func:`gokart_k8s.conventions.job_name`), so the new driver *adopts* the step Jobs still running
instead of starting them again, and finished steps come from the cache. The run id and the
scheduled time come from the driver Job's name (:mod:`gokart_k8s.scheduling.dates`); that is also
why a CronJob name may have at most 52 characters (63 minus the 11 the controller appends).

**Secrets only by reference.** ``env`` values are written into the CronJob in plain text, readable by
anyone who may read CronJobs in the namespace (and by whoever reads the YAML in git); ``secret_env``
names a key of a Secret instead (``secretKeyRef``), and the driver passes the same references on to
every step pod (setting ``secret_env``, :mod:`gokart_k8s.settings`), never the values.

Validation (:func:`check_schedule`) finds *every* problem before anything is created.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gokart_k8s.conventions import LABEL_MANAGED_BY, MANAGED_BY, dns_label, is_dns1123_label, label_value
from gokart_k8s.errors import ConfigurationError
from gokart_k8s.scheduling.dates import placeholder_problems, timezone_problem
from gokart_k8s.scheduling.names import (
    ANNOTATION_SCHEDULED_TIME,
    ANNOTATION_TASK,
    DO_NOT_DISRUPT,
    ENV_JOB_NAME,
    ENV_SCHEDULE_NAME,
    ENV_SCHEDULE_TIMEZONE,
    ENV_SCHEDULED_TIME,
    GKE_GSA_ANNOTATION,
    JOB_NAME_LABEL,
    LABEL_ROLE,
    LABEL_SCHEDULE,
    MANUAL_ANNOTATION,
    SAFE_TO_EVICT,
    driver_account,
)
from gokart_k8s.settings import SecretRef, format_secret_refs

__all__ = [
    "DRIVER_ROLE_RULES",
    "ScheduleConfig",
    "build_cronjob",
    "build_objects",
    "check_schedule",
    "credential_warnings",
    "default_name",
    "job_from_cronjob",
    "validate_schedule",
]

DRIVER_CONTAINER = "driver"
DRIVER_CPU = "250m"
DRIVER_MEMORY = "512Mi"

#: The CronJob controller appends ``-`` and up to 10 digits of unix minutes to the CronJob's name,
#: and a Job name is a DNS-1123 label of at most 63 characters
#: (https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#writing-a-cronjob-spec).
MAX_NAME_LENGTH = 52

#: Exit status of ``gokart-k8s`` for bad input (cli.EXIT_BAD_INPUT): a new driver would fail again.
_EXIT_BAD_INPUT = 2
#: 128 + SIGTERM: the driver was stopped by a signal (an eviction that set no DisruptionTarget).
_EXIT_SIGTERM = 143

#: Exactly what the driver does in its namespace: submit, watch, adopt and delete step Jobs, watch
#: their pods, read their logs, and list events to explain a pod that cannot be scheduled.
DRIVER_ROLE_RULES: tuple[dict[str, Any], ...] = (
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
)

_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GSA_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]@[-a-z0-9.]+\.iam\.gserviceaccount\.com$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


@dataclass(frozen=True)
class ScheduleConfig:
    """One scheduled pipeline: everything :func:`build_objects` needs, as plain values.

    Attributes:
        name: the CronJob's name (DNS-1123, at most 52 characters).
        task_argv: ``TASK [luigi params]`` as luigi's command line names them; placeholders such as
            ``{scheduled_date}`` stay literal.
        cron: the schedule, 5 fields or a macro such as ``@daily``.
        timezone: tz database name of the schedule (``Asia/Tokyo``); None means UTC.
        image: the image of the driver and of every step; it must hold the pipeline's code.
        namespace: where the CronJob, its driver and every step Job run.
        workspace: the cache, a ``gs://`` URL (a local directory would vanish with the pod).
        platform: the platform profile of the steps (settings.platform).
        step_service_account: service account of step pods; None uses the driver's (steps never
            mount its token, so they cannot use its Role; they only share its cloud identity).
        gcp_service_account: GSA e-mail for the Workload Identity annotation of the driver's account.
        starting_deadline_seconds: how late a missed start may still run; later ones are skipped.
        successful_jobs_history_limit / failed_jobs_history_limit: finished runs kept for ``runs``.
        backoff_limit: driver crashes (not evictions) a run survives before it fails.
        env: extra environment of the driver (e.g. ``LUIGI_CONFIG_PATH``), written into the CronJob in
            plain text: never a credential (see :func:`credential_warnings`).
        secret_env: environment of the driver *and of every step pod* read from Secrets
            (``secretKeyRef``); only the Secret's name and key are written.
        suspend: create the CronJob suspended.
    """

    name: str
    task_argv: tuple[str, ...]
    cron: str
    image: str | None
    workspace: str
    timezone: str | None = None
    namespace: str = "default"
    platform: str = "plain"
    step_service_account: str | None = None
    gcp_service_account: str | None = None
    starting_deadline_seconds: int = 3600
    successful_jobs_history_limit: int = 3
    failed_jobs_history_limit: int = 3
    backoff_limit: int = 3
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[SecretRef, ...] = ()
    suspend: bool = False

    @property
    def service_account(self) -> str:
        """The driver's service account (and Role and RoleBinding) name."""
        return driver_account(self.name)


# --- validation ----------------------------------------------------------------------------------


def cron_problem(expression: str) -> str | None:
    """Why the CronJob controller would refuse ``expression``, or None if it parses.

    The parsing is the controller's (robfig/cron standard parser), as the local cluster emulates it.
    """
    from gokart_k8s.scheduling.cron import CronError, parse

    try:
        parse(expression)
    except CronError as exc:
        return (
            f"--cron {expression!r} is not a cron schedule ({exc}). Use 5 fields, minute hour day-of-month "
            f"month day-of-week (e.g. '0 3 * * *' for 03:00 every day; ranges 1-5, steps */15, lists 1,15, "
            f"names MON or JAN), or one of {', '.join(_MACROS)}; the time zone goes in --timezone."
        )
    return None


def validate_schedule(config: ScheduleConfig) -> list[str]:
    """Every problem of ``config`` (empty when it can be created), each saying what to change."""
    problems: list[str] = []
    if not config.task_argv or all(a.startswith("-") for a in config.task_argv):
        problems.append("no task given: name the pipeline's root task, e.g. 'gokart-k8s schedule my.module.Report'.")
    name = config.name
    if len(name) > MAX_NAME_LENGTH:
        problems.append(
            f"schedule name {name!r} has {len(name)} characters; a CronJob name may have at most "
            f"{MAX_NAME_LENGTH} because the controller appends 11 to name its Jobs. Pass a shorter --name."
        )
    if not is_dns1123_label(name[:63]):
        problems.append(
            f"schedule name {name!r} is not a DNS-1123 label (lower-case letters, digits and '-', starting and "
            f"ending with a letter or digit). Pass --name {dns_label(name, max_length=MAX_NAME_LENGTH)}."
        )
    if config.namespace and not is_dns1123_label(config.namespace):
        problems.append(f"namespace {config.namespace!r} is not a DNS-1123 label; set namespace in [gokart_k8s].")
    problem = cron_problem(config.cron)
    if problem:
        problems.append(problem)
    problem = timezone_problem(config.timezone)
    if problem:
        problems.append(problem)
    if not config.image:
        problems.append(
            "no image: the driver and every step run in a container image that holds the pipeline's code and "
            "gokart_k8s. Pass --image REGISTRY/IMAGE:TAG or set image in [gokart_k8s] (GOKART_K8S_IMAGE)."
        )
    if not config.workspace.startswith("gs://"):
        problems.append(
            f"the cache (workspace_directory) is {config.workspace!r}, a directory inside the driver's pod that "
            "vanishes with it, so steps could neither share outputs nor resume. Set [TaskOnKart] "
            "workspace_directory = gs://BUCKET/PATH/ in luigi.cfg."
        )
    if config.gcp_service_account is not None and not _GSA_RE.match(config.gcp_service_account):
        problems.append(
            f"--gcp-service-account {config.gcp_service_account!r} is not a Google service account e-mail; it looks "
            "like NAME@PROJECT_ID.iam.gserviceaccount.com."
        )
    if config.starting_deadline_seconds < 10:
        problems.append(
            f"--starting-deadline {config.starting_deadline_seconds} is below 10 seconds; the CronJob controller "
            "checks every 10 s, so the pipeline might never start. Use 60 or more."
        )
    for key, count in (
        ("--successful-history", config.successful_jobs_history_limit),
        ("--failed-history", config.failed_jobs_history_limit),
        ("--backoff-limit", config.backoff_limit),
    ):
        if count < 0:
            problems.append(f"{key} must be zero or more, got {count}.")
    for env_name in config.env:
        if not _ENV_NAME_RE.match(env_name):
            problems.append(f"--env {env_name!r} is not a valid environment variable name.")
    for ref in config.secret_env:
        if ref.var in config.env:
            problems.append(
                f"{ref.var} is given both as --env (a value in plain text) and as --secret-env ({ref}); keep only "
                f"--secret-env {ref}."
            )
    problems += placeholder_problems(config.task_argv)
    return problems


#: Parts of a variable name that say it holds a credential.
_CREDENTIAL_NAME_PARTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL")
#: Values that are credentials whatever their name: a PEM block, a service-account key file's JSON,
#: an AWS access key id, or a long run of base64/hex characters such as an API token.
_CREDENTIAL_VALUE_RES = (
    re.compile(r"-----BEGIN [A-Z ]*(PRIVATE KEY|CERTIFICATE)-----"),
    re.compile(r'"(private_key|private_key_id|client_secret|refresh_token)"\s*:'),
    re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"^(?=[A-Za-z0-9+/_=-]*[0-9])(?=[A-Za-z0-9+/_=-]*[A-Za-z])[A-Za-z0-9+/_=-]{32,}$"),
)


def credential_warnings(env: Mapping[str, str]) -> list[str]:
    """One warning per ``env`` value that looks like a credential (never quoting the value).

    ``env`` is written into the CronJob in plain text, where anyone who may read CronJobs in the
    namespace -- and whoever reads the YAML kept in git -- reads it too; a Secret is readable only
    by those granted it (https://kubernetes.io/docs/concepts/security/secrets-good-practices/).
    A name that says credential (``GCS_CREDENTIAL``, ``API_TOKEN``) is enough, unless its value is
    an absolute path (``GOOGLE_APPLICATION_CREDENTIALS=/var/secrets/key.json`` names a file, which
    is not the secret itself).
    """
    warnings = []
    for name, value in env.items():
        named = any(part in name.upper() for part in _CREDENTIAL_NAME_PARTS) and not value.startswith("/")
        if named or any(pattern.search(value.strip()) for pattern in _CREDENTIAL_VALUE_RES):
            warnings.append(
                f"--env {name}=... looks like a credential and would be written into the CronJob in plain text, "
                f"readable by anyone who can read CronJobs in the namespace (or the YAML). Put it in a Secret "
                f"and pass it by reference: kubectl create secret generic SECRET --from-literal=KEY=... , then "
                f"--secret-env {name}=SECRET/KEY."
            )
    return warnings


def check_schedule(config: ScheduleConfig) -> None:
    """Raise one :class:`ConfigurationError` listing every problem of ``config``; nothing is created."""
    problems = validate_schedule(config)
    if problems:
        count = len(problems)
        head = f"{count} problem{'s' if count != 1 else ''} in schedule {config.name!r}; nothing was created:"
        raise ConfigurationError("\n".join([head, *(f"  - {p}" for p in problems)]))


# --- objects ------------------------------------------------------------------------------------


def _labels(config: ScheduleConfig) -> dict[str, str]:
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_SCHEDULE: label_value(config.name)}


def _metadata(config: ScheduleConfig, name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": config.namespace, "labels": _labels(config), **extra}


def driver_placement(platform: str) -> tuple[dict[str, Any], dict[str, str]]:
    """``(pod spec fields, annotations)`` of the driver: a small *protected* step on ``platform``.

    The platform profile places it (on-demand pool, node selector, tolerations); both "do not
    disrupt" annotations are added on every platform
    (https://github.com/kubernetes/autoscaler/blob/master/cluster-autoscaler/FAQ.md#what-types-of-pods-can-prevent-ca-from-removing-a-node,
    https://karpenter.sh/docs/concepts/disruption/#pod-level-controls).
    """
    from gokart_k8s.eviction import Eviction
    from gokart_k8s.platforms import get_profile
    from gokart_k8s.resources import ResourceClass
    from gokart_k8s.settings import Settings
    from gokart_k8s.steps import StepSpec

    spec = StepSpec(
        family="ScheduleDriver",
        module=__name__,
        unique_id="driver",
        task_id="ScheduleDriver",
        params={},
        resource_class=ResourceClass(cpu=DRIVER_CPU, memory=DRIVER_MEMORY, spot=False, name="driver"),
        eviction=Eviction.PROTECT,
    )
    placement = get_profile(Settings(platform=platform)).place(spec, on_demand=True)
    pod: dict[str, Any] = {}
    if placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        pod["tolerations"] = [dict(t) for t in placement.tolerations]
    if placement.affinity:
        pod["affinity"] = copy.deepcopy(placement.affinity)
    annotations = {**placement.annotations, SAFE_TO_EVICT: "false", DO_NOT_DISRUPT: "true"}
    return pod, annotations


def _driver_env(config: ScheduleConfig) -> list[dict[str, Any]]:
    plain = {
        ENV_SCHEDULE_NAME: config.name,
        ENV_SCHEDULE_TIMEZONE: config.timezone or "UTC",
        # Settings of the driver (gokart_k8s.settings reads GOKART_K8S_<FIELD>), so the image's
        # luigi.cfg cannot send steps elsewhere than this schedule says.
        "GOKART_K8S_IMAGE": config.image or "",
        "GOKART_K8S_PLATFORM": config.platform,
        "GOKART_K8S_SERVICE_ACCOUNT": config.step_service_account or config.service_account,
        **dict(config.env),
    }
    if config.secret_env:
        # The driver gives its step pods the same references (setting secret_env), never values.
        plain["GOKART_K8S_SECRET_ENV"] = format_secret_refs(config.secret_env)
    env: list[dict[str, Any]] = [
        # The downward API: the Job's name is the same for every pod the Job starts
        # (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/#downwardapi-fieldRef).
        {"name": ENV_JOB_NAME, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}}},
        {"name": "GOKART_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(plain.items())]
    env += [
        {"name": ref.var, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
        for ref in sorted(config.secret_env, key=lambda ref: ref.var)
    ]
    return env


def driver_argv(task_argv: Sequence[str], workspace: str) -> list[str]:
    """The driver's command: ``gokart-k8s run TASK [params] --backend kubernetes --workspace CACHE``
    (placeholders literal). The cache is on the command line so the image's luigi.cfg need not name it."""
    return ["gokart-k8s", "run", *task_argv, "--backend", "kubernetes", "--workspace", workspace]


def _pod_failure_policy() -> dict[str, Any]:
    return {
        "rules": [
            # Evicted, preempted, drained, node shut down: start a new driver without spending
            # backoffLimit; it adopts the run's step Jobs.
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            # Stopped by SIGTERM on a path that sets no DisruptionTarget: same.
            {
                "action": "Ignore",
                "onExitCodes": {"containerName": DRIVER_CONTAINER, "operator": "In", "values": [_EXIT_SIGTERM]},
            },
            # Bad input (unknown task, plan refused): a new driver would fail the same way.
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": DRIVER_CONTAINER, "operator": "In", "values": [_EXIT_BAD_INPUT]},
            },
        ]
    }


def build_cronjob(config: ScheduleConfig) -> dict[str, Any]:
    """The CronJob whose pod is the driver (see the module docstring)."""
    from gokart_k8s.manifests import DEFAULT_RUN_AS_USER

    pod_fields, annotations = driver_placement(config.platform)
    container: dict[str, Any] = {
        "name": DRIVER_CONTAINER,
        "image": config.image or "",
        "command": driver_argv(config.task_argv, config.workspace),
        "env": _driver_env(config),
        "resources": {
            "requests": {"cpu": DRIVER_CPU, "memory": DRIVER_MEMORY},
            "limits": {"memory": DRIVER_MEMORY},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec: dict[str, Any] = {
        # podFailurePolicy needs restartPolicy Never: a new pod, not a restarted container.
        "restartPolicy": "Never",
        "serviceAccountName": config.service_account,
        "terminationGracePeriodSeconds": 30,
        # The uid and gid of step pods: one image, one user, whichever of the two it runs.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": DEFAULT_RUN_AS_USER,
            "runAsGroup": DEFAULT_RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **pod_fields,
        "containers": [container],
    }
    labels = {**_labels(config), LABEL_ROLE: "driver"}
    job_spec: dict[str, Any] = {
        "backoffLimit": config.backoff_limit,
        "podFailurePolicy": _pod_failure_policy(),
        # With a podFailurePolicy, the replacement waits until the old pod has fully stopped, so
        # two drivers of one run never act at once.
        "podReplacementPolicy": "Failed",
        "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec},
    }
    spec: dict[str, Any] = {
        "schedule": config.cron,
        # Explicit, so the schedule does not follow the kube-controller-manager's zone.
        "timeZone": config.timezone or "Etc/UTC",
        # A run still going when the next is due: skip the next rather than compete with it for
        # the same step Jobs and cache.
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": config.starting_deadline_seconds,
        "successfulJobsHistoryLimit": config.successful_jobs_history_limit,
        "failedJobsHistoryLimit": config.failed_jobs_history_limit,
        "suspend": config.suspend,
        "jobTemplate": {"metadata": {"labels": labels}, "spec": job_spec},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": _metadata(config, config.name, annotations={ANNOTATION_TASK: " ".join(config.task_argv)}),
        "spec": spec,
    }


def build_objects(config: ScheduleConfig) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding and CronJob, in the order they must be created."""
    sa_meta = _metadata(config, config.service_account)
    if config.gcp_service_account:
        # GKE Workload Identity: the pod acts as this Google service account, which also needs
        # roles/iam.workloadIdentityUser granted to the Kubernetes account
        # (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity#kubernetes-sa-to-iam).
        sa_meta["annotations"] = {GKE_GSA_ANNOTATION: config.gcp_service_account}
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": sa_meta}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(config, config.service_account),
        "rules": [copy.deepcopy(rule) for rule in DRIVER_ROLE_RULES],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(config, config.service_account),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": config.service_account},
        "subjects": [{"kind": "ServiceAccount", "name": config.service_account, "namespace": config.namespace}],
    }
    return [service_account, role, binding, build_cronjob(config)]


def default_name(task_argv: Sequence[str]) -> str:
    """A schedule name from the task: ``examples.pipeline.Report`` -> ``report``."""
    skip = False
    for arg in task_argv:
        if skip:
            skip = False
            continue
        if arg == "--module":
            skip = True
            continue
        if not arg.startswith("-"):
            return dns_label(arg.rpartition(".")[2], max_length=MAX_NAME_LENGTH)
    return "pipeline"


# --- triggered Jobs -------------------------------------------------------------------------------


def trigger_job_name(cronjob: str) -> str:
    """A fresh name for a manual run: ``<cronjob>-m<8 hex>`` (at most 63 characters)."""
    return f"{cronjob}-m{secrets.token_hex(4)}"


def job_from_cronjob(cronjob: Mapping[str, Any], *, name: str, scheduled_time: datetime) -> dict[str, Any]:
    """A Job from the CronJob's jobTemplate, as ``kubectl create job --from=cronjob/NAME`` makes it
    (annotation ``cronjob.kubernetes.io/instantiate: manual`` and an ownerReference to the CronJob,
    so deleting the schedule deletes it), with the scheduled time set in the driver's env."""
    meta = cronjob.get("metadata") or {}
    template = copy.deepcopy((cronjob.get("spec") or {}).get("jobTemplate") or {})
    tmeta = template.get("metadata") or {}
    job_spec = template.get("spec") or {}
    stamp = scheduled_time.isoformat()
    for container in ((job_spec.get("template") or {}).get("spec") or {}).get("containers") or []:
        env = [e for e in container.get("env") or [] if e.get("name") != ENV_SCHEDULED_TIME]
        env.append({"name": ENV_SCHEDULED_TIME, "value": stamp})
        container["env"] = env
    owner: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": meta.get("namespace", "default"),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": {
                **dict(tmeta.get("annotations") or {}),
                MANUAL_ANNOTATION: "manual",
                ANNOTATION_SCHEDULED_TIME: stamp,
            },
            "ownerReferences": [owner],
        },
        "spec": job_spec,
    }
