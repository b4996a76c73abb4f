"""The driver: run a whole step graph as Kubernetes Jobs and follow them all with one watch.

One process, one loop, no poller per step:

1. **Preflight.** :meth:`ClusterAPI.check_access` fails with advice (no kubeconfig, unreachable,
   forbidden namespace) before any step runs.
2. **Cache.** Steps already complete are ``cached`` and never submitted.
3. **Submit.** A step whose requirements are all done is submitted as a Job with a deterministic
   name (:func:`gokart_k8s.conventions.job_name`), while fewer than ``max_concurrent_steps`` are in
   flight. The name holds the step's *identity* (:func:`~gokart_k8s.conventions.step_identity`:
   cache, image, pod settings), so drivers writing to different caches never share Jobs. Jobs an
   earlier driver left (either variant, the original or ``-od``) are handled by the rules of
   :mod:`gokart_k8s.cluster.adoption`: a running one is *adopted* and followed, at most one is
   ever active, and a replacement is submitted only after the pods of the Job it replaces have
   stopped. Jobs are followed by uid, so the deletion of a Job this driver replaced is never
   mistaken for the loss of its replacement. The POSTs themselves are sent by a small pool
   (:mod:`gokart_k8s.cluster.submission`, ``submit_concurrency`` at once), so the loop never waits
   on one API call at a time; their answers are applied on the loop, the one owner of step state.
4. **Follow.** A :class:`~gokart_k8s.cluster.watching.Watcher` keeps one watch on the Jobs of the
   run's identity and one on their pods; every change is classified (:mod:`gokart_k8s.cluster.outcomes`). With a
   ``log_sink``, a pod Running for ``live_log_after_seconds`` has its log streamed live
   (``follow=true``, one thread per such pod, at most ``max_concurrent_steps``) and handed over
   line by line with the step's name. A pod that ends sooner usually brings its whole log in its
   termination message (the step supervisor writes it, :mod:`gokart_k8s.supervision.termination_log`),
   shown then with no request; a pod without that, or whose stream broke, is read once. All of it
   happens off the loop (:mod:`gokart_k8s.cluster.logs`): a step is decided once its pods' logs
   are in (the advice may quote them), at most a few seconds later. Without a sink, only a failed
   pod's last lines are needed, for the advice: from its termination message, else read.
5. **Evictions never spend the user's retry budget.** The Job's podFailurePolicy ``Ignore`` rule
   lets the Job controller replace an evicted pod by itself; the driver only counts evictions per
   step. After ``fallback_after_evictions`` a tolerant step on Spot is moved to on-demand capacity
   (its Job deleted, a new one ``<name>-od`` submitted), the idea of flyte's
   interruptible-failure-threshold; after more than ``eviction_retries`` the step fails.
6. **Done means in this run's cache.** A step is ``succeeded`` only once ``is_complete`` finds its
   output in the cache this driver uses; a Job that succeeded without that is a failure.
   **Failures** carry advice (:class:`~gokart_k8s.errors.StepFailedError`). As in luigi, the run
   goes on with steps that do not depend on a failed one; its dependents are ``skipped``.
   A pod Unschedulable for longer than ``unschedulable_timeout_seconds`` and an image that cannot
   be pulled fail the step and delete its Job.
   Every pod of a step is one :class:`~gokart_k8s.cluster.outcomes.Attempt` in its report.
7. **Ctrl-C** never orphans Jobs silently: ``on_interrupt`` decides whether in-flight Jobs are
   deleted or kept, and kept ones are named with the command that deletes them.
8. **The API server gone.** Failed watches and requests are reported at once ("cluster
   unreachable, retrying"), retried with backoff for ``api_unreachable_timeout_seconds``, then the
   run stops with an error (``RunReport.error``) that names the Jobs that may still be running;
   a rerun adopts them.
"""

from __future__ import annotations

import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gokart_k8s.cluster import ClusterAPI
from gokart_k8s.cluster.adoption import decide
from gokart_k8s.cluster.logs import LogReader
from gokart_k8s.cluster.outcomes import Attempt, Outcome, OutcomeKind, attempt_of, classify, classify_pod
from gokart_k8s.cluster.submission import Submitted, Submitter
from gokart_k8s.cluster.watching import Change, Watcher
from gokart_k8s.conventions import LABEL_IDENTITY, job_name, step_identity
from gokart_k8s.errors import (
    ClusterError,
    ClusterUnreachableError,
    GokartK8sError,
    StepEvictedError,
    StepFailedError,
)
from gokart_k8s.eviction import Eviction
from gokart_k8s.manifests import build_job_manifest, job_selector
from gokart_k8s.platforms import PlatformProfile
from gokart_k8s.settings import Settings
from gokart_k8s.steps import Step, StepSpec
from gokart_k8s.supervision.termination_log import read_message
from gokart_k8s.workspace import WORKSPACE_ENV

__all__ = ["Attempt", "ProgressSink", "RunObserver", "RunReport", "StepReport", "fallback_job_name", "run_steps"]

#: Log lines kept per step for the advice of a failed step.
_LOG_TAIL = 20
#: How long the loop waits for a change before it checks timers (seconds).
_TICK_SECONDS = 0.5
#: How long a Job seen ended waits for its pods' final states before the step is decided anyway.
_POD_END_GRACE_SECONDS = 10.0
_JOB_UID_LABELS = ("batch.kubernetes.io/controller-uid", "controller-uid")
#: Silence on both watches after which the watcher asks the API server whether it still answers,
#: and how long it waits for the answer before it reports the server unreachable.
_PROBE_SECONDS = 15.0
_PROBE_TIMEOUT_SECONDS = 10.0
#: How long a replacement waits for the pods of the Job it replaces, beyond their grace period.
_REPLACE_MARGIN_SECONDS = 120.0


