"""Plan and cached-rerun time of large graphs, beside plain ``gokart.build``; and a rehearsal's wall time.

Run::

    PYTHONPATH=. python benchmarks/bench_scale.py [--sizes 1000,5000,10000] [--shapes fan,chain,diamond]
                                                  [--rehearsal 200] [--repeats 3]

Every figure is the wall time of a fresh process running exactly what a user types, interpreter
start-up and imports included (about 1.5 s of each figure here), with its peak RSS:

- ``plan new``: ``gokart-k8s plan ROOT --backend local-cluster`` before anything is cached: it
  resolves every step, checks the cache, and proves every step's parameters survive the trip to
  a pod (each step would travel);
- ``plan``: the same on the fully cached graph (nothing travels, so nothing is proven);
- ``cached rerun``: ``gokart-k8s run ROOT --backend inline`` on the same cached graph;
- ``gokart.build``: plain ``gokart.build(ROOT)`` on the same cached graph, the baseline.

The graphs (``benchmarks/scale_pipeline.py``): fan-out/fan-in (one source, N-2 middles, one sink),
a chain of N, and the deepest diamond lattice of at most N steps. Outputs are written straight into
a fresh local cache first, so no figure includes running steps.

``--rehearsal N`` also runs a fan-out/fan-in of N trivial steps uncached on the inline backend, then
on the local-cluster backend with the warm interpreter (step pods forked from a process that imported
gokart once, the default; the plain platform's default pool keeps one node up), again with three
8-cpu nodes up from the start, again with the default pool scaled from zero nodes (the modelled
autoscaler takes 2 s of wall time, 120 s of cluster time, per scale-up), and
without the warm interpreter (``GOKART_K8S_WARM_INTERPRETER=false``: each pod a fresh interpreter),
with each one's ratio to inline.

Goals (issue 16): plan and cached rerun of 10,000 steps under 10 s on every shape; cached rerun no
slower than plain gokart; a 200-step rehearsal within 5x inline with the warm interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = {"fan": "FanIn", "chain": "Link", "diamond": "Lattice"}

#: Runs a module as __main__ and reports its peak RSS on the last line of stderr.
_MEASURED = (
    "import resource, runpy, sys\n"
    "sys.argv = sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "finally:\n"
    "    print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)

_POPULATE = (
    "import sys\n"
    "from benchmarks.scale_pipeline import root\n"
    "from gokart_k8s.steps import walk\n"
    "for task in walk(root(sys.argv[1], int(sys.argv[2]))):\n"
    "    task.dump(0)\n"
)

#: gokart's unique id recurses through requires() (a 1,000-step chain passes Python's default
#: recursion limit), so the baseline runs with a raised limit (luigi needs the main thread).
_GOKART_BUILD = (
    "import resource, sys, gokart\n"
    "from benchmarks.scale_pipeline import root\n"
    "sys.setrecursionlimit(1_000_000)\n"
    "gokart.build(root(sys.argv[1], int(sys.argv[2])), log_level=30, return_value=False)\n"
    "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
)


def _args(shape: str, n: int) -> list[str]:
    from benchmarks.scale_pipeline import lattice_depth

    task = f"benchmarks.scale_pipeline.{ROOTS[shape]}"
    return [task, "--depth", str(lattice_depth(n))] if shape == "diamond" else [task, "--n", str(n)]


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(seconds, peak MiB) of one fresh process."""
    began = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    rss = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("maxrss ")]
    return seconds, (int(rss[-1]) / 1024 if rss else float("nan"))


def _workspace(tmp: Path) -> dict[str, str]:
    cfg = tmp / "luigi.cfg"
    cfg.write_text(f"[TaskOnKart]\nworkspace_directory = {tmp / 'resources'}/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_")}
    env.update(LUIGI_CONFIG_PATH=str(cfg), PYTHONPATH=str(REPO))
    return env


def measure(shape: str, n: int) -> list[str]:
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = _workspace(tmp)
        args = _args(shape, n)
        cli = [sys.executable, "-c", _MEASURED, "gokart_k8s"]
        fresh = _timed([*cli, "plan", *args, "--backend", "local-cluster"], tmp, env)
        _timed([sys.executable, "-c", _POPULATE, shape, str(n)], tmp, env)
        plan = _timed([*cli, "plan", *args, "--backend", "local-cluster"], tmp, env)
        rerun = _timed([*cli, "run", *args, "--backend", "inline"], tmp, env)
        plain = _timed([sys.executable, "-c", _GOKART_BUILD, shape, str(n)], tmp, env)
        steps = sum(1 for _ in (tmp / "resources").rglob("*.pkl"))
    return [
        f"{shape:<8}",
        f"{steps:>6}",
        f"{fresh[0]:>7.1f}",
        f"{plan[0]:>7.1f}",
        f"{rerun[0]:>7.1f}",
        f"{plain[0]:>7.1f}",
        f"{rerun[0] / plain[0]:>5.2f}",
        f"{max(fresh[1], plan[1], rerun[1]):>7.0f}",
        f"{plain[1]:>7.0f}",
    ]


