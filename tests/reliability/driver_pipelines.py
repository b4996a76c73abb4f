"""Pipelines the driver's reliability scenarios run as Jobs; the pods of the local cluster import this module.

Every step writes an *attempt log* from inside its pod (the step side, not the driver's word):
``start``, a ``beat`` every 0.2 s while it runs, and ``end``, one line each, appended to the file
named by :data:`ATTEMPT_LOG_ENV` together with the pod's workspace (which cache it writes to) and
pid. Two attempts of a step ran at once when their start..last-beat intervals overlap.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gokart
import luigi

import gokart_k8s
from gokart_k8s.resources import ResourceClass
from gokart_k8s.workspace import WORKSPACE_ENV

#: Environment variable of the pods (``--pod-env``): the attempt log's path.
ATTEMPT_LOG_ENV = "GOKART_K8S_TEST_ATTEMPT_LOG"
#: Small enough that many steps fit on one node at once; Spot allowed.
TINY = ResourceClass(cpu="50m", memory="1Gi", name="tiny")
#: A memory limit the Greedy step exceeds.
SNUG = ResourceClass(cpu="50m", memory="300Mi", name="snug")
_BEAT_SECONDS = 0.2


def _write(line: str) -> None:
    path = os.environ.get(ATTEMPT_LOG_ENV)
    if not path:
        return
    # One short O_APPEND write per line: lines of concurrent processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@contextmanager
def attempt(task: gokart.TaskOnKart[Any]) -> Iterator[None]:
    """Log this attempt of ``task``: start, heartbeats while it runs, end."""
    key = f"{type(task).__name__}|{os.environ.get(WORKSPACE_ENV, '')}|{os.getpid()}"
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(_BEAT_SECONDS):
            _write(f"beat|{key}|{time.time():.3f}")

    _write(f"start|{key}|{time.time():.3f}")
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        _write(f"end|{key}|{time.time():.3f}")


def _first_time(marker: str) -> bool:
    """True the first time any attempt asks for ``marker`` (a file beside the attempt log)."""
    flag = Path(os.environ[ATTEMPT_LOG_ENV]).with_name(f"{marker}.flag")
    try:
        flag.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


@gokart_k8s.job(resources=TINY, eviction="tolerate")
class Slow(gokart.TaskOnKart[Any]):
    """Sleeps, so a scenario can evict it, kill the driver, or take the API server away meanwhile."""

    seconds: float = luigi.FloatParameter()  # type: ignore[assignment]
    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def run(self) -> None:
        with attempt(self):
            print("slow started", flush=True)
            time.sleep(self.seconds)
        self.dump(f"slow {self.tag} {self.seconds}")


@gokart_k8s.job(resources=TINY)
class Middle(gokart.TaskOnKart[Any]):
    seconds: float = luigi.FloatParameter()  # type: ignore[assignment]
    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def requires(self) -> gokart.TaskOnKart[Any]:
        return Slow(seconds=self.seconds, tag=self.tag)

    def run(self) -> None:
        with attempt(self):
            self.dump(self.load() + " middle")


@gokart_k8s.job(resources=TINY)
class End(gokart.TaskOnKart[Any]):
    """Three steps in a chain: Slow -> Middle -> End."""

    seconds: float = luigi.FloatParameter()  # type: ignore[assignment]
    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def requires(self) -> gokart.TaskOnKart[Any]:
        return Middle(seconds=self.seconds, tag=self.tag)

    def run(self) -> None:
        with attempt(self):
            self.dump(self.load() + " end")


@gokart_k8s.job(resources=TINY)
class CrashOnce(gokart.TaskOnKart[Any]):
    """Crashes (exit 1, not the step's own error) on its first attempt ever, succeeds afterwards."""

    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def run(self) -> None:
        with attempt(self):
            crash = _first_time(f"crash-{self.tag}")
        if crash:
            os._exit(1)
        self.dump(f"crashed once {self.tag}")


@gokart_k8s.job(resources=TINY)
class KilledOnce(gokart.TaskOnKart[Any]):
    """Killed with SIGKILL (exit 137, no OOMKilled) on its first attempt ever, succeeds afterwards."""

    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def run(self) -> None:
        with attempt(self):
            kill = _first_time(f"kill-{self.tag}")
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)
        self.dump(f"killed once {self.tag}")


@gokart_k8s.job(resources=TINY)
class Faulty(gokart.TaskOnKart[Any]):
    """A code error: the step's own code raises (exit 42), every time."""

    tag: str = luigi.Parameter(default="")  # type: ignore[assignment]

    def run(self) -> None:
        with attempt(self):
            pass
        raise ValueError(f"bad input row in {self.tag}")


@gokart_k8s.job(resources=SNUG)
class Greedy(gokart.TaskOnKart[Any]):
    """Needs more memory than its class 'snug' (300Mi) gives."""

    def run(self) -> None:
        with attempt(self):
            hog = bytearray(600 * 2**20)
            for i in range(0, len(hog), 4096):
                hog[i] = 1
            time.sleep(5)
        self.dump(len(hog))
