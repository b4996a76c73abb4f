"""The reliability harness: real driver processes, real signals, and what is left afterwards.

Shared by ``tests/reliability/`` and ``benchmarks/soak.py``. Four instruments, each counting from
the outside what the driver promises from the inside:

* **The process table** (:func:`leftovers`): every live process whose working directory lies
  under a run's directory, or whose environment names it (the rehearsal's pods inherit
  ``PYTHONPATH`` with the driver's working directory in it), read from ``/proc``
  (https://man7.org/linux/man-pages/man5/proc.5.html). Zombies are dead and are not counted.
* **The attempt log** (:class:`AttemptLog`, step side; :func:`read_attempts`, reader side): each
  attempt of a step appends JSON lines to ``<attempts_dir>/<step>.jsonl`` (``<step>`` is
  ``<family>_<first 10 characters of the unique id>``) and holds an ``flock`` on its own
  ``<step>.<pid>.lock`` for as long as its process lives. At start it tries every other
  attempt's lock of the same step: one that is held means another attempt is
  alive *now*, so the overlap is counted by the step itself, whoever killed whom. The kernel drops
  the lock when the process dies, however it dies (https://man7.org/linux/man-pages/man2/flock.2.html).
* **The summary** (:func:`summary_states`): the state the driver printed for every step, to be
  checked against what is in this run's cache.
* **The outputs** (:func:`outputs`): every file of the cache except logs, checkpoints and attempt
  logs, compared byte for byte with a calm run.

Nothing here imports pytest: step pods import this module through the test pipeline.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import luigi

REPO = Path(__file__).resolve().parents[2]
#: Top-level folders of a cache that are not step outputs.
NOT_OUTPUTS = frozenset({"log", "gokart_k8s", "attempts"})

T = TypeVar("T")


# --------------------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], T], timeout: float, what: str, *, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it is truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- the process table


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    cmdline: str
    cwd: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2])


def processes() -> list[ProcessInfo]:
    """Every process this user can see, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None:
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmdline = ""
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        out.append(ProcessInfo(pid, stat[1], stat[2], stat[0], cmdline.strip(), cwd))
    return out


