"""Where packages live: ``<workspace>/gokart_k8s/code/<sha256>.tar.gz``, written create-only.

A package's name is the hash of its bytes, so an existing object *is* the package: the upload is
skipped when it is there, and otherwise made create-only -- ``if_generation_match=0`` on gs://
(https://cloud.google.com/storage/docs/request-preconditions), an exclusive hard link on a local
disk -- so two drivers packing the same code at once both succeed and nothing is ever replaced.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gokart_k8s.codepackage.contents import digest
from gokart_k8s.errors import CodePackageError

#: The folder of packages under the workspace.
CODE_PREFIX = "gokart_k8s/code"


def package_url(workspace: str, sha256: str) -> str:
    return f"{workspace.rstrip('/')}/{CODE_PREFIX}/{sha256}.tar.gz"


def upload(workspace: str, data: bytes) -> tuple[str, bool]:
    """Store ``data`` under its hash; returns its URL and whether this call created it."""
    sha256 = digest(data)
    url = package_url(workspace, sha256)
    if url.startswith("gs://"):
        from gokart_k8s.cache.gcs import gcs_filesystem

        fs = gcs_filesystem()
        if fs.exists(url):
            return url, False
        if not fs.write_new(url, data):
            raise CodePackageError(
                f"{url} already exists with other bytes than its name says; the cache holds a damaged "
                "package. Delete that object and run again."
            )
        return url, True
    if "://" in url:
        raise CodePackageError(
            f"Code packages need a gs:// or local workspace, got {workspace!r}. Use one, or set "
            "[gokart_k8s] code_package = off and build the image with the pipeline's code."
        )
    path = Path(url)
    if path.exists():
        return url, False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            os.link(tmp, path)  # atomic and exclusive: fails if another writer got there first
        except FileExistsError:
            return url, False
    finally:
        os.remove(tmp)
    return url, True


def download(url: str) -> bytes:
    """The bytes stored at ``url`` (gs:// or a local path)."""
    try:
        if url.startswith("gs://"):
            from gokart_k8s.cache.gcs import gcs_filesystem

            return gcs_filesystem().read_bytes(url)
        return Path(url).read_bytes()
    except FileNotFoundError as exc:
        raise CodePackageError(
            f"The code package {url} does not exist: the cache was cleaned after the run or schedule "
            "was started. Run (or schedule) the pipeline again to upload it."
        ) from exc
