"""The schedule commands the docs show run as written (with -o DIR in place of --apply)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import yaml
from luigi.configuration import LuigiConfigParser

from gokart_k8s.cli import main

REPO = Path(__file__).resolve().parents[2]


def documented_schedule_commands() -> list[tuple[str, str]]:
    """``(file, command)`` of every ``gokart-k8s schedule TASK ...`` in a code block of the docs."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for block in re.findall(r"```[a-z]*\n(.*?)```", path.read_text(), flags=re.S):
            for command in block.replace("\\\n", " ").splitlines():
                words = shlex.split(command, comments=True)
                if words[:2] == ["gokart-k8s", "schedule"] and len(words) > 2 and "." in words[2]:
                    found.append((path.name, command.strip()))
    return found


COMMANDS = documented_schedule_commands()


def test_the_docs_show_schedule_commands() -> None:
    assert {file for file, _ in COMMANDS} >= {"README.md", "scheduling.md"}
    assert any("{scheduled_date}" in command for _, command in COMMANDS)


@pytest.mark.parametrize(("file", "command"), COMMANDS, ids=[f"{f}:{c.split()[2]}" for f, c in COMMANDS])
def test_a_documented_schedule_command_plans_and_writes_its_objects(
    file: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("GOKART_K8S_") or name == "LUIGI_CONFIG_PATH":
            monkeypatch.delenv(name)
    # The documented bucket is not real: no code package to upload (tests/codepackage schedules with one).
    monkeypatch.setenv("GOKART_K8S_CODE_PACKAGE", "off")
    # The example's own config: a local cache, which the documented --workspace replaces.
    monkeypatch.setattr(LuigiConfigParser, "_config_paths", [str(REPO / "examples" / "ml_pipeline" / "luigi.cfg")])
    monkeypatch.setattr(LuigiConfigParser, "_instance", None)
    words = shlex.split(command, comments=True)[1:]
    out = tmp_path / "out"
    words = [w for w in words if w != "--apply"] + ["-o", str(out)]
    assert main(words) == 0, f"{file}: {command}"
    [cronjob] = [yaml.safe_load(p.read_text()) for p in out.glob("*-cronjob-*.yaml")]
    assert cronjob["spec"]["schedule"] == "0 3 * * *"
