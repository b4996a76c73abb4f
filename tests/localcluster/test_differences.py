"""What a real cluster does that the local cluster does not: each row of that table in
docs/local-cluster.md is kept true here (a test fails the day the difference goes away, so the
table is updated with the code)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from kubernetes import client

from gokart_k8s.localcluster import LocalCluster
from tests.localcluster.conftest import pod_manifest, wait_for
from tests.localcluster.kubectl_tool import Kubectl


def _succeeded(core: client.CoreV1Api, name: str) -> client.V1Pod:
    pod: client.V1Pod = wait_for(
        lambda: p if (p := core.read_namespaced_pod(name, "default")).status.phase in ("Succeeded", "Failed") else None,
        60,
        f"{name} ended",
    )
    assert pod.status.phase == "Succeeded"
    return pod


def test_images_are_never_pulled(core: client.CoreV1Api) -> None:
    """Real: ErrImagePull/ImagePullBackOff for an image that does not exist. Here: it runs."""
    manifest = pod_manifest("imageless", "true")
    manifest["spec"]["containers"][0]["image"] = "registry.invalid/does-not-exist:0"
    core.create_namespaced_pod("default", manifest)
    _succeeded(core, "imageless")


def test_pods_share_this_machines_filesystem(core: client.CoreV1Api, tmp_path: Path) -> None:
    """Real: each container has its own filesystem. Here: a pod writes where the test reads."""
    target = tmp_path / "written-by-the-pod"
    core.create_namespaced_pod("default", pod_manifest("writer", f"echo hi > {target}"))
    _succeeded(core, "writer")
    assert target.read_text() == "hi\n"


def test_only_the_first_container_runs(core: client.CoreV1Api, tmp_path: Path) -> None:
    """Real: every container (and init containers, sidecars) runs. Here: only the first."""
    marker = tmp_path / "second-ran"
    manifest = pod_manifest("pair", "true")
    manifest["spec"]["containers"].append(
        {"name": "second", "image": "busybox", "command": ["sh", "-c", f"touch {marker}"]}
    )
    manifest["spec"]["initContainers"] = [
        {"name": "init", "image": "busybox", "command": ["sh", "-c", f"touch {marker}"]}
    ]
    core.create_namespaced_pod("default", manifest)
    pod = _succeeded(core, "pair")
    assert [s.name for s in pod.status.container_statuses] == ["main"]
    assert not marker.exists()


def test_probes_are_not_run(core: client.CoreV1Api) -> None:
    """Real: a failing liveness probe restarts the container. Here: probes are ignored."""
    manifest = pod_manifest("unprobed", "sleep 2", restartPolicy="OnFailure")
    manifest["spec"]["containers"][0]["livenessProbe"] = {
        "exec": {"command": ["false"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    core.create_namespaced_pod("default", manifest)
    pod = _succeeded(core, "unprobed")
    assert pod.status.container_statuses[0].restart_count == 0


def test_volumes_are_not_mounted(core: client.CoreV1Api) -> None:
    """Real: a configMap volume appears as files. Here: volumes are stored, not mounted."""
    core.create_namespaced_config_map("default", {"metadata": {"name": "files"}, "data": {"a.txt": "x"}})
    mount = "/gokart-k8s-local-cluster-test-mount"
    manifest = pod_manifest("mounted", f"test ! -e {mount}/a.txt")
    manifest["spec"]["volumes"] = [{"name": "files", "configMap": {"name": "files"}}]
    manifest["spec"]["containers"][0]["volumeMounts"] = [{"name": "files", "mountPath": mount}]
    core.create_namespaced_pod("default", manifest)
    _succeeded(core, "mounted")


def _get(cluster: LocalCluster, path: str, **headers: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(f"{cluster.url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_any_token_is_accepted(local_cluster: LocalCluster) -> None:
    """Real: authentication and RBAC. Here: any bearer token (or none) may do anything."""
    code, _, _ = _get(local_cluster, "/api/v1/namespaces/kube-system/secrets", Authorization="Bearer nonsense")
    assert code == 200


def test_responses_are_json_even_when_protobuf_is_preferred(local_cluster: LocalCluster) -> None:
    """Real: protobuf answers for Accept: application/vnd.kubernetes.protobuf. Here: always JSON."""
    code, content_type, body = _get(
        local_cluster, "/api/v1/namespaces/default", Accept="application/vnd.kubernetes.protobuf,application/json"
    )
    assert (code, content_type) == (200, "application/json")
    assert json.loads(body)["kind"] == "Namespace"


def test_pod_disruption_budgets_are_not_served(local_cluster: LocalCluster) -> None:
    """Real: PodDisruptionBudget objects. Here: 404; protection annotations stand in (test_disruptions)."""
    code, _, _ = _get(local_cluster, "/apis/policy/v1/namespaces/default/poddisruptionbudgets")
    assert code == 404


def test_kubectl_exec_is_not_available(local_cluster: LocalCluster, core: client.CoreV1Api, tmp_path: Path) -> None:
    """Real: kubectl exec/port-forward/attach/cp. Here: there is no container to enter."""
    core.create_namespaced_pod("default", pod_manifest("closed", "sleep 30"))
    wait_for(lambda: core.read_namespaced_pod("closed", "default").status.phase == "Running", 60, "Running")
    result = Kubectl(local_cluster, tmp_path).run("exec", "closed", "--", "true")
    assert result.returncode != 0


@pytest.mark.parametrize("field", ["securityContext", "hostNetwork"])
def test_security_settings_are_recorded_not_applied(core: client.CoreV1Api, field: str) -> None:
    """Real: runAsUser, runAsNonRoot and hostNetwork change how the container runs. Here: stored only."""
    manifest = pod_manifest("unconfined", "true")
    if field == "securityContext":
        manifest["spec"]["securityContext"] = {"runAsNonRoot": True, "runAsUser": 4242}
    else:
        manifest["spec"]["hostNetwork"] = True
    core.create_namespaced_pod("default", manifest)
    _succeeded(core, "unconfined")
