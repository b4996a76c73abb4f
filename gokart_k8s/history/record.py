"""The run record: what one run did, as plain data folded from an append-only list of events.

Pure: no I/O, no clock. :mod:`gokart_k8s.history.recorder` produces the events while a run goes
and stores them; everything a reader needs (the report, ``gokart-k8s runs``) is computed here.

Why events and a fold rather than one document rewritten in place: a driver can be killed at any
moment (SIGKILL, a node of the driver pod preempted). Every event it flushed stays, so its record
is readable; a later driver with the same run id (a rerun that adopts the run's Jobs, a
replacement driver pod of a scheduled run) appends its own events to the same run, and the fold
merges both drivers' views into one record. The fold is order-independent per key: events are
sorted by ``(t, d, n)`` (time, driver, sequence) first.

Event shapes (``type``):

``driver``
    a driver started: ``driver`` (id, host, pid), ``run`` (root, backend, platform, image, ...),
    ``steps`` (static facts of every step);
``state``
    a step changed state: ``step`` (unique id), ``state``, ``detail``;
``attempt``
    what is known of one attempt (one pod) now: ``step``, ``uid`` and any attempt fields; later
    values replace earlier ones, ``None`` never erases a known value;
``node``
    what is known of one node (by uid) now;
``nodes``
    ``known: false``: the driver cannot list the cluster's nodes;
``code``
    the code the steps run: ``version`` (the sha256 of the run's code package); the first one
    stays (a later driver of the same run ships the same package);
``end``
    the driver ended: ``state`` (succeeded, failed, interrupted).

docs/run-record.md documents the resulting JSON (``SCHEMA``, ``VERSION``) field by field.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SCHEMA",
    "VERSION",
    "Attempt",
    "DriverLife",
    "NodeLife",
    "RunRecord",
    "StepRecord",
    "fold",
    "lost_work",
    "price",
    "silent_for",
    "step_summary",
    "totals",
]

#: The ``schema`` value of every record, so a reader can tell a run record from other JSON.
SCHEMA = "gokart-k8s/run-record"
#: Bumped when a field changes meaning or disappears; new optional fields do not bump it.
VERSION = 1

#: Step states that end a step.
DONE_STATES = frozenset({"cached", "succeeded", "failed", "skipped"})


@dataclass
class Attempt:
    """One attempt of a step: one pod on a cluster backend, one ``run()`` inline."""

    uid: str
    pod: str | None = None
    job: str | None = None
    node: str | None = None
    pool: str | None = None
    machine_type: str | None = None
    #: ``"spot"``, ``"on-demand"`` or None (the backend does not say).
    capacity_type: str | None = None
    #: Requests in Kubernetes spelling (``"500m"``, ``"2Gi"``); ``gpu`` a count.
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None
    #: Epoch seconds: pod created, container started, attempt ended.
    submitted: float | None = None
    started: float | None = None
    ended: float | None = None
    #: succeeded, evicted, failed, out_of_memory, user_error, ... (``OutcomeKind``), None while running.
    outcome: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    #: The checkpoint the attempt started from: ``{"name": "ckpt-0000000012.pkl", "saved": epoch}``.
    checkpoint: dict[str, Any] | None = None
    #: The driver that first saw the attempt.
    driver: str | None = None
    #: Filled by a pricing function (gokart_k8s.cost); None until priced.
    cost: float | None = None

    @property
    def waiting_seconds(self) -> float | None:
        """Time from submission until the container started: waiting for a node, pulling the image."""
        if self.submitted is None:
            return None
        end = self.started if self.started is not None else self.ended
        return None if end is None else max(0.0, end - self.submitted)

    @property
    def running_seconds(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return max(0.0, self.ended - self.started)


@dataclass
class StepRecord:
    """One step of the run: its static facts, its state and every attempt."""

    unique_id: str
    family: str = ""
    module: str = ""
    params: dict[str, str] = field(default_factory=dict)
    resource_class: str | None = None
    #: The resource class's requests as the plan resolved them (cpu, memory, gpu).
    requests: dict[str, Any] = field(default_factory=dict)
    #: Eviction tolerance: ``tolerate`` or ``protect``.
    eviction: str = ""
    #: Where the plan placed it: ``pool``, ``spot``, ``describe``.
    placement: dict[str, Any] = field(default_factory=dict)
    #: True when the step was already in the cache when the run started (never ran in this run).
    cached: bool = False
    outputs: list[str] = field(default_factory=list)
    requires: list[str] = field(default_factory=list)
    #: pending, submitted, running, evicted, cached, succeeded, failed, skipped, interrupted.
    state: str = "pending"
    detail: str = ""
    attempts: list[Attempt] = field(default_factory=list)
    cost: float | None = None

    def attempt(self, uid: str) -> Attempt:
        for a in self.attempts:
            if a.uid == uid:
                return a
        new = Attempt(uid=uid)
        self.attempts.append(new)
        return new


@dataclass
class NodeLife:
    """One node's life (a node recreated under the same name is a second life)."""

    uid: str
    name: str = ""
    pool: str | None = None
    machine_type: str | None = None
    capacity_type: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass
