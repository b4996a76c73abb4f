"""What a forked child does to become a pod's container, and the pure decisions behind it.

A child forked from the warm server (:mod:`.server`) starts as a copy of that process. To be the
container the kubelet would have started with ``Popen(argv, cwd=..., env=..., start_new_session=True)``
it (:func:`become_pod`)

1. starts its own session, so its own process group (``setsid``), before the server answers the
   kubelet, so a kill of the group can never miss it (https://man7.org/linux/man-pages/man2/setsid.2.html);
2. puts ``/dev/null`` on stdin and the pod's log pipe on stdout and stderr, and drops the server's
   sockets and signal handlers;
3. changes to the pod's working directory and *replaces* ``os.environ`` with the pod's environment;
4. checks that a fresh interpreter of that environment would be this one
   (:func:`equivalence_problem`): the same interpreter start-up variables (``PYTHON*`` but
   ``PYTHONPATH``, and the locale ones that choose its encodings,
   https://docs.python.org/3/using/cmdline.html#environment-variables; and the thread-pool sizes
   native libraries read as they load, :data:`_NATIVE_THREADS`), and every module the
   server preloaded found at the same place on the pod's ``sys.path``. When not, it ``execve``\\s
   the same command line, which is then exactly the plain path;
5. takes the ``sys.path`` a fresh ``python -m`` would have in that directory and environment
   (computed once per distinct environment by the server), empties the import system's directory
   caches, and forgets luigi's configuration, which luigi reads from ``luigi.cfg`` in the working
   directory and ``LUIGI_CONFIG_PATH`` when first asked
   (https://luigi.readthedocs.io/en/stable/configuration.html); it then reads it again exactly as
   ``import luigi`` would in the pod;
6. runs ``gokart_k8s.cli.main`` on the step's arguments as ``python -m gokart_k8s`` would, and
   ends as an interpreter ends (non-daemon threads joined, ``atexit`` handlers run, streams
   flushed) with the same exit status.

The step supervisor (:mod:`gokart_k8s.supervision.step`) of a forked pod forks its worker too
(:func:`start_worker`), instead of starting a second fresh interpreter.

Nothing of the user's pipeline is imported before the fork: the server imports only libraries and
gokart_k8s's own step modules, which a fresh ``gokart-k8s step`` imports before it puts a code
package first on ``sys.path`` and imports the step's module (:mod:`gokart_k8s.entrypoint`).
"""

from __future__ import annotations

import atexit
import gc
import importlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

__all__ = [
    "ForkedWorker",
    "become_pod",
    "equivalence_problem",
    "locate",
    "preloaded_homes",
    "preloaded_locations",
    "run_as_main",
    "start_worker",
    "startup_environment",
    "step_tail",
    "suspects",
]

#: What a forked child keeps but no longer uses, so it is never freed (see :func:`become_pod`).
_inherited: list[Any] = []

#: Locale variables that choose the interpreter's file system and stdio encodings at start-up.
_LOCALE = ("LANG", "LC_ALL", "LC_CTYPE")
#: Variables a native library the server preloaded reads once, when it loads: the size of the
#: thread pools of numpy's OpenBLAS (which gokart imports) and of OpenMP, MKL, Accelerate and
#: numexpr (https://github.com/OpenMathLib/OpenBLAS/blob/develop/README.md#setting-the-number-of-threads-using-environment-variables).
#: A pod that sets one differently would otherwise run with the server's pools.
_NATIVE_THREADS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMEXPR_MAX_THREADS",
)


def step_tail(argv: Sequence[str], executable: str) -> list[str] | None:
    """The ``gokart-k8s`` arguments of a step's container command line, or None for any other.

    ``argv`` is the command line as the kubelet maps it (``gokart-k8s`` and ``python -m gokart_k8s``
    both become ``[executable, "-m", "gokart_k8s", ...]``); only ``step`` is run in-process.
    """
    if len(argv) >= 4 and argv[0] == executable and list(argv[1:3]) == ["-m", "gokart_k8s"] and argv[3] == "step":
        return list(argv[3:])
    return None


