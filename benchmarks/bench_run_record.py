"""What a run record costs: events written, bytes, and the time to fold and draw a large run.

Run:  PYTHONPATH=. python benchmarks/bench_run_record.py [--steps 500] [--attempts 3]

A synthetic run of ``--steps`` steps with ``--attempts`` attempts each (the last succeeds, the
others are evicted) is recorded through a :class:`RunRecorder` on a local directory, then folded
from its events, rendered as the HTML report and as a Chrome trace (best of 3 each). The baseline
is a run without a record: the driver's hook calls are the only work a run pays for, and the
recorder's flushes happen on its own thread.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

from gokart_k8s.eviction import Eviction
from gokart_k8s.history import RunRecorder, load_record
from gokart_k8s.history.report import render_html, trace_json
from gokart_k8s.history.store import open_store
from gokart_k8s.resources import BUILTIN_CLASSES
from gokart_k8s.steps import StepSpec


def pod(step: int, attempt: int, *, phase: str, exit_code: int | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": "2026-01-01T00:00:09Z"}}
    return {
        "metadata": {
            "name": f"s{step}-{attempt}",
            "uid": f"u{step}-{attempt}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "labels": {"job-name": f"s{step}"},
        },
        "spec": {"nodeName": f"node-{step % 20}", "containers": [{"resources": {"requests": {"cpu": "1"}}}]},
        "status": {"phase": phase, "containerStatuses": [{"state": state}]},
    }


class Ended:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.reason = "TerminationByKubelet" if kind == "evicted" else "Succeeded"


def best(fn: Any, n: int = 3) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--attempts", type=int, default=3)
    args = parser.parse_args()
    specs = [
        StepSpec(f"Step{i}", "m", f"{i:032x}", f"Step{i}_x", {}, BUILTIN_CLASSES["small"], Eviction.TOLERATE)
        for i in range(args.steps)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(tmp)
        recorder = RunRecorder(store, "bench", render=None)
        recorder.start({"backend": "kubernetes"}, [{"unique_id": s.unique_id, "family": s.family} for s in specs])
        started = time.perf_counter()
        for i, spec in enumerate(specs):
            recorder.step_state(spec, "submitted")
            for a in range(args.attempts):
                recorder.pod_seen(spec, pod(i, a, phase="Pending"))
                recorder.pod_seen(spec, pod(i, a, phase="Running"))
                last = a == args.attempts - 1
                ended = pod(i, a, phase="Succeeded" if last else "Failed", exit_code=0 if last else 143)
                recorder.pod_ended(spec, ended, Ended("succeeded" if last else "evicted"))
            recorder.step_state(spec, "succeeded")
        hooks = time.perf_counter() - started
        recorder.finish("succeeded")
        events_dir = store.path("bench", "events")
        size = sum(os.path.getsize(os.path.join(events_dir, f)) for f in os.listdir(events_dir))
        lines = sum(open(os.path.join(events_dir, f)).read().count("\n") for f in os.listdir(events_dir))
        record = load_record(store, "bench")
        fold_s = best(lambda: load_record(store, "bench"))
        html_s = best(lambda: render_html(record))
        trace_s = best(lambda: trace_json(record))
        page = render_html(record)
        calls = args.steps * (2 + 3 * args.attempts)
        print(f"run of {args.steps} steps x {args.attempts} attempts ({calls} hook calls from the driver)")
        print(f"  hook calls in the driver thread:   {hooks * 1000:8.1f} ms ({hooks / calls * 1e6:.1f} µs per call)")
        print(f"  events written: {lines} lines, {size / 1024:.0f} KiB")
        print(f"  fold the record from its events:  {fold_s * 1000:8.1f} ms")
        print(f"  render the HTML report:           {html_s * 1000:8.1f} ms ({len(page) / 1024:.0f} KiB)")
        print(f"  render the Chrome trace:          {trace_s * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
