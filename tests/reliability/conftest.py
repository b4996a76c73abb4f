"""Fixtures of the reliability suite: a run directory per test, cleaned of every process it left.

``make_run(task=[...], config="...")`` gives a :class:`~tests.reliability.harness.Run` in its own
directory under ``tmp_path`` (its own luigi.cfg, cache, attempt log and TMPDIR). Whatever the
test asserts, teardown SIGKILLs its drivers and every process still alive in that directory, so a
failing test never leaves work behind for the next one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Run

RunFactory = Callable[..., Run]


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[RunFactory]:
    runs: list[Run] = []

    def make(task: list[str], *, name: str = "run", config: str = "") -> Run:
        run = Run(tmp_path / name, task, config)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.cleanup()