def startup_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables an interpreter (and the native libraries it preloaded) read when it starts, but
    ``PYTHONPATH`` (``sys.path`` is recomputed)."""
    return {
        k: v
        for k, v in env.items()
        if (k.startswith("PYTHON") and k != "PYTHONPATH") or k in _LOCALE or k in _NATIVE_THREADS
    }


def equivalence_problem(
    server_env: Mapping[str, str],
    pod_env: Mapping[str, str],
    preloaded: Mapping[str, str | None],
    find: Callable[[str], str | None],
) -> str | None:
    """Why a fresh interpreter of ``pod_env`` would differ from this preloaded one; None when it would not.

    ``preloaded`` maps each top-level module the server imported to where it came from; ``find``
    says where the pod's ``sys.path`` finds a module now.
    """
    ours, theirs = startup_environment(server_env), startup_environment(pod_env)
    if ours != theirs:
        names = sorted(k for k in {*ours, *theirs} if ours.get(k) != theirs.get(k))
        return f"interpreter start-up variables differ: {', '.join(names)}"
    for name, where in preloaded.items():
        found = find(name)
        if found != where:
            return f"module {name} is {found or 'not found'} for the pod, {where} in the warm interpreter"
    return None


def _where(spec: Any) -> str | None:
    origin = getattr(spec, "origin", None)
    if isinstance(origin, str) and os.path.isabs(origin):
        return os.path.realpath(origin)
    return origin if isinstance(origin, str) else None


def locate(name: str) -> str | None:
    """Where the import system would find top-level module ``name`` now (its file, or its kind)."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, None)
        except Exception:  # a third-party finder that cannot answer: ask the next one
            continue
        if spec is not None:
            return _where(spec)
    return None


def preloaded_locations() -> dict[str, str | None]:
    """Every imported top-level module that came from a file: name -> where (see :func:`locate`).

    Only modules an import by that name finds here: some extension modules register themselves
    under a top-level name from inside a package (Cython's ``_cyutility`` in pandas), and no
    ``sys.path`` of a pod would find those either.
    """
    out: dict[str, str | None] = {}
    for name, module in list(sys.modules.items()):
        if "." in name or name == "__main__" or module is None:
            continue
        spec = getattr(module, "__spec__", None)
        if spec is None:
            continue
        where = _where(spec)
        if (where is None or os.path.isabs(where)) and locate(name) == where:
            out[name] = where
    return out


def home_of(where: str | None, is_package: bool) -> str | None:
    """The ``sys.path`` entry a module found at ``where`` was found in (None when it has no file)."""
    if where is None:
        return None
    parent = os.path.dirname(where)
    return os.path.dirname(parent) if is_package else parent


def preloaded_homes() -> dict[str, str | None]:
    """The ``sys.path`` entry of each module of :func:`preloaded_locations`."""
    homes: dict[str, str | None] = {}
    for name, where in preloaded_locations().items():
        spec = getattr(sys.modules[name], "__spec__", None)
        homes[name] = home_of(where, getattr(spec, "submodule_search_locations", None) is not None)
    return homes


def suspects(path: Sequence[str], homes: Mapping[str, str | None]) -> list[str]:
    """The preloaded modules that ``path`` might find elsewhere: those whose entry is not on it, and
    those with something of their name in an entry before theirs. One directory listing per entry
    instead of an import-system search per module; :func:`locate` then decides for these few."""
    position: dict[str, int] = {}
    for index, entry in enumerate(path):
        position.setdefault(os.path.realpath(entry or "."), index)
    listings: dict[int, set[str]] = {}

    def names_in(index: int) -> set[str]:
        if index not in listings:
            try:
                listings[index] = {f.split(".", 1)[0] for f in os.listdir(path[index] or ".")}
            except OSError:
                listings[index] = set()
        return listings[index]

    out = []
    for name, home in homes.items():
        at = position.get(home) if home is not None else None
        if at is None or any(name in names_in(i) for i in range(at)):
            out.append(name)
    return out


def _exit_status(exc: SystemExit) -> int:
    """The status an interpreter exits with for ``SystemExit`` (https://docs.python.org/3/library/exceptions.html#SystemExit)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _finish(status: int) -> NoReturn:
    """End this process as the interpreter ends: threads joined, ``atexit`` handlers run, streams flushed."""
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # what Py_FinalizeEx calls first
    except Exception:
        pass
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)


def run_as_main(tail: Sequence[str]) -> NoReturn:
    """Run ``python -m gokart_k8s *tail`` in this process, then end it with that command's status."""
    import gokart_k8s.cli

    sys.argv = [os.path.join(os.path.dirname(gokart_k8s.cli.__file__), "__main__.py"), *tail]
    try:
        status = int(gokart_k8s.cli.main(list(tail)) or 0) & 0xFF
    except SystemExit as exc:
        status = _exit_status(exc)
    except KeyboardInterrupt:
        # An interpreter stopped by Ctrl-C dies of SIGINT (https://docs.python.org/3/using/cmdline.html).
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        status = 130
    except BaseException:
        traceback.print_exc()
        status = 1
    _finish(status)


