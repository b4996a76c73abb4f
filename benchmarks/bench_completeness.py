"""Completeness of 2,000 cached steps on fake-gcs-server: find_complete vs task.complete() per task.

Run:  PYTHONPATH=. python benchmarks/bench_completeness.py [--steps 2000]

Requests are counted by a FaultProxy in front of the emulator (no faults injected); times are
measured on a direct connection (best of 3), so the proxy does not distort them. Both sides use
the same GCSFileSystem installed at gokart's seam: the baseline is exactly what gokart and luigi
do when they schedule a graph (one ``complete()`` per step, one ``objects.get`` per output).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gokart
import luigi

from gokart_k8s.cache.completeness import find_complete
from gokart_k8s.cache.gcs import GCSFileSystem, install_gcs_filesystem
from gokart_k8s.testing.gcs import FakeGCSServer, FaultProxy


class Cached(gokart.TaskOnKart[int]):
    i: int = luigi.IntParameter()  # type: ignore[assignment]


class CachedPair(gokart.TaskOnKart[int]):
    i: int = luigi.IntParameter()  # type: ignore[assignment]

    def output(self) -> Any:
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}


def _tasks(steps: int) -> list[luigi.Task]:
    pairs = steps // 4
    return [*(Cached(i=i) for i in range(steps - pairs)), *(CachedPair(i=i) for i in range(pairs))]


def _config() -> Any:
    get_config: Any = luigi.configuration.get_config  # untyped in luigi
    return get_config()


def _outputs(task: luigi.Task) -> list[Any]:
    flatten: Any = luigi.task.flatten  # untyped in luigi
    step: Any = task
    return list(flatten(step.output()))


def _populate(fs: GCSFileSystem, tasks: list[luigi.Task]) -> None:
    paths = [t.path() for task in tasks for t in _outputs(task)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: fs.put_string(b"cached", p), paths))


def _best_of(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    _config().set("TaskOnKart", "local_temporary_directory", tempfile.mkdtemp())

    with FakeGCSServer() as server, FaultProxy(server.url) as proxy:
        bucket = server.create_bucket()
        _config().set("TaskOnKart", "workspace_directory", f"gs://{bucket}/ws")
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        direct = GCSFileSystem()
        tasks = _tasks(args.steps)
        outputs = sum(len(_outputs(t)) for t in tasks)
        _populate(direct, tasks)

        def per_task() -> None:
            steps: list[Any] = list(tasks)
            assert all(t.complete() for t in steps)

        def batched() -> None:
            assert len(find_complete(tasks)) == len(tasks)

        # Count requests through the proxy (fresh filesystem: bucket metadata lookups included).
        counts: dict[str, int] = {}
        for name, fn in (("complete() per task", per_task), ("find_complete", batched)):
            os.environ["STORAGE_EMULATOR_HOST"] = proxy.url
            with install_gcs_filesystem(GCSFileSystem()):
                proxy.reset()
                fn()
                counts[name] = proxy.request_count()
        # Time on a direct connection.
        os.environ["STORAGE_EMULATOR_HOST"] = server.url
        times: dict[str, float] = {}
        with install_gcs_filesystem(GCSFileSystem()):
            per_task()  # warm up connections
            times["complete() per task"] = _best_of(3, per_task)
            times["find_complete"] = _best_of(3, batched)

    base, new = "complete() per task", "find_complete"
    print(f"{len(tasks)} cached steps, {outputs} outputs, fake-gcs-server in memory")
    print(f"{'method':<22}{'requests':>10}{'seconds':>10}")
    for name in (base, new):
        print(f"{name:<22}{counts[name]:>10}{times[name]:>10.3f}")
    print(f"{'ratio':<22}{counts[base] / counts[new]:>9.0f}x{times[base] / times[new]:>9.0f}x")


if __name__ == "__main__":
    main()
