"""The history tests run like the core tests: an isolated luigi config and directory per test."""

from tests.core.conftest import _isolated, _task_register, luigi_cfg

__all__ = ["_isolated", "_task_register", "luigi_cfg"]