class DriverLife:
    """One driver process that worked on the run; ``state`` None means it never said it ended."""

    id: str
    host: str = ""
    pid: int | None = None
    start: float | None = None
    end: float | None = None
    state: str | None = None
    #: When the driver was last heard of (its last event).
    updated: float | None = None


@dataclass
class RunRecord:
    run_id: str
    schema: str = SCHEMA
    version: int = VERSION
    #: The root task: family, module, params, unique_id.
    root: dict[str, Any] = field(default_factory=dict)
    backend: str = ""
    platform: str = ""
    image: str | None = None
    namespace: str | None = None
    workspace: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    #: Version of the code the steps ran: its code package's sha256 (None when the image held the code).
    code_version: str | None = None
    start: float | None = None
    end: float | None = None
    #: running, succeeded, failed, interrupted; ``running`` with a driver gone silent means it died.
    state: str = "running"
    updated: float | None = None
    drivers: list[DriverLife] = field(default_factory=list)
    steps: list[StepRecord] = field(default_factory=list)
    #: Node lives, when the backend tells (None: it does not, e.g. inline or no permission to list nodes).
    nodes: list[NodeLife] | None = None
    cost: float | None = None

    def step(self, unique_id: str) -> StepRecord:
        for s in self.steps:
            if s.unique_id == unique_id:
                return s
        new = StepRecord(unique_id=unique_id)
        self.steps.append(new)
        return new

    def to_dict(self) -> dict[str, Any]:
        out = _plain(self)
        # Schema markers first, so `head record.json` says what it is.
        return {"schema": out.pop("schema"), "version": out.pop("version"), **out}

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text with each step (each driver, each node) on a line of its own.

        Readable with ``head`` and ``grep``, and written by the json module's C encoder: an indented
        dump runs its pure-Python encoder, about a second of a 10,000-step run's end.
        """
        lines = []
        for key, value in self.to_dict().items():
            if isinstance(value, list) and value:
                items = ",\n  ".join(json.dumps(v, separators=(",", ":")) for v in value)
                lines.append(f"{json.dumps(key)}: [\n  {items}\n]")
            else:
                lines.append(f"{json.dumps(key)}: {json.dumps(value)}")
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """Read a record written by :meth:`to_dict` (unknown fields, from newer writers, are ignored)."""
        record = cls(**_known(cls, data, skip=("drivers", "steps", "nodes")))
        record.drivers = [DriverLife(**_known(DriverLife, d)) for d in data.get("drivers") or []]
        record.steps = []
        for s in data.get("steps") or []:
            step = StepRecord(**_known(StepRecord, s, skip=("attempts",)))
            step.attempts = [Attempt(**_known(Attempt, a)) for a in s.get("attempts") or []]
            record.steps.append(step)
        nodes = data.get("nodes")
        record.nodes = None if nodes is None else [NodeLife(**_known(NodeLife, n)) for n in nodes]
        return record


def _plain(value: Any) -> Any:
    """What :func:`dataclasses.asdict` makes, without its deep copy of every leaf value (1.4 s of
    a 10,000-step record): the record's leaves are JSON scalars, shared safely."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _known(cls: type, data: Mapping[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)} - set(skip)
    return {k: v for k, v in data.items() if k in names}


def _merge(target: Any, values: Mapping[str, Any]) -> None:
    """Set every known, non-None value (a later event never erases what an earlier one knew)."""
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key in names and value is not None:
            setattr(target, key, value)


# --- the fold ----------------------------------------------------------------------------------


