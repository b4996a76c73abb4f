"""Scheduled pipelines: a CronJob whose pod is the driver, and the scheduled time as a parameter.

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
(https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy).

**The replacement driver continues the same run.** Step Job names are deterministic
(:func:`gokart_k8s.conventions.job_name`), so the new driver *adopts* the step Jobs still running
instead of starting them again, and finished steps come from the cache. The run id and the
scheduled time must be the same for every pod of one CronJob-created Job, so both are derived from
the Job's name, which the pod reads from its label ``batch.kubernetes.io/job-name`` through the
downward API (env ``GOKART_K8S_JOB_NAME``). The CronJob controller names its Jobs
``<cronjob>-<scheduled time in unix minutes>``
(``getJobName`` in https://github.com/kubernetes/kubernetes/blob/master/pkg/controller/cronjob/utils.go),
so the name *is* the scheduled time; that is also why a CronJob name may have at most 52
characters (63 minus the 11 the controller appends). A Job made with ``gokart-k8s schedule trigger``
carries its scheduled time in env ``GOKART_K8S_SCHEDULED_TIME`` instead.

**Date parameters** bind to the scheduled time with placeholders that the CronJob carries
literally and :func:`resolve_scheduled_argv` replaces when the driver starts:

=========================  =============================================  ==========================
placeholder                 value                                          luigi parameter
=========================  =============================================  ==========================
``{scheduled_date}``        ``2026-11-01`` (in the schedule's time zone)    ``DateParameter``
``{scheduled_time}``        ``2026-11-01T03:00:00+09:00`` (ISO 8601)        ``Parameter``
``{scheduled_datetime}``    ``2026-11-01T030000``                           ``DateSecondParameter``
``{scheduled_time:FMT}``    ``strftime(FMT)``, e.g. ``{scheduled_time:%Y%m}``  any
=========================  =============================================  ==========================

so each run computes its own day, and ``gokart-k8s schedule trigger NAME --date 2026-11-01`` re-runs
a missed day with that day's parameters.

Everything here is pure (objects, validation, date binding, run summaries); the API calls are in
:mod:`gokart_k8s.cluster.schedules`. Validation (:func:`check_schedule`) finds *every* problem
before anything is created.
"""

from __future__ import annotations

import argparse
import copy
import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gokart_k8s.conventions import LABEL_MANAGED_BY, LABEL_PREFIX, MANAGED_BY, dns_label, is_dns1123_label, label_value
from gokart_k8s.errors import ConfigurationError

__all__ = [
    "DRIVER_ROLE_RULES",
    "ENV_JOB_NAME",
    "ENV_SCHEDULED_TIME",
    "ENV_SCHEDULE_NAME",
    "ENV_SCHEDULE_TIMEZONE",
    "RunSummary",
    "ScheduleConfig",
    "build_cronjob",
    "build_objects",
    "check_schedule",
    "job_from_cronjob",
    "register",
    "resolve_scheduled_argv",
    "scheduled_time_for_date",
    "summarize_runs",
    "validate_schedule",
]

# --- names shared by the CronJob, the driver and the CLI ---------------------------------------

#: Env of the driver pod: its Job's name (downward API), from which run id and scheduled time come.
ENV_JOB_NAME = "GOKART_K8S_JOB_NAME"
#: Env of the driver pod: the CronJob's name, to recognise ``<cronjob>-<minutes>`` Job names.
ENV_SCHEDULE_NAME = "GOKART_K8S_SCHEDULE_NAME"
#: Env of the driver pod: the schedule's time zone, in which ``{scheduled_date}`` is computed.
ENV_SCHEDULE_TIMEZONE = "GOKART_K8S_SCHEDULE_TIMEZONE"
#: Env of a triggered Job's pod: the scheduled time (ISO 8601), overriding the Job name.
ENV_SCHEDULED_TIME = "GOKART_K8S_SCHEDULED_TIME"

