"""The kubelet: runs each bound pod's container as a local process and reports its status.

What a container is here: ``command + args`` of the pod's *first* container, run with
``subprocess.Popen`` in its own session (so its own process group), stdout and stderr merged into
the pod log, in the Python environment the cluster was started from:

* ``python``/``python3``/``python3.X`` (any directory) → ``sys.executable``;
* ``gokart-k8s`` → ``sys.executable -m gokart_k8s``;
* with no ``command``, ``args`` alone are run (the image's ENTRYPOINT is unknown here);
* ``$(VAR)`` in command and args is expanded from the container env, ``$$`` escapes it
  (https://kubernetes.io/docs/tasks/inject-data-application/define-interdependent-environment-variables/).

Environment: ``PATH``, ``PYTHONPATH``, ``HOME``, ``LANG`` and ``TMPDIR`` of the cluster process,
``HOSTNAME`` = pod name, ``PYTHONUNBUFFERED=1`` (logs stream like a container's), the cluster's
``pod_env``, then ``envFrom`` and ``env`` (``value``; ``valueFrom`` with ``fieldRef``,
``configMapKeyRef`` and ``secretKeyRef``; ``resourceFieldRef`` is ignored). Working directory:
``workingDir`` if set (it must exist), else the cluster's ``workdir``.

Lifecycle, as the real kubelet reports it
(https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/):

* Running: ``phase: Running``, ``containerStatuses[0].state.running.startedAt``, conditions
  ``Initialized``, ``ContainersReady``, ``Ready`` True.
* Exit: ``state.terminated`` with ``exitCode`` (128+N for signal N), ``reason`` ``Completed``,
  ``Error`` or ``OOMKilled``, ``startedAt``/``finishedAt``; phase Succeeded (exit 0) or Failed.
  A process killed by a signal nobody in the cluster sent is reported with message
  ``process was killed by signal N``.
* ``restartPolicy`` OnFailure/Always restart the container in place (``restartCount``,
  ``lastState``) after a short back-off.
* Memory: a monitor sums the RSS of the process group from ``/proc`` every ``poll_seconds`` and
  SIGKILLs the group above ``resources.limits.memory`` → ``OOMKilled``, exit code 137
  (https://kubernetes.io/docs/tasks/configure-pod-container/assign-memory-resource/#exceed-a-containers-memory-limit).
* Deletion: SIGTERM to the group, ``deletionGracePeriodSeconds`` later SIGKILL; the pod then gets
  a terminal phase (since 1.27) and is deleted with grace 0
  (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination).
  When the main process exits, the rest of its group is killed, as a container's cgroup would be.

Nothing outlives the cluster, however its process ends: ``shutdown()`` kills every group (after a
grace, if asked); a reaper process (:mod:`.reaper`) kills every pod's whole process group when the
cluster's end of a pipe closes, SIGKILL of the cluster's process included; and every pod gets
``GOKART_K8S_DIE_WITH_PARENT`` (this process's pid), with which ``gokart-k8s step`` asks the kernel
to SIGKILL it when its pod thread dies (``PR_SET_PDEATHSIG``,
:mod:`gokart_k8s.supervision.parentdeath`), a second guard that does not depend on the reaper.
Containers are started without a ``preexec_fn``, so ``Popen`` keeps its fast ``posix_spawn``/
``vfork`` path in this large multi-threaded process.

Termination messages (https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/):
a container here is a host process and cannot have ``/dev/termination-log``, so the kubelet makes
an empty file per pod for the container's ``terminationMessagePath`` (default
``/dev/termination-log``) in a folder of its own, and tells the process where it is: every ``env``
variable whose value is exactly that path gets the file's host path instead (the step Job's
``GOKART_K8S_TERMINATION_MESSAGE_PATH``, :mod:`gokart_k8s.supervision.termination_log`). What
differs from a real kubelet: a process that opens the path itself (``echo x > /dev/termination-log``)
finds no such file, and one that reads the variable sees a host path. When the container
terminates its first 4096 bytes become ``state.terminated.message``; with
``terminationMessagePolicy: FallbackToLogsOnError`` an empty file and a non-zero exit give the
log's last 80 lines, at most its last 2048 bytes, instead (the Container API reference,
https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#lifecycle-1). A
message of the stand-in's own (a signal nobody sent, a lost warm interpreter) is kept when the file
is empty, ahead of the log's tail. The file is removed when the container's last status is written,
the folder when the cluster stops. This is the container's ``terminated.message``, not the pod's
``status.message`` of a node shutdown.

Step pods (``gokart-k8s step``) are forked instead from the warm interpreter (:mod:`.warm`), a
helper process that imported gokart once, unless ``warm_interpreter=False``; the forked container
is the same process group, environment, working directory, log and exit code, its memory counted
as the pages it does not share with the helper, and it is named to the reaper like any other.
"""