def fold(run_id: str, events: Iterable[Mapping[str, Any]]) -> RunRecord:
    """The record of ``run_id`` from its events, in any order, from any number of drivers."""
    record = RunRecord(run_id=run_id)
    ordered = sorted(events, key=lambda e: (float(e.get("t") or 0.0), str(e.get("d") or ""), int(e.get("n") or 0)))
    steps: dict[str, StepRecord] = {}

    def step_of(unique_id: str) -> StepRecord:
        # Indexed here (record.step() searches the list: quadratic over a 10,000-step run).
        found = steps.get(unique_id)
        if found is None:
            found = steps[unique_id] = StepRecord(unique_id=unique_id)
            record.steps.append(found)
        return found

    for event in ordered:
        _apply(record, event, step_of)
    _settle(record)
    return record


def _driver(record: RunRecord, driver_id: str) -> DriverLife:
    for d in record.drivers:
        if d.id == driver_id:
            return d
    new = DriverLife(id=driver_id)
    record.drivers.append(new)
    return new


def _apply(record: RunRecord, event: Mapping[str, Any], step_of: Callable[[str], StepRecord]) -> None:
    kind = event.get("type")
    t = float(event.get("t") or 0.0)
    driver = _driver(record, str(event.get("d") or "?"))
    driver.updated = t if driver.updated is None else max(driver.updated, t)
    record.updated = t if record.updated is None else max(record.updated, t)
    if kind == "driver":
        _merge(driver, {**dict(event.get("driver") or {}), "start": t})
        run = dict(event.get("run") or {})
        first = record.start is None
        if first:
            _merge(record, run)
            record.start = t
        else:
            # A later driver of the same run: static facts stay the first driver's.
            for key in ("image", "code_version"):
                if getattr(record, key) is None and run.get(key) is not None:
                    setattr(record, key, run[key])
        if run.get("nodes_known") and record.nodes is None:
            record.nodes = []
        for facts in event.get("steps") or []:
            step = step_of(str(facts["unique_id"]))
            cached = bool(facts.get("cached"))
            _merge(step, {k: v for k, v in facts.items() if k not in ("cached", "attempts", "state")})
            if first:
                step.cached = cached
    elif kind == "code":
        if record.code_version is None and event.get("version"):
            record.code_version = str(event["version"])
    elif kind == "state":
        step = step_of(str(event["step"]))
        state = str(event.get("state") or "")
        if state == "cached" and (step.attempts or step.state != "pending"):
            # A later driver found the output this run's own attempts wrote: the run did it.
            state = "succeeded"
        step.state = state
        step.detail = str(event.get("detail") or "")
    elif kind == "attempt":
        step = step_of(str(event["step"]))
        attempt = step.attempt(str(event["uid"]))
        if attempt.driver is None:
            attempt.driver = driver.id
        _merge(attempt, {k: v for k, v in event.items() if k not in ("type", "t", "d", "n", "step", "uid", "driver")})
    elif kind == "node":
        if record.nodes is None:
            record.nodes = []
        uid = str(event["uid"])
        node = next((n for n in record.nodes if n.uid == uid), None)
        if node is None:
            node = NodeLife(uid=uid)
            record.nodes.append(node)
        _merge(node, {k: v for k, v in event.items() if k not in ("type", "t", "d", "n", "uid")})
    elif kind == "nodes":
        if not event.get("known") and not record.nodes:
            record.nodes = None  # the driver could not list nodes: unknown, not "none"
    elif kind == "end":
        driver.end = t
        driver.state = str(event.get("state") or "")


def _settle(record: RunRecord) -> None:
    """Run-level facts that follow from the drivers and steps: state, end, attempt order, cost."""
    if record.drivers:
        last = max(record.drivers, key=lambda d: d.start or 0.0)
        record.state = last.state or "running"
        record.end = last.end
        for d in record.drivers:
            if d is not last and d.state is None:
                d.state = "lost"  # never said it ended, and a later driver took over
    for step in record.steps:
        step.attempts.sort(key=lambda a: (a.submitted or a.started or a.ended or 0.0, a.uid))
        costs = [a.cost for a in step.attempts if a.cost is not None]
        if costs:
            step.cost = sum(costs)
    step_costs = [s.cost for s in record.steps if s.cost is not None]
    if step_costs:
        record.cost = sum(step_costs)
    if record.nodes is not None:
        record.nodes.sort(key=lambda n: (n.name, n.start or 0.0))


