"""Code packages: the pipeline's code and configuration shipped with the run, not baked into the image.

Glossary: a *code package* is a content-addressed archive (named by the sha256 of its bytes) of
the pipeline's *import roots* -- the directories the driver imported the steps' modules from --
plus the luigi config files and ``GOKART_K8S_*`` settings in force. The image then needs only the
dependencies; a change to a step is a new package, not a new image. The pattern is Metaflow's and
Flyte's (a hashed tarball in the object store, fetched by a small bootstrap in the pod).

Phases, by where they run:

* **before submission** (driver): :func:`prepare` gathers (:mod:`.sources`), checks the size and
  builds the deterministic archive (:mod:`.contents`, pure), and uploads it create-only into
  ``<workspace>/gokart_k8s/code/<sha256>.tar.gz`` (:mod:`.store`); :meth:`CodePackage.env` is what
  every step pod gets;
* **in the pod**: :func:`gokart_k8s.codepackage.pod.activate_from_environment` downloads, verifies,
  extracts and activates it before the step's module is imported.

``[gokart_k8s] code_package = auto`` (default) packs for the kubernetes and local-cluster backends;
``off`` keeps the image-only path, where the image must hold the code (and the pod refuses a
unique-id mismatch with exit 43).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gokart_k8s.codepackage.contents import Contents, archive, check_size, digest
from gokart_k8s.codepackage.pod import SHA256_ENV, URL_ENV
from gokart_k8s.codepackage.sources import gather
from gokart_k8s.codepackage.store import package_url, upload
from gokart_k8s.errors import ConfigurationError

__all__ = ["MODES", "CodePackage", "build", "enabled", "pinned", "prepare"]

MODES = ("auto", "off")


@dataclass(frozen=True)
class CodePackage:
    """A package as the driver knows it: where it is, its hash, what it holds, what it cost."""

    url: str
    sha256: str
    files: int
    size: int
    compressed: int
    created: bool
    seconds_pack: float = 0.0
    seconds_upload: float = 0.0
    #: Given to this process by its environment (a scheduled driver), not packed here.
    pinned: bool = False
    #: The archive's bytes when packed here (empty when pinned).
    data: bytes = field(default=b"", repr=False, compare=False)

    def env(self) -> dict[str, str]:
        """The environment variables that make a step pod run this package."""
        return {URL_ENV: self.url, SHA256_ENV: self.sha256}

    def describe(self) -> str:
        if self.pinned:
            return f"code package {self.sha256[:12]}: pinned by the schedule ({self.url})"
        state = "uploaded" if self.created else "already in the cache"
        return (
            f"code package {self.sha256[:12]}: {self.files} files, {self.size / 1e6:.1f} MB "
            f"({self.compressed / 1e6:.2f} MB packed), {state}"
        )


def pinned(environ: Mapping[str, str]) -> CodePackage | None:
    """The package this process itself runs from (a scheduled driver pod: the CronJob pins it by
    hash); its step pods get the same one, so a rerun of a past day runs that schedule's code."""
    url, sha256 = environ.get(URL_ENV), environ.get(SHA256_ENV)
    if not url or not sha256:
        return None
    return CodePackage(url=url, sha256=sha256, files=0, size=0, compressed=0, created=False, pinned=True)


def enabled(mode: str, backend: str) -> bool:
    """Whether a run on ``backend`` ships a code package under setting ``code_package=mode``."""
    if mode not in MODES:
        raise ConfigurationError(f"code_package must be one of {', '.join(MODES)}, got {mode!r}.")
    return mode == "auto" and backend in ("kubernetes", "local-cluster")


def build(contents: Contents, *, limit_bytes: int) -> bytes:
    """Check the size, then the archive bytes (pure)."""
    check_size(contents, limit_bytes)
    return archive(contents)


def prepare(
    import_roots: Sequence[str],
    workspace: str,
    *,
    limit_mb: int,
    upload_it: bool = True,
    config_files: Sequence[str] | None = None,
) -> CodePackage:
    """Pack ``import_roots`` with the config in force (``config_files``: by default the luigi config
    files this process read) and store the package in ``workspace``."""
    started = time.perf_counter()
    contents = gather(import_roots, config_files=config_files)
    data = build(contents, limit_bytes=limit_mb * 1_000_000)
    sha256 = digest(data)
    packed = time.perf_counter()
    created = False
    url = package_url(workspace, sha256)
    if upload_it:
        url, created = upload(workspace, data)
    return CodePackage(
        url=url,
        sha256=sha256,
        files=len(contents.files()),
        size=contents.size(),
        compressed=len(data),
        created=created,
        seconds_pack=packed - started,
        seconds_upload=time.perf_counter() - packed,
        data=data,
    )
