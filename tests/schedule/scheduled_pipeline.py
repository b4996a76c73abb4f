"""A tiny daily pipeline the schedule tests run on the local cluster; its pods import this module.

Every step appends one line to ``$SCHEDULE_TEST_MARKERS/<step>-<date>[-<part>]`` when it starts, so
a test can tell how many times each step really ran, whoever (first or replacement driver) ran it.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path
from typing import Any

import gokart
import luigi

import gokart_k8s
from gokart_k8s.resources import ResourceClass

#: Small and Spot-friendly: on gke-standard the steps go to the Spot pool, the driver does not.
TINY = ResourceClass(cpu="50m", memory="256Mi", name="tiny")


def mark(name: str) -> None:
    directory = Path(os.environ["SCHEDULE_TEST_MARKERS"])
    with (directory / name).open("a") as fh:
        fh.write(f"{os.getpid()}\n")
    # Set only from a Secret (schedule --secret-env): what the step's pod was given.
    secret = os.environ.get("SCHEDULE_TEST_SECRET")
    if secret is not None:
        (directory / f"{name}.secret").write_text(secret)


@gokart_k8s.job(resources=TINY)
class DailyPart(gokart.TaskOnKart[Any]):
    """One part of a day's work; slow enough to be running when the driver is lost."""

    date: datetime.date = luigi.DateParameter()  # type: ignore[assignment]  # luigi parameters are descriptors
    part: int = luigi.IntParameter()  # type: ignore[assignment]
    seconds: float = luigi.FloatParameter(default=10.0, significant=False)  # type: ignore[assignment]

    def run(self) -> None:
        mark(f"part-{self.date}-{self.part}")
        time.sleep(self.seconds)
        self.dump({"date": str(self.date), "part": self.part})


@gokart_k8s.job(resources=TINY)
class DailyReport(gokart.TaskOnKart[Any]):
    date: datetime.date = luigi.DateParameter()  # type: ignore[assignment]  # luigi parameters are descriptors

    def requires(self) -> Any:
        return [DailyPart(date=self.date, part=i) for i in range(2)]

    def run(self) -> None:
        mark(f"report-{self.date}")
        self.dump({"date": str(self.date), "parts": [p["part"] for p in self.load()]})
