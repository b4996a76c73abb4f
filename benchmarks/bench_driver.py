"""Benchmark: the gokart_k8s driver against luigi's KubernetesJobTask on the same local cluster.

Run::

    PYTHONPATH=. python benchmarks/bench_driver.py [--steps 200] [--in-flight 500] [--luigi-workers 16]
        [--submitters N] [--compare-submitters 1] [--api-latency-ms 20] [--no-logs] [--luigi-logs]

Three phases, each against a fresh embedded local cluster running in a *child process* (so the
driver's memory is measured alone, and requests are counted at the server):

1. gokart_k8s ``run_steps`` on a fan-out/fan-in graph of ``--steps`` steps (one source, N-2
   middles, one sink), with live logs on as ``gokart-k8s run`` has them by default (``--no-logs``:
   off);
2. luigi ``KubernetesJobTask`` (pykube-ng) running the same graph through ``luigi.build`` with
   ``--luigi-workers`` workers, polling every second (luigi's default is 5 s: fewer requests but
   at least 5-10 s per step);
3. gokart_k8s with ``--in-flight`` independent steps all in flight at once: driver peak memory
   (``ru_maxrss`` of this process and the tracemalloc peak of the driver call), and the peak
   number of pods Running at once, sampled from the cluster's store every 0.1 s -- measured, not
   assumed. The cluster has enough nodes for them all (110 pods per node, the kubelet's default
   ``maxPods``, https://kubernetes.io/docs/reference/config-api/kubelet-config.v1beta1/, so 500
   pods need 5 nodes), and ``max_concurrent_steps`` is ``--in-flight``. With
   ``--compare-submitters 1`` the phase runs again with one submitter (one POST at a time), side
   by side: the server's time from the first Job POST to the last shows the difference. The
   embedded server answers in about a millisecond; ``--api-latency-ms`` adds a remote API
   server's round trip to every answer (watches excepted), which is where one POST at a time hurts.

``--luigi-logs`` also runs luigi with ``print_pod_logs_on_exit`` (luigi's way of showing logs), so
requests per step can be compared with logs shown on both sides; luigi's default shows none.

The steps are trivial on purpose: every pod runs ``python -c "print('ok')"`` (phase 3:
``sleep``), on both sides, so the figures measure the drivers rather than the steps. For the
gokart_k8s side the container command of the manifest is swapped for that one command, run as a
real step's is, under the step supervisor (:func:`gokart_k8s.supervision.step.supervise`), which
relays its output and writes the termination message the driver reads the log from
(:mod:`gokart_k8s.supervision.termination_log`); nothing else of the manifest changes.

Targets: at most 1/5 of luigi's API requests per step; under 300 MB with 500 steps in flight.
"""

from __future__ import annotations

import argparse
import collections
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gokart
import luigi

import gokart_k8s
import gokart_k8s.driver as driver_module
from gokart_k8s.cluster.kubernetes import connect
from gokart_k8s.driver import run_steps
from gokart_k8s.platforms import get_profile
from gokart_k8s.pools import NodePool
from gokart_k8s.resources import ResourceClass
from gokart_k8s.settings import Settings
from gokart_k8s.steps import collect

#: Big nodes: the benchmark measures drivers, not scheduling. A node holds at most 110 pods (the
#: kubelet's default maxPods, GKE Standard's default too), so 500 pods at once need 5 nodes.
PODS_PER_NODE = 110
TRIVIAL = ["python", "-c", "print('ok')"]
#: The same command under the step supervisor, as every gokart_k8s step's command runs.
SUPERVISED_TRIVIAL = [
    "python",
    "-c",
    "import sys; from gokart_k8s.supervision.step import supervise; "
    f"sys.exit(supervise([sys.executable, *{TRIVIAL[1:]!r}], 10))",
]
CLASS = ResourceClass(cpu="1m", memory="64Mi", name="bench")


# --- the cluster, in a child process, counting requests at the server ---------------------------


