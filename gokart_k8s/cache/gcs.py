"""gs:// for gokart through ``google-cloud-storage``, with create-only commits.

gokart reaches GCS through exactly one seam: ``gokart.gcs_config.GCSConfig().get_gcs_client()``.
Its seven call sites (``GCSTarget``, ``ObjectStorage.exists/get_timestamp``, the zip client for
models and large data frames, and the metadata-label client) use the returned object as a luigi
``FileSystem`` plus, for timestamps and labels, the googleapiclient idiom
``.client.objects().get(...).execute()`` / ``.patch(...).execute()``. :class:`GCSFileSystem`
provides both on top of ``google-cloud-storage``, and :func:`install_gcs_filesystem` replaces the
*method* ``GCSConfig.get_gcs_client`` (an instance attribute would be shadowed by the client
gokart caches on each ``GCSConfig`` instance, and luigi keeps those instances across builds).

This is the only module of gokart_k8s that imports ``google.cloud.storage`` / ``google.api_core``.

Commits
-------
Every output is one object upload, and GCS makes an upload visible only once it has completed
(https://cloud.google.com/storage/docs/consistency), so a reader never sees half an output.
Outputs are written **create-only** (``if_generation_match=0``,
https://cloud.google.com/storage/docs/request-preconditions): when a step runs twice at once (a
restarted driver racing an old pod), exactly one upload wins and the other gets 412. A 412 is also
what a *retried* upload gets for its own earlier success, because google-cloud-storage 3.x retries
uploads by default (CHANGELOG 3.0.0). Both cases mean "the output exists": the loser checks the
winning object is there, logs whether its bytes were identical, and carries on.

gokart's side files under ``<workspace>/log/`` (task_params, random_seed, module_versions,
processing_time, task_log, task_info) are rewritten on every attempt of a step by design, so they
stay last-writer-wins; :func:`is_side_file` is the rule (gokart's own regex in
``gcs_obj_metadata_client.py``). Nothing decides completeness from them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import google.auth
import google.auth.exceptions
import google_crc32c
import luigi.target
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from gokart_k8s.errors import CacheError

__all__ = [
    "GCSFileSystem",
    "GCSInstallation",
    "install_gcs_filesystem",
    "installed_filesystem",
    "is_side_file",
    "make_storage_client",
]

logger = logging.getLogger(__name__)

#: Seconds for one HTTP request before the retry policy takes over.
DEFAULT_TIMEOUT = 60.0
_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# Same rule as gokart's GCSObjectMetadataClient._is_log_related_path: these files are rewritten.
_SIDE_FILE_RE = re.compile(
    r"^gs://.+?/log/(processing_time/|task_info/|task_log/|module_versions/|random_seed/|task_params/).+"
)


def is_side_file(path: str) -> bool:
    """True for gokart's ``<workspace>/log/...`` bookkeeping files, which are legitimately rewritten."""
    return _SIDE_FILE_RE.match(path) is not None


