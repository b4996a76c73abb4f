"""The Job and CronJob controllers, following the behaviour documented for Kubernetes 1.31+.

Job controller (https://kubernetes.io/docs/concepts/workloads/controllers/job/):

* one pod per Job, named ``<job>-<5 chars>``, labelled ``batch.kubernetes.io/job-name``,
  ``job-name``, ``batch.kubernetes.io/controller-uid``, ``controller-uid`` plus the template's
  labels, with a controller ownerReference and the ``batch.kubernetes.io/job-tracking`` finalizer,
  which the controller removes once it has counted the finished pod (so a pod deleted right after
  failing is still counted);
* ``status.failed`` counts failed pods, except those matched by a podFailurePolicy ``Ignore``
  rule, which are not counted towards ``backoffLimit`` and are replaced
  (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy);
  with ``restartPolicy: OnFailure`` container restarts count too; the Job fails when the count
  exceeds ``backoffLimit``;
* replacement back-off is exponential like the real ``10 s × 2^(n-1)`` but starts at
  ``backoff_base_seconds`` (default 0.1 s) and is capped at ``backoff_max_seconds`` (default 2 s);
* ``podReplacementPolicy: Failed`` (the default with a podFailurePolicy) waits for a terminating
  pod to reach a terminal phase before replacing it; ``TerminatingOrFailed`` replaces it as soon
  as it has a ``deletionTimestamp``;
* terminal conditions as in 1.31+: ``FailureTarget`` (reasons ``BackoffLimitExceeded``,
  ``DeadlineExceeded``, ``PodFailurePolicy``) is added first and running pods are deleted; only
  when no pod is left running or terminating is ``Failed`` added with the same reason. Success is
  ``SuccessCriteriaMet`` then ``Complete`` with ``completionTime``;
* ``activeDeadlineSeconds`` counts from ``status.startTime``; ``ttlSecondsAfterFinished`` deletes
  a finished Job with cascading (background) deletion; ``suspend`` deletes active pods, sets
  ``Suspended`` and clears ``startTime``;
* counters ``active``, ``ready``, ``terminating``, ``succeeded``, ``failed``, ``startTime``,
  ``completionTime``.

CronJob controller (https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/):
schedules in ``spec.timeZone`` (UTC without one — the zone managed control planes run in),
``concurrencyPolicy`` Allow/Forbid/Replace, ``startingDeadlineSeconds``, history limits,
``suspend``; Jobs named ``<cronjob>-<scheduled time in unix minutes>`` with the annotation
``batch.kubernetes.io/cronjob-scheduled-timestamp``; ``status.active``, ``lastScheduleTime`` and
``lastSuccessfulTime``. Its clock is injectable (:class:`ManualClock`) and
:meth:`CronJobController.sync_all` runs one pass on demand, so tests need not wait for minutes.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from gokart_k8s.scheduling import cron

from . import resources as r
from .loops import ControlLoop, PassLoop
from .status import ApiError
from .store import Obj, Store, clone, owned_by, parse_timestamp, timestamp

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MANUAL_INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ManualClock:
    """A clock tests move by hand: ``clock.advance(minutes=5)``; starts at the real time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (start or utc_now()).astimezone(timezone.utc)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when.astimezone(timezone.utc)


class WorkQueue:
    """Deduplicating queue of keys with delayed adds, like client-go's workqueue."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: list[tuple[str, str]] = []
        self._queued: set[tuple[str, str]] = set()
        self._delayed: list[tuple[float, tuple[str, str]]] = []
        self._woken = False

    def add(self, key: tuple[str, str]) -> None:
        with self._cond:
            if key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
                self._cond.notify()

    def add_after(self, key: tuple[str, str], seconds: float) -> None:
        with self._cond:
            heapq.heappush(self._delayed, (time.monotonic() + max(0.0, seconds), key))
            self._cond.notify()

    def get(self, timeout: float) -> tuple[str, str] | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                while self._delayed and self._delayed[0][0] <= now:
                    _, key = heapq.heappop(self._delayed)
                    if key not in self._queued:
                        self._queued.add(key)
                        self._ready.append(key)
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    return key
                if now >= deadline or self._woken:
                    self._woken = False
                    return None
                wait = deadline - now
                if self._delayed:
                    wait = min(wait, self._delayed[0][0] - now)
                self._cond.wait(max(0.001, wait))

    def wake(self) -> None:
        """Make a waiting (or the next) :meth:`get` return None now: the loop then sees its stop flag."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()


