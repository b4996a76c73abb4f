"""The driver runs step graphs as Jobs on the embedded local cluster, over real HTTP."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import luigi.configuration
import pytest

from gokart_k8s.cluster.kubernetes import KubernetesCluster, connect
from gokart_k8s.conventions import job_name, step_identity
from gokart_k8s.driver import RunReport, fallback_job_name, run_steps
from gokart_k8s.errors import ClusterError, StepEvictedError, StepFailedError
from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.localcluster.autoscaler import Autoscaling
from gokart_k8s.platforms import get_profile
from gokart_k8s.pools import NodePool
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec, collect
from gokart_k8s.testing.network import CuttableProxy
from gokart_k8s.workspace import WORKSPACE_ENV
from tests.driver.conftest import write_kubeconfig
from tests.driver.pipelines import AfterBroken, Hungry, Leaf, NumberedLines, Sleepy, Total, Unplaceable

REPO = Path(__file__).resolve().parents[2]
NS = "default"


@dataclass
class Recorder:
    """A ProgressSink that records states and can act when a step reaches one."""

    states: list[tuple[str, str, str]] = field(default_factory=list)
    on_state: Callable[[StepSpec, str, str], None] | None = None

    def step_state(self, spec: StepSpec, state: str, detail: str = "") -> None:
        self.states.append((spec.family, state, detail))
        if self.on_state is not None:
            self.on_state(spec, state, detail)

    def of(self, family: str) -> list[str]:
        return [state for fam, state, _ in self.states if fam == family]


@dataclass
class Rig:
    cluster: LocalCluster
    api: KubernetesCluster
    settings: Settings
    workspace: str
    logs: list[tuple[str, str]] = field(default_factory=list)

    image: str = "local/pipeline:test"

    @property
    def identity(self) -> str:
        return step_identity(self.image, {WORKSPACE_ENV: self.workspace})

    def run(
        self, roots: Sequence[Any], progress: Recorder | None = None, *, run_id: str = "test-run", **options: Any
    ) -> RunReport:
        steps, problems = collect(roots, self.settings)
        assert not problems
        return run_steps(
            steps,
            self.settings,
            self.api,
            run_id=run_id,
            image=self.image,
            env={WORKSPACE_ENV: self.workspace},
            profile=get_profile(self.settings),
            progress=progress,
            log_sink=lambda step, line: self.logs.append((step, line)),
            **options,
        )

    def jobs(self) -> list[str]:
        return sorted(j["metadata"]["name"] for j in self.api.list("jobs", NS, "").items)

    def pods_of(self, job: str) -> list[dict[str, Any]]:
        return self.api.list("pods", NS, f"batch.kubernetes.io/job-name={job}").items

    def evict_running_pod(self, job: str) -> None:
        running = [p for p in self.pods_of(job) if p["status"].get("phase") == "Running"]
        self.cluster.evict_pod(NS, running[0]["metadata"]["name"], grace_seconds=1)


SPOT_POOLS = (
    NodePool("spot", cpu="2", memory="8Gi", spot=True),
    NodePool("ondemand", cpu="2", memory="8Gi"),
)


@pytest.fixture
def make_rig(tmp_path: Path, local_cluster_factory: Callable[..., LocalCluster]) -> Iterator[Callable[..., Rig]]:
    config = luigi.configuration.get_config()
    had = config.has_option("TaskOnKart", "workspace_directory")
    old = config.get("TaskOnKart", "workspace_directory") if had else None
    workspace = f"{tmp_path}/workspace/"
    config.set("TaskOnKart", "workspace_directory", workspace)

    def make(**overrides: Any) -> Rig:
        autoscaling = overrides.pop("autoscaling", None)
        base = Settings(backoff_limit=0, watch_timeout_seconds=10, request_timeout_seconds=10)
        settings = dataclasses.replace(base, **overrides)
        pools = get_profile(settings).pools() if settings.platform != "plain" else None
        cluster = local_cluster_factory(pools=pools, pod_env={"PYTHONPATH": str(REPO)}, autoscaling=autoscaling)
        api = connect(kubeconfig=str(cluster.write_kubeconfig(tmp_path / "kubeconfig")), request_timeout=10)
        return Rig(cluster, api, settings, workspace)

    yield make
    if old is None:
        config.remove_option("TaskOnKart", "workspace_directory")
    else:
        config.set("TaskOnKart", "workspace_directory", old)


def evict_once_when_running(rig: Rig, family: str) -> Recorder:
    done = threading.Event()

    def act(spec: StepSpec, state: str, detail: str) -> None:
        if spec.family == family and state == "running" and not done.is_set():
            done.set()
            # Not from inside the driver's loop: the eviction waits for the pod's grace period.
            threading.Thread(target=rig.evict_running_pod, args=(detail,)).start()

    return Recorder(on_state=act)


def test_every_step_of_a_fan_in_runs_as_its_own_job_and_a_rerun_finds_them_cached(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    report = rig.run([Total(n=3)])
    assert report.ok, [str(s.error) for s in report.failures()]
    assert [s.state for s in report.steps] == ["succeeded"] * 4
    assert len(rig.jobs()) == 4
    assert ("Leaf", "leaf 2 says hello") in rig.logs

    again = rig.run([Total(n=3)], progress=(progress := Recorder()))
    assert [s.state for s in again.steps] == ["cached"] * 4
    assert "submitted" not in {state for _, state, _ in progress.states}
    assert len(rig.jobs()) == 4


def test_an_evicted_step_resumes_without_spending_its_retry_budget(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(backoff_limit=0, fallback_after_evictions=0)
    progress = evict_once_when_running(rig, "Sleepy")
    report = rig.run([Sleepy(seconds=4.0, tag="resume")], progress=progress)
    (step,) = report.steps
    assert (step.state, step.evictions, step.attempts, step.fallback) == ("succeeded", 1, 2, False)
    assert "evicted" in progress.of("Sleepy")


def test_a_tolerant_step_moves_to_on_demand_capacity_after_repeated_evictions(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(platform="gke-standard", pools=SPOT_POOLS, fallback_after_evictions=1)
    progress = evict_once_when_running(rig, "Sleepy")
    task = Sleepy(seconds=4.0, tag="fallback")
    report = rig.run([task], progress=progress)
    (step,) = report.steps
    assert (step.state, step.evictions, step.fallback) == ("succeeded", 1, True)
    assert step.job == fallback_job_name(step.spec, rig.identity) and step.job.endswith("-od") and len(step.job) <= 63
    (pod,) = rig.pods_of(step.job)
    assert pod["spec"]["nodeSelector"]["cloud.google.com/gke-nodepool"] == "ondemand"
    assert job_name(step.spec.family, step.spec.unique_id, rig.identity) not in rig.jobs()  # the Spot Job was deleted


def test_a_tolerant_step_stuck_unschedulable_on_a_stocked_out_spot_pool_moves_to_on_demand(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(
        platform="gke-standard",
        pools=SPOT_POOLS,
        spot_unavailable_fallback_seconds=1.0,
        unschedulable_timeout_seconds=30.0,
        autoscaling=Autoscaling(time_scale=600),
    )
    rig.cluster.stockout("spot", 10**6)
    report = rig.run([Sleepy(seconds=0.5, tag="stockout")], progress=(progress := Recorder()))
    (step,) = report.steps
    assert (step.state, step.evictions, step.fallback) == ("succeeded", 0, True)
    assert step.job == fallback_job_name(step.spec, rig.identity)
    assert any(
        state == "pending" and "Spot capacity unavailable" in detail and "moving to on-demand capacity" in detail
        for _, state, detail in progress.states
    )
    (pod,) = rig.pods_of(step.job)
    assert pod["spec"]["nodeSelector"]["cloud.google.com/gke-nodepool"] == "ondemand"


def test_a_step_evicted_more_often_than_allowed_fails_as_evicted(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(eviction_retries=0, fallback_after_evictions=0)
    progress = evict_once_when_running(rig, "Sleepy")
    report = rig.run([Sleepy(seconds=30.0, tag="give-up")], progress=progress)
    (step,) = report.steps
    assert (step.state, step.evictions) == ("failed", 1)
    assert isinstance(step.error, StepEvictedError)
    assert "eviction_retries=0" in str(step.error)


def test_a_step_out_of_memory_fails_with_advice_to_use_a_bigger_class(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(backoff_limit=0)
    report = rig.run([Hungry()])
    (step,) = report.steps
    assert step.state == "failed" and step.outcome is not None
    assert step.outcome.kind.value == "out_of_memory"
    assert isinstance(step.error, StepFailedError)
    assert "Step Hungry ran out of memory on resource class 'small-memory' (300Mi)" in str(step.error)
    assert "Use a bigger class" in str(step.error)


def test_a_user_error_fails_fast_with_its_log_and_only_its_dependents_are_skipped(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(backoff_limit=3)
    report = rig.run([AfterBroken(), Leaf(i=99)])
    states = {s.spec.family: s for s in report.steps}
    assert (states["Broken"].state, states["AfterBroken"].state, states["Leaf"].state) == (
        "failed",
        "skipped",
        "succeeded",
    )
    broken = states["Broken"]
    assert broken.attempts == 1  # exit 42 fails the Job at once, whatever backoff_limit says
    assert "ValueError: bad row 7" in str(broken.error)
    assert "--backend inline" in str(broken.error)
    assert not report.ok


def test_a_restarted_driver_adopts_its_running_job_instead_of_submitting_a_duplicate(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()

    def interrupt(spec: StepSpec, state: str, detail: str) -> None:
        if state == "running":
            raise KeyboardInterrupt  # what Ctrl-C does to the driver's loop

    task = Sleepy(seconds=3.0, tag="adopt")
    first = rig.run([task], progress=Recorder(on_state=interrupt), on_interrupt="keep")
    assert first.interrupted and not first.ok
    (name,) = first.kept_jobs

    second = rig.run([task])
    (step,) = second.steps
    assert (step.state, step.adopted, step.job) == ("succeeded", True, name)
    assert rig.jobs() == [name]
    assert len(rig.pods_of(name)) == 1


def test_an_interrupt_with_the_delete_policy_deletes_the_jobs_in_flight(
    make_rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    rig = make_rig()

    def interrupt(spec: StepSpec, state: str, detail: str) -> None:
        if state == "submitted":
            raise KeyboardInterrupt

    report = rig.run([Sleepy(seconds=30.0, tag="delete")], progress=Recorder(on_state=interrupt), on_interrupt="delete")
    assert report.interrupted and report.kept_jobs == []
    assert rig.jobs() == []
    assert "Deleted 1 Job in flight in namespace default." in capsys.readouterr().err


def test_a_step_unschedulable_for_too_long_fails_naming_what_to_check(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(unschedulable_timeout_seconds=1.0)
    report = rig.run([Unplaceable()])
    (step,) = report.steps
    assert step.state == "failed"
    assert "Step Unplaceable cannot be scheduled" in str(step.error)
    assert "resource class 'huge'" in str(step.error)
    assert rig.jobs() == []  # its Job was deleted, so it cannot start later unseen


def test_an_unreachable_cluster_fails_before_any_step_runs(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = connect(kubeconfig=str(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{port}")), request_timeout=2)
    settings = Settings()
    steps, _ = collect([Leaf(i=1)], settings)
    progress = Recorder()
    with pytest.raises(ClusterError, match="Cannot reach the Kubernetes API"):
        run_steps(
            steps,
            settings,
            api,
            run_id="r",
            image="i",
            env={},
            profile=get_profile(settings),
            progress=progress,
            is_complete=lambda steps: set(),
        )
    assert progress.states == []


def test_an_interrupt_without_a_terminal_keeps_the_jobs_and_prints_how_to_delete_them(
    make_rig: Callable[..., Rig], capsys: pytest.CaptureFixture[str]
) -> None:
    rig = make_rig()

    def interrupt(spec: StepSpec, state: str, detail: str) -> None:
        if state == "submitted":
            raise KeyboardInterrupt

    report = rig.run([Sleepy(seconds=30.0, tag="ask")], progress=Recorder(on_state=interrupt), on_interrupt="ask")
    (name,) = report.kept_jobs
    assert rig.jobs() == [name]
    err = capsys.readouterr().err
    assert f"kubectl delete jobs -n default {name}" in err and "Left 1 Job running" in err


def test_a_running_steps_log_lines_reach_the_log_sink_while_it_still_runs_each_once(
    make_rig: Callable[..., Rig],
) -> None:
    # The stream opens once the pod has run half a second; the step runs 4 s: a wide margin.
    rig = make_rig(live_log_after_seconds=0.5)
    report, phases_when_seen = _run_sleepy_watching_its_first_line(rig, seconds=4.0, tag="streamed")
    assert report.ok
    assert phases_when_seen == [["Running"]]
    # ...and the line is not shown a second time when the pod ends.
    assert rig.logs.count(("Sleepy", "sleepy started")) == 1


def test_every_steps_log_lines_reach_the_log_sink_once_each_in_the_order_written(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(submit_concurrency=3)
    report = rig.run([NumberedLines(lines=40, tag=tag) for tag in ("a", "b", "c")])
    assert report.ok
    for tag in ("a", "b", "c"):
        lines = [line for step, line in rig.logs if step == "NumberedLines" and line.startswith(f"{tag} line")]
        assert lines == [f"{tag} line {i}" for i in range(40)]


def _run_sleepy_watching_its_first_line(rig: Rig, *, seconds: float, tag: str) -> tuple[RunReport, list[list[str]]]:
    """Run one Sleepy step; with the phases its pod was in when its first line reached the log sink."""
    phases_when_seen: list[list[str]] = []

    def on_line(step: str, line: str) -> None:
        if line == "sleepy started":
            # Where is the pod when its first line arrives? Still running: the line was streamed.
            job = next(j for j in rig.jobs() if j.startswith("sleepy-"))
            phases_when_seen.append([p["status"].get("phase") for p in rig.pods_of(job)])

    rig.logs = _LogsWithHook(on_line)
    return rig.run([Sleepy(seconds=seconds, tag=tag)]), phases_when_seen


class _LogsWithHook(list[tuple[str, str]]):
    """The rig's log lines, calling a hook for each line the driver hands to the log sink."""

    def __init__(self, hook: Callable[[str, str], None]) -> None:
        super().__init__()
        self._hook = hook

    def append(self, item: tuple[str, str]) -> None:
        super().append(item)
        self._hook(*item)


