"""Fixtures of the cache tests: the emulator, a gs:// workspace, a local workspace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import luigi
import pytest
from cache_support import FAST_RETRY, use_workspace

from gokart_k8s.cache.gcs import GCSFileSystem, install_gcs_filesystem
from gokart_k8s.testing.gcs import gcs_bucket, gcs_emulator

__all__ = ["gcs_bucket", "gcs_emulator"]


@pytest.fixture
def gcs_fs(gcs_bucket: str) -> Iterator[GCSFileSystem]:
    """A GCSFileSystem on the emulator, installed at gokart's seam for this test."""
    fs = GCSFileSystem(retry=FAST_RETRY)
    with install_gcs_filesystem(fs):
        yield fs


@pytest.fixture
def gcs_workspace(gcs_bucket: str, gcs_fs: GCSFileSystem) -> str:
    """A gs:// workspace on the emulator, already gokart's default workspace_directory."""
    return use_workspace(f"gs://{gcs_bucket}/ws")


@pytest.fixture
def local_workspace(tmp_path: Path) -> str:
    """A local workspace directory, already gokart's default workspace_directory."""
    return use_workspace(str(tmp_path / "ws"))


@pytest.fixture(params=["local", "gcs"])
def workspace(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on a local directory and once on gs:// (the emulator)."""
    name = "local_workspace" if request.param == "local" else "gcs_workspace"
    return str(request.getfixturevalue(name))


@pytest.fixture(autouse=True)
def _fresh_luigi_config(tmp_path: Path) -> Iterator[None]:
    # gokart reads workspace_directory from luigi's config singleton; never leak it between tests.
    # luigi also caches task instances by their explicit parameters, so ``Task()`` in two tests
    # would be one object holding the first test's workspace.
    luigi.configuration.LuigiConfigParser._instance = None
    luigi.task_register.Register.clear_instance_cache()
    # Model and zip targets unpack through local_temporary_directory (./resources/tmp by default).
    luigi.configuration.get_config().set("TaskOnKart", "local_temporary_directory", str(tmp_path / "tmp"))
    yield
    luigi.configuration.LuigiConfigParser._instance = None
    luigi.task_register.Register.clear_instance_cache()
