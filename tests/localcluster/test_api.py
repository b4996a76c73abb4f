"""The API server answers the official client like a real one.

Reference: https://kubernetes.io/docs/reference/using-api/api-concepts/
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from gokart_k8s.localcluster import LocalCluster
from tests.localcluster.conftest import job_manifest, pod_manifest, wait_for


def _cm(name: str, labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": "v"}}


def test_create_assigns_uid_resource_version_and_creation_timestamp(core: client.CoreV1Api) -> None:
    """Every object gets metadata.uid, resourceVersion and creationTimestamp (object-meta docs)."""
    a = core.create_namespaced_config_map("default", _cm("a"))
    b = core.create_namespaced_config_map("default", _cm("b"))
    assert a.metadata.uid and a.metadata.uid != b.metadata.uid
    assert int(b.metadata.resource_version) > int(a.metadata.resource_version)
    assert a.metadata.creation_timestamp is not None


def test_generate_name_adds_a_random_suffix(core: client.CoreV1Api) -> None:
    """generateName: the server appends a unique suffix (api-concepts#generated-values)."""
    made = {
        core.create_namespaced_config_map("default", {"metadata": {"generateName": "cfg-"}}).metadata.name
        for _ in range(3)
    }
    assert len(made) == 3 and all(n.startswith("cfg-") and len(n) == 9 for n in made)


def test_get_missing_object_is_404_not_found(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod("nope", "default")
    assert err.value.status == 404
    assert json.loads(err.value.body)["reason"] == "NotFound"


def test_create_twice_is_409_already_exists(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("twice"))
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("default", _cm("twice"))
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_create_in_missing_namespace_is_404(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("missing", _cm("x"))
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda j: j["spec"]["template"]["spec"].update(containers=[]), "spec.template.spec.containers"),
        (lambda j: j["metadata"].update(name="Bad_Name"), "metadata.name"),
        (
            lambda j: j["spec"]["template"]["spec"]["containers"][0].update(resources={"limits": {"memory": "1Gb"}}),
            "spec.template.spec.containers[0].resources.limits[memory]",
        ),
        (lambda j: j["spec"]["template"]["spec"].update(restartPolicy="Always"), "spec.template.spec.restartPolicy"),
        (
            lambda j: (
                j["spec"]["template"]["spec"].update(restartPolicy="OnFailure"),
                j["spec"].update(
                    podFailurePolicy={
                        "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
                    }
                ),
            ),
            "spec.template.spec.restartPolicy",
        ),
        (
            lambda j: j["spec"].update(
                podReplacementPolicy="TerminatingOrFailed",
                podFailurePolicy={"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]},
            ),
            "spec.podReplacementPolicy",
        ),
        (
            lambda j: j["spec"].update(
                podFailurePolicy={"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]}
            ),
            "spec.podFailurePolicy.rules[0].onExitCodes.values[0]",
        ),
    ],
)
def test_malformed_job_is_422_naming_the_field(batch: client.BatchV1Api, mutate: object, field: str) -> None:
    """422 Invalid with details.causes[].field (api-concepts#field-validation; job.md for the Job rules)."""
    job = job_manifest("bad", "true")
    mutate(job)  # type: ignore[operator]
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job("default", job)
    body = json.loads(err.value.body)
    assert err.value.status == 422 and body["reason"] == "Invalid"
    assert field in [c["field"] for c in body["details"]["causes"]]


def test_unknown_resource_is_404_status(local_cluster: LocalCluster) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(local_cluster.url + "/apis/batch/v1/namespaces/default/frobs", timeout=10)
    assert err.value.code == 404
    assert json.loads(err.value.read())["kind"] == "Status"


def test_label_selectors_support_equality_and_sets(core: client.CoreV1Api) -> None:
    """Equality- and set-based requirements (labels#label-selectors)."""
    core.create_namespaced_config_map("default", _cm("p", {"tier": "prod", "app": "x"}))
    core.create_namespaced_config_map("default", _cm("s", {"tier": "staging"}))
    core.create_namespaced_config_map("default", _cm("n", {}))

    def names(selector: str) -> list[str]:
        return sorted(
            i.metadata.name for i in core.list_namespaced_config_map("default", label_selector=selector).items
        )

    assert names("tier=prod") == ["p"]
    assert names("tier!=prod") == ["n", "s"]
    assert names("tier in (prod,staging)") == ["p", "s"]
    assert names("tier notin (prod)") == ["n", "s"]
    assert names("app") == ["p"]
    assert names("!tier") == ["n"]
    assert names("tier,app=x") == ["p"]


def test_field_selector_on_metadata_name(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("one"))
    core.create_namespaced_config_map("default", _cm("two"))
    items = core.list_namespaced_config_map("default", field_selector="metadata.name=two").items
    assert [i.metadata.name for i in items] == ["two"]


def test_patch_merge_json_and_strategic(core: client.CoreV1Api, local_cluster: LocalCluster) -> None:
    """Merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge on conditions by type
    (update-api-object-kubectl-patch)."""
    core.create_namespaced_config_map("default", _cm("patched", {"a": "1"}))
    core.patch_namespaced_config_map("patched", "default", {"metadata": {"labels": {"b": "2"}}})
    core.patch_namespaced_config_map("patched", "default", [{"op": "add", "path": "/data/x", "value": "y"}])
    cm = core.read_namespaced_config_map("patched", "default")
    assert cm.metadata.labels == {"a": "1", "b": "2"} and cm.data == {"k": "v", "x": "y"}
    core.create_namespaced_pod("default", pod_manifest("smp", "sleep 30", nodeSelector={"nowhere": "x"}))
    wait_for(lambda: core.read_namespaced_pod_status("smp", "default").status.conditions, what="PodScheduled")
    core.patch_namespaced_pod_status(
        "smp", "default", {"status": {"conditions": [{"type": "Custom", "status": "True"}]}}
    )
    types = sorted(c.type for c in core.read_namespaced_pod("smp", "default").status.conditions)
    assert types == ["Custom", "PodScheduled"]


def test_replace_with_stale_resource_version_is_409_conflict(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", _cm("r"))
    core.patch_namespaced_config_map("r", "default", {"data": {"k": "w"}})
    cm.data = {"k": "stale"}
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("r", "default", cm)
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "Conflict"


def test_store_only_kinds_round_trip(local_cluster: LocalCluster, core: client.CoreV1Api) -> None:
    rbac = client.RbacAuthorizationV1Api(local_cluster.api_client())
    core.create_namespaced_service_account("default", {"metadata": {"name": "runner"}})
    core.create_namespaced_secret("default", {"metadata": {"name": "s"}, "stringData": {"a": "b"}})
    rbac.create_namespaced_role(
        "default",
        {"metadata": {"name": "r"}, "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}]},
    )
    rbac.create_namespaced_role_binding(
        "default",
        {
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": "default"}],
        },
    )
    assert rbac.read_namespaced_role_binding("rb", "default").role_ref.name == "r"
    assert core.read_namespaced_service_account("runner", "default").metadata.name == "runner"


def test_delete_job_orphans_pods_by_default_and_background_collects_them(
    batch: client.BatchV1Api, core: client.CoreV1Api
) -> None:
    """batch/v1 Jobs default to orphanDependents; Background deletes the pods
    (job.md#job-termination-and-cleanup, garbage-collection.md)."""
    for name in ("orphaning", "cascading"):
        batch.create_namespaced_job("default", job_manifest(name, "sleep 30"))
    for name in ("orphaning", "cascading"):
        wait_for(lambda n=name: core.list_namespaced_pod("default", label_selector=f"job-name={n}").items)
    batch.delete_namespaced_job("orphaning", "default")
    batch.delete_namespaced_job("cascading", "default", propagation_policy="Background")
    wait_for(
        lambda: not core.list_namespaced_pod("default", label_selector="job-name=cascading").items,
        what="cascading pods deleted",
    )
    orphans = core.list_namespaced_pod("default", label_selector="job-name=orphaning").items
    assert len(orphans) == 1 and not orphans[0].metadata.owner_references


def test_watch_streams_added_modified_deleted(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", _cm("w"))
    core.patch_namespaced_config_map("w", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("w", "default")
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
        )
    ]
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_without_resource_version_starts_with_synthetic_added(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", _cm("existing"))
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(core.list_namespaced_config_map, "default", timeout_seconds=1)
    ]
    assert ("ADDED", "existing") in seen


def test_watch_with_selector_sees_objects_leave_as_deleted(core: client.CoreV1Api) -> None:
    """A watch with a selector reports an object that stops matching as DELETED."""
    core.create_namespaced_config_map("default", _cm("sel", {"keep": "yes"}))
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    core.patch_namespaced_config_map("sel", "default", {"metadata": {"labels": {"keep": "no"}}})
    seen = [
        e["type"]
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="keep=yes",
            resource_version=rv,
            timeout_seconds=1,
        )
    ]
    assert seen == ["DELETED"]


def test_watch_from_expired_resource_version_is_410(local_cluster_factory: object) -> None:
    """A resourceVersion older than the retained history gives ERROR 410 Expired
    (api-concepts#410-gone-responses)."""
    cluster = local_cluster_factory(max_events=20)  # type: ignore[operator]
    core = client.CoreV1Api(cluster.api_client())
    first = core.create_namespaced_config_map("default", _cm("old")).metadata.resource_version
    for i in range(40):
        core.create_namespaced_config_map("default", _cm(f"n{i}"))
    with pytest.raises(ApiException) as err:
        list(
            watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=first, timeout_seconds=1)
        )
    assert err.value.status == 410 and "Expired" in str(err.value.reason)


def test_watch_bookmarks_carry_the_current_resource_version(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    events = list(
        watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=2,
        )
    )
    assert events and all(e["type"] == "BOOKMARK" for e in events)
    assert events[-1]["raw_object"]["metadata"]["resourceVersion"] >= rv


def test_watch_sees_writes_from_other_threads(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    writer = threading.Thread(
        target=lambda: [core.create_namespaced_config_map("default", _cm(f"t{i}")) for i in range(10)]
    )
    writer.start()
    names = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=30):
        names.append(event["object"].metadata.name)
        if len(names) == 10:
            w.stop()
    writer.join()
    assert names == [f"t{i}" for i in range(10)]


def test_discovery_lists_batch_and_core_resources(local_cluster: LocalCluster) -> None:
    api = local_cluster.api_client()
    core_names = {r.name for r in client.CoreV1Api(api).get_api_resources().resources}
    batch_names = {r.name for r in client.BatchV1Api(api).get_api_resources().resources}
    assert {"pods", "pods/log", "pods/eviction", "nodes", "events", "namespaces"} <= core_names
    assert {"jobs", "cronjobs", "jobs/status"} <= batch_names
    assert client.VersionApi(api).get_code().minor == "31"


def test_object_created_for_a_missing_owner_is_garbage_collected(core: client.CoreV1Api) -> None:
    """Dependents whose owners are gone are deleted by the garbage collector (garbage-collection.md)."""
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "gone", "uid": "0000", "controller": True}
    core.create_namespaced_config_map("default", {"metadata": {"name": "dangling", "ownerReferences": [owner]}})
    assert not core.list_namespaced_config_map("default", field_selector="metadata.name=dangling").items