def reset_luigi_config(defaults: Mapping[Any, Sequence[str]], env: Mapping[str, str]) -> None:
    """Forget luigi's configuration and search paths; read them again as ``import luigi`` would here.

    luigi keeps one parser instance per format and a class-level list of files, to which importing
    ``luigi.configuration`` appends ``LUIGI_CONFIG_PATH`` (luigi/configuration/core.py).
    """
    for parser_class, paths in defaults.items():
        parser_class._config_paths = list(paths)
        parser_class._instance = None
    if "LUIGI_CONFIG_PATH" in env:
        import luigi.configuration

        luigi.configuration.add_config_path(env["LUIGI_CONFIG_PATH"])


def _luigi_imports_alike() -> bool:
    """Whether ``import luigi`` under the pod's configuration imports what it did in the server.

    luigi reads one setting when imported: ``[core] autoload_range`` (default true) decides whether
    it imports its range tools (luigi/__init__.py); the server read luigi's defaults.
    """
    import luigi.configuration

    return bool(luigi.configuration.get_config().getboolean("core", "autoload_range", True))


def become_pod(
    *,
    log_fd: int,
    tail: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    sys_path: Sequence[str],
    server_env: Mapping[str, str],
    preloaded: Mapping[str, str | None],
    homes: Mapping[str, str | None],
    luigi_defaults: Mapping[Any, Sequence[str]],
) -> NoReturn:
    """Turn this freshly forked, already ``setsid`` child into the pod's container (module docstring)."""
    try:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        for fd in {devnull, log_fd} - {0, 1, 2}:
            os.close(fd)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        argv = [sys.executable, "-m", "gokart_k8s", *tail]
        sys.path[:] = list(sys_path)
        # A fresh interpreter's finder cache starts empty. A new dict, not clear(): freeing the
        # server's finders (and the directory listings they hold) writes to every page they sit
        # on, a third of this child's copy-on-write faults. The old dict stays referenced.
        _inherited.append(sys.path_importer_cache)
        sys.path_importer_cache = {}
        importlib.invalidate_caches()
        doubtful = {name: preloaded[name] for name in suspects(sys_path, homes)}
        if equivalence_problem(server_env, env, doubtful, locate) is not None:
            os.execve(sys.executable, argv, dict(env))
        import tempfile

        tempfile.tempdir = None  # computed from TMPDIR when first needed, as in a fresh process
        gc.enable()  # the server froze what it preloaded (see .server) and collects nothing itself
        reset_luigi_config(luigi_defaults, env)
        if not _luigi_imports_alike():
            os.execve(sys.executable, argv, dict(env))
    except BaseException:
        traceback.print_exc()
        os._exit(128)
    run_as_main(tail)


class ForkedWorker:
    """The step supervisor's worker, forked from it: the part of ``subprocess.Popen`` the supervisor uses."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.0005
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired([str(self.pid)], timeout or 0.0)
            # Sleep in select, which a signal (SIGTERM to forward) interrupts after its handler ran.
            delay = min(delay * 2, 0.05, left if left is not None else 0.05)
            select.select([], [], [], delay)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def start_worker(
    argv: Sequence[str],
    env: Mapping[str, str],
    preexec: Callable[[], None] | None,
    *,
    stdout: int,
    stderr: int,
    close: Sequence[int],
) -> ForkedWorker:
    """Fork the supervisor's worker: ``argv`` (``[python, -m, gokart_k8s, step, ...]``) run in-process.

    As ``Popen(stdout=..., stderr=...)`` would, the child gets ``stdout`` and ``stderr`` as its fds 1
    and 2 (the supervisor's log relay, :mod:`gokart_k8s.supervision.termination_log`); the other
    ends, named in ``close``, which ``exec`` would have closed, are closed here.
    """
    tail = list(argv[3:])
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    gc.freeze()  # what the worker inherits stays shared (see .server)
    pid = os.fork()
    if pid == 0:
        try:
            # As after execve: default dispositions for what the supervisor handles.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            os.dup2(stdout, 1)
            os.dup2(stderr, 2)
            for fd in {stdout, stderr, *close} - {0, 1, 2}:
                os.close(fd)
            os.environ.clear()
            os.environ.update(env)
            if preexec is not None:
                preexec()
        except BaseException:
            traceback.print_exc()
            os._exit(128)
        run_as_main(tail)
    return ForkedWorker(pid)
