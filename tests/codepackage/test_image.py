"""`gokart-k8s image` writes a build context whose Dockerfile parses and whose requirements are valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from gokart_k8s.cli import main

INSTRUCTIONS = {"FROM", "ENV", "COPY", "RUN", "WORKDIR", "USER", "ARG", "LABEL", "CMD", "ENTRYPOINT", "ADD"}


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """Parse a Dockerfile the way its reference describes it: comments, continuation lines,
    INSTRUCTION arguments (https://docs.docker.com/reference/dockerfile/#format)."""
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    assert current == "", "a continuation line runs off the end"
    parsed = []
    for line in logical:
        word, _, args = line.partition(" ")
        assert word.upper() in INSTRUCTIONS and args.strip(), line
        parsed.append((word.upper(), args.strip()))
    return parsed


def test_the_image_context_holds_the_projects_dependencies_and_gokart_k8s(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    dependencies = '["pandas>=2", "scikit-learn==1.5.*; python_version>=\'3.10\'"]'
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "team-pipelines"\nversion = "1"\ndependencies = {dependencies}\n'
    )
    (project / "requirements.txt").write_text("# pinned extras\nlightgbm==4.5.0  # boosting\npandas>=2\n")
    out = tmp_path / "image"
    assert main(["image", "-o", str(out), "--project", str(project), "--python", "3.11"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Dockerfile", "requirements.txt"]
    assert capsys.readouterr().out.split() == [str(out / "Dockerfile"), str(out / "requirements.txt")]

    instructions = dockerfile_instructions((out / "Dockerfile").read_text())
    assert instructions[0] == ("FROM", "python:3.11-slim")
    copies = [args.split()[0] for word, args in instructions if word == "COPY"]
    assert all((out / source).exists() for source in copies)  # the context holds what is copied
    assert ("USER", "1000") in instructions

    lines = (out / "requirements.txt").read_text().splitlines()
    names = [Requirement(line).name for line in lines]  # every line is a valid PEP 508 requirement
    assert names == ["gokart-k8s", "pandas", "scikit-learn", "lightgbm"]
    assert not any(re.match(r"team-pipelines", line) for line in lines)  # the code comes in the package


def test_a_pip_option_in_requirements_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "requirements.txt").write_text("-e .\n")
    assert main(["image", "-o", str(tmp_path / "out"), "--project", str(tmp_path)]) == 2
    assert "is a pip option" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
