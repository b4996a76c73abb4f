"""A one-step pipeline whose step runs until a file appears, so a test can look at a rehearsal mid-run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gokart
import luigi


class WaitsForFlag(gokart.TaskOnKart[Any]):
    flag: str = luigi.Parameter()  # type: ignore[assignment]  # luigi parameters are descriptors

    def run(self) -> None:
        deadline = time.monotonic() + 300
        while not Path(self.flag).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.dump(Path(self.flag).exists())
