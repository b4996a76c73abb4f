"""Small gokart pipelines used by the core tests."""

from __future__ import annotations

from typing import Any

import gokart
import luigi

import gokart_k8s
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import ResourceClass
from gokart_k8s.steps import StepSpec


def step_spec(family: str) -> StepSpec:
    """The spec of a small tolerant step named ``family``, for tests of what the user sees."""
    return StepSpec(
        family=family,
        module="m",
        unique_id=family.lower() * 4,
        task_id=family,
        params={},
        resource_class=ResourceClass(name="small"),
        eviction=Eviction.TOLERATE,
    )


class Source(gokart.TaskOnKart[Any]):
    """Undecorated: gets the pipeline's default class and tolerance."""

    n: int = luigi.IntParameter(default=3)

    def run(self) -> None:
        self.dump(list(range(self.n)))


@gokart_k8s.job(resources="highmem", eviction="protect")
class Train(gokart.TaskOnKart[Any]):
    source: gokart.TaskOnKart[Any] = gokart.TaskInstanceParameter()

    def requires(self) -> gokart.TaskOnKart[Any]:
        return self.source

    def run(self) -> None:
        self.dump(sum(self.load()))


class TrainSubclass(Train):
    """Inherits Train's declaration."""


@gokart_k8s.job(resources="small")
class Summarise(gokart.TaskOnKart[Any]):
    n: int = luigi.IntParameter(default=3)

    def requires(self) -> gokart.TaskOnKart[Any]:
        return Train(source=Source(n=self.n))

    def run(self) -> None:
        self.dump(f"total={self.load()}")


class Boom(gokart.TaskOnKart[Any]):
    def run(self) -> None:
        raise RuntimeError("the step's own code failed")


class Floaty(gokart.TaskOnKart[Any]):
    x: float = luigi.FloatParameter()

    def run(self) -> None:
        self.dump(self.x)


class Chatty(gokart.TaskOnKart[Any]):
    """Prints and logs, as a step's own output does."""

    def run(self) -> None:
        import logging

        print("hello from the step")
        logging.getLogger("chatty").info("a log line of the step")
        self.dump("said")


class Snoozer(gokart.TaskOnKart[Any]):
    """Runs until stopped (an eviction's SIGTERM)."""

    def run(self) -> None:
        import time

        print("started")  # no flush: the in-pod command streams a step's prints line by line
        time.sleep(120)
        self.dump("woke")


class NeedsFloaty(gokart.TaskOnKart[Any]):
    """Builds a task whose required parameter nobody passed."""

    def requires(self) -> gokart.TaskOnKart[Any]:
        return Floaty()

    def run(self) -> None:
        self.dump(self.load())


class Ray(gokart.TaskOnKart[Any]):
    i: int = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class Star(gokart.TaskOnKart[Any]):
    """A fan-in of ``n`` rays: many steps alike but for their unique id."""

    n: int = luigi.IntParameter(default=70)

    def requires(self) -> list[Ray]:
        return [Ray(i=i) for i in range(self.n)]

    def run(self) -> None:
        self.dump(sum(self.load()))


class Labelled(luigi.Task):
    label: str = luigi.Parameter(default="default")


class ConfiguresInRun(gokart.TaskOnKart[Any]):
    """Reads a task's parameter, changes luigi's config in ``run()``, and reads it again."""

    def run(self) -> None:
        before = Labelled().label
        luigi.configuration.get_config().set("Labelled", "label", "set-in-run")
        self.dump([before, Labelled().label])
