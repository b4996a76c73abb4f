"""The report page and the trace show every step, attempt, eviction and node life of the record."""

from __future__ import annotations

import itertools
import re
from typing import Any

from gokart_k8s.history import fold
from gokart_k8s.history.report import COLOURS, render_html, trace

STEPS = [
    {"unique_id": "u-load", "family": "LoadData", "cached": True},
    {"unique_id": "u-train", "family": "TrainModel"},
    {"unique_id": "u-eval", "family": "EvaluateModel"},
]


def ev(t: float, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t": t, "d": "d1", "n": int(t * 100), "type": kind, **fields}


def record() -> Any:
    def attempt(t: float, uid: str, step: str, **f: Any) -> dict[str, Any]:
        return ev(t, "attempt", step=step, uid=uid, **f)

    return fold(
        "run-1",
        [
            ev(0, "driver", driver={"id": "d1"}, run={"backend": "local-cluster", "nodes_known": True}, steps=STEPS),
            ev(0.1, "state", step="u-load", state="cached"),
            attempt(1, "t1", "u-train", submitted=1.0, started=1.2, ended=5.0, outcome="evicted", capacity_type="spot"),
            # Overlaps the next one: a pod never started, deleted when its Job was replaced.
            attempt(5, "t2", "u-train", submitted=5.0, ended=9.0, outcome="abandoned", capacity_type="spot"),
            attempt(
                5.1,
                "t3",
                "u-train",
                submitted=5.1,
                started=8.0,
                ended=15.0,
                outcome="succeeded",
                capacity_type="on-demand",
                checkpoint={"name": "ckpt-0000000003.pkl", "saved": 4.0},
            ),
            attempt(
                15, "e1", "u-eval", submitted=15.0, started=15.5, ended=18.0, outcome="out_of_memory", exit_code=137
            ),
            ev(0.5, "node", uid="n1", name="spot-0", capacity_type="spot", start=-100.0, end=5.5),
            ev(8, "node", uid="n2", name="spot-0", capacity_type="spot", start=8.0),
            ev(0.5, "node", uid="n3", name="od-0", capacity_type="on-demand", start=-100.0),
            ev(18.5, "end", state="failed"),
        ],
    )


def test_the_page_draws_a_row_per_step_a_bar_per_attempt_and_a_mark_per_eviction_and_failure() -> None:
    page = render_html(record())
    assert re.findall(r'<g class="step-row" data-step="(\w+)"', page) == ["LoadData", "TrainModel", "EvaluateModel"]
    bars = re.findall(r'<g class="attempt" data-step="(\w+)" data-attempt="\d+" data-outcome="(\w+)"', page)
    assert bars == [
        ("TrainModel", "evicted"),
        ("TrainModel", "abandoned"),
        ("TrainModel", "succeeded"),
        ("EvaluateModel", "out_of_memory"),
    ]
    assert page.count('class="mark evicted"') == 1 and page.count('class="mark failed"') == 1
    # Waiting is drawn apart from running: four waits, three attempts that ran.
    assert page.count('<rect class="wait"') == 4 and page.count('<rect class="run ') == 3
    assert f'fill="{COLOURS["spot"]}"' in page and f'fill="{COLOURS["on-demand"]}"' in page
    # The eviction lost the work since the checkpoint the next attempt that ran resumed from (1 s).
    assert page.count('<rect class="lost"') == 1 and "work lost to the eviction: 1.0 s" in page
    assert re.findall(r'<g class="node-row" data-node="([\w-]+)"', page) == ["od-0", "spot-0"]
    assert page.count('class="node-life') == 3 and page.count('class="mark node-end"') == 1
    assert re.search(r'<tr data-step="TrainModel">.*?<td class="n">3</td><td class="n">1</td>', page)
    assert re.search(r'<tr data-step="LoadData">.*?<td>cached</td></tr>', page)


def test_the_page_loads_nothing_from_the_network() -> None:
    page = render_html(record())
    assert re.findall(r"https?://[^\"' ]+", page) == ["http://www.w3.org/2000/svg"]
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import", page)


def test_the_trace_has_a_track_per_step_and_per_node_and_nothing_overlaps_on_a_track() -> None:
    data = trace(record())
    events = data["traceEvents"]
    names = {(e["pid"], e["args"]["name"]) for e in events if e["name"] == "thread_name"}
    assert {(1, "LoadData"), (1, "TrainModel"), (1, "EvaluateModel"), (2, "spot-0"), (2, "od-0")} <= names
    spans: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for e in events:
        if e["ph"] == "X":
            spans.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for track in spans.values():
        track.sort()
        assert all(b[0] >= a[1] for a, b in itertools.pairwise(track)), track
    assert [e["cat"] for e in events if e["ph"] == "i"] == ["eviction"]
    assert data["displayTimeUnit"] == "ms" and data["otherData"]["run_id"] == "run-1"
