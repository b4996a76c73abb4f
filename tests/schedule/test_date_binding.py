"""Each run binds its date parameters to its own scheduled time, and keeps its run id across pods."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gokart_k8s.errors import ConfigurationError
from gokart_k8s.scheduling import (
    ENV_JOB_NAME,
    ENV_SCHEDULE_NAME,
    ENV_SCHEDULE_TIMEZONE,
    ENV_SCHEDULED_TIME,
    MANUAL_ANNOTATION,
    ScheduleConfig,
    build_cronjob,
    job_from_cronjob,
    parse_date_option,
    resolve_scheduled_argv,
    scheduled_time_for_date,
    summarize_runs,
)

TOKYO = ZoneInfo("Asia/Tokyo")
# 2026-11-01 03:00 in Tokyo is 2026-10-31 18:00 UTC.
SCHEDULED = datetime(2026, 11, 1, 3, 0, tzinfo=TOKYO)
MINUTES = int(SCHEDULED.timestamp()) // 60


def cronjob_env(job: str) -> dict[str, str]:
    return {ENV_JOB_NAME: job, ENV_SCHEDULE_NAME: "nightly", ENV_SCHEDULE_TIMEZONE: "Asia/Tokyo"}


def test_the_cronjob_job_name_gives_the_scheduled_date_in_the_schedules_time_zone() -> None:
    argv, run_id = resolve_scheduled_argv(
        ["m.Report", "--date", "{scheduled_date}"], cronjob_env(f"nightly-{MINUTES}"), timezone=None
    )
    assert argv == ["m.Report", "--date", "2026-11-01"]
    assert run_id == f"nightly-{MINUTES}"


def test_every_placeholder_and_a_strftime_format_are_replaced() -> None:
    argv, _ = resolve_scheduled_argv(
        ["m.T", "--at={scheduled_time}", "--stamp", "{scheduled_datetime}", "--month", "{scheduled_time:%Y%m}"],
        cronjob_env(f"nightly-{MINUTES}"),
        timezone=None,
    )
    assert argv == ["m.T", "--at=2026-11-01T03:00:00+09:00", "--stamp", "2026-11-01T030000", "--month", "202611"]


def test_the_timezone_argument_overrides_the_environment() -> None:
    argv, _ = resolve_scheduled_argv(["{scheduled_date}"], cronjob_env(f"nightly-{MINUTES}"), timezone="UTC")
    assert argv == ["2026-10-31"]


def test_a_replacement_pod_of_the_same_job_gets_the_same_arguments_and_run_id() -> None:
    env = cronjob_env(f"nightly-{MINUTES}")
    assert resolve_scheduled_argv(["{scheduled_time}"], env, timezone=None) == resolve_scheduled_argv(
        ["{scheduled_time}"], dict(env), timezone=None
    )


def test_an_explicit_scheduled_time_wins_over_the_job_name() -> None:
    env = {**cronjob_env("nightly-m0a1b2c3d"), ENV_SCHEDULED_TIME: "2026-10-15T03:00:00+09:00"}
    argv, run_id = resolve_scheduled_argv(["{scheduled_date}"], env, timezone=None)
    assert argv == ["2026-10-15"]
    assert run_id == "nightly-m0a1b2c3d"


def test_a_hand_made_job_falls_back_to_the_jobs_creation_time() -> None:
    created = datetime(2026, 11, 2, 1, 30, tzinfo=timezone.utc)
    argv, _ = resolve_scheduled_argv(
        ["{scheduled_date}"], cronjob_env("my-manual-run"), timezone=None, job_created=created
    )
    assert argv == ["2026-11-02"]


def test_placeholders_outside_a_schedule_are_refused_with_what_to_pass_instead() -> None:
    with pytest.raises(ConfigurationError, match="not started by a schedule"):
        resolve_scheduled_argv(["m.Report", "--date", "{scheduled_date}"], {}, timezone=None)


def test_arguments_without_placeholders_are_unchanged_and_braces_in_json_survive() -> None:
    argv = ["m.Report", "--params", '{"a": {"b": 1}}']
    assert resolve_scheduled_argv(argv, {}, timezone=None) == (argv, None)


def test_a_missed_day_is_rerun_at_the_time_the_schedule_fired_that_day() -> None:
    assert scheduled_time_for_date("0 3 * * *", date(2026, 11, 1), "Asia/Tokyo") == SCHEDULED
    # A weekly schedule does not fire on 2026-11-02 (a Monday): midnight of that day.
    assert scheduled_time_for_date("0 3 * * SUN", date(2026, 11, 2), "Asia/Tokyo") == datetime(
        2026, 11, 2, tzinfo=TOKYO
    )


def test_the_date_option_takes_a_day_or_a_time_and_refuses_anything_else() -> None:
    assert parse_date_option("2026-11-01", "0 3 * * *", "Asia/Tokyo") == SCHEDULED
    assert parse_date_option("2026-11-01T05:00", "0 3 * * *", "Asia/Tokyo") == SCHEDULED + timedelta(hours=2)
    with pytest.raises(ConfigurationError, match="neither a date"):
        parse_date_option("yesterday", "0 3 * * *", None)


def test_a_triggered_job_is_what_kubectl_create_job_from_cronjob_makes_plus_the_scheduled_time() -> None:
    cronjob = build_cronjob(
        ScheduleConfig(name="nightly", task_argv=("m.Report",), cron="0 3 * * *", image="i", workspace="gs://b/")
    )
    cronjob["metadata"]["uid"] = "1234"
    job = job_from_cronjob(cronjob, name="nightly-m0001", scheduled_time=SCHEDULED)
    assert job["metadata"]["annotations"][MANUAL_ANNOTATION] == "manual"
    [owner] = job["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("CronJob", "nightly", "1234", True)
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[ENV_SCHEDULED_TIME] == "2026-11-01T03:00:00+09:00"
    # The CronJob itself is unchanged.
    cron_env = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert ENV_SCHEDULED_TIME not in {e["name"] for e in cron_env}


def test_runs_report_outcome_start_and_duration_newest_first() -> None:
    now = datetime(2026, 11, 2, 4, 0, tzinfo=timezone.utc)
    jobs: list[dict[str, Any]] = [
        {
            "metadata": {"name": "nightly-1"},
            "status": {
                "startTime": "2026-11-01T18:00:00Z",
                "completionTime": "2026-11-01T18:12:30Z",
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        },
        {
            "metadata": {"name": "nightly-2", "annotations": {MANUAL_ANNOTATION: "manual"}},
            "status": {
                "startTime": "2026-11-02T03:00:00Z",
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "BackoffLimitExceeded",
                        "lastTransitionTime": "2026-11-02T03:05:00Z",
                    }
                ],
            },
        },
        {"metadata": {"name": "nightly-3"}, "status": {"startTime": "2026-11-02T03:30:00Z"}},
    ]
    rows = [(r.job, r.outcome, str(r.duration), r.manual) for r in summarize_runs(jobs, now=now)]
    assert rows == [
        ("nightly-3", "Running", "0:30:00", False),
        ("nightly-2", "Failed (BackoffLimitExceeded)", "0:05:00", True),
        ("nightly-1", "Complete", "0:12:30", False),
    ]
