"""Benchmark: how soon the driver says the API server is gone, and how soon it stops after the limit.

Run::

    PYTHONPATH=. python benchmarks/bench_api_loss.py [--limit 10] [--repeats 3]

An embedded local cluster behind a TCP line that can be cut
(:class:`gokart_k8s.testing.network.CuttableProxy`); ``run_steps`` follows one step that sleeps for
ten minutes. Once the step runs, the line goes down and stays down, two ways:

- ``cut``: connections broken, new ones refused (a server that stopped or restarts);
- ``hang``: connections kept open, nothing answers (a partition, a frozen control plane) -- found
  by the watcher's liveness probe after 15 s of silence and 10 s without an answer.

Measured from the outage: when the driver's first "cluster unreachable" notice arrives, and when
``run_steps`` returns with its error (``api_unreachable_timeout_seconds = --limit``).

Targets: the notice within 5 s of a cut and within 30 s of a hang; the stop within the limit
plus 5 s after the notice.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gokart

import gokart_k8s
import gokart_k8s.driver as driver_module
from gokart_k8s.cluster.kubernetes import connect
from gokart_k8s.driver import run_steps
from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.platforms import get_profile
from gokart_k8s.resources import ResourceClass
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec, collect
from gokart_k8s.testing.network import CuttableProxy

CLASS = ResourceClass(cpu="10m", memory="64Mi", name="bench")


@gokart_k8s.job(resources=CLASS)
class BenchLongStep(gokart.TaskOnKart[Any]):
    pass


def _sleeping_pods() -> None:
    original = driver_module.build_job_manifest  # type: ignore[attr-defined]

    def build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        manifest = original(*args, **kwargs)
        manifest["spec"]["template"]["spec"]["containers"][0]["command"] = ["sleep", "600"]
        manifest["spec"]["template"]["spec"].pop("securityContext", None)
        return manifest

    driver_module.build_job_manifest = build  # type: ignore[attr-defined]


def measure(limit: float, kind: str) -> tuple[float, float, str]:
    settings = dataclasses.replace(Settings(), api_unreachable_timeout_seconds=limit, request_timeout_seconds=5)
    with LocalCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        proxy = CuttableProxy(int(urlsplit(cluster.url).port or 0))
        path = cluster.write_kubeconfig(Path(tmp) / "kubeconfig")
        path.write_text(path.read_text().replace(cluster.url, proxy.url))
        api = connect(kubeconfig=str(path), request_timeout=5)
        steps, _ = collect([BenchLongStep()], settings)
        cut_at: list[float] = []
        noticed: list[float] = []

        class Progress:
            def step_state(self, spec: StepSpec, state: str, detail: str = "") -> None:
                if state == "running" and not cut_at:
                    cut_at.append(time.monotonic())
                    threading.Thread(target=proxy.cut if kind == "cut" else proxy.hang, daemon=True).start()

        def notice(text: str) -> None:
            if text.startswith("cluster unreachable") and not noticed:
                noticed.append(time.monotonic())

        report = run_steps(
            steps,
            settings,
            api,
            run_id="bench",
            image="local/bench",
            env={},
            profile=get_profile(settings),
            progress=Progress(),
            notice=notice,
            on_interrupt="keep",
            is_complete=lambda steps: set(),
        )
        stopped = time.monotonic()
        proxy.close()
    return noticed[0] - cut_at[0], stopped - cut_at[0], type(report.error).__name__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=float, default=10.0, help="api_unreachable_timeout_seconds")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    _sleeping_pods()
    print(f"API server cut while one step runs; api_unreachable_timeout_seconds = {args.limit:g}")
    print(f"{'outage':>6}  {'run':>3}  {'notice after outage':>19}  {'stopped after outage':>20}  error")
    for kind in ("cut", "hang"):
        for n in range(1, args.repeats + 1):
            notice, stop, error = measure(args.limit, kind)
            print(f"{kind:>6}  {n:>3}  {notice:>17.2f} s  {stop:>18.2f} s  {error}")


if __name__ == "__main__":
    main()