def price(record: RunRecord, pricer: Callable[[Attempt], float | None]) -> RunRecord:
    """Fill every attempt's ``cost`` with ``pricer(attempt)`` and sum steps and run; the hook for
    :mod:`gokart_k8s.cost` (attempts it cannot price keep ``None``)."""
    for step in record.steps:
        for attempt in step.attempts:
            attempt.cost = pricer(attempt)
        step.cost = None
    record.cost = None
    _settle(record)
    return record


# --- what a reader wants to know ---------------------------------------------------------------

#: A running record with no event for this long most likely lost its driver (a live driver
#: flushes every second and lists nodes every few seconds).
SILENT_SECONDS = 300.0


def silent_for(record: RunRecord, now: float) -> float | None:
    """Seconds since a ``running`` record last heard from a driver, if that is suspiciously long."""
    if record.state != "running" or record.updated is None or now - record.updated <= SILENT_SECONDS:
        return None
    return now - record.updated


def lost_work(step: StepRecord) -> list[tuple[Attempt, float, float]]:
    """Work lost to evictions: ``(attempt, from, to)`` per evicted attempt.

    An evicted attempt loses what it did since the checkpoint the *next* attempt resumed from
    was saved (if that checkpoint was saved during the evicted attempt), else all it did.
    """
    out: list[tuple[Attempt, float, float]] = []
    attempts = step.attempts
    for i, attempt in enumerate(attempts):
        if attempt.outcome != "evicted" or attempt.started is None or attempt.ended is None:
            continue
        begin = attempt.started
        # The next attempt that started: one that never ran (its Job replaced) restored nothing.
        after = next((b for b in attempts[i + 1 :] if b.started is not None), None)
        saved = (after.checkpoint or {}).get("saved") if after is not None else None
        if isinstance(saved, (int, float)) and attempt.started <= saved <= attempt.ended:
            begin = float(saved)
        if attempt.ended > begin:
            out.append((attempt, begin, attempt.ended))
    return out


@dataclass(frozen=True)
class StepSummary:
    family: str
    resource_class: str
    pool: str
    capacity: str
    attempts: int
    evictions: int
    failures: int
    waiting_seconds: float
    running_seconds: float
    redone_seconds: float
    cost: float | None
    state: str


def step_summary(step: StepRecord) -> StepSummary:
    """One row of the per-step table."""
    pools = [a.pool for a in step.attempts if a.pool] or [str(step.placement.get("pool") or "")]
    capacities = [a.capacity_type for a in step.attempts if a.capacity_type]
    return StepSummary(
        family=step.family or step.unique_id[:12],
        resource_class=step.resource_class or "one-off",
        pool=" → ".join(dict.fromkeys(p for p in pools if p)) or "-",
        capacity=" → ".join(dict.fromkeys(capacities)) or "-",
        attempts=len(step.attempts),
        evictions=sum(1 for a in step.attempts if a.outcome == "evicted"),
        failures=sum(1 for a in step.attempts if a.outcome not in (None, "succeeded", "evicted", "abandoned")),
        waiting_seconds=sum(a.waiting_seconds or 0.0 for a in step.attempts),
        running_seconds=sum(a.running_seconds or 0.0 for a in step.attempts),
        redone_seconds=sum(end - begin for _, begin, end in lost_work(step)),
        cost=step.cost,
        state=step.state,
    )


@dataclass(frozen=True)
class Totals:
    steps: int
    done: int
    failed: int
    attempts: int
    evictions: int
    redone_seconds: float
    duration: float | None
    cost: float | None


def totals(record: RunRecord, *, now: float | None = None) -> Totals:
    """The run's totals; ``duration`` runs to ``now`` (or the last event) while the run has no end."""
    rows = [step_summary(s) for s in record.steps]
    end = record.end if record.end is not None else (now if now is not None else record.updated)
    return Totals(
        steps=len(record.steps),
        done=sum(1 for s in record.steps if s.state in ("cached", "succeeded")),
        failed=sum(1 for s in record.steps if s.state in ("failed", "skipped")),
        attempts=sum(r.attempts for r in rows),
        evictions=sum(r.evictions for r in rows),
        redone_seconds=sum(r.redone_seconds for r in rows),
        duration=None if record.start is None or end is None else max(0.0, end - record.start),
        cost=record.cost,
    )
