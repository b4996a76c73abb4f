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

    before = list(Register._reg)
    yield
    Register._reg[:] = before
    Register.clear_instance_cache()
