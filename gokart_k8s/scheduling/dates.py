"""Date binding: the scheduled time of a run, and the placeholders that bind task parameters to it.

Date parameters bind to the scheduled time with placeholders that the CronJob carries literally and
:func:`resolve_scheduled_argv` replaces when the driver starts:

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

**The run id and the scheduled time are the same for every pod of one run.** Both are derived from
the driver's Job name, which the pod reads from its label ``batch.kubernetes.io/job-name`` through
the downward API (env ``GOKART_K8S_JOB_NAME``). The CronJob controller names its Jobs
``<cronjob>-<scheduled time in unix minutes>``
(``getJobName`` in https://github.com/kubernetes/kubernetes/blob/master/pkg/controller/cronjob/utils.go),
so the name *is* the scheduled time. A Job made with ``gokart-k8s schedule trigger`` carries its
scheduled time in env ``GOKART_K8S_SCHEDULED_TIME`` instead.

Pure: no API calls; the caller reads a hand-made Job's creation time when it needs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gokart_k8s.conventions import label_value
from gokart_k8s.errors import ConfigurationError
from gokart_k8s.scheduling.names import (
    ENV_JOB_NAME,
    ENV_SCHEDULE_NAME,
    ENV_SCHEDULE_TIMEZONE,
    ENV_SCHEDULED_TIME,
    UTC,
)

__all__ = [
    "parse_date_option",
    "placeholder_problems",
    "resolve_scheduled_argv",
    "scheduled_time_for_date",
    "scheduled_time_from",
    "timezone_problem",
    "zone",
]

_PLACEHOLDER_RE = re.compile(r"\{(scheduled_[A-Za-z_]*)(?::([^{}]*))?\}")
_PLACEHOLDERS = ("scheduled_date", "scheduled_time", "scheduled_datetime")


def zone(name: str | None) -> ZoneInfo:
    """The tz database zone ``name``; None means UTC."""
    return ZoneInfo(name or "UTC")


def has_placeholder(arg: str) -> bool:
    """True when ``arg`` binds to the scheduled time."""
    return _PLACEHOLDER_RE.search(arg) is not None


def timezone_problem(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        # An absolute path or '..' would make ZoneInfo read arbitrary files; the API refuses them too.
        if name.startswith("/") or ".." in name:
            raise ValueError(name)
        zone(name)
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


def _parse_time(text: str, default_zone: ZoneInfo) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=default_zone)


def scheduled_time_from(
    environ: Mapping[str, str], *, timezone: str | None = None, job_created: datetime | None = None
) -> datetime | None:
    """The scheduled time of this run, or None when it was not started by a schedule.

    In order: ``GOKART_K8S_SCHEDULED_TIME`` (a triggered Job); the Job name
    ``<schedule>-<unix minutes>`` that the CronJob controller gives; ``job_created`` (a Job made
    by hand, ``kubectl create job --from=cronjob/NAME``), which the caller reads from the API.
    """
    tz_zone = zone(timezone or environ.get(ENV_SCHEDULE_TIMEZONE))
    explicit = environ.get(ENV_SCHEDULED_TIME)
    if explicit:
        try:
            return _parse_time(explicit, tz_zone).astimezone(tz_zone)
        except ValueError:
            raise ConfigurationError(
                f"{ENV_SCHEDULED_TIME}={explicit!r} is not an ISO 8601 time; use e.g. 2026-11-01T03:00:00+09:00."
            ) from None
    job = environ.get(ENV_JOB_NAME, "")
    schedule = environ.get(ENV_SCHEDULE_NAME, "")
    match = re.fullmatch(rf"{re.escape(schedule)}-(\d{{1,10}})", job) if schedule else None
    if match:
        return datetime.fromtimestamp(int(match[1]) * 60, tz=UTC).astimezone(tz_zone)
    if job_created is not None:
        return job_created.astimezone(tz_zone)
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
    if not any(has_placeholder(a) for a in argv):
        return list(argv), run_id
    when = scheduled_time_from(environ, timezone=timezone, job_created=job_created)
    if when is None:
        bound = next(a for a in argv if has_placeholder(a))
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
    from gokart_k8s.scheduling.cron import parse

    tz_zone = zone(timezone)
    midnight = datetime(day.year, day.month, day.day, tzinfo=tz_zone)
    following = parse(cron).next_after(midnight - timedelta(minutes=1))
    if following is not None and following.date() == day:
        return following
    return midnight


def parse_date_option(text: str | None, cron: str, tz: str | None) -> datetime:
    """``--date``: a day (the schedule's firing that day) or a time; None means now."""
    tz_zone = zone(tz)
    if text is None:
        return datetime.now(tz_zone).replace(second=0, microsecond=0)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            return scheduled_time_for_date(cron, date.fromisoformat(text.strip()), tz)
        return _parse_time(text, tz_zone).astimezone(tz_zone)
    except ValueError:
        raise ConfigurationError(
            f"--date {text!r} is neither a date (2026-11-01) nor an ISO 8601 time (2026-11-01T03:00)."
        ) from None
