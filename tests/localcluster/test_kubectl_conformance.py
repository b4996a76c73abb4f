"""The commands a user types during a rehearsal, run with a current standalone kubectl, print what a
real cluster makes them print: the same columns and values, not just exit code 0.

kubectl reference: https://kubernetes.io/docs/reference/kubectl/ ; server-side printing (Tables for
lists, single objects and watch events): https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from gokart_k8s.localcluster import LocalCluster
from tests.localcluster.conftest import job_condition, job_manifest, job_pods, wait_for
from tests.localcluster.kubectl_tool import KUBECTL, Kubectl, header, kubectl_version, table


@pytest.fixture(scope="module", autouse=True)
def say_which_kubectl(request: pytest.FixtureRequest) -> None:
    """Print the kubectl binary and version these tests ran with (shown with ``-s`` / in the header)."""
    line = f"kubectl conformance tests use {KUBECTL} ({kubectl_version()})"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")


@pytest.fixture
def kubectl(local_cluster: LocalCluster, tmp_path: Path) -> Kubectl:
    return Kubectl(local_cluster, tmp_path)


@pytest.fixture
def flag(tmp_path: Path) -> Iterator[Path]:
    """A file a pod waits for, so a test decides when the pod's command ends."""
    yield tmp_path / "go"


def waiting_job(name: str, flag: Path, before: str = "", after: str = "done") -> dict[str, object]:
    script = f"echo {before}; " if before else ""
    script += f"while [ ! -e {flag} ]; do sleep 0.05; done; echo {after}"
    return job_manifest(name, script)


def running_pod(core: client.CoreV1Api, job: str) -> str:
    def running() -> str | None:
        pods = [p for p in job_pods(core, job) if p.status.phase == "Running"]
        return pods[0].metadata.name if pods else None

    return wait_for(running, 60, f"a Running pod of {job}")


def test_the_kubectl_used_is_a_current_standalone_binary() -> None:
    """Not a wrapper that picks a client matching the server: protobuf bodies (1.32+) are exercised."""
    major, minor = (int(x) for x in kubectl_version().lstrip("v").split(".")[:2])
    assert (major, minor) >= (1, 37)
    assert "dispatcher" not in kubectl_version()


# --------------------------------------------------------------------------------------------- get


def test_get_list_single_and_wide_columns_of_jobs_and_pods(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job("default", job_manifest("greeter", "echo hello"))
    job = wait_for(lambda: job_condition(batch, "greeter", "Complete"), 60, "Complete")
    pod = job_pods(core, "greeter")[0].metadata.name

    listing = kubectl.ok("get", "jobs")
    assert header(listing) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    [row] = table(listing)
    assert (row["NAME"], row["STATUS"], row["COMPLETIONS"]) == ("greeter", "Complete", "1/1")

    single = kubectl.ok("get", "job", "greeter")
    assert header(single) == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table(single)[0]["STATUS"] == "Complete"

    wide = table(kubectl.ok("get", "job", "greeter", "-o", "wide"))[0]
    assert wide["CONTAINERS"] == "main"
    assert wide["IMAGES"] == "busybox:1.36"
    assert wide["SELECTOR"] == f"batch.kubernetes.io/controller-uid={job.metadata.uid}"

    pods = kubectl.ok("get", "pod", pod)
    assert header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    [row] = table(pods)
    assert (row["NAME"], row["READY"], row["STATUS"], row["RESTARTS"]) == (pod, "0/1", "Completed", "0")

    wide_pods = kubectl.ok("get", "pods", "-o", "wide")
    assert header(wide_pods) == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED NODE",
        "READINESS GATES",
    ]
    [row] = table(wide_pods)
    assert (row["IP"], row["NODE"], row["NOMINATED NODE"], row["READINESS GATES"]) == (
        "127.0.0.1",
        "default-0",
        "<none>",
        "<none>",
    )


def test_get_nodes_single_and_wide(kubectl: Kubectl) -> None:
    single = kubectl.ok("get", "node", "default-0")
    assert header(single) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    [row] = table(single)
    assert (row["NAME"], row["STATUS"], row["ROLES"], row["VERSION"]) == (
        "default-0",
        "Ready",
        "<none>",
        "v1.31.0-local",
    )
    [wide] = table(kubectl.ok("get", "nodes", "-o", "wide"))
    assert header(kubectl.ok("get", "nodes", "-o", "wide"))[5:] == [
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ]
    assert (wide["INTERNAL-IP"], wide["EXTERNAL-IP"], wide["CONTAINER-RUNTIME"]) == (
        "127.0.0.1",
        "<none>",
        "local://subprocess",
    )


