"""The kubernetes-client adapter at its boundary: real HTTP on 127.0.0.1, scripted answers."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from gokart_k8s.cluster.kubernetes import KubernetesCluster, connect
from gokart_k8s.errors import ClusterError, SubmissionError
from tests.driver.conftest import Scripted, write_kubeconfig

JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "step-0123"}, "spec": {}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_without_any_kubeconfig_the_error_says_how_to_get_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ClusterError, match=r"No kubeconfig found.*get-credentials.*--backend local-cluster"):
        connect()


def test_an_unknown_context_lists_the_contexts_there_are(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", context="dev")
    with pytest.raises(ClusterError, match=r"kube_context 'prod' is not in .* it has dev"):
        connect(kubeconfig=str(path), context="prod")


def test_an_unreachable_cluster_fails_the_preflight_with_advice(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{free_port()}")
    api = connect(kubeconfig=str(path), request_timeout=2)
    with pytest.raises(
        ClusterError, match=r"Cannot reach the Kubernetes API .*: the connection was refused\. .*kubectl cluster-info"
    ):
        api.check_access("default")


def test_a_forbidden_namespace_fails_the_preflight_saying_which_permissions_are_needed(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    scripted.reply(403, {"kind": "Status", "message": 'jobs.batch is forbidden: User "ann" cannot list'})
    with pytest.raises(ClusterError, match="Forbidden: listing jobs in namespace 'team-a'") as info:
        scripted_api.check_access("team-a")
    assert "create/get/list/watch/delete on jobs" in str(info.value)
    assert isinstance(info.value.__cause__, ApiException)
    assert info.value.__cause__.status == 403


def test_a_denied_access_review_fails_the_preflight_before_any_step_runs(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    listed = {"kind": "JobList", "metadata": {"resourceVersion": "1"}, "items": []}
    scripted.reply(200, listed).reply(200, listed).reply(201, {"status": {"allowed": False, "reason": "RBAC"}})
    with pytest.raises(ClusterError, match="Forbidden: creating jobs in namespace 'default'"):
        scripted_api.check_access("default")


def test_throttled_and_unavailable_answers_are_retried_until_the_job_is_created(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    scripted.reply(429, {}, Retry_After="0").reply(503).reply(201, JOB)
    job, created = scripted_api.create_job("default", JOB)
    assert created and job["metadata"]["name"] == "step-0123"
    assert [r[0] for r in scripted.requests] == ["POST", "POST", "POST"]


def test_a_job_name_already_taken_returns_the_existing_job_for_adoption(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    existing = {**JOB, "status": {"active": 1}}
    scripted.reply(409, {"kind": "Status", "reason": "AlreadyExists"}).reply(200, existing)
    job, created = scripted_api.create_job("default", JOB)
    assert (created, job["status"]) == (False, {"active": 1})
    assert [r[:2] for r in scripted.requests] == [
        ("POST", "/apis/batch/v1/namespaces/default/jobs"),
        ("GET", "/apis/batch/v1/namespaces/default/jobs/step-0123"),
    ]


def test_a_refused_manifest_is_a_submission_error_with_the_servers_reason(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    scripted.reply(422, {"kind": "Status", "message": "spec.template.spec.restartPolicy: Unsupported value"})
    with pytest.raises(SubmissionError, match=r"restartPolicy: Unsupported value.*gokart-k8s render"):
        scripted_api.create_job("default", JOB)


def test_server_errors_that_persist_end_in_a_cluster_error_after_bounded_retries(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    scripted.reply(500, {"message": "etcd timeout"})
    with pytest.raises(ClusterError, match=r"500.*etcd timeout"):
        scripted_api.read_job("default", "step-0123")
    assert len(scripted.requests) == 6  # the first try and five retries


def test_deleting_a_job_asks_for_background_propagation_so_pods_are_not_orphaned(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    scripted.reply(200, {"kind": "Status"})
    scripted_api.delete_job("default", "step-0123")
    method, _path, body = scripted.requests[0]
    assert (method, body["propagationPolicy"]) == ("DELETE", "Background")


def test_a_missing_job_reads_as_none_and_deletes_quietly(scripted: Scripted, scripted_api: KubernetesCluster) -> None:
    scripted.reply(404, {"kind": "Status", "reason": "NotFound"})
    assert scripted_api.read_job("default", "gone") is None
    scripted_api.delete_job("default", "gone")


def test_a_watch_from_an_expired_resource_version_reports_410_as_an_event(
    scripted: Scripted, scripted_api: KubernetesCluster
) -> None:
    scripted.reply(410, {"kind": "Status", "code": 410, "reason": "Expired"})
    events = list(scripted_api.watch("pods", "default", "a=b", resource_version="5", timeout_seconds=5))
    assert [e.expired for e in events] == [True]
    _method, path, _ = scripted.requests[0]
    assert "timeoutSeconds=5" in path and "resourceVersion=5" in path and "labelSelector=a%3Db" in path
