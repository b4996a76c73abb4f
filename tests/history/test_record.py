"""The run record is folded from events: any order, any number of drivers, never erasing a fact."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from gokart_k8s.history import SCHEMA, VERSION, RunRecord, fold, price
from gokart_k8s.history.record import Attempt, StepRecord, lost_work, step_summary, totals

STEPS = [
    {"unique_id": "u-load", "family": "LoadData", "resource_class": "small", "eviction": "tolerate", "cached": False},
    {"unique_id": "u-train", "family": "TrainModel", "resource_class": "highcpu", "eviction": "tolerate"},
]


def ev(t: float, kind: str, d: str = "d1", n: int = 0, **fields: Any) -> dict[str, Any]:
    return {"t": t, "d": d, "n": n or int(t * 10), "type": kind, **fields}


def first_driver() -> list[dict[str, Any]]:
    return [
        ev(
            100,
            "driver",
            driver={"id": "d1", "host": "h"},
            run={"backend": "kubernetes", "platform": "gke-standard"},
            steps=STEPS,
        ),
        ev(101, "attempt", step="u-load", uid="p1", pod="load-1", submitted=101.0, capacity_type="spot"),
        ev(102, "attempt", step="u-load", uid="p1", started=102.0, node="n1"),
        ev(105, "attempt", step="u-load", uid="p1", ended=105.0, outcome="succeeded", exit_code=0),
        ev(105.1, "state", step="u-load", state="succeeded"),
        ev(106, "attempt", step="u-train", uid="p2", submitted=106.0, started=106.5, capacity_type="spot"),
        ev(110, "attempt", step="u-train", uid="p2", ended=110.0, outcome="evicted", reason="TerminationByKubelet"),
        ev(
            111,
            "attempt",
            step="u-train",
            uid="p3",
            submitted=110.0,
            started=113.0,
            checkpoint={"name": "ckpt-0000000004.pkl", "saved": 109.0},
        ),
    ]


def test_a_record_is_the_same_whatever_order_its_events_arrive_in() -> None:
    events = first_driver()
    assert fold("r", events).to_dict() == fold("r", list(reversed(events))).to_dict()


def test_a_later_event_adds_facts_but_never_erases_one() -> None:
    record = fold("r", [*first_driver(), ev(112, "attempt", step="u-train", uid="p2", node=None, pod="train-2")])
    (train,) = [s for s in record.steps if s.family == "TrainModel"]
    evicted = train.attempts[0]
    assert (evicted.pod, evicted.outcome, evicted.ended, evicted.driver) == ("train-2", "evicted", 110.0, "d1")


def test_a_killed_driver_leaves_a_running_record_and_a_rerun_continues_it() -> None:
    partial = fold("r", first_driver())
    assert partial.state == "running" and partial.end is None
    assert [len(s.attempts) for s in partial.steps] == [1, 2]

    second = [
        ev(120, "driver", d="d2", driver={"id": "d2"}, run={"backend": "kubernetes"}, steps=STEPS),
        ev(120.5, "state", d="d2", step="u-load", state="cached"),
        ev(125, "attempt", d="d2", step="u-train", uid="p3", ended=125.0, outcome="succeeded"),
        ev(125.1, "state", d="d2", step="u-train", state="succeeded"),
        ev(126, "end", d="d2", state="succeeded"),
    ]
    record = fold("r", first_driver() + second)
    assert [(d.id, d.state) for d in record.drivers] == [("d1", "lost"), ("d2", "succeeded")]
    assert record.state == "succeeded" and record.start == 100 and record.end == 126
    load, train = record.steps
    # The later driver finds LoadData in the cache: this run wrote it, so it stays this run's success.
    assert load.state == "succeeded" and not load.cached
    assert [a.driver for a in train.attempts] == ["d1", "d1"]
    assert train.attempts[1].outcome == "succeeded" and train.attempts[1].ended == 125.0


def test_work_lost_to_an_eviction_starts_at_the_checkpoint_the_next_attempt_resumed_from() -> None:
    step = StepRecord(
        unique_id="u",
        attempts=[
            Attempt(uid="a", started=0.0, ended=10.0, outcome="evicted"),
            Attempt(uid="never-ran", submitted=10.0, ended=10.5, outcome="abandoned"),
            Attempt(uid="b", submitted=10.0, started=12.0, ended=20.0, outcome="evicted", checkpoint={"saved": 7.0}),
            Attempt(uid="c", submitted=20.0, started=21.0, ended=30.0, outcome="succeeded"),
        ],
    )
    assert [(a.uid, begin, end) for a, begin, end in lost_work(step)] == [("a", 7.0, 10.0), ("b", 12.0, 20.0)]
    summary = step_summary(step)
    assert (summary.attempts, summary.evictions, summary.failures, summary.redone_seconds) == (4, 2, 0, 11.0)
    assert summary.waiting_seconds == 0.5 + 2.0 + 1.0


def test_costs_are_null_until_a_pricing_function_fills_them() -> None:
    record = fold("r", first_driver())
    assert record.cost is None and all(a.cost is None for s in record.steps for a in s.attempts)
    price(record, lambda a: 0.01 if a.capacity_type == "spot" else None)
    assert [s.cost for s in record.steps] == [0.01, 0.01]
    assert record.cost == 0.02 and totals(record).cost == 0.02


def test_a_record_round_trips_through_its_versioned_json() -> None:
    record = fold("r", first_driver())
    data = json.loads(json.dumps(record.to_dict()))
    assert (data["schema"], data["version"]) == (SCHEMA, VERSION)
    assert list(data)[:2] == ["schema", "version"]
    again = RunRecord.from_dict({**data, "a_field_from_a_newer_writer": 1})
    assert again.to_dict() == record.to_dict()


def test_a_driver_that_cannot_list_nodes_makes_node_lives_unknown_not_empty() -> None:
    start = ev(100, "driver", driver={"id": "d1"}, run={"backend": "kubernetes", "nodes_known": True}, steps=STEPS)
    assert fold("r", [start]).nodes == []
    assert fold("r", [start, ev(101, "nodes", known=False, reason="forbidden")]).nodes is None


def test_folding_finds_each_step_by_index_not_by_searching_the_list(monkeypatch: Any) -> None:
    """A search per new step is quadratic: 10,000 steps spent seconds of every run's end there."""

    def searching(self: RunRecord, unique_id: str) -> StepRecord:
        raise AssertionError("fold searched the step list")

    monkeypatch.setattr(RunRecord, "step", searching)
    record = fold("r", first_driver())
    assert [s.unique_id for s in record.steps] == ["u-load", "u-train"]


def test_the_snapshot_text_is_the_record_with_one_step_per_line() -> None:
    record = fold("r", first_driver())
    text = record.to_json()
    assert json.loads(text) == record.to_dict() == json.loads(json.dumps(dataclasses.asdict(record)))
    assert text.splitlines()[1:3] == [f'"schema": "{SCHEMA}",', f'"version": {VERSION},']
    assert [line for line in text.splitlines() if '"unique_id"' in line][1].startswith('  {"unique_id":"u-train"')
