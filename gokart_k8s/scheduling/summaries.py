"""Run summaries: what ``gokart-k8s schedule runs`` shows of a schedule's driver Jobs.

Pure: it reads Job objects as the API returns them (camelCase dicts) and returns rows; the API
calls are in :mod:`gokart_k8s.cluster.schedules`. A run's outcome is its Job's condition
(``Complete`` or ``Failed`` with its reason; neither means it is still running), and its scheduled
time is the annotation ``gokart-k8s schedule trigger`` sets or the one the CronJob controller sets
(``batch.kubernetes.io/cronjob-scheduled-timestamp``, 1.28+).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gokart_k8s.scheduling.names import (
    ANNOTATION_SCHEDULED_TIME,
    MANUAL_ANNOTATION,
    SCHEDULED_TIMESTAMP_ANNOTATION,
    UTC,
)

__all__ = ["RunSummary", "summarize_runs", "table"]


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
    """Columns padded to their widest cell, as ``kubectl get`` prints them (``schedule list`` and ``runs``)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *rows]
    )