def test_a_job_that_succeeds_without_its_output_in_this_runs_cache_is_a_failure_not_success(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    # The pod commits to the rig's workspace; this run's cache check says the output is not there
    # (a pod writing elsewhere, an output deleted meanwhile).
    report = rig.run([Leaf(i=7)], is_complete=lambda steps: set())
    (step,) = report.steps
    assert step.state == "failed" and not report.ok
    assert isinstance(step.error, StepFailedError) and step.error.reason == "OutputMissing"
    assert "succeeded, but its output is not in this run's cache" in str(step.error)


@pytest.mark.parametrize("kind", ["cut", "hang"])
def test_a_cluster_unreachable_for_a_while_is_reported_and_the_run_carries_on_when_it_answers_again(
    make_rig: Callable[..., Rig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """``cut``: connections refused and broken; ``hang``: kept open, nothing answers (a partition)."""
    from urllib.parse import urlsplit

    import gokart_k8s.driver

    monkeypatch.setattr(gokart_k8s.driver, "_PROBE_SECONDS", 1.0)
    monkeypatch.setattr(gokart_k8s.driver, "_PROBE_TIMEOUT_SECONDS", 1.0)

    rig = make_rig(api_unreachable_timeout_seconds=120.0)
    proxy = CuttableProxy(int(urlsplit(rig.cluster.url).port or 0))
    rig.api = connect(kubeconfig=str(write_kubeconfig(tmp_path / "via-proxy", proxy.url)), request_timeout=10)
    notices: list[str] = []
    outage = threading.Event()

    def on_notice(text: str) -> None:
        notices.append(text)
        if text.startswith("cluster unreachable"):
            outage.set()

    def cut_while_running(spec: StepSpec, state: str, detail: str) -> None:
        if state == "running" and not outage.is_set():

            def flap() -> None:
                proxy.cut() if kind == "cut" else proxy.hang()
                outage.wait(60)  # the driver noticed; keep the line down a moment longer
                time.sleep(2)
                proxy.restore()

            threading.Thread(target=flap, daemon=True).start()

    try:
        report = rig.run(
            [Sleepy(seconds=8.0, tag=f"flap-{kind}")], progress=Recorder(on_state=cut_while_running), notice=on_notice
        )
    finally:
        proxy.close()
    assert report.ok and report.error is None, (notices, [str(s.error) for s in report.steps])
    assert notices[0].startswith("cluster unreachable, retrying for up to 120 s")
    assert any(n.startswith("cluster reachable again after") for n in notices)


@pytest.fixture
def log_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The pod log requests the embedded API server answers (path and query), counted at the server."""
    from gokart_k8s.localcluster import server as server_module

    seen: list[str] = []
    original = server_module._Handler._dispatch

    def counting(handler: Any, method: str) -> None:
        if handler.path.partition("?")[0].endswith("/log"):
            seen.append(handler.path)
        original(handler, method)

    monkeypatch.setattr(server_module._Handler, "_dispatch", counting)
    return seen


def test_a_short_steps_log_comes_from_its_termination_message_without_a_log_request(
    make_rig: Callable[..., Rig], log_requests: list[str]
) -> None:
    rig = make_rig(live_log_after_seconds=60)  # no stream: the step ends long before
    report = rig.run([NumberedLines(lines=20, tag="short")])
    assert report.ok
    lines = [line for step, line in rig.logs if step == "NumberedLines" and line.startswith("short line")]
    assert lines == [f"short line {i}" for i in range(20)]
    assert log_requests == []
    # The log itself is unchanged: kubectl logs shows the same lines.
    job = next(j for j in rig.jobs() if j.startswith("numberedlines-"))
    pod = rig.pods_of(job)[0]["metadata"]["name"]
    shown = rig.api.read_pod_log(NS, pod, tail_lines=None).splitlines()
    assert [line for line in shown if line.startswith("short line")] == lines


def test_a_step_whose_log_outgrows_the_message_is_read_once_each_line_shown_once_in_order(
    make_rig: Callable[..., Rig], log_requests: list[str]
) -> None:
    rig = make_rig(live_log_after_seconds=60)
    report = rig.run([NumberedLines(lines=600, tag="long")])  # ~7 KB: more than the 4096-byte message
    assert report.ok
    lines = [line for step, line in rig.logs if step == "NumberedLines" and line.startswith("long line")]
    assert lines == [f"long line {i}" for i in range(600)]
    assert len(log_requests) == 1 and "follow=true" not in log_requests[0]


def test_a_step_that_runs_longer_than_live_log_after_seconds_is_streamed_live(
    make_rig: Callable[..., Rig], log_requests: list[str]
) -> None:
    rig = make_rig(live_log_after_seconds=0.5)
    # Long enough that the stream, opened after 0.5 s of Running, is open before the step ends.
    report, phases_when_seen = _run_sleepy_watching_its_first_line(rig, seconds=20.0, tag="live")
    assert report.ok
    assert phases_when_seen == [["Running"]]
    assert rig.logs.count(("Sleepy", "sleepy started")) == 1
    assert len(log_requests) == 1 and "follow=true" in log_requests[0]


def test_without_a_log_sink_a_failed_steps_advice_quotes_its_termination_message_without_a_log_request(
    make_rig: Callable[..., Rig], log_requests: list[str]
) -> None:
    rig = make_rig()
    steps, problems = collect([AfterBroken()], rig.settings)
    assert not problems
    report = run_steps(
        steps,
        rig.settings,
        rig.api,
        run_id="test-run",
        image=rig.image,
        env={WORKSPACE_ENV: rig.workspace},
        profile=get_profile(rig.settings),
        log_sink=None,
    )
    broken = report.by_family("Broken")[0]
    assert broken.state == "failed" and broken.error is not None
    assert "bad row 7" in str(broken.error)
    assert log_requests == []