class ProgressSink(Protocol):
    """Receives step states: cached, pending, submitted, running, evicted, succeeded, failed, skipped."""

    def step_state(self, spec: StepSpec, state: str, detail: str = "") -> None: ...


class RunObserver(ProgressSink, Protocol):
    """Also told of every pod of the run (the run record, :mod:`gokart_k8s.history`): each change
    as the watch reports it, and each end with the driver's classification."""

    def pod_seen(self, spec: StepSpec, pod: Mapping[str, Any], *, deleted: bool = False) -> None: ...

    def pod_ended(self, spec: StepSpec, pod: Mapping[str, Any], outcome: Outcome) -> None: ...


@dataclass
class StepReport:
    """How one step went."""

    spec: StepSpec
    #: cached, succeeded, failed, skipped, interrupted, or not-run (the run stopped before it).
    state: str = "not-run"
    outcome: Outcome | None = None
    #: Pods started for the step (each eviction or retry starts one more).
    attempts: int = 0
    #: Every pod of the step, in the order they ended (the last may still be running when the run stopped).
    attempt_log: list[Attempt] = field(default_factory=list)
    evictions: int = 0
    #: True if the step was moved to on-demand capacity after evictions.
    fallback: bool = False
    #: The step's (last) Job name.
    job: str | None = None
    #: True if the Job was submitted by an earlier driver and adopted by this one.
    adopted: bool = False
    seconds: float | None = None
    error: GokartK8sError | None = None


@dataclass
class RunReport:
    """Every step's report, in step order; ``ok`` when all are cached or succeeded."""

    steps: list[StepReport]
    interrupted: bool = False
    #: Jobs left running on the cluster after an interrupt (names).
    kept_jobs: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    #: Why the run stopped before its steps ended (the cluster unreachable for too long), if it did.
    error: GokartK8sError | None = None

    @property
    def ok(self) -> bool:
        return (
            not self.interrupted and self.error is None and all(s.state in ("cached", "succeeded") for s in self.steps)
        )

    def failures(self) -> list[StepReport]:
        return [s for s in self.steps if s.state == "failed"]

    def by_family(self, family: str) -> list[StepReport]:
        return [s for s in self.steps if s.spec.family == family]


def fallback_job_name(spec: StepSpec, identity: str = "") -> str:
    """The deterministic name of a step's on-demand Job: its Job name with ``-od``, at most 63 chars."""
    return job_name(spec.family, spec.unique_id, identity, variant="od")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _uid(obj: Mapping[str, Any]) -> str:
    return str(_meta(obj).get("uid") or "")


def _job_uid_of_pod(pod: Mapping[str, Any]) -> str | None:
    """The uid of the Job that owns ``pod``: a name is reused by a replacement Job, a uid never is."""
    for owner in _meta(pod).get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("uid"):
            return str(owner["uid"])
    labels = _meta(pod).get("labels") or {}
    for key in _JOB_UID_LABELS:
        if labels.get(key):
            return str(labels[key])
    return None


def _termination_message(pod: Mapping[str, Any]) -> str | None:
    """The ``state.terminated.message`` of the pod's container (a step pod has one), None when none."""
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        message = ((cs.get("state") or {}).get("terminated") or {}).get("message")
        if message:
            return str(message)
    return None


def _pod_stopped(pod: Mapping[str, Any], deleted: bool) -> bool:
    return deleted or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@dataclass
class _Run:
    """The driver's state of one step."""

    step: Step
    report: StepReport
    state: str = "waiting"  # waiting, in-flight, done
    #: The Job followed (name and uid); None while a submission waits.
    job: str | None = None
    job_uid: str | None = None
    on_demand: bool = False
    spot: bool = False
    #: A submission waiting for the pods of replaced Jobs to stop: its on_demand flag.
    pending: bool | None = None
    #: The Job name whose POST is in flight (cluster.submission), and whether its placement is Spot.
    submitting: str | None = None
    submitting_spot: bool = False
    pending_since: float | None = None
    #: Replaced Jobs: uid -> name (deletion retried while the cluster does not answer).
    replaced: dict[str, str] = field(default_factory=dict)
    undeleted: set[str] = field(default_factory=set)
    counted: set[str] = field(default_factory=set)
    #: Pods already in the report's attempt log.
    recorded: set[str] = field(default_factory=set)
    pod_uids: set[str] = field(default_factory=set)
    started: float | None = None
    unschedulable_since: float | None = None
    #: When the Job was first seen ended while one of its pods had not yet been seen ended.
    ending_since: float | None = None
    last_state: tuple[str, str] = ("", "")
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=_LOG_TAIL))
    #: Ended pods whose log is not all delivered yet: the step is decided once it is (cluster.logs).
    awaiting_logs: bool = False
    #: Pod uid -> when the loop first saw it Running (its log is streamed ``live_log_after_seconds`` later).
    running_since: dict[str, float] = field(default_factory=dict)
    #: When a Running pod's stream is next due: the loop evaluates the step then, news or not.
    follow_due: float | None = None

    @property
    def spec(self) -> StepSpec:
        return self.step.spec


