"""The driver: run a whole step graph as Kubernetes Jobs and follow them all with one watch.

One process, one loop, no poller per step:

1. **Preflight.** :meth:`ClusterAPI.check_access` fails with advice (no kubeconfig, unreachable,
   forbidden namespace) before any step runs.
2. **Cache.** Steps already complete are ``cached`` and never submitted.
3. **Submit.** A step whose requirements are all done is submitted as a Job with a deterministic
   name (:func:`gokart_k8s.conventions.job_name`), while fewer than ``max_concurrent_steps`` are in
   flight. A name that is taken (409) means a previous driver submitted the same step: a running
   Job is *adopted* and followed, a succeeded one is done once the cache confirms it, a failed one
   is deleted and submitted again. No path creates a second Job for a step.
4. **Follow.** A :class:`~gokart_k8s.cluster.watching.Watcher` keeps one watch on the run's Jobs and
   one on its pods; every change is classified (:mod:`gokart_k8s.cluster.outcomes`). With a
   ``log_sink``, each *running* pod's log is streamed live (``follow=true``, one daemon thread per
   running pod, so at most ``max_concurrent_steps``) and handed over line by line with the step's
   name; if a stream breaks, the rest is read once when the pod ends. Without one, only a failed
   pod's last lines are read, for the advice.
5. **Evictions never spend the user's retry budget.** The Job's podFailurePolicy ``Ignore`` rule
   lets the Job controller replace an evicted pod by itself; the driver only counts evictions per
   step. After ``fallback_after_evictions`` a tolerant step on Spot is moved to on-demand capacity
   (its Job deleted, a new one ``<name>-od`` submitted), the idea of flyte's
   interruptible-failure-threshold; after more than ``eviction_retries`` the step fails.
6. **Failures** carry advice (:class:`~gokart_k8s.errors.StepFailedError`). As in luigi, the run
   goes on with steps that do not depend on a failed one; its dependents are ``skipped``.
   A pod Unschedulable for longer than ``unschedulable_timeout_seconds`` and an image that cannot
   be pulled fail the step and delete its Job.
7. **Ctrl-C** never orphans Jobs silently: ``on_interrupt`` decides whether in-flight Jobs are
   deleted or kept, and kept ones are named with the command that deletes them.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gokart_k8s.cluster import ClusterAPI
from gokart_k8s.cluster.outcomes import Outcome, OutcomeKind, classify, classify_pod
from gokart_k8s.cluster.watching import Change, Watcher
from gokart_k8s.conventions import LABEL_RUN_ID, job_name, label_value
from gokart_k8s.errors import ClusterError, GokartK8sError, StepEvictedError, StepFailedError
from gokart_k8s.eviction import Eviction
from gokart_k8s.manifests import build_job_manifest, job_selector
from gokart_k8s.platforms import PlatformProfile
from gokart_k8s.settings import Settings
from gokart_k8s.steps import Step, StepSpec

__all__ = ["ProgressSink", "RunObserver", "RunReport", "StepReport", "fallback_job_name", "run_steps"]

#: Log lines kept per step for the advice of a failed step.
_LOG_TAIL = 20
#: How long the loop waits for a change before it checks timers (seconds).
_TICK_SECONDS = 0.5
#: How long a Job seen ended waits for its pods' final states before the step is decided anyway.
_POD_END_GRACE_SECONDS = 10.0
_JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")


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

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.state in ("cached", "succeeded") for s in self.steps)

    def failures(self) -> list[StepReport]:
        return [s for s in self.steps if s.state == "failed"]

    def by_family(self, family: str) -> list[StepReport]:
        return [s for s in self.steps if s.spec.family == family]


def fallback_job_name(spec: StepSpec) -> str:
    """The deterministic name of a step's on-demand Job: its Job name with ``-od``, at most 63 chars."""
    return job_name(spec.family, spec.unique_id)[:60].rstrip("-") + "-od"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _job_of_pod(pod: Mapping[str, Any]) -> str | None:
    labels = _meta(pod).get("labels") or {}
    for key in _JOB_NAME_LABELS:
        if labels.get(key):
            return str(labels[key])
    for owner in _meta(pod).get("ownerReferences") or []:
        if owner.get("kind") == "Job":
            return str(owner.get("name"))
    return None


