"""The Job controller and the kubelet behave as the Kubernetes docs describe.

References: https://kubernetes.io/docs/concepts/workloads/controllers/job/ and
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/
"""

from __future__ import annotations

import os
import signal

from kubernetes import client, watch

from gokart_k8s.localcluster import LocalCluster
from tests.localcluster.conftest import condition, job_condition, job_manifest, job_pods, pod_events, wait_for

IGNORE_DISRUPTIONS = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
    ]
}


def _terminated(pod: client.V1Pod) -> client.V1ContainerStateTerminated:
    return pod.status.container_statuses[0].state.terminated


def test_successful_job_gets_success_criteria_met_then_complete(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """1.31+: SuccessCriteriaMet is added before Complete; completionTime is set
    (job.md#job-termination-and-cleanup)."""
    batch.create_namespaced_job("default", job_manifest("ok", "echo done"))
    job = wait_for(lambda: job_condition(batch, "ok", "Complete"), what="Complete")
    types = [c.type for c in job.status.conditions]
    assert types.index("SuccessCriteriaMet") < types.index("Complete")
    assert job.status.succeeded == 1 and job.status.active == 0 and job.status.completion_time is not None
    pod = job_pods(core, "ok")[0]
    assert pod.status.phase == "Succeeded" and _terminated(pod).reason == "Completed"
    assert _terminated(pod).exit_code == 0


def test_job_pods_carry_job_labels_and_a_controller_owner_reference(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """Pods get batch.kubernetes.io/job-name, controller-uid and a controller ownerReference (job.md)."""
    job = batch.create_namespaced_job("default", job_manifest("labelled", "true"))
    pod = wait_for(lambda: job_pods(core, "labelled"), what="pod")[0]
    labels = pod.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "labelled"
    assert labels["batch.kubernetes.io/controller-uid"] == labels["controller-uid"] == job.metadata.uid
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("Job", "labelled", True)


def test_backoff_limit_exceeded_fails_the_job_after_limit_plus_one_pods(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """backoffLimit=1: two failed pods, then FailureTarget and Failed with reason BackoffLimitExceeded."""
    batch.create_namespaced_job("default", job_manifest("flaky", "exit 3", backoffLimit=1))
    job = wait_for(lambda: job_condition(batch, "flaky", "Failed"), what="Failed")
    assert condition(job, "Failed").reason == "BackoffLimitExceeded"
    assert condition(job, "FailureTarget").reason == "BackoffLimitExceeded"
    assert job.status.failed == 2
    assert [_terminated(p).exit_code for p in job_pods(core, "flaky")] == [3, 3]


def test_fail_job_rule_on_exit_code_fails_at_once(batch: client.BatchV1Api) -> None:
    """podFailurePolicy FailJob onExitCodes In [42]: no retry, reason PodFailurePolicy (job.md#pod-failure-policy)."""
    batch.create_namespaced_job(
        "default", job_manifest("usererror", "exit 42", backoffLimit=6, podFailurePolicy=IGNORE_DISRUPTIONS)
    )
    job = wait_for(lambda: job_condition(batch, "usererror", "Failed"), what="Failed")
    assert condition(job, "Failed").reason == "PodFailurePolicy"
    assert "exit code 42" in condition(job, "Failed").message
    assert job.status.failed == 1


def test_ignore_rule_replaces_evicted_pod_without_counting_it(
    local_cluster: LocalCluster, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """Ignore on DisruptionTarget: the evicted pod is replaced and not counted in status.failed
    (job.md#pod-failure-policy: "the counter towards the .backoffLimit is not incremented")."""
    batch.create_namespaced_job(
        "default",
        job_manifest(
            "resumable", "trap 'exit 143' TERM; sleep 30 & wait", backoffLimit=0, podFailurePolicy=IGNORE_DISRUPTIONS
        ),
    )
    first = wait_for(lambda: [p for p in job_pods(core, "resumable") if p.status.phase == "Running"], what="Running")[0]
    local_cluster.evict_pod("default", first.metadata.name)
    replacement = wait_for(
        lambda: [p for p in job_pods(core, "resumable") if p.metadata.name != first.metadata.name],
        what="replacement pod",
    )[0]
    assert replacement.metadata.name != first.metadata.name
    job = batch.read_namespaced_job("resumable", "default")
    assert not job.status.failed
    assert condition(job, "Failed") is None


def test_active_deadline_fails_job_with_deadline_exceeded_and_terminates_pod(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """activeDeadlineSeconds: Failed, reason DeadlineExceeded, running pods terminated (job.md)."""
    batch.create_namespaced_job("default", job_manifest("slow", "sleep 60", activeDeadlineSeconds=1))
    job = wait_for(lambda: job_condition(batch, "slow", "Failed"), what="Failed")
    assert condition(job, "Failed").reason == "DeadlineExceeded"
    assert all(p.status.phase == "Failed" for p in job_pods(core, "slow"))


def test_ttl_after_finished_deletes_job_and_pods(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    """ttlSecondsAfterFinished: the Job is deleted with cascading deletion (ttlafterfinished.md)."""
    batch.create_namespaced_job("default", job_manifest("shortlived", "true", ttlSecondsAfterFinished=0))
    wait_for(lambda: not batch.list_namespaced_job("default").items, what="Job deleted")
    wait_for(lambda: not job_pods(core, "shortlived"), what="pods deleted")


def test_memory_limit_kills_with_oom_killed_137(batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    """Over limits.memory the container is killed: reason OOMKilled, exit code 137
    (assign-memory-resource#exceed-a-containers-memory-limit)."""
    hog = 'python3 -c "x = bytearray(200 * 1024 * 1024); import time; time.sleep(30)"'
    batch.create_namespaced_job(
        "default", job_manifest("hog", hog, backoffLimit=0, resources={"limits": {"memory": "64Mi"}})
    )
    wait_for(lambda: job_condition(batch, "hog", "Failed"), what="Failed")
    term = _terminated(job_pods(core, "hog")[0])
    assert (term.reason, term.exit_code) == ("OOMKilled", 137)


def test_deletion_sends_sigterm_then_sigkill_after_grace(local_cluster: LocalCluster, core: client.CoreV1Api) -> None:
    """Pod termination: TERM, grace period, KILL; the pod ends in a terminal phase (pod-lifecycle#pod-termination)."""
    script = "trap 'echo got TERM' TERM; while true; do sleep 0.1; done"
    from tests.localcluster.conftest import pod_manifest

    core.create_namespaced_pod("default", pod_manifest("stubborn", script, grace=1))
    wait_for(lambda: core.read_namespaced_pod("stubborn", "default").status.phase == "Running", what="Running")
    rv = core.read_namespaced_pod("stubborn", "default").metadata.resource_version
    core.delete_namespaced_pod("stubborn", "default")
    final = None
    for event in pod_events(core, "stubborn", rv, timeout=30):
        if event["type"] == "DELETED":
            final = event["object"]
            break
    assert final is not None
    assert final.status.phase == "Failed"
    assert _terminated(final).exit_code == 137


def test_process_killed_from_outside_is_reported_with_signal(
    local_cluster: LocalCluster, core: client.CoreV1Api
) -> None:
    from tests.localcluster.conftest import pod_manifest

    core.create_namespaced_pod("default", pod_manifest("victim", "sleep 60"))
    pid = wait_for(lambda: local_cluster.pod_pid("default", "victim"), what="pid")
    os.kill(pid, signal.SIGKILL)
    pod = wait_for(
        lambda: (p := core.read_namespaced_pod("victim", "default")).status.phase == "Failed" and p, what="Failed"
    )
    term = _terminated(pod)
    assert (term.exit_code, term.reason, term.message) == (137, "Error", "process was killed by signal 9")


def test_logs_follow_and_tail(local_cluster: LocalCluster, core: client.CoreV1Api) -> None:
    from tests.localcluster.conftest import pod_manifest

    core.create_namespaced_pod("default", pod_manifest("talker", "for i in 1 2 3; do echo line $i; sleep 0.2; done"))
    wait_for(lambda: core.read_namespaced_pod("talker", "default").status.phase != "Pending", what="started")
    followed = list(watch.Watch().stream(core.read_namespaced_pod_log, name="talker", namespace="default"))
    assert followed == ["line 1", "line 2", "line 3"]
    assert core.read_namespaced_pod_log("talker", "default", tail_lines=1) == "line 3\n"


def test_pod_env_working_dir_and_python_mapping(local_cluster_factory: object, tmp_path: object) -> None:
    """command[0] python is this interpreter; env values, $(VAR) expansion and workingDir apply."""
    cluster: LocalCluster = local_cluster_factory(pod_env={"EXTRA": "from-cluster"})  # type: ignore[operator]
    core = client.CoreV1Api(cluster.api_client())
    pod = {
        "metadata": {"name": "py"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.11",
                    "workingDir": str(tmp_path),
                    "command": ["python", "-c"],
                    "args": ["import os, sys; print(sys.executable, os.getcwd(), os.environ['EXTRA'], '$(GREETING)')"],
                    "env": [{"name": "GREETING", "value": "hello"}],
                }
            ],
        },
    }
    core.create_namespaced_pod("default", pod)
    wait_for(lambda: core.read_namespaced_pod("py", "default").status.phase == "Succeeded", what="Succeeded")
    import sys

    assert cluster.pod_logs("default", "py").split() == [sys.executable, str(tmp_path), "from-cluster", "hello"]
