"""Fixtures for the cost tests: the core tests' isolated luigi config and task register."""

from __future__ import annotations

from tests.core.conftest import _isolated, _task_register, luigi_cfg

__all__ = ["_isolated", "_task_register", "luigi_cfg"]
