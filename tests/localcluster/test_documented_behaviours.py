"""Rows of docs/local-cluster.md that had no test of their own: each test names its row.

References: https://kubernetes.io/docs/reference/using-api/api-concepts/ (API semantics),
https://kubernetes.io/docs/concepts/workloads/controllers/job/ and .../cron-jobs/ (controllers),
https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/ (scheduler),
https://kubernetes.io/docs/tasks/inject-data-application/ (kubelet environment).
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes import client

from gokart_k8s.localcluster import LocalCluster, ManualClock
from gokart_k8s.pools import NodePool
from tests.localcluster.conftest import condition, job_condition, job_manifest, job_pods, pod_manifest, wait_for

YEARLY = "0 0 1 1 *"


def _cronjob(name: str, schedule: str = YEARLY, **spec: Any) -> dict[str, Any]:
    template = job_manifest("unused", "true", backoffLimit=0)["spec"]
    return {"metadata": {"name": name}, "spec": {"schedule": schedule, **spec, "jobTemplate": {"spec": template}}}


# ------------------------------------------------------------------------------------ API server


def test_generation_bumps_on_spec_changes_only(batch: client.BatchV1Api) -> None:
    """Row "Monotonic global resourceVersion; uid; creationTimestamp; generation bumps on spec change"."""
    created = batch.create_namespaced_cron_job("default", _cronjob("gen"))
    assert created.metadata.generation == 1
    labelled = batch.patch_namespaced_cron_job("gen", "default", {"metadata": {"labels": {"a": "b"}}})
    assert labelled.metadata.generation == 1
    assert int(labelled.metadata.resource_version) > int(created.metadata.resource_version)
    changed = batch.patch_namespaced_cron_job("gen", "default", {"spec": {"schedule": "0 0 2 1 *"}})
    assert changed.metadata.generation == 2


def test_status_is_a_subresource(batch: client.BatchV1Api) -> None:
    """Row "Status subresource isolation": ignored on create, kept by PUT, the only thing /status changes."""
    body = _cronjob("iso")
    body["status"] = {"lastScheduleTime": "2030-01-01T00:00:00Z"}
    created = batch.create_namespaced_cron_job("default", body)
    assert created.status is None or created.status.last_schedule_time is None
    batch.patch_namespaced_cron_job_status(
        "iso",
        "default",
        {"metadata": {"labels": {"via": "status"}}, "status": {"lastScheduleTime": "2030-01-02T00:00:00Z"}},
    )
    current = batch.read_namespaced_cron_job("iso", "default")
    assert current.status.last_schedule_time == datetime(2030, 1, 2, tzinfo=timezone.utc)
    assert not current.metadata.labels  # /status changed nothing but status
    current.status.last_schedule_time = datetime(2031, 1, 1, tzinfo=timezone.utc)
    current.metadata.labels = {"via": "put"}
    replaced = batch.replace_namespaced_cron_job("iso", "default", current)
    assert replaced.metadata.labels == {"via": "put"}
    assert replaced.status.last_schedule_time == datetime(2030, 1, 2, tzinfo=timezone.utc)


def test_strategic_merge_patch_directives(core: client.CoreV1Api) -> None:
    """Row "Patch": ``$patch: delete`` by merge key, ``$patch: replace``, ``$deleteFromPrimitiveList``."""
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "smp", "finalizers": ["a.example/x", "b.example/y"]}, "data": {"k": "v"}}
    )
    core.patch_namespaced_config_map(
        "smp", "default", {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.example/x"]}}
    )
    core.patch_namespaced_config_map("smp", "default", {"data": {"$patch": "replace", "only": "1"}})
    cm = core.read_namespaced_config_map("smp", "default")
    assert cm.metadata.finalizers == ["b.example/y"]
    assert cm.data == {"only": "1"}

    core.create_namespaced_pod("default", pod_manifest("conds", "sleep 30", nodeSelector={"nowhere": "x"}))
    wait_for(lambda: core.read_namespaced_pod_status("conds", "default").status.conditions, what="PodScheduled")
    core.patch_namespaced_pod_status(
        "conds", "default", {"status": {"conditions": [{"type": "Custom", "status": "True"}]}}
    )
    core.patch_namespaced_pod_status(
        "conds", "default", {"status": {"conditions": [{"type": "Custom", "$patch": "delete"}]}}
    )
    assert [c.type for c in core.read_namespaced_pod("conds", "default").status.conditions] == ["PodScheduled"]


def test_delete_options_dry_run_and_delete_collection(core: client.CoreV1Api) -> None:
    """Rows "create (incl. dryRun) … deletecollection" and "Delete: … preconditions.uid"."""
    dry = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert dry.metadata.name == "dry"
    with pytest.raises(client.ApiException) as missing:
        core.read_namespaced_config_map("dry", "default")
    assert missing.value.status == 404

    core.create_namespaced_config_map("default", {"metadata": {"name": "kept"}})
    with pytest.raises(client.ApiException) as conflict:
        core.delete_namespaced_config_map("kept", "default", body={"preconditions": {"uid": "not-its-uid"}})
    assert conflict.value.status == 409
    assert core.read_namespaced_config_map("kept", "default").metadata.name == "kept"

    for name, team in (("x1", "x"), ("x2", "x"), ("y1", "y")):
        core.create_namespaced_config_map("default", {"metadata": {"name": name, "labels": {"team": team}}})
    core.delete_collection_namespaced_config_map("default", label_selector="team=x")
    left = sorted(c.metadata.name for c in core.list_namespaced_config_map("default").items)
    assert "x1" not in left and "x2" not in left and "y1" in left and "kept" in left


def test_field_selector_on_any_path_with_not_equal(core: client.CoreV1Api) -> None:
    """Row "Field selectors =, ==, != on any dotted path"."""
    core.create_namespaced_pod("default", pod_manifest("parked", "sleep 30", nodeSelector={"nowhere": "x"}))
    core.create_namespaced_pod("default", pod_manifest("quick", "true"))
    wait_for(lambda: core.read_namespaced_pod("quick", "default").status.phase == "Succeeded", what="Succeeded")
    names = [
        p.metadata.name for p in core.list_namespaced_pod("default", field_selector="status.phase!=Succeeded").items
    ]
    assert names == ["parked"]
    by_policy = core.list_namespaced_pod("default", field_selector="spec.restartPolicy==Never").items
    assert sorted(p.metadata.name for p in by_policy) == ["parked", "quick"]


def test_a_method_a_collection_does_not_allow_is_405(local_cluster: LocalCluster) -> None:
    """Row "Errors as Status objects: … 405"."""
    request = urllib.request.Request(
        f"{local_cluster.url}/api/v1/namespaces/default/configmaps", data=b"{}", method="PUT"
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 405
    status = json.loads(err.value.read())
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "MethodNotAllowed", 405)


def test_deleting_a_namespace_deletes_its_contents(core: client.CoreV1Api, batch: client.BatchV1Api) -> None:
    """Row "Namespaces: … deleting a namespace deletes its contents"."""
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_config_map("scratch", {"metadata": {"name": "c"}})
    batch.create_namespaced_job("scratch", job_manifest("j", "sleep 30"))
    wait_for(lambda: core.list_namespaced_pod("scratch").items, what="a pod")
    core.delete_namespace("scratch")
    wait_for(lambda: not core.list_namespaced_pod("scratch").items, 60, "the pods gone")
    assert core.list_namespaced_config_map("scratch").items == []
    assert batch.list_namespaced_job("scratch").items == []
    assert "scratch" not in [n.metadata.name for n in core.list_namespace().items]


def test_defaults_of_pods_jobs_and_cronjobs(core: client.CoreV1Api, batch: client.BatchV1Api) -> None:
    """Row "Defaults"."""
    bare = {
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    }
    pod = core.create_namespaced_pod("default", bare)
    assert (pod.spec.restart_policy, pod.spec.termination_grace_period_seconds) == ("Always", 30)
    assert (pod.spec.dns_policy, pod.spec.scheduler_name) == ("ClusterFirst", "default-scheduler")
    assert pod.spec.containers[0].image_pull_policy == "Always"  # untagged means :latest
    assert (pod.status.phase, pod.status.qos_class) == ("Pending", "BestEffort")
    tagged = pod_manifest("tagged", "true", resources={"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}})
    made = core.create_namespaced_pod("default", tagged)
    assert made.spec.containers[0].image_pull_policy == "IfNotPresent"
    assert made.status.qos_class == "Burstable"

    job = batch.create_namespaced_job(
        "default",
        {"metadata": {"name": "defaults"}, "spec": {"template": {"spec": {**bare["spec"], "restartPolicy": "Never"}}}},
    )
    spec = job.spec
    assert (spec.backoff_limit, spec.completions, spec.parallelism) == (6, 1, 1)
    assert spec.pod_replacement_policy == "TerminatingOrFailed"
    uid = job.metadata.uid
    assert spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    assert spec.template.metadata.labels["batch.kubernetes.io/job-name"] == "defaults"

    cj = batch.create_namespaced_cron_job("default", _cronjob("cj-defaults"))
    assert cj.spec.concurrency_policy == "Allow"
    assert (cj.spec.successful_jobs_history_limit, cj.spec.failed_jobs_history_limit) == (3, 1)


# ------------------------------------------------------------------------------- Job controller


def test_suspend_deletes_the_active_pod_and_resume_starts_a_new_one(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """Row "suspend: active pods deleted, Suspended condition, startTime cleared; resume sets Suspended=False"."""
    batch.create_namespaced_job("default", job_manifest("pausable", "sleep 30"))
    first = wait_for(lambda: job_pods(core, "pausable"), what="a pod")[0].metadata.name
    batch.patch_namespaced_job("pausable", "default", {"spec": {"suspend": True}})
    job = wait_for(lambda: job_condition(batch, "pausable", "Suspended"), 60, "Suspended")
    assert job.status.start_time is None
    wait_for(lambda: not job_pods(core, "pausable"), 60, "the pod deleted")
    batch.patch_namespaced_job("pausable", "default", {"spec": {"suspend": False}})
    wait_for(
        lambda: condition(batch.read_namespaced_job("pausable", "default"), "Suspended").status == "False",
        60,
        "Suspended=False",
    )
    second = wait_for(lambda: job_pods(core, "pausable"), 60, "a new pod")[0].metadata.name
    assert second != first


_STUBBORN = "trap '' TERM; sleep 60 & wait; sleep 60"


@pytest.mark.parametrize("policy", ["Failed", "TerminatingOrFailed"])
def test_pod_replacement_policy_decides_when_a_terminating_pod_is_replaced(
    batch: client.BatchV1Api, core: client.CoreV1Api, policy: str
) -> None:
    """Row "podReplacementPolicy": ``Failed`` waits for the terminating pod to be terminal,
    ``TerminatingOrFailed`` replaces it at once."""
    grace = 3 if policy == "Failed" else 30
    # Failed needs a podFailurePolicy; TerminatingOrFailed must not have one (422 otherwise).
    rules = [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]
    extra: dict[str, Any] = {"podFailurePolicy": {"rules": rules}} if policy == "Failed" else {}
    manifest = job_manifest("replaced", _STUBBORN, grace=grace, podReplacementPolicy=policy, **extra)
    batch.create_namespaced_job("default", manifest)
    old = wait_for(lambda: [p for p in job_pods(core, "replaced") if p.status.phase == "Running"], 60, "Running")[
        0
    ].metadata.name
    core.delete_namespaced_pod(old, "default")
    replacement = wait_for(lambda: [p for p in job_pods(core, "replaced") if p.metadata.name != old], 60, "replacement")
    assert replacement
    still = [p for p in job_pods(core, "replaced") if p.metadata.name == old]
    if policy == "Failed":
        assert not still or still[0].status.phase == "Failed"
    else:
        assert still and still[0].metadata.deletion_timestamp is not None
        assert still[0].status.phase == "Running"


def test_on_failure_restarts_in_the_same_pod_and_restarts_count_toward_backoff_limit(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """Rows "backoffLimit (with OnFailure, container restarts count too)" and kubelet "restartPolicy
    OnFailure/Always: restart in the same pod (restartCount, lastState)"."""
    batch.create_namespaced_job("default", job_manifest("flaky", "exit 3", restartPolicy="OnFailure", backoffLimit=4))

    def restarted() -> Any:
        pods = job_pods(core, "flaky")
        statuses = (pods[0].status.container_statuses or []) if pods else []
        return statuses[0] if statuses and statuses[0].restart_count >= 1 else None

    status = wait_for(restarted, 60, "a restart in the same pod", interval=0.01)
    assert status.last_state.terminated.exit_code == 3
    job = wait_for(lambda: job_condition(batch, "flaky", "Failed"), 60, "Failed")
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=flaky").items
    assert [e.reason for e in events].count("SuccessfulCreate") == 1  # one pod: its restarts were counted