class _Driver:
    def __init__(
        self,
        steps: Sequence[Step],
        settings: Settings,
        api: ClusterAPI,
        *,
        run_id: str,
        image: str,
        env: Mapping[str, str],
        profile: PlatformProfile,
        progress: ProgressSink | None,
        log_sink: Callable[[str, str], None] | None,
        notice: Callable[[str], None] | None,
        on_interrupt: Literal["ask", "delete", "keep"],
        is_complete: Callable[[Sequence[Step]], set[str]],
        clock: Callable[[], float],
        recorder: RunObserver | None = None,
    ) -> None:
        self.recorder = recorder
        self.settings = settings
        self.api = api
        self.ns = settings.namespace
        self.run_id = run_id
        self.image = image
        self.env = dict(env)
        self.identity = step_identity(image, env)
        self.profile = profile
        self.progress = progress
        self.log_sink = log_sink
        self.notice = notice
        self.on_interrupt = on_interrupt
        self.is_complete = is_complete
        self.clock = clock
        self.runs = [_Run(step=s, report=StepReport(spec=s.spec)) for s in steps]
        self.by_uid = {r.spec.unique_id: r for r in self.runs}
        # Both Job names of every step (original and on-demand) -> the step.
        self.names: dict[str, _Run] = {}
        for run in self.runs:
            self.names[self._name(run, on_demand=False)] = run
            self.names[self._name(run, on_demand=True)] = run
        # The latest state of every Job of ours by name (whatever its uid): what adoption decides on.
        self.jobs: dict[str, dict[str, Any]] = {}
        # Job uid -> the step following it; Job uid -> the step that replaced it (events ignored).
        self.followed: dict[str, _Run] = {}
        self.retired: dict[str, _Run] = {}
        self.pods: dict[str, dict[str, dict[str, Any]]] = {}  # job uid -> pod uid -> pod
        # Uids of the Jobs of this run's steps (any run's): pods of other Jobs of the identity are not kept.
        self.job_uids: set[str] = set()
        self.deleted_pods: set[str] = set()
        # Every Job of this identity, whichever run submitted it: that is what a rerun adopts.
        self.selector = job_selector(identity=self.identity)
        self.watcher: Watcher | None = None
        self.submitter = Submitter(api, self.ns, workers=settings.submit_concurrency, wake=self._wake)
        self.logs = LogReader(
            api,
            self.ns,
            deliver=lambda key, line: self._log(self.by_uid[key], line),
            wake=self._wake,
            followers=max(1, settings.max_concurrent_steps),
        )
        # Where the API does not answer ("jobs"/"pods" watch, "requests", "submissions"), and since when.
        self.unreachable: dict[str, str] = {}
        self.unreachable_since: float | None = None

    def _name(self, run: _Run, *, on_demand: bool) -> str:
        spec = run.spec
        return job_name(spec.family, spec.unique_id, self.identity, variant="od" if on_demand else "")

    # --- reporting -----------------------------------------------------------------------------

    def _state(self, run: _Run, state: str, detail: str = "") -> None:
        if (state, detail) == run.last_state:
            return  # the same news again (every pod event of a running step says "running")
        run.last_state = (state, detail)
        if self.progress is not None:
            self.progress.step_state(run.spec, state, detail)
        if self.recorder is not None:
            self.recorder.step_state(run.spec, state, detail)

    def _log(self, run: _Run, text: str) -> None:
        for line in text.splitlines():
            run.log_tail.append(line)
            if self.log_sink is not None:
                self.log_sink(run.spec.family, line)

    def _wake(self) -> None:
        if self.watcher is not None:
            self.watcher.wake()

    def _notice(self, text: str) -> None:
        if self.notice is not None:
            self.notice(text)
        else:
            print(text, file=sys.stderr, flush=True)

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> RunReport:
        began = self.clock()
        self.api.check_access(self.ns)
        if self.settings.service_account:
            self.api.check_service_account(self.ns, self.settings.service_account)
        self._mark_cached()
        self.watcher = Watcher(
            self.api,
            self.ns,
            self.selector,
            timeout_seconds=self.settings.watch_timeout_seconds,
            probe_seconds=_PROBE_SECONDS,
            probe_timeout_seconds=_PROBE_TIMEOUT_SECONDS,
        )
        interrupted = False
        kept: list[str] = []
        error: GokartK8sError | None = None
        try:
            self._start_watch(self.watcher)
            for run in self.runs:
                if run.state == "waiting":
                    self._state(run, "pending")
            while True:
                try:
                    if not self._step_loop(self.watcher):
                        break
                    self._reachable("requests")
                except ClusterUnreachableError as exc:
                    self._lost("requests", str(exc))
                error = self._gave_up()
                if error is not None:
                    self._settle_submissions()
                    kept = [r.job for r in self.runs if r.state == "in-flight" and r.job]
                    break
        except KeyboardInterrupt:
            interrupted = True
            self._settle_submissions()
            kept = self._interrupt()
        finally:
            self.submitter.close(timeout=0)
            self.logs.stop()
            self.watcher.stop()
        now = self.clock()
        for run in self.runs:
            if run.state == "in-flight":
                run.report.state = "interrupted"
                self._record_remaining(run)
                left = f"Job {run.job} {'kept' if run.job in kept else 'deleted'}" if run.job else "not submitted"
                self._state(run, "interrupted", left)
            if run.started is not None and run.report.seconds is None:
                run.report.seconds = now - run.started
        return RunReport([r.report for r in self.runs], interrupted, kept, now - began, error)

    def _step_loop(self, watcher: Watcher) -> bool:
        """One turn: submit what is ready, apply changes, decide; False once nothing is in flight."""
        self._submit_ready()
        in_flight = [r for r in self.runs if r.state == "in-flight"]
        if not in_flight:
            return False
        change = watcher.get(timeout=_TICK_SECONDS)
        touched: set[int] = set()
        for c in ([change] if change else []) + watcher.drain():
            if c.type == "WAKE":
                continue  # news from the submitter: taken below
            if c.type == "ERROR":
                self._lost(c.resource, str(c.object.get("message") or "the watch failed"))
                continue
            if c.type == "RECONNECTED":
                self._reachable(c.resource)
                continue
            owner = self._apply(c)
            if owner is not None:
                touched.add(id(owner))
        for answer in self.submitter.results():
            self._submitted(answer)
        for run in in_flight:
            waiting = (
                run.unschedulable_since is not None
                or run.ending_since is not None
                or (run.pending is not None and run.submitting is None)  # its POST's answer wakes it
                or run.awaiting_logs
                or (run.follow_due is not None and self.clock() >= run.follow_due)
            )
            if run.state == "in-flight" and (id(run) in touched or waiting):
                self._evaluate(run)
        return True

    # --- the API server gone -------------------------------------------------------------------

    def _lost(self, where: str, message: str) -> None:
        first = not self.unreachable
        self.unreachable[where] = message
        if first:
            self.unreachable_since = self.clock()
            limit = int(self.settings.api_unreachable_timeout_seconds)
            self._notice(f"cluster unreachable, retrying for up to {limit} s… ({message})")

    def _reachable(self, where: str) -> None:
        if self.unreachable.pop(where, None) is None or self.unreachable:
            return
        if self.unreachable_since is not None:
            self._notice(f"cluster reachable again after {self.clock() - self.unreachable_since:.0f} s")
        self.unreachable_since = None

    def _gave_up(self) -> GokartK8sError | None:
        """The error that stops the run once the API has not answered for too long, else None."""
        since = self.unreachable_since
        limit = self.settings.api_unreachable_timeout_seconds
        if since is None or self.clock() - since <= limit:
            return None
        names = [r.job for r in self.runs if r.state == "in-flight" and r.job]
        running = f": {', '.join(names)}" if names else ""
        last = next(iter(self.unreachable.values()), "")
        return ClusterUnreachableError(
            f"The Kubernetes API did not answer for {int(self.clock() - since)} s "
            f"(api_unreachable_timeout_seconds={limit:g}); the run stopped. Last error: {last}\n"
            f"The steps' Jobs may still be running on the cluster in namespace {self.ns}{running}. "
            "Run the same command again once the cluster answers: it adopts the running Jobs, and "
            "finished steps are cached. Raise api_unreachable_timeout_seconds in [gokart_k8s] to wait longer."
        )

    def _mark_cached(self) -> None:
        complete = self.is_complete([r.step for r in self.runs])
        for run in self.runs:
            if run.spec.unique_id in complete:
                run.state = "done"
                run.report.state = "cached"
                self._state(run, "cached")

    def _ready(self, run: _Run) -> bool | None:
        """True if every requirement is done and fine, None if one failed (never ready)."""
        for uid in run.spec.requires:
            dep = self.by_uid.get(uid)
            if dep is None:
                continue  # outside the graph handed to us: the caller vouches for it
            if dep.report.state in ("failed", "skipped"):
                return None
            if dep.report.state not in ("cached", "succeeded"):
                return False
        return True

    def _submit_ready(self) -> None:
        limit = max(1, self.settings.max_concurrent_steps)
        in_flight = sum(1 for r in self.runs if r.state == "in-flight")
        progressed = True
        while progressed:
            progressed = False
            for run in self.runs:
                if run.state != "waiting":
                    continue
                ready = self._ready(run)
                if ready is None:
                    failed = [
                        u for u in run.spec.requires if u in self.by_uid and self.by_uid[u].report.state != "succeeded"
                    ]
                    names = ", ".join(sorted({self.by_uid[u].spec.family for u in failed})) or "a requirement"
                    run.state = "done"
                    run.report.state = "skipped"
                    self._state(run, "skipped", f"not run: {names} failed")
                    progressed = True
                elif ready and in_flight < limit:
                    self._start(run)
                    progressed = True
                    if run.state == "in-flight":
                        in_flight += 1

    # --- submission and adoption ---------------------------------------------------------------

    def _start(self, run: _Run) -> None:
        """Adopt the step's Job left by an earlier driver, or submit one (rules: cluster.adoption)."""
        run.state = "in-flight"
        if run.started is None:
            run.started = self.clock()
        primary, fallback = self._name(run, on_demand=False), self._name(run, on_demand=True)
        found = [job for name, job in self.jobs.items() if name in (primary, fallback)]
        decision = decide(found, primary=primary, fallback=fallback, run_id=self.run_id)
        if decision.action == "follow":
            run.report.adopted = True
            try:
                run.spot = bool(self.profile.place(run.spec, on_demand=decision.on_demand).spot)
            except GokartK8sError:
                run.spot = False  # only decides whether evictions move the step to on-demand capacity
            self._follow_job(run, self.jobs[decision.job], on_demand=decision.on_demand)
            for name in decision.retire:
                self._retire(run, name)
            self._state(run, "submitted", decision.reason)
            self._evaluate(run)
            return
        if decision.reason:
            self._state(run, "pending", decision.reason)
        for job in found:
            if _meta(job).get("deletionTimestamp"):
                # Being deleted (by an earlier driver): its pods may still run; wait for them too.
                self.retired[_uid(job)] = run
                run.replaced[_uid(job)] = str(_meta(job).get("name"))
        self._replace(run, on_demand=decision.on_demand, retire=decision.retire)

    def _follow_job(self, run: _Run, job: dict[str, Any], *, on_demand: bool) -> None:
        name, uid = str(_meta(job).get("name")), _uid(job)
        run.job, run.job_uid = name, uid
        run.on_demand = on_demand
        run.report.job = name
        run.report.fallback = on_demand
        run.ending_since = None
        run.unschedulable_since = None
        self.followed[uid] = run
        self.job_uids.add(uid)
        if _uid(self.jobs.get(name) or {}) != uid:
            self.jobs[name] = job  # else the watch's copy, at least as new as a POST's answer

    def _replace(self, run: _Run, *, on_demand: bool, retire: Sequence[str] = ()) -> None:
        """Delete the ``retire`` Jobs, then submit the step once their pods have stopped (never two at once)."""
        run.job, run.job_uid = None, None
        run.pending = on_demand
        run.pending_since = self.clock()
        for name in retire:
            self._retire(run, name)
        self._submit_pending(run)

    def _submit_pending(self, run: _Run) -> None:
        on_demand = run.pending
        if on_demand is None or run.submitting is not None:
            return  # nothing to submit, or its POST is in flight: at most one per step
        for name in sorted(run.undeleted):
            self.api.delete_job(self.ns, name)  # the cluster did not answer before; try again
            run.undeleted.discard(name)
        live = [
            str(_meta(pod).get("name"))
            for job_uid in run.replaced
            for pod_uid, pod in self.pods.get(job_uid, {}).items()
            if not _pod_stopped(pod, pod_uid in self.deleted_pods)
        ]
        if live:
            waited = self.clock() - (run.pending_since or self.clock())
            if waited > self.settings.termination_grace_seconds + _REPLACE_MARGIN_SECONDS:
                run.pending = None
                self._fail(
                    run,
                    None,
                    error=StepFailedError(
                        f"Step {run.spec.family}: pod {', '.join(live)} of the Job it replaces was still running "
                        f"after {int(waited)} s; a second attempt was not started beside it.",
                        step=run.spec.family,
                        reason="ReplacedPodStillRunning",
                        advice=f"Delete the pod (`kubectl delete pod -n {self.ns} {live[0]}`) and run again.",
                    ),
                )
            return
        self._submit(run, on_demand=on_demand)

    def _submit(self, run: _Run, *, on_demand: bool) -> None:
        """Build the step's Job and hand it to the submitter; the answer is applied by :meth:`_submitted`."""
        spec = run.spec
        name = self._name(run, on_demand=on_demand)
        try:
            placement = self.profile.place(spec, on_demand=on_demand)
            manifest = build_job_manifest(
                spec,
                placement,
                self.settings,
                run_id=self.run_id,
                image=self.image,
                env=self.env,
                name=name,
                identity=self.identity,
            )
        except GokartK8sError as exc:
            run.pending = None
            self._fail(run, None, error=exc)
            return
        run.submitting, run.submitting_spot = name, bool(placement.spot)
        self.submitter.submit(spec.unique_id, name, manifest)

    def _submitted(self, answer: Submitted) -> None:
        """Apply the answer to a step's POST, on the loop, as if the loop had made the call itself."""
        run = self.by_uid[answer.key]
        run.submitting = None
        on_demand = run.pending
        if answer.cancelled:
            return
        if run.state != "in-flight" or on_demand is None:
            if answer.created and answer.job is not None:
                self._retire(run, answer.name)  # the step ended meanwhile: no Job of ours left unknown
            return
        exc = answer.error
        if isinstance(exc, ClusterUnreachableError):
            self._lost("submissions", str(exc))
            return  # still pending: submitted again on a later turn
        if exc is not None and not isinstance(exc, GokartK8sError):
            raise exc  # a bug, not an answer of the API
        self._reachable("submissions")
        run.pending = None
        if exc is not None or answer.job is None:
            self._fail(run, None, error=exc if isinstance(exc, GokartK8sError) else None)
            return
        spec, name, job, created = run.spec, answer.name, answer.job, answer.created
        run.spot = run.submitting_spot
        if not created and not self._ours(job):
            # Not a Job of this step as this run defines it (another cache or image): following it
            # would report its outputs as ours, and its events are outside this run's watch.
            theirs = (_meta(job).get("labels") or {}).get(LABEL_IDENTITY)
            self._fail(
                run,
                None,
                error=StepFailedError(
                    f"Step {spec.family}: the Job name {name} is taken by a Job that is not this step's "
                    f"(identity {theirs or 'none'}, this run's {self.identity}).",
                    step=spec.family,
                    reason="JobNameTaken",
                    advice=f"Delete it if it is stale (`kubectl delete job -n {self.ns} {name}`) and run again.",
                ),
            )
            return
        self._follow_job(run, job, on_demand=on_demand)
        if created:
            self._state(run, "submitted", name)
        else:
            # Created meanwhile by another driver of the same identity: follow it, whatever its state.
            run.report.adopted = True
            self._state(run, "submitted", f"adopted Job {name}")
        # The watch may have told of the Job and its pods before this answer came: catch up.
        self._evaluate(run)

    def _ours(self, job: Mapping[str, Any]) -> bool:
        return (_meta(job).get("labels") or {}).get(LABEL_IDENTITY) == self.identity

    def _settle_submissions(self) -> None:
        """Before in-flight Jobs are deleted or named: no POST left that could create a Job unseen.

        Queued submissions are dropped unsent; sent ones are waited for (one request timeout), and
        the Jobs they created join the step's report. A POST still unanswered may yet create its
        Job: its (deterministic) name is taken as the step's Job, so it is deleted or named too.
        """
        unanswered = self.submitter.close(timeout=self.settings.request_timeout_seconds)
        for answer in self.submitter.results():
            run = self.by_uid[answer.key]
            run.submitting = None
            job = answer.job
            if job is not None and run.state == "in-flight" and (answer.created or self._ours(job)):
                self._follow_job(run, job, on_demand=bool(run.pending))
                run.pending = None
        for name in unanswered:
            run = self.names[name]
            if run.state == "in-flight":
                run.job = run.report.job = name

    def _start_watch(self, watcher: Watcher) -> None:
        """Start ``watcher``; every object of its initial listing counts as a change."""
        for resource, items in watcher.start().items():
            for obj in items:
                self._apply(Change(resource, "MODIFIED", obj))

    def _retire(self, run: _Run, name: str) -> None:
        """Delete a Job we no longer want; its late events are ignored, its pods awaited before a replacement."""
        job = self.jobs.pop(name, None)
        uid = _uid(job) if job is not None else ""
        if uid:
            self.followed.pop(uid, None)
            self.retired[uid] = run
            run.replaced[uid] = name
        try:
            self.api.delete_job(self.ns, name)
        except ClusterUnreachableError as exc:
            run.undeleted.add(name)  # deleted again before a replacement is submitted
            self._lost("requests", str(exc))
            self._log(run, f"(could not delete Job {name} yet: {exc})")
        except ClusterError as exc:
            self._log(run, f"(could not delete Job {name}: {exc})")

    # --- changes -------------------------------------------------------------------------------

    def _apply(self, change: Change) -> _Run | None:
        """Record a watch change; return the step it concerns, if any."""
        obj = change.object
        uid = _uid(obj)
        if change.resource == "jobs":
            name = change.name
            if name not in self.names:
                return None  # a Job of this identity, but not of a step of this run
            self.job_uids.add(uid)
            if uid in self.retired:
                return None  # replaced by us: its deletion is expected
            follower = self.followed.get(uid)
            if change.type == "DELETED":
                if _uid(self.jobs.get(name) or {}) == uid:
                    self.jobs.pop(name, None)
                if follower is not None and follower.state == "in-flight" and follower.job_uid == uid:
                    # Deleted by someone else while we followed it: a lost step, not a user error.
                    self._fail(
                        follower,
                        None,
                        error=StepFailedError(
                            f"Step {follower.spec.family}: its Job {name} was deleted by someone else.",
                            step=follower.spec.family,
                            reason="JobDeleted",
                            advice="Run the pipeline again; finished steps are cached.",
                        ),
                    )
                return None
            current = self.jobs.get(name)
            if current is not None and _uid(current) != uid and _uid(current) in self.followed:
                return None  # a late event of an older Job of this name
            self.jobs[name] = obj
            return follower
        job_uid = _job_uid_of_pod(obj)
        if job_uid is None:
            return None
        # Kept even before its Job is known: Jobs and pods come on two watches, and with Jobs created
        # off the loop a pod's events (an Unschedulable pod's only ones) can come before its Job's
        # and before the POST's answer. The watch selects this run's identity, so it is ours.
        bucket = self.pods.setdefault(job_uid, {})
        pod_uid = uid or change.name
        if change.type == "DELETED":
            bucket.setdefault(pod_uid, obj)  # keep the last full state for classification
            self.deleted_pods.add(pod_uid)
        else:
            bucket[pod_uid] = obj
        owner = self.followed.get(job_uid) or self.retired.get(job_uid)
        if owner is not None and self.recorder is not None:
            self.recorder.pod_seen(owner.spec, obj, deleted=change.type == "DELETED")
        return owner

    # --- deciding ------------------------------------------------------------------------------

    def _evaluate(self, run: _Run) -> None:
        if run.state != "in-flight":
            return
        self._record_replaced(run)
        if run.pending is not None:
            self._submit_pending(run)
            return
        name, job_uid = run.job, run.job_uid
        if name is None or job_uid is None:
            return
        job = self.jobs.get(name)
        if job is None or _uid(job) != job_uid:
            return
        catalog = self.settings.catalog
        pods = self.pods.get(job_uid, {})
        running = False
        awaiting = False
        unsettled: list[Mapping[str, Any]] = []
        run.follow_due = None
        for uid, pod in list(pods.items()):
            run.pod_uids.add(uid)
            if uid in run.counted:
                continue
            deleted = uid in self.deleted_pods
            ended = classify_pod(pod, job=job, deleted=deleted, catalog=catalog)
            if not ended.final:
                running = running or ended.kind is OutcomeKind.RUNNING
                if ended.kind is OutcomeKind.RUNNING and self.log_sink is not None:
                    self._follow_when_due(run, uid, pod)
                if not deleted:
                    unsettled.append(pod)
                continue
            if not self._log_settled(run, uid, pod, deleted):
                awaiting = True  # decided on a later turn, with its log (the advice may need it)
                continue
            run.counted.add(uid)
            if self.recorder is not None:
                self.recorder.pod_ended(run.spec, pod, ended)
            self._record(run, uid, pod, ended)
            if ended.kind is OutcomeKind.EVICTED:
                if self._evicted(run, ended):
                    return
        run.awaiting_logs = awaiting
        if awaiting:
            return
        run.report.attempts = len(run.pod_uids)
        live = [p for u, p in pods.items() if u not in self.deleted_pods]
        outcome = classify(job, live, log_tail=list(run.log_tail), catalog=catalog)
        if outcome.final and unsettled:
            # Jobs and pods arrive on two streams: the Job's end can be seen before its pod's. Wait
            # (a little) for the pod's final state, whose exit code and log make the outcome and its
            # advice; then decide with what there is, reading the logs of pods that have ended anyway.
            now = self.clock()
            if run.ending_since is None:
                run.ending_since = now
            if now - run.ending_since < _POD_END_GRACE_SECONDS:
                return
            if not all([self._log_settled(run, _uid(p), p, False) for p in unsettled]):
                run.awaiting_logs = True
                return
            run.awaiting_logs = False
            for ended_pod in unsettled:
                pod_uid = _uid(ended_pod)
                run.counted.add(pod_uid)
                self._record(run, pod_uid, ended_pod, classify_pod(ended_pod, job=job, catalog=catalog))
            outcome = classify(job, live, log_tail=list(run.log_tail), catalog=catalog)
        if outcome.kind is OutcomeKind.SUCCEEDED:
            self._succeed(run)
        elif outcome.final:
            self._fail(run, outcome, delete=outcome.kind in (OutcomeKind.IMAGE_PULL_FAILED, OutcomeKind.CANNOT_START))
        elif outcome.kind is OutcomeKind.UNSCHEDULABLE:
            now = self.clock()
            if run.unschedulable_since is None:
                run.unschedulable_since = now
                self._state(run, "pending", "Unschedulable: " + outcome.message)
            elif self._spot_unavailable(run, now - run.unschedulable_since):
                return
            elif now - run.unschedulable_since > self.settings.unschedulable_timeout_seconds:
                waited = int(now - run.unschedulable_since)
                self._fail(
                    run,
                    Outcome(
                        OutcomeKind.UNSCHEDULABLE,
                        outcome.reason,
                        final=True,
                        pod=outcome.pod,
                        message=f"{outcome.message} (waited {waited} s)",
                        advice=outcome.advice,
                    ),
                    delete=True,
                )
        else:
            run.unschedulable_since = None
            if running or outcome.kind is OutcomeKind.RUNNING:
                self._state(run, "running", name)

    def _spot_unavailable(self, run: _Run, waited: float) -> bool:
        """Move a tolerant step that waited Unschedulable on Spot too long to on-demand capacity.

        A Spot pool that cannot scale up (a stockout: the zone has no Spot capacity left) leaves
        the pod pending while on-demand capacity is there; after ``spot_unavailable_fallback_seconds``
        the step is resubmitted as ``<name>-od``, the same move as after too many evictions.
        """
        limit = self.settings.spot_unavailable_fallback_seconds
        if limit <= 0 or waited < limit or not run.spot or run.on_demand or run.spec.eviction is not Eviction.TOLERATE:
            return False
        old = run.job
        self._state(run, "pending", f"Spot capacity unavailable for {int(waited)} s; moving to on-demand capacity")
        run.unschedulable_since = None
        self._replace(run, on_demand=True, retire=[old] if old is not None else [])
        return True

    def _record(self, run: _Run, pod_uid: str, pod: Mapping[str, Any], outcome: Outcome) -> None:
        """Add one pod to the step's attempt log (once)."""
        if pod_uid in run.recorded:
            return
        run.recorded.add(pod_uid)
        run.report.attempt_log.append(attempt_of(pod, outcome, ended=time.time()))

    def _record_replaced(self, run: _Run) -> None:
        """Pods of Jobs the step left (fallback, resubmission) are attempts too, once they stopped."""
        for job_uid in run.replaced:
            for pod_uid, pod in self.pods.get(job_uid, {}).items():
                deleted = pod_uid in self.deleted_pods
                if pod_uid not in run.recorded and _pod_stopped(pod, deleted):
                    run.pod_uids.add(pod_uid)
                    self._record(run, pod_uid, pod, classify_pod(pod, deleted=deleted))

    def _record_remaining(self, run: _Run) -> None:
        """At the end: every pod of the step not yet in its attempt log, as it was last seen."""
        self._record_replaced(run)
        for job_uid in [run.job_uid, *run.replaced]:
            for pod_uid, pod in self.pods.get(job_uid or "", {}).items():
                run.pod_uids.add(pod_uid)
                self._record(run, pod_uid, pod, classify_pod(pod, deleted=pod_uid in self.deleted_pods))
        run.report.attempts = max(run.report.attempts, len(run.pod_uids))

    def _follow_when_due(self, run: _Run, uid: str, pod: Mapping[str, Any]) -> None:
        """Stream a Running pod's log once it has run ``live_log_after_seconds`` (see the module docstring)."""
        now = self.clock()
        since = run.running_since.setdefault(uid, now)
        due = since + self.settings.live_log_after_seconds
        if now >= due:
            self.logs.follow(run.spec.unique_id, uid, str(_meta(pod).get("name")))
        elif run.follow_due is None or due < run.follow_due:
            run.follow_due = due

    def _log_settled(self, run: _Run, uid: str, pod: Mapping[str, Any], deleted: bool) -> bool:
        """True once an ended pod's log is all delivered; asks the log reader, never waits (cluster.logs).

        With a log sink every log is shown: from the pod's termination message when it holds the
        whole log and no stream was opened, else streamed or read. Without one only a failed pod's
        last lines are needed, for the advice: from the message when it has them, else read.
        """
        want = not deleted and (self.log_sink is not None or (pod.get("status") or {}).get("phase") == "Failed")
        name = str(_meta(pod).get("name"))
        message = read_message(_termination_message(pod))
        lines: list[str] | None = None
        if message is not None and self.log_sink is not None and message.complete:
            lines = message.lines
        elif message is not None and self.log_sink is None:
            lines = message.lines[-_LOG_TAIL:]
        return self.logs.ended(
            run.spec.unique_id, uid, name, want=want, tail=None if self.log_sink else _LOG_TAIL, message=lines
        )

    def _evicted(self, run: _Run, ended: Outcome) -> bool:
        """Count an eviction; return True if the step left the current Job (fallback or failure)."""
        run.report.evictions += 1
        n = run.report.evictions
        settings = self.settings
        if n > settings.eviction_retries:
            self._fail(
                run,
                ended,
                error=StepEvictedError(
                    f"Step {run.spec.family} was evicted {n} times ({ended.reason} last), more than "
                    f"eviction_retries={settings.eviction_retries}. Run the pipeline again to resume it from "
                    "its cache, set eviction='protect' for the step, or raise eviction_retries in [gokart_k8s]."
                ),
                delete=True,
            )
            return True
        fallback = settings.fallback_after_evictions
        if fallback > 0 and n >= fallback and run.spot and not run.on_demand and run.spec.eviction is Eviction.TOLERATE:
            old = run.job
            self._state(run, "evicted", f"{ended.reason}; {n} evictions, moving to on-demand capacity")
            self._replace(run, on_demand=True, retire=[old] if old is not None else [])
            return True
        self._state(run, "evicted", f"{ended.reason}; resuming ({n} of at most {settings.eviction_retries})")
        return False

    def _succeed(self, run: _Run, detail: str = "") -> None:
        # Done means the output is in *this run's* cache, whoever ran the Job: a pod that wrote
        # elsewhere (another workspace in the image's config) must not pass for a finished step.
        try:
            confirmed = run.spec.unique_id in self.is_complete([run.step])
            why = "" if confirmed else "its output is not in this run's cache"
        except GokartK8sError as exc:
            confirmed, why = False, f"the cache could not be checked ({exc})"
        if not confirmed:
            workspace = self.env.get(WORKSPACE_ENV, "the workspace")
            self._fail(
                run,
                None,
                error=StepFailedError(
                    f"Step {run.spec.family}: its Job {run.job} succeeded, but {why} ({workspace}).",
                    step=run.spec.family,
                    reason="OutputMissing",
                    advice="Check that the step's image does not set its own workspace_directory (the pod must "
                    f"write where {WORKSPACE_ENV} points) and that nothing deletes outputs from the cache "
                    "meanwhile, then run again.",
                ),
            )
            return
        run.state = "done"
        run.report.state = "succeeded"
        run.report.outcome = Outcome(OutcomeKind.SUCCEEDED, "Complete", final=True)
        self._finish(run)
        self._state(run, "succeeded", detail)

    def _fail(
        self,
        run: _Run,
        outcome: Outcome | None,
        *,
        error: GokartK8sError | None = None,
        delete: bool = False,
    ) -> None:
        if error is None and outcome is not None:
            error = StepFailedError(
                outcome.message or f"Step {run.spec.family} failed ({outcome.reason}).",
                step=run.spec.family,
                reason=outcome.kind.value,
                advice=outcome.advice,
            )
        run.state = "done"
        run.report.state = "failed"
        run.report.outcome = outcome
        run.report.error = error
        self._finish(run)
        if delete and run.job is not None:
            self._retire(run, run.job)
        self._state(run, "failed", str(error) if error else "")

    def _finish(self, run: _Run) -> None:
        if run.started is not None:
            run.report.seconds = self.clock() - run.started
        self._record_remaining(run)
        if run.job_uid is not None:
            # Stop following; later events of the Job (TTL deletion) are ignored.
            self.followed.pop(run.job_uid, None)

    # --- Ctrl-C --------------------------------------------------------------------------------

    def _interrupt(self) -> list[str]:
        names = [r.job for r in self.runs if r.state == "in-flight" and r.job]
        if not names:
            return []
        policy = self.on_interrupt
        if policy == "ask":
            from gokart_k8s.supervision.stopsignals import stopped_by

            policy = "keep"
            if sys.stdin.isatty() and stopped_by() != signal.SIGTERM:  # SIGTERM is no question to a person
                try:
                    answer = input(f"\nDelete the {_jobs(len(names))} in flight? [y/N] ")
                except (EOFError, KeyboardInterrupt):
                    answer = ""
                policy = "delete" if answer.strip().lower() in ("y", "yes") else "keep"
        if policy == "delete":
            for name in names:
                try:
                    self.api.delete_job(self.ns, name)
                except ClusterError as exc:
                    print(f"could not delete Job {name}: {exc}", file=sys.stderr)
            print(f"Deleted {_jobs(len(names))} in flight in namespace {self.ns}.", file=sys.stderr)
            return []
        print(
            f"Left {_jobs(len(names))} running in namespace {self.ns}: {', '.join(names)}.\n"
            f"Rerun the same command to adopt them, or delete them with:\n"
            f"  kubectl delete jobs -n {self.ns} {' '.join(names)}",
            file=sys.stderr,
        )
        return names


