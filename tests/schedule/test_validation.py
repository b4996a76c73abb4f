"""A schedule is refused before anything is created, with every problem and what to change."""

from __future__ import annotations

from typing import Any

import pytest

from gokart_k8s.errors import ConfigurationError
from gokart_k8s.scheduling import ScheduleConfig, check_schedule, default_name, validate_schedule
from gokart_k8s.scheduling.objects import credential_warnings
from gokart_k8s.settings import parse_secret_refs


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


def test_a_variable_given_both_in_plain_text_and_from_a_secret_is_a_problem() -> None:
    problems = validate_schedule(
        config(env={"GCS_CREDENTIAL": "x"}, secret_env=parse_secret_refs("GCS_CREDENTIAL=gcs-key/key.json"))
    )
    assert problems == [
        "GCS_CREDENTIAL is given both as --env (a value in plain text) and as --secret-env "
        "(GCS_CREDENTIAL=gcs-key/key.json); keep only --secret-env GCS_CREDENTIAL=gcs-key/key.json."
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GCS_CREDENTIAL", "anything"),
        ("API_TOKEN", "tok-8f3e"),
        ("DB_PASSWORD", "hunter2"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
        ("SERVICE_ACCOUNT_JSON", '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----"}'),
        ("PEM", "-----BEGIN RSA PRIVATE KEY-----\nMIIE..."),
        ("AWS_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("OPAQUE", "ghp_1234567890abcdefGHIJKLMNOPqrstuvwxyz12"),
    ],
)
def test_an_env_value_that_looks_like_a_credential_is_warned_about_without_showing_it(name: str, value: str) -> None:
    [warning] = credential_warnings({name: value})
    assert f"--env {name}=..." in warning and f"--secret-env {name}=SECRET/KEY" in warning
    assert value not in warning


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LUIGI_CONFIG_PATH", "/app/luigi.cfg"),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/var/secrets/google/key.json"),
        ("LOG_LEVEL", "INFO"),
        ("STORAGE_EMULATOR_HOST", "http://fake-gcs:4443"),
        ("RUN_LABEL", "nightly-report-2026-11-01"),
    ],
)
def test_ordinary_env_values_are_not_warned_about(name: str, value: str) -> None:
    assert credential_warnings({name: value}) == []
