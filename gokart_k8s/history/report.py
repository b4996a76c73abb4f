"""The run report: a self-contained HTML page with a timeline picture, and a Chrome trace.

Pure: a :class:`~gokart_k8s.history.record.RunRecord` in, text out.

The picture is hand-written SVG rather than a plotting library's output. It is a Gantt chart of
rectangles on a time axis (Airflow's Gantt view, Flyte's timeline tab, see
docs/run-record.md), which is a few dozen lines of SVG; writing it directly lets every bar and
mark carry its meaning in the page (``data-step``, ``data-outcome``, a ``<title>`` tooltip), so a
browser test can check what is drawn against the record, and it keeps a 40 MB plotting library
out of the driver's (and the scheduled driver pod's) dependencies. The page loads nothing from
the network: styles and the one small script are inline.

Drawing rules (one row per step, then one row per node):

- an attempt is a bar: a pale, outlined part while it **waited** (submitted until its container
  started: waiting for a node, pulling the image) and a solid part while it **ran**, coloured by
  the capacity it ran on (Spot, on-demand, unknown);
- an **eviction** is a red cross at the end of the attempt it ended, a **failure** a black
  bar-end marker; the work the eviction **lost** (since the checkpoint the next attempt resumed
  from, or all of it) is hatched over the bar;
- a node's row shows each of its lives (a preempted node that comes back is a second life), with
  a mark where one ended during the run.

:func:`trace` writes the same facts as Chrome/Perfetto trace-event JSON: process 1 holds one track
(thread) per step, process 2 one per node; attempts and node lives are complete events (``X``),
evictions instant events (``i``) (https://perfetto.dev/docs/getting-started/other-formats).
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

from gokart_k8s.history.record import Attempt, RunRecord, lost_work, step_summary, totals

__all__ = ["COLOURS", "render_html", "timeline_svg", "trace", "trace_json"]

#: Fill colours of a running attempt by capacity type, and of the marks.
COLOURS = {
    "spot": "#e8891c",
    "on-demand": "#2f6fd6",
    None: "#8a8f98",
    "evicted": "#d62728",
    "failed": "#111111",
}

#: Outcomes that are not a failure mark: running, done, evicted (its own mark), or a pod that
#: never ran because the driver replaced its Job.
_NOT_FAILURES = (None, "succeeded", "evicted", "abandoned")

_LABEL_W = 190
_PLOT_W = 860
_ROW_H = 30
_BAR_H = 14
_AXIS_H = 28


def _esc(text: Any) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def _cost(value: float | None) -> str:
    return "-" if value is None else f"${value:.4f}"


def _span(record: RunRecord, now: float | None) -> tuple[float, float]:
    """The time the picture shows: from the run's start to its end (or the last thing known)."""
    times: list[float] = []
    for step in record.steps:
        for a in step.attempts:
            times += [t for t in (a.submitted, a.started, a.ended) if t is not None]
    times += [t for t in (record.start, record.end, record.updated) if t is not None]
    if not times:
        t0 = now or 0.0
        return t0, t0 + 1.0
    t0 = min(times)
    t1 = max(times)
    if record.end is None and now is not None:
        t1 = max(t1, now)
    return t0, max(t1, t0 + 1.0)