LABEL_SCHEDULE = f"{LABEL_PREFIX}/schedule"
LABEL_ROLE = f"{LABEL_PREFIX}/role"
ANNOTATION_TASK = f"{LABEL_PREFIX}/task"
ANNOTATION_SCHEDULED_TIME = f"{LABEL_PREFIX}/scheduled-time"
#: The pod label the Job controller sets (1.27+), read by the downward API
#: (https://kubernetes.io/docs/reference/labels-annotations-taints/#batchkubernetesiojob-name).
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
#: What ``kubectl create job --from=cronjob/NAME`` puts on the Job it creates.
MANUAL_ANNOTATION = "cronjob.kubernetes.io/instantiate"
#: Set by the CronJob controller on the Jobs it creates (1.28+).
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
GKE_GSA_ANNOTATION = "iam.gke.io/gcp-service-account"

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

UTC = timezone.utc

_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_PLACEHOLDER_RE = re.compile(r"\{(scheduled_[A-Za-z_]*)(?::([^{}]*))?\}")
_PLACEHOLDERS = ("scheduled_date", "scheduled_time", "scheduled_datetime")
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
        env: extra environment of the driver (e.g. ``LUIGI_CONFIG_PATH``), passed on by name.
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
    suspend: bool = False

    @property
    def service_account(self) -> str:
        """The driver's service account (and Role and RoleBinding) name."""
        return f"{self.name}-driver"


# --- validation ----------------------------------------------------------------------------------


def cron_problem(expression: str) -> str | None:
    """Why the CronJob controller would refuse ``expression``, or None if it parses.

    The parsing is the controller's (robfig/cron standard parser), as the local cluster emulates it.
    """
    from gokart_k8s.localcluster.cron import CronError, parse

    try:
        parse(expression)
    except CronError as exc:
        return (
            f"--cron {expression!r} is not a cron schedule ({exc}). Use 5 fields, minute hour day-of-month "
            f"month day-of-week (e.g. '0 3 * * *' for 03:00 every day; ranges 1-5, steps */15, lists 1,15, "
            f"names MON or JAN), or one of {', '.join(_MACROS)}; the time zone goes in --timezone."
        )
    return None


def _zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or "UTC")


