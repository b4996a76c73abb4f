"""The warm server: one small process that imported gokart once and forks a child per pod.

Started by the kubelet (:mod:`.client`) as ``python -c 'from ...server import main; main()'`` in its
own session, its stdin a ``SOCK_SEQPACKET`` Unix socket (one message per request, each with the
pod's log pipe attached as ``SCM_RIGHTS``, https://man7.org/linux/man-pages/man7/unix.7.html).
The protocol, JSON per message:

* server -> kubelet, once: ``{"ready": pid}`` after the preload;
* kubelet -> server: ``{"id": n, "tail": [...], "env": {...}, "cwd": "..."}`` plus one fd;
* server -> kubelet: ``{"id": n, "pid": p}`` once the child has its own session, or
  ``{"id": n, "error": "..."}`` when it could not be started;
* server -> kubelet: ``{"exit": p, "code": c}`` when child ``p`` ended (``c`` as ``Popen.returncode``:
  negative for a signal).

Why a separate process, single-threaded: ``fork`` copies only the calling thread, so a fork of the
multi-threaded cluster process could leave a child holding a lock another thread held forever
(https://docs.python.org/3/library/os.html#os.fork). This process starts no thread; it waits in
``select`` for requests and for ``SIGCHLD`` (through ``signal.set_wakeup_fd``).

It ends when the kubelet closes its end of the socket, and dies with the kubelet's thread that
started it (``PR_SET_PDEATHSIG``); the pods it forked die with it in turn (each is told its parent
in ``GOKART_K8S_DIE_WITH_PARENT``, :mod:`gokart_k8s.supervision.parentdeath`).
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from . import fork

#: What a fresh ``gokart-k8s step`` worker imports before it imports the step's module, and the
#: libraries a step's build uses: luigi, gokart (and through it pandas), gokart_k8s's step path.
PRELOAD = (
    "luigi",
    "luigi.interface",
    "gokart",
    "gokart_k8s.cli",
    "gokart_k8s.entrypoint",
    "gokart_k8s.supervision.step",
    "gokart_k8s.codepackage.pod",
    "gokart_k8s.steps",
    "gokart_k8s.tasks",
    "gokart_k8s.steplog",
    "gokart_k8s.termination",
    "gokart_k8s.workspace",
    "gokart_k8s.cache.checkpoints",
)

#: Largest message: a pod's environment and command line.
MAX_MESSAGE = 4 << 20

_PATH_QUERY = "import json, sys; print(json.dumps(sys.path[1:]))"


def path_key(env: Mapping[str, str], cwd: str) -> tuple[str, ...]:
    """What a fresh interpreter's ``sys.path`` depends on beyond the start-up variables."""
    return (cwd, env.get("PYTHONPATH", ""), env.get("HOME", ""), env.get("PYTHONUSERBASE", ""))


class Server:
    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.children: set[int] = set()
        self.paths: dict[tuple[str, ...], list[str]] = {}
        self.env = dict(os.environ)
        self.preloaded: dict[str, str | None] = {}
        self.homes: dict[str, str | None] = {}
        self.luigi_defaults: dict[Any, list[str]] = {}

    def preload(self) -> None:
        for name in PRELOAD:
            importlib.import_module(name)
        import luigi.configuration

        # This process starts without LUIGI_CONFIG_PATH, so these are luigi's own defaults.
        parsers: set[Any] = set(luigi.configuration.core.PARSERS.values())
        self.luigi_defaults = {cls: list(cls._config_paths) for cls in parsers}
        from gokart_k8s.supervision import step

        step.start_worker = fork.start_worker
        self.preloaded = fork.preloaded_locations()
        self.homes = fork.preloaded_homes()

    def send(self, message: dict[str, Any]) -> None:
        self.control.sendall(json.dumps(message).encode())

    def sys_path(self, env: Mapping[str, str], cwd: str) -> list[str]:
        """``sys.path`` of ``python -m`` in ``cwd`` with ``env``: asked of a fresh interpreter once per key."""
        key = path_key(env, cwd)
        if key not in self.paths:
            done = subprocess.run(
                [sys.executable, "-c", _PATH_QUERY], env=dict(env), cwd=cwd, capture_output=True, check=True
            )
            # ``-m`` puts the working directory first (https://docs.python.org/3/library/sys.html#sys.path).
            self.paths[key] = [os.path.abspath(cwd), *json.loads(done.stdout)]
        return self.paths[key]

    def spawn(self, request: dict[str, Any], log_fd: int) -> None:
        env = {str(k): str(v) for k, v in dict(request["env"]).items()}
        cwd, tail = str(request["cwd"]), [str(a) for a in request["tail"]]
        try:
            if not os.path.isdir(cwd):  # what Popen refuses too: the container cannot start
                raise FileNotFoundError(f"No such directory: {cwd!r}")
            ready_r, ready_w = os.pipe()
        except OSError as exc:
            os.close(log_fd)
            self.send({"id": request["id"], "error": str(exc)})
            return
        path: list[str] = []  # unknown: the child finds nothing preloaded on it and execs afresh
        if fork.startup_environment(env) == fork.startup_environment(self.env):
            try:
                path = self.sys_path(env, cwd)
            except (OSError, subprocess.CalledProcessError, ValueError):
                pass
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.close(ready_r)
                os.write(ready_w, b"x")
                os.close(ready_w)
                self._leave()
            except BaseException:
                os._exit(128)
            fork.become_pod(
                log_fd=log_fd,
                tail=tail,
                env=env,
                cwd=cwd,
                sys_path=path,
                server_env=self.env,
                preloaded=self.preloaded,
                homes=self.homes,
                luigi_defaults=self.luigi_defaults,
            )
        os.close(ready_w)
        os.close(log_fd)
        os.read(ready_r, 1)  # the child has its own session (or died trying): no kill can miss it
        os.close(ready_r)
        self.children.add(pid)
        self.send({"id": request["id"], "pid": pid})

    def _leave(self) -> None:
        """In a child: drop what belongs to the server (signal handling, its socket and selector)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)
        self._selector.close()
        self.control.close()

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                self.send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})

    def serve(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        signal.set_wakeup_fd(self._wake_w)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.control, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self.send({"ready": os.getpid()})
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self.control:
                    data, fds, _flags, _addr = socket.recv_fds(self.control, MAX_MESSAGE, 1)
                    if not data:  # the kubelet closed its end: the cluster stops
                        for fd in fds:
                            os.close(fd)
                        return
                    if len(fds) != 1:
                        for fd in fds:
                            os.close(fd)
                        continue
                    self.spawn(json.loads(data), fds[0])
                else:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
            self.reap()


def main() -> None:
    # The socket arrives on stdin; stdin becomes /dev/null, as every pod's is.
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if sys.path and sys.path[0] == "":
        del sys.path[0]  # ``-c`` put the working directory first; pods get their own sys.path
    # No collection while preloading, then everything preloaded moved out of the collector's sight:
    # a child's collections would otherwise write to every object's header and copy every page the
    # server holds (https://docs.python.org/3/library/gc.html#gc.freeze). Children collect again.
    gc.disable()
    server = Server(control)
    server.preload()
    gc.freeze()
    try:
        server.serve()
    except (BrokenPipeError, ConnectionResetError):
        pass
