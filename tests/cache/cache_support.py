"""Helpers shared by the cache tests (a unique module name: tests/ directories share sys.path)."""

from __future__ import annotations

import luigi
from google.api_core.retry import Retry

#: Fast backoff so injected faults do not cost the library's 1 s first delay.
FAST_RETRY = Retry(initial=0.01, maximum=0.1, multiplier=2.0, timeout=30.0)


def use_workspace(workspace: str) -> str:
    """Make ``workspace`` gokart's default workspace_directory (set before creating tasks)."""
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", workspace)
    return workspace