def _environ_mentions(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        stat = _stat(pid)
        if stat is None:
            break
        pid = stat[1]
    return pids


def leftovers(directory: Path | str) -> list[ProcessInfo]:
    """Live processes that belong to a run in ``directory`` (see the module docstring)."""
    marker = str(Path(directory).resolve())
    mine = _ancestors()
    found = []
    for proc in processes():
        if proc.pid in mine or proc.state in ("Z", "X"):
            continue
        if proc.cwd == marker or proc.cwd.startswith(marker + os.sep) or _environ_mentions(proc.pid, marker.encode()):
            found.append(proc)
    return found


def wait_for_no_leftovers(directory: Path | str, timeout: float = 60.0) -> list[ProcessInfo]:
    """Wait until no process of the run is alive; returns those still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        alive = leftovers(directory)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def kill_leftovers(directory: Path | str) -> None:
    """SIGKILL whatever a run left (test teardown, so one failure does not poison the next)."""
    for proc in leftovers(directory):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- the attempt log


class reliability(luigi.Config):  # luigi names a config section after its class
    """``[reliability] attempts_dir``: where steps log their attempts (travels with luigi.cfg)."""

    attempts_dir: str = luigi.Parameter(default="")


class AttemptLog:
    """One attempt of a step, seen from inside it (see the module docstring)."""

    def __init__(self, directory: Path, step: str) -> None:
        self.directory = directory
        self.step = step
        self.pid = os.getpid()
        self._lock_fd: int | None = None

    def _write(self, record: Mapping[str, Any]) -> None:
        line = json.dumps({"pid": self.pid, "t": time.time(), **record}) + "\n"
        fd = os.open(self.directory / f"{self.step}.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def _others_alive(self) -> list[int]:
        alive = []
        for path in self.directory.glob(f"{self.step}.*.lock"):
            pid = int(path.name[len(self.step) + 1 : -len(".lock")])
            if pid == self.pid:
                continue
            fd = os.open(path, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                alive.append(pid)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return alive

    def start(self, **extra: Any) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / f"{self.step}.{self.pid}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        others = self._others_alive()
        self._write({"event": "start", "concurrent_with": others, **extra})

    def begin(self, index: int) -> None:
        """One unit of work begins (a unit begun and never finished by this attempt was lost)."""
        self._write({"event": "begin", "i": index})

    def unit(self, index: int) -> None:
        """One unit of work finished."""
        self._write({"event": "unit", "i": index})

    def end(self) -> None:
        self._write({"event": "end"})


@contextlib.contextmanager
def attempt(task: Any, **extra: Any) -> Iterator[AttemptLog]:
    """Log one attempt of ``task`` (its family) in ``[reliability] attempts_dir``; a no-op log when unset."""
    directory = reliability().attempts_dir
    step = f"{task.get_task_family()}_{task.make_unique_id()[:10]}"
    log = AttemptLog(Path(directory) if directory else Path(os.devnull), step)
    if not directory:
        log._write = lambda record: None  # type: ignore[method-assign]
        yield log
        return
    log.start(**extra)
    yield log
    log.end()


@dataclass
class Attempts:
    """What every attempt of every step logged."""

    #: Records by step (``<family>_<unique id prefix>``).
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def steps(self, family: str) -> list[list[dict[str, Any]]]:
        return [records for step, records in self.records.items() if step.rsplit("_", 1)[0] == family]

    def starts(self, family: str) -> list[dict[str, Any]]:
        return [r for records in self.steps(family) for r in records if r["event"] == "start"]

    @property
    def concurrent(self) -> int:
        """Attempts that started while another attempt of the same step was alive."""
        return sum(1 for records in self.records.values() for r in records if r.get("concurrent_with"))

    def units(self, family: str) -> list[int]:
        return [r["i"] for records in self.steps(family) for r in records if r["event"] == "unit"]

    def redone_units(self, family: str) -> int:
        """Units begun that did not bring the step forward: redone, or cut off before they finished."""
        redone = 0
        for records in self.steps(family):
            begun = sum(1 for r in records if r["event"] == "begin")
            redone += begun - len({r["i"] for r in records if r["event"] == "unit"})
        return redone


def read_attempts(directory: Path) -> Attempts:
    attempts = Attempts()
    for path in sorted(directory.glob("*.jsonl")):
        lines = path.read_text().splitlines()
        attempts.records[path.stem] = [json.loads(line) for line in lines if line.strip()]
    return attempts


# --------------------------------------------------------------------------- outputs and the summary


def outputs(workspace: Path) -> dict[str, bytes]:
    """Every step output of a local cache, by path (logs, checkpoints and attempt logs excluded)."""
    if not workspace.exists():
        return {}
    return {
        str(p.relative_to(workspace)): p.read_bytes()
        for p in workspace.rglob("*")
        if p.is_file() and p.relative_to(workspace).parts[0] not in NOT_OUTPUTS
    }


_SUMMARY_END = re.compile(r"^(\d+)/(\d+) steps done, (\d+) failed")


def summary_states(stdout: str) -> dict[str, str]:
    """``{step family: state}`` from the summary table ``gokart-k8s run`` prints; {} when none."""
    lines = stdout.splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.startswith("STEP ") and "STATE" in line)
    except ValueError:
        return {}
    states = {}
    for line in lines[start + 1 :]:
        if _SUMMARY_END.match(line):
            break
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def has_summary(stdout: str) -> bool:
    return any(_SUMMARY_END.match(line) for line in stdout.splitlines())


# --------------------------------------------------------------------------- a driver process


def gokart_k8s_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "gokart_k8s", *args]


def run_environment(config: Path, tmpdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a driver: this repository importable, one luigi config, its own TMPDIR."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_")}
    env.update(PYTHONPATH=str(REPO), LUIGI_CONFIG_PATH=str(config), TMPDIR=str(tmpdir), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class DriverProcess:
    """A ``gokart-k8s`` process in its own session, its output collected as it comes."""

    def __init__(self, argv: list[str], *, cwd: Path, env: Mapping[str, str], stdin: int | None = None) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._out: list[str] = []
        self._err: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self._out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self._err), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, sink: list[str]) -> None:
        for raw in iter(stream.readline, b""):
            sink.append(raw.decode(errors="replace"))
        stream.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def send(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.send(signal.SIGKILL)
            self.proc.wait(30)


@dataclass
class Run:
    """A run directory: its config, cache, attempt log and TMPDIR, and the driver processes started in it."""

    directory: Path
    task: list[str]
    config_text: str = ""
    drivers: list[DriverProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        self.config.write_text(
            f"[TaskOnKart]\nworkspace_directory = {self.workspace}/\n\n"
            f"[reliability]\nattempts_dir = {self.attempts_dir}\n\n{self.config_text}"
        )

    @property
    def workspace(self) -> Path:
        return self.directory / "resources"

    @property
    def attempts_dir(self) -> Path:
        return self.directory / "resources" / "attempts"

    @property
    def tmpdir(self) -> Path:
        return self.directory / "tmp"

    @property
    def config(self) -> Path:
        return self.directory / "luigi.cfg"

    def env(self, **extra: str) -> dict[str, str]:
        return run_environment(self.config, self.tmpdir, **extra)

    def start(self, *options: str, **env: str) -> DriverProcess:
        """``gokart-k8s run TASK --backend local-cluster OPTIONS`` in this run's directory."""
        argv = gokart_k8s_argv("run", *self.task, "--backend", "local-cluster", *options)
        driver = DriverProcess(argv, cwd=self.directory, env=self.env(**env))
        self.drivers.append(driver)
        return driver

    def attempts(self) -> Attempts:
        return read_attempts(self.attempts_dir)

    def outputs(self) -> dict[str, bytes]:
        return outputs(self.workspace)

    def cleanup(self) -> None:
        for driver in self.drivers:
            driver.kill()
        kill_leftovers(self.directory)
