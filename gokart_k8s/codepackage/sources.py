"""Reading the driver's disk: which import roots to pack, their files, the config in force.

The I/O half of packing; :mod:`gokart_k8s.codepackage.contents` decides, this module only reads.
"""

from __future__ import annotations

import dataclasses
import os
import site
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from gokart_k8s.codepackage.contents import (
    ALWAYS_IGNORED,
    IGNORE_FILE,
    Contents,
    IgnoreRules,
    PackedFile,
    select,
    settings_environment,
)

#: Seconds git may take to list one root (a huge untracked tree is the user's to ignore).
GIT_TIMEOUT_SECONDS = 60.0


def installed_locations() -> list[Path]:
    """Directories that hold installed software, never the pipeline's own code: site-packages,
    the interpreter's prefixes (the standard library) and the user site."""
    places = [sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()]
    user_site = site.getusersitepackages()
    if isinstance(user_site, str):
        places.append(user_site)
    return [Path(p).resolve() for p in places if p]


def package_roots(import_roots: Sequence[str]) -> list[Path]:
    """The import roots worth packing, in sys.path order: the ones inside a virtual environment,
    site-packages or the interpreter are provided by the image and left out (so is gokart_k8s
    itself when it is installed there)."""
    excluded = installed_locations()
    kept: list[Path] = []
    for raw in import_roots:
        root = Path(raw).resolve()
        if not root.is_dir() or root in kept:
            continue
        if any(part in ("site-packages", "dist-packages") for part in root.parts):
            continue
        if any(root == place or place in root.parents for place in excluded):
            continue
        if (root / "pyvenv.cfg").exists():
            continue
        kept.append(root)
    return kept


def list_files(root: Path) -> list[str]:
    """Every file under ``root`` that version control would keep (relative, ``/``-separated).

    In a git work tree: ``git ls-files --cached --others --exclude-standard``, i.e. tracked files
    plus untracked ones that no .gitignore excludes (https://git-scm.com/docs/git-ls-files).
    Elsewhere: a walk that skips hidden directories and applies the root's ``.gitignore``.
    """
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        done = None
    if done is not None and done.returncode == 0:
        names = [n for n in done.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
        return sorted({n for n in names if (root / n).is_file()})
    gitignore = root / ".gitignore"
    rules = IgnoreRules.parse(gitignore.read_text(errors="replace")) if gitignore.is_file() else IgnoreRules()
    found: list[str] = []
    for here, dirs, files in os.walk(root):
        rel = Path(here).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if not d.startswith(".")
            and not (Path(here) / d / "pyvenv.cfg").exists()
            and not rules.ignores(prefix + d + "/x")
        )
        found += [prefix + f for f in files if not f.startswith(".") and not rules.ignores(prefix + f)]
    return sorted(found)


def root_rules(root: Path) -> IgnoreRules:
    """Built-in ignores plus the root's ``.gokart-k8s-ignore``."""
    rules = IgnoreRules(ALWAYS_IGNORED)
    own = root / IGNORE_FILE
    if own.is_file():
        rules = rules + IgnoreRules.parse(own.read_text(errors="replace"))
    return rules


def read_root(root: Path) -> tuple[PackedFile, ...]:
    chosen = select(list_files(root), root_rules(root))
    return tuple(PackedFile(name, (root / name).read_bytes(), str(root / name)) for name in chosen)


def setting_variable_names() -> list[str]:
    from gokart_k8s.settings import ENV_PREFIX, Settings

    return [ENV_PREFIX + f.name.upper() for f in dataclasses.fields(Settings) if f.name not in ("catalog", "pools")]


def gather(
    import_roots: Sequence[str],
    *,
    config_files: Iterable[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Contents:
    """Read what a package of ``import_roots`` holds: their files, the luigi config files the
    driver read (by default :func:`gokart_k8s.settings.config_files`) and the settings variables."""
    from gokart_k8s.settings import config_files as luigi_config_files

    files = list(luigi_config_files() if config_files is None else config_files)
    configs = tuple(PackedFile(Path(p).name, Path(p).read_bytes(), str(Path(p).resolve())) for p in files)
    env = os.environ if environ is None else environ
    return Contents(
        roots=tuple(read_root(root) for root in package_roots(import_roots)),
        config_files=configs,
        environment=settings_environment(env, setting_variable_names()),
    )