# ------------------------------------------------------------------------------- CronJob controller


@pytest.fixture
def clocked(local_cluster_factory: Any) -> tuple[LocalCluster, ManualClock, client.BatchV1Api, client.CoreV1Api]:
    clock = ManualClock(datetime(2030, 1, 7, 9, 58, 30, tzinfo=timezone.utc))
    cluster: LocalCluster = local_cluster_factory(clock=clock, cronjob_sync_seconds=3600)
    api = cluster.api_client()
    return cluster, clock, client.BatchV1Api(api), client.CoreV1Api(api)


def test_starting_deadline_skips_a_start_that_is_too_late(clocked: Any) -> None:
    """Row "startingDeadlineSeconds": 10:00 seen at 10:05 with a 60 s deadline is not started."""
    cluster, clock, batch, _ = clocked
    batch.create_namespaced_cron_job("default", _cronjob("late", "0 10 * * *", startingDeadlineSeconds=60))
    batch.create_namespaced_cron_job("default", _cronjob("anytime", "0 10 * * *"))
    clock.set(datetime(2030, 1, 7, 10, 5, tzinfo=timezone.utc))
    cluster.sync_cronjobs()
    assert [j.metadata.name.rsplit("-", 1)[0] for j in batch.list_namespaced_job("default").items] == ["anytime"]


