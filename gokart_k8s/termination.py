"""SIGTERM inside a step: save a final checkpoint within the grace budget, then exit 143.

Eviction, node drain and Spot preemption send SIGTERM, wait ``terminationGracePeriodSeconds``
(GKE Spot: about 15 s in practice, https://cloud.google.com/kubernetes-engine/docs/concepts/spot-vms#termination-and-graceful-shutdown)
and then SIGKILL (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination).
:func:`install_termination_handler` turns that into an orderly stop that works with a plain
training loop, in this order:

1. mark the process as terminated (:func:`was_terminated`, :attr:`TerminationHandler.terminated`);
2. start a watchdog that ends the process with ``EXIT_EVICTED`` (143) when the budget is spent,
   so the pod exits with the eviction code before SIGKILL, even if the step's code hangs;
3. run the termination hooks: every live :class:`~gokart_k8s.cache.checkpoints.Checkpoint` saves
   its final state (its ``on_termination`` provider, or the last state ``save(..., every=...)``
   skipped);
4. raise :class:`StepTerminated` (a ``BaseException``, so ``except Exception`` in user code does
   not swallow it) in the main thread, so ``finally`` blocks and context managers run.

If SIGTERM arrives while a checkpoint is being written, steps 3-4 wait until that write is
finished (:func:`critical_section`), so a final save never interleaves with a running one.

luigi's worker catches every exception from ``run()`` (``except BaseException`` in
``luigi/worker.py``) and reports the task as FAILED, so the in-pod command cannot rely on the
exception reaching it: it asks ``handler.exit_code_or(code)`` instead, which answers 143 once
SIGTERM was received. Run the step in the main thread of the process that installed the handler
(luigi with one worker and no ``force_multiprocessing``): Python delivers signals to the main thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from gokart_k8s.conventions import EXIT_EVICTED

__all__ = [
    "BUDGET_ENV",
    "DEFAULT_BUDGET_SECONDS",
    "StepTerminated",
    "TerminationHandler",
    "add_termination_hook",
    "critical_section",
    "install_termination_handler",
    "was_terminated",
]

logger = logging.getLogger(__name__)

#: The step pod's environment variable that carries ``termination_budget_seconds``; every step
#: Job manifest sets it (:func:`gokart_k8s.manifests.build_job_manifest`).
BUDGET_ENV = "GOKART_K8S_TERMINATION_BUDGET_SECONDS"
#: The budget of a step started without :data:`BUDGET_ENV` (the settings' default).
DEFAULT_BUDGET_SECONDS = 10.0


class StepTerminated(BaseException):
    """The step received SIGTERM (eviction or preemption); its final checkpoint has been saved."""


_lock = threading.RLock()
_hooks: list[Callable[[], None]] = []
_handler: TerminationHandler | None = None
_terminated = False
_depth = 0  # nesting of critical sections (main thread only; signals run there)
_deferred = False


def was_terminated() -> bool:
    """True once this process received SIGTERM through an installed handler."""
    return _terminated


def add_termination_hook(hook: Callable[[], None]) -> Callable[[], None]:
    """Run ``hook`` on SIGTERM before :class:`StepTerminated` is raised; returns a remover."""
    with _lock:
        _hooks.append(hook)

    def remove() -> None:
        with _lock, contextlib.suppress(ValueError):
            _hooks.remove(hook)

    return remove


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """Defer the termination hooks and :class:`StepTerminated` until the block has finished."""
    global _depth, _deferred
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _deferred:
            _deferred = False
            if _handler is not None:
                _handler._finish()


class TerminationHandler:
    """What :func:`install_termination_handler` returns."""

    def __init__(self, budget_seconds: float, exit_code: int) -> None:
        self.budget_seconds = budget_seconds
        self.exit_code = exit_code
        self.received_at: float | None = None
        self._previous: Any = None
        self._finishing = False

    @property
    def terminated(self) -> bool:
        return self.received_at is not None

    def exit_code_or(self, code: int) -> int:
        """The process exit code: ``EXIT_EVICTED`` after SIGTERM, otherwise ``code``."""
        return self.exit_code if self.terminated else code

    def uninstall(self) -> None:
        """Restore the previous SIGTERM disposition (tests, or a step that ends normally)."""
        global _handler
        with _lock:
            if _handler is self:
                signal.signal(signal.SIGTERM, self._previous)
                _handler = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        global _terminated, _deferred
        if self.received_at is not None:
            return  # already stopping; a second SIGTERM changes nothing
        self.received_at = time.monotonic()
        _terminated = True
        logger.warning(
            "SIGTERM received (eviction or preemption): saving checkpoints, exiting with %d within %.0f s.",
            self.exit_code,
            self.budget_seconds,
        )
        threading.Thread(target=self._watchdog, name="gokart-k8s-termination-watchdog", daemon=True).start()
        if _depth > 0:
            _deferred = True  # a checkpoint is being written; critical_section() finishes the job
            return
        self._finish()

    def _finish(self) -> None:
        if self._finishing:
            return
        self._finishing = True
        with _lock:
            hooks = list(_hooks)
        for hook in hooks:
            try:
                hook()
            except Exception:
                logger.exception("A termination hook failed; continuing with the others.")
        raise StepTerminated(
            "The step received SIGTERM (eviction or preemption) and stopped after saving its "
            "checkpoints; it resumes from them when retried."
        )

    def _watchdog(self) -> None:
        time.sleep(self.budget_seconds)
        logger.error("Termination budget of %.0f s spent; exiting with %d now.", self.budget_seconds, self.exit_code)
        logging.shutdown()
        os._exit(self.exit_code)  # no cleanup: SIGKILL would follow anyway


def install_termination_handler(budget_seconds: float = 10.0, *, exit_code: int = EXIT_EVICTED) -> TerminationHandler:
    """Handle SIGTERM as described in the module docstring; idempotent, call from the main thread.

    ``budget_seconds`` must stay below the pod's grace period (GKE Spot: keep it under ~13 s) so
    the process exits with ``exit_code`` before the kubelet sends SIGKILL.
    """
    global _handler
    if budget_seconds <= 0:
        raise ValueError(f"budget_seconds must be positive, got {budget_seconds}.")
    with _lock:
        if _handler is not None:
            _handler.budget_seconds = budget_seconds
            _handler.exit_code = exit_code
            return _handler
        handler = TerminationHandler(budget_seconds, exit_code)
        handler._previous = signal.signal(signal.SIGTERM, handler._on_sigterm)
        _handler = handler
        return handler
