"""A small pipeline for the cost tests: a short tolerant step, a long protected one, one from config.

Families are prefixed with Cost: luigi's task register is process-wide, and another test's
``Report`` (the example's) must stay unambiguous.
"""

from __future__ import annotations

from typing import Any

import gokart

import gokart_k8s


@gokart_k8s.job(resources="small", expected_runtime="30m")
class CostPrep(gokart.TaskOnKart[Any]):
    def run(self) -> None:
        self.dump(1)


@gokart_k8s.job(resources="highmem", eviction="protect", expected_runtime="2h")
class CostTrain(gokart.TaskOnKart[Any]):
    def requires(self) -> gokart.TaskOnKart[Any]:
        return CostPrep()

    def run(self) -> None:
        self.dump(2)


@gokart_k8s.job(resources="standard")
class CostReport(gokart.TaskOnKart[Any]):
    """Its expected run time comes from [gokart_k8s.expected_runtime] when the test sets one."""

    def requires(self) -> gokart.TaskOnKart[Any]:
        return CostTrain()

    def run(self) -> None:
        self.dump(3)