def test_too_many_missed_times_warns_and_runs_the_latest_then_records_last_successful_time(clocked: Any) -> None:
    """Rows "more than 100 missed times → TooManyMissedTimes event, the most recent one still runs"
    and "status … lastSuccessfulTime"."""
    cluster, clock, batch, core = clocked
    batch.create_namespaced_cron_job("default", _cronjob("behind", "* * * * *"))
    clock.advance(minutes=200)
    cluster.sync_cronjobs()
    events = core.list_namespaced_event("default", field_selector="involvedObject.name=behind").items
    assert "TooManyMissedTimes" in [e.reason for e in events]
    latest = clock().replace(second=0, microsecond=0)
    name = f"behind-{int(latest.timestamp() // 60)}"
    assert [j.metadata.name for j in batch.list_namespaced_job("default").items] == [name]
    wait_for(lambda: job_condition(batch, name, "Complete"), 60, "Complete")
    cluster.sync_cronjobs()
    assert batch.read_namespaced_cron_job("behind", "default").status.last_successful_time is not None


# -------------------------------------------------------------------------------------- scheduler

_GENERATIONS = [
    NodePool("old", cpu="2", memory="4Gi", labels={"gen": "2"}),
    NodePool("new", cpu="2", memory="4Gi", labels={"gen": "5"}),
]


