"""Scheduled pipelines: a CronJob whose pod is the driver, and the scheduled time as a parameter.

The room, by seam:

* :mod:`~gokart_k8s.scheduling.names` -- the env, label and annotation names the CronJob, the
  driver pod, the CLI and the API adapter must agree on;
* :mod:`~gokart_k8s.scheduling.objects` -- the ServiceAccount, Role, RoleBinding and CronJob of a
  schedule, and the validation that finds every problem before anything is created;
* :mod:`~gokart_k8s.scheduling.dates` -- the scheduled time of a run and the placeholders
  (``{scheduled_date}`` ...) that bind task parameters to it;
* :mod:`~gokart_k8s.scheduling.summaries` -- a schedule's runs as ``schedule runs`` shows them;
* :mod:`~gokart_k8s.scheduling.cron` -- cron schedules as the CronJob controller reads them (the
  schedule's validation and dates here, and the embedded cluster's CronJob controller, use it);
* :mod:`~gokart_k8s.scheduling.command` -- the ``gokart-k8s schedule`` command line (the edge: it
  reads settings, plans the task and calls :mod:`gokart_k8s.cluster.schedules`).

Everything but ``command`` is pure, and imports neither the ``kubernetes`` client nor the cluster
adapters (an import-linter contract in setup.cfg keeps it so). This package re-exports the pure
names only: importing it never imports ``command``, so the API adapter can use ``names`` without
an import circle.
"""

from __future__ import annotations

from gokart_k8s.scheduling.dates import (
    parse_date_option,
    placeholder_problems,
    resolve_scheduled_argv,
    scheduled_time_for_date,
    scheduled_time_from,
)
from gokart_k8s.scheduling.names import (
    DO_NOT_DISRUPT,
    ENV_JOB_NAME,
    ENV_SCHEDULE_NAME,
    ENV_SCHEDULE_TIMEZONE,
    ENV_SCHEDULED_TIME,
    GKE_GSA_ANNOTATION,
    LABEL_ROLE,
    LABEL_SCHEDULE,
    MANUAL_ANNOTATION,
    SAFE_TO_EVICT,
)
from gokart_k8s.scheduling.objects import (
    DRIVER_ROLE_RULES,
    ScheduleConfig,
    build_cronjob,
    build_objects,
    check_schedule,
    default_name,
    job_from_cronjob,
    validate_schedule,
)
from gokart_k8s.scheduling.summaries import RunSummary, summarize_runs

__all__ = [
    "DO_NOT_DISRUPT",
    "DRIVER_ROLE_RULES",
    "ENV_JOB_NAME",
    "ENV_SCHEDULED_TIME",
    "ENV_SCHEDULE_NAME",
    "ENV_SCHEDULE_TIMEZONE",
    "GKE_GSA_ANNOTATION",
    "LABEL_ROLE",
    "LABEL_SCHEDULE",
    "MANUAL_ANNOTATION",
    "SAFE_TO_EVICT",
    "RunSummary",
    "ScheduleConfig",
    "build_cronjob",
    "build_objects",
    "check_schedule",
    "default_name",
    "job_from_cronjob",
    "parse_date_option",
    "placeholder_problems",
    "resolve_scheduled_argv",
    "scheduled_time_for_date",
    "scheduled_time_from",
    "summarize_runs",
    "validate_schedule",
]
