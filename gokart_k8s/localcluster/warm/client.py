"""The kubelet's side of the warm interpreter: start, restart and stop the server; one handle per pod.

:class:`WarmStarter` owns the server (:mod:`.server`) from one long-lived thread, ``kubelet-warm``:
that thread starts it (only when the first step pod needs it, so a cluster that never runs a step
never pays for the preload), reads every message it sends, and is the thread the server's
``PR_SET_PDEATHSIG`` is tied to (the kernel signals a child when the *thread* that forked it ends,
https://man7.org/linux/man-pages/man2/PR_SET_PDEATHSIG.2const.html), so it lives as long as the kubelet.

When the server dies (killed, crashed), the pods it forked die with it (they are its children,
and ask for it); their containers end as killed by SIGKILL, with a message saying why, and the
next step pod starts a new server. A server that dies before it is ready twice in a row turns the
warm interpreter off for this cluster: pods then start as fresh processes, as with the setting off.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from gokart_k8s.supervision.parentdeath import PARENT_ENV, die_with_parent

from .server import MAX_MESSAGE

#: Seconds a pod waits for the server to preload (a fresh interpreter would import as long).
READY_TIMEOUT = 300.0
#: Seconds to wait for the server to answer one request (a fork).
SPAWN_TIMEOUT = 60.0
#: A server that dies this many times in a row before it is ready turns the warm interpreter off.
MAX_START_FAILURES = 2
#: The message of a container whose server died under it.
LOST_MESSAGE = "the warm interpreter that forked this container died, and the container with it"


class ForkedContainer:
    """A container the server forked: the part of ``subprocess.Popen`` the kubelet uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stdout: IO[bytes] | None = None
        self.returncode: int | None = None
        #: True when the server died before the container ended (its status is unknown).
        self.lost = False
        self._done = threading.Event()

    def end(self, code: int, *, lost: bool = False) -> None:
        if self._done.is_set():
            return
        self.lost = lost
        self.returncode = code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0.0)
        assert self.returncode is not None
        return self.returncode


def server_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The server's environment for a kubelet whose pods start from ``env``: no luigi config path,
    so luigi keeps its own defaults there (see :mod:`.fork`), and none of gokart_k8s's settings."""
    return {k: v for k, v in env.items() if k != "LUIGI_CONFIG_PATH" and not k.startswith("GOKART_K8S_")}


