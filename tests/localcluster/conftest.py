"""Shared helpers for the local cluster's tests: the public fixtures and ``wait_for``, plus small builders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch

from gokart_k8s.testing.cluster import (  # noqa: F401
    local_cluster,
    local_cluster_api,
    local_cluster_factory,
    wait_for,
)


def job_manifest(name: str, script: str, *, grace: int = 1, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "restartPolicy": spec.pop("restartPolicy", "Never"),
        "terminationGracePeriodSeconds": grace,
        "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}],
    }
    pod_spec.update(spec.pop("pod", {}))
    if "resources" in spec:
        pod_spec["containers"][0]["resources"] = spec.pop("resources")
    return {"metadata": {"name": name}, "spec": {"template": {"spec": pod_spec}, **spec}}


def pod_manifest(name: str, script: str, *, grace: int = 1, **pod: Any) -> dict[str, Any]:
    resources = pod.pop("resources", None)
    annotations = pod.pop("annotations", None)
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
    if resources:
        container["resources"] = resources
    meta: dict[str, Any] = {"name": name}
    if annotations:
        meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": grace, "containers": [container], **pod},
    }


def condition(obj: Any, type_: str) -> Any:
    for c in (obj.status.conditions or []) if obj.status else []:
        if c.type == type_:
            return c
    return None


def job_condition(batch: client.BatchV1Api, name: str, type_: str, namespace: str = "default") -> Any:
    job = batch.read_namespaced_job(name, namespace)
    c = condition(job, type_)
    return job if c is not None and c.status == "True" else None


def job_pods(core: client.CoreV1Api, name: str, namespace: str = "default") -> list[Any]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"batch.kubernetes.io/job-name={name}").items)


def pod_events(core: client.CoreV1Api, name: str, resource_version: str, timeout: int) -> Iterator[dict[str, Any]]:
    """Watch events of pod ``default/name`` after ``resource_version``, for ``timeout`` seconds at most."""
    events: Iterator[dict[str, Any]] = watch.Watch().stream(
        core.list_namespaced_pod,
        "default",
        field_selector=f"metadata.name={name}",
        resource_version=resource_version,
        timeout_seconds=timeout,
    )
    return events


@pytest.fixture
def core(local_cluster_api: client.ApiClient) -> client.CoreV1Api:  # noqa: F811
    return client.CoreV1Api(local_cluster_api)


@pytest.fixture
def batch(local_cluster_api: client.ApiClient) -> client.BatchV1Api:  # noqa: F811
    return client.BatchV1Api(local_cluster_api)