def _condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


def job_finished(job: Obj) -> str | None:
    """'Complete', 'Failed' or None."""
    for type_ in ("Complete", "Failed"):
        if _condition(job, type_):
            return type_
    return None


def _set_condition(status: Obj, type_: str, value: str, reason: str, message: str) -> None:
    now = timestamp()
    conditions = status.setdefault("conditions", [])
    for c in conditions:
        if c.get("type") == type_:
            if c.get("status") != value:
                c.update(status=value, reason=reason, message=message, lastTransitionTime=now, lastProbeTime=now)
            return
    conditions.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )


def _pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def match_pod_failure_policy(job: Obj, pod: Obj) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule the failed pod matches, if any."""
    rules = (((job.get("spec") or {}).get("podFailurePolicy")) or {}).get("rules") or []
    status = pod.get("status") or {}
    name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
    for index, rule in enumerate(rules):
        action = rule.get("action", "Count")
        on_codes = rule.get("onExitCodes")
        if on_codes is not None:
            for cs in status.get("containerStatuses") or []:
                term = (cs.get("state") or {}).get("terminated")
                if not term or term.get("exitCode", 0) == 0:
                    continue  # containers that succeeded are excluded from the check
                if on_codes.get("containerName") and on_codes["containerName"] != cs.get("name"):
                    continue
                code = term["exitCode"]
                inside = code in (on_codes.get("values") or [])
                if inside == (on_codes.get("operator") == "In"):
                    return action, (
                        f"Container {cs.get('name')} for pod {name} failed with exit code {code} "
                        f"matching {action} rule at index {index}"
                    )
        for pattern in rule.get("onPodConditions") or []:
            for c in status.get("conditions") or []:
                if c.get("type") == pattern.get("type") and c.get("status") == pattern.get("status", "True"):
                    return action, f"Pod {name} has condition {c['type']} matching {action} rule at index {index}"
    return None


class JobController(ControlLoop):
    """Reconciles Jobs from a work queue fed by Job and Pod events."""

    def __init__(self, store: Store, *, backoff_base_seconds: float = 0.1, backoff_max_seconds: float = 2.0) -> None:
        super().__init__("job-controller")
        self.store = store
        self.backoff_base_seconds = backoff_base_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self._queue = WorkQueue()
        store.add_listener(self._on_event)

    def _wake_up(self) -> None:
        self._queue.wake()

    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        if rt is r.JOB:
            self._queue.add((meta["namespace"], meta["name"]))
        elif rt is r.POD:
            owner = next(
                (o for o in meta.get("ownerReferences") or [] if o.get("controller") and o.get("kind") == "Job"), None
            )
            if owner is not None:
                self._queue.add((meta["namespace"], owner["name"]))
            elif JOB_TRACKING_FINALIZER in (meta.get("finalizers") or []):
                self._queue.add((meta["namespace"], "\0pod/" + meta["name"]))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            key = self._queue.get(0.5)
            if key is None or self._stopping.is_set():
                continue
            try:
                if key[1].startswith("\0pod/"):
                    self._release_orphan(key[0], key[1][5:])
                else:
                    self.sync(*key)
            except Exception:  # pragma: no cover - one bad Job must not stop the controller
                traceback.print_exc()

    # ------------------------------------------------------------------ helpers
    def _remove_finalizer(self, pod: Obj) -> None:
        def mutate(p: Obj) -> bool | None:
            finalizers = p["metadata"].get("finalizers") or []
            if JOB_TRACKING_FINALIZER not in finalizers:
                return False
            p["metadata"]["finalizers"] = [f for f in finalizers if f != JOB_TRACKING_FINALIZER]
            return None

        meta = pod["metadata"]
        self.store.update(r.POD, meta["namespace"], meta["name"], mutate, uid=meta["uid"])

    def _release_orphan(self, namespace: str, name: str) -> None:
        pod = self.store.try_get(r.POD, namespace, name)
        if pod is None:
            return
        owner = next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
        if owner is not None:
            job = self.store.try_get(r.JOB, namespace, owner["name"])
            if job is not None and job["metadata"]["uid"] == owner.get("uid"):
                return
        self._remove_finalizer(pod)

    def _release_pods_of_gone_jobs(self, namespace: str, name: str, job: Obj | None) -> None:
        """Pods whose Job was deleted keep no tracking finalizer (the Job controller drops it)."""
        live_uid = job["metadata"]["uid"] if job else None

        def stale(p: Obj) -> bool:
            if JOB_TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []):
                return False
            refs = [o for o in p["metadata"].get("ownerReferences") or [] if o.get("controller")]
            return any(o.get("kind") == "Job" and o.get("name") == name and o.get("uid") != live_uid for o in refs)

        for pod in self.store.dependents(r.POD, namespace, "Job", name, stale, copy=False):
            self._remove_finalizer(pod)

    def _create_pod(self, job: Obj) -> bool:
        template = (job.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        meta = job["metadata"]
        pod = {
            "metadata": {
                "generateName": f"{meta['name']}-",
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": [JOB_TRACKING_FINALIZER],
            },
            "spec": template.get("spec") or {},
        }
        try:
            created = self.store.create(r.POD, pod, meta["namespace"])
        except ApiError as exc:
            # Refused (a missing service account, a 422): the real controller records FailedCreate and
            # retries from its rate-limited queue, so the Job waits with no pod until the cause is fixed.
            self.store.record_event(
                job, "FailedCreate", f"Error creating: {exc.message}", type_="Warning", component="job-controller"
            )
            self._queue.add_after((meta["namespace"], meta["name"]), self.backoff_max_seconds)
            return False
        self.store.record_event(
            job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", component="job-controller"
        )
        return True

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        try:
            self.store.delete(r.POD, pod["metadata"]["namespace"], pod["metadata"]["name"], uid=pod["metadata"]["uid"])
        except ApiError:
            return
        self.store.record_event(
            job, "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", component="job-controller"
        )

    # ------------------------------------------------------------------ reconcile
    def sync(self, namespace: str, name: str) -> None:
        # The stored Job itself, read-only (a copy of its pod template per sync was most of a sync):
        # the status is worked on as a copy and written back through Store.update.
        job = self.store.try_get(r.JOB, namespace, name, copy=False)
        self._release_pods_of_gone_jobs(namespace, name, job)
        if job is None:
            return
        uid = job["metadata"]["uid"]
        spec = job.get("spec") or {}
        pods = self.store.dependents(
            r.POD, namespace, "Job", name, lambda p: owned_by(p, uid, controller_only=True), copy=False
        )
        status = clone(job.get("status") or {})
        before = repr(status)
        now = utc_now()
        finished = job_finished(job)

        # 1. Count pods that finished since the last sync, then release their finalizers.
        to_release = []
        failure: tuple[str, str] | None = None
        last_failure: datetime | None = None
        for pod in pods:
            if not _pod_terminal(pod) or JOB_TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
                continue
            to_release.append(pod)
            if pod["status"]["phase"] == "Succeeded":
                status["succeeded"] = int(status.get("succeeded", 0)) + 1
                continue
            matched = match_pod_failure_policy(job, pod)
            action = matched[0] if matched else "Count"
            if action != "Ignore":
                status["failed"] = int(status.get("failed", 0)) + 1
            if action == "FailJob" and matched:
                failure = ("PodFailurePolicy", matched[1])
        for pod in pods:
            if (pod.get("status") or {}).get("phase") == "Failed":
                for cs in pod["status"].get("containerStatuses") or []:
                    finished_at = ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")
                    if finished_at:
                        at = parse_timestamp(finished_at)
                        last_failure = at if last_failure is None or at > last_failure else last_failure

        running = [p for p in pods if not _pod_terminal(p)]
        active = [p for p in running if not p["metadata"].get("deletionTimestamp")]
        terminating = [p for p in running if p["metadata"].get("deletionTimestamp")]
        ready = [p for p in active if _condition(p, "Ready")]
        restarts = sum(
            int(cs.get("restartCount", 0))
            for p in running
            for cs in (p.get("status") or {}).get("containerStatuses") or []
        )

        if finished is None:
            self._decide(job, spec, status, now, failure, active, terminating, ready, restarts, last_failure)
        else:
            status.update(active=0, ready=0, terminating=len(terminating))
            self._ttl(job, spec, now)

        if repr(status) != before:

            def mutate(j: Obj) -> bool | None:
                if j["metadata"]["uid"] != uid:
                    return False
                j["status"] = status
                return None

            self.store.update(r.JOB, namespace, name, mutate, uid=uid)
        for pod in to_release:
            self._remove_finalizer(pod)

    def _decide(
        self,
        job: Obj,
        spec: Obj,
        status: Obj,
        now: datetime,
        failure: tuple[str, str] | None,
        active: list[Obj],
        terminating: list[Obj],
        ready: list[Obj],
        restarts: int,
        last_failure: datetime | None,
    ) -> None:
        key = (job["metadata"]["namespace"], job["metadata"]["name"])
        suspended = bool(spec.get("suspend"))
        if suspended:
            for pod in active:
                self._delete_pod(job, pod)
            _set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended")
            status.pop("startTime", None)
            status.update(active=0, ready=0, terminating=len(terminating) + len(active))
            return
        if _condition(job, "Suspended"):
            _set_condition(status, "Suspended", "False", "JobResumed", "Job resumed")
        if not status.get("startTime"):
            status["startTime"] = timestamp(now)
        start = parse_timestamp(status["startTime"])
        existing_target = _condition(job, "FailureTarget")
        if existing_target is not None:
            failure = (existing_target.get("reason", ""), existing_target.get("message", ""))
        succeeded = int(status.get("succeeded", 0))
        failures = int(status.get("failed", 0)) + (restarts if self._on_failure(spec) else 0)
        deadline = spec.get("activeDeadlineSeconds")
        if (
            failure is None
            and not _condition(job, "SuccessCriteriaMet")
            and succeeded < int(spec.get("completions", 1))
        ):
            if failures > int(spec.get("backoffLimit", 6)):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and (now - start).total_seconds() >= deadline:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if failure is not None:
            if existing_target is None:
                _set_condition(status, "FailureTarget", "True", failure[0], failure[1])
                self.store.record_event(job, failure[0], failure[1], type_="Warning", component="job-controller")
            for pod in active:
                self._delete_pod(job, pod)
            left = len(active) + len(terminating)
            status.update(active=0, ready=0, terminating=left)
            if left == 0:
                # The terminal condition waits for every pod to be terminal (1.31+).
                _set_condition(status, "Failed", "True", failure[0], failure[1])
            return
        if succeeded >= int(spec.get("completions", 1)) or _condition(job, "SuccessCriteriaMet"):
            _set_condition(
                status, "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"
            )
            for pod in active:
                self._delete_pod(job, pod)
            left = len(active) + len(terminating)
            status.update(active=0, ready=0, terminating=left)
            if left == 0:
                _set_condition(
                    status, "Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods"
                )
                status["completionTime"] = timestamp(now)
                self.store.record_event(job, "Completed", "Job completed", component="job-controller")
            return
        replace_terminating = spec.get("podReplacementPolicy", "TerminatingOrFailed") == "TerminatingOrFailed"
        parallelism = int(spec.get("parallelism", 1))
        busy = len(active) + (0 if replace_terminating else len(terminating))
        if parallelism > 0 and busy == 0:
            failed_so_far = int(status.get("failed", 0))
            delay = 0.0
            if failed_so_far and last_failure is not None:
                delay = min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (failed_so_far - 1))
                wait = (last_failure + timedelta(seconds=delay) - now).total_seconds()
                if wait > 0:
                    self._queue.add_after(key, wait)
                    delay = -1
            if delay >= 0:
                active_count = 1 if self._create_pod(job) else 0
            else:
                active_count = 0
        else:
            active_count = len(active)
        status.update(active=active_count, ready=len(ready), terminating=len(terminating))
        if deadline is not None:
            self._queue.add_after(key, max(0.0, deadline - (now - start).total_seconds()) + 0.01)

    @staticmethod
    def _on_failure(spec: Obj) -> bool:
        return ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure"

    def _ttl(self, job: Obj, spec: Obj, now: datetime) -> None:
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished = _condition(job, "Complete") or _condition(job, "Failed") or {}
        at = parse_timestamp(finished.get("lastTransitionTime") or timestamp(now))
        remaining = (at + timedelta(seconds=int(ttl)) - now).total_seconds()
        meta = job["metadata"]
        if remaining > 0:
            self._queue.add_after((meta["namespace"], meta["name"]), remaining + 0.01)
            return
        # The TTL controller deletes with cascading deletion
        # (https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/).
        try:
            self.store.delete(r.JOB, meta["namespace"], meta["name"], propagation="Background", uid=meta["uid"])
        except ApiError:
            pass


class CronJobController(PassLoop):
    """Creates Jobs from CronJobs on schedule, by an injectable clock."""

    def __init__(self, store: Store, *, clock: Clock = utc_now, sync_seconds: float = 1.0) -> None:
        super().__init__("cronjob-controller")
        self.store = store
        self.clock = clock
        self.sync_seconds = sync_seconds
        self._lock = threading.Lock()
        self._names = random.Random()
        store.add_listener(self._on_event)

    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is r.CRONJOB or (
            rt is r.JOB and any(o.get("kind") == "CronJob" for o in obj["metadata"].get("ownerReferences") or [])
        ):
            self._wake.set()

    def _idle_seconds(self) -> float:
        return self.sync_seconds

    def _pass(self) -> None:
        self.sync_all()

    def sync_all(self, now: datetime | None = None) -> None:
        """One pass over every CronJob at ``now`` (default: the controller's clock)."""
        with self._lock:
            at = (now or self.clock()).astimezone(timezone.utc)
            cronjobs, _ = self.store.list(r.CRONJOB)
            for cj in cronjobs:
                self._sync(cj, at)

    def trigger(self, namespace: str, name: str) -> str:
        """Create a Job from the CronJob now, like ``kubectl create job --from=cronjob/<name>``."""
        cj = self.store.get(r.CRONJOB, namespace, name)
        suffix = "".join(self._names.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        job = self._job_from_template(cj, f"{name}-manual-{suffix}"[:63])
        job["metadata"].setdefault("annotations", {})[MANUAL_INSTANTIATE_ANNOTATION] = "manual"
        created = self.store.create(r.JOB, job, namespace)
        return str(created["metadata"]["name"])

    @staticmethod
    def _job_from_template(cj: Obj, job_name: str) -> Obj:
        template = (cj.get("spec") or {}).get("jobTemplate") or {}
        tmeta = template.get("metadata") or {}
        return {
            "metadata": {
                "name": job_name,
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": cj["metadata"]["name"],
                        "uid": cj["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": dict(template.get("spec") or {}),
        }

    def _sync(self, cj: Obj, now: datetime) -> None:
        meta, spec = cj["metadata"], cj.get("spec") or {}
        status: dict[str, Any] = dict(cj.get("status") or {})
        before = repr(status)
        jobs, _ = self.store.list(r.JOB, meta["namespace"], lambda j: owned_by(j, meta["uid"], controller_only=True))
        active = [j for j in jobs if job_finished(j) is None]
        succeeded = [j for j in jobs if job_finished(j) == "Complete"]
        failed = [j for j in jobs if job_finished(j) == "Failed"]
        for j in succeeded:
            done = j["status"].get("completionTime")
            if done and (not status.get("lastSuccessfulTime") or done > status["lastSuccessfulTime"]):
                status["lastSuccessfulTime"] = done
        self._trim_history(succeeded, int(spec.get("successfulJobsHistoryLimit", 3)))
        self._trim_history(failed, int(spec.get("failedJobsHistoryLimit", 1)))
        if not spec.get("suspend"):
            active = self._maybe_schedule(cj, spec, status, active, now)
        status["active"] = [
            {
                "kind": "Job",
                "apiVersion": "batch/v1",
                "namespace": j["metadata"]["namespace"],
                "name": j["metadata"]["name"],
                "uid": j["metadata"]["uid"],
                "resourceVersion": j["metadata"]["resourceVersion"],
            }
            for j in active
        ] or None
        if status["active"] is None:
            del status["active"]
        if repr(status) != before:

            def mutate(obj: Obj) -> None:
                obj["status"] = status

            self.store.update(r.CRONJOB, meta["namespace"], meta["name"], mutate, uid=meta["uid"])

    def _trim_history(self, jobs: list[Obj], limit: int) -> None:
        ordered = sorted(
            jobs, key=lambda j: (j.get("status") or {}).get("completionTime") or j["metadata"]["creationTimestamp"]
        )
        for j in ordered[: max(0, len(ordered) - limit)]:
            try:
                self.store.delete(r.JOB, j["metadata"]["namespace"], j["metadata"]["name"], propagation="Background")
            except ApiError:
                pass

    def _maybe_schedule(self, cj: Obj, spec: Obj, status: Obj, active: list[Obj], now: datetime) -> list[Obj]:
        meta = cj["metadata"]
        tz = ZoneInfo(spec["timeZone"]) if spec.get("timeZone") else timezone.utc
        schedule = cron.parse(spec["schedule"])
        earliest = parse_timestamp(status.get("lastScheduleTime") or meta["creationTimestamp"])
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = None, 0
        cursor: datetime | None = earliest.astimezone(tz)
        while cursor is not None:
            cursor = schedule.next_after(cursor)
            if cursor is None or cursor > now:
                break
            scheduled, missed = cursor, missed + 1
            if missed > 1000:  # too far behind: jump close to now and keep the most recent time
                cursor = (now - timedelta(days=2)).astimezone(tz)
                missed = 101
        if scheduled is None:
            return active
        if missed > 100:
            self.store.record_event(
                cj,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
                type_="Warning",
                component="cronjob-controller",
            )
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and active:
            return active  # skipped; considered again at the next sync, as in the real controller
        if policy == "Replace":
            for j in active:
                try:
                    self.store.delete(
                        r.JOB, j["metadata"]["namespace"], j["metadata"]["name"], propagation="Background"
                    )
                    self.store.record_event(
                        cj, "SuccessfulDelete", f"Deleted job {j['metadata']['name']}", component="cronjob-controller"
                    )
                except ApiError:
                    pass
            active = []
        # Job names end in the scheduled time in minutes since the epoch, so a retried sync finds
        # the same name (https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#job-creation).
        job = self._job_from_template(cj, f"{meta['name']}-{int(scheduled.timestamp() // 60)}")
        stamp = scheduled.isoformat()
        job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION] = (
            stamp[:-6] + "Z" if stamp.endswith("+00:00") else stamp
        )
        try:
            created = self.store.create(r.JOB, job, meta["namespace"])
            active = [*active, created]
            self.store.record_event(
                cj, "SuccessfulCreate", f"Created job {created['metadata']['name']}", component="cronjob-controller"
            )
        except ApiError as exc:
            if exc.code != 409:
                self.store.record_event(
                    cj,
                    "FailedCreate",
                    f"Error creating job: {exc.message}",
                    type_="Warning",
                    component="cronjob-controller",
                )
                return active
        status["lastScheduleTime"] = timestamp(scheduled)
        return active