def test_get_output_json_and_yaml_are_the_stored_object(kubectl: Kubectl, batch: client.BatchV1Api) -> None:
    batch.create_namespaced_job("default", job_manifest("shaped", "true"))
    job = wait_for(lambda: job_condition(batch, "shaped", "Complete"), 60, "Complete")
    as_json = json.loads(kubectl.ok("get", "job", "shaped", "-o", "json"))
    as_yaml = yaml.safe_load(kubectl.ok("get", "job", "shaped", "-o", "yaml"))
    for doc in (as_json, as_yaml):
        assert (doc["apiVersion"], doc["kind"]) == ("batch/v1", "Job")
        assert doc["metadata"]["uid"] == job.metadata.uid
        assert doc["status"]["succeeded"] == 1
        assert doc["spec"]["template"]["spec"]["containers"][0]["command"] == ["sh", "-c", "true"]
    listed = json.loads(kubectl.ok("get", "jobs", "-o", "json"))
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["shaped"]


def test_get_pods_watch_prints_each_change_as_a_row(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api, flag: Path
) -> None:
    batch.create_namespaced_job("default", waiting_job("watched", flag))
    pod = running_pod(core, "watched")
    watch = kubectl.start("get", "pods", "-w")
    try:
        first = watch.wait_for(lambda line: line.startswith("NAME"))
        assert header(first) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        running = watch.wait_for(lambda line: line.startswith(pod))
        assert table(f"{first}\n{running}")[0]["STATUS"] == "Running"
        assert table(f"{first}\n{running}")[0]["READY"] == "1/1"
        flag.touch()
        completed = watch.wait_for(lambda line: line.startswith(pod) and "Completed" in line)
        assert table(f"{first}\n{completed}")[0]["READY"] == "0/1"
    finally:
        watch.stop()
    assert sum(1 for line in watch.lines if line.startswith("NAME")) == 1  # one header, then rows


def test_get_jobs_watch_shows_running_then_complete(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api, flag: Path
) -> None:
    batch.create_namespaced_job("default", waiting_job("watched-job", flag))
    running_pod(core, "watched-job")
    watch = kubectl.start("get", "jobs", "-w")
    try:
        first = watch.wait_for(lambda line: line.startswith("NAME"))
        running = watch.wait_for(lambda line: line.startswith("watched-job"))
        assert table(f"{first}\n{running}")[0]["STATUS"] == "Running"
        flag.touch()
        done = watch.wait_for(lambda line: line.startswith("watched-job") and "Complete" in line)
        assert table(f"{first}\n{done}")[0]["COMPLETIONS"] == "1/1"
    finally:
        watch.stop()


# ---------------------------------------------------------------------- describe, logs, wait


def test_describe_job_and_pod(kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api) -> None:
    batch.create_namespaced_job("default", job_manifest("described", "echo hi"))
    wait_for(lambda: job_condition(batch, "described", "Complete"), 60, "Complete")
    pod = job_pods(core, "described")[0].metadata.name
    job_text = kubectl.ok("describe", "job", "described")
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed" in job_text
    assert f"Created pod: {pod}" in job_text
    assert "SuccessfulCreate" in job_text and "Completed" in job_text
    pod_text = kubectl.ok("describe", "pod", pod)
    assert "Status:           Succeeded" in pod_text
    assert "Node:             default-0/127.0.0.1" in pod_text
    assert "Service Account:  default" in pod_text
    assert "Controlled By:  Job/described" in pod_text
    assert "Reason:       Completed" in pod_text and "Exit Code:    0" in pod_text
    assert f"Successfully assigned default/{pod} to default-0" in pod_text


def test_logs_follow_streams_until_the_container_ends(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api, flag: Path
) -> None:
    batch.create_namespaced_job("default", waiting_job("talker", flag, before="one", after="two"))
    running_pod(core, "talker")
    logs = kubectl.start("logs", "-f", "job/talker")
    try:
        assert logs.wait_for(lambda line: bool(line)) == "one"
        assert logs.proc.poll() is None  # still following
        flag.touch()
        code, rest = logs.finish()
    finally:
        logs.stop()
    assert code == 0
    assert rest == "two"


