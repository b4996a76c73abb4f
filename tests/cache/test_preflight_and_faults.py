"""Bad caches are refused before the pipeline starts; transient GCS errors are retried."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_support import FAST_RETRY

from gokart_k8s.cache.gcs import GCSFileSystem, install_gcs_filesystem
from gokart_k8s.cache.preflight import preflight_cache
from gokart_k8s.errors import CacheError
from gokart_k8s.testing.gcs import FakeGCSServer, FaultProxy


@pytest.fixture
def proxy(gcs_emulator: FakeGCSServer, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the emulator, with a filesystem installed that uses it."""
    with FaultProxy(gcs_emulator.url) as p:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", p.url)
        with install_gcs_filesystem(GCSFileSystem(retry=FAST_RETRY)):
            yield p


def test_a_usable_bucket_passes_preflight_and_leaves_no_probe_behind(proxy: FaultProxy, gcs_bucket: str) -> None:
    preflight_cache(f"gs://{gcs_bucket}/ws")
    assert GCSFileSystem(retry=FAST_RETRY).list_children(f"gs://{gcs_bucket}/ws/gokart_k8s/preflight") == set()


def test_a_missing_bucket_is_refused_by_name(proxy: FaultProxy) -> None:
    with pytest.raises(CacheError, match=r"bucket no-such-bucket does not exist.*Create it"):
        preflight_cache("gs://no-such-bucket/ws")


def test_permission_denied_names_the_bucket_and_the_role_to_grant(proxy: FaultProxy, gcs_bucket: str) -> None:
    proxy.fail_next(100, 403)
    with pytest.raises(CacheError, match=rf"Permission denied on the cache bucket {gcs_bucket}.*objectAdmin"):
        preflight_cache(f"gs://{gcs_bucket}/ws")


def test_a_read_only_identity_is_refused_before_the_first_step_writes(proxy: FaultProxy, gcs_bucket: str) -> None:
    proxy.fail_next(100, 403, method="POST")
    with pytest.raises(CacheError, match="Permission denied"):
        preflight_cache(f"gs://{gcs_bucket}/ws")


def test_missing_credentials_say_what_to_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GCS_CREDENTIAL", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with install_gcs_filesystem(GCSFileSystem()), pytest.raises(CacheError, match="GOOGLE_APPLICATION_CREDENTIALS"):
        preflight_cache("gs://some-bucket/ws")


def test_a_broken_service_account_key_in_gcs_credential_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GCS_CREDENTIAL", json.dumps({"type": "service_account"}))
    with install_gcs_filesystem(GCSFileSystem()), pytest.raises(CacheError, match="GCS_CREDENTIAL"):
        preflight_cache("gs://some-bucket/ws")


def test_a_local_directory_is_created_and_an_unusable_one_refused(tmp_path: Path) -> None:
    preflight_cache(str(tmp_path / "new" / "ws"))
    assert (tmp_path / "new" / "ws").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match="cannot be written"):
        preflight_cache(str(tmp_path / "file" / "ws"))
    with pytest.raises(CacheError, match="local directory or gs://"):
        preflight_cache("s3://bucket/ws")


@pytest.mark.parametrize("status", [429, 503])
def test_transient_errors_on_writes_and_reads_are_retried(proxy: FaultProxy, gcs_bucket: str, status: int) -> None:
    fs = GCSFileSystem(retry=FAST_RETRY)
    path = f"gs://{gcs_bucket}/ws/out.pkl"
    proxy.fail_next(2, status, method="POST", path_contains="/upload/")
    fs.put_string(b"payload", path)
    proxy.fail_next(2, status, method="GET", path_contains="alt=media")
    assert fs.read_bytes(path) == b"payload"
    proxy.fail_next(2, status, method="GET")
    assert fs.exists(path)
    assert proxy.request_count(path_contains="/upload/") >= 3  # two refused, then the real one


def test_a_retried_create_that_already_succeeded_is_treated_as_committed(proxy: FaultProxy, gcs_bucket: str) -> None:
    # The first upload reaches the server, then the client retries after a lost response: the
    # second attempt gets 412 for the object the first one created.
    fs = GCSFileSystem(retry=FAST_RETRY)
    path = f"gs://{gcs_bucket}/ws/out.pkl"
    fs.put_string(b"payload", path)
    fs.put_string(b"payload", path)  # what the retry amounts to: create-only again, same bytes
    assert fs.read_bytes(path) == b"payload"


def test_a_second_commit_with_other_bytes_keeps_the_first(proxy: FaultProxy, gcs_bucket: str) -> None:
    fs = GCSFileSystem(retry=FAST_RETRY)
    path = f"gs://{gcs_bucket}/ws/out.pkl"
    fs.put_string(b"winner", path)
    fs.put_string(b"loser", path)
    assert fs.read_bytes(path) == b"winner"
    side = f"gs://{gcs_bucket}/ws/log/task_params/T_1.pkl"
    fs.put_string(b"one", side)
    fs.put_string(b"two", side)
    assert fs.read_bytes(side) == b"two"  # gokart's side files are rewritten on every attempt
