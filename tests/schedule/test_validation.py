"""A schedule is refused before anything is created, with every problem and what to change."""

from __future__ import annotations

from typing import Any

import pytest

from gokart_k8s.errors import ConfigurationError
from gokart_k8s.scheduling import ScheduleConfig, check_schedule, default_name, validate_schedule


def config(**changes: Any) -> ScheduleConfig:
    values: dict[str, Any] = {
        "name": "nightly",
        "task_argv": ("examples.pipeline.Report",),
        "cron": "0 3 * * *",
        "image": "pipeline:1",
        "workspace": "gs://bucket/cache/",
    }
    values.update(changes)
    return ScheduleConfig(**values)


def test_a_good_schedule_has_no_problems() -> None:
    assert validate_schedule(config()) == []


@pytest.mark.parametrize(
    "cron",
    ["0 3 * * *", "*/15 * * * *", "0 9-17/2 * * MON-FRI", "0 0 1,15 JAN,jul *", "30 2 * * 7", "@daily", "@hourly"],
)
def test_cron_expressions_the_controller_accepts_are_accepted(cron: str) -> None:
    assert validate_schedule(config(cron=cron)) == []


@pytest.mark.parametrize(
    "cron", ["0 3 * *", "61 * * * *", "0 25 * * *", "*/0 * * * *", "0 3 * * FOO", "@often", "TZ=UTC 0 3 * * *"]
)
def test_cron_expressions_the_controller_refuses_are_refused_with_the_form_to_use(cron: str) -> None:
    [problem] = validate_schedule(config(cron=cron))
    assert "is not a cron schedule" in problem and "5 fields" in problem


def test_an_unknown_time_zone_is_refused() -> None:
    [problem] = validate_schedule(config(timezone="Asia/Tokio"))
    assert "'Asia/Tokio' is not a time zone" in problem and "Asia/Tokyo" in problem


def test_a_name_longer_than_52_characters_is_refused_because_the_controller_appends_11() -> None:
    [problem] = validate_schedule(config(name="a" * 53))
    assert "at most 52" in problem and "--name" in problem


def test_a_name_with_invalid_characters_is_refused_with_a_valid_suggestion() -> None:
    [problem] = validate_schedule(config(name="Nightly_Report"))
    assert "DNS-1123" in problem and "--name nightly-report" in problem


def test_a_local_cache_is_refused_because_it_would_vanish_with_the_pod() -> None:
    [problem] = validate_schedule(config(workspace="./resources/"))
    assert "gs://" in problem and "workspace_directory" in problem


def test_a_missing_image_is_refused() -> None:
    [problem] = validate_schedule(config(image=None))
    assert "--image" in problem


def test_a_malformed_gcp_service_account_is_refused() -> None:
    [problem] = validate_schedule(config(gcp_service_account="pipeline@gmail.com"))
    assert "iam.gserviceaccount.com" in problem


def test_an_unknown_placeholder_is_refused_with_the_known_ones() -> None:
    [problem] = validate_schedule(config(task_argv=("m.Report", "--date", "{scheduled_day}")))
    assert "{scheduled_day}" in problem and "{scheduled_date}" in problem


def test_every_problem_is_reported_at_once_and_nothing_is_created() -> None:
    bad = config(name="x" * 60, cron="bad", timezone="Mars/Olympus", image=None, workspace="/tmp/cache")
    with pytest.raises(ConfigurationError) as info:
        check_schedule(bad)
    message = str(info.value)
    assert message.startswith("5 problems in schedule")  # name, cron, zone, image, cache
    assert "nothing was created" in message


def test_the_default_name_is_the_task_name_as_a_dns_label() -> None:
    assert default_name(["examples.ml_pipeline.pipeline.TrainReport", "--date", "x"]) == "trainreport"
    assert default_name(["--module", "examples.pipeline", "Report_Daily"]) == "report-daily"