def _affinity(expression: dict[str, Any], key: str = "matchExpressions") -> dict[str, Any]:
    terms = [{key: [expression]}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}


def test_node_affinity_gt_lt_and_match_fields(local_cluster_factory: Any) -> None:
    """Row "Filters …: required node affinity (…, Gt, Lt; …; matchFields on metadata.name)"."""
    cluster: LocalCluster = local_cluster_factory(_GENERATIONS)
    core = client.CoreV1Api(cluster.api_client())
    wanted = {
        "newer": _affinity({"key": "gen", "operator": "Gt", "values": ["3"]}),
        "older": _affinity({"key": "gen", "operator": "Lt", "values": ["3"]}),
        "named": _affinity({"key": "metadata.name", "operator": "In", "values": ["old-0"]}, key="matchFields"),
    }
    for name, affinity in wanted.items():
        core.create_namespaced_pod("default", pod_manifest(name, "sleep 30", affinity=affinity))

    def node(name: str) -> str | None:
        result: str | None = core.read_namespaced_pod(name, "default").spec.node_name
        return result

    assert wait_for(lambda: node("newer"), what="bound") == "new-0"
    assert wait_for(lambda: node("older"), what="bound") == "old-0"
    assert wait_for(lambda: node("named"), what="bound") == "old-0"


