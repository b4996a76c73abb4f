"""A schedule on the embedded local cluster: it fires, its driver is lost mid-run, the run goes on.

The cache is ``gs://`` on the GCS emulator (fake-gcs-server, :mod:`gokart_k8s.testing.gcs`), so the
objects are exactly those the CLI would create, validation included.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from gokart_k8s.cluster.schedules import ScheduleClient
from gokart_k8s.history import load_record
from gokart_k8s.history.store import open_store
from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.platforms import get_profile
from gokart_k8s.scheduling import (
    ScheduleConfig,
    build_objects,
    job_from_cronjob,
    scheduled_time_for_date,
    summarize_runs,
    validate_schedule,
)
from gokart_k8s.settings import Settings, parse_secret_refs
from gokart_k8s.testing.gcs import FakeGCSServer, gcs_bucket, gcs_emulator

__all__ = ["gcs_bucket", "gcs_emulator"]

pytest_plugins = ["gokart_k8s.testing.cluster"]

T = TypeVar("T")
NAMESPACE = "default"
REPO = Path(__file__).resolve().parents[2]
TOKYO = ZoneInfo("Asia/Tokyo")
DAY = date(2026, 11, 1)
CRON = "0 3 * * *"


def wait_for(predicate: Callable[[], T | None], what: str, env: Env, timeout: float = 60.0) -> T:
    # Imported at call time: a top-level import would load the module before pytest_plugins
    # registers it, and pytest could no longer rewrite its asserts.
    from gokart_k8s.testing.cluster import wait_for as cluster_wait_for

    return cluster_wait_for(
        predicate,
        timeout,
        what,
        interval=0.2,
        failure=lambda: f"gave up waiting for {what}; pods and their logs:\n{env.describe()}",
    )


class Env:
    def __init__(self, cluster: LocalCluster, client: ScheduleClient, markers: Path, cache: str) -> None:
        self.cluster, self.client, self.markers, self.cache = cluster, client, markers, cache

    def jobs(self, selector: str) -> list[dict[str, Any]]:
        from kubernetes import client

        return self._items(lambda api: client.BatchV1Api(api).list_namespaced_job, selector)

    def pods(self, selector: str) -> list[dict[str, Any]]:
        from kubernetes import client

        return self._items(lambda api: client.CoreV1Api(api).list_namespaced_pod, selector)

    def _items(self, lister: Callable[[Any], Callable[..., Any]], selector: str) -> list[dict[str, Any]]:
        """The raw JSON items of one namespaced list call, with a fresh API client."""
        api = self.cluster.api_client()
        try:
            body: Any = lister(api)(NAMESPACE, label_selector=selector, _preload_content=False)
            return list(json.loads(body.data)["items"])
        finally:
            api.close()

    def runs(self, name: str) -> list[dict[str, Any]]:
        return self.client.list_runs(NAMESPACE, name)

    def describe(self) -> str:
        out = []
        for pod in self.pods(""):
            name = pod["metadata"]["name"]
            out.append(f"--- {name} {pod['status'].get('phase')} on {pod['spec'].get('nodeName')}")
            out.append(self.cluster.pod_logs(NAMESPACE, name)[-3000:])
        return "\n".join(out)

    def marks(self) -> dict[str, int]:
        return {p.name: len(p.read_text().split()) for p in self.markers.iterdir()}


@pytest.fixture
def env(
    tmp_path: Path, local_cluster_factory: Callable[..., LocalCluster], gcs_emulator: FakeGCSServer, gcs_bucket: str
) -> Iterator[Env]:
    markers, cache = tmp_path / "markers", f"gs://{gcs_bucket}/cache/"
    markers.mkdir()
    kubeconfig = tmp_path / "kubeconfig"
    # gke-standard pins the driver to the on-demand pool and the steps to the Spot pool, so losing
    # the driver's node loses only the driver.
    pools = [p for p in get_profile(Settings(platform="gke-standard")).pools() if p.name.endswith("-small")]
    pod_env = {
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        # The driver pod talks to the local cluster through a kubeconfig instead of in-cluster config.
        "KUBECONFIG": str(kubeconfig),
        # No luigi.cfg: the driver's command names the cache, and the driver passes it to the steps.
        "SCHEDULE_TEST_MARKERS": str(markers),
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
    }
    cluster = local_cluster_factory(pools, pod_env=pod_env, node_return_seconds=1.0)
    cluster.write_kubeconfig(kubeconfig, namespace=NAMESPACE)
    api = cluster.api_client()
    yield Env(cluster, ScheduleClient(api, request_timeout=10), markers, cache)
    api.close()


def schedule(cache: str) -> ScheduleConfig:
    config = ScheduleConfig(
        name="daily-report",
        task_argv=("tests.schedule.scheduled_pipeline.DailyReport", "--date", "{scheduled_date}"),
        cron=CRON,
        timezone="Asia/Tokyo",
        image="gokart-k8s/rehearsal:local",
        workspace=cache,
        namespace=NAMESPACE,
        platform="gke-standard",
    )
    assert validate_schedule(config) == []
    return config


def next_fire_time() -> datetime:
    """The schedule's next firing after now. The controller fires nothing scheduled before the
    CronJob was created (as Kubernetes' does), so "tomorrow's date" is wrong whenever Tokyo's
    tomorrow 03:00 has already passed in UTC (every evening from 18:00 UTC)."""
    now = datetime.now(TOKYO)
    day = now.date()
    while (at := scheduled_time_for_date(CRON, day, "Asia/Tokyo")) <= now:
        day += timedelta(days=1)
    return at


def finished(env: Env, job: str) -> str | None:
    [run] = [r for r in summarize_runs(env.runs("daily-report"), now=datetime.now(TOKYO)) if r.job == job]
    return None if run.outcome == "Running" else run.outcome


def test_the_cronjob_fires_and_a_lost_driver_is_replaced_by_one_that_adopts_the_running_steps(env: Env) -> None:
    created = list(env.client.apply(build_objects(schedule(env.cache))))
    assert [(o["kind"], new) for o, new in created] == [
        ("ServiceAccount", True),
        ("Role", True),
        ("RoleBinding", True),
        ("CronJob", True),
    ]
    fire_at = next_fire_time()
    env.cluster.sync_cronjobs(fire_at)
    job = f"daily-report-{int(fire_at.timestamp()) // 60}"
    day = fire_at.date()

    # Both parts are running on the Spot pool: now the driver's (on-demand) node dies.
    wait_for(
        lambda: (
            len([p for p in env.pods("gokart-k8s.io/step=DailyPart") if p["status"].get("phase") == "Running"]) == 2
        ),
        "both parts running",
        env,
    )
    [driver] = env.pods(f"batch.kubernetes.io/job-name={job}")
    env.cluster.preempt_node(driver["spec"]["nodeName"], return_after=1.0)

    assert wait_for(lambda: finished(env, job), "the run to finish", env, timeout=90) == "Complete"
    # The lost pod is gone with its node; the Job started another, which adopted the running parts.
    [replacement] = env.pods(f"batch.kubernetes.io/job-name={job}")
    assert replacement["metadata"]["name"] != driver["metadata"]["name"]
    assert "adopted" in env.cluster.pod_logs(NAMESPACE, replacement["metadata"]["name"])
    # No duplicate step: each step Job exists once, started one pod, and its code ran once.
    step_jobs = env.jobs("gokart-k8s.io/step")
    assert sorted(j["metadata"]["labels"]["gokart-k8s.io/step"] for j in step_jobs) == [
        "DailyPart",
        "DailyPart",
        "DailyReport",
    ]
    for step_job in step_jobs:
        assert len(env.pods(f"batch.kubernetes.io/job-name={step_job['metadata']['name']}")) == 1
    assert env.marks() == {f"part-{day}-0": 1, f"part-{day}-1": 1, f"report-{day}": 1}
    # Both drivers labelled their steps with the same run id: the Job's name.
    assert {j["metadata"]["labels"]["gokart-k8s.io/run-id"] for j in step_jobs} == {job}
    # ... and wrote one run record in the cache: the replacement continued the lost driver's.
    record = load_record(open_store(env.cache), job)
    assert (record.state, len(record.drivers)) == ("succeeded", 2)
    assert sorted(s.family for s in record.steps if s.state == "succeeded") == ["DailyPart", "DailyPart", "DailyReport"]


def test_a_missed_day_rerun_with_trigger_computes_that_day_and_runs_reports_it(env: Env) -> None:
    list(env.client.apply(build_objects(schedule(env.cache))))
    cronjob = env.client.read_cronjob(NAMESPACE, "daily-report")
    when = scheduled_time_for_date(CRON, DAY, "Asia/Tokyo")
    job = env.client.create_job(
        NAMESPACE, job_from_cronjob(cronjob, name="daily-report-m00000001", scheduled_time=when)
    )
    name = job["metadata"]["name"]

    assert wait_for(lambda: finished(env, name), "the triggered run to finish", env, timeout=90) == "Complete"
    assert env.marks() == {"part-2026-11-01-0": 1, "part-2026-11-01-1": 1, "report-2026-11-01": 1}
    [run] = summarize_runs(env.runs("daily-report"), now=datetime.now(TOKYO))
    assert (run.job, run.outcome, run.manual, run.scheduled) == (name, "Complete", True, "2026-11-01T03:00:00+09:00")


def test_a_secret_env_reaches_every_step_pod_from_the_secret_and_appears_nowhere_in_plain_text(env: Env) -> None:
    import base64

    from kubernetes import client

    value = "s3cr3t-token-value"
    api = env.cluster.api_client()
    try:
        client.CoreV1Api(api).create_namespaced_secret(
            NAMESPACE,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "pipeline-secret"},
                "data": {"token": base64.b64encode(value.encode()).decode()},
            },
        )
    finally:
        api.close()
    config = dataclasses.replace(
        schedule(env.cache), secret_env=parse_secret_refs("SCHEDULE_TEST_SECRET=pipeline-secret/token")
    )
    objects = build_objects(config)
    assert value not in json.dumps(objects)
    list(env.client.apply(objects))
    cronjob = env.client.read_cronjob(NAMESPACE, "daily-report")
    when = scheduled_time_for_date(CRON, DAY, "Asia/Tokyo")
    job = env.client.create_job(
        NAMESPACE, job_from_cronjob(cronjob, name="daily-report-m00000002", scheduled_time=when)
    )
    name = job["metadata"]["name"]

    assert wait_for(lambda: finished(env, name), "the triggered run to finish", env, timeout=90) == "Complete"
    given = {p.name: p.read_text() for p in env.markers.glob("*.secret")}
    assert given == {
        f"{step}.secret": value for step in ("part-2026-11-01-0", "part-2026-11-01-1", "report-2026-11-01")
    }
    # The step Jobs the driver made carry the reference, never the value.
    step_jobs = [
        j
        for j in env.jobs("app.kubernetes.io/managed-by=gokart-k8s")
        if "gokart-k8s.io/unique-id" in j["metadata"]["labels"]
    ]
    assert len(step_jobs) == 3 and value not in json.dumps(step_jobs)
    for step_job in step_jobs:
        [container] = step_job["spec"]["template"]["spec"]["containers"]
        assert {
            "name": "SCHEDULE_TEST_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "pipeline-secret", "key": "token"}},
        } in container["env"]
