"""``plan`` shows its table offline: a cache it cannot reach is one problem among the others."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from gokart_k8s.cli import main

ARGV = ["plan", "tests.core.words.TopWords", "--platform", "gke-autopilot", "--workspace", "gs://b/p"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh_gcs_client() -> Iterator[None]:
    """As in a fresh process: no GCS client made earlier (e.g. for an emulator of another test)."""
    from gokart_k8s.cache.gcs import install_gcs_filesystem

    install_gcs_filesystem().uninstall()
    yield
    install_gcs_filesystem().uninstall()  # and no client of this test's emulator settings is left behind


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No credentials anywhere, and no metadata server (as on a laptop without gcloud)."""
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "GCS_CREDENTIAL", "STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{closed_port()}")


def table_and_problems(capsys: Any, *extra: str) -> tuple[int, str, str]:
    code = main([*ARGV, *extra])
    out, err = capsys.readouterr()
    return code, out, err


def test_without_credentials_the_plan_table_is_shown_and_the_cache_is_one_problem(offline: None, capsys: Any) -> None:
    code, out, err = table_and_problems(capsys)
    assert code == 2
    assert out.splitlines()[0].startswith("STEP") and "CountWords" in out and "Autopilot Spot" in out
    assert "2 problems" in err and "credentials" in err and "no container image" in err


def test_an_unreachable_cache_is_one_problem_and_no_cache_check_skips_it(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed_port()}")
    code, out, err = table_and_problems(capsys, "--image", "i:1")
    assert code == 2 and "TopWords" in out and "1 problem" in err

    code, out, err = table_and_problems(capsys, "--image", "i:1", "--no-cache-check")
    assert code == 0 and "TopWords" in out and not err
