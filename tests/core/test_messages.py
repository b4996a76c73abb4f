"""Small promises of the command line: one chaos default, and messages that read as English."""

from __future__ import annotations

from pathlib import Path

from gokart_k8s.cli import build_parser
from gokart_k8s.conventions import CHAOS_RATE, CHAOS_SEED

REPO = Path(__file__).resolve().parents[2]


def test_run_and_local_cluster_start_have_one_chaos_default_and_the_docs_say_it() -> None:
    from gokart_k8s.localcluster import ChaosConfig

    start = build_parser().parse_args(["local-cluster", "start", "--chaos"])
    assert (start.chaos_seed, start.chaos_rate) == (CHAOS_SEED, CHAOS_RATE)
    assert (ChaosConfig().seed, ChaosConfig().rate) == (CHAOS_SEED, CHAOS_RATE)
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert f"default {CHAOS_SEED})" in run_help and f"default {CHAOS_RATE})" in run_help
    docs = (REPO / "docs" / "local-cluster.md").read_text() + (REPO / "README.md").read_text()
    assert f"Default seed {CHAOS_SEED} and rate {CHAOS_RATE:g} per pod-minute" in docs
    assert f"default seed {CHAOS_SEED}, {CHAOS_RATE:g} disruptions per pod-minute" in docs


def test_usage_lines_name_task_and_parameters(capsys: object) -> None:
    choices = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in ("plan", "run", "render"):
        text = choices[command].format_help()
        assert text.startswith(f"usage: gokart-k8s {command} TASK [--param-name VALUE ...] [--Family-param-name VALUE")
        assert "--CountWords-chunk 50" in text and "--help-task" in text


def test_help_task_lists_the_tasks_parameters_defaults_and_significance(capsys: object) -> None:
    from gokart_k8s.cli import main

    assert main(["plan", "tests.core.words.CountWords", "--help-task"]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.splitlines()[0] == "CountWords (tests.core.words): its parameters, passed after the task name"
    assert "--chunk" in out and "IntParameter, default '20'" in out
    assert "FloatParameter, default '0.0', insignificant" in out
    assert main(["run", "tests.core.pipelines.Floaty", "--help-task"]) == 0
    assert "--x   FloatParameter, required" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_a_parse_error_points_at_a_flag_that_exists(capsys: object) -> None:
    from gokart_k8s.cli import main

    assert main(["plan", "tests.core.words.CountWords", "--no-such-param", "1"]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    hint = err[err.index("see '") + 5 : err.rindex("'")]
    assert hint == "gokart-k8s plan TASK --help-task"
    assert main(["plan", "tests.core.words.CountWords", "--help-task"]) == 0


def test_schedule_create_usage_names_task_and_its_parameters(capsys: object) -> None:
    import pytest

    from gokart_k8s.cli import main

    with pytest.raises(SystemExit):
        main(["schedule", "create", "--help"])
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert out.startswith("usage: gokart-k8s schedule [create] TASK [--param-name VALUE ...] [--Family-param-name")
    assert "--Family-param-name VALUE for any task" in out
