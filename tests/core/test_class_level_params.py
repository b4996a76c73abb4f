"""luigi's class-level parameters (``--CountWords-chunk 50``) mean what they mean under ``luigi``.

Each test compares with luigi's own command line (``python -m luigi --module ... --local-scheduler``
in a subprocess): the same steps (unique ids) and byte-identical outputs, for a nested, a
significant and an insignificant class-level override, whichever command and backend is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.cli import main

REPO = Path(__file__).resolve().parents[2]
WORDS = "tests.core.words"

CASES = {
    "defaults": [],
    "significant": ["--CountWords-chunk", "50"],
    "nested": ["--ReadText-lines", "5", "--CountWords-chunk", "50"],
    "insignificant": ["--CountWords-delay", "2"],
}


def luigi_outputs(tmp_path: Path, args: list[str]) -> dict[str, bytes]:
    """Run the pipeline with luigi's own command line; its outputs by file name (family_uniqueid)."""
    workspace = tmp_path / "luigi-ws"
    cfg = tmp_path / "luigi-own.cfg"
    cfg.write_text(f"[TaskOnKart]\nworkspace_directory = {workspace}/\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LUIGI_CONFIG_PATH": str(cfg)}
    done = subprocess.run(
        [sys.executable, "-m", "luigi", "--module", WORDS, "TopWords", "--local-scheduler", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return outputs(workspace)


def outputs(workspace: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in workspace.rglob("*.pkl") if "words" in str(p.parent)}


@pytest.mark.parametrize("args", list(CASES.values()), ids=list(CASES))
def test_plan_and_an_inline_run_resolve_the_graph_as_luigi_does(args: list[str], tmp_path: Path, capsys: Any) -> None:
    expected = luigi_outputs(tmp_path, args)
    assert len(expected) == 3

    assert main(["plan", f"{WORDS}.TopWords", *args, "--backend", "inline", "-O", "json"]) == 0
    planned = {f"{s['family']}_{s['unique_id']}.pkl" for s in json.loads(capsys.readouterr().out)["steps"]}
    assert planned == set(expected)

    assert main(["run", f"{WORDS}.TopWords", *args]) == 0, capsys.readouterr().err
    assert outputs(tmp_path / "resources") == expected


def test_an_insignificant_class_level_parameter_reaches_the_steps_serialized_parameters() -> None:
    from gokart_k8s.settings import load_settings
    from gokart_k8s.steps import collect
    from gokart_k8s.tasks import task_from_argv

    root = task_from_argv([f"{WORDS}.TopWords", "--CountWords-delay", "2", "--CountWords-chunk", "50"])
    steps, problems = collect([root], load_settings())
    assert not problems
    count = next(s.spec for s in steps if s.spec.family == "CountWords")
    assert count.params["delay"] == "2.0" and count.params["chunk"] == "50"
    # Every step's pod gets the class-level arguments, so its own requires() resolves the same graph.
    top = next(s.spec for s in steps if s.spec.family == "TopWords")
    assert top.luigi_args == ("--CountWords-chunk", "50", "--CountWords-delay", "2")


def test_render_uses_the_graph_the_command_line_means(tmp_path: Path, capsys: Any) -> None:
    from gokart_k8s.tasks import task_from_argv

    root = task_from_argv([f"{WORDS}.TopWords", "--CountWords-chunk", "50"])
    count = root.requires()
    assert count.chunk == 50 and count.requires().lines == 12
    # Built later, outside the command line, the same task is resolved afresh (not the pinned one).
    from tests.core.words import TopWords

    assert TopWords().requires().chunk == 20

    out = tmp_path / "rendered"
    argv = ["render", f"{WORDS}.TopWords", "--CountWords-chunk", "50", "--platform", "plain", "--image", "i:1"]
    # The image's code: this test is about the graph, and needs no cache (no code package to store).
    assert main([*argv, "--workspace", "gs://b/p", "--code-package", "off", "-o", str(out)]) == 0, (
        capsys.readouterr().err
    )
    rendered = "\n".join(p.read_text() for p in sorted(out.glob("*.yaml")))
    assert "countwords-" in rendered and '"chunk":"50"' in rendered
    assert '["--CountWords-chunk", "50"]' in rendered


def test_a_rehearsal_passes_class_level_parameters_to_every_pod(tmp_path: Path, capsys: Any) -> None:
    args = ["--ReadText-lines", "5", "--CountWords-chunk", "50", "--CountWords-delay", "2"]
    expected = luigi_outputs(tmp_path, args)
    assert main(["run", f"{WORDS}.TopWords", *args, "--backend", "local-cluster"]) == 0, capsys.readouterr().err
    assert outputs(tmp_path / "resources") == expected


@pytest.mark.parametrize("task", ["Floaty", "NeedsFloaty"], ids=["root", "in-requires"])
def test_a_missing_required_task_parameter_is_one_clear_error(capsys: Any, task: str) -> None:
    code = main(["plan", f"tests.core.pipelines.{task}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "a task parameter is missing" in err and "'x'" in err and "Traceback" not in err
    assert "--Family-param-name value" in err
    # The fix it names works: the class-level form reaches the task built in requires().
    assert main(["plan", f"tests.core.pipelines.{task}", "--Floaty-x", "1.5", "--backend", "inline"]) == 0


def test_infrastructure_arguments_stay_with_the_driver() -> None:
    from gokart_k8s.tasks import luigi_args_of, task_from_argv

    root = task_from_argv(
        [f"{WORDS}.TopWords", "--CountWords-chunk", "7", "--TaskOnKart-workspace-directory", "/driver/only/"]
    )
    # The pod's cache comes from its own environment (a driver's local path means nothing there).
    assert luigi_args_of(root) == ("--CountWords-chunk", "7")


def test_schedule_checks_the_graph_the_command_line_means_and_passes_it_on(tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "schedule"
    argv = ["schedule", "create", "tests.core.pipelines.NeedsFloaty", "--Floaty-x", "1.5", "--cron", "0 3 * * *"]
    common = [
        "--image",
        "i:1",
        "--workspace",
        "gs://b/p",
        "--platform",
        "plain",
        "--code-package",
        "off",
        "-o",
        str(out),
    ]
    assert main([*argv, *common]) == 0, capsys.readouterr().err
    written = "\n".join(p.read_text() for p in out.glob("*.yaml"))
    # The driver pod runs `gokart-k8s run` with the same class-level arguments.
    assert "- --Floaty-x\n            - '1.5'\n" in written