def _serve(conn: multiprocessing.connection.Connection, workdir: str, nodes: int, latency: float) -> None:
    import threading

    from gokart_k8s.localcluster import LocalCluster
    from gokart_k8s.localcluster import resources as r
    from gokart_k8s.localcluster import server as server_module

    counts: collections.Counter[str] = collections.Counter()
    posts: list[float] = []
    original = server_module._Handler._dispatch

    def counting(self: Any, method: str) -> None:
        path, _, query = self.path.partition("?")
        segments = path.strip("/").split("/")
        if "namespaces" in segments and len(segments) > segments.index("namespaces") + 2:
            at = segments.index("namespaces") + 2
            what = "/".join([segments[at], *segments[at + 2 : at + 3]])  # resource[/subresource]
        else:
            what = segments[-1]
        watch = "watch=true" in query or "watch=1" in query
        counts["total"] += 1
        counts["WATCH " + what if watch else f"{method} {what}"] += 1
        if method == "POST" and what == "jobs":
            posts.append(time.monotonic())
        if latency and not watch:
            time.sleep(
                latency
            )  # a remote API server's round trip (this server answers each connection on its own thread)
        original(self, method)

    server_module._Handler._dispatch = counting  # type: ignore[method-assign]
    pool = NodePool("bench", cpu="2000", memory="4Ti", nodes=nodes)
    cluster = LocalCluster([pool], workdir=Path(workdir), max_events=200_000).start()
    kubeconfig = cluster.write_kubeconfig(Path(workdir) / "kubeconfig")
    peak = {"running": 0}
    stop = threading.Event()

    def sample() -> None:
        # The pods Running at once, as the cluster's own store has them (not as the driver believes).
        while not stop.wait(0.1):
            pods, _ = cluster.store.list(r.POD, copy=False)
            running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
            peak["running"] = max(peak["running"], running)

    threading.Thread(target=sample, daemon=True).start()
    conn.send(str(kubeconfig))
    while True:
        command = conn.recv()
        if command == "counts":
            out = dict(counts)
            out["peak running pods"] = peak["running"]
            out["nodes"] = nodes
            out["POST jobs span ms"] = int(1000 * (posts[-1] - posts[0])) if posts else 0
            conn.send(out)
        elif command == "stop":
            stop.set()
            cluster.stop()
            conn.send("stopped")
            return


