"""Refuse an unusable cache before the pipeline starts, with a message that says what to set.

A pipeline that discovers a missing bucket or a read-only service account only when its first
step tries to save has already spent time (and perhaps a GPU node). :func:`preflight_cache` runs
once in the driver: for ``gs://`` it lists the workspace prefix, writes and deletes a probe object
(under ``<workspace>/gokart_k8s/preflight/``) and turns 404/403/credential errors into
:class:`~gokart_k8s.errors.CacheError` naming the bucket; for a local directory it creates it and
checks it is writable.
"""

from __future__ import annotations

import os
import tempfile

from gokart_k8s.errors import CacheError

__all__ = ["preflight_cache"]


def preflight_cache(workspace_directory: str) -> None:
    """Raise :class:`CacheError` unless ``workspace_directory`` can hold the pipeline's cache."""
    if workspace_directory.startswith("gs://"):
        from gokart_k8s.cache.gcs import probe_workspace  # GCS libraries only for gs://

        probe_workspace(workspace_directory)
        return
    if "://" in workspace_directory:
        raise CacheError(
            f"workspace_directory={workspace_directory!r}: gokart_k8s caches on a local directory or "
            f"gs://BUCKET/PREFIX only. Change workspace_directory to one of those."
        )
    try:
        os.makedirs(workspace_directory, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workspace_directory, prefix=".gokart-k8s-preflight-"):
            pass
    except OSError as exc:
        raise CacheError(
            f"The cache directory {workspace_directory} cannot be written: {exc.strerror}. Fix its "
            f"permissions or set workspace_directory to a writable directory."
        ) from exc
