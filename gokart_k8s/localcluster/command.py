"""``gokart-k8s local-cluster start``: run the embedded cluster in the foreground.

It writes a kubeconfig (default ``./.gokart-k8s/local-cluster.kubeconfig``), prints the
``export KUBECONFIG=…`` line and the node pools, and runs until Ctrl-C or SIGTERM, then stops every
pod process.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from gokart_k8s.pools import NodePool

from .autoscaler import DEFAULT_TIME_SCALE, Autoscaling, summary_lines
from .chaos import DEFAULT_CHAOS_RATE, DEFAULT_CHAOS_SEED, ChaosConfig
from .cluster import LocalCluster

DEFAULT_KUBECONFIG = Path(".gokart-k8s") / "local-cluster.kubeconfig"


def register(subparsers: Any) -> None:
    """Add the ``local-cluster`` subcommand to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "local-cluster",
        help="run the embedded local Kubernetes cluster (rehearsals, tests)",
        description="An embedded Kubernetes API server, Job/CronJob controllers, scheduler and a kubelet "
        "that runs pods as local processes. See docs/local-cluster.md for what it emulates.",
    )
    commands = parser.add_subparsers(dest="local_cluster_command", required=True)
    start = commands.add_parser("start", help="start the cluster in the foreground until Ctrl-C")
    start.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    start.add_argument(
        "--platform", help="create the nodes of this platform profile's pools (default: [gokart_k8s] platform)"
    )
    start.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    start.add_argument(
        "--kubeconfig",
        type=Path,
        default=DEFAULT_KUBECONFIG,
        help=f"where to write the kubeconfig (default: {DEFAULT_KUBECONFIG})",
    )
    start.add_argument("--chaos", action="store_true", help="evict pods and preempt Spot nodes at random")
    start.add_argument(
        "--chaos-seed",
        type=int,
        default=DEFAULT_CHAOS_SEED,
        help=f"seed of the random chaos (default: {DEFAULT_CHAOS_SEED})",
    )
    start.add_argument(
        "--chaos-rate",
        type=float,
        default=DEFAULT_CHAOS_RATE,
        help=f"disruptions per minute of one running pod's time (default: {DEFAULT_CHAOS_RATE})",
    )
    start.add_argument(
        "--time-scale",
        type=float,
        default=DEFAULT_TIME_SCALE,
        help=f"cluster seconds per wall second for the autoscaler's timers (default: {DEFAULT_TIME_SCALE:g}, "
        "so a 10-minute scale-down delay takes 10 s)",
    )
    start.add_argument(
        "--pod-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every pod (repeatable), e.g. STORAGE_EMULATOR_HOST=...",
    )
    start.add_argument(
        "--warm-interpreter",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fork step pods from a process that imported gokart once (default: [gokart_k8s] warm_interpreter, "
        "true); --no-warm-interpreter starts every pod as a fresh process",
    )
    start.set_defaults(func=run_start)


def _pod_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--pod-env expects KEY=VALUE, got {pair!r}: write it as NAME=value")
        env[key] = value
    return env


def _platform(platform: str | None) -> str:
    from gokart_k8s.settings import load_settings

    return platform or load_settings().platform


def _profile_pools(platform: str | None) -> list[NodePool]:
    """The active platform profile's pools (luigi.cfg / GOKART_K8S_PLATFORM / --platform), so Jobs
    rendered or submitted for that platform schedule here exactly as they would there. These are the
    pools ``gokart-k8s run --backend local-cluster`` creates too: on ``plain`` one default pool sized
    for the catalog's largest class (not this machine), so an 8-cpu step is scheduled, not refused."""
    import dataclasses

    from gokart_k8s.platforms import get_profile
    from gokart_k8s.settings import load_settings

    settings = load_settings()
    if platform:
        settings = dataclasses.replace(settings, platform=platform)
    return list(get_profile(settings).pools())


def _warm_interpreter(flag: bool | None) -> bool:
    from gokart_k8s.settings import load_settings

    return load_settings().warm_interpreter if flag is None else flag


def run_start(args: argparse.Namespace) -> int:
    chaos = ChaosConfig(seed=args.chaos_seed, rate=args.chaos_rate) if args.chaos else None
    if args.time_scale <= 0:
        raise SystemExit(f"--time-scale must be above 0 cluster seconds per second, got {args.time_scale:g}")
    autoscaling = Autoscaling.for_platform(_platform(args.platform), time_scale=args.time_scale)
    cluster = LocalCluster(
        _profile_pools(args.platform),
        host=args.host,
        port=args.port,
        chaos=chaos,
        pod_env=_pod_env(args.pod_env),
        autoscaling=autoscaling,
        warm_interpreter=_warm_interpreter(args.warm_interpreter),
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    # Explicitly, not Python's default: a process started in the background by a non-interactive
    # shell inherits SIGINT ignored, and Python then installs no KeyboardInterrupt for it.
    previous_int = signal.signal(signal.SIGINT, on_signal)
    started = time.monotonic()
    cluster.start()
    try:
        path = cluster.write_kubeconfig(args.kubeconfig).resolve()
        print(f"gokart-k8s local cluster listening on {cluster.url} (started in {time.monotonic() - started:.2f}s)")
        print(f"  autoscaler: {autoscaling.mode}, time scale {autoscaling.time_scale:g} (cluster seconds per second)")
        for pool in cluster.pools:
            extra = ", Spot" if pool.spot else ""
            print(
                f"  pool {pool.name}: {pool.min_nodes} to {pool.max_nodes} node(s) "
                f"of {pool.cpu} CPU, {pool.memory}{extra}"
            )
        if chaos:
            print(f"  chaos: seed {chaos.seed}, {chaos.rate} disruptions per pod-minute")
        if cluster.kubelet.warm is None:
            print("  warm interpreter: off (every step pod a fresh process)")
        print(f"\n  export KUBECONFIG={path}\n\nPress Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        cluster.stop()
        for line in summary_lines(cluster.node_lifetimes(), autoscaling.time_scale):
            print(line, file=sys.stderr)
        print("local cluster stopped", file=sys.stderr)
    return 0
