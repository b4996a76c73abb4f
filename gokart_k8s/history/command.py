"""``gokart-k8s runs`` and ``gokart-k8s report``: read the run records of a workspace.

::

    gokart-k8s runs   [--workspace W]
    gokart-k8s report [RUN_ID|latest] [-o FILE] [--format html|json|trace] [--workspace W]

The workspace defaults to ``[TaskOnKart] workspace_directory`` (the cache the runs wrote to).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from gokart_k8s.errors import CacheError, GokartK8sError
from gokart_k8s.history import RecordNotFoundError, list_records, load_record
from gokart_k8s.history.record import RunRecord, silent_for, totals
from gokart_k8s.history.report import render_html, trace_json
from gokart_k8s.history.store import RecordStore, open_store

FORMATS = ("html", "json", "trace")


def register(subparsers: Any) -> None:
    """Add ``runs`` and ``report`` to the ``gokart-k8s`` command line."""
    runs = subparsers.add_parser("runs", help="list the recorded runs of the cache, newest first")
    runs.add_argument("--workspace", help="the cache (default: [TaskOnKart] workspace_directory)")
    runs.add_argument("--debug", action="store_true", help="show tracebacks")
    runs.set_defaults(func=cmd_runs)
    report = subparsers.add_parser("report", help="a run's report: HTML timeline, JSON record or Chrome trace")
    report.add_argument("run_id", nargs="?", default="latest", help="a run id from `gokart-k8s runs`, or latest")
    report.add_argument("-o", "--output", help="write to this file (default: stdout for json/trace, report.html)")
    report.add_argument("--format", choices=FORMATS, default="html")
    report.add_argument("--workspace", help="the cache (default: [TaskOnKart] workspace_directory)")
    report.add_argument("--debug", action="store_true", help="show tracebacks")
    report.set_defaults(func=cmd_report)


def _store(args: argparse.Namespace) -> RecordStore:
    from gokart_k8s.workspace import workspace_directory

    # No cache preflight: it writes a probe object, and reading records needs only read access
    # (an on-call engineer may hold just roles/storage.objectViewer).
    return open_store(args.workspace or workspace_directory())


@contextlib.contextmanager
def _reading(store: RecordStore) -> Iterator[None]:
    """Turn a failure to read the records (no bucket, no credentials, no permission) into one message."""
    try:
        yield
    except GokartK8sError:
        raise
    except Exception as exc:
        raise CacheError(
            f"Cannot read the run records at {store.location}: {exc}. Check --workspace (or "
            "[TaskOnKart] workspace_directory) and that your credentials may read the bucket "
            "(roles/storage.objectViewer)."
        ) from exc


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def run_state(record: RunRecord, now: float) -> str:
    """The record's state; a ``running`` one whose drivers went silent says for how long."""
    silent = silent_for(record, now)
    return record.state if silent is None else f"running? (silent {_duration(silent)})"


def runs_table(records: list[RunRecord], *, now: float | None = None) -> str:
    """The ``gokart-k8s runs`` table."""
    now = time.time() if now is None else now
    header = ("RUN", "ROOT", "STARTED", "DURATION", "STATE", "DONE", "FAILED", "EVICTIONS", "REDONE", "COST")
    rows = [header]
    for record in records:
        t = totals(record)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.start)) if record.start else "-"
        rows.append(
            (
                record.run_id,
                str(record.root.get("family") or "-"),
                started,
                _duration(t.duration),
                run_state(record, now),
                f"{t.done}/{t.steps}",
                str(t.failed),
                str(t.evictions),
                _duration(t.redone_seconds),
                "-" if t.cost is None else f"${t.cost:.2f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    with _reading(store):
        records = list_records(store)
    if not records:
        print(f"no recorded runs in {store.location}", file=sys.stderr)
        return 0
    for record in records:
        _price(record)
    print(runs_table(records))
    return 0


def _price(record: Any) -> None:
    """Price the record's attempts with the price catalog (:mod:`gokart_k8s.cost`), as the run did.

    A record is folded from its drivers' events, which carry what happened, not what it cost; the
    cost follows from the attempts, the record's platform and the region in force (``[gokart_k8s]
    region``, or the one the run recorded). Unknown prices stay unknown.
    """
    from gokart_k8s.cost.billing import attempt_pricer
    from gokart_k8s.cost.config import load_cost_options
    from gokart_k8s.cost.machines import load_machines
    from gokart_k8s.history.record import price
    from gokart_k8s.settings import load_settings

    settings = load_settings()
    platform = record.platform or settings.platform
    region = (record.settings or {}).get("region") or settings.region
    if not region or platform == "plain":
        return
    try:
        pricer = attempt_pricer(platform, load_cost_options(region=region), load_machines())
    except GokartK8sError:
        return
    price(record, pricer)


def cmd_report(args: argparse.Namespace) -> int:
    store = _store(args)
    run_id = args.run_id
    with _reading(store):
        if run_id == "latest":
            records = list_records(store)
            if not records:
                raise RecordNotFoundError(
                    f"There are no recorded runs in {store.location}: run a pipeline first, or pass --workspace."
                )
            run_id = records[0].run_id
        record = load_record(store, run_id)
    _price(record)
    now = time.time()
    state = run_state(record, now)
    if silent_for(record, now) is not None and record.updated is not None:
        now = record.updated  # its driver died: draw what is known, not hours of nothing since
    if args.format == "json":
        text = json.dumps(record.to_dict(), indent=1)
    elif args.format == "trace":
        text = trace_json(record, now=now)
    else:
        text = render_html(record, now=now, state=state)
    output = args.output or ("report.html" if args.format == "html" else None)
    if output is None or output == "-":
        print(text)
        return 0
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise GokartK8sError(f"cannot write the report to {output}: {exc}. Pass another -o FILE.") from exc
    print(output)
    return 0
