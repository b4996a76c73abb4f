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

    PYTHONPATH=. python benchmarks/soak.py [--rounds 20] [--units 12] [--seconds-per-unit 0.25]
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
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.reliability.harness import (  # noqa: E402 - the repository root must be importable first
    DriverProcess,
    Run,
    gokart_k8s_argv,
    kill_leftovers,
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


def check_driver(driver: DriverProcess, run: Run, totals: Totals, expected: set[int]) -> int:
    """Wait for a driver to end and count what it left: exit status, reported-done steps, processes."""
    code = driver.wait(900)
    totals.drivers += 1
    if code not in expected:
        totals.unexpected_exits.append(f"{code} (expected {sorted(expected)})")
    present = {family_of(p) for p in run.outputs()}
    for family, state in summary_states(driver.stdout).items():
        if state in ("succeeded", "cached") and family not in present:
            totals.done_without_output += 1
    found = re.search(r"(\d+) disruption\(s\)", driver.stderr)
    totals.disruptions += int(found.group(1)) if found else 0
    left = wait_for_no_leftovers(run.directory, timeout=15)
    totals.processes_left += len(left)
    kill_leftovers(run.directory)
    return code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds, each with one driver kill (default 20)")
    parser.add_argument("--units", type=int, default=12, help="units of work of the long step (default 12)")
    parser.add_argument("--seconds-per-unit", type=float, default=0.25, help="seconds per unit (default 0.25)")
    parser.add_argument("--chaos-rate", type=float, default=20.0, help="disruptions per pod-minute (default 20)")
    parser.add_argument("--max-reruns", type=int, default=6, help="reruns of one round before giving up")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill times and signals")
    parser.add_argument("--keep", action="store_true", help="keep the run directories")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    task = ["tests.reliability.pipeline.Summarize", "--units", str(args.units)]
    task += ["--seconds-per-unit", str(args.seconds_per_unit)]
    root = Path(tempfile.mkdtemp(prefix="gokart-k8s-soak-"))
    began = time.monotonic()
    try:
        calm = Run(root / "calm", task)
        done = DriverProcess(gokart_k8s_argv("run", *task, "--backend", "inline"), cwd=calm.directory, env=calm.env())
        if done.wait(600) != 0:
            raise SystemExit(f"the calm run failed:\n{done.stderr[-3000:]}")
        calm_outputs = calm.outputs()
        # How long a calm rehearsal takes: kills land anywhere in it.
        rehearsal = Run(root / "calm-rehearsal", task)
        started = time.monotonic()
        done = rehearsal.start("--no-logs")
        if done.wait(600) != 0:
            raise SystemExit(f"the calm rehearsal failed:\n{done.stderr[-3000:]}")
        span = time.monotonic() - started
        kill_leftovers(rehearsal.directory)

        totals = Totals()
        for index in range(args.rounds):
            run = Run(root / f"round-{index:03d}", task)
            sig = rng.choice(SIGNALS)
            chaos = ["--chaos", "--chaos-rate", str(args.chaos_rate), "--no-logs"]
            driver = run.start(*chaos, "--chaos-seed", str(rng.randrange(10**6)))
            deadline = time.monotonic() + rng.uniform(0.5, span)
            while driver.proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            killed = driver.proc.poll() is None
            if killed:
                driver.send(sig)
                totals.kills[sig.name] += 1
            code = check_driver(driver, run, totals, {EXPECTED_EXIT[sig], 0} if killed else {0})
            reruns = 0
            while code != 0 and reruns < args.max_reruns:
                reruns += 1
                driver = run.start(*chaos, "--chaos-seed", str(rng.randrange(10**6)))
                code = check_driver(driver, run, totals, {0, 1})
            totals.rounds += 1
            totals.unfinished += code != 0
            attempts = run.attempts()
            totals.concurrent += attempts.concurrent
            totals.redone_seconds += attempts.redone_units("Crunch") * args.seconds_per_unit
            totals.differing += run.outputs() != calm_outputs
            print(
                f"round {index + 1}/{args.rounds}: {sig.name if killed else 'no kill (finished first)'}, "
                f"{reruns} rerun(s), exit {code}",
                file=sys.stderr,
                flush=True,
            )
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
    print(
        f"soak: {args.rounds} rounds, {args.units} units x {args.seconds_per_unit} s, chaos {args.chaos_rate}/pod-min"
    )
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print(
        f"  ({totals.drivers} driver processes, {totals.disruptions} chaos disruptions, "
        f"{totals.unfinished} rounds unfinished after {args.max_reruns} reruns, "
        f"{len(totals.unexpected_exits)} unexpected exit statuses{': ' if totals.unexpected_exits else ''}"
        f"{', '.join(totals.unexpected_exits)}; {time.monotonic() - began:.0f} s)"
    )


if __name__ == "__main__":
    main()
