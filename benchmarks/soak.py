"""Soak: many rehearsals with chaos on, each driver killed at a random moment, then rerun until done.

Each round runs ``gokart-k8s run tests.reliability.pipeline.Summarize --backend local-cluster
--chaos`` (a checkpointing pipeline: ``Crunch`` saves after every unit of work) as a real process,
sends it SIGKILL, SIGTERM or SIGINT at a random moment, then reruns it (chaos still on) until it
exits 0. It counts, from outside the driver:

* **concurrent duplicate attempts** -- attempts of a step that started while another attempt of
  the same step was alive, as the steps themselves log it (``tests/reliability/harness.py``);
* **steps reported done without output** -- a step a driver's summary called ``succeeded`` or
  ``cached`` whose output was not in the cache when that driver exited;
* **outputs differing from calm** -- rounds whose final outputs are not byte-identical to a calm
  run's (plain gokart in one process);
* **seconds of work redone** -- units of ``Crunch`` begun that did not bring it forward (computed
  again, or cut off mid-way by a kill or an eviction), times the seconds a unit takes: what kills
  and evictions cost with a checkpoint after every unit (an upper bound: a unit cut off counts whole);
* **processes left** -- processes of the round still alive 15 s after a driver exited (from
  ``/proc``); they are killed so the next round starts clean.

The goal is 0 in every column but kills and redone seconds. Prints one table; asserts nothing.

Two modes. By default every driver starts its own embedded cluster (``--backend local-cluster``),
so a kill takes the cluster and its pods with it and the rerun starts from the cache.
``--shared-cluster`` keeps one ``gokart-k8s local-cluster start --chaos`` for all rounds, and the
drivers run ``--backend kubernetes --on-interrupt keep`` with a ``gs://`` cache on fake-gcs-server:
a killed driver's Jobs run on, as on a real cluster, and every rerun must adopt them without a
second attempt of any step. "Processes left" then counts step processes of a round still running
15 s after its final rerun succeeded.

    PYTHONPATH=. python benchmarks/soak.py [--rounds 20] [--units 12] [--seconds-per-unit 0.25] [--shared-cluster]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.reliability.harness import (  # noqa: E402 - the repository root must be importable first
    NOT_OUTPUTS,
    DriverProcess,
    ProcessInfo,
    Run,
    gokart_k8s_argv,
    kill_leftovers,
    processes,
    read_attempts,
    run_environment,
    summary_states,
    wait_for_no_leftovers,
)

EXPECTED_EXIT = {signal.SIGKILL: -signal.SIGKILL, signal.SIGINT: 130, signal.SIGTERM: 143}
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)


@dataclass
class Totals:
    rounds: int = 0
    kills: dict[str, int] = field(default_factory=lambda: {s.name: 0 for s in SIGNALS})
    drivers: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    concurrent: int = 0
    done_without_output: int = 0
    differing: int = 0
    redone_seconds: float = 0.0
    processes_left: int = 0
    disruptions: int = 0
    unfinished: int = 0


def family_of(path: str) -> str:
    return "Summarize" if "summary-" in path else Path(path).name.split("_")[0]


class Round:
    """One round's driver invocations: how to start one, where its outputs are, which processes are its own."""

    def __init__(
        self,
        run: Run,
        task: list[str],
        options: list[str],
        env: dict[str, str],
        outputs_of: Callable[[], dict[str, bytes]],
    ) -> None:
        self.run = run
        self.task = task
        self.options = options
        self.env = env
        self.outputs = outputs_of

    def start(self, *extra: str) -> DriverProcess:
        argv = gokart_k8s_argv("run", *self.task, *self.options, *extra)
        driver = DriverProcess(argv, cwd=self.run.directory, env=self.env)
        self.run.drivers.append(driver)
        return driver


def check_driver(driver: DriverProcess, round_: Round, totals: Totals, expected: set[int]) -> int:
    """Wait for a driver to end and count what it left: exit status, reported-done steps, processes."""
    code = driver.wait(900)
    totals.drivers += 1
    if code not in expected:
        totals.unexpected_exits.append(f"{code} (expected {sorted(expected)})")
    present = {family_of(p) for p in round_.outputs()}
    for family, state in summary_states(driver.stdout).items():
        if state in ("succeeded", "cached") and family not in present:
            totals.done_without_output += 1
    found = re.search(r"(\d+) disruption\(s\)", driver.stderr)
    totals.disruptions += int(found.group(1)) if found else 0
    left = wait_for_no_leftovers(round_.run.directory, timeout=15)
    totals.processes_left += len(left)
    kill_leftovers(round_.run.directory)
    return code


