"""Run history: a record of every run in the cache, and a report of it.

A room in four parts, pure core first:

- :mod:`~gokart_k8s.history.record` -- the run record (a versioned JSON schema, docs/run-record.md)
  as dataclasses, folded from events; what a reader computes from it (evictions, redone work,
  totals) and the ``price`` hook that fills the ``cost`` fields;
- :mod:`~gokart_k8s.history.observe` -- what a pod and a node say about an attempt;
- :mod:`~gokart_k8s.history.report` -- the HTML page (timeline picture in SVG) and the Chrome trace;
- the I/O edge: :mod:`~gokart_k8s.history.store` (``<workspace>/gokart_k8s/runs/<run-id>/``, local
  or gs://), :mod:`~gokart_k8s.history.recorder` (what a driver writes as the run goes) and
  :mod:`~gokart_k8s.history.command` (``gokart-k8s runs`` and ``gokart-k8s report``).

Every backend records: the runner opens a recorder (:func:`open_recorder`) before the first step
and closes it after the last, whatever happened in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from gokart_k8s.errors import GokartK8sError
from gokart_k8s.history.record import SCHEMA, VERSION, Attempt, NodeLife, RunRecord, StepRecord, fold, price
from gokart_k8s.history.recorder import RunRecorder, settings_facts, step_facts
from gokart_k8s.history.store import SNAPSHOT, RecordStore, open_store, parse_events

__all__ = [
    "SCHEMA",
    "VERSION",
    "Attempt",
    "NodeLife",
    "RecordNotFoundError",
    "RunRecord",
    "RunRecorder",
    "StepRecord",
    "fold",
    "list_records",
    "load_record",
    "open_recorder",
    "price",
]


class RecordNotFoundError(GokartK8sError, LookupError):
    """No run record with that id (or none at all) in the workspace."""


def load_record(store: RecordStore, run_id: str) -> RunRecord:
    """The record of ``run_id`` folded from all its drivers' events (the snapshot if there are none)."""
    events = list(parse_events(store.read_events(run_id)))
    if events:
        return fold(run_id, events)
    data = store.read(run_id, SNAPSHOT)
    if data is None:
        raise RecordNotFoundError(
            f"There is no run {run_id!r} in {store.location}. List the runs with `gokart-k8s runs` "
            "(add --workspace if the cache is elsewhere)."
        )
    return RunRecord.from_dict(json.loads(data))


def list_records(store: RecordStore) -> list[RunRecord]:
    """Every run's snapshot, newest first; a run with events but no snapshot yet is folded."""
    records = []
    for run_id in store.run_ids():
        data = store.read(run_id, SNAPSHOT)
        try:
            record = RunRecord.from_dict(json.loads(data)) if data else load_record(store, run_id)
        except (ValueError, TypeError, RecordNotFoundError):
            continue  # not a run record (or one too damaged to read): listed by nothing
        records.append(record)
    records.sort(key=lambda r: r.start or 0.0, reverse=True)
    return records


def open_recorder(
    roots: Sequence[Any],
    plan: Any,
    *,
    run_id: str,
    backend: str,
    image: str | None,
    profile: Any | None = None,
    node_poll_seconds: float = 10.0,
    pricer: Callable[[Attempt], float | None] | None = None,
) -> RunRecorder:
    """Start recording run ``run_id`` of ``plan`` (continuing its record if a driver wrote one)."""
    from gokart_k8s.cache.checkpoints import checkpoint_location
    from gokart_k8s.history.report import render_html

    store = open_store(plan.workspace)
    checkpoints = {}
    for step in plan.steps:
        try:
            checkpoints[step.spec.unique_id] = checkpoint_location(step.task)
        except GokartK8sError:
            pass  # not a gokart task: it has no checkpoints
    recorder = RunRecorder(
        store,
        run_id,
        inline=backend == "inline",
        checkpoints=checkpoints,
        node_poll_seconds=node_poll_seconds,
        render=lambda record: render_html(record, now=time.time()),
        pricer=pricer,
    )
    root = roots[0] if roots else None
    run = {
        "root": {
            "family": root.get_task_family() if root is not None else None,
            "module": type(root).__module__ if root is not None else None,
            "params": dict(root.to_str_params(only_significant=True)) if root is not None else {},
            "unique_id": getattr(root, "task_id", None),
        },
        "backend": backend,
        "platform": plan.settings.platform,
        "image": image,
        "namespace": plan.settings.namespace if backend != "inline" else None,
        "workspace": plan.workspace,
        "settings": settings_facts(plan.settings),
        "code_version": None,
        "nodes_known": backend != "inline",
    }
    steps = []
    for row in plan.rows:
        placement = None
        if profile is not None and backend != "inline":
            try:
                placement = profile.place(row.step.spec)
            except GokartK8sError:
                placement = None
        steps.append(step_facts(row.step, cached=row.cached, placement=placement))
    recorder.start(run, steps)
    return recorder