def test_wait_for_condition_complete(kubectl: Kubectl, batch: client.BatchV1Api, flag: Path) -> None:
    batch.create_namespaced_job("default", waiting_job("awaited", flag))
    waiter = kubectl.start("wait", "--for=condition=complete", "job/awaited", "--timeout=120s")
    try:
        wait_for(lambda: batch.read_namespaced_job("awaited", "default").status.active == 1, 60, "active")
        assert waiter.proc.poll() is None
        flag.touch()
        code, out = waiter.finish(timeout=120)
    finally:
        waiter.stop()
    assert code == 0
    assert out == "job.batch/awaited condition met"


# ------------------------------------------------------------------------------------ create


def test_create_job_with_a_command_is_sent_as_protobuf_and_runs(kubectl: Kubectl, batch: client.BatchV1Api) -> None:
    """kubectl 1.32+ sends this body as protobuf (application/vnd.kubernetes.protobuf)."""
    out = kubectl.ok("create", "job", "by-kubectl", "--image=busybox:1.36", "--", "sh", "-c", "echo made by kubectl")
    assert out == "job.batch/by-kubectl created\n"
    job = wait_for(lambda: job_condition(batch, "by-kubectl", "Complete"), 60, "Complete")
    container = job.spec.template.spec.containers[0]
    assert (container.name, container.image, container.command) == (
        "by-kubectl",
        "busybox:1.36",
        ["sh", "-c", "echo made by kubectl"],
    )
    assert job.spec.template.spec.restart_policy == "Never"
    assert kubectl.ok("logs", "job/by-kubectl") == "made by kubectl\n"


def test_create_namespace_and_cronjob_are_sent_as_protobuf(kubectl: Kubectl, batch: client.BatchV1Api) -> None:
    assert kubectl.ok("create", "namespace", "rehearsal") == "namespace/rehearsal created\n"
    assert table(kubectl.ok("get", "namespace", "rehearsal"))[0]["STATUS"] == "Active"
    out = kubectl.ok("create", "cronjob", "nightly", "--image=busybox:1.36", "--schedule=0 3 * * *", "--", "true")
    assert out == "cronjob.batch/nightly created\n"
    [row] = table(kubectl.ok("get", "cronjob", "nightly", "-o", "wide"))
    assert (row["SCHEDULE"], row["TIMEZONE"], row["SUSPEND"], row["ACTIVE"], row["LAST SCHEDULE"]) == (
        "0 3 * * *",
        "<none>",
        "False",
        "0",
        "<none>",
    )
    assert (row["CONTAINERS"], row["IMAGES"]) == ("nightly", "busybox:1.36")


def test_create_job_from_cronjob_copies_the_whole_template(kubectl: Kubectl, batch: client.BatchV1Api) -> None:
    """The copied template holds what the project's CronJobs hold (podFailurePolicy, resources,
    tolerations, affinity, env from a field), all of which must survive the protobuf body."""
    template = job_manifest(
        "unused",
        "echo from the cronjob",
        resources={"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        pod={
            "tolerations": [{"key": "gokart-k8s.io/pool", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
                        ]
                    }
                }
            },
        },
        backoffLimit=0,
        podFailurePolicy={
            "rules": [
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
            ]
        },
    )["spec"]
    template["template"]["spec"]["containers"][0]["env"] = [
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]
    batch.create_namespaced_cron_job(
        "default",
        {"metadata": {"name": "nightly"}, "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": template}}},
    )
    assert kubectl.ok("create", "job", "by-hand", "--from=cronjob/nightly") == "job.batch/by-hand created\n"
    job = wait_for(lambda: job_condition(batch, "by-hand", "Complete"), 60, "Complete")
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.owner_references[0].kind == "CronJob"
    spec = job.spec
    assert spec.backoff_limit == 0  # a pointer field whose zero is kept
    assert [r.action for r in spec.pod_failure_policy.rules] == ["Ignore", "FailJob"]
    assert spec.pod_failure_policy.rules[1].on_exit_codes.values == [42]
    pod_spec = spec.template.spec
    assert pod_spec.containers[0].resources.limits == {"memory": "128Mi"}
    assert pod_spec.containers[0].resources.requests == {"cpu": "100m", "memory": "64Mi"}
    assert pod_spec.tolerations[0].key == "gokart-k8s.io/pool"
    term = pod_spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
    assert term.match_expressions[0].values == ["linux"]
    assert pod_spec.containers[0].env[0].value_from.field_ref.field_path == "metadata.name"