def calm_outputs(root: Path, task: list[str]) -> dict[str, bytes]:
    calm = Run(root, task)
    done = DriverProcess(gokart_k8s_argv("run", *task, "--backend", "inline"), cwd=calm.directory, env=calm.env())
    if done.wait(600) != 0:
        raise SystemExit(f"the calm run failed:\n{done.stderr[-3000:]}")
    return calm.outputs()


def gcs_outputs(bucket: str) -> dict[str, bytes]:
    """Step outputs in ``gs://bucket/ws/`` by path under the cache (as :func:`outputs` gives a local one)."""
    from google.cloud import storage

    found = {}
    for blob in storage.Client().list_blobs(bucket, prefix="ws/"):
        path = blob.name[len("ws/") :]
        if path.split("/")[0] not in NOT_OUTPUTS:
            found[path] = blob.download_as_bytes()
    return found


def pods_of_seed(seed: int) -> list[ProcessInfo]:
    marker = f'"seed":"{seed}"'
    return [p for p in processes() if p.state != "Z" and "gokart_k8s step" in p.cmdline and marker in p.cmdline]


def play(round_: Round, args: argparse.Namespace, rng: random.Random, span: float, totals: Totals) -> str:
    """Start, kill at a random moment, rerun until done; returns a line about the round."""
    sig = rng.choice(SIGNALS)
    driver = round_.start()
    deadline = time.monotonic() + rng.uniform(0.5, 0.8 * span)  # mostly before a calm run would end
    while driver.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = driver.proc.poll() is None
    if killed:
        driver.send(sig)
        totals.kills[sig.name] += 1
    code = check_driver(driver, round_, totals, {EXPECTED_EXIT[sig], 0} if killed else {0})
    reruns = 0
    while code != 0 and reruns < args.max_reruns:
        reruns += 1
        code = check_driver(round_.start(), round_, totals, {0, 1})
    totals.rounds += 1
    totals.unfinished += code != 0
    return f"{sig.name if killed else 'no kill (finished first)'}, {reruns} rerun(s), exit {code}"


def soak_rehearsals(args: argparse.Namespace, rng: random.Random, root: Path, totals: Totals) -> None:
    """Every driver runs its own embedded cluster (``--backend local-cluster --chaos``)."""
    task = ["tests.reliability.pipeline.Summarize", "--units", str(args.units)]
    task += ["--seconds-per-unit", str(args.seconds_per_unit)]
    calm = calm_outputs(root / "calm", task)
    # How long a calm rehearsal takes: kills land anywhere in it.
    rehearsal = Run(root / "calm-rehearsal", task)
    started = time.monotonic()
    if rehearsal.start("--no-logs").wait(600) != 0:
        raise SystemExit("the calm rehearsal failed")
    span = time.monotonic() - started
    kill_leftovers(rehearsal.directory)
    for index in range(args.rounds):
        run = Run(root / f"round-{index:03d}", task)
        options = ["--backend", "local-cluster", "--chaos", "--chaos-rate", str(args.chaos_rate), "--no-logs"]
        options += ["--chaos-seed", str(rng.randrange(10**6))]
        line = play(Round(run, task, options, run.env(), run.outputs), args, rng, span, totals)
        attempts = run.attempts()
        totals.concurrent += attempts.concurrent
        totals.redone_seconds += attempts.redone_units("Crunch") * args.seconds_per_unit
        totals.differing += run.outputs() != calm
        print(f"round {index + 1}/{args.rounds}: {line}", file=sys.stderr, flush=True)


