"""Jobs are created by a pool of submitters: several POSTs in flight at once, at most one per step,
and an interrupt never leaves a Job the driver does not know of.

The cluster here is an in-memory one at the driver's seam (:class:`~gokart_k8s.cluster.ClusterAPI`)
that sees every create as it starts and ends, so overlap and ordering are observed directly --
never inferred from wall time.
"""

from __future__ import annotations

import _thread
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from gokart_k8s.cluster.submission import Submitter
from gokart_k8s.cluster.watching import Change
from gokart_k8s.conventions import LABEL_IDENTITY, step_identity
from gokart_k8s.driver import RunReport, _Driver, run_steps
from gokart_k8s.errors import ClusterUnreachableError, SubmissionError
from gokart_k8s.platforms import get_profile
from gokart_k8s.settings import Settings
from gokart_k8s.steps import collect
from tests.driver.fakes import QuietCluster, QuietStream
from tests.driver.pipelines import Leaf
from tests.driver.test_replacement import ENV, IMAGE, settle

IDENTITY = step_identity(IMAGE, ENV)


class SeamCluster(QuietCluster):
    """Creates Jobs in memory; records every create as it starts and as it returns."""

    stream = QuietStream

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str]] = []  # ("start" | "end", name), in the order seen
        self.deleted: list[str] = []
        self.active = 0
        self.most_active = 0

    def before_create(self, name: str) -> None:
        """Hook of the tests: runs in the submitter's thread while the create is in progress."""

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        name = str(manifest["metadata"]["name"])
        with self.lock:
            self.events.append(("start", name))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            self.before_create(name)
            with self.lock:
                if name in self.jobs:
                    return self.jobs[name], False
                job = {**manifest, "metadata": {**manifest["metadata"], "uid": f"uid-{name}"}, "status": {}}
                self.jobs[name] = job
                return job, True
        finally:
            with self.lock:
                self.active -= 1
                self.events.append(("end", name))

    def created(self, name: str) -> int:
        return self.events.count(("start", name))

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.jobs.get(name)

    def delete_job(self, namespace: str, name: str) -> None:
        with self.lock:
            self.deleted.append(name)
            self.jobs.pop(name, None)


def driver_of(
    api: SeamCluster, n: int, *, log_sink: Callable[[str, str], None] | None = None, **settings: Any
) -> _Driver:
    config = Settings(**settings)
    steps, problems = collect([Leaf(i=100 + i) for i in range(n)], config)
    assert not problems
    return _Driver(
        steps,
        config,
        api,  # type: ignore[arg-type]
        run_id="run-1",
        image=IMAGE,
        env=ENV,
        profile=get_profile(config),
        progress=None,
        log_sink=log_sink,
        notice=lambda text: None,
        on_interrupt="keep",
        is_complete=lambda steps: set() if len(steps) > 1 else {s.spec.unique_id for s in steps},
        clock=time.monotonic,
    )


def test_the_jobs_of_ready_steps_are_created_concurrently_not_one_post_after_another() -> None:
    api = SeamCluster()
    # Every create waits until four are in progress at once: a driver that sends one POST after
    # another never gets there (the barrier breaks after its timeout and the creates fail).
    barrier = threading.Barrier(4, timeout=60)
    api.before_create = lambda name: barrier.wait()  # type: ignore[method-assign]
    driver = driver_of(api, 4, submit_concurrency=4)

    driver._submit_ready()
    settle(driver)

    assert api.most_active == 4
    assert [e for e, _ in api.events] == ["start"] * 4 + ["end"] * 4  # all four overlapped
    assert all(r.state == "in-flight" and r.job_uid == f"uid-{r.job}" for r in driver.runs)
    assert all(api.created(str(r.job)) == 1 for r in driver.runs)


def test_submissions_in_flight_are_bounded_by_submit_concurrency() -> None:
    api = SeamCluster()
    release = threading.Event()
    api.before_create = lambda name: release.wait(60)  # type: ignore[method-assign]
    driver = driver_of(api, 6, submit_concurrency=2, max_concurrent_steps=6)
    driver._submit_ready()
    assert all(r.submitting for r in driver.runs)  # all handed over at once, the loop did not wait
    assert wait_until(lambda: api.active == 2)
    assert len(api.events) == 2  # the other four wait for a free submitter
    release.set()
    settle(driver)
    assert api.most_active == 2
    assert sorted(api.jobs) == sorted(str(r.job) for r in driver.runs)


def test_a_step_whose_post_is_in_flight_is_never_submitted_again() -> None:
    api = SeamCluster()
    release = threading.Event()
    api.before_create = lambda name: release.wait(60)  # type: ignore[method-assign]
    driver = driver_of(api, 1)
    (run,) = driver.runs
    driver._submit_ready()
    for _ in range(5):  # later turns of the loop evaluate the step again
        driver._evaluate(run)
        driver._submit_ready()
    assert driver.submitter.settle(timeout=0.2) is False  # still waiting on the one POST
    release.set()
    settle(driver)
    assert api.created(str(run.job)) == 1 and run.job_uid is not None


def test_a_post_whose_answer_was_lost_is_retried_once_answered_and_the_job_it_made_adopted() -> None:
    api = SeamCluster()
    lost: list[str] = []

    def lose_the_first_answer(name: str) -> None:
        if not lost:
            lost.append(name)
            api.jobs[name] = {"metadata": {"name": name, "uid": "made", "labels": {LABEL_IDENTITY: IDENTITY}}}
            raise ClusterUnreachableError("Cannot reach the Kubernetes API: the connection was refused.")

    api.before_create = lose_the_first_answer  # type: ignore[method-assign]
    driver = driver_of(api, 1)
    (run,) = driver.runs
    driver._submit_ready()
    settle(driver)
    assert run.job is None and run.pending is not None and "submissions" in driver.unreachable
    driver._evaluate(run)  # the next turn submits again: 409, the Job is there, so it is adopted
    settle(driver)
    assert (run.job_uid, run.report.adopted, api.created(str(run.job))) == ("made", True, 2)
    assert api.events == [("start", run.job), ("end", run.job)] * 2  # one after the other, never two at once
    assert driver.unreachable == {}