def _jobs(n: int) -> str:
    return f"{n} Job" if n == 1 else f"{n} Jobs"


def _default_is_complete(steps: Sequence[Step]) -> set[str]:
    return {s.spec.unique_id for s in steps if s.task.complete()}


def run_steps(
    steps: Sequence[Step],
    settings: Settings,
    api: ClusterAPI,
    *,
    run_id: str,
    image: str,
    env: Mapping[str, str],
    profile: PlatformProfile,
    progress: ProgressSink | None = None,
    log_sink: Callable[[str, str], None] | None = None,
    on_interrupt: Literal["ask", "delete", "keep"] = "ask",
    is_complete: Callable[[Sequence[Step]], set[str]] | None = None,
    recorder: RunObserver | None = None,
    notice: Callable[[str], None] | None = None,
) -> RunReport:
    """Run ``steps`` (dependencies first or in any order) as Jobs and follow them to the end.

    ``is_complete`` returns the unique ids already in the cache (default: ``task.complete()`` per
    step). ``log_sink(step_family, line)`` receives every log line of every pod once it ends.
    ``notice(text)`` receives the driver's own news (the cluster unreachable, then back); default stderr.
    Raises :class:`ClusterError` only for the preflight check; every step failure is in the report.
    After Ctrl-C the report has ``interrupted=True`` and names the Jobs left running; after the API
    did not answer for ``api_unreachable_timeout_seconds``, ``error`` says so and ``kept_jobs`` names them.
    ``recorder`` (the run record) is told every step state and every pod of the run.
    """
    driver = _Driver(
        steps,
        settings,
        api,
        run_id=run_id,
        image=image,
        env=env,
        profile=profile,
        progress=progress,
        log_sink=log_sink,
        notice=notice,
        on_interrupt=on_interrupt,
        is_complete=is_complete or _default_is_complete,
        clock=time.monotonic,
        recorder=recorder,
    )
    return driver.run()