def _ticks(t0: float, t1: float) -> list[float]:
    span = t1 - t0
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if span / step <= 10:
            return [t0 + i * step for i in range(int(span // step) + 1)]
    return [t0, t1]


def _attempt_title(step_name: str, n: int, a: Attempt) -> str:
    parts = [f"{step_name} attempt {n}"]
    if a.pod:
        parts.append(f"pod {a.pod}")
    if a.node:
        parts.append(f"node {a.node}")
    if a.pool:
        parts.append(f"pool {a.pool}")
    parts.append(f"capacity {a.capacity_type or 'unknown'}")
    if a.machine_type:
        parts.append(f"machine {a.machine_type}")
    parts.append(f"waited {_seconds(a.waiting_seconds)}, ran {_seconds(a.running_seconds)}")
    parts.append(f"outcome {a.outcome or 'running'}" + (f" ({a.reason})" if a.reason else ""))
    if a.exit_code is not None:
        parts.append(f"exit {a.exit_code}")
    if a.checkpoint:
        parts.append(f"resumed from {a.checkpoint.get('name')}")
    if a.cost is not None:
        parts.append(f"cost {_cost(a.cost)}")
    return "\n".join(parts)


def timeline_svg(record: RunRecord, *, now: float | None = None) -> str:
    """The timeline picture (see the module docstring)."""
    t0, t1 = _span(record, now)
    scale = _PLOT_W / (t1 - t0)

    def x(t: float) -> float:
        return round(_LABEL_W + (t - t0) * scale, 1)

    node_names = sorted({n.name for n in record.nodes or []})
    rows = len(record.steps) + (len(node_names) + 1 if node_names else 0)
    height = _AXIS_H + rows * _ROW_H + 10
    width = _LABEL_W + _PLOT_W + 20
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Timeline of run {_esc(record.run_id)}">',
        "<defs>"
        '<pattern id="lost" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#ffffff" fill-opacity="0.25"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#7a0000" stroke-width="3"/></pattern></defs>',
    ]
    # Axis: elapsed time since the start, with grid lines.
    for tick in _ticks(t0, t1):
        tx = x(tick)
        out.append(f'<line class="grid" x1="{tx}" y1="{_AXIS_H - 6}" x2="{tx}" y2="{height - 6}"/>')
        out.append(f'<text class="tick" x="{tx}" y="{_AXIS_H - 10}">+{_seconds(tick - t0)}</text>')
    y = _AXIS_H
    for index, step in enumerate(record.steps):
        name = step.family or step.unique_id[:12]
        out.append(
            f'<g class="step-row" data-step="{_esc(name)}" data-unique-id="{_esc(step.unique_id)}" '
            f'data-state="{_esc(step.state)}">'
        )
        if index % 2 == 0:
            out.append(f'<rect class="band" x="0" y="{y}" width="{width}" height="{_ROW_H}"/>')
        out.append(f'<text class="label" x="8" y="{y + _ROW_H / 2 + 4}">{_esc(name)}</text>')
        top = y + (_ROW_H - _BAR_H) / 2
        if step.cached and not step.attempts:
            out.append(f'<text class="note" x="{_LABEL_W + 4}" y="{y + _ROW_H / 2 + 4}">cached</text>')
        lost = {id(a): (b, e) for a, b, e in lost_work(step)}
        for n, a in enumerate(step.attempts, start=1):
            start = a.submitted if a.submitted is not None else a.started
            if start is None:
                continue
            running_from = a.started
            end = a.ended if a.ended is not None else t1
            capacity = a.capacity_type if a.capacity_type in ("spot", "on-demand") else "unknown"
            out.append(
                f'<g class="attempt" data-step="{_esc(name)}" data-attempt="{n}" '
                f'data-outcome="{_esc(a.outcome or "running")}" data-capacity="{capacity}">'
                f"<title>{_esc(_attempt_title(name, n, a))}</title>"
            )
            wait_end = running_from if running_from is not None else end
            if wait_end > start:
                out.append(
                    f'<rect class="wait" x="{x(start)}" y="{top + 2}" width="{max(1.0, x(wait_end) - x(start))}" '
                    f'height="{_BAR_H - 4}"/>'
                )
            if running_from is not None:
                fill = COLOURS.get(a.capacity_type if a.capacity_type in ("spot", "on-demand") else None)
                out.append(
                    f'<rect class="run {capacity}" x="{x(running_from)}" y="{top}" '
                    f'width="{max(2.0, x(end) - x(running_from))}" height="{_BAR_H}" fill="{fill}"/>'
                )
            if id(a) in lost:
                b, e = lost[id(a)]
                out.append(
                    f'<rect class="lost" x="{x(b)}" y="{top}" width="{max(1.0, x(e) - x(b))}" height="{_BAR_H}" '
                    f'fill="url(#lost)"><title>{_esc(f"work lost to the eviction: {_seconds(e - b)}")}</title></rect>'
                )
            if a.outcome == "evicted" and a.ended is not None:
                # A red flag: a line through the bar at the moment of the eviction, a triangle above it.
                ex = x(a.ended)
                out.append(
                    f'<g class="mark evicted"><title>evicted{_esc(" (" + a.reason + ")" if a.reason else "")}</title>'
                    f'<line x1="{ex}" y1="{top - 3}" x2="{ex}" y2="{top + _BAR_H + 2}" '
                    f'stroke="{COLOURS["evicted"]}" stroke-width="2"/>'
                    f'<path d="M{ex - 6},{top - 10}L{ex + 6},{top - 10}L{ex},{top - 2}Z" '
                    f'fill="{COLOURS["evicted"]}"/></g>'
                )
            elif a.outcome not in _NOT_FAILURES and a.ended is not None:
                ex = x(a.ended)
                out.append(
                    f'<rect class="mark failed" x="{ex - 2}" y="{top - 3}" width="5" height="{_BAR_H + 6}" '
                    f'fill="{COLOURS["failed"]}"><title>{_esc(a.outcome)}'
                    f"{_esc(' (' + a.reason + ')' if a.reason else '')}</title></rect>"
                )
            out.append("</g>")
        out.append("</g>")
        y += _ROW_H
    if node_names:
        out.append(f'<line class="separator" x1="0" y1="{y + 6}" x2="{width}" y2="{y + 6}"/>')
        out.append(f'<text class="section" x="8" y="{y + _ROW_H - 4}">nodes</text>')
        y += _ROW_H
        for name in node_names:
            out.append(f'<g class="node-row" data-node="{_esc(name)}">')
            out.append(f'<text class="label" x="8" y="{y + _ROW_H / 2 + 4}">{_esc(name)}</text>')
            for life in [n for n in record.nodes or [] if n.name == name]:
                begin = max(t0, life.start if life.start is not None else t0)
                end = life.end if life.end is not None else t1
                if end < t0:
                    continue
                capacity = life.capacity_type if life.capacity_type in ("spot", "on-demand") else "unknown"
                fill = COLOURS.get(life.capacity_type if capacity != "unknown" else None)
                title = (
                    f"node {name} ({life.pool or 'no pool'}, {capacity}"
                    + (f", {life.machine_type}" if life.machine_type else "")
                    + f")\nup {_clock(life.start)} until {_clock(life.end) if life.end else 'after the run'}"
                )
                out.append(
                    f'<rect class="node-life {capacity}" x="{x(begin)}" y="{y + 8}" '
                    f'width="{max(1.0, x(end) - x(begin))}" height="{_ROW_H - 16}" fill="{fill}" '
                    f'data-capacity="{capacity}"><title>{_esc(title)}</title></rect>'
                )
                if life.end is not None and t0 <= life.end <= t1:
                    out.append(
                        f'<rect class="mark node-end" x="{x(life.end) - 1.5}" y="{y + 4}" width="3" '
                        f'height="{_ROW_H - 8}"><title>node {_esc(name)} went away</title></rect>'
                    )
            out.append("</g>")
            y += _ROW_H
    out.append("</svg>")
    return "".join(out)


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d1f23; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #555; margin-bottom: 14px; }
.meta span { margin-right: 18px; }
svg text { font: 12px system-ui, sans-serif; fill: #1d1f23; }
svg .tick { fill: #666; text-anchor: middle; font-size: 11px; }
svg .grid { stroke: #e3e5e8; }
svg .band { fill: #f6f7f9; }
svg .wait { fill: #ffffff; stroke: #777; stroke-dasharray: 3 2; }
svg .separator { stroke: #999; }
svg .section { font-weight: 600; fill: #555; }
svg .note { fill: #666; font-style: italic; }
svg .node-life { fill-opacity: 0.45; }
svg .node-end { fill: #444444; }
.legend { margin: 8px 0 18px; color: #333; }
.legend i { display: inline-block; width: 22px; height: 11px; margin: 0 5px 0 14px; vertical-align: -1px; }
table { border-collapse: collapse; margin-top: 6px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e5e8; text-align: left; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.totals td { font-weight: 600; border-top: 2px solid #999; }
"""

# Measures what the browser laid out (visible boxes), so a headless check reads what is shown.
_SCRIPT = """
(function () {
  function shown(el) { var r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; }
  function count(sel) { return Array.prototype.filter.call(document.querySelectorAll(sel), shown).length; }
  var out = {
    step_rows: count('#timeline .step-row .label'),
    node_rows: count('#timeline .node-row'),
    attempt_bars: count('#timeline .attempt'),
    running_bars: count('#timeline .attempt .run'),
    waiting_bars: count('#timeline .attempt .wait'),
    eviction_marks: count('#timeline .mark.evicted'),
    failure_marks: count('#timeline .mark.failed'),
    lost_work: count('#timeline .lost'),
    table_rows: count('#steps tbody tr')
  };
  document.getElementById('rendered').textContent = JSON.stringify(out);
})();
"""


def _legend() -> str:
    items = [
        (f"background:{COLOURS['spot']}", "ran on Spot"),
        (f"background:{COLOURS['on-demand']}", "ran on-demand"),
        (f"background:{COLOURS[None]}", "capacity unknown"),
        ("background:#fff;border:1px dashed #777", "waiting for a node"),
        ("background:repeating-linear-gradient(45deg,#7a0000 0 3px,#e8891c 3px 6px)", "work lost to an eviction"),
        (f"background:{COLOURS['evicted']};width:12px;clip-path:polygon(0 0,100% 0,50% 100%)", "eviction"),
        (f"background:{COLOURS['failed']};width:5px", "failure"),
        ("background:#444444;width:3px", "node went away (nodes rows)"),
    ]
    return '<div class="legend">' + "".join(f'<i style="{s}"></i>{_esc(t)}' for s, t in items) + "</div>"


def _table(record: RunRecord) -> str:
    head = (
        "<tr><th>step</th><th>resource class</th><th>eviction</th><th>pool</th><th>capacity</th><th>attempts</th>"
        "<th>evictions</th><th>waited</th><th>ran</th><th>redone</th><th>cost</th><th>state</th></tr>"
    )
    body = []
    for step in record.steps:
        s = step_summary(step)
        body.append(
            f'<tr data-step="{_esc(s.family)}"><td>{_esc(s.family)}</td><td>{_esc(s.resource_class)}</td>'
            f"<td>{_esc(step.eviction)}</td><td>{_esc(s.pool)}</td><td>{_esc(s.capacity)}</td>"
            f'<td class="n">{s.attempts}</td><td class="n">{s.evictions}</td>'
            f'<td class="n">{_seconds(s.waiting_seconds)}</td><td class="n">{_seconds(s.running_seconds)}</td>'
            f'<td class="n">{_seconds(s.redone_seconds)}</td><td class="n">{_cost(s.cost)}</td>'
            f"<td>{_esc(s.state)}</td></tr>"
        )
    t = totals(record)
    foot = (
        f'<tr class="totals"><td>total</td><td colspan="4">{t.done}/{t.steps} steps done, {t.failed} failed</td>'
        f'<td class="n">{t.attempts}</td><td class="n">{t.evictions}</td><td></td><td></td>'
        f'<td class="n">{_seconds(t.redone_seconds)}</td><td class="n">{_cost(t.cost)}</td>'
        f"<td>{_esc(record.state)}</td></tr>"
    )
    return f'<table id="steps"><thead>{head}</thead><tbody>{"".join(body)}</tbody><tfoot>{foot}</tfoot></table>'


def _drivers(record: RunRecord) -> str:
    if len(record.drivers) < 2:
        return ""
    items = "".join(
        f"<li>driver {_esc(d.id)} on {_esc(d.host)}: {_clock(d.start)} – "
        f"{_clock(d.end) if d.end else 'no end recorded'} ({_esc(d.state or 'running')})</li>"
        for d in record.drivers
    )
    return f"<h2>Drivers</h2><ul id=drivers>{items}</ul>"


def render_html(record: RunRecord, *, now: float | None = None, state: str | None = None) -> str:
    """The whole report page; ``now`` extends the bars of a run still going; ``state`` replaces the
    record's own word (``running? (silent 2:03:00)`` for a record whose driver died)."""
    t = totals(record, now=now)
    root = record.root.get("family") or "?"
    params = ", ".join(f"{k}={v}" for k, v in sorted((record.root.get("params") or {}).items()))
    meta = [
        ("run", record.run_id),
        ("state", state or record.state),
        ("started", _clock(record.start)),
        ("duration", _seconds(t.duration)),
        ("backend", record.backend),
        ("platform", record.platform),
        ("image", record.image or "-"),
        ("code", (record.code_version or "")[:12] or "in the image"),
        ("evictions", str(t.evictions)),
        ("redone", _seconds(t.redone_seconds)),
        ("cost", _cost(t.cost)),
    ]
    nodes_note = (
        ""
        if record.nodes is not None or record.backend == "inline"
        else "<p class=meta>Node lives unknown: the driver could not list the cluster's nodes.</p>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>gokart-k8s run {_esc(record.run_id)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_esc(root)}{_esc(f'({params})' if params else '')}</h1>"
        '<div class="meta">'
        + "".join(f"<span>{_esc(k)}: <b>{_esc(v)}</b></span>" for k, v in meta)
        + "</div>"
        + timeline_svg(record, now=now)
        + _legend()
        + nodes_note
        + "<h2>Steps</h2>"
        + _table(record)
        + _drivers(record)
        + f'<pre id="rendered" hidden></pre><script>{_SCRIPT}</script></body></html>'
    )


def _us(t: float, t0: float) -> int:
    return round((t - t0) * 1_000_000)


def trace(record: RunRecord, *, now: float | None = None) -> dict[str, Any]:
    """Chrome/Perfetto trace-event JSON: one track per step (pid 1) and per node (pid 2)."""
    t0, t1 = _span(record, now)
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 1, "tid": 0, "args": {"name": f"steps of {record.run_id}"}},
        {"name": "process_name", "ph": "M", "pid": 2, "tid": 0, "args": {"name": "nodes"}},
    ]

    def complete(name: str, cat: str, pid: int, tid: int, begin: float, end: float, args: dict[str, Any]) -> None:
        events.append(
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "ts": _us(begin, t0),
                "dur": max(0, _us(end, t0) - _us(begin, t0)),
                "pid": pid,
                "tid": tid,
                "args": args,
            }
        )

    tid = 0
    for step in record.steps:
        name = step.family or step.unique_id[:12]
        # Events on one track must nest: attempts that overlap in time (a pod still ending while
        # its replacement waits) go to a second track of the step.
        lanes: list[float] = []
        lane_tids: list[int] = []
        for n, a in enumerate(step.attempts, start=1):
            begin = a.submitted if a.submitted is not None else a.started
            if begin is None:
                continue
            end = a.ended if a.ended is not None else t1
            lane = next((i for i, free in enumerate(lanes) if free <= begin), None)
            if lane is None:
                lane = len(lanes)
                lanes.append(end)
                tid += 1
                lane_tids.append(tid)
                label = name if lane == 0 else f"{name} ({lane + 1})"
                events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": label}})
                events.append(
                    {"name": "thread_sort_index", "ph": "M", "pid": 1, "tid": tid, "args": {"sort_index": tid}}
                )
            lanes[lane] = end
            track = lane_tids[lane]
            args = {k: v for k, v in _attempt_args(a).items() if v is not None}
            if a.submitted is not None:
                wait_end = a.started if a.started is not None else end
                complete(f"{name} #{n} waiting", "waiting", 1, track, a.submitted, wait_end, args)
            if a.started is not None:
                cat = a.capacity_type or "unknown"
                complete(f"{name} #{n} {a.outcome or 'running'}", cat, 1, track, a.started, end, args)
            if a.outcome == "evicted" and a.ended is not None:
                events.append(
                    {
                        "name": f"evicted ({a.reason or 'eviction'})",
                        "cat": "eviction",
                        "ph": "i",
                        "s": "t",
                        "ts": _us(a.ended, t0),
                        "pid": 1,
                        "tid": track,
                    }
                )
        if not lane_tids:  # a cached step: an empty track, so every step has one
            tid += 1
            events.append({"name": "thread_name", "ph": "M", "pid": 1, "tid": tid, "args": {"name": name}})
    names = sorted({n.name for n in record.nodes or []})
    for tid, name in enumerate(names, start=1):
        events.append({"name": "thread_name", "ph": "M", "pid": 2, "tid": tid, "args": {"name": name}})
        for life in [n for n in record.nodes or [] if n.name == name]:
            begin = max(t0, life.start if life.start is not None else t0)
            end = life.end if life.end is not None else t1
            args = {"pool": life.pool, "capacity_type": life.capacity_type, "machine_type": life.machine_type}
            complete(f"{name} ({life.capacity_type or 'unknown'})", "node", 2, tid, begin, end, args)
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"run_id": record.run_id, "start_epoch_seconds": t0, "state": record.state},
    }


def _attempt_args(a: Attempt) -> dict[str, Any]:
    return {
        "pod": a.pod,
        "node": a.node,
        "pool": a.pool,
        "capacity_type": a.capacity_type,
        "machine_type": a.machine_type,
        "outcome": a.outcome,
        "reason": a.reason,
        "exit_code": a.exit_code,
        "checkpoint": (a.checkpoint or {}).get("name"),
        "cost": a.cost,
    }


def trace_json(record: RunRecord, *, now: float | None = None) -> str:
    return json.dumps(trace(record, now=now), indent=1)