def soak_shared_cluster(args: argparse.Namespace, rng: random.Random, root: Path, totals: Totals) -> None:
    """One long-lived ``gokart-k8s local-cluster start --chaos``; drivers use ``--backend kubernetes
    --on-interrupt keep`` and a ``gs://`` cache on fake-gcs-server, so a killed driver's Jobs run on
    and every rerun must adopt them: the case the driver's adoption and identity rules are for."""
    import os

    from gokart_k8s.testing.gcs import FakeGCSServer

    with FakeGCSServer() as gcs:
        os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
        attempts_dir = root / "attempts"
        shared = root / "cluster"
        shared.mkdir()
        config = root / "pods.cfg"
        config.write_text(f"[reliability]\nattempts_dir = {attempts_dir}\n")
        kubeconfig = shared / "kubeconfig"
        argv = gokart_k8s_argv("local-cluster", "start", "--kubeconfig", str(kubeconfig), "--chaos")
        argv += ["--chaos-rate", str(args.chaos_rate), "--chaos-seed", str(rng.randrange(10**6))]
        argv += ["--pod-env", f"STORAGE_EMULATOR_HOST={gcs.url}", "--pod-env", f"LUIGI_CONFIG_PATH={config}"]
        cluster = DriverProcess(argv, cwd=shared, env=run_environment(config, root))
        try:
            deadline = time.monotonic() + 120
            while "Press Ctrl-C" not in cluster.stdout:
                if time.monotonic() > deadline or cluster.proc.poll() is not None:
                    raise SystemExit(f"the local cluster did not start:\n{cluster.stderr[-3000:]}")
                time.sleep(0.1)
            span = 0.0
            for index in range(args.rounds):
                seed = index + 1
                task = ["tests.reliability.pipeline.Summarize", "--seed", str(seed), "--units", str(args.units)]
                task += ["--seconds-per-unit", str(args.seconds_per_unit)]
                calm = calm_outputs(root / f"calm-{seed}", task)
                bucket = gcs.create_bucket()
                run = Run(root / f"round-{index:03d}", task)
                options = ["--backend", "kubernetes", "--image", "soak:local", "--workspace", f"gs://{bucket}/ws"]
                options += ["--on-interrupt", "keep", "--no-logs"]
                round_ = Round(run, task, options, run.env(KUBECONFIG=str(kubeconfig)), lambda b=bucket: gcs_outputs(b))
                if not span:  # the first round measures a calm run (still with chaos) for the kill times
                    started = time.monotonic()
                    check_driver(round_.start(), round_, totals, {0})
                    span = time.monotonic() - started
                    bucket = gcs.create_bucket()
                    round_.options[round_.options.index("--workspace") + 1] = f"gs://{bucket}/ws"
                    round_.outputs = lambda b=bucket: gcs_outputs(b)
                line = play(round_, args, rng, span, totals)
                left = pods_of_seed(seed)
                deadline = time.monotonic() + 15
                while left and time.monotonic() < deadline:
                    time.sleep(0.2)
                    left = pods_of_seed(seed)
                totals.processes_left += len(left)
                totals.differing += round_.outputs() != calm
                print(
                    f"round {index + 1}/{args.rounds}: {line}, {len(left)} step process(es) still running",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            cluster.send(signal.SIGTERM)
            cluster.wait(120)
            totals.processes_left += len(wait_for_no_leftovers(shared, timeout=15))
            kill_leftovers(shared)
        attempts = read_attempts(attempts_dir)
        totals.concurrent += attempts.concurrent
        totals.redone_seconds += attempts.redone_units("Crunch") * args.seconds_per_unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds, each with one driver kill (default 20)")
    parser.add_argument("--units", type=int, default=12, help="units of work of the long step (default 12)")
    parser.add_argument("--seconds-per-unit", type=float, default=0.25, help="seconds per unit (default 0.25)")
    parser.add_argument("--chaos-rate", type=float, default=20.0, help="disruptions per pod-minute (default 20)")
    parser.add_argument("--max-reruns", type=int, default=6, help="reruns of one round before giving up")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill times and signals")
    parser.add_argument(
        "--shared-cluster",
        action="store_true",
        help="one long-lived local cluster, --backend kubernetes and a gs:// cache: killed drivers' Jobs run on",
    )
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="gokart-k8s-soak-"))
    began = time.monotonic()
    totals = Totals()
    try:
        (soak_shared_cluster if args.shared_cluster else soak_rehearsals)(args, rng, root, totals)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    kills = sum(totals.kills.values())
    by_signal = "/".join(f"{n}" for n in totals.kills.values())
    rows = [
        ("runs", str(totals.rounds)),
        (f"kills ({'/'.join(s.name for s in SIGNALS)})", f"{kills} ({by_signal})"),
        ("concurrent duplicate attempts", str(totals.concurrent)),
        ("steps reported done without output", str(totals.done_without_output)),
        ("outputs differing from calm", str(totals.differing)),
        ("seconds of work redone", f"{totals.redone_seconds:.2f}"),
        ("processes left", str(totals.processes_left)),
    ]
    width = max(len(r[0]) for r in rows)
    mode = "one shared local cluster, --backend kubernetes, gs:// cache" if args.shared_cluster else "rehearsals"
    print(
        f"soak ({mode}): {args.rounds} rounds, {args.units} units x {args.seconds_per_unit} s, "
        f"chaos {args.chaos_rate}/pod-min"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    disruptions = "chaos in the shared cluster" if args.shared_cluster else f"{totals.disruptions} chaos disruptions"
    unexpected = f": {', '.join(totals.unexpected_exits)}" if totals.unexpected_exits else ""
    print(
        f"  ({totals.drivers} driver processes, {disruptions}, "
        f"{totals.unfinished} rounds unfinished after {args.max_reruns} reruns, "
        f"{len(totals.unexpected_exits)} unexpected exit statuses{unexpected}; {time.monotonic() - began:.0f} s)"
    )


if __name__ == "__main__":
    main()