def test_create_and_apply_from_a_file_validate_fields_on_the_server(
    kubectl: Kubectl, batch: client.BatchV1Api, tmp_path: Path
) -> None:
    """kubectl reads /openapi/v3, sees fieldValidation, and sends fieldValidation=Strict
    (https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation)."""
    manifest = {"apiVersion": "batch/v1", "kind": "Job", **job_manifest("from-file", "echo from a file")}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert kubectl.ok("create", "-f", str(path)) == "job.batch/from-file created\n"
    assert kubectl.fails("create", "-f", str(path)).strip().endswith('jobs.batch "from-file" already exists')

    typo = {**manifest, "metadata": {"name": "typo"}}
    typo["spec"] = {**manifest["spec"], "backofLimit": 1}  # type: ignore[dict-item]
    path.write_text(yaml.safe_dump(typo))
    said = kubectl.fails("create", "-f", str(path))
    assert 'strict decoding error: unknown field "spec.backofLimit"' in said
    assert kubectl.run("get", "job", "typo").returncode != 0


def test_apply_client_side_creates_then_leaves_unchanged_then_configures(
    kubectl: Kubectl, batch: client.BatchV1Api, tmp_path: Path
) -> None:
    manifest = {"apiVersion": "batch/v1", "kind": "Job", **job_manifest("applied", "true")}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert kubectl.ok("apply", "-f", str(path)) == "job.batch/applied created\n"
    assert kubectl.ok("apply", "-f", str(path)) == "job.batch/applied unchanged\n"
    manifest["metadata"] = {"name": "applied", "labels": {"team": "data"}}
    path.write_text(yaml.safe_dump(manifest))
    assert kubectl.ok("apply", "-f", str(path)) == "job.batch/applied configured\n"
    job = batch.read_namespaced_job("applied", "default")
    assert job.metadata.labels == {"team": "data"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in job.metadata.annotations


def test_apply_server_side_is_refused_with_415_even_for_a_new_object(
    kubectl: Kubectl, batch: client.BatchV1Api, tmp_path: Path
) -> None:
    """docs/local-cluster.md: server-side apply is not emulated and answers 415 (not 404)."""
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "batch/v1", "kind": "Job", **job_manifest("ssa", "true")}))
    said = kubectl.fails("apply", "--server-side", "-f", str(path))
    assert "Server-side apply not available on the server" in said
    assert "server-side apply is not emulated" in said
    assert kubectl.run("get", "job", "ssa").returncode != 0


def test_explain_reads_the_served_openapi_documents(kubectl: Kubectl) -> None:
    out = kubectl.ok("explain", "job.spec.podFailurePolicy")
    assert out.startswith("GROUP:      batch\nKIND:       Job\nVERSION:    v1\n")
    assert "FIELD: podFailurePolicy <PodFailurePolicy>" in out
    assert "Specifies the policy of handling failed pods." in out  # the field's own description
    assert "rules\t<[]PodFailurePolicyRule> -required-" in out
    pods = kubectl.ok("explain", "pod.spec.containers.resources.limits")
    assert "FIELD: limits <map[string]Quantity>" in pods