from __future__ import annotations

import base64
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..supervision.parentdeath import PARENT_ENV
from . import reaper
from . import resources as r
from .quantity import parse_quantity
from .store import Obj, Store, timestamp
from .warm.client import LOST_MESSAGE, ForkedContainer, PrestartedServer, WarmStarter
from .warm.fork import step_tail

_PYTHON_RE = re.compile(r"^python(3(\.\d+)?)?$")
_VAR_RE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_INHERITED_ENV = ("PATH", "PYTHONPATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
#: A container's termination message: its file's first bytes kept, the log's tail used instead on error.
_MESSAGE_BYTES = 4096
_FALLBACK_LINES = 80
_FALLBACK_BYTES = 2048
_DEFAULT_MESSAGE_PATH = "/dev/termination-log"

#: A container's main process: started by ``Popen``, or forked by the warm interpreter (:mod:`.warm`).
Container = subprocess.Popen[bytes] | ForkedContainer


class LogBuffer:
    """A container's log: timestamped lines plus a condition for ``follow``."""

    def __init__(self) -> None:
        self._lines: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self.closed = False

    def append(self, line: bytes) -> None:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with self._cond:
            self._lines.append((now, line if line.endswith(b"\n") else line + b"\n"))
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def read(self, start: int, tail: int | None) -> tuple[list[tuple[str, bytes]], int, bool]:
        with self._cond:
            lines = self._lines[start:]
            if tail is not None:
                lines = lines[-tail:] if tail > 0 else []
            return lines, len(self._lines), self.closed

    def wait(self, index: int, timeout: float) -> None:
        with self._cond:
            if len(self._lines) <= index and not self.closed:
                self._cond.wait(timeout)

    @staticmethod
    def render(line: tuple[str, bytes], stamps: bool) -> bytes:
        return (line[0].encode() + b" " + line[1]) if stamps else line[1]

    def text(self) -> str:
        with self._cond:
            return b"".join(line for _, line in self._lines).decode(errors="replace")

    def tail(self, lines: int, limit: int) -> str:
        """The last ``lines`` lines, at most their last ``limit`` bytes (FallbackToLogsOnError's text)."""
        with self._cond:
            data = b"".join(line for _, line in self._lines[-lines:])
        return data[-limit:].decode(errors="replace")


@dataclass
class PodRuntime:
    """What the kubelet knows about one pod it runs."""

    uid: str
    namespace: str
    name: str
    logs: LogBuffer = field(default_factory=LogBuffer)
    lock: threading.Lock = field(default_factory=threading.Lock)
    proc: Container | None = None
    memory_limit: int | None = None
    #: The pod object is being deleted: finish its deletion when the process is gone.
    deleting: bool = False
    #: The container must stop and not restart (deletion or node shutdown).
    stopping: bool = False
    grace: float = 30.0
    terminating: bool = False
    oom_killed: bool = False
    finished: threading.Event = field(default_factory=threading.Event)
    wake: threading.Event = field(default_factory=threading.Event)
    #: Set by a node shutdown: the pod ends Failed with this ``status.reason`` and message.
    termination_reason: str = ""
    termination_message: str = ""
    #: The host file that stands for the container's ``terminationMessagePath`` (module docstring).
    message_file: Path | None = None


def expand(text: str, env: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_RE.sub(repl, text)


def local_argv(command: list[str], args: list[str]) -> list[str]:
    """Map a container's command line onto this machine's Python environment."""
    argv = list(command) + list(args) if command else list(args)
    if not argv:
        return argv
    head = os.path.basename(argv[0])
    if _PYTHON_RE.match(head):
        return [sys.executable, *argv[1:]]
    if head == "gokart-k8s":
        return [sys.executable, "-m", "gokart_k8s", *argv[1:]]
    return argv


def _private_bytes(pid: str) -> int:
    """Bytes of memory only this process maps (``Private_Clean`` + ``Private_Dirty`` of smaps_rollup)."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return total


def _group_private(pgid: int) -> int:
    """Bytes the processes of group ``pgid`` do not share with any other process (see :func:`_private_bytes`)."""
    total = 0
    for pid, group in _groups().items():
        if group == pgid:
            total += _private_bytes(pid)
    return total


def _proc_stats() -> Iterator[tuple[str, list[bytes]]]:
    """``(pid, fields)`` of every process, the fields of /proc/<pid>/stat after its command name."""
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        yield pid, stat[stat.rfind(b")") + 2 :].split()


def _groups() -> dict[str, int]:
    """The process group of every process, from /proc/<pid>/stat."""
    return {pid: int(fields[2]) for pid, fields in _proc_stats() if len(fields) > 2}


def _group_rss() -> dict[int, int]:
    """Resident bytes per process group, from /proc/<pid>/stat."""
    out: dict[int, int] = {}
    for _pid, fields in _proc_stats():
        if len(fields) > 21:
            pgrp = int(fields[2])
            out[pgrp] = out.get(pgrp, 0) + int(fields[21]) * _PAGE_SIZE
    return out


def base_environment(pod_env: Mapping[str, str]) -> dict[str, str]:
    """What every pod's environment starts with, for a kubelet given ``pod_env`` (and the warm interpreter's)."""
    env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(pod_env)
    return env


class Kubelet:
    """Runs pods bound to any node of the local cluster (one kubelet for all nodes)."""

    def __init__(
        self,
        store: Store,
        *,
        pod_env: dict[str, str] | None = None,
        workdir: Path | None = None,
        poll_seconds: float = 0.2,
        restart_backoff_seconds: float = 0.2,
        warm_interpreter: bool = True,
        warm_server: PrestartedServer | None = None,
    ) -> None:
        self.store = store
        self.pod_env = dict(pod_env or {})
        self.workdir = workdir or Path.cwd()
        self.poll_seconds = poll_seconds
        self.restart_backoff_seconds = restart_backoff_seconds
        self.pods_started = 0
        self._runtimes: dict[str, PodRuntime] = {}
        self._logs: dict[str, LogBuffer] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[str, Obj] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._reaper: subprocess.Popen[bytes] | None = None
        self._reaper_lock = threading.Lock()
        #: Holds each pod's termination message file (module docstring); made when first needed.
        self._messages: Path | None = None
        #: Forks step pods from a warm interpreter (:mod:`.warm`); None: every pod a fresh process.
        self.warm: WarmStarter | None = None
        if warm_interpreter:
            self.warm = WarmStarter(self._base_environment(), on_server=self._on_warm_server, prestarted=warm_server)
        elif warm_server is not None:
            warm_server.close()
        store.add_listener(self._on_event)

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        self._start_reaper()
        if self.warm is not None:
            self.warm.start()
        for target, name in ((self._work, "kubelet"), (self._monitor, "kubelet-monitor")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def logs(self, uid: str) -> LogBuffer | None:
        with self._lock:
            return self._logs.get(uid)

    def warm_up(self) -> None:
        """Start the warm interpreter's preload now (see :meth:`.warm.client.WarmStarter.warm_up`)."""
        if self.warm is not None:
            self.warm.warm_up()

    def pid_of(self, uid: str) -> int | None:
        with self._lock:
            rt = self._runtimes.get(uid)
        return rt.proc.pid if rt and rt.proc and rt.proc.poll() is None else None

    def running_pids(self) -> list[int]:
        with self._lock:
            runtimes = list(self._runtimes.values())
        return [rt.proc.pid for rt in runtimes if rt.proc is not None and rt.proc.poll() is None]

    def terminate(self, uid: str, grace: float, reason: str = "", message: str = "") -> bool:
        """SIGTERM now, SIGKILL after ``grace`` seconds, without deleting the pod (node shutdown).

        With ``reason`` the pod ends ``Failed`` with that ``status.reason`` and ``message``
        whatever its exit code, as the kubelet's graceful node shutdown does
        (https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/#graceful-node-shutdown).
        False when the pod is not running here.
        """
        with self._lock:
            rt = self._runtimes.get(uid)
        if rt is None:
            return False
        rt.termination_message = message
        self._request_termination(rt, grace, reason, delete=False)
        return True

    def wait_finished(self, uid: str, timeout: float) -> bool:
        with self._lock:
            rt = self._runtimes.get(uid)
        return True if rt is None else rt.finished.wait(timeout)

    def shutdown(self, grace_seconds: float = 0.0) -> None:
        """Kill every process group and wait for the pod threads; leaves no process behind.

        With ``grace_seconds``, running containers first get SIGTERM (those already terminating
        keep their own deadline) and up to that long to exit, as a node's graceful shutdown gives
        them; whatever runs after that, or when the wait is interrupted, is SIGKILLed.
        """
        try:
            if grace_seconds > 0:
                self._drain(grace_seconds)
        finally:
            self._stopping.set()
            self._queue.put(None)
            with self._lock:
                runtimes = list(self._runtimes.values())
            for rt in runtimes:
                rt.wake.set()
                self._kill_group(rt, signal.SIGKILL)
            for rt in runtimes:
                rt.finished.wait(5)
            for t in self._threads:
                t.join(timeout=5)
            if self.warm is not None:
                self.warm.stop()
            self._stop_reaper()
            if self._messages is not None:
                shutil.rmtree(self._messages, ignore_errors=True)

    def _drain(self, grace_seconds: float) -> None:
        deadline = time.monotonic() + grace_seconds
        with self._lock:
            runtimes = [rt for rt in self._runtimes.values() if rt.proc is not None and not rt.finished.is_set()]
        for rt in runtimes:
            with rt.lock:
                rt.stopping = True
                already = rt.terminating
            rt.wake.set()
            if not already:
                rt.terminating = True
                self._kill_group(rt, signal.SIGTERM)
        for rt in runtimes:
            rt.finished.wait(max(0.0, deadline - time.monotonic()))

    # ------------------------------------------------------------------ the reaper
    def _start_reaper(self) -> None:
        """Start the reaper (see :mod:`.reaper`); without one the parent-death signal still holds."""
        try:
            self._reaper = subprocess.Popen(
                [sys.executable, "-I", "-S", reaper.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._reaper = None

    def _on_warm_server(self, pid: int, alive: bool) -> None:
        # The server runs in its own session: the reaper kills its group with the pods'.
        self._tell_reaper(f"{'+' if alive else '-'}{pid}")

    def _tell_reaper(self, line: str) -> None:
        with self._reaper_lock:
            if self._reaper is None or self._reaper.stdin is None:
                return
            try:
                self._reaper.stdin.write(line.encode() + b"\n")
                self._reaper.stdin.flush()
            except (OSError, ValueError):
                pass

    def _stop_reaper(self) -> None:
        with self._reaper_lock:
            proc, self._reaper = self._reaper, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # ------------------------------------------------------------------ events
    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is not r.POD or self._stopping.is_set():
            return
        meta = obj["metadata"]
        if kind == "DELETED":
            self._queue.put(("deleted", obj))
        elif not (obj.get("spec") or {}).get("nodeName"):
            return
        elif meta.get("deletionTimestamp"):
            old_meta = (old or {}).get("metadata") or {}
            if old_meta.get("deletionGracePeriodSeconds") != meta.get("deletionGracePeriodSeconds"):
                self._queue.put(("delete", obj))
        elif (obj.get("status") or {}).get("phase") in ("Pending", None) and meta["uid"] not in self._runtimes:
            runtime = PodRuntime(meta["uid"], meta["namespace"], meta["name"])
            with self._lock:
                self._runtimes[runtime.uid] = runtime
            self._queue.put(("start", obj))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stopping.is_set():
                return
            action, pod = item
            uid = pod["metadata"]["uid"]
            with self._lock:
                runtime = self._runtimes.get(uid)
            if action == "start" and runtime is not None:
                t = threading.Thread(target=self._run_pod, args=(runtime, pod), name=f"pod-{runtime.name}", daemon=True)
                t.start()
            elif action in ("delete", "deleted"):
                grace = pod["metadata"].get("deletionGracePeriodSeconds")
                if grace is None:
                    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
                if runtime is not None and not runtime.finished.is_set():
                    self._request_termination(runtime, float(grace), "")
                elif action == "delete":
                    # Nothing runs (any more) for this pod: finish its deletion right away.
                    self._mark_terminal_if_needed(pod)
                    self.store.finish_graceful_deletion(
                        r.POD, pod["metadata"]["namespace"], pod["metadata"]["name"], uid
                    )

    def _mark_terminal_if_needed(self, pod: Obj) -> None:
        def mutate(p: Obj) -> bool | None:
            status = p.setdefault("status", {})
            if status.get("phase") in ("Succeeded", "Failed"):
                return False
            status["phase"] = "Failed"
            return None

        self.store.update(
            r.POD, pod["metadata"]["namespace"], pod["metadata"]["name"], mutate, uid=pod["metadata"]["uid"]
        )

    # ------------------------------------------------------------------ termination
    def _request_termination(self, rt: PodRuntime, grace: float, reason: str, *, delete: bool = True) -> None:
        with rt.lock:
            first = not (rt.deleting or rt.stopping)
            rt.stopping = True
            rt.deleting = rt.deleting or delete
            rt.grace = min(rt.grace, grace) if not first else grace
            if reason:
                rt.termination_reason = reason
            proc = rt.proc
        rt.wake.set()
        if proc is not None and (first or grace == 0):
            threading.Thread(target=self._terminate, args=(rt, proc), name=f"kill-{rt.name}", daemon=True).start()

    def _terminate(self, rt: PodRuntime, proc: Container) -> None:
        rt.terminating = True
        self._kill_group(rt, signal.SIGTERM)
        deadline = time.monotonic() + rt.grace
        while proc.poll() is None and time.monotonic() < deadline and not self._stopping.is_set():
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        if proc.poll() is None:
            self._kill_group(rt, signal.SIGKILL)

    @staticmethod
    def _kill_group(rt: PodRuntime, sig: signal.Signals) -> None:
        proc = rt.proc
        if proc is None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _monitor(self) -> None:
        """Enforce memory limits and reap process groups whose main process has exited."""
        while not self._stopping.wait(self.poll_seconds):
            with self._lock:
                runtimes = [rt for rt in self._runtimes.values() if rt.proc is not None and not rt.finished.is_set()]
            limited = [rt for rt in runtimes if rt.memory_limit]
            rss = _group_rss() if limited else {}
            for rt in limited:
                assert rt.proc is not None and rt.memory_limit is not None
                over = rt.proc.poll() is None and rss.get(rt.proc.pid, 0) > rt.memory_limit
                # A forked pod shares the warm interpreter's pages: only its own count (never more than its RSS).
                if over and isinstance(rt.proc, ForkedContainer):
                    over = _group_private(rt.proc.pid) > rt.memory_limit
                if over:
                    rt.oom_killed = True
                    self._kill_group(rt, signal.SIGKILL)
            for rt in runtimes:
                if rt.proc is not None and rt.proc.poll() is not None:
                    self._kill_group(rt, signal.SIGKILL)

    # ------------------------------------------------------------------ running
    def _base_environment(self) -> dict[str, str]:
        """What every pod's environment starts with (and the warm interpreter's)."""
        return base_environment(self.pod_env)

    def _message_file(self, runtime: PodRuntime) -> Path:
        """The pod's termination message file, empty (again, for a restarted container)."""
        with self._lock:
            if self._messages is None:
                self._messages = Path(tempfile.mkdtemp(prefix=f"gokart-k8s-messages-{os.getpid()}-"))
            folder = self._messages
        path = folder / runtime.uid
        path.write_bytes(b"")
        runtime.message_file = path
        return path

    @staticmethod
    def _message(runtime: PodRuntime, container: Obj, info: dict[str, Any]) -> str | None:
        """The container's ``terminated.message`` (module docstring); None for none."""
        data = b""
        if runtime.message_file is not None:
            try:
                with open(runtime.message_file, "rb") as fh:
                    data = fh.read(_MESSAGE_BYTES)
            except OSError:
                pass
        if data:
            return data.decode(errors="replace")
        if info.get("message"):
            return str(info["message"])
        if container.get("terminationMessagePolicy") == "FallbackToLogsOnError" and info.get("exitCode"):
            return runtime.logs.tail(_FALLBACK_LINES, _FALLBACK_BYTES) or None
        return None

    def _environment(self, pod: Obj, container: Obj, message_file: Path | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in _INHERITED_ENV if k in os.environ}
        env.update(HOSTNAME=pod["metadata"]["name"], PYTHONUNBUFFERED="1")
        # A pod that can asks to die with this process (gokart-k8s step does; see the module docstring).
        env[PARENT_ENV] = str(os.getpid())
        env.update(self.pod_env)
        ns = pod["metadata"]["namespace"]
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._data(r.CONFIGMAP, ns, source["configMapRef"].get("name", ""), decode=False)
            else:
                data = self._data(r.SECRET, ns, (source.get("secretRef") or {}).get("name", ""), decode=True)
            env.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env") or []:
            name = var.get("name")
            if not name:
                continue
            if "value" in var:
                env[name] = expand(str(var["value"]), env)
            elif "valueFrom" in var:
                value = self._value_from(pod, var["valueFrom"])
                if value is not None:
                    env[name] = value
        if message_file is not None:
            # A host process has no /dev/termination-log: a variable naming the path gets the pod's file.
            path = container.get("terminationMessagePath") or _DEFAULT_MESSAGE_PATH
            for var in container.get("env") or []:
                if var.get("name") and env.get(var["name"]) == path:
                    env[var["name"]] = str(message_file)
        return env

    def _data(self, rt: r.ResourceType, namespace: str, name: str, *, decode: bool) -> dict[str, str]:
        obj = self.store.try_get(rt, namespace, name) or {}
        data = dict(obj.get("data") or {})
        if decode:
            data = {k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()}
            data.update(obj.get("stringData") or {})
        return {str(k): str(v) for k, v in data.items()}

    def _value_from(self, pod: Obj, source: Obj) -> str | None:
        ns = pod["metadata"]["namespace"]
        if "fieldRef" in source:
            path = source["fieldRef"].get("fieldPath", "")
            m = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
            if m:
                value = (pod["metadata"].get(m.group(1)) or {}).get(m.group(2))
                return None if value is None else str(value)
            current: Any = pod
            for step in path.split("."):
                current = current.get(step) if isinstance(current, dict) else None
            if path in ("status.podIP", "status.hostIP"):
                return "127.0.0.1"
            return None if current is None else str(current)
        for key, rt, decode in (("configMapKeyRef", r.CONFIGMAP, False), ("secretKeyRef", r.SECRET, True)):
            if key in source:
                ref = source[key]
                return self._data(rt, ns, ref.get("name", ""), decode=decode).get(ref.get("key", ""))
        return None

    def _run_pod(self, runtime: PodRuntime, pod: Obj) -> None:
        with self._lock:
            self._logs[runtime.uid] = runtime.logs
        spec = pod.get("spec") or {}
        container = (spec.get("containers") or [{}])[0]
        limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
        runtime.memory_limit = int(parse_quantity(limit)) if limit else None
        runtime.grace = float(spec.get("terminationGracePeriodSeconds", 30))
        restart_policy = spec.get("restartPolicy", "Always")
        restarts = 0
        try:
            self._wait_for_config(runtime, pod, container)
            while True:
                exit_info = self._run_container(runtime, pod, container, restarts)
                code = exit_info["exitCode"]
                again = restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)
                if again and not runtime.stopping and not self._stopping.is_set():
                    restarts += 1
                    self._write_waiting(runtime, container, exit_info, restarts)
                    runtime.wake.wait(min(5.0, self.restart_backoff_seconds * 2 ** (restarts - 1)))
                    if not runtime.stopping and not self._stopping.is_set():
                        continue
                self._write_terminated(runtime, container, exit_info, restarts)
                break
        finally:
            runtime.logs.close()
            if runtime.message_file is not None:
                runtime.message_file.unlink(missing_ok=True)
            runtime.finished.set()
            with self._lock:
                self._runtimes.pop(runtime.uid, None)
            if runtime.deleting and not self._stopping.is_set():
                self.store.finish_graceful_deletion(r.POD, runtime.namespace, runtime.name, runtime.uid)

    def _config_error(self, pod: Obj, container: Obj) -> str | None:
        """Why the kubelet cannot build the container's environment, worded as the kubelet words it;
        None when every referenced Secret and ConfigMap (and key) exists or is ``optional``."""
        ns = pod["metadata"]["namespace"]
        kinds = {"configMap": (r.CONFIGMAP, "configmap", "ConfigMap"), "secret": (r.SECRET, "secret", "Secret")}
        for source in container.get("envFrom") or []:
            for prefix, (rt, lower, _) in kinds.items():
                ref = source.get(f"{prefix}Ref")
                if ref and not ref.get("optional") and self.store.try_get(rt, ns, ref.get("name", "")) is None:
                    return f'{lower} "{ref.get("name", "")}" not found'
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            for prefix, (rt, lower, kind) in kinds.items():
                ref = value_from.get(f"{prefix}KeyRef")
                if not ref or ref.get("optional"):
                    continue
                obj = self.store.try_get(rt, ns, ref.get("name", ""))
                if obj is None:
                    return f'{lower} "{ref.get("name", "")}" not found'
                if ref.get("key") not in {**(obj.get("data") or {}), **(obj.get("stringData") or {})}:
                    return f"couldn't find key {ref.get('key')} in {kind} {ns}/{ref.get('name', '')}"
        return None

    def _wait_for_config(self, runtime: PodRuntime, pod: Obj, container: Obj) -> None:
        """Hold the container in ``CreateContainerConfigError`` while a Secret or ConfigMap it reads is
        missing, retrying as the kubelet does; it starts once the object appears
        (https://kubernetes.io/docs/tasks/debug/debug-application/debug-pods/#my-pod-stays-waiting)."""
        attempt, shown = 0, None
        while not runtime.stopping and not self._stopping.is_set():
            error = self._config_error(pod, container)
            if error is None:
                return
            if error != shown:
                shown = error
                self._write_config_error(runtime, container, error)
            runtime.wake.wait(min(5.0, self.restart_backoff_seconds * 2**attempt))
            attempt += 1

    def _write_config_error(self, runtime: PodRuntime, container: Obj, message: str) -> None:
        def mutate(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            cs = self._base_status(runtime, container, 0)
            cs.update(
                ready=False,
                started=False,
                state={"waiting": {"reason": "CreateContainerConfigError", "message": message}},
            )
            status["containerStatuses"] = [cs]
            self._set_conditions(
                status, {"ContainersReady": ("False", "ContainersNotReady"), "Ready": ("False", "ContainersNotReady")}
            )

        self._update_pod(runtime, mutate)
        pod = self.store.try_get(r.POD, runtime.namespace, runtime.name)
        if pod is not None:
            self.store.record_event(pod, "Failed", f"Error: {message}", type_="Warning", component="kubelet")

    def _run_container(self, runtime: PodRuntime, pod: Obj, container: Obj, restarts: int) -> dict[str, Any]:
        started = timestamp()
        if runtime.stopping or self._stopping.is_set():
            return {
                "exitCode": 137,
                "reason": "Error",
                "startedAt": started,
                "finishedAt": started,
                "message": "the pod was deleted before its container started",
            }
        env = self._environment(pod, container, self._message_file(runtime))
        argv = [expand(a, env) for a in local_argv(container.get("command") or [], container.get("args") or [])]
        cwd = container.get("workingDir") or str(self.workdir)
        try:
            if not argv:
                raise OSError(
                    "the container has no command and no args; the local cluster cannot run an "
                    "image's ENTRYPOINT, so set command"
                )
            proc = self._fork(argv, env, cwd) or subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            # The runtime could not start the container (https://kubernetes.io/docs/tasks/debug/debug-application/debug-pods/).
            return {
                "exitCode": 128,
                "reason": "StartError",
                "startedAt": started,
                "finishedAt": timestamp(),
                "message": f"failed to start {argv[:1]} in {cwd}: {exc}",
            }
        self._tell_reaper(f"+{proc.pid}")
        with runtime.lock:
            runtime.proc = proc
            runtime.oom_killed = False
            deleting = runtime.stopping
        with self._lock:
            self.pods_started += 1
        if deleting:
            threading.Thread(target=self._terminate, args=(runtime, proc), daemon=True).start()
        self._write_running(runtime, container, started, restarts, proc.pid)
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            runtime.logs.append(line)
        proc.stdout.close()
        code = proc.wait()
        self._kill_group(runtime, signal.SIGKILL)
        self._tell_reaper(f"-{proc.pid}")
        info: dict[str, Any] = {"startedAt": started, "finishedAt": timestamp()}
        if code < 0:
            info["exitCode"] = 128 - code
            if runtime.oom_killed:
                info["reason"] = "OOMKilled"
            else:
                info["reason"] = "Error"
                if isinstance(proc, ForkedContainer) and proc.lost:
                    info["message"] = LOST_MESSAGE
                elif not runtime.terminating:
                    info["message"] = f"process was killed by signal {-code}"
        else:
            info["exitCode"] = code
            info["reason"] = "Completed" if code == 0 else ("OOMKilled" if runtime.oom_killed else "Error")
        message = self._message(runtime, container, info)
        if message is not None:
            info["message"] = message
        return info

    def _fork(self, argv: list[str], env: dict[str, str], cwd: str) -> ForkedContainer | None:
        """The step container forked from the warm interpreter; None for any other command, or none running."""
        tail = step_tail(argv, sys.executable) if self.warm is not None else None
        if self.warm is None or tail is None:
            return None
        return self.warm.spawn(tail, env, cwd)

    # ------------------------------------------------------------------ status
    def _base_status(self, runtime: PodRuntime, container: Obj, restarts: int) -> Obj:
        return {
            "name": container.get("name", ""),
            "image": container.get("image", ""),
            "imageID": "",
            "restartCount": restarts,
        }

    def _update_pod(self, runtime: PodRuntime, mutate: Any) -> None:
        self.store.update(r.POD, runtime.namespace, runtime.name, mutate, uid=runtime.uid)

    @staticmethod
    def _set_conditions(status: Obj, values: dict[str, tuple[str, str]]) -> None:
        now = timestamp()
        conditions = [c for c in status.get("conditions") or [] if c.get("type") not in values]
        existing = {c.get("type"): c for c in status.get("conditions") or []}
        for type_, (value, reason) in values.items():
            old = existing.get(type_)
            cond: Obj = {
                "type": type_,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == value else now,
            }
            if reason:
                cond["reason"] = reason
            conditions.append(cond)
        status["conditions"] = conditions

    def _write_running(self, runtime: PodRuntime, container: Obj, started: str, restarts: int, pid: int) -> None:
        def mutate(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            status["phase"] = "Running"
            status.setdefault("startTime", started)
            status["hostIP"] = status["podIP"] = "127.0.0.1"
            status["hostIPs"] = status["podIPs"] = [{"ip": "127.0.0.1"}]
            cs = self._base_status(runtime, container, restarts)
            cs.update(ready=True, started=True, containerID=f"local://{pid}", state={"running": {"startedAt": started}})
            previous = (status.get("containerStatuses") or [{}])[0].get("lastState")
            if previous:
                cs["lastState"] = previous
            status["containerStatuses"] = [cs]
            self._set_conditions(
                status,
                {
                    "PodReadyToStartContainers": ("True", ""),
                    "Initialized": ("True", ""),
                    "ContainersReady": ("True", ""),
                    "Ready": ("True", ""),
                },
            )

        self._update_pod(runtime, mutate)

    def _write_waiting(self, runtime: PodRuntime, container: Obj, info: Obj, restarts: int) -> None:
        def mutate(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            cs = self._base_status(runtime, container, restarts)
            delay = min(5.0, self.restart_backoff_seconds * 2 ** (restarts - 1))
            back_off = (
                f"back-off {delay:g}s restarting failed container={container.get('name', '')} "
                f"pod={runtime.name}_{runtime.namespace}({runtime.uid})"
            )
            cs.update(
                ready=False,
                started=False,
                state={"waiting": {"reason": "CrashLoopBackOff", "message": back_off}},
                lastState={"terminated": info},
            )
            status["containerStatuses"] = [cs]
            # The kubelet's phase counts a restarting container that ran (or failed to start) before as
            # stopped, not waiting, so the pod is Running, not Pending, while it crash-loops
            # (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-phase).
            status["phase"] = "Running"
            status.setdefault("startTime", info["startedAt"])
            self._set_conditions(
                status, {"ContainersReady": ("False", "ContainersNotReady"), "Ready": ("False", "ContainersNotReady")}
            )

        self._update_pod(runtime, mutate)

    def _write_terminated(self, runtime: PodRuntime, container: Obj, info: Obj, restarts: int) -> None:
        def mutate(pod: Obj) -> None:
            status = pod.setdefault("status", {})
            succeeded = info["exitCode"] == 0
            status["phase"] = "Succeeded" if succeeded else "Failed"
            status.setdefault("startTime", info["startedAt"])
            cs = self._base_status(runtime, container, restarts)
            terminated = dict(info)
            if runtime.proc is not None:
                terminated["containerID"] = f"local://{runtime.proc.pid}"
            cs.update(ready=False, started=False, state={"terminated": terminated})
            previous = (status.get("containerStatuses") or [{}])[0].get("lastState")
            if previous:
                cs["lastState"] = previous
            status["containerStatuses"] = [cs]
            reason = "PodCompleted" if succeeded else "PodFailed"
            self._set_conditions(
                status,
                {
                    "PodReadyToStartContainers": ("False", ""),
                    "ContainersReady": ("False", reason),
                    "Ready": ("False", reason),
                },
            )
            if runtime.termination_reason:
                status["phase"] = "Failed"
                status["reason"] = runtime.termination_reason
                status["message"] = runtime.termination_message

        self._update_pod(runtime, mutate)