@dataclass
class _Run:
    """The driver's state of one step."""

    step: Step
    report: StepReport
    state: str = "waiting"  # waiting, in-flight, done
    job: str | None = None
    on_demand: bool = False
    spot: bool = False
    resubmitted: bool = False
    counted: set[str] = field(default_factory=set)
    pod_uids: set[str] = field(default_factory=set)
    started: float | None = None
    unschedulable_since: float | None = None
    #: When the Job was first seen ended while one of its pods had not yet been seen ended.
    ending_since: float | None = None
    last_state: tuple[str, str] = ("", "")
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=_LOG_TAIL))
    #: Log followers of this step's pods, by pod uid.
    followers: dict[str, _Follower] = field(default_factory=dict)

    @property
    def spec(self) -> StepSpec:
        return self.step.spec


@dataclass
class _Follower:
    """Streams one running pod's log lines to the log sink as they are written.

    One daemon thread per *running* pod (so at most ``max_concurrent_steps`` at once); the Jobs
    themselves are still followed by the one multiplexed watch. If the stream breaks, the rest of
    the log is read once when the pod ends.
    """

    thread: threading.Thread | None = None
    lines: int = 0
    complete: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    #: Set once the pod's end was handled: a late line from a stuck stream is dropped, not repeated.
    superseded: bool = False


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
        self.profile = profile
        self.progress = progress
        self.log_sink = log_sink
        self.on_interrupt = on_interrupt
        self.is_complete = is_complete
        self.clock = clock
        self.runs = [_Run(step=s, report=StepReport(spec=s.spec)) for s in steps]
        self.by_uid = {r.spec.unique_id: r for r in self.runs}
        # Job name -> the step it belongs to; retired names (deleted by us) map to None.
        self.job_owner: dict[str, _Run | None] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, dict[str, Any]]] = {}  # job name -> pod uid -> pod
        self.deleted_pods: set[str] = set()
        self.selector = job_selector(run_id)
        self.watcher: Watcher | None = None

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

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> RunReport:
        began = self.clock()
        self.api.check_access(self.ns)
        if self.settings.service_account:
            self.api.check_service_account(self.ns, self.settings.service_account)
        self._mark_cached()
        self.watcher = Watcher(self.api, self.ns, self.selector, timeout_seconds=self.settings.watch_timeout_seconds)
        interrupted = False
        kept: list[str] = []
        try:
            self._start_watch(self.watcher)
            for run in self.runs:
                if run.state == "waiting":
                    self._state(run, "pending")
            while True:
                self._submit_ready()
                in_flight = [r for r in self.runs if r.state == "in-flight"]
                if not in_flight:
                    break
                change = self.watcher.get(timeout=_TICK_SECONDS)
                touched: set[int] = set()
                for c in ([change] if change else []) + self.watcher.drain():
                    owner = self._apply(c)
                    if owner is not None:
                        touched.add(id(owner))
                for run in in_flight:
                    waiting = run.unschedulable_since is not None or run.ending_since is not None
                    if run.state == "in-flight" and (id(run) in touched or waiting):
                        self._evaluate(run)
        except KeyboardInterrupt:
            interrupted = True
            kept = self._interrupt()
        finally:
            self.watcher.stop()
        now = self.clock()
        for run in self.runs:
            if run.state == "in-flight":
                run.report.state = "interrupted"
            if run.started is not None and run.report.seconds is None:
                run.report.seconds = now - run.started
        return RunReport([r.report for r in self.runs], interrupted, kept, now - began)

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
                    self._submit(run)
                    progressed = True
                    if run.state == "in-flight":
                        in_flight += 1

    # --- submission and adoption ---------------------------------------------------------------

    def _submit(self, run: _Run, *, on_demand: bool = False) -> None:
        spec = run.spec
        name = fallback_job_name(spec) if on_demand else job_name(spec.family, spec.unique_id)
        try:
            placement = self.profile.place(spec, on_demand=on_demand)
            manifest = build_job_manifest(
                spec, placement, self.settings, run_id=self.run_id, image=self.image, env=self.env, name=name
            )
            job, created = self._create(manifest, name)
        except (ClusterError, GokartK8sError) as exc:
            self._fail(run, None, error=exc)
            return
        run.state = "in-flight"
        run.job = name
        run.on_demand = on_demand
        run.spot = bool(placement.spot)
        run.report.job = name
        run.report.fallback = on_demand
        if run.started is None:
            run.started = self.clock()
        self.job_owner[name] = run
        self.jobs[name] = job
        if created:
            self._state(run, "submitted", name)
            return
        self._adopt(run, job)

    def _create(self, manifest: Mapping[str, Any], name: str) -> tuple[dict[str, Any], bool]:
        # A Job we (or a previous driver) just deleted may still be going away: its name is taken
        # until the garbage collector is done. Wait for it rather than adopt a dying Job.
        for _ in range(60):
            job, created = self.api.create_job(self.ns, manifest)
            if created or not _meta(job).get("deletionTimestamp"):
                return job, created
            time.sleep(0.5)
        raise ClusterError(f"Job {name} is still being deleted after 30 s; delete it by hand and rerun.")

    def _adopt(self, run: _Run, job: dict[str, Any]) -> None:
        name = str(_meta(job).get("name"))
        run.report.adopted = True
        outcome = classify(job, [])
        if outcome.kind is OutcomeKind.SUCCEEDED:
            # Done by an earlier driver; trust it only if the cache agrees.
            if run.spec.unique_id in self.is_complete([run.step]):
                self._succeed(run, "adopted finished Job " + name)
                return
        if outcome.final or outcome.kind is OutcomeKind.SUCCEEDED:
            if run.resubmitted:
                self._fail(run, outcome)
                return
            run.resubmitted = True
            self._retire(run, name)
            self._submit(run, on_demand=run.on_demand)
            return
        labels = _meta(job).get("labels") or {}
        if labels.get(LABEL_RUN_ID) not in (None, label_value(self.run_id)):
            # Submitted under another run id: outside our watch's selector. Widen the watch to
            # every gokart-k8s Job of the namespace (once); events of Jobs not ours are ignored.
            self._widen_watch()
        self._state(run, "submitted", f"adopted running Job {name}")
        self._evaluate(run)

    def _widen_watch(self) -> None:
        wide = job_selector()
        if self.selector == wide or self.watcher is None:
            return
        self.watcher.stop()
        self.selector = wide
        self.watcher = Watcher(self.api, self.ns, wide, timeout_seconds=self.settings.watch_timeout_seconds)
        self._start_watch(self.watcher)

    def _start_watch(self, watcher: Watcher) -> None:
        """Start ``watcher``; every object of its initial listing counts as a change."""
        for resource, items in watcher.start().items():
            for obj in items:
                self._apply(Change(resource, "MODIFIED", obj))

    def _retire(self, run: _Run, name: str) -> None:
        """Delete a Job we no longer want; its late events are ignored."""
        self.job_owner[name] = None
        self.jobs.pop(name, None)
        self.pods.pop(name, None)
        try:
            self.api.delete_job(self.ns, name)
        except ClusterError as exc:
            self._log(run, f"(could not delete Job {name}: {exc})")

    # --- changes -------------------------------------------------------------------------------

    def _apply(self, change: Change) -> _Run | None:
        """Record a watch change; return the step it concerns, if any."""
        if change.type == "ERROR":
            return None
        obj = change.object
        if change.resource == "jobs":
            name = change.name
            owner = self.job_owner.get(name)
            if name in self.job_owner and owner is None:
                return None  # retired
            if change.type == "DELETED":
                self.jobs.pop(name, None)
                if owner is not None and owner.state == "in-flight" and owner.job == name:
                    # Deleted by someone else while we followed it: a lost step, not a user error.
                    self._fail(
                        owner,
                        None,
                        error=StepFailedError(
                            f"Step {owner.spec.family}: its Job {name} was deleted by someone else.",
                            step=owner.spec.family,
                            reason="JobDeleted",
                            advice="Run the pipeline again; finished steps are cached.",
                        ),
                    )
                return None
            if owner is not None or name not in self.job_owner:
                self.jobs[name] = obj
            return owner
        job = _job_of_pod(obj)
        if job is None or (job in self.job_owner and self.job_owner[job] is None):
            return None
        uid = str(_meta(obj).get("uid") or change.name)
        bucket = self.pods.setdefault(job, {})
        if change.type == "DELETED":
            if uid in bucket:
                bucket[uid] = bucket[uid]  # keep the last full state for classification
            else:
                bucket[uid] = obj
            self.deleted_pods.add(uid)
        else:
            bucket[uid] = obj
        owner = self.job_owner.get(job)
        if owner is not None and self.recorder is not None:
            self.recorder.pod_seen(owner.spec, obj, deleted=change.type == "DELETED")
        return owner

    # --- deciding ------------------------------------------------------------------------------

    def _evaluate(self, run: _Run) -> None:
        name = run.job
        if name is None or run.state != "in-flight":
            return
        job = self.jobs.get(name)
        if job is None:
            return
        pods = self.pods.get(name, {})
        running = False
        unsettled: list[Mapping[str, Any]] = []
        for uid, pod in list(pods.items()):
            run.pod_uids.add(uid)
            if uid in run.counted:
                if uid in self.deleted_pods:
                    pods.pop(uid, None)
                    self.deleted_pods.discard(uid)
                continue
            deleted = uid in self.deleted_pods
            ended = classify_pod(pod, job=job, deleted=deleted)
            if not ended.final:
                running = running or ended.kind is OutcomeKind.RUNNING
                if ended.kind is OutcomeKind.RUNNING and self.log_sink is not None and uid not in run.followers:
                    self._follow(run, uid, str(_meta(pod).get("name")))
                if not deleted:
                    unsettled.append(pod)
                continue
            run.counted.add(uid)
            if self.recorder is not None:
                self.recorder.pod_ended(run.spec, pod, ended)
            self._read_log(run, pod, deleted)
            if ended.kind is OutcomeKind.EVICTED:
                if self._evicted(run, ended):
                    return
        run.report.attempts = len(run.pod_uids)
        outcome = classify(job, list(pods.values()), log_tail=list(run.log_tail))
        if outcome.final and unsettled:
            # Jobs and pods arrive on two streams: the Job's end can be seen before its pod's. Wait
            # (a little) for the pod's final state, whose exit code and log make the outcome and its
            # advice; then decide with what there is, reading the logs of pods that have ended anyway.
            now = self.clock()
            if run.ending_since is None:
                run.ending_since = now
            if now - run.ending_since < _POD_END_GRACE_SECONDS:
                return
            for ended_pod in unsettled:
                run.counted.add(str(_meta(ended_pod).get("uid") or ""))
                self._read_log(run, ended_pod, False)
            outcome = classify(job, list(pods.values()), log_tail=list(run.log_tail))
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
        if old is not None:
            self._retire(run, old)
        self._submit(run, on_demand=True)
        return True

    def _follow(self, run: _Run, uid: str, pod_name: str) -> None:
        follower = _Follower()
        run.followers[uid] = follower

        def stream() -> None:
            try:
                for line in self.api.follow_pod_log(self.ns, pod_name):
                    if follower.superseded:
                        return
                    follower.lines += 1
                    self._log(run, line)
                follower.complete = True
            except ClusterError:
                pass  # the rest is read when the pod ends
            finally:
                follower.done.set()

        follower.thread = threading.Thread(target=stream, name=f"log-{pod_name}", daemon=True)
        follower.thread.start()

    def _read_log(self, run: _Run, pod: Mapping[str, Any], deleted: bool) -> None:
        follower = run.followers.get(str(_meta(pod).get("uid") or ""))
        if follower is not None:
            # The container has ended, so its log stream ends too; give it a moment to drain.
            follower.done.wait(5.0)
            follower.superseded = True
            if follower.complete:
                return
        if deleted or (self.log_sink is None and (pod.get("status") or {}).get("phase") != "Failed"):
            return
        text = self.api.read_pod_log(
            self.ns, str(_meta(pod).get("name")), tail_lines=None if self.log_sink else _LOG_TAIL
        )
        if follower is not None:
            # Only what the broken stream had not delivered yet.
            text = "\n".join(text.splitlines()[follower.lines :])
        self._log(run, text)

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
            if old is not None:
                self._retire(run, old)
            self._submit(run, on_demand=True)
            return True
        self._state(run, "evicted", f"{ended.reason}; resuming ({n} of at most {settings.eviction_retries})")
        return False

    def _succeed(self, run: _Run, detail: str = "") -> None:
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
        if delete and run.job is not None:
            self._retire(run, run.job)
        self._finish(run)
        self._state(run, "failed", str(error) if error else "")

    def _finish(self, run: _Run) -> None:
        if run.started is not None:
            run.report.seconds = self.clock() - run.started
        run.report.attempts = max(run.report.attempts, len(run.pod_uids))
        if run.job is not None:
            # Stop tracking; later events of the Job (TTL deletion) are ignored.
            self.job_owner[run.job] = None
            self.jobs.pop(run.job, None)
            self.pods.pop(run.job, None)

    # --- Ctrl-C --------------------------------------------------------------------------------

    def _interrupt(self) -> list[str]:
        names = [r.job for r in self.runs if r.state == "in-flight" and r.job]
        if not names:
            return []
        policy = self.on_interrupt
        if policy == "ask":
            policy = "keep"
            if sys.stdin.isatty():
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
) -> RunReport:
    """Run ``steps`` (dependencies first or in any order) as Jobs and follow them to the end.

    ``is_complete`` returns the unique ids already in the cache (default: ``task.complete()`` per
    step). ``log_sink(step_family, line)`` receives every log line of every pod once it ends.
    Raises :class:`ClusterError` only for the preflight check; every step failure is in the report.
    After Ctrl-C the report has ``interrupted=True`` and names the Jobs left running.
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
        on_interrupt=on_interrupt,
        is_complete=is_complete or _default_is_complete,
        clock=time.monotonic,
        recorder=recorder,
    )
    return driver.run()
