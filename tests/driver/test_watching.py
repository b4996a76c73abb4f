"""The multiplexed watcher: list-then-watch, resume, and re-list after 410 Gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from gokart_k8s.cluster import ObjectList, Resource, WatchEvent
from gokart_k8s.cluster.kubernetes import connect
from gokart_k8s.cluster.watching import Change, Watcher
from gokart_k8s.errors import ClusterUnreachableError
from gokart_k8s.localcluster import LocalCluster


def pod(name: str, uid: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": uid, "resourceVersion": rv}}


class _Stream:
    def __init__(self, events: list[WatchEvent]) -> None:
        self.events = events
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        yield from self.events
        if not self.events:  # an idle stream: ends when closed, like a quiet server
            self.closed.wait(5)

    def close(self) -> None:
        self.closed.set()


class ScriptedAPI:
    """Serves scripted LIST results and watch streams, and records the watch calls."""

    def __init__(self, lists: Mapping[Resource, list[ObjectList]], watches: Mapping[Resource, list[list[WatchEvent]]]):
        self.lists = {k: list(v) for k, v in lists.items()}
        self.watches = {k: list(v) for k, v in watches.items()}
        self.watch_calls: list[tuple[Resource, str]] = []

    def list(self, resource: Resource, namespace: str, selector: str) -> ObjectList:
        return self.lists[resource].pop(0)

    def watch(
        self, resource: Resource, namespace: str, selector: str, *, resource_version: str, timeout_seconds: int
    ) -> _Stream:
        self.watch_calls.append((resource, resource_version))
        script = self.watches[resource]
        return _Stream(script.pop(0) if script else [])


def collect_changes(watcher: Watcher, count: int) -> list[Change]:
    changes: list[Change] = []
    deadline = time.monotonic() + 10
    while len(changes) < count and time.monotonic() < deadline:
        change = watcher.get(timeout=0.1)
        if change is not None:
            changes.append(change)
    return changes


def test_after_410_the_watcher_relists_and_reports_what_vanished_meanwhile() -> None:
    api = ScriptedAPI(
        lists={
            "jobs": [ObjectList([], "10")],
            "pods": [
                ObjectList([pod("a", "u1", "9"), pod("b", "u2", "10")], "10"),
                ObjectList([pod("a", "u1", "20")], "20"),  # b was deleted while we could not watch
            ],
        },
        watches={
            "jobs": [],
            "pods": [[WatchEvent("MODIFIED", pod("a", "u1", "11")), WatchEvent("ERROR", {"code": 410})]],
        },
    )
    watcher = Watcher(api, "default", "run=1", timeout_seconds=5)  # type: ignore[arg-type]
    snapshot = watcher.start()
    try:
        changes = collect_changes(watcher, 3)
    finally:
        watcher.stop()
    assert [p["metadata"]["name"] for p in snapshot["pods"]] == ["a", "b"]
    assert [(c.type, c.name) for c in changes] == [("MODIFIED", "a"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert watcher.relists == 1
    assert ("pods", "10") in api.watch_calls and ("pods", "20") in api.watch_calls


def test_the_watcher_resumes_from_the_last_resource_version_when_the_server_ends_the_stream() -> None:
    api = ScriptedAPI(
        lists={"jobs": [ObjectList([], "5")], "pods": [ObjectList([], "5")]},
        watches={
            "jobs": [
                [
                    WatchEvent("ADDED", pod("j", "u9", "6")),
                    WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "8"}}),
                ]
            ],
            "pods": [],
        },
    )
    watcher = Watcher(api, "default", "run=1", timeout_seconds=5)  # type: ignore[arg-type]
    watcher.start()
    try:
        changes = collect_changes(watcher, 1)
        deadline = time.monotonic() + 5
        while ("jobs", "8") not in api.watch_calls and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        watcher.stop()
    assert [(c.type, c.name) for c in changes] == [("ADDED", "j")]
    assert api.watch_calls[0] == ("jobs", "5")
    assert ("jobs", "8") in api.watch_calls  # resumed from the BOOKMARK's resourceVersion, no re-list
    assert watcher.relists == 0


def test_a_real_server_that_forgot_the_resource_version_answers_410_and_the_watcher_recovers(
    tmp_path: Path, local_cluster_factory: Callable[..., LocalCluster]
) -> None:
    cluster = local_cluster_factory(max_events=5)
    api = connect(kubeconfig=str(cluster.write_kubeconfig(tmp_path / "kc")), request_timeout=5)
    first = api.list("jobs", "default", "")
    for i in range(8):  # push the list's resourceVersion out of the server's short history
        api.create_job(
            "default",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": f"j{i}"},
                "spec": {
                    "suspend": True,
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "x", "command": ["true"]}],
                        }
                    },
                },
            },
        )
    events = list(api.watch("jobs", "default", "", resource_version=first.resource_version, timeout_seconds=2))
    assert [e.expired for e in events] == [True]

    watcher = Watcher(api, "default", "", timeout_seconds=2)
    snapshot = watcher.start()
    watcher.stop()
    assert sorted(j["metadata"]["name"] for j in snapshot["jobs"]) == [f"j{i}" for i in range(8)]


class _FailingAPI(ScriptedAPI):
    """After the first LIST, its pods requests (list or watch) fail ``failures`` times (the API server gone)."""

    def __init__(self, failures: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failures = failures
        self.pod_calls = 0

    def _maybe_fail(self, resource: Resource) -> None:
        if resource != "pods":
            return
        self.pod_calls += 1
        if self.pod_calls > 1 and self.failures > 0:
            self.failures -= 1
            raise ClusterUnreachableError("Cannot reach the Kubernetes API at http://127.0.0.1:1")

    def list(self, resource: Resource, namespace: str, selector: str) -> ObjectList:
        self._maybe_fail(resource)
        return super().list(resource, namespace, selector)

    def watch(
        self, resource: Resource, namespace: str, selector: str, *, resource_version: str, timeout_seconds: int
    ) -> _Stream:
        self._maybe_fail(resource)
        return super().watch(
            resource, namespace, selector, resource_version=resource_version, timeout_seconds=timeout_seconds
        )


def test_a_lost_api_server_is_an_error_change_at_once_and_its_return_a_reconnected_change_after_a_relist() -> None:
    api = _FailingAPI(
        2,
        lists={
            "jobs": [ObjectList([], "1")],
            "pods": [ObjectList([pod("a", "u1", "1")], "1"), ObjectList([pod("a", "u1", "7")], "7")],
        },
        watches={"jobs": [], "pods": []},
    )
    watcher = Watcher(api, "default", "run=1", timeout_seconds=5, retry_seconds=0.01)  # type: ignore[arg-type]
    # The first watch and the re-list after it fail: the API server is gone, then back.
    watcher.start()
    try:
        changes = collect_changes(watcher, 4)
    finally:
        watcher.stop()
    assert [(c.resource, c.type) for c in changes] == [
        ("pods", "ERROR"),
        ("pods", "ERROR"),
        ("pods", "MODIFIED"),  # the re-list after the failures: what happened meanwhile
        ("pods", "RECONNECTED"),
    ]
    assert "Cannot reach the Kubernetes API" in changes[0].object["message"]
    assert watcher.relists == 1 and ("pods", "7") in api.watch_calls


class _SilentAPI(ScriptedAPI):
    """A server that stops answering without closing anything: requests block until ``back`` is set."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.back = threading.Event()

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.back.wait(10)
        return None


def test_a_server_gone_silent_is_noticed_by_the_liveness_probe_and_its_return_too() -> None:
    api = _SilentAPI(
        lists={"jobs": [ObjectList([], "1")], "pods": [ObjectList([], "1")]}, watches={"jobs": [], "pods": []}
    )
    watcher = Watcher(  # type: ignore[arg-type]
        api, "default", "run=1", timeout_seconds=5, probe_seconds=0.2, probe_timeout_seconds=0.3
    )
    watcher.start()
    try:
        (lost,) = collect_changes(watcher, 1)
        api.back.set()
        (back,) = collect_changes(watcher, 1)
    finally:
        watcher.stop()
    assert (lost.resource, lost.type) == ("api", "ERROR")
    assert lost.object["message"] == "the Kubernetes API has not answered for 0.3 s"
    assert (back.resource, back.type) == ("api", "RECONNECTED")
