"""In the pod: download the run's code package, verify its hash, extract it, put it first.

``gokart-k8s step`` calls :func:`activate_from_environment` before it imports the step's module.
With :data:`~gokart_k8s.codepackage.URL_ENV` set it

1. reuses ``<cache>/<sha256>/`` if an earlier step on this node extracted that package, else
2. downloads the archive and refuses it unless its sha256 is the one the driver sent (a package
   changed after upload would run code nobody packed), then extracts it with tarfile's ``data``
   filter (no absolute paths, no ``..``, no links out, https://docs.python.org/3/library/tarfile.html#tarfile.data_filter)
   into a temporary directory renamed into place, so a half-extracted package is never used;
3. puts the package's import roots first on ``sys.path``, adds its luigi config files to luigi's
   search path (later files win, so they override a ``luigi.cfg`` in the image's working
   directory) and points ``LUIGI_CONFIG_PATH`` at the last one, and sets the packed
   ``GOKART_K8S_*`` settings the pod's own environment does not set.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from gokart_k8s.codepackage.contents import FORMAT, digest
from gokart_k8s.codepackage.store import download
from gokart_k8s.errors import CodePackageError

URL_ENV = "GOKART_K8S_CODE_URL"
SHA256_ENV = "GOKART_K8S_CODE_SHA256"
#: Where packages are extracted; default ``<tmp>/gokart-k8s-code``.
CACHE_ENV = "GOKART_K8S_CODE_CACHE"
_COMPLETE = ".complete"


@dataclass(frozen=True)
class Activated:
    directory: Path
    roots: tuple[str, ...]
    config_files: tuple[str, ...]
    downloaded: bool


def cache_root(environ: MutableMapping[str, str]) -> Path:
    return Path(environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "gokart-k8s-code")


def fetch(url: str, sha256: str, cache: Path) -> tuple[Path, bool]:
    """The directory holding the verified, extracted package; and whether it was downloaded now."""
    target = cache / sha256
    if (target / _COMPLETE).exists():
        return target, False
    data = download(url)
    actual = digest(data)
    if actual != sha256:
        raise CodePackageError(
            f"The code package {url} has sha256 {actual}, but the driver packed {sha256}: it was changed "
            "after it was uploaded, and running it would run code nobody packed. Delete that object and "
            "run the pipeline again."
        )
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{sha256[:12]}-", dir=cache))
    try:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CodePackageError(f"The code package {url} cannot be extracted: {exc}") from exc
        (staging / _COMPLETE).write_text(sha256)
        try:
            staging.rename(target)
        except OSError:
            if not (target / _COMPLETE).exists():  # another step won the race only if it finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target, True


def activate(directory: Path, environ: MutableMapping[str, str]) -> Activated:
    """Make the extracted package at ``directory`` what this process imports and reads."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise CodePackageError(f"{directory} holds no readable code package manifest: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise CodePackageError(
            f"The code package has format {manifest.get('format')!r}; this image's gokart_k8s reads format "
            f"{FORMAT}. Use the same gokart_k8s version in the image as on the driver."
        )
    roots = tuple(str(directory / r) for r in manifest["roots"])
    sys.path[:0] = [r for r in roots if r not in sys.path]
    configs = tuple(str(directory / c) for c in manifest["config_files"])
    if configs:
        import luigi.configuration

        for path in configs:
            luigi.configuration.add_config_path(path)
        environ["LUIGI_CONFIG_PATH"] = configs[-1]
    for name, value in dict(manifest.get("environment") or {}).items():
        environ.setdefault(str(name), str(value))
    return Activated(directory, roots, configs, downloaded=False)


def activate_from_environment(environ: MutableMapping[str, str] | None = None) -> Activated | None:
    """Fetch and activate the package named by ``GOKART_K8S_CODE_URL``; None when there is none."""
    env = os.environ if environ is None else environ
    url = env.get(URL_ENV)
    if not url:
        return None
    sha256 = env.get(SHA256_ENV, "")
    if len(sha256) != 64:
        raise CodePackageError(f"{URL_ENV} is set but {SHA256_ENV} is not a sha256 (got {sha256!r}).")
    directory, downloaded = fetch(url, sha256, cache_root(env))
    activated = activate(directory, env)
    return Activated(activated.directory, activated.roots, activated.config_files, downloaded)
