"""The `gokart-k8s schedule` command: create (with or without the word), write YAML, refuse early."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from luigi.configuration import LuigiConfigParser

from gokart_k8s.cli import main

TASK = "tests.schedule.scheduled_pipeline.DailyReport"


@pytest.fixture(autouse=True)
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("GOKART_K8S_") or name == "LUIGI_CONFIG_PATH":
            monkeypatch.delenv(name)
    path = tmp_path / "luigi.cfg"
    path.write_text(
        "[TaskOnKart]\nworkspace_directory = gs://bucket/cache/\n[gokart_k8s]\nimage = pipeline:1\n"
        # The bucket is not real: no code package to upload (tests/codepackage schedules with one).
        "code_package = off\n"
    )
    monkeypatch.setattr(LuigiConfigParser, "_config_paths", [str(path)])
    monkeypatch.setattr(LuigiConfigParser, "_instance", None)
    return path


def test_schedule_task_writes_the_four_objects_as_yaml(tmp_path: Path) -> None:
    out = tmp_path / "out"
    status = main(
        [
            "schedule",
            TASK,
            "--date",
            "{scheduled_date}",
            "--cron",
            "0 3 * * *",
            "--timezone",
            "Asia/Tokyo",
            "-o",
            str(out),
        ]
    )
    assert status == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "01-serviceaccount-dailyreport-driver.yaml",
        "02-role-dailyreport-driver.yaml",
        "03-rolebinding-dailyreport-driver.yaml",
        "04-cronjob-dailyreport.yaml",
    ]
    cronjob = yaml.safe_load((out / files[3]).read_text())
    command = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == [
        *("gokart-k8s", "run", TASK, "--date", "{scheduled_date}"),
        *("--backend", "kubernetes", "--workspace", "gs://bucket/cache/"),
    ]


def test_the_schedule_yaml_spells_every_value_out_without_anchors_or_aliases(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["schedule", TASK, "--date", "{scheduled_date}", "--cron", "@daily", "-o", str(out)]) == 0
    for path in out.iterdir():
        text = path.read_text()
        assert "&id" not in text and "*id" not in text, text
    cronjob = yaml.safe_load((out / "04-cronjob-dailyreport.yaml").read_text())
    job_template = cronjob["spec"]["jobTemplate"]
    # The labels shared by the jobTemplate and its pod template are written twice, in full.
    assert job_template["metadata"]["labels"] == job_template["spec"]["template"]["metadata"]["labels"]


def test_secret_env_becomes_a_secret_reference_and_a_plain_credential_is_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    secret = "ya29.a0AfH6SMBx3kLq9vZ7cD2eF4gH6iJ8kL0mN2oP4qR6sT8"
    argv = [*("schedule", TASK, "--date", "{scheduled_date}", "--cron", "@daily", "-o", str(out))]
    argv += ["--secret-env", "GCS_CREDENTIAL=gcs-key/key.json", "--env", f"API_TOKEN={secret}"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning: --env API_TOKEN=... looks like a credential" in err and secret not in err
    cronjob = yaml.safe_load((out / "04-cronjob-dailyreport.yaml").read_text())
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["GCS_CREDENTIAL"]["valueFrom"] == {"secretKeyRef": {"name": "gcs-key", "key": "key.json"}}
    assert env["GOKART_K8S_SECRET_ENV"]["value"] == "GCS_CREDENTIAL=gcs-key/key.json"


def test_secret_env_of_the_config_file_is_carried_into_the_schedule_and_the_command_line_wins(
    tmp_path: Path, config: Path
) -> None:
    config.write_text(
        "[TaskOnKart]\nworkspace_directory = gs://bucket/cache/\n[gokart_k8s]\nimage = pipeline:1\n"
        "secret_env = GCS_CREDENTIAL=old/key.json, API_TOKEN=api/token\n"
    )
    LuigiConfigParser._instance = None
    out = tmp_path / "out"
    argv = ["schedule", TASK, "--date", "{scheduled_date}", "--cron", "@daily", "-o", str(out)]
    assert main([*argv, "--secret-env", "GCS_CREDENTIAL=new/key.json", "--code-package", "off"]) == 0
    cronjob = yaml.safe_load((out / "04-cronjob-dailyreport.yaml").read_text())
    [container] = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {"GCS_CREDENTIAL": {"name": "new", "key": "key.json"}, "API_TOKEN": {"name": "api", "key": "token"}}


def test_a_secret_env_not_in_its_form_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["schedule", TASK, "--date", "{scheduled_date}", "--cron", "@daily", "-o", str(tmp_path / "out")]
    assert main([*argv, "--secret-env", "GCS_CREDENTIAL=gcs-key"]) == 2
    err = capsys.readouterr().err
    assert "--secret-env: 'GCS_CREDENTIAL=gcs-key' must be VAR=SECRET/KEY" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_schedule_create_is_the_same_command_with_its_word(tmp_path: Path) -> None:
    status = main(
        [
            "schedule",
            "create",
            TASK,
            "--date",
            "{scheduled_date}",
            "--cron",
            "@daily",
            "--name",
            "nightly",
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert status == 0
    assert (tmp_path / "out" / "04-cronjob-nightly.yaml").exists()


def test_a_bad_schedule_is_refused_with_every_problem_and_nothing_is_written(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text("[TaskOnKart]\nworkspace_directory = ./resources/\n")
    LuigiConfigParser._instance = None
    out = tmp_path / "out"
    status = main(
        ["schedule", TASK, "--date", "{scheduled_date}", "--cron", "0 3 * *", "--timezone", "Tokyo", "-o", str(out)]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert "4 problems in schedule 'dailyreport'; nothing was created" in err
    assert not out.exists()


def test_an_unknown_task_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["schedule", "tests.schedule.no_such_module.Task", "--cron", "@daily", "-o", str(tmp_path / "out")])
    assert status == 2
    assert "cannot import module" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_either_an_output_directory_or_apply_is_required() -> None:
    with pytest.raises(SystemExit):
        main(["schedule", TASK, "--cron", "@daily"])


def test_apply_list_trigger_runs_and_delete_against_a_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from gokart_k8s.localcluster import LocalCluster

    # No driver may start here: gke-standard pins it to the ondemand-small pool, which the default
    # local node is not in, so the triggered pod stays Pending.
    with LocalCluster() as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))
        create = ["schedule", TASK, "--date", "{scheduled_date}", "--cron", "0 3 * * *", "--name", "nightly"]
        assert main([*create, "--platform", "gke-standard", "--apply"]) == 0
        assert "cronjob/nightly created" in capsys.readouterr().out
        assert main([*create, "--platform", "gke-standard", "--apply", "--timezone", "Asia/Tokyo"]) == 0
        assert "cronjob/nightly configured" in capsys.readouterr().out

        assert main(["schedule", "list"]) == 0
        listing = capsys.readouterr().out
        assert "nightly" in listing and "0 3 * * *" in listing and "Asia/Tokyo" in listing

        assert main(["schedule", "trigger", "nightly", "--date", "2026-11-01"]) == 0
        assert "scheduled time 2026-11-01T03:00:00+09:00" in capsys.readouterr().out
        assert main(["schedule", "runs", "nightly"]) == 0
        runs = capsys.readouterr().out
        assert "Running" in runs and "2026-11-01T03:00:00+09:00" in runs and "manual" in runs
        assert runs.startswith("RUN ID")  # what `gokart-k8s report RUN_ID` opens

        assert main(["schedule", "delete", "nightly"]) == 0
        assert "cronjob/nightly deleted" in capsys.readouterr().out
        assert main(["schedule", "list"]) == 0
        assert "nightly" not in capsys.readouterr().out
