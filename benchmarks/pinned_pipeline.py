"""The seed's pipeline, for ``bench_pinned_node.py``: a big short step, a small long step that must
not be lost, and small tolerant steps. The local cluster's pods import this module.

Work is done in *units* of ``UNIT_SECONDS`` of cluster time (``UNIT_SECONDS / BENCH_TIME_SCALE``
wall seconds of sleep); a tolerant step saves a checkpoint after every unit, so an eviction loses
at most one unit. Every unit started and every step finished is appended to a ledger file in the
workspace (pods share this machine's filesystem), from which the benchmark counts the work redone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import gokart
import luigi

import gokart_k8s
from gokart_k8s.resources import ResourceClass

#: Cluster seconds per wall second; the benchmark sets it for itself and its pods.
TIME_SCALE = float(os.environ.get("BENCH_TIME_SCALE", "300"))
#: One unit of work, and the checkpoint interval of tolerant steps: 10 minutes.
UNIT_SECONDS = 600.0

BIG = ResourceClass(cpu="14", memory="48Gi", name="bench-big")
SMALL = ResourceClass(cpu="1", memory="3Gi", name="bench-small")
MEDIUM = ResourceClass(cpu="2", memory="6Gi", name="bench-medium")


def ledger_path(task: gokart.TaskOnKart[Any]) -> Path:
    return Path(str(task.workspace_directory)) / "bench-ledger" / f"{task.get_task_family()}-{task.make_unique_id()}"


class _Work(gokart.TaskOnKart[Any]):
    """``minutes`` of cluster-time work in units, checkpointed after each unit when ``checkpoints``."""

    minutes: float = luigi.FloatParameter()  # type: ignore[assignment]
    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]
    checkpoints = True

    def run(self) -> None:
        units = round(self.minutes * 60 / UNIT_SECONDS)
        ledger = ledger_path(self)
        ledger.parent.mkdir(parents=True, exist_ok=True)
        checkpoint = gokart_k8s.Checkpoint.of(self) if self.checkpoints else None
        first = int(checkpoint.restore(0)) if checkpoint is not None else 0
        for unit in range(first, units):
            with ledger.open("a") as fh:
                fh.write(f"start {unit}\n")
            time.sleep(UNIT_SECONDS / TIME_SCALE)
            if checkpoint is not None:
                checkpoint.save(unit + 1)
        with ledger.open("a") as fh:
            fh.write("done\n")
        self.dump(units)


@gokart_k8s.job(resources=BIG, eviction="tolerate")
class BigShort(_Work):
    """The huge step: an hour on a 16-cpu node, checkpointed."""


@gokart_k8s.job(resources=SMALL, eviction="protect")
class SmallLong(_Work):
    """The small long step that must not be lost: protected, no checkpoints."""

    checkpoints = False


@gokart_k8s.job(resources=MEDIUM, eviction="tolerate")
class SmallTolerant(_Work):
    """A small tolerant step, checkpointed."""


def roots(
    *, big_minutes: float = 60.0, long_minutes: float = 480.0, tolerant: int = 4, tolerant_minutes: float = 40.0
) -> list[Any]:
    return [
        BigShort(minutes=big_minutes),
        SmallLong(minutes=long_minutes),
        *(SmallTolerant(minutes=tolerant_minutes, tag=str(i)) for i in range(tolerant)),
    ]


def units_needed(task: _Work) -> int:
    return round(task.minutes * 60 / UNIT_SECONDS)
