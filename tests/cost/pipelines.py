"""A small pipeline for the cost tests: a short tolerant step, a long protected one, one from config."""

from __future__ import annotations

from typing import Any

import gokart

import gokart_k8s


@gokart_k8s.job(resources="small", expected_runtime="30m")
class Prep(gokart.TaskOnKart[Any]):
    def run(self) -> None:
        self.dump(1)


@gokart_k8s.job(resources="highmem", eviction="protect", expected_runtime="2h")
class TrainBig(gokart.TaskOnKart[Any]):
    def requires(self) -> gokart.TaskOnKart[Any]:
        return Prep()

    def run(self) -> None:
        self.dump(2)


@gokart_k8s.job(resources="standard")
class Report(gokart.TaskOnKart[Any]):
    """Its expected run time comes from [gokart_k8s.expected_runtime] when the test sets one."""

    def requires(self) -> gokart.TaskOnKart[Any]:
        return TrainBig()

    def run(self) -> None:
        self.dump(3)