def test_a_refused_job_fails_its_step_with_the_apis_advice_while_the_others_are_submitted() -> None:
    api = SeamCluster()
    message = "Job refused by the quota of namespace 'default': exceeded quota: pods=10. Ask for a larger quota."
    refused: list[str] = []

    def refuse_one(name: str) -> None:
        if not refused:
            refused.append(name)
            raise SubmissionError(message)

    api.before_create = refuse_one  # type: ignore[method-assign]
    driver = driver_of(api, 3)
    driver._submit_ready()
    settle(driver)
    failed = [r for r in driver.runs if r.report.state == "failed"]
    assert [str(r.report.error) for r in failed] == [message]
    assert sorted(api.jobs) == sorted(str(r.job) for r in driver.runs if r not in failed)
    assert all(r.state == "in-flight" for r in driver.runs if r not in failed)


def _run(api: SeamCluster, n: int, **settings: Any) -> RunReport:
    config = Settings(**settings)
    steps, _ = collect([Leaf(i=200 + i) for i in range(n)], config)
    return run_steps(
        steps,
        config,
        api,  # type: ignore[arg-type]
        run_id="run-1",
        image=IMAGE,
        env=ENV,
        profile=get_profile(config),
        on_interrupt="keep",
        is_complete=lambda steps: set(),
        notice=lambda text: None,
    )


def test_an_interrupt_while_posts_are_in_flight_waits_for_their_answers_and_names_every_job_made(
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = SeamCluster()
    interrupted = threading.Event()

    def interrupt_then_answer(name: str) -> None:
        if not interrupted.is_set():
            interrupted.set()
            _thread.interrupt_main()  # Ctrl-C arrives while this POST is in flight...
        time.sleep(0.5)  # ...and its answer comes later

    api.before_create = interrupt_then_answer  # type: ignore[method-assign]
    report = _run(api, 3, submit_concurrency=3)
    assert report.interrupted
    assert driver_jobs_settled(api)
    # Every Job a POST made is named for the user (kept), none exists that the report does not name.
    assert sorted(report.kept_jobs) == sorted(api.jobs)
    assert api.jobs and "kubectl delete jobs" in capsys.readouterr().err


def test_a_post_still_unanswered_after_an_interrupt_is_named_since_it_may_yet_create_its_job() -> None:
    api = SeamCluster()
    release = threading.Event()

    def interrupt_and_hang(name: str) -> None:
        _thread.interrupt_main()
        release.wait(60)

    api.before_create = interrupt_and_hang  # type: ignore[method-assign]
    report = _run(api, 1, request_timeout_seconds=0.5)
    release.set()
    assert driver_jobs_settled(api)
    (step,) = report.steps
    assert report.interrupted and report.kept_jobs == [step.job] == sorted(api.jobs)


def wait_until(condition: Callable[[], bool], timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def driver_jobs_settled(api: SeamCluster, timeout: float = 30) -> bool:
    """Wait until no create is in progress at the cluster."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with api.lock:
            if api.active == 0 and api.events and api.events[-1][0] == "end":
                return True
        time.sleep(0.01)
    return False


def test_the_submitter_refuses_a_second_submission_of_a_step_in_flight() -> None:
    api = SeamCluster()
    release = threading.Event()
    api.before_create = lambda name: release.wait(60)  # type: ignore[method-assign]
    submitter = Submitter(api, "default", workers=2)  # type: ignore[arg-type]
    manifest = {"metadata": {"name": "a"}}
    submitter.submit("step-a", "a", manifest)
    with pytest.raises(RuntimeError, match="already has a submission in flight"):
        submitter.submit("step-a", "a", manifest)
    release.set()
    assert submitter.settle(timeout=30)
    (answer,) = submitter.results()
    assert (answer.name, answer.created) == ("a", True)
    assert submitter.close(timeout=1) == []


class SlowLogCluster(SeamCluster):
    """A pod log that takes as long as the test wants to be read."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def read_pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        self.release.wait(10)
        return "first\nsecond\n"


def test_an_ended_pods_log_is_read_off_the_loop_and_its_step_decided_once_the_log_is_in() -> None:
    api = SlowLogCluster()
    seen: list[str] = []
    driver = driver_of(api, 1, log_sink=lambda step, line: seen.append(line))
    (run,) = driver.runs
    driver._submit_ready()
    settle(driver)
    job = {
        "metadata": {"name": run.job, "uid": run.job_uid},
        "status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]},
    }
    pod = {
        "metadata": {"name": f"{run.job}-p", "uid": "pod-1", "ownerReferences": [{"kind": "Job", "uid": run.job_uid}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {"exitCode": 0}}}]},
    }
    driver._apply(Change("jobs", "MODIFIED", job))
    driver._apply(Change("pods", "MODIFIED", pod))

    driver._evaluate(run)  # returns while the log read is still in progress: the loop never waits on it
    assert (run.state, run.awaiting_logs, seen) == ("in-flight", True, [])
    api.release.set()
    assert wait_until(lambda: seen == ["first", "second"])
    driver._evaluate(run)
    assert (run.report.state, list(run.log_tail)) == ("succeeded", ["first", "second"])
    driver.logs.stop()
