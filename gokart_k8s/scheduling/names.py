"""Names shared by the CronJob, the driver pod, the CLI and the API adapter of schedules.

One spelling of each environment variable, label and annotation that must agree between the
objects :mod:`gokart_k8s.scheduling.objects` builds, the driver that reads them in its pod
(:mod:`gokart_k8s.scheduling.dates`) and :mod:`gokart_k8s.cluster.schedules`, which lists and
deletes by them. It imports nothing of the project but conventions, so the API adapter can import it
without pulling in the pure schedule modules (or they it).
"""

from __future__ import annotations

from datetime import timezone

from gokart_k8s.conventions import LABEL_PREFIX

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

#: The name of a schedule's driver ServiceAccount, Role and RoleBinding.
DRIVER_ACCOUNT_SUFFIX = "-driver"

UTC = timezone.utc


def driver_account(schedule: str) -> str:
    """The driver's ServiceAccount (and Role and RoleBinding) name of schedule ``schedule``."""
    return f"{schedule}{DRIVER_ACCOUNT_SUFFIX}"
