"""``gokart-k8s image``: write the build context of the one base image a team needs.

With code packages a pipeline's image holds only its *dependencies* and gokart_k8s; the code and
config come with each run. This command writes ``Dockerfile`` and ``requirements.txt`` from the
project's declared dependencies -- ``[project] dependencies`` of ``pyproject.toml``
(https://packaging.python.org/en/latest/specifications/pyproject-toml/#dependencies-optional-dependencies)
and the requirement lines of ``requirements.txt`` in the project directory -- plus gokart_k8s at
the version installed here. Build and push it once; rebuild only when a dependency changes::

    gokart-k8s image -o image/ && docker build -t REGISTRY/pipelines:deps-1 image/
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gokart_k8s.errors import ConfigurationError

#: A requirement's name as PEP 508 spells it (https://peps.python.org/pep-0508/#names).
_NAME_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]|[A-Za-z0-9])")


def _normalise(name: str) -> str:
    # PEP 503 normalisation, so "Gokart_K8s" and "gokart-k8s" are one project.
    return re.sub(r"[-_.]+", "-", name).lower()


def project_requirements(project: Path) -> tuple[str, list[str]]:
    """The project's name (or "") and its requirement lines, from pyproject.toml and requirements.txt."""
    name, lines = "", []
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        if sys.version_info < (3, 11):
            raise ConfigurationError(
                f"Reading {pyproject} needs Python 3.11 or later; list the dependencies in requirements.txt."
            )
        # mypy checks for Python 3.10, where tomllib is absent.
        import tomllib  # type: ignore[import-not-found]

        try:
            data = tomllib.loads(pyproject.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{pyproject} does not parse: {exc}") from None
        table = data.get("project") or {}
        name = str(table.get("name") or "")
        lines += [str(d) for d in table.get("dependencies") or []]
    requirements = project / "requirements.txt"
    if requirements.is_file():
        for raw in requirements.read_text().splitlines():
            line = raw.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                if line.startswith("-"):
                    raise ConfigurationError(
                        f"{requirements}: {line!r} is a pip option; list plain requirements only (name, version, "
                        "markers), or write the image's requirements.txt by hand."
                    )
                lines.append(line)
    return name, lines


def requirements(project_name: str, lines: Sequence[str], gokart_k8s_requirement: str) -> list[str]:
    """The image's requirement lines: gokart_k8s first, then the project's, each once, never the
    project itself (its code comes in the code package)."""
    out: dict[str, str] = {}
    for line in [gokart_k8s_requirement, *lines]:
        match = _NAME_RE.match(line.strip())
        if not match:
            raise ConfigurationError(f"{line!r} is not a requirement (PEP 508: a project name, then a version).")
        key = _normalise(match.group(1))
        if key == _normalise(project_name or "-") or key in out:
            continue
        out[key] = line.strip()
    return list(out.values())


def dockerfile(python_version: str) -> str:
    """The Dockerfile text: dependencies only, a non-root user, an empty working directory."""
    return f"""# The base image of gokart_k8s pipelines: dependencies only (written by `gokart-k8s image`).
# Each run ships the pipeline's code and luigi config as a code package (docs/code-packages.md),
# so a change to a step needs no new image; rebuild when requirements.txt changes.
FROM python:{python_version}-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir -r /tmp/requirements.txt && useradd --create-home --uid 1000 app
WORKDIR /home/app
USER 1000
"""


def write_context(out_dir: Path, *, project: Path, python_version: str, gokart_k8s_requirement: str) -> list[Path]:
    name, lines = project_requirements(project)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "Dockerfile", out_dir / "requirements.txt"]
    written[0].write_text(dockerfile(python_version))
    written[1].write_text("\n".join(requirements(name, lines, gokart_k8s_requirement)) + "\n")
    return written


def _installed_requirement() -> str:
    try:
        return f"gokart-k8s=={importlib.metadata.version('gokart-k8s')}"
    except importlib.metadata.PackageNotFoundError:
        return "gokart-k8s"


def register(subparsers: Any) -> None:
    """``gokart-k8s image`` (registered by :mod:`gokart_k8s.cli`)."""
    parser = subparsers.add_parser(
        "image", help="write the Dockerfile and requirements.txt of the pipelines' base image (dependencies only)"
    )
    parser.add_argument("-o", "--output-dir", type=Path, required=True, help="directory of the build context")
    parser.add_argument("--project", type=Path, default=Path("."), help="project directory (default: here)")
    parser.add_argument(
        "--python",
        default=f"{sys.version_info.major}.{sys.version_info.minor}",
        help="Python version of the base image (default: this interpreter's)",
    )
    parser.add_argument(
        "--gokart-k8s",
        dest="gokart_k8s_requirement",
        default=_installed_requirement(),
        help="requirement line for gokart_k8s (default: the installed version; a VCS URL or path works too)",
    )
    parser.add_argument("--debug", action="store_true")
    parser.set_defaults(handler=_cmd_image)


def _cmd_image(args: argparse.Namespace, rest: list[str]) -> int:
    if rest:
        raise ConfigurationError(f"image: unrecognized arguments: {' '.join(rest)}")
    if not re.fullmatch(r"3\.\d+", args.python):
        raise ConfigurationError(f"--python must be a version like 3.11, got {args.python!r}.")
    for path in write_context(
        args.output_dir,
        project=args.project,
        python_version=args.python,
        gokart_k8s_requirement=args.gokart_k8s_requirement,
    ):
        print(path)
    return 0
