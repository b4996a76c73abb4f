"""Fixtures for the core tests: an isolated luigi config and working directory per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import luigi.configuration
import pytest
from luigi.configuration import LuigiConfigParser


@pytest.fixture
def luigi_cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """Write a luigi.cfg for this test only, and make luigi (and so gokart_k8s) read just that."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith("GOKART_K8S_") or name == "LUIGI_CONFIG_PATH":
            monkeypatch.delenv(name)
    path = tmp_path / "luigi.cfg"
    path.write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path / 'resources'}/\n")
    monkeypatch.setattr(LuigiConfigParser, "_config_paths", [str(path)])
    monkeypatch.setattr(LuigiConfigParser, "_instance", None)

    def write(text: str) -> Path:
        path.write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path / 'resources'}/\n{text}")
        LuigiConfigParser._instance = None
        luigi.configuration.get_config()
        return path

    yield write
    LuigiConfigParser._instance = None


@pytest.fixture(autouse=True)
def _isolated(luigi_cfg: Callable[[str], Path]) -> None:
    """Every core test runs in its own directory with its own config."""


@pytest.fixture(autouse=True)
def _task_register() -> Iterator[None]:
    """Task classes a test defines are forgotten afterwards (luigi's register is process-wide)."""
    from luigi.task_register import Register

    before = set(Register._reg)
    yield
    # Classes defined inside a test function go; classes of importable modules stay registered,
    # because their module is not imported (and so not registered) again.
    Register._reg[:] = [c for c in Register._reg if c in before or "<locals>" not in c.__qualname__]
    Register.clear_instance_cache()
