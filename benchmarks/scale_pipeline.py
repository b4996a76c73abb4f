"""The graphs of ``bench_scale.py``: fan-out/fan-in, chain and diamond lattice of trivial steps.

Each root takes ``n`` (the number of steps it should have, about) so one command line builds any
size: ``gokart-k8s plan benchmarks.scale_pipeline.FanIn --n 1000``.
"""

from __future__ import annotations

import math
from typing import Any

import gokart
import luigi


class Leaf(gokart.TaskOnKart[int]):
    """A middle step of the fan: no requirements but the source."""

    i: int = luigi.IntParameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return Source()

    def run(self) -> None:
        self.dump(self.i)


class Source(gokart.TaskOnKart[int]):
    def run(self) -> None:
        self.dump(0)


class FanIn(gokart.TaskOnKart[int]):
    """One source, ``n - 2`` middles, this sink."""

    n: int = luigi.IntParameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return [Leaf(i=i) for i in range(self.n - 2)]

    def run(self) -> None:
        self.dump(self.n)


class Link(gokart.TaskOnKart[int]):
    """A chain of ``n`` steps: Link(n) needs Link(n - 1)."""

    n: int = luigi.IntParameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return Link(n=self.n - 1) if self.n > 1 else []

    def run(self) -> None:
        self.dump(self.n)


class Lattice(gokart.TaskOnKart[int]):
    """A diamond lattice: every node needs two nodes of the level below, which share children."""

    depth: int = luigi.IntParameter()  # type: ignore[assignment]
    i: int = luigi.IntParameter(default=0)  # type: ignore[assignment]

    def requires(self) -> Any:
        if self.depth == 0:
            return []
        return [Lattice(depth=self.depth - 1, i=self.i), Lattice(depth=self.depth - 1, i=self.i + 1)]

    def run(self) -> None:
        self.dump(self.depth)


def lattice_depth(n: int) -> int:
    """The deepest lattice with at most ``n`` steps: depth d has (d + 1)(d + 2) / 2 of them."""
    return int((math.sqrt(8 * n + 1) - 3) / 2)


def root(shape: str, n: int) -> Any:
    if shape == "fan":
        return FanIn(n=n)
    if shape == "chain":
        return Link(n=n)
    return Lattice(depth=lattice_depth(n))