def timezone_problem(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        # An absolute path or '..' would make ZoneInfo read arbitrary files; the API refuses them too.
        if name.startswith("/") or ".." in name:
            raise ValueError(name)
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return (
            f"--timezone {name!r} is not a time zone of the tz database; the CronJob controller would "
            "create no Jobs (event UnknownTimeZone). Use a name such as 'Asia/Tokyo', 'Europe/Berlin' or 'UTC'."
        )
    return None


def placeholder_problems(argv: Sequence[str]) -> list[str]:
    """Placeholders in ``argv`` that :func:`resolve_scheduled_argv` would not know."""
    problems = []
    for arg in argv:
        for match in _PLACEHOLDER_RE.finditer(arg):
            if match[1] not in _PLACEHOLDERS:
                problems.append(
                    f"argument {arg!r} has the unknown placeholder {{{match[1]}}}; known placeholders: "
                    + ", ".join("{" + p + "}" for p in _PLACEHOLDERS)
                    + " and {scheduled_time:STRFTIME}, e.g. {scheduled_time:%Y%m%d}."
                )
    return problems


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
    problems += placeholder_problems(config.task_argv)
    return problems


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
        module="gokart_k8s.schedule",
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
    env: list[dict[str, Any]] = [
        # The downward API: the Job's name is the same for every pod the Job starts
        # (https://kubernetes.io/docs/concepts/workloads/pods/downward-api/#downwardapi-fieldRef).
        {"name": ENV_JOB_NAME, "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}}},
        {"name": "GOKART_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    env += [{"name": k, "value": v} for k, v in sorted(plain.items())]
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
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
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


# --- scheduled time and date binding ------------------------------------------------------------


def _parse_time(text: str, zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def scheduled_time_from(
    environ: Mapping[str, str], *, timezone: str | None = None, job_created: datetime | None = None
) -> datetime | None:
    """The scheduled time of this run, or None when it was not started by a schedule.

    In order: ``GOKART_K8S_SCHEDULED_TIME`` (a triggered Job); the Job name
    ``<schedule>-<unix minutes>`` that the CronJob controller gives; ``job_created`` (a Job made
    by hand, ``kubectl create job --from=cronjob/NAME``), which the caller reads from the API.
    """
    zone = _zone(timezone or environ.get(ENV_SCHEDULE_TIMEZONE))
    explicit = environ.get(ENV_SCHEDULED_TIME)
    if explicit:
        try:
            return _parse_time(explicit, zone).astimezone(zone)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_SCHEDULED_TIME}={explicit!r} is not an ISO 8601 time; use e.g. 2026-11-01T03:00:00+09:00."
            ) from None
    job = environ.get(ENV_JOB_NAME, "")
    schedule = environ.get(ENV_SCHEDULE_NAME, "")
    match = re.fullmatch(rf"{re.escape(schedule)}-(\d{{1,10}})", job) if schedule else None
    if match:
        return datetime.fromtimestamp(int(match[1]) * 60, tz=UTC).astimezone(zone)
    if job_created is not None:
        return job_created.astimezone(zone)
    return None


def _substitute(arg: str, when: datetime) -> str:
    def replace(match: re.Match[str]) -> str:
        name, fmt = match[1], match[2]
        if fmt is not None:
            if name != "scheduled_time":
                raise ConfigurationError(
                    f"argument {arg!r}: a format is only allowed on {{scheduled_time}}, e.g. {{scheduled_time:%Y%m%d}}."
                )
            return when.strftime(fmt)
        if name == "scheduled_date":
            return when.date().isoformat()
        if name == "scheduled_time":
            return when.isoformat()
        if name == "scheduled_datetime":
            return when.strftime("%Y-%m-%dT%H%M%S")
        raise ConfigurationError(placeholder_problems([arg])[0])

    return _PLACEHOLDER_RE.sub(replace, arg)


def resolve_scheduled_argv(
    argv: list[str],
    environ: Mapping[str, str],
    *,
    timezone: str | None,
    job_created: datetime | None = None,
) -> tuple[list[str], str | None]:
    """``(argv with scheduled-time placeholders replaced, run id)`` for ``gokart-k8s run``.

    Call it first thing in ``gokart-k8s run``. The run id is the driver's Job name (env
    ``GOKART_K8S_JOB_NAME``), the same for every pod of the Job, so a replacement driver labels
    and adopts the same step Jobs; it is None outside a scheduled Job (the caller picks one).
    ``timezone`` defaults to env ``GOKART_K8S_SCHEDULE_TIMEZONE``, then UTC. ``job_created`` is
    the creation time of the Job, needed only for a hand-made Job whose name does not encode the
    scheduled time. An argv without placeholders is returned unchanged.
    """
    job = environ.get(ENV_JOB_NAME) or None
    run_id = label_value(job) if job else None
    if not any(_PLACEHOLDER_RE.search(a) for a in argv):
        return list(argv), run_id
    when = scheduled_time_from(environ, timezone=timezone, job_created=job_created)
    if when is None:
        bound = next(a for a in argv if _PLACEHOLDER_RE.search(a))
        raise ConfigurationError(
            f"argument {bound!r} binds to the scheduled time, but this run was not started by a schedule. "
            f"Pass the value itself (e.g. --date 2026-11-01), or set {ENV_SCHEDULED_TIME}=2026-11-01T03:00:00+09:00."
        )
    return [_substitute(a, when) for a in argv], run_id


def scheduled_time_for_date(cron: str, day: date, timezone: str | None) -> datetime:
    """The time the schedule fires on ``day`` (its first firing that day), else midnight of ``day``.

    So ``schedule trigger NAME --date 2026-11-01`` re-runs the run that 2026-11-01 had, with the
    parameters it had.
    """
    from gokart_k8s.localcluster.cron import parse

    zone = _zone(timezone)
    midnight = datetime(day.year, day.month, day.day, tzinfo=zone)
    following = parse(cron).next_after(midnight - timedelta(minutes=1))
    if following is not None and following.date() == day:
        return following
    return midnight


# --- triggered Jobs and run summaries -----------------------------------------------------------


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


@dataclass(frozen=True)
class RunSummary:
    """One run of a schedule (one Job of its CronJob) as ``schedule runs`` shows it."""

    job: str
    outcome: str
    scheduled: str
    started: datetime | None
    duration: timedelta | None
    manual: bool

    def row(self) -> list[str]:
        started = self.started.strftime("%Y-%m-%d %H:%M:%S") if self.started else "-"
        return [
            self.job,
            self.outcome,
            self.scheduled or "-",
            started,
            _format_duration(self.duration),
            "manual" if self.manual else "schedule",
        ]


def _format_duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _timestamp(text: Any) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def _condition(job: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def summarize_runs(jobs: Sequence[Mapping[str, Any]], *, now: datetime) -> list[RunSummary]:
    """Newest first: outcome (Complete, Failed, Running), scheduled time, start and duration."""
    out = []
    for job in jobs:
        meta = job.get("metadata") or {}
        status = job.get("status") or {}
        annotations = meta.get("annotations") or {}
        started = _timestamp(status.get("startTime")) or _timestamp(meta.get("creationTimestamp"))
        done = _condition(job, "Complete")
        failed = _condition(job, "Failed")
        ended: datetime | None = None
        if done is not None:
            outcome, ended = "Complete", _timestamp(status.get("completionTime") or done.get("lastTransitionTime"))
        elif failed is not None:
            outcome, ended = "Failed", _timestamp(failed.get("lastTransitionTime"))
            if failed.get("reason"):
                outcome = f"Failed ({failed['reason']})"
        else:
            outcome = "Running"
        duration = None
        if started is not None:
            duration = (ended or now) - started
        scheduled = str(
            annotations.get(ANNOTATION_SCHEDULED_TIME) or annotations.get(SCHEDULED_TIMESTAMP_ANNOTATION) or ""
        )
        out.append(
            RunSummary(
                job=str(meta.get("name", "")),
                outcome=outcome,
                scheduled=scheduled,
                started=started,
                duration=duration,
                manual=annotations.get(MANUAL_ANNOTATION) == "manual",
            )
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    return sorted(out, key=lambda r: (r.started or epoch, r.job), reverse=True)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]
    )


# --- command line -------------------------------------------------------------------------------

_SUBCOMMANDS = ("create", "list", "delete", "trigger", "runs")


def register(subparsers: Any) -> None:
    """Add ``schedule`` to the ``gokart-k8s`` parser (called by :func:`gokart_k8s.cli.build_parser`).

    ``schedule TASK ...`` is ``schedule create TASK ...``: argparse cannot mix positional TASK
    with subcommands, so the handler looks at the first word and re-parses (:func:`_dispatch`).
    """
    parser = subparsers.add_parser(
        "schedule",
        help="run a pipeline on a cron schedule in the cluster (create, list, delete, trigger, runs)",
        description="gokart-k8s schedule [create] TASK [luigi params] --cron EXPR (-o DIR | --apply) | "
        "list | delete NAME | trigger NAME [--date D] | runs NAME",
        add_help=False,
    )
    parser.add_argument("words", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=_dispatch)


def _schedule_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gokart-k8s schedule")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")

    create = sub.add_parser("create", help="create or write a schedule: schedule [create] TASK [params] --cron ...")
    create.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *" or @daily')
    create.add_argument("--timezone", help="tz database name, e.g. Asia/Tokyo (default UTC)")
    create.add_argument("--name", help="CronJob name (default: the task's name)")
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output-dir", type=Path, help="write the objects as YAML into this directory")
    target.add_argument("--apply", action="store_true", help="create or update the objects in the cluster")
    create.add_argument("--gcp-service-account", help="GSA e-mail for GKE Workload Identity on the driver's account")
    create.add_argument("--starting-deadline", type=int, default=3600, help="seconds a late start may still run")
    create.add_argument("--successful-history", type=int, default=3, help="finished runs kept")
    create.add_argument("--failed-history", type=int, default=3, help="failed runs kept")
    create.add_argument("--backoff-limit", type=int, default=3, help="driver crashes a run survives")
    create.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra env of the driver")
    create.add_argument("--suspend", action="store_true", help="create the CronJob suspended")
    create.add_argument("--platform", help="platform profile (overrides [gokart_k8s] platform)")
    create.add_argument("--image", help="container image (overrides [gokart_k8s] image)")
    create.add_argument("--namespace", help="namespace (overrides [gokart_k8s] namespace)")
    create.add_argument(
        "--workspace", help="the cache, gs://BUCKET/PREFIX/ (overrides [TaskOnKart] workspace_directory)"
    )
    create.add_argument("--no-plan-check", action="store_true", help="do not import the task and check its plan")
    create.add_argument("--debug", action="store_true")

    sub.add_parser("list", help="list schedules").add_argument("--namespace")
    delete = sub.add_parser("delete", help="delete a schedule, its runs and its driver account")
    delete.add_argument("name")
    delete.add_argument("--namespace")
    trigger = sub.add_parser("trigger", help="run now, or re-run one day with --date")
    trigger.add_argument("name")
    trigger.add_argument("--date", help="scheduled date (2026-11-01) or time (2026-11-01T03:00) of the run")
    trigger.add_argument("--namespace")
    runs = sub.add_parser("runs", help="recent runs and their outcome")
    runs.add_argument("name")
    runs.add_argument("--namespace")
    for p in (delete, trigger, runs):
        p.add_argument("--debug", action="store_true")
    return parser


def _dispatch(args: argparse.Namespace, rest: list[str]) -> int:
    words = [*list(getattr(args, "words", []) or []), *rest]
    if not words or words[0] in ("-h", "--help"):
        _schedule_parser().print_help()
        return 0 if words else 2
    if words[0] not in _SUBCOMMANDS:
        words = ["create", *words]
    parsed, unknown = _schedule_parser().parse_known_args(words)
    if parsed.action != "create" and unknown:
        raise ConfigurationError(f"schedule {parsed.action}: unrecognized arguments: {' '.join(unknown)}")
    handlers = {
        "create": _cmd_create,
        "list": _cmd_list,
        "delete": _cmd_delete,
        "trigger": _cmd_trigger,
        "runs": _cmd_runs,
    }
    return handlers[parsed.action](parsed, unknown)


def _env_pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--env {item!r} must be NAME=VALUE.")
        out[key] = value
    return out


def config_from_args(args: argparse.Namespace, task_argv: list[str], settings: Any, workspace: str) -> ScheduleConfig:
    """The :class:`ScheduleConfig` of ``schedule create``: options over settings."""
    return ScheduleConfig(
        name=args.name or default_name(task_argv),
        task_argv=tuple(task_argv),
        cron=args.cron,
        timezone=args.timezone,
        image=args.image or settings.image,
        workspace=args.workspace or workspace,
        namespace=args.namespace or settings.namespace,
        platform=args.platform or settings.platform,
        step_service_account=settings.service_account,
        gcp_service_account=args.gcp_service_account,
        starting_deadline_seconds=args.starting_deadline,
        successful_jobs_history_limit=args.successful_history,
        failed_jobs_history_limit=args.failed_history,
        backoff_limit=args.backoff_limit,
        env=_env_pairs(args.env),
        suspend=args.suspend,
    )


def _plan_problems(config: ScheduleConfig, settings: Any) -> list[str]:
    """Import the task with a sample scheduled time and plan it for the platform: every problem."""
    import dataclasses

    from gokart_k8s.errors import GokartK8sError
    from gokart_k8s.plan import make_plan
    from gokart_k8s.tasks import task_from_argv

    sample = {ENV_SCHEDULED_TIME: datetime.now(_zone(config.timezone)).replace(microsecond=0).isoformat()}
    try:
        argv, _ = resolve_scheduled_argv(list(config.task_argv), sample, timezone=config.timezone)
        root = task_from_argv(argv)
        plan_settings = dataclasses.replace(settings, platform=config.platform, image=config.image)
        # The cache is not read: the pod's cloud identity, not this machine's, will read it.
        plan = make_plan([root], plan_settings, backend="kubernetes", workspace=config.workspace, check_cache=False)
    except GokartK8sError as exc:
        return [str(exc)]
    return list(plan.problems)


def _cmd_create(args: argparse.Namespace, task_argv: list[str]) -> int:
    from gokart_k8s.settings import load_settings
    from gokart_k8s.workspace import workspace_directory

    settings = load_settings()
    config = config_from_args(args, task_argv, settings, workspace_directory())
    problems = validate_schedule(config)
    if not problems and not args.no_plan_check:
        problems = _plan_problems(config, settings)
    if problems:
        check_schedule(config)  # raises with the schedule's own problems first
        raise ConfigurationError(
            f"schedule {config.name!r}: the pipeline cannot run; nothing was created:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    objects = build_objects(config)
    if args.output_dir is not None:
        for path in write_yaml(objects, args.output_dir):
            print(path)
        return 0
    from gokart_k8s.cluster.schedules import ScheduleClient

    client = ScheduleClient.connect(settings)
    for obj, created in client.apply(objects):
        print(f"{obj['kind'].lower()}/{obj['metadata']['name']} {'created' if created else 'configured'}")
    print(
        f"schedule {config.name!r}: {config.cron} ({config.timezone or 'UTC'}) in namespace {config.namespace!r}; "
        f"run it now with `gokart-k8s schedule trigger {config.name}`"
    )
    return 0


def write_yaml(objects: Sequence[Mapping[str, Any]], directory: Path) -> list[Path]:
    """One YAML file per object, ``NN-kind-name.yaml`` so ``kubectl apply -f DIR`` keeps the order."""
    import yaml

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, obj in enumerate(objects, 1):
        path = directory / f"{i:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(yaml.safe_dump(dict(obj), sort_keys=False))
        paths.append(path)
    return paths


def _client_and_namespace(args: argparse.Namespace) -> tuple[Any, str]:
    from gokart_k8s.cluster.schedules import ScheduleClient
    from gokart_k8s.settings import load_settings

    settings = load_settings()
    return ScheduleClient.connect(settings), args.namespace or settings.namespace


def _cmd_list(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    rows = []
    for cj in client.list_cronjobs(namespace):
        spec, status, meta = cj.get("spec") or {}, cj.get("status") or {}, cj.get("metadata") or {}
        rows.append(
            [
                str(meta.get("name", "")),
                str(spec.get("schedule", "")),
                str(spec.get("timeZone", "")),
                "yes" if spec.get("suspend") else "no",
                str(len(status.get("active") or [])),
                str(status.get("lastScheduleTime") or "-"),
                str((meta.get("annotations") or {}).get(ANNOTATION_TASK, "")),
            ]
        )
    print(table(["NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "ACTIVE", "LAST SCHEDULE", "TASK"], rows))
    return 0


def _cmd_delete(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    for line in client.delete_schedule(namespace, args.name):
        print(line)
    return 0


def _cmd_trigger(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    cronjob = client.read_cronjob(namespace, args.name)
    spec = cronjob.get("spec") or {}
    tz = spec.get("timeZone")
    when = parse_date_option(args.date, str(spec.get("schedule", "")), tz)
    job = job_from_cronjob(cronjob, name=trigger_job_name(args.name), scheduled_time=when)
    created = client.create_job(namespace, job)
    print(
        f"job/{created['metadata']['name']} created (scheduled time {when.isoformat()}); "
        f"follow it with `gokart-k8s schedule runs {args.name}`"
    )
    return 0


def parse_date_option(text: str | None, cron: str, tz: str | None) -> datetime:
    """``--date``: a day (the schedule's firing that day) or a time; None means now."""
    zone = _zone(tz)
    if text is None:
        return datetime.now(zone).replace(second=0, microsecond=0)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            return scheduled_time_for_date(cron, date.fromisoformat(text.strip()), tz)
        return _parse_time(text, zone).astimezone(zone)
    except ValueError:
        raise ConfigurationError(
            f"--date {text!r} is neither a date (2026-11-01) nor an ISO 8601 time (2026-11-01T03:00)."
        ) from None


def _cmd_runs(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    jobs = client.list_runs(namespace, args.name)
    runs = summarize_runs(jobs, now=datetime.now(UTC))
    if not runs:
        print(f"schedule {args.name!r} has no runs in namespace {namespace!r} yet.", file=sys.stderr)
        return 0
    print(table(["JOB", "OUTCOME", "SCHEDULED", "STARTED", "DURATION", "BY"], [r.row() for r in runs]))
    return 0
