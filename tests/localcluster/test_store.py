"""The object store's owner index (what a controller reads instead of scanning every object), and
the controllers' work queue."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from gokart_k8s.localcluster import resources as r
from gokart_k8s.localcluster.store import Store


def _job(store: Store, name: str, namespace: str = "default") -> tuple[str, str]:
    created = store.create(r.JOB, {"metadata": {"name": name}, "spec": {}}, namespace)
    return name, created["metadata"]["uid"]


def _pod(name: str, *owners: tuple[str, str]) -> dict[str, Any]:
    refs = [{"apiVersion": "batch/v1", "kind": "Job", "name": n, "uid": u, "controller": True} for n, u in owners]
    return {
        "metadata": {"name": name, "ownerReferences": refs},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }


def _names(objs: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


@pytest.fixture
def store() -> Store:
    return Store()


def test_dependents_follow_creates_owner_changes_and_deletes(store: Store) -> None:
    job_a, job_b, other_a = _job(store, "job-a"), _job(store, "job-b"), _job(store, "job-a", "kube-system")
    store.create(r.POD, _pod("b", job_a), "default")
    store.create(r.POD, _pod("a", job_a), "default")
    store.create(r.POD, _pod("c", job_b), "default")
    store.create(r.POD, _pod("d", other_a), "kube-system")

    assert _names(store.dependents(r.POD, "default", "Job", "job-a")) == ["a", "b"]
    assert _names(store.dependents(r.POD, "default", "Job", "job-b")) == ["c"]
    assert _names(store.dependents(r.POD, "kube-system", "Job", "job-a")) == ["d"]

    def orphan(pod: dict[str, Any]) -> None:
        ref = {"apiVersion": "batch/v1", "kind": "Job", "name": "job-b", "uid": job_b[1]}
        pod["metadata"]["ownerReferences"] = [ref]

    store.update(r.POD, "default", "b", orphan)
    assert _names(store.dependents(r.POD, "default", "Job", "job-a")) == ["a"]
    assert _names(store.dependents(r.POD, "default", "Job", "job-b")) == ["b", "c"]

    store.delete(r.POD, "default", "c", grace_seconds=0)
    assert _names(store.dependents(r.POD, "default", "Job", "job-b")) == ["b"]
    assert _names(store.dependents(r.POD, "default", "Job", "job-b", lambda p: p["metadata"]["name"] != "b")) == []


def test_dependents_are_copies_unless_asked_for_the_stored_objects(store: Store) -> None:
    store.create(r.POD, _pod("a", _job(store, "job-a")), "default")
    copy = store.dependents(r.POD, "default", "Job", "job-a")[0]
    copy["metadata"]["labels"] = {"changed": "yes"}
    assert "labels" not in store.get(r.POD, "default", "a")["metadata"]
    stored = store.dependents(r.POD, "default", "Job", "job-a", copy=False)[0]
    assert stored is store.dependents(r.POD, "default", "Job", "job-a", copy=False)[0]


def test_a_woken_work_queue_returns_at_once_so_a_stopping_controller_does_not_wait_out_its_timeout() -> None:
    from gokart_k8s.localcluster.controllers import WorkQueue

    queue = WorkQueue()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(queue.get(timeout=120)))
    waiter.start()
    queue.wake()
    waiter.join(timeout=60)
    assert not waiter.is_alive() and got == [None]
    queue.add(("default", "job"))
    assert queue.get(timeout=120) == ("default", "job")  # a wake is spent once, keys still come
