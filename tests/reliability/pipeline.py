"""A small checkpointing pipeline whose steps log every attempt: Prepare -> Crunch -> Summarize.

``Crunch`` is the long one: ``units`` units of deterministic work (a hash chain), ``seconds_per_unit``
each, a checkpoint after every unit, so a killed attempt loses at most one unit and the rerun's
output is byte-identical to a calm run's. Every step logs its attempts (``harness.attempt``), so a
test counts concurrent attempts and redone units from the step side.

``HoldInC`` spends its time inside one C call that does not return to the interpreter (a
PBKDF2 with the largest iteration count it accepts, which releases the GIL but never runs Python code), so
Python signal handlers cannot run until it returns: what a long NumPy or BLAS call does.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import gokart
import luigi

import gokart_k8s
from gokart_k8s.termination import add_termination_hook
from tests.reliability.harness import attempt


@gokart_k8s.job(resources="small", eviction="tolerate")
class Prepare(gokart.TaskOnKart[bytes]):
    seed: int = luigi.IntParameter(default=1)

    def run(self) -> None:
        with attempt(self):
            self.dump(hashlib.sha256(str(self.seed).encode()).digest())


@gokart_k8s.job(resources="small", eviction="tolerate")
class Crunch(gokart.TaskOnKart[str]):
    seed: int = luigi.IntParameter(default=1)
    units: int = luigi.IntParameter(default=20)
    seconds_per_unit: float = luigi.FloatParameter(default=0.2, significant=False)
    #: Seconds between periodic saves (0: after every unit); SIGTERM saves the latest state.
    save_every: float = luigi.FloatParameter(default=0.0, significant=False)
    #: Seconds spent on SIGTERM before the final save (a final save that takes time).
    slow_stop_seconds: float = luigi.FloatParameter(default=0.0, significant=False)

    def requires(self) -> gokart.TaskOnKart[bytes]:
        return Prepare(seed=self.seed)

    def run(self) -> None:
        budget = os.environ.get("GOKART_K8S_TERMINATION_BUDGET_SECONDS")
        with attempt(self, budget=budget) as log:
            if self.slow_stop_seconds:  # registered first, so it runs before the checkpoint's final save
                add_termination_hook(lambda: time.sleep(self.slow_stop_seconds))
            checkpoint = gokart_k8s.Checkpoint.of(self)
            state: dict[str, Any] = checkpoint.restore() if checkpoint.exists() else {"i": 0, "acc": self.load()}
            acc = state["acc"]
            for i in range(state["i"], self.units):
                log.begin(i)
                acc = hashlib.sha256(acc + i.to_bytes(4, "big")).digest()
                time.sleep(self.seconds_per_unit)
                log.unit(i)
                checkpoint.save({"i": i + 1, "acc": acc}, every=self.save_every)
            self.dump(acc.hex())


@gokart_k8s.job(resources="small", eviction="tolerate")
class Summarize(gokart.TaskOnKart[str]):
    seed: int = luigi.IntParameter(default=1)
    units: int = luigi.IntParameter(default=20)
    seconds_per_unit: float = luigi.FloatParameter(default=0.2, significant=False)

    def requires(self) -> gokart.TaskOnKart[str]:
        return Crunch(seed=self.seed, units=self.units, seconds_per_unit=self.seconds_per_unit)

    def output(self) -> Any:
        return self.make_target(f"reliability/summary-{self.seed}-{self.units}.txt")

    def run(self) -> None:
        with attempt(self):
            self.dump(f"seed={self.seed} units={self.units} result={self.load()}\n")


@gokart_k8s.job(resources="small", eviction="tolerate")
class HoldInC(gokart.TaskOnKart[str]):
    """Enters one C call that runs for many minutes; ``marker`` is written just before it."""

    marker: str = luigi.Parameter()

    def run(self) -> None:
        with attempt(self):
            Path(self.marker).write_text(str(os.getpid()))
            hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 2**31 - 1)  # minutes, in one call
            Path(self.marker + ".returned").write_text("the C call returned")
            self.dump("done")