def rehearsal(n: int, repeats: int) -> None:
    """Inline, then the local cluster with the warm interpreter on and off, each from an empty cache.

    Inline and the warm runs are repeated ``repeats`` times, interleaved, and reported as the
    median with the range: on this shared machine one run of each can differ by a third.
    """
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        env = _workspace(tmp)
        args = _args("fan", n)

        def uncached(backend: str, **extra: str) -> float:
            for path in (tmp / "resources").glob("*"):
                subprocess.run(["rm", "-rf", str(path)], check=True)
            argv = [sys.executable, "-m", "gokart_k8s", "run", *args, "--backend", backend]
            return _timed([*argv, "--no-logs"] if backend != "inline" else argv, tmp, {**env, **extra})[0]

        # The same with nodes up from the start: no wait for the modelled autoscaler's provisioning.
        ready_cfg = tmp / "nodes-up.cfg"
        ready_cfg.write_text(
            (tmp / "luigi.cfg").read_text() + "\n[gokart_k8s.pools.default]\ncpu = 8\nmemory = 32Gi\nmin_nodes = 3\n"
        )
        # And with the default pool scaled from zero (as a cloud pool may be): the first step waits
        # for the modelled autoscaler's provisioning (120 s of cluster time, 2 s of wall time).
        zero_cfg = tmp / "from-zero.cfg"
        zero_cfg.write_text(
            (tmp / "luigi.cfg").read_text() + "\n[gokart_k8s.pools.default]\ncpu = 8\nmemory = 32Gi\nmin_nodes = 0\n"
        )
        load = _load()
        inline: list[float] = []
        warm: list[float] = []
        ready: list[float] = []
        zero: list[float] = []
        for _ in range(repeats):
            inline.append(uncached("inline"))
            warm.append(uncached("local-cluster", GOKART_K8S_WARM_INTERPRETER="true"))
            ready.append(
                uncached("local-cluster", GOKART_K8S_WARM_INTERPRETER="true", LUIGI_CONFIG_PATH=str(ready_cfg))
            )
            zero.append(uncached("local-cluster", GOKART_K8S_WARM_INTERPRETER="true", LUIGI_CONFIG_PATH=str(zero_cfg)))
        cold = uncached("local-cluster", GOKART_K8S_WARM_INTERPRETER="false")
    base = statistics.median(inline)

    def figure(times: list[float]) -> str:
        spread = f" ({min(times):.1f}-{max(times):.1f})" if len(times) > 1 else ""
        return f"{statistics.median(times):7.1f} s{spread:<12}"

    print(
        f"\nrehearsal of a fan-out/fan-in of {n} trivial steps, uncached; median of {repeats} (range), "
        f"ratios to the inline median (load average before: {load})"
    )
    print(f"  inline                        {figure(inline)}")
    print(
        f"  local-cluster, warm (default) {figure(warm)} {statistics.median(warm) / base:.1f}x inline; step pods "
        "forked; plain platform default pool (one node up)"
    )
    print(
        f"  local-cluster, warm, nodes up {figure(ready)} {statistics.median(ready) / base:.1f}x inline; three "
        "8-cpu nodes from the start, so no step waits for the autoscaler to provision one"
    )
    print(
        f"  local-cluster, warm, from zero {figure(zero)} {statistics.median(zero) / base:.1f}x inline; the default "
        "pool scaled from zero nodes, so the first step waits for one to be provisioned"
    )
    print(f"  local-cluster, fresh          {figure([cold])} {cold / base:.1f}x inline; warm_interpreter = false")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--shapes", default="fan,chain,diamond")
    parser.add_argument("--rehearsal", type=int, default=0, metavar="N", help="also rehearse N steps (e.g. 200)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each rehearsal but the fresh one (median)")
    opts = parser.parse_args()
    sys.path.insert(0, str(REPO))
    print(f"{os.cpu_count()} cores; seconds of wall time per fresh process (start-up included), peak RSS in MiB")
    header = ["shape", "steps", "plan new", "plan", "rerun", "gokart", "ratio", "RSS", "RSS gk"]
    print("  ".join(f"{h:>7}" if i else f"{h:<8}" for i, h in enumerate(header)))
    print(
        "  (plan new / plan: gokart-k8s plan --backend local-cluster, uncached / cached; rerun: gokart-k8s run"
        " --backend inline, cached; gokart: plain gokart.build, cached; ratio = rerun/gokart)"
    )
    for n in (int(s) for s in opts.sizes.split(",") if s):  # --sizes "" for the rehearsal alone
        for shape in opts.shapes.split(","):
            print("  ".join(measure(shape, n)), flush=True)
    if opts.rehearsal:
        rehearsal(opts.rehearsal, max(1, opts.repeats))


if __name__ == "__main__":
    main()