def split_gs_path(path: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``; raises :class:`CacheError` for other schemes."""
    parts = urlsplit(path)
    if parts.scheme != "gs" or not parts.netloc:
        raise CacheError(f"{path!r} is not a gs:// path: expected gs://BUCKET/KEY.")
    return parts.netloc, parts.path.lstrip("/")


def _credential_env_name() -> str:
    # gokart reads service-account JSON (or a path to it) from the variable GCSConfig names.
    import gokart.gcs_config

    return str(gokart.gcs_config.GCSConfig().gcs_credential_name)


def make_storage_client(*, credential_env: str | None = None) -> storage.Client:
    """Build the storage client the same way for real GCS and for the emulator.

    Order: ``STORAGE_EMULATOR_HOST`` (anonymous, the client handles it), then gokart's
    credential variable (``GCS_CREDENTIAL`` by default: service-account JSON or a path to it),
    then application default credentials, which is what Workload Identity provides in a pod
    (https://cloud.google.com/kubernetes-engine/docs/how-to/workload-identity).
    """
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        return storage.Client()
    name = credential_env or _credential_env_name()
    value = os.environ.get(name)
    if value:
        try:
            factory: Any = service_account.Credentials
            if os.path.isfile(value):
                creds = factory.from_service_account_file(value, scopes=_SCOPES)
            else:
                creds = factory.from_service_account_info(json.loads(value), scopes=_SCOPES)
        except (ValueError, KeyError) as exc:
            raise CacheError(
                f"The environment variable {name} does not hold a usable service-account key: {exc}. "
                f"Set it to the key's JSON or to the path of the JSON file, or unset it to use "
                f"application default credentials."
            ) from exc
        return storage.Client(credentials=creds, project=creds.project_id)
    try:
        creds, project = google.auth.default(scopes=_SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CacheError(
            "No Google Cloud credentials found for the gs:// cache. Set one of: Workload Identity on "
            "the pod's service account, GOOGLE_APPLICATION_CREDENTIALS, "
            f"{name} (service-account JSON or its path), or run "
            "`gcloud auth application-default login` on a workstation."
        ) from exc
    return storage.Client(credentials=creds, project=project)


def _crc32c_of_file(filename: str) -> str:
    checksum: Any = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
    with open(filename, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode("ascii")


class _DeleteOnCloseFile(io.FileIO):
    """A downloaded temporary file, removed when closed (what luigi's GCSClient.download returns)."""

    def close(self) -> None:
        super().close()
        try:
            os.remove(str(self.name))
        except OSError:
            pass

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False


class _Request:
    def __init__(self, call: Callable[[], dict[str, Any]]) -> None:
        self._call = call

    def execute(self) -> dict[str, Any]:
        return self._call()


class _Objects:
    """The two googleapiclient calls gokart makes directly (timestamps and metadata labels)."""

    def __init__(self, fs: GCSFileSystem) -> None:
        self._fs = fs

    def get(self, *, bucket: str, object: str, **_: Any) -> _Request:
        return _Request(lambda: self._fs._object_resource(bucket, object))

    def patch(self, *, bucket: str, object: str, body: dict[str, Any], **_: Any) -> _Request:
        return _Request(lambda: self._fs._patch_metadata(bucket, object, body))


class _ApiShim:
    def __init__(self, fs: GCSFileSystem) -> None:
        self._objects = _Objects(fs)

    def objects(self) -> _Objects:
        return self._objects


class GCSFileSystem(luigi.target.FileSystem):
    """A luigi ``FileSystem`` for ``gs://`` paths built on ``google-cloud-storage``.

    ``client``: a ``storage.Client``; by default one is made on first use by
    :func:`make_storage_client` (so installing costs nothing until a gs:// path is touched).
    ``retry``: the policy for every request; the default is the library's ``DEFAULT_RETRY``
    (429, 408, 5xx and connection errors, exponential backoff from 1 s, 120 s deadline). Derive
    another policy from it (``DEFAULT_RETRY.with_delay(...)``): a bare ``Retry()`` predicate does
    not recognise the upload/download errors, which are not ``google.api_core`` exceptions.
    ``rewritable``: which paths are last-writer-wins instead of create-only.
    """

    def __init__(
        self,
        client: storage.Client | None = None,
        *,
        retry: Retry = DEFAULT_RETRY,
        timeout: float = DEFAULT_TIMEOUT,
        rewritable: Callable[[str], bool] = is_side_file,
    ) -> None:
        self._storage_client = client
        self._lock = threading.Lock()
        self.retry = retry
        self.timeout = timeout
        self._rewritable = rewritable
        self._api = _ApiShim(self)

    # -- plumbing -------------------------------------------------------------------------------
    @property
    def storage_client(self) -> storage.Client:
        with self._lock:
            if self._storage_client is None:
                self._storage_client = make_storage_client()
            return self._storage_client

    @property
    def client(self) -> _ApiShim:
        """``.objects().get/patch(...).execute()``, the googleapiclient idiom gokart calls directly."""
        return self._api

    def _path_to_bucket_and_key(self, path: str) -> tuple[str, str]:
        return split_gs_path(path)

    def _blob(self, path: str) -> storage.Blob:
        bucket, key = split_gs_path(path)
        return self.storage_client.bucket(bucket).blob(key)

    def _object_resource(self, bucket: str, key: str) -> dict[str, Any]:
        blob = self.storage_client.bucket(bucket).get_blob(key, retry=self.retry, timeout=self.timeout)
        if blob is None:
            raise FileNotFoundError(f"gs://{bucket}/{key} does not exist.")
        resource = dict(blob._properties)
        # googleapiclient returns RFC 3339 text; gokart casts 'updated' to datetime, so give one.
        resource["updated"] = blob.updated
        resource["metadata"] = dict(blob.metadata or {})
        return resource

    def _patch_metadata(self, bucket: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        blob = self.storage_client.bucket(bucket).blob(key)
        # A None value deletes a key, as in the JSON API's PATCH semantics.
        blob.metadata = dict(body.get("metadata") or {})
        blob.patch(retry=self.retry, timeout=self.timeout)
        return dict(blob._properties)

    # -- queries --------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        """True if the object exists, or if ``path`` is a "directory" (luigi's GCSClient rule)."""
        blob = self._blob(path)
        if blob.name and blob.exists(retry=self.retry, timeout=self.timeout):
            return True
        return self.isdir(path)

    def isdir(self, path: str) -> bool:
        bucket, key = split_gs_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        blobs = self.storage_client.list_blobs(
            bucket, prefix=prefix, max_results=1, retry=self.retry, timeout=self.timeout
        )
        return any(True for _ in blobs)

    def listdir(self, path: str) -> Iterator[str]:
        """Every object under ``path`` (recursively), as gs:// paths, like luigi's GCSClient."""
        bucket, key = split_gs_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        for blob in self.storage_client.list_blobs(bucket, prefix=prefix, retry=self.retry, timeout=self.timeout):
            yield f"gs://{bucket}/{blob.name}"

    def list_children(self, path: str) -> set[str]:
        """Names directly under the directory ``path``: objects and sub-"directories".

        One ``objects.list`` with ``delimiter='/'`` per 1000 entries; never ``match_glob``, which
        the emulator ignores (fake-gcs-server) and which is not needed for an exact-name test.
        """
        bucket, key = split_gs_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        iterator = self.storage_client.list_blobs(
            bucket, prefix=prefix, delimiter="/", retry=self.retry, timeout=self.timeout
        )
        names = {blob.name[len(prefix) :] for blob in iterator}
        names.update(p[len(prefix) :].rstrip("/") for p in iterator.prefixes)
        names.discard("")
        return names

    def modification_time(self, path: str) -> datetime:
        bucket, key = split_gs_path(path)
        updated = self._object_resource(bucket, key)["updated"]
        assert isinstance(updated, datetime)
        return updated

    # -- reads ----------------------------------------------------------------------------------
    def download(self, path: str, chunksize: int | None = None, chunk_callback: Any = None) -> io.FileIO:
        """Download to a temporary file and return it open for reading (deleted on close).

        The library verifies the checksum of the whole object (``checksum="auto"``), so a
        truncated transfer raises instead of being read as a complete output.
        """
        fd, tmp = tempfile.mkstemp(prefix="gokart-k8s-dl-")
        os.close(fd)
        try:
            self._blob(path).download_to_filename(tmp, retry=self.retry, timeout=self.timeout)
        except gexc.NotFound as exc:
            os.remove(tmp)
            raise FileNotFoundError(f"{path} does not exist.") from exc
        except BaseException:
            os.remove(tmp)
            raise
        return _DeleteOnCloseFile(tmp, "r")

    def read_bytes(self, path: str) -> bytes:
        try:
            return bytes(self._blob(path).download_as_bytes(retry=self.retry, timeout=self.timeout))
        except gexc.NotFound as exc:
            raise FileNotFoundError(f"{path} does not exist.") from exc

    # -- writes ---------------------------------------------------------------------------------
    def put(self, filename: str, dest_path: str, mimetype: str | None = None, chunksize: int | None = None) -> None:
        """Commit the local file ``filename`` as the object ``dest_path`` (create-only, see module doc)."""
        self._commit(dest_path, filename, mimetype)

    def put_string(self, contents: str | bytes, dest_path: str, mimetype: str | None = None) -> None:
        data = contents.encode() if isinstance(contents, str) else contents
        fd, tmp = tempfile.mkstemp(prefix="gokart-k8s-up-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            self._commit(dest_path, tmp, mimetype)
        finally:
            os.remove(tmp)

    def write_new(self, path: str, data: bytes) -> bool:
        """Create ``path`` with ``data`` unless it exists: True if ``path`` now holds ``data``.

        False means another writer created it first with other bytes (used for checkpoints,
        which pick the next sequence number instead).
        """
        blob = self._blob(path)
        try:
            blob.upload_from_string(data, if_generation_match=0, retry=self.retry, timeout=self.timeout)
            return True
        except gexc.PreconditionFailed:
            existing = blob.bucket.get_blob(blob.name, retry=self.retry, timeout=self.timeout)
            checksum: Any = google_crc32c.Checksum(data)  # type: ignore[no-untyped-call]
            mine = base64.b64encode(checksum.digest()).decode("ascii")
            return existing is not None and existing.crc32c == mine

    def create_only(self, path: str) -> bool:
        """True if a write to ``path`` must not replace an existing object."""
        return not self._rewritable(path)

    def _commit(self, dest_path: str, filename: str, mimetype: str | None) -> None:
        blob = self._blob(dest_path)
        if not self.create_only(dest_path):
            blob.upload_from_filename(filename, content_type=mimetype, retry=self.retry, timeout=self.timeout)
            return
        for _ in range(3):
            try:
                blob.upload_from_filename(
                    filename,
                    content_type=mimetype,
                    if_generation_match=0,
                    retry=self.retry,
                    timeout=self.timeout,
                )
                return
            except gexc.PreconditionFailed:
                if self._settle_lost_race(blob, dest_path, filename):
                    return
        raise CacheError(
            f"Could not commit {dest_path}: it kept appearing and disappearing while uploading. "
            f"Another process is deleting it; make sure no other run with rerun=True shares the workspace."
        )

    def _settle_lost_race(self, blob: storage.Blob, dest_path: str, filename: str) -> bool:
        """After a 412 on a create-only upload: True if the existing object stands as the output."""
        winner = blob.bucket.get_blob(blob.name, retry=self.retry, timeout=self.timeout)
        if winner is None:
            return False  # deleted in between (a rerun); try creating again
        if winner.crc32c == _crc32c_of_file(filename):
            logger.debug("%s already committed with identical bytes (a retried or repeated upload).", dest_path)
        else:
            logger.warning(
                "%s was committed first by another process (generation %s); keeping it and "
                "discarding this process's bytes. Steps are expected to be deterministic.",
                dest_path,
                winner.generation,
            )
        return True

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> bool:
        """Delete the object and, if ``recursive``, everything under ``path/``. False if nothing was there."""
        blob = self._blob(path)
        removed = False
        if blob.name:
            try:
                blob.delete(retry=self.retry, timeout=self.timeout)
                removed = True
            except gexc.NotFound:
                pass  # a retried delete can 404 for its own success; deleting is idempotent
        if recursive:
            for child in list(self.listdir(path)):
                try:
                    self._blob(child).delete(retry=self.retry, timeout=self.timeout)
                    removed = True
                except gexc.NotFound:
                    pass
        return removed

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """GCS has no directories; a prefix exists once an object under it does."""
        if raise_if_exists and self.isdir(path):
            raise luigi.target.FileAlreadyExists(path)

    def copy(self, source_path: str, destination_path: str) -> None:
        """Server-side copy of one object, or of every object under a "directory"."""
        src_bucket, src_key = split_gs_path(source_path)
        dst_bucket, dst_key = split_gs_path(destination_path)
        bucket = self.storage_client.bucket(src_bucket)
        target = self.storage_client.bucket(dst_bucket)
        source = bucket.get_blob(src_key, retry=self.retry, timeout=self.timeout) if src_key else None
        if source is not None:
            bucket.copy_blob(source, target, dst_key, retry=self.retry, timeout=self.timeout)
            return
        prefix = src_key.rstrip("/") + "/"
        for blob in self.storage_client.list_blobs(src_bucket, prefix=prefix, retry=self.retry):
            new_key = dst_key.rstrip("/") + "/" + blob.name[len(prefix) :]
            bucket.copy_blob(blob, target, new_key, retry=self.retry, timeout=self.timeout)

    def move(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        """Copy then delete: GCS has no rename, so a move of several objects is not atomic."""
        if raise_if_exists and self.exists(dest):
            raise luigi.target.FileAlreadyExists(dest)
        self.copy(path, dest)
        self.remove(path)

    def rename(self, path: str, dest: str, raise_if_exists: bool = False) -> None:
        self.move(path, dest, raise_if_exists)


def probe_workspace(workspace_directory: str, *, filesystem: GCSFileSystem | None = None) -> None:
    """Check a gs:// workspace can be listed, written and deleted; :class:`CacheError` if not.

    Uses ``objects.list`` rather than ``buckets.get``: ``roles/storage.objectAdmin``, the role a
    cache needs, does not include ``storage.buckets.get``
    (https://cloud.google.com/storage/docs/access-control/iam-roles).
    """
    fs = filesystem or gcs_filesystem()
    bucket, key = split_gs_path(workspace_directory)
    prefix = key.rstrip("/") + "/" if key else ""
    where = f"gs://{bucket}"
    grant = (
        f"Grant the pod's Kubernetes service account (Workload Identity) or your credentials "
        f"roles/storage.objectAdmin on {where}."
    )
    # Preflight must answer quickly: retry transient errors, but not for the library's 120 s.
    retry = fs.retry.with_timeout(20.0)
    try:
        client = fs.storage_client
        list(client.list_blobs(bucket, prefix=prefix, max_results=1, retry=retry, timeout=fs.timeout))
        probe = client.bucket(bucket).blob(f"{prefix}gokart_k8s/preflight/{os.getpid()}-{id(fs):x}")
        probe.upload_from_string(b"", retry=retry, timeout=fs.timeout)
        probe.delete(retry=retry, timeout=fs.timeout)
    except gexc.NotFound as exc:
        raise CacheError(
            f"The cache bucket {bucket} does not exist (workspace_directory={workspace_directory}). "
            f"Create it (gcloud storage buckets create {where}) or set workspace_directory to an "
            f"existing bucket."
        ) from exc
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise CacheError(
            f"Permission denied on the cache bucket {bucket} (workspace_directory="
            f"{workspace_directory}): {exc.message}. {grant}"
        ) from exc
    except google.auth.exceptions.GoogleAuthError as exc:
        raise CacheError(
            f"The credentials for the cache bucket {bucket} do not work: {exc}. Set "
            f"GOOGLE_APPLICATION_CREDENTIALS or {_credential_env_name()}, or use Workload Identity."
        ) from exc
    except (gexc.GoogleAPICallError, gexc.RetryError) as exc:
        raise CacheError(
            f"The cache bucket {bucket} cannot be reached (workspace_directory={workspace_directory}): "
            f"{exc}. Check the network and STORAGE_EMULATOR_HOST, then retry."
        ) from exc


# -- installation at gokart's seam --------------------------------------------------------------

_install_lock = threading.Lock()
_original_get_gcs_client: Any = None
_installed: GCSInstallation | None = None


class GCSInstallation:
    """The handle :func:`install_gcs_filesystem` returns; a context manager that uninstalls."""

    def __init__(self, filesystem: GCSFileSystem) -> None:
        self.filesystem = filesystem

    def uninstall(self) -> None:
        """Give gokart back its own luigi/googleapiclient client (idempotent)."""
        global _installed, _original_get_gcs_client
        import gokart.gcs_config

        with _install_lock:
            if _installed is not self:
                return
            # Replace the method, not an instance value: see the module docstring.
            config_cls: Any = gokart.gcs_config.GCSConfig
            config_cls.get_gcs_client = _original_get_gcs_client
            _original_get_gcs_client = None
            _installed = None

    def __enter__(self) -> GCSFileSystem:
        return self.filesystem

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.uninstall()


def install_gcs_filesystem(filesystem: GCSFileSystem | None = None) -> GCSInstallation:
    """Make every gokart gs:// path go through a :class:`GCSFileSystem`.

    Replaces the method ``gokart.gcs_config.GCSConfig.get_gcs_client``. Idempotent: a second call
    without ``filesystem`` returns the current installation; with one, it swaps the filesystem.
    Use the result as a context manager (or call ``.uninstall()``) to restore gokart's client.
    """
    global _installed, _original_get_gcs_client
    import gokart.gcs_config

    with _install_lock:
        if _installed is not None and (filesystem is None or filesystem is _installed.filesystem):
            return _installed
        fs = filesystem or GCSFileSystem()
        installation = GCSInstallation(fs)
        if _installed is None:
            _original_get_gcs_client = gokart.gcs_config.GCSConfig.get_gcs_client

        def get_gcs_client(self: object) -> GCSFileSystem:
            return fs

        config_cls: Any = gokart.gcs_config.GCSConfig  # replace the method, see the module docstring
        config_cls.get_gcs_client = get_gcs_client
        _installed = installation
        return installation


def installed_filesystem() -> GCSFileSystem | None:
    """The installed :class:`GCSFileSystem`, or None if gokart uses its own client."""
    return None if _installed is None else _installed.filesystem


def gcs_filesystem() -> GCSFileSystem:
    """The installed filesystem, or a process-wide default one (for checkpoints and listings)."""
    global _default_fs
    fs = installed_filesystem()
    if fs is not None:
        return fs
    with _install_lock:
        if _default_fs is None:
            _default_fs = GCSFileSystem()
        return _default_fs


_default_fs: GCSFileSystem | None = None