def start_server(env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
    """Start a server process with ``env`` (its preload begins at once); None if it cannot start.

    It dies with the *thread* that calls this (``PR_SET_PDEATHSIG``), and when its socket closes.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    package_root = str(Path(__file__).resolve().parents[3])
    boot = f"import sys; sys.path[0] = {package_root!r}; from gokart_k8s.localcluster.warm.server import main; main()"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", boot],
            stdin=theirs.fileno(),
            stdout=subprocess.DEVNULL,
            env=dict(env),
            # No luigi.cfg here: the server imports luigi under luigi's defaults (see .fork).
            cwd="/",
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGKILL),
        )
    except OSError:
        ours.close()
        return None
    finally:
        theirs.close()
    return proc, ours


class PrestartedServer:
    """A server started before its cluster, so its preload overlaps the driver's own start-up.

    A rehearsal starts one while it imports the pipeline and plans (on another core: that is a
    second or more of a short run), then hands it to the cluster's :class:`WarmStarter`, which
    takes it only if its environment is exactly the one it would have started a server with.
    What nobody took is killed by :meth:`close` (a plan with problems, nothing to run).
    Started from the run's main thread, it dies with that thread, which outlives the cluster.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = server_environment(env)
        self._started = start_server(self.env)
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The server's process id while nobody took it (None once taken or closed, or if it could not start)."""
        with self._lock:
            return self._started[0].pid if self._started is not None else None

    def take(self, env: Mapping[str, str]) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
        """The server, for a starter whose environment is ``env``; None (and it is stopped) otherwise."""
        with self._lock:
            started, self._started = self._started, None
        if started is None:
            return None
        if env != self.env or started[0].poll() is not None:
            _kill(*started)
            return None
        return started

    def close(self) -> None:
        """Stop the server unless it was taken."""
        with self._lock:
            started, self._started = self._started, None
        if started is not None:
            _kill(*started)


def _kill(proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
    sock.close()
    try:
        proc.kill()  # it may be in the middle of its preload, which does not read the socket
    except ProcessLookupError:
        pass
    proc.wait()


class _Request:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.container: ForkedContainer | None = None
        self.error: str | None = None


class WarmStarter:
    """Forks step pods from a warm server (see the module docstring)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        on_server: Callable[[int, bool], None] = lambda pid, alive: None,
        prestarted: PrestartedServer | None = None,
    ) -> None:
        #: The server's environment (:func:`server_environment`).
        self.env = server_environment(env)
        self.on_server = on_server
        #: A server already preloading, taken for the first start if its environment is ours.
        self._prestarted = prestarted
        #: Containers started by a fork, servers started: counters for tests and benchmarks.
        self.forked = 0
        self.server_starts = 0
        self.disabled = False
        self._cond = threading.Condition()
        self._wanted = False
        self._stopping = False
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._failures = 0
        self._next_id = 0
        self._requests: dict[int, _Request] = {}
        self._containers: dict[int, ForkedContainer] = {}
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._own, name="kubelet-warm", daemon=True)

    # ------------------------------------------------------------------ kubelet side
    def start(self) -> None:
        self._thread.start()

    def warm_up(self) -> None:
        """Start the server now, before any pod asks: its preload then overlaps what comes first.

        For a caller that knows step pods follow (a rehearsal run): the first pod of a run otherwise
        waits for the whole preload after its node came up, instead of the preload running while
        the node is provisioned.
        """
        with self._cond:
            if not (self.disabled or self._stopping):
                self._wanted = True
                self._cond.notify_all()

    @property
    def server_pid(self) -> int | None:
        with self._cond:
            return self._proc.pid if self._proc is not None and self._ready else None

    def spawn(self, tail: list[str], env: Mapping[str, str], cwd: str) -> ForkedContainer | None:
        """Fork ``gokart-k8s *tail`` as a pod; None when no server can (start the pod as a process).

        Raises OSError when the server could not start it (a missing working directory), as ``Popen`` does.
        """
        with self._cond:
            if self.disabled or self._stopping:
                return None
            self._wanted = True
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._ready or self.disabled or self._stopping, READY_TIMEOUT):
                return None
            if not self._ready or self._sock is None or self._proc is None:
                return None
            sock, server = self._sock, self._proc.pid
            self._next_id += 1
            ident = self._next_id
            request = self._requests[ident] = _Request()
        # The pod dies with the process that forked it: the server, not this one.
        message = json.dumps({"id": ident, "tail": tail, "env": {**env, PARENT_ENV: str(server)}, "cwd": cwd})
        read_end, write_end = os.pipe()
        try:
            with self._send_lock:
                socket.send_fds(sock, [message.encode()], [write_end])
        except OSError:
            os.close(read_end)
            with self._cond:
                self._requests.pop(ident, None)
            return None
        finally:
            os.close(write_end)
        request.done.wait(SPAWN_TIMEOUT)
        with self._cond:
            self._requests.pop(ident, None)
        if request.error is not None:
            os.close(read_end)
            raise OSError(request.error)
        container = request.container
        if container is None:
            os.close(read_end)
            return None
        container.stdout = os.fdopen(read_end, "rb")
        return container

    def stop(self) -> None:
        """Stop the server (its pods must be gone already) and the owning thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            sock = self._sock
            prestarted, self._prestarted = self._prestarted, None
        if prestarted is not None:  # never needed
            prestarted.close()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the owner's recv and tells the server
            except OSError:
                pass
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    # ------------------------------------------------------------------ the owner thread
    def _own(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wanted or self._stopping)
                if self._stopping:
                    return
            self._serve_once()
            with self._cond:
                if self._failures >= MAX_START_FAILURES:
                    self.disabled = True
                    self._cond.notify_all()
                    return

    def _start_server(self) -> tuple[subprocess.Popen[bytes], socket.socket] | None:
        prestarted, self._prestarted = self._prestarted, None
        taken = prestarted.take(self.env) if prestarted is not None else None
        return taken if taken is not None else start_server(self.env)

    def _serve_once(self) -> None:
        started = self._start_server()
        if started is None:
            with self._cond:
                self._failures += 1
            return
        proc, sock = started
        self.on_server(proc.pid, True)
        with self._cond:
            self.server_starts += 1
            self._proc, self._sock = proc, sock
            stopping = self._stopping
        if stopping:
            sock.shutdown(socket.SHUT_RDWR)
        try:
            while True:
                try:
                    data = sock.recv(MAX_MESSAGE)
                except OSError:
                    data = b""
                if not data:
                    break
                self._dispatch(json.loads(data))
        finally:
            self._server_gone(proc, sock)

    def _dispatch(self, message: dict[str, Any]) -> None:
        with self._cond:
            if "ready" in message:
                self._ready = True
                self._failures = 0
                self._cond.notify_all()
            elif "exit" in message:
                container = self._containers.pop(int(message["exit"]), None)
                if container is not None:
                    container.end(int(message["code"]))
            elif "id" in message:
                request = self._requests.get(int(message["id"]))
                if request is None:
                    return
                if "pid" in message:
                    container = ForkedContainer(int(message["pid"]))
                    self._containers[container.pid] = container
                    self.forked += 1
                    request.container = container
                else:
                    request.error = str(message.get("error", "the warm interpreter could not start the container"))
                request.done.set()

    def _server_gone(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        with self._cond:
            was_ready = self._ready
            self._ready = False
            self._proc = self._sock = None
            if not was_ready and not self._stopping:
                self._failures += 1
            containers, self._containers = list(self._containers.values()), {}
            requests = list(self._requests.values())
            self._cond.notify_all()
        sock.close()
        for request in requests:
            request.done.set()  # no container: the pod starts as a fresh process
        for container in containers:
            try:
                os.killpg(container.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            container.end(-signal.SIGKILL, lost=True)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.on_server(proc.pid, False)
