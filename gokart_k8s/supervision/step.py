"""The in-pod command as two processes: a supervising parent that holds the SIGTERM budget.

Why: Python runs a signal handler only between bytecodes of the main thread. A step inside one
long C call (a NumPy/BLAS operation, a compression, a native library) does not return to the
interpreter, so the handler of :mod:`gokart_k8s.termination` -- and the watchdog thread it starts
-- wait until that call returns (https://docs.python.org/3/library/signal.html#execution-of-python-signal-handlers).
Past the pod's grace period the kubelet sends SIGKILL and the attempt ends with 137 and no word
of why. A parent process that runs no step code is never stuck that way, so it keeps the promise:

1. ``gokart-k8s step ...`` starts the same command line again as a *worker* child (marked by
   :data:`WORKER_ENV`), in the same process group, with stdin, stdout and stderr inherited, and
   asks the kernel to SIGKILL the worker if the supervisor dies (:mod:`.parentdeath`);
2. on SIGTERM (eviction, preemption; on a real cluster only PID 1 -- this supervisor -- receives
   it, https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/) it forwards
   SIGTERM to the worker, which saves its final checkpoint, and starts counting the budget
   (``GOKART_K8S_TERMINATION_BUDGET_SECONDS``). SIGINT is not forwarded: a terminal's Ctrl-C
   reaches the whole process group, worker included, and a second one would cut its cleanup short;
3. when the worker exits, the supervisor exits with the worker's code (128+N for signal N, as a
   shell reports it); when the budget is spent first, it SIGKILLs the worker and exits with
   ``EXIT_EVICTED`` (143), so the driver counts an eviction and the next attempt resumes from the
   last periodic checkpoint.

The final checkpoint is therefore best effort: a worker inside a C call for the whole budget never
writes it. The periodic save (``Checkpoint.save(..., every=...)``) is the guarantee.

The worker's stdout and stderr are pipes of a :class:`~.termination_log.Relay`, which copies them
unbuffered, in order, to the supervisor's own (the container's log is what it was) and keeps the
end: once the worker has ended (by itself or killed when the budget is spent), the supervisor
waits up to ``_DRAIN_SECONDS`` for the pipes to end -- a grandchild the worker left may hold them
open -- and writes the log, or its last lines, as the container's termination message, so the
driver can show a short step's log without asking the API server for it
(:mod:`.termination_log`). The exit code is the same either way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Protocol

from gokart_k8s.conventions import EXIT_EVICTED
from gokart_k8s.supervision.parentdeath import PARENT_ENV, die_with_parent, die_with_parent_from_environment
from gokart_k8s.supervision.termination_log import Relay, message_path, write_message

__all__ = ["WORKER_ENV", "is_worker", "supervise"]

#: Set in the worker's environment: this process runs the step itself.
WORKER_ENV = "GOKART_K8S_STEP_WORKER"

#: How long the supervisor waits, once its worker ended, for the worker's output pipes to end.
_DRAIN_SECONDS = 2.0


class Worker(Protocol):
    """What the supervisor uses of its worker (``subprocess.Popen`` has it)."""

    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class WorkerStarter(Protocol):
    """Starts the worker: ``argv`` with ``env``, ``preexec`` run in the child, the fds ``stdout`` and
    ``stderr`` as its 1 and 2, and the descriptors ``close`` closed in it."""

    def __call__(
        self,
        argv: list[str],
        env: dict[str, str],
        preexec: Callable[[], None] | None,
        *,
        stdout: int,
        stderr: int,
        close: Sequence[int],
    ) -> Worker: ...


#: How the worker starts, when not by ``Popen``. The embedded cluster's warm interpreter sets it in
#: the pods it forks (:mod:`gokart_k8s.localcluster.warm.fork`): it has imported what the worker
#: needs, so it forks the worker instead of starting a fresh one.
start_worker: WorkerStarter | None = None


def is_worker() -> bool:
    """True in the worker child of :func:`supervise` (the process that runs the step's code)."""
    return os.environ.get(WORKER_ENV) == "1"


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def supervise(argv: Sequence[str], budget_seconds: float, *, poll_seconds: float = 0.05) -> int:
    """Run ``argv`` as the worker and return the attempt's exit code (see the module docstring)."""
    # Started by the embedded cluster's kubelet: die with it, even if it is SIGKILLed.
    die_with_parent_from_environment(signal.SIGKILL)
    env = {k: v for k, v in os.environ.items() if k != PARENT_ENV}
    env[WORKER_ENV] = "1"
    deadline: float | None = None
    worker: Worker | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal deadline
        if deadline is None:
            deadline = time.monotonic() + budget_seconds
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)

    def ignore(signum: int, frame: FrameType | None) -> None:
        # A handler, not SIG_IGN: an ignored disposition would be inherited by the worker.
        pass

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
        signal.SIGINT: signal.signal(signal.SIGINT, ignore),
    }
    if os.isatty(1):
        env.setdefault("PYTHONUNBUFFERED", "1")  # a pipe now, where a terminal showed each line at once
    relay = Relay()
    ended = False
    try:
        preexec = die_with_parent(signal.SIGKILL)
        if start_worker is not None:
            worker = start_worker(
                list(argv), env, preexec, stdout=relay.stdout, stderr=relay.stderr, close=relay.worker_closes
            )
        else:
            worker = subprocess.Popen(list(argv), env=env, preexec_fn=preexec, stdout=relay.stdout, stderr=relay.stderr)
        relay.start()
        if deadline is not None:  # SIGTERM arrived while the worker was being started
            worker.send_signal(signal.SIGTERM)
        while True:
            timeout = poll_seconds if deadline is not None else 1.0
            try:
                code = _exit_code(worker.wait(timeout))
                ended = True
                return code
            except subprocess.TimeoutExpired:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                relay.say(
                    f"gokart-k8s step: the termination budget of {budget_seconds:g} s is spent and the step "
                    f"has not stopped (its code may be inside a long C call); stopping it now with {EXIT_EVICTED}. "
                    "It resumes from its last periodic checkpoint."
                )
                worker.kill()
                worker.wait()
                ended = True
                return EXIT_EVICTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        relay.finish(_DRAIN_SECONDS)
        if ended:
            # Only for a worker that ended: after an error of the supervisor's own, the kubelet's
            # FallbackToLogsOnError shows the log's tail, traceback included.
            write_message(message_path(os.environ), relay.message())
