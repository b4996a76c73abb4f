"""Pods a real cluster would not start do not start here either, and the driver says what to change.

- a Secret (or key) the environment reads is missing → the container waits in
  ``CreateContainerConfigError`` (https://kubernetes.io/docs/tasks/debug/debug-application/debug-pods/#my-pod-stays-waiting);
- a ``serviceAccountName`` that does not exist → the pod is refused (403) and its Job records
  ``FailedCreate`` (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#serviceaccount);
- every namespace has a ``default`` ServiceAccount
  (https://kubernetes.io/docs/concepts/security/service-accounts/#default-service-accounts);
- a command that cannot be started → ``Failed`` with exit 128 ``StartError`` under ``restartPolicy:
  Never``, a ``Running`` pod in ``CrashLoopBackOff`` otherwise
  (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-phase).

The driver's advice is asserted with :func:`gokart_k8s.cluster.outcomes.classify` on the objects the
cluster returns, and with the driver itself for the service account (checked before any submission).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import luigi.configuration
import pytest
from kubernetes import client
from luigi.task_register import Register

from gokart_k8s.cluster.kubernetes import connect
from gokart_k8s.cluster.outcomes import OutcomeKind, classify, classify_pod
from gokart_k8s.driver import run_steps
from gokart_k8s.errors import ClusterError
from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.manifests import build_job_manifest
from gokart_k8s.placement import Placement
from gokart_k8s.platforms import get_profile
from gokart_k8s.settings import Settings
from gokart_k8s.steps import collect
from tests.driver.pipelines import Leaf
from tests.localcluster.conftest import condition, job_manifest, job_pods, pod_manifest, wait_for


def plain(api: client.ApiClient, obj: Any) -> dict[str, Any]:
    """The camelCase dict the API sent (what the driver classifies)."""
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result


def waiting(core: client.CoreV1Api, name: str) -> Any:
    def state() -> Any:
        statuses = core.read_namespaced_pod(name, "default").status.container_statuses or []
        return statuses[0].state.waiting if statuses and statuses[0].state.waiting else None

    return wait_for(state, 60, f"pod {name} waiting")


# ------------------------------------------------------------------------------ missing Secret


def test_an_env_var_from_a_missing_secret_holds_the_container_in_create_container_config_error(
    core: client.CoreV1Api, batch: client.BatchV1Api, local_cluster_api: client.ApiClient, tmp_path: Path
) -> None:
    """The step's manifest, with secret_env, on the embedded cluster: the pod never runs, the driver
    names the Secret to create; creating it lets the same pod start."""
    spec = next(iter(collect([Leaf(i=7)], Settings())[0])).spec
    manifest = build_job_manifest(
        spec,
        Placement(pool=None, spot=False),
        Settings(),
        run_id="r",
        image="local/pipeline:test",
        env={},
        name="needs-secret",
        secret_env={"DB_PASSWORD": ("db-creds", "password")},
        run_as_user=None,
    )
    manifest["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", 'echo "pw=$DB_PASSWORD"']
    batch.create_namespaced_job("default", manifest)
    pod = wait_for(lambda: job_pods(core, "needs-secret"), 60, "a pod")[0].metadata.name
    state = waiting(core, pod)
    assert (state.reason, state.message) == ("CreateContainerConfigError", 'secret "db-creds" not found')
    assert core.read_namespaced_pod(pod, "default").status.phase == "Pending"

    job = plain(local_cluster_api, batch.read_namespaced_job("needs-secret", "default"))
    pods = [plain(local_cluster_api, p) for p in job_pods(core, "needs-secret")]
    outcome = classify(job, pods)
    assert outcome.kind is OutcomeKind.CANNOT_START and outcome.final
    assert 'secret "db-creds" not found' in outcome.message
    assert "Create the Secret 'db-creds'" in outcome.advice and "secret_env" in outcome.advice

    core.create_namespaced_secret("default", {"metadata": {"name": "db-creds"}, "stringData": {"password": "s3"}})
    wait_for(lambda: core.read_namespaced_pod(pod, "default").status.phase == "Succeeded", 60, "the pod ran")
    assert core.read_namespaced_pod_log(pod, "default") == "pw=s3\n"


def test_a_missing_key_of_an_existing_secret_is_a_config_error_too(
    core: client.CoreV1Api, local_cluster_api: client.ApiClient
) -> None:
    core.create_namespaced_secret("default", {"metadata": {"name": "db-creds"}, "stringData": {"user": "u"}})
    manifest = pod_manifest("keyless", "true")
    manifest["spec"]["containers"][0]["env"] = [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}}}
    ]
    core.create_namespaced_pod("default", manifest)
    state = waiting(core, "keyless")
    assert (state.reason, state.message) == (
        "CreateContainerConfigError",
        "couldn't find key password in Secret default/db-creds",
    )
    outcome = classify_pod(plain(local_cluster_api, core.read_namespaced_pod("keyless", "default")))
    assert outcome.kind is OutcomeKind.CANNOT_START
    assert "Create the Secret 'db-creds'" in outcome.advice


def test_an_optional_secret_reference_does_not_hold_the_container(core: client.CoreV1Api) -> None:
    manifest = pod_manifest("optional", "echo pw=${PW:-unset}")
    manifest["spec"]["containers"][0]["env"] = [
        {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "password", "optional": True}}}
    ]
    manifest["spec"]["containers"][0]["envFrom"] = [{"secretRef": {"name": "absent-too", "optional": True}}]
    core.create_namespaced_pod("default", manifest)
    wait_for(lambda: core.read_namespaced_pod("optional", "default").status.phase == "Succeeded", 60, "Succeeded")
    assert core.read_namespaced_pod_log("optional", "default") == "pw=unset\n"


def test_env_from_a_missing_config_map_is_a_config_error(core: client.CoreV1Api) -> None:
    manifest = pod_manifest("cm-less", "true")
    manifest["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    core.create_namespaced_pod("default", manifest)
    state = waiting(core, "cm-less")
    assert (state.reason, state.message) == ("CreateContainerConfigError", 'configmap "settings" not found')


# --------------------------------------------------------------------------- service accounts


def test_every_namespace_has_a_default_service_account_that_pods_run_as(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team-a"}})
    for ns in ("default", "kube-system", "team-a"):
        assert core.read_namespaced_service_account("default", ns).metadata.name == "default"
    created = core.create_namespaced_pod("team-a", pod_manifest("plain", "true"))
    assert created.spec.service_account_name == "default"


def test_a_missing_service_account_refuses_the_pod_and_the_job_records_failed_create(
    core: client.CoreV1Api, batch: client.BatchV1Api
) -> None:
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod("default", pod_manifest("runner", "true", serviceAccountName="pipeline"))
    assert refused.value.status == 403
    assert json.loads(refused.value.body)["message"] == (
        'pods "runner" is forbidden: error looking up service account default/pipeline: '
        'serviceaccount "pipeline" not found'
    )

    batch.create_namespaced_job("default", job_manifest("no-sa", "true", pod={"serviceAccountName": "pipeline"}))

    def failed_create() -> Any:
        events = core.list_namespaced_event("default", field_selector="involvedObject.name=no-sa").items
        return [e for e in events if e.reason == "FailedCreate"]

    event = wait_for(failed_create, 60, "FailedCreate")[0]
    assert event.type == "Warning"
    assert 'error looking up service account default/pipeline: serviceaccount "pipeline" not found' in event.message
    assert job_pods(core, "no-sa") == []
    assert batch.read_namespaced_job("no-sa", "default").status.active in (0, None)

    # The controller retries: once the account exists, the Job runs.
    core.create_namespaced_service_account("default", {"metadata": {"name": "pipeline"}})
    job = wait_for(lambda: condition(batch.read_namespaced_job("no-sa", "default"), "Complete"), 60, "Complete")
    assert job.status == "True"


def test_the_driver_refuses_to_start_with_a_service_account_that_does_not_exist(
    local_cluster: LocalCluster, tmp_path: Path
) -> None:
    """Nothing is submitted: on a real cluster the Jobs would wait forever with FailedCreate events."""
    config = luigi.configuration.get_config()
    had = config.has_option("TaskOnKart", "workspace_directory")
    config.set("TaskOnKart", "workspace_directory", f"{tmp_path}/workspace/")
    try:
        settings = dataclasses.replace(Settings(), service_account="pipeline")
        api = connect(kubeconfig=str(local_cluster.write_kubeconfig(tmp_path / "kubeconfig")), request_timeout=10)
        steps, _ = collect([Leaf(i=1)], settings)
        with pytest.raises(ClusterError) as refused:
            run_steps(
                steps,
                settings,
                api,
                run_id="r",
                image="local/pipeline:test",
                env={},
                profile=get_profile(settings),
                is_complete=lambda steps: set(),
            )
    finally:
        if not had:
            config.remove_option("TaskOnKart", "workspace_directory")
        # luigi keeps every task it built in a process-wide cache: Leaf(i=1) of this workspace must
        # not be what a later test in this process gets for Leaf(i=1) in its own.
        Register.clear_instance_cache()
    said = str(refused.value)
    assert "Service account 'pipeline' does not exist in namespace 'default'" in said
    assert "kubectl create serviceaccount pipeline -n default" in said
    assert "service_account in [gokart_k8s]" in said
    assert api.list("jobs", "default", "").items == []


# ------------------------------------------------------------------------- command cannot start


def test_a_command_that_cannot_start_fails_the_pod_with_exit_128_under_restart_policy_never(
    core: client.CoreV1Api, local_cluster_api: client.ApiClient
) -> None:
    manifest = pod_manifest("no-binary", "true")
    manifest["spec"]["containers"][0]["command"] = ["/nonexistent/gokart-k8s-missing", "step"]
    core.create_namespaced_pod("default", manifest)
    wait_for(lambda: core.read_namespaced_pod("no-binary", "default").status.phase == "Failed", 60, "Failed")
    pod = core.read_namespaced_pod("no-binary", "default")
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (128, "StartError")
    outcome = classify_pod(plain(local_cluster_api, pod))
    assert outcome.kind is OutcomeKind.CANNOT_START and outcome.exit_code == 128
    assert "/nonexistent/gokart-k8s-missing" in outcome.message
    assert "gokart-k8s on its PATH" in outcome.advice


@pytest.mark.parametrize("policy", ["OnFailure", "Always"])
def test_a_command_that_cannot_start_crash_loops_in_a_running_pod_otherwise(
    core: client.CoreV1Api, local_cluster_api: client.ApiClient, policy: str
) -> None:
    manifest = pod_manifest("looping", "true", restartPolicy=policy)
    manifest["spec"]["containers"][0]["command"] = ["/nonexistent/gokart-k8s-missing"]
    core.create_namespaced_pod("default", manifest)

    def crash_looping() -> Any:
        pod = core.read_namespaced_pod("looping", "default")
        statuses = pod.status.container_statuses or []
        waiting_state = statuses[0].state.waiting if statuses else None
        return pod if waiting_state and waiting_state.reason == "CrashLoopBackOff" else None

    pod = wait_for(crash_looping, 60, "CrashLoopBackOff")
    assert pod.status.phase == "Running"
    status = pod.status.container_statuses[0]
    assert status.last_state.terminated.reason == "StartError"
    assert status.restart_count >= 1
    outcome = classify_pod(plain(local_cluster_api, pod))
    assert outcome.kind is OutcomeKind.CANNOT_START and outcome.final
    assert "gokart-k8s on its PATH" in outcome.advice
