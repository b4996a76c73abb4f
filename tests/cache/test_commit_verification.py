"""A 412 on a create-only commit is verified, never trusted: the output must really be there afterwards.

google-cloud-storage retries uploads; a retry of an upload that already took effect gets 412
(``if_generation_match=0``). The commit then checks the object that stands: identical bytes (its
own earlier upload) or another writer's -- and if nothing stands at all, it uploads again. Without
that check a lost answer or a spurious 412 would leave a step "committed" with no output.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cache_support import FAST_RETRY

from gokart_k8s.cache.gcs import GCSFileSystem
from gokart_k8s.testing.gcs import FakeGCSServer, FaultProxy


@pytest.fixture
def proxied(gcs_emulator: FakeGCSServer, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_emulator.url) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        yield proxy


def test_an_upload_whose_answer_was_lost_is_retried_and_its_412_accepted_after_checking_the_bytes(
    proxied: FaultProxy, gcs_bucket: str
) -> None:
    fs = GCSFileSystem(retry=FAST_RETRY)
    path = f"gs://{gcs_bucket}/ws/out.pkl"
    # The upload reaches the server and creates the object; its answer is lost (503), so the client
    # retries, and the retry gets 412 for the object its first try created.
    proxied.fail_next(1, 503, method="POST", path_contains="/upload/", after_forward=True)
    fs.put_string(b"payload", path)
    uploads = [status for method, p, status in proxied.requests if method == "POST" and "/upload/" in p]
    assert uploads == [503, 412]
    assert fs.read_bytes(path) == b"payload"


def test_a_412_with_no_object_behind_it_is_not_taken_for_a_commit(proxied: FaultProxy, gcs_bucket: str) -> None:
    fs = GCSFileSystem(retry=FAST_RETRY)
    path = f"gs://{gcs_bucket}/ws/out.pkl"
    # A 412 although nothing is there (the object was deleted in between, a confused proxy): the
    # check finds no object, so the commit uploads again instead of reporting success.
    proxied.fail_next(1, 412, method="POST", path_contains="/upload/")
    fs.put_string(b"payload", path)
    assert fs.exists(path)
    assert fs.read_bytes(path) == b"payload"
