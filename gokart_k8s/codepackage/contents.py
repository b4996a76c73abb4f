"""What goes into a code package, and the archive's bytes: the pure core of the room.

A code package is one gzip'd tar archive, named by the sha256 of its bytes::

    manifest.json           format, the import roots in sys.path order, the config files, the settings
    roots/00/pkg/step.py    the files of the first import root (relative to it)
    roots/01/...            the next root
    config/00-luigi.cfg     the luigi config files the driver read, in the order luigi read them

The archive is *deterministic*: entries sorted, every mtime 0, owner 0:0 without names, modes
0644, and a gzip header without a file name or time (https://www.rfc-editor.org/rfc/rfc1952#page-7).
The same sources therefore give the same bytes and the same hash, so a second run of unchanged
code uploads nothing new, and the hash alone names the code a pod runs.

Which files of a root (:func:`select`): every ``.py`` file, and every other file that lies inside
a Python package (a directory with ``__init__.py``) -- the package data a module opens with
``importlib.resources``. Minus the ignore rules: ``.gitignore`` (through git when the root is in a
repository), ``.gokart-k8s-ignore`` and the built-in :data:`ALWAYS_IGNORED`.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from gokart_k8s.errors import CodePackageError

#: Version of the archive layout; a pod refuses a layout it does not know.
FORMAT = 1
#: The project ignore file, read in each import root (gitignore spelling, a simple subset).
IGNORE_FILE = ".gokart-k8s-ignore"
#: Never packed: caches, virtual environments, version-control and tool directories.
ALWAYS_IGNORED = (
    "__pycache__/",
    "*.pyc",
    "*.pyo",
    ".git/",
    ".hg/",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    "node_modules/",
    "site-packages/",
    "dist-packages/",
    "*.egg-info/",
)


@dataclass(frozen=True)
class IgnoreRules:
    """gitignore-style patterns (a subset): ``name`` matches a file or directory of that name at any
    depth, ``dir/`` only directories, a pattern with a ``/`` matches the path from the root
    (``/build/`` or ``data/*.csv``), ``!pattern`` takes a path back in; the last match wins, as in
    git (https://git-scm.com/docs/gitignore#_pattern_format)."""

    patterns: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        lines = (line.strip() for line in text.splitlines())
        return cls(tuple(line for line in lines if line and not line.startswith("#")))

    def __add__(self, other: IgnoreRules) -> IgnoreRules:
        return IgnoreRules(self.patterns + other.patterns)

    def ignores(self, path: str) -> bool:
        """True if ``path`` (relative, ``/``-separated, a file) or a directory above it is ignored."""
        parts = path.split("/")
        ignored = False
        for pattern in self.patterns:
            negate = pattern.startswith("!")
            if negate:
                pattern = pattern[1:]
            if _matches(pattern, parts):
                ignored = not negate
        return ignored


def _matches(pattern: str, parts: list[str]) -> bool:
    dir_only = pattern.endswith("/")
    pattern = pattern.strip("/") if dir_only else pattern
    anchored = "/" in pattern
    pattern = pattern.lstrip("/")
    # Candidates: every directory above the file, and the file itself unless dir_only.
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts) - (1 if dir_only else 0))]
    if anchored:
        return any(fnmatch.fnmatchcase(p, pattern) for p in prefixes)
    return any(fnmatch.fnmatchcase(p.rsplit("/", 1)[-1], pattern) for p in prefixes)


def select(paths: Iterable[str], rules: IgnoreRules) -> list[str]:
    """The files of one root that belong in the package, sorted.

    ``paths`` are every file of the root (relative, ``/``-separated); a non-``.py`` file is package
    data only when its directory is a package, i.e. ``paths`` holds that directory's ``__init__.py``.
    """
    kept = [p for p in paths if not rules.ignores(p)]
    packages = {p.rsplit("/", 1)[0] for p in kept if p.endswith("/__init__.py")}
    chosen = [p for p in kept if p.endswith(".py") or ("/" in p and p.rsplit("/", 1)[0] in packages)]
    return sorted(set(chosen))


@dataclass(frozen=True)
class PackedFile:
    """One file of the package: its name in the archive and its bytes."""

    name: str
    data: bytes
    #: Where it came from, for messages (absolute path on the driver's machine).
    source: str = ""


@dataclass(frozen=True)
class Contents:
    """Everything a package holds, before it becomes bytes."""

    roots: tuple[tuple[PackedFile, ...], ...] = ()
    config_files: tuple[PackedFile, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)

    def files(self) -> list[PackedFile]:
        out = [PackedFile(f"roots/{i:02d}/{f.name}", f.data, f.source) for i, r in enumerate(self.roots) for f in r]
        out += [PackedFile(f"config/{i:02d}-{f.name}", f.data, f.source) for i, f in enumerate(self.config_files)]
        return out

    def manifest(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "roots": [f"roots/{i:02d}" for i in range(len(self.roots))],
            "config_files": [f"config/{i:02d}-{f.name}" for i, f in enumerate(self.config_files)],
            "environment": dict(sorted(self.environment.items())),
        }

    def size(self) -> int:
        return sum(len(f.data) for f in self.files())


def check_size(contents: Contents, limit_bytes: int, *, shown: int = 10) -> None:
    """Refuse a package over ``limit_bytes`` (uncompressed), naming its largest files."""
    total = contents.size()
    if total <= limit_bytes:
        return
    largest = sorted(contents.files(), key=lambda f: (-len(f.data), f.name))[:shown]
    lines = "\n".join(f"  {_megabytes(len(f.data)):>9}  {f.source or f.name}" for f in largest)
    raise CodePackageError(
        f"The code package would hold {_megabytes(total)}, more than the limit of {_megabytes(limit_bytes)} "
        f"([gokart_k8s] code_package_max_mb). The largest files:\n{lines}\n"
        f"Add them to {IGNORE_FILE} (gitignore spelling) in their import root, move data out of the "
        "package directories into the cache, or raise code_package_max_mb."
    )


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def archive(contents: Contents) -> bytes:
    """The deterministic ``.tar.gz`` bytes of ``contents`` (see the module docstring)."""
    members = [PackedFile("manifest.json", json.dumps(contents.manifest(), indent=1, sort_keys=True).encode())]
    members += contents.files()
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise CodePackageError(f"two files have one name in the code package: {sorted(names)}")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in sorted(members, key=lambda m: m.name):
            info = tarfile.TarInfo(member.name)
            info.size = len(member.data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(member.data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def digest(data: bytes) -> str:
    """The package's name: the sha256 of its archive bytes, in hex."""
    return hashlib.sha256(data).hexdigest()


def settings_environment(environ: Mapping[str, str], names: Sequence[str]) -> dict[str, str]:
    """The ``GOKART_K8S_<SETTING>`` variables in force that name a setting (``names``)."""
    return {name: environ[name] for name in sorted(names) if name in environ}
