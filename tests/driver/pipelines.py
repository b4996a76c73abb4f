"""Tiny gokart pipelines the driver tests run as Jobs; the local cluster's pods import this module."""

from __future__ import annotations

import time
from typing import Any

import gokart
import luigi

import gokart_k8s
from gokart_k8s.resources import ResourceClass

#: Small enough that many steps fit on the local cluster's node at once; Spot allowed.
TINY = ResourceClass(cpu="50m", memory="1Gi", name="tiny")
#: A memory limit the Hungry step exceeds.
SMALL_MEMORY = ResourceClass(cpu="50m", memory="300Mi", name="small-memory")
#: More CPU than any node of the test clusters has.
HUGE = ResourceClass(cpu="64", memory="1Gi", name="huge")


@gokart_k8s.job(resources=TINY)
class Leaf(gokart.TaskOnKart[Any]):
    i: int = luigi.IntParameter()  # type: ignore[assignment]  # luigi parameters are descriptors

    def run(self) -> None:
        print(f"leaf {self.i} says hello")
        self.dump(self.i)


@gokart_k8s.job(resources=TINY)
class Total(gokart.TaskOnKart[Any]):
    n: int = luigi.IntParameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return [Leaf(i=i) for i in range(self.n)]

    def run(self) -> None:
        self.dump(sum(self.load()))


@gokart_k8s.job(resources=TINY, eviction="tolerate")
class Sleepy(gokart.TaskOnKart[Any]):
    """Sleeps, so a test can evict it while it runs."""

    seconds: float = luigi.FloatParameter()  # type: ignore[assignment]
    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def run(self) -> None:
        print("sleepy started", flush=True)
        time.sleep(self.seconds)
        self.dump(self.tag)


@gokart_k8s.job(resources=SMALL_MEMORY)
class Hungry(gokart.TaskOnKart[Any]):
    def run(self) -> None:
        hog = bytearray(800 * 2**20)  # touched below, so it is really resident
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        time.sleep(5)
        self.dump(len(hog))


@gokart_k8s.job(resources=TINY)
class Broken(gokart.TaskOnKart[Any]):
    def run(self) -> None:
        print("reading rows", flush=True)
        raise ValueError("bad row 7")


@gokart_k8s.job(resources=TINY)
class AfterBroken(gokart.TaskOnKart[Any]):
    def requires(self) -> gokart.TaskOnKart[Any]:
        return Broken()

    def run(self) -> None:
        self.dump("never")


@gokart_k8s.job(resources=HUGE)
class Unplaceable(gokart.TaskOnKart[Any]):
    def run(self) -> None:
        self.dump("never")


@gokart_k8s.job(resources=TINY)
class NumberedLines(gokart.TaskOnKart[Any]):
    """Writes numbered lines, some while it runs and some just before it ends."""

    lines: int = luigi.IntParameter()  # type: ignore[assignment]
    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def run(self) -> None:
        for i in range(self.lines):
            print(f"{self.tag} line {i}", flush=True)
            if i == self.lines // 2:
                time.sleep(1.5)
        self.dump(self.lines)
