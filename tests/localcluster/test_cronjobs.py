"""The CronJob controller, driven by a manual clock.

Reference: https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes import client

from gokart_k8s.localcluster import LocalCluster, ManualClock
from gokart_k8s.scheduling import cron
from tests.localcluster.conftest import job_condition, wait_for

START = datetime(2030, 1, 7, 9, 58, 30, tzinfo=timezone.utc)  # a Monday


def _cronjob(name: str, schedule: str, script: str = "true", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            **spec,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "terminationGracePeriodSeconds": 1,
                            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script]}],
                        }
                    },
                }
            },
        },
    }


@pytest.fixture
def clocked(local_cluster_factory: Any) -> tuple[LocalCluster, ManualClock, client.BatchV1Api]:
    clock = ManualClock(START)
    cluster: LocalCluster = local_cluster_factory(clock=clock, cronjob_sync_seconds=3600)
    return cluster, clock, client.BatchV1Api(cluster.api_client())


def _jobs(batch: client.BatchV1Api) -> list[str]:
    return sorted(j.metadata.name for j in batch.list_namespaced_job("default").items)


def test_cron_parser_handles_ranges_steps_lists_and_names() -> None:
    s = cron.parse("*/15 9-17 * JAN,mar mon-fri")
    assert s.minutes == {0, 15, 30, 45} and s.hours == set(range(9, 18))
    assert s.months == {1, 3} and s.weekdays == {1, 2, 3, 4, 5}
    assert cron.parse("@hourly").minutes == {0}
    with pytest.raises(cron.CronError):
        cron.parse("61 * * * *")


def test_job_is_created_on_schedule_with_real_name_and_annotation(clocked: Any) -> None:
    """Job name <cronjob>-<scheduled unix minutes>, annotation batch.kubernetes.io/cronjob-scheduled-timestamp."""
    cluster, clock, batch = clocked
    batch.create_namespaced_cron_job("default", _cronjob("tick", "0 10 * * *"))
    cluster.sync_cronjobs(START.replace(hour=9, minute=59))
    assert _jobs(batch) == []
    due = START.replace(hour=10, minute=0, second=0)
    clock.set(due + timedelta(seconds=5))
    cluster.sync_cronjobs()
    name = f"tick-{int(due.timestamp() // 60)}"
    assert _jobs(batch) == [name]
    job = batch.read_namespaced_job(name, "default")
    assert job.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] == "2030-01-07T10:00:00Z"
    assert job.metadata.owner_references[0].kind == "CronJob"
    cj = batch.read_namespaced_cron_job("tick", "default")
    assert cj.status.last_schedule_time == due


def test_time_zone_shifts_the_schedule(clocked: Any) -> None:
    """spec.timeZone: 10:00 in Asia/Tokyo is 01:00 UTC (cron-jobs#time-zones)."""
    cluster, clock, batch = clocked
    batch.create_namespaced_cron_job("default", _cronjob("tokyo", "0 10 * * *", timeZone="Asia/Tokyo"))
    clock.set(datetime(2030, 1, 8, 1, 0, 10, tzinfo=timezone.utc))
    cluster.sync_cronjobs()
    due = datetime(2030, 1, 8, 1, 0, tzinfo=timezone.utc)
    assert _jobs(batch) == [f"tokyo-{int(due.timestamp() // 60)}"]


def test_forbid_skips_while_previous_run_is_active_and_replace_replaces_it(clocked: Any) -> None:
    cluster, clock, batch = clocked
    batch.create_namespaced_cron_job("default", _cronjob("forbid", "* * * * *", "sleep 60", concurrencyPolicy="Forbid"))
    batch.create_namespaced_cron_job(
        "default", _cronjob("replace", "* * * * *", "sleep 60", concurrencyPolicy="Replace")
    )
    for minutes in (1, 2):
        clock.set(START.replace(second=0) + timedelta(minutes=minutes, seconds=1))
        cluster.sync_cronjobs()
        wait_for(
            lambda: all(
                j.status.active
                for j in batch.list_namespaced_job("default").items
                if j.metadata.deletion_timestamp is None
            ),
            what="jobs active",
        )
    first = int((START.replace(second=0) + timedelta(minutes=1)).timestamp() // 60)
    names = wait_for(lambda: n if f"replace-{first}" not in (n := _jobs(batch)) else None, what="replaced job gone")
    assert names == [f"forbid-{first}", f"replace-{first + 1}"]


def test_history_limits_keep_only_the_newest_finished_jobs(clocked: Any) -> None:
    cluster, clock, batch = clocked
    batch.create_namespaced_cron_job("default", _cronjob("hist", "* * * * *", successfulJobsHistoryLimit=1))
    base = START.replace(second=0)
    for minutes in (1, 2, 3):
        clock.set(base + timedelta(minutes=minutes, seconds=1))
        cluster.sync_cronjobs()
        wait_for(
            lambda: all(j.status.completion_time for j in batch.list_namespaced_job("default").items),
            what="jobs complete",
        )
    cluster.sync_cronjobs()
    assert _jobs(batch) == [f"hist-{int((base + timedelta(minutes=3)).timestamp() // 60)}"]


def test_suspended_cronjob_creates_nothing(clocked: Any) -> None:
    cluster, clock, batch = clocked
    batch.create_namespaced_cron_job("default", _cronjob("paused", "* * * * *", suspend=True))
    clock.advance(minutes=5)
    cluster.sync_cronjobs()
    assert _jobs(batch) == []


def test_manual_trigger_creates_an_annotated_job(clocked: Any) -> None:
    """Like kubectl create job --from=cronjob/X: annotation cronjob.kubernetes.io/instantiate=manual."""
    cluster, _, batch = clocked
    batch.create_namespaced_cron_job("default", _cronjob("adhoc", "0 0 1 1 *"))
    name = cluster.trigger_cronjob("default", "adhoc")
    job = batch.read_namespaced_job(name, "default")
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    wait_for(lambda: job_condition(batch, name, "Complete"), what="manual job complete")


def test_invalid_schedule_and_time_zone_are_422(clocked: Any) -> None:
    _, _, batch = clocked
    from kubernetes.client.rest import ApiException

    for spec, field in (
        (_cronjob("bad", "every minute"), "spec.schedule"),
        (_cronjob("badtz", "* * * * *", timeZone="Mars/Olympus"), "spec.timeZone"),
    ):
        with pytest.raises(ApiException) as err:
            batch.create_namespaced_cron_job("default", spec)
        assert err.value.status == 422 and field in err.value.body