# ---------------------------------------------------------------------------------------- kubelet


def test_env_from_config_maps_labels_and_the_pod_ip(core: client.CoreV1Api, local_cluster: LocalCluster) -> None:
    """Row "Environment: … valueFrom.fieldRef (… labels …, status.podIP = 127.0.0.1), configMapKeyRef, envFrom"."""
    core.create_namespaced_config_map("default", {"metadata": {"name": "settings"}, "data": {"mode": "fast", "x": "1"}})
    manifest = pod_manifest("envy", 'echo "$MODE $TEAM $IP $PFX_x"')
    manifest["metadata"]["labels"] = {"team": "data"}
    manifest["spec"]["containers"][0]["env"] = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['team']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    manifest["spec"]["containers"][0]["envFrom"] = [{"prefix": "PFX_", "configMapRef": {"name": "settings"}}]
    core.create_namespaced_pod("default", manifest)
    wait_for(lambda: core.read_namespaced_pod("envy", "default").status.phase == "Succeeded", what="Succeeded")
    assert local_cluster.pod_logs("default", "envy") == "fast data 127.0.0.1 1\n"


def test_log_timestamps_prefix_each_line(core: client.CoreV1Api) -> None:
    """Row "stdout and stderr, merged, are the pod log: log with … timestamps"."""
    core.create_namespaced_pod("default", pod_manifest("stamped", "echo one; echo two >&2"))
    wait_for(lambda: core.read_namespaced_pod("stamped", "default").status.phase == "Succeeded", what="Succeeded")
    lines = core.read_namespaced_pod_log("stamped", "default", timestamps=True).splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["one", "two"]
    for line in lines:
        stamp = line.split(" ", 1)[0]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", stamp), stamp
        assert abs(datetime.fromisoformat(stamp.replace("Z", "+00:00")) - datetime.now(timezone.utc)) < timedelta(
            hours=1
        )


def test_the_rest_of_the_process_group_is_killed_when_the_main_process_exits(
    core: client.CoreV1Api, local_cluster: LocalCluster
) -> None:
    """Row "Termination: … When the main process exits, the rest of its group is killed, as a cgroup would be"."""
    core.create_namespaced_pod("default", pod_manifest("leaver", "sleep 300 & echo $!"))
    wait_for(lambda: core.read_namespaced_pod("leaver", "default").status.phase == "Succeeded", what="Succeeded")
    pid = int(local_cluster.pod_logs("default", "leaver").strip())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as fh:  # a zombie not yet reaped is gone too
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"

    wait_for(gone, 30, "the background process killed")


# ------------------------------------------------------------------------------- more rows


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"parallelism": 2}, "spec.parallelism"),
        ({"completions": 3}, "spec.completions"),
        ({"completionMode": "Indexed"}, "spec.completionMode"),
    ],
)
def test_more_than_one_pod_per_job_is_refused(batch: client.BatchV1Api, spec: dict[str, Any], field: str) -> None:
    """Row "One pod per Job: parallelism and completions above 1 and completionMode: Indexed are refused with 422"."""
    with pytest.raises(client.ApiException) as refused:
        batch.create_namespaced_job("default", job_manifest("wide", "true", **spec))
    assert refused.value.status == 422
    assert field in [c["field"] for c in json.loads(refused.value.body)["details"]["causes"]]


def test_a_time_zone_inside_the_schedule_is_refused(batch: client.BatchV1Api) -> None:
    """Row "5-field cron …": ``TZ=``/``CRON_TZ=`` in the schedule is refused (set timeZone)."""
    with pytest.raises(client.ApiException) as refused:
        batch.create_namespaced_cron_job("default", _cronjob("tz", "CRON_TZ=Asia/Tokyo 0 10 * * *"))
    assert refused.value.status == 422
    assert "spec.schedule" in refused.value.body