class ClusterProcess:
    def __init__(self, workdir: str, *, pods: int = PODS_PER_NODE, latency: float = 0.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        nodes = max(1, -(-pods // PODS_PER_NODE))
        self.process = ctx.Process(target=_serve, args=(child, workdir, nodes, latency), daemon=True)
        self.process.start()
        self.kubeconfig: str = self.conn.recv()

    def counts(self) -> dict[str, int]:
        self.conn.send("counts")
        return dict(self.conn.recv())

    def stop(self) -> None:
        self.conn.send("stop")
        self.conn.recv()
        self.process.join(timeout=30)


# --- the graph -------------------------------------------------------------------------------


@gokart_k8s.job(resources=CLASS)
class BenchSource(gokart.TaskOnKart[Any]):
    def run(self) -> None:  # never runs here: pods run the trivial command
        self.dump(0)


@gokart_k8s.job(resources=CLASS)
class BenchMiddle(gokart.TaskOnKart[Any]):
    i: int = luigi.IntParameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return BenchSource()


@gokart_k8s.job(resources=CLASS)
class BenchSink(gokart.TaskOnKart[Any]):
    n: int = luigi.IntParameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return [BenchMiddle(i=i) for i in range(self.n)]


@gokart_k8s.job(resources=CLASS)
class BenchIndependent(gokart.TaskOnKart[Any]):
    i: int = luigi.IntParameter()  # type: ignore[assignment]


def _nothing_cached_then_all_committed() -> Callable[[Any], set[str]]:
    """The cache as the driver sees it here: empty at the start; afterwards every step whose Job
    succeeded counts as committed (the trivial pods write nothing; the driver confirms each success
    with this check before it reports the step done)."""
    calls: list[int] = []

    def is_complete(steps: Any) -> set[str]:
        calls.append(1)
        return set() if len(calls) == 1 else {s.spec.unique_id for s in steps}

    return is_complete


def _swap_command(command: list[str]) -> Callable[[], None]:
    original = driver_module.build_job_manifest  # type: ignore[attr-defined]

    def build(*args: Any, **kwargs: Any) -> dict[str, Any]:
        manifest = original(*args, **kwargs)
        manifest["spec"]["template"]["spec"]["containers"][0]["command"] = command
        manifest["spec"]["template"]["spec"].pop("securityContext", None)
        return manifest

    driver_module.build_job_manifest = build  # type: ignore[attr-defined]

    def restore() -> None:
        driver_module.build_job_manifest = original  # type: ignore[attr-defined]

    return restore


def run_gokart_k8s(
    kubeconfig: str,
    roots: list[Any],
    *,
    concurrency: int,
    command: list[str],
    submitters: int,
    log_sink: Callable[[str, str], None] | None = None,
) -> tuple[float, int]:
    settings = Settings(max_concurrent_steps=concurrency, watch_timeout_seconds=60, submit_concurrency=submitters)
    steps, problems = collect(roots, settings)
    assert not problems, problems
    api = connect(kubeconfig=kubeconfig)
    restore = _swap_command(command)
    try:
        began = time.monotonic()
        report = run_steps(
            steps,
            settings,
            api,
            run_id="bench",
            image="local/bench",
            env={},
            profile=get_profile(settings),
            is_complete=_nothing_cached_then_all_committed(),
            log_sink=log_sink,
        )
        seconds = time.monotonic() - began
    finally:
        restore()
    assert report.ok, [str(s.error) for s in report.failures()][:3]
    return seconds, len(steps)


# --- luigi's KubernetesJobTask ---------------------------------------------------------------


def _luigi_tasks(n: int, out: str, logs: bool) -> Any:
    from luigi.contrib.kubernetes import KubernetesJobTask

    class _Step(KubernetesJobTask):  # type: ignore[misc]
        key = luigi.Parameter()

        @property
        def name(self) -> str:
            return f"luigi-{self.key}"

        @property
        def spec_schema(self) -> dict[str, Any]:
            return {"containers": [{"name": "step", "image": "local/bench", "command": TRIVIAL}]}

        @property
        def print_pod_logs_on_exit(self) -> bool:
            return logs

        @property
        def poll_interval(self) -> int:
            return 1

        @property
        def pod_creation_wait_interal(self) -> int:
            return 1

        def signal_complete(self) -> None:
            with self.output().open("w") as fh:
                fh.write("ok")

        def output(self) -> luigi.LocalTarget:
            return luigi.LocalTarget(f"{out}/{self.key}")

    class LuigiSource(_Step):  # type: ignore[misc]
        pass

    class LuigiMiddle(_Step):  # type: ignore[misc]
        def requires(self) -> Any:
            return LuigiSource(key="source")  # type: ignore[no-untyped-call]

    class LuigiSink(_Step):  # type: ignore[misc]
        def requires(self) -> Any:
            return [LuigiMiddle(key=f"middle-{i}") for i in range(n - 2)]  # type: ignore[no-untyped-call]

    return LuigiSink(key="sink")  # type: ignore[no-untyped-call]


def run_luigi(kubeconfig: str, n: int, workers: int, out: str, *, logs: bool = False) -> float:
    config = luigi.configuration.get_config()
    config.set("kubernetes", "kubeconfig_path", kubeconfig)
    config.set("kubernetes", "kubernetes_namespace", "default")
    root = _luigi_tasks(n, out, logs)
    # gokart registers luigi event handlers that expect gokart tasks and log noise for plain
    # luigi tasks; the run's own success is checked below.
    logging.getLogger("luigi-interface").setLevel(logging.CRITICAL)
    began = time.monotonic()
    ok = luigi.build([root], workers=workers, local_scheduler=True, log_level="CRITICAL")
    seconds = time.monotonic() - began
    assert ok, "luigi's run failed"
    return seconds


# --- main ------------------------------------------------------------------------------------


_FIGURES = ("total", "peak running pods", "nodes", "POST jobs span ms")


def _requests_table(name: str, counts: dict[str, int], steps: int) -> str:
    total = counts.get("total", 0)
    lines = [f"  {name:<44} {total:>6} requests  {total / steps:6.2f}/step"]
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if key not in _FIGURES:
            lines.append(f"      {key:<34} {value:>6}  {value / steps:6.2f}/step")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=500)
    parser.add_argument("--luigi-workers", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64, help="max_concurrent_steps of phase 1")
    parser.add_argument("--skip-luigi", action="store_true")
    parser.add_argument(
        "--submitters", type=int, default=Settings().submit_concurrency, help="submit_concurrency (Job POSTs in flight)"
    )
    parser.add_argument("--compare-submitters", type=int, default=0, help="phase 3 again with this many submitters")
    parser.add_argument("--no-logs", action="store_true", help="phase 1 only without logs (the CLI's --no-logs)")
    parser.add_argument(
        "--luigi-logs", action="store_true", help="luigi again with print_pod_logs_on_exit (logs shown, like ours)"
    )
    parser.add_argument(
        "--api-latency-ms", type=float, default=0.0, help="phase 3: added to every API answer (a remote server's RTT)"
    )
    args = parser.parse_args()
    # The pods inherit PYTHONPATH but run in the cluster's folder: ``PYTHONPATH=.`` must name this
    # checkout there too, not whatever gokart_k8s the interpreter would find installed.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        os.path.abspath(entry) for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry
    )
    log_lines: list[tuple[str, str]] = []
    sink = lambda step, line: log_lines.append((step, line))  # noqa: E731
    # Phase 1 with the CLI's defaults (live logs on), then with --no-logs, so the cost of logs shows.
    modes: list[tuple[str, Callable[[str, str], None] | None]] = [("live logs on (the CLI default)", sink)]
    modes = [("--no-logs", None)] if args.no_logs else [*modes, ("--no-logs", None)]
    ours: dict[str, dict[str, int]] = {}
    ours_seconds: dict[str, float] = {}
    n = args.steps
    with tempfile.TemporaryDirectory() as tmp:
        config = luigi.configuration.get_config()
        config.set("TaskOnKart", "workspace_directory", f"{tmp}/ws/")

        for i, (mode, log_sink) in enumerate(modes):
            cluster = ClusterProcess(f"{tmp}/c1-{i}")
            try:
                ours_seconds[mode], ours_steps = run_gokart_k8s(
                    cluster.kubeconfig,
                    [BenchSink(n=n - 2)],
                    concurrency=args.concurrency,
                    command=SUPERVISED_TRIVIAL,
                    submitters=args.submitters,
                    log_sink=log_sink,
                )
                ours[mode] = cluster.counts()
            finally:
                cluster.stop()
            config.set("TaskOnKart", "workspace_directory", f"{tmp}/ws-{i}/")

        theirs: dict[str, int] = {}
        theirs_seconds = float("nan")
        if not args.skip_luigi:
            cluster = ClusterProcess(f"{tmp}/c2")
            try:
                theirs_seconds = run_luigi(cluster.kubeconfig, n, args.luigi_workers, f"{tmp}/luigi-out")
                theirs = cluster.counts()
            finally:
                cluster.stop()
        theirs_logs: dict[str, int] = {}
        if args.luigi_logs:
            cluster = ClusterProcess(f"{tmp}/c2-logs")
            try:
                run_luigi(cluster.kubeconfig, n, args.luigi_workers, f"{tmp}/luigi-out-logs", logs=True)
                theirs_logs = cluster.counts()
            finally:
                cluster.stop()

        before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cluster = ClusterProcess(f"{tmp}/c3", pods=args.in_flight, latency=args.api_latency_ms / 1000)
        try:
            tracemalloc.start()
            flight_seconds, flight_steps = run_gokart_k8s(
                cluster.kubeconfig,
                [BenchIndependent(i=i) for i in range(args.in_flight)],
                concurrency=args.in_flight,
                command=["sleep", "20"],
                submitters=args.submitters,
            )
            _, traced_peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            flight = cluster.counts()
        finally:
            cluster.stop()
        maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        compared: dict[str, int] = {}
        compared_seconds = float("nan")
        if args.compare_submitters:
            cluster = ClusterProcess(f"{tmp}/c4", pods=args.in_flight, latency=args.api_latency_ms / 1000)
            try:
                compared_seconds, _ = run_gokart_k8s(
                    cluster.kubeconfig,
                    [BenchIndependent(i=i) for i in range(args.in_flight)],
                    concurrency=args.in_flight,
                    command=["sleep", "20"],
                    submitters=args.compare_submitters,
                )
                compared = cluster.counts()
            finally:
                cluster.stop()

    print(f"\nfan-out/fan-in, {n} steps (1 source, {n - 2} middles, 1 sink), trivial pods, same local cluster")
    print(f"  gokart_k8s: submit_concurrency={args.submitters}; {len(log_lines)} log lines with logs on")
    for mode, _ in modes:
        print(_requests_table(f"gokart_k8s, {mode}", ours[mode], ours_steps))
    if theirs:
        print(_requests_table(f"luigi ({args.luigi_workers} workers)", theirs, n))
    for mode, _ in modes:
        seconds = ours_seconds[mode]
        print(f"  wall time gokart_k8s, {mode}: {seconds:6.1f} s  {1000 * seconds / ours_steps:6.1f} ms/step")
    if theirs:
        print(f"  wall time luigi: {theirs_seconds:6.1f} s  {1000 * theirs_seconds / n:6.1f} ms/step")
        for mode, _ in modes:
            ratio = (ours[mode]["total"] / ours_steps) / (theirs["total"] / n)
            print(
                f"  requests/step ratio gokart_k8s/luigi, {mode} = {ratio:.3f} "
                f"(target <= 0.200: {'met' if ratio <= 0.2 else 'MISSED'})"
            )
    if theirs_logs:
        print(_requests_table("luigi, print_pod_logs_on_exit", theirs_logs, n))
        mode = modes[0][0]
        ratio = (ours[mode]["total"] / ours_steps) / (theirs_logs["total"] / n)
        print(
            f"  requests/step ratio, both showing logs: gokart_k8s {mode} / luigi print_pod_logs_on_exit = {ratio:.3f}"
        )
    latency = f", {args.api_latency_ms:g} ms added to every API answer" if args.api_latency_ms else ""
    print(
        f"\n{flight_steps} independent steps all in flight (pods sleep 20 s), "
        f"{flight['nodes']} nodes of 110 pods{latency}"
    )
    print(_requests_table("gokart_k8s driver", flight, flight_steps))
    print(f"  {'':<22} {'submitters':>10} {'peak Running pods':>18} {'first->last POST':>17} {'wall':>8}")
    rows = [(args.submitters, flight, flight_seconds)]
    if compared:
        rows.append((args.compare_submitters, compared, compared_seconds))
    for submitters, counts, seconds in rows:
        print(
            f"  {'':<22} {submitters:>10} {counts['peak running pods']:>18} "
            f"{counts['POST jobs span ms'] / 1000:>15.1f} s {seconds:>6.1f} s"
        )
    print(
        f"  wall time {flight_seconds:.1f} s; driver tracemalloc peak {traced_peak / 2**20:.1f} MB; "
        f"process ru_maxrss {maxrss_mb:.1f} MB, {before_mb:.1f} MB before this phase "
        f"(target < 300 MB: {'met' if maxrss_mb < 300 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