def test_the_served_openapi_documents_pass_an_outside_validator(kubectl: Kubectl, local_cluster: LocalCluster) -> None:
    """v2 and every v3 document, as kubectl fetches them, checked by openapi-spec-validator."""
    from openapi_spec_validator import validate

    v2 = json.loads(kubectl.ok("get", "--raw", "/openapi/v2"))
    validate(v2)
    job = v2["definitions"]["io.k8s.api.batch.v1.Job"]
    assert job["x-kubernetes-group-version-kind"] == [{"group": "batch", "kind": "Job", "version": "v1"}]
    post = v2["paths"]["/apis/batch/v1/namespaces/{namespace}/jobs"]["post"]
    assert {
        "name": "body",
        "in": "body",
        "required": True,
        "schema": {"$ref": "#/definitions/io.k8s.api.batch.v1.Job"},
    } in post["parameters"]
    documents = json.loads(kubectl.ok("get", "--raw", "/openapi/v3"))["paths"]
    assert {"api/v1", "apis/batch/v1"} <= set(documents)
    for where in documents.values():
        validate(json.loads(kubectl.ok("get", "--raw", where["serverRelativeURL"])))
    request = urllib.request.Request(
        f"{local_cluster.url}/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 406


# ------------------------------------------------------------------------------------ delete


def test_delete_background_removes_the_job_and_its_pods(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job("default", job_manifest("bg", "true"))
    wait_for(lambda: job_condition(batch, "bg", "Complete"), 60, "Complete")
    assert kubectl.ok("delete", "job", "bg") == 'job.batch "bg" deleted from default namespace\n'
    wait_for(lambda: not job_pods(core, "bg"), 60, "the pods garbage-collected")
    assert kubectl.run("get", "job", "bg").returncode != 0


def test_delete_orphan_keeps_the_pods_without_their_owner(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job("default", job_manifest("orphaner", "true"))
    wait_for(lambda: job_condition(batch, "orphaner", "Complete"), 60, "Complete")
    out = kubectl.ok("delete", "job", "orphaner", "--cascade=orphan")
    assert out == 'job.batch "orphaner" deleted from default namespace\n'
    [pod] = job_pods(core, "orphaner")
    assert not pod.metadata.owner_references
    assert table(kubectl.ok("get", "pod", pod.metadata.name))[0]["STATUS"] == "Completed"


def test_delete_foreground_deletes_the_pods_first(
    kubectl: Kubectl, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job("default", job_manifest("fg", "true"))
    wait_for(lambda: job_condition(batch, "fg", "Complete"), 60, "Complete")
    assert (
        kubectl.ok("delete", "job", "fg", "--cascade=foreground") == 'job.batch "fg" deleted from default namespace\n'
    )
    wait_for(lambda: not job_pods(core, "fg"), 60, "the pods deleted")
    assert kubectl.run("get", "job", "fg").returncode != 0


# ------------------------------------------------------------------------------------- nodes


def test_cordon_drain_uncordon(
    kubectl: Kubectl, local_cluster: LocalCluster, batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    batch.create_namespaced_job("default", job_manifest("drained", "sleep 60"))
    pod = running_pod(core, "drained")
    assert kubectl.ok("cordon", "default-0") == "node/default-0 cordoned\n"
    assert table(kubectl.ok("get", "node", "default-0"))[0]["STATUS"] == "Ready,SchedulingDisabled"
    out = kubectl.ok("drain", "default-0", "--grace-period=1", "--timeout=120s")
    assert f"evicting pod default/{pod}" in out
    assert f"pod/{pod} evicted" in out
    assert out.rstrip().endswith("node/default-0 drained")
    evicted = (
        core.read_namespaced_pod(pod, "default")
        if any(p.metadata.name == pod for p in job_pods(core, "drained"))
        else None
    )
    assert evicted is None or evicted.status.phase == "Failed"
    # The replacement waits: the node is cordoned.
    pending = wait_for(lambda: [p for p in job_pods(core, "drained") if p.metadata.name != pod], 60, "a replacement")
    assert pending[0].status.phase == "Pending"
    assert kubectl.ok("uncordon", "default-0") == "node/default-0 uncordoned\n"
    assert table(kubectl.ok("get", "node", "default-0"))[0]["STATUS"] == "Ready"
    wait_for(lambda: [p for p in job_pods(core, "drained") if p.status.phase == "Running"], 60, "rescheduled")


def test_a_protobuf_field_the_cluster_cannot_read_is_refused_by_name(
    kubectl: Kubectl, batch: client.BatchV1Api
) -> None:
    """docs/local-cluster.md: a field outside the decoded set is refused with 415 naming it, never dropped."""
    template = job_manifest("unused", "true")["spec"]
    template["template"]["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    batch.create_namespaced_cron_job(
        "default",
        {"metadata": {"name": "mounting"}, "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": template}}},
    )
    said = kubectl.fails("create", "job", "copied", "--from=cronjob/mounting")
    assert "cannot decode this protobuf body (field 1 of PodSpec at .spec.template.spec" in said
    assert "send it as JSON instead" in said
    assert kubectl.run("get", "job", "copied").returncode != 0