def test_spot_pools_are_annotated_and_evictions_leave_a_warning_event(local_cluster_factory: Any) -> None:
    """Rows "Spot pools are marked with the annotation gokart-k8s.io/spot" and "Every disruption …
    → a Warning Event (LocalClusterEviction …)"."""
    pools = [NodePool("spot", cpu="2", memory="4Gi", spot=True), NodePool("std", cpu="2", memory="4Gi")]
    cluster: LocalCluster = local_cluster_factory(pools)
    core = client.CoreV1Api(cluster.api_client())
    marks = {n.metadata.name: n.metadata.annotations["gokart-k8s.io/spot"] for n in core.list_node().items}
    assert marks == {"spot-0": "true", "std-0": "false"}
    core.create_namespaced_pod("default", pod_manifest("evictee", "sleep 30"))
    wait_for(lambda: core.read_namespaced_pod("evictee", "default").status.phase == "Running", what="Running")
    cluster.evict_pod("default", "evictee", grace_seconds=1)

    def warned() -> Any:
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=evictee").items
        return [e for e in events if e.reason == "LocalClusterEviction"]

    assert wait_for(warned, 30, "LocalClusterEviction")[0].type == "Warning"


def test_the_gokart_k8s_command_runs_this_installation(core: client.CoreV1Api, local_cluster: LocalCluster) -> None:
    """Row "Command mapping: … gokart-k8s → sys.executable -m gokart_k8s"."""
    manifest = pod_manifest("cli", "true")
    manifest["spec"]["containers"][0]["command"] = ["gokart-k8s", "--help"]
    core.create_namespaced_pod("default", manifest)
    wait_for(lambda: core.read_namespaced_pod("cli", "default").status.phase == "Succeeded", 60, "Succeeded")
    assert "usage: gokart-k8s" in local_cluster.pod_logs("default", "cli")


def test_job_status_counts_ready_and_terminating_pods(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    """Row "Status: active, ready, terminating, …"."""
    batch.create_namespaced_job("default", job_manifest("counted", _STUBBORN, grace=30))
    pod = wait_for(lambda: [p for p in job_pods(core, "counted") if p.status.phase == "Running"], 60, "Running")[0]
    wait_for(lambda: batch.read_namespaced_job("counted", "default").status.ready == 1, 60, "ready 1")
    core.delete_namespaced_pod(pod.metadata.name, "default")
    job = wait_for(
        lambda: j if (j := batch.read_namespaced_job("counted", "default")).status.terminating == 1 else None,
        60,
        "terminating 1",
    )
    assert job.status.active == 1  # the replacement (TerminatingOrFailed, the default without a podFailurePolicy)


def test_cron_days_match_either_restricted_field_and_seven_is_sunday() -> None:
    """Row "5-field cron with …, 7 = Sunday, …; a day matches either restricted day field (Vixie cron)"."""
    from gokart_k8s.scheduling import cron

    friday_or_13th = cron.parse("0 0 13 * FRI")
    new_year = datetime(2030, 1, 1, tzinfo=timezone.utc)  # a Tuesday; the 4th is a Friday, the 13th a Sunday
    first = friday_or_13th.next_after(new_year)
    assert first == datetime(2030, 1, 4, tzinfo=timezone.utc)
    assert friday_or_13th.next_after(datetime(2030, 1, 11, 1, tzinfo=timezone.utc)) == datetime(
        2030, 1, 13, tzinfo=timezone.utc
    )
    assert cron.parse("0 0 * * 7").weekdays == cron.parse("0 0 * * SUN").weekdays


def test_openapi_without_kubernetes_validate_says_what_to_install(
    local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row "OpenAPI v3": the schemas come from kubernetes-validate; without it, a 404 naming the extra."""
    from gokart_k8s.localcluster import openapi

    def missing(name: str) -> Any:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(openapi.importlib_resources, "files", missing)
    openapi._definitions.cache_clear()
    openapi.document.cache_clear()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{local_cluster.url}/openapi/v3", timeout=30)
        assert err.value.code == 404
        assert "pip install 'gokart-k8s[local-cluster]'" in json.loads(err.value.read())["message"]
    finally:
        openapi._definitions.cache_clear()
        openapi.document.cache_clear()
