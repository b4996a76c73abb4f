"""Submission: Jobs are created by a small pool of threads, so the driver's loop never waits on a POST.

The driver's loop is the single owner of every step's state; it hands a Job manifest to a
:class:`Submitter` and goes on applying watch changes. Up to ``workers`` POSTs are in flight at
once (each a request of its own on the client's keep-alive connection pool, so one slow answer
does not hold the others back), and each answer comes back as a :class:`Submitted` the loop takes
with :meth:`Submitter.results` -- the loop, not a worker, then decides what it means (follow,
adopt, fail), exactly as it did when it made the call itself. ``wake`` is called after each answer
so the loop does not sleep through it.

The guarantees the driver keeps with it:

- **At most one submission per step at a time**: :meth:`Submitter.submit` refuses a key that is
  already in flight, and the driver submits again only after the answer (an unreachable cluster:
  retried on a later turn; a 409 AlreadyExists is answered by the adapter with the existing Job,
  which the driver adopts per :mod:`gokart_k8s.cluster.adoption`).
- **No Job the driver does not know of**: :meth:`Submitter.close` stops queued submissions before
  they are sent and waits for the ones already sent, so after an interrupt the driver deletes or
  names every Job a POST created. A POST still unanswered after the wait is reported by name (the
  name is deterministic), so it is deleted or named too.
- A name still taken by a Job being deleted (by us or an earlier driver: its name is free only once
  the garbage collector is done) is retried every ``retry_seconds`` for up to ``deleting_wait_seconds``,
  in the worker, not on the loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gokart_k8s.cluster import ClusterAPI
from gokart_k8s.errors import ClusterError

__all__ = ["Submitted", "Submitter"]


@dataclass(frozen=True)
class Submitted:
    """The answer to one submission: the Job (``created`` False if it existed), or the error raised."""

    key: str
    name: str
    job: dict[str, Any] | None = None
    created: bool = False
    #: What the create raised (a ClusterError for an API answer; anything else is a bug to re-raise).
    error: BaseException | None = None
    #: True if the submission was dropped by :meth:`Submitter.close` before it was sent: no Job.
    cancelled: bool = False


@dataclass(frozen=True)
class _Task:
    key: str
    name: str
    manifest: Mapping[str, Any]


class Submitter:
    """Creates Jobs on ``workers`` threads; answers are taken by the owner with :meth:`results`."""

    def __init__(
        self,
        api: ClusterAPI,
        namespace: str,
        *,
        workers: int,
        wake: Callable[[], None] = lambda: None,
        retry_seconds: float = 0.5,
        deleting_wait_seconds: float = 30.0,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._workers = max(1, workers)
        self._wake = wake
        self._retry = retry_seconds
        self._deleting_wait = deleting_wait_seconds
        self._tasks: queue.Queue[_Task | None] = queue.Queue()
        self._answers: queue.Queue[Submitted] = queue.Queue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        #: key -> name of every submission not yet answered (queued or sent).
        self._pending: dict[str, str] = {}
        #: keys whose POST has been sent (a worker took them), not yet answered.
        self._sent: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()

    def submit(self, key: str, name: str, manifest: Mapping[str, Any]) -> None:
        """Queue the creation of Job ``name`` for ``key`` (a step); refused while ``key`` is in flight."""
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("the submitter is closed")
            if key in self._pending:
                raise RuntimeError(f"{key} already has a submission in flight ({self._pending[key]})")
            self._pending[key] = name
            if len(self._threads) < self._workers and len(self._threads) < len(self._pending):
                thread = threading.Thread(
                    target=self._work, name=f"gokart-k8s-submit-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._tasks.put(_Task(key, name, manifest))

    def in_flight(self) -> dict[str, str]:
        """key -> Job name of every submission not yet answered."""
        with self._lock:
            return dict(self._pending)

    def results(self) -> list[Submitted]:
        """Every answer that arrived since the last call, without waiting."""
        out: list[Submitted] = []
        while True:
            try:
                out.append(self._answers.get_nowait())
            except queue.Empty:
                return out

    def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every submission is answered; False if some still are not."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                if not self._idle.wait(max(0.0, deadline - time.monotonic())):
                    break
            return not self._pending

    def close(self, timeout: float) -> list[str]:
        """Send nothing more; wait up to ``timeout`` s for the POSTs already sent to be answered.

        Their answers (and a ``cancelled`` one for each submission never sent) are then in
        :meth:`results`. Returns the names of Jobs whose POST is still unanswered: they may exist.
        """
        with self._lock:
            self._closed.set()
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None:
                self._answer(Submitted(task.key, task.name, cancelled=True), sent=False)
        for _ in self._threads:
            self._tasks.put(None)  # each worker ends once its current POST is answered
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._sent and self._idle.wait(max(0.0, deadline - time.monotonic())):
                pass
            return sorted(self._pending[k] for k in self._sent)

    # --- in the workers -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            with self._lock:
                if self._closed.is_set():
                    cancelled = True
                else:
                    cancelled = False
                    self._sent.add(task.key)
            if cancelled:
                self._answer(Submitted(task.key, task.name, cancelled=True), sent=False)
                continue
            try:
                answer = self._create(task)
            except BaseException as exc:  # handed to the owner, who decides; a worker never dies silently
                answer = Submitted(task.key, task.name, error=exc)
            self._answer(answer, sent=True)

    def _create(self, task: _Task) -> Submitted:
        # A Job we (or a previous driver) just deleted may still be going away: its name is taken
        # until the garbage collector is done. Wait for it rather than adopt a dying Job.
        deadline = time.monotonic() + self._deleting_wait
        while True:
            job, created = self._api.create_job(self._namespace, task.manifest)
            if created or not (job.get("metadata") or {}).get("deletionTimestamp"):
                return Submitted(task.key, task.name, job=job, created=created)
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"Job {task.name} is still being deleted after {self._deleting_wait:g} s; "
                    "delete it by hand and rerun."
                )
            if self._closed.wait(self._retry):
                return Submitted(task.key, task.name, cancelled=True)

    def _answer(self, answer: Submitted, *, sent: bool) -> None:
        with self._idle:
            # No longer in flight before the owner can see the answer: it may submit the key again at once.
            self._pending.pop(answer.key, None)
            if sent:
                self._sent.discard(answer.key)
            self._answers.put(answer)
            self._idle.notify_all()
        self._wake()
