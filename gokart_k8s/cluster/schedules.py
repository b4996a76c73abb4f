"""API calls of ``gokart-k8s schedule``: apply, list, delete and trigger CronJobs, list their runs.

A thin layer, kept apart from :mod:`gokart_k8s.cluster.kubernetes` (the driver's adapter, whose
seam is Jobs and pods only): one-shot CLI commands need create-or-replace of four kinds of object
and nothing of the driver's watch machinery. Like the driver's adapter it sends plain dicts built
by :mod:`gokart_k8s.scheduling.objects` and reads the API's JSON back, through the official client's
``ApiClient`` (kubeconfig loading, ``$KUBECONFIG``, in-cluster config and auth plugins stay the
client's job); every request has a client-side timeout, and a refused request becomes a
:class:`~gokart_k8s.errors.ClusterError` that says what to change, with the client's exception as
its cause.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gokart_k8s.cluster.kubeconfig import check_kubeconfig
from gokart_k8s.conventions import LABEL_MANAGED_BY, MANAGED_BY, label_value
from gokart_k8s.errors import ClusterError, SubmissionError
from gokart_k8s.scheduling.names import LABEL_ROLE, LABEL_SCHEDULE, driver_account

__all__ = ["ScheduleClient"]

_PATHS = {
    "ServiceAccount": "/api/v1/namespaces/{namespace}/serviceaccounts",
    "Role": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles",
    "RoleBinding": "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
    "CronJob": "/apis/batch/v1/namespaces/{namespace}/cronjobs",
    "Job": "/apis/batch/v1/namespaces/{namespace}/jobs",
}
_CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


class ScheduleClient:
    """The schedule commands' API calls over one ``kubernetes.client.ApiClient``."""

    def __init__(self, api_client: Any, *, request_timeout: float = 30.0) -> None:
        self._api = api_client
        self._timeout = request_timeout

    @classmethod
    def connect(cls, settings: Any) -> ScheduleClient:
        """From ``$KUBECONFIG`` or ``~/.kube/config`` (``settings.kube_context``), else in-cluster config."""
        configuration = k8s_client.Configuration()
        files = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p] or [
            os.path.expanduser("~/.kube/config")
        ]
        existing = [p for p in files if os.path.exists(p)]
        try:
            if existing:
                check_kubeconfig(existing[0])
                k8s_config.load_kube_config(
                    config_file=existing[0], context=settings.kube_context, client_configuration=configuration
                )
            elif os.environ.get("KUBERNETES_SERVICE_HOST"):
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                raise ClusterError(
                    f"No kubeconfig found (looked at {os.pathsep.join(files)}) and this is not a pod. Fetch "
                    "credentials (GKE: `gcloud container clusters get-credentials NAME --region REGION`) or set "
                    "KUBECONFIG; or write the objects with -o DIR instead of --apply."
                )
        except ConfigException as exc:
            raise ClusterError(
                f"The kubeconfig {existing[0] if existing else ''} cannot be used: {exc}. Check it with "
                "`kubectl config view`, or set kube_context in [gokart_k8s]."
            ) from exc
        configuration.retries = False
        return cls(k8s_client.ApiClient(configuration), request_timeout=float(settings.request_timeout_seconds))

    # --- requests ---------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (), body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        http_method, url, headers, data, post = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            raw = self._api.call_api(http_method, url, headers, data, post, _request_timeout=self._timeout)
            payload = raw.read() or b"{}"
        except _CONNECTION_ERRORS as exc:
            raise ClusterError(
                f"Cannot reach the Kubernetes API at {self._api.configuration.host} ({type(exc).__name__}). "
                "Check that the cluster runs and `kubectl cluster-info` answers."
            ) from exc
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = {"message": payload.decode("utf-8", "replace")[:300]}
        return int(raw.status), parsed if isinstance(parsed, dict) else {}

    def _check(
        self, status: int, body: Mapping[str, Any], what: str, namespace: str, *, submission: bool = False
    ) -> None:
        if 200 <= status <= 299:
            return
        said = str(body.get("message") or body)
        cause = ApiException(status=status, reason=str(body.get("reason") or ""), body=json.dumps(dict(body)))
        if status == 403:
            message = (
                f"Forbidden: {what} in namespace {namespace!r} ({said}). Creating a schedule needs permission to "
                "create service accounts, roles, role bindings and cronjobs there (e.g. the 'admin' ClusterRole "
                "bound in that namespace); ask your cluster administrator, or write the objects with -o DIR for "
                "them to apply."
            )
        elif status == 404 and "namespace" in said.lower():
            message = f"Namespace {namespace!r} does not exist ({what}). Create it or set namespace in [gokart_k8s]."
        else:
            message = f"The Kubernetes API refused {what} ({status}: {said})."
        error = (SubmissionError if submission else ClusterError)(message)
        raise error from cause

    # --- operations -------------------------------------------------------------------------

    def apply(self, objects: Sequence[Mapping[str, Any]]) -> Iterator[tuple[dict[str, Any], bool]]:
        """Create each object, or replace it when it exists; yields ``(object, created)`` in order."""
        for obj in objects:
            meta = obj["metadata"]
            namespace, name, kind = meta["namespace"], meta["name"], obj["kind"]
            base = _PATHS[kind].format(namespace=namespace)
            status, current = self._call("GET", f"{base}/{name}")
            if status == 404:
                status, body = self._call("POST", base, body=dict(obj))
                self._check(status, body, f"creating {kind} {name}", namespace, submission=True)
                yield body, True
                continue
            self._check(status, current, f"reading {kind} {name}", namespace)
            replacement = json.loads(json.dumps(obj))
            # A replace must carry the version it replaces (optimistic concurrency).
            replacement["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
            status, body = self._call("PUT", f"{base}/{name}", body=replacement)
            self._check(status, body, f"updating {kind} {name}", namespace, submission=True)
            yield body, False

    def list_cronjobs(self, namespace: str) -> list[dict[str, Any]]:
        status, body = self._call(
            "GET",
            _PATHS["CronJob"].format(namespace=namespace),
            query=[("labelSelector", f"{LABEL_MANAGED_BY}={MANAGED_BY}")],
        )
        self._check(status, body, "listing cronjobs", namespace)
        return sorted((dict(i) for i in body.get("items") or []), key=lambda i: str(i["metadata"]["name"]))

    def read_cronjob(self, namespace: str, name: str) -> dict[str, Any]:
        status, body = self._call("GET", _PATHS["CronJob"].format(namespace=namespace) + f"/{name}")
        if status == 404:
            raise ClusterError(
                f"No schedule {name!r} in namespace {namespace!r}; `gokart-k8s schedule list` shows the schedules."
            )
        self._check(status, body, f"reading CronJob {name}", namespace)
        return body

    def create_job(self, namespace: str, job: Mapping[str, Any]) -> dict[str, Any]:
        name = job["metadata"]["name"]
        status, body = self._call("POST", _PATHS["Job"].format(namespace=namespace), body=dict(job))
        self._check(status, body, f"creating Job {name}", namespace, submission=True)
        return body

    def list_runs(self, namespace: str, schedule: str) -> list[dict[str, Any]]:
        """The Jobs of a schedule: made by its CronJob or by ``schedule trigger`` (label ``gokart-k8s.io/schedule``)."""
        selector = f"{LABEL_SCHEDULE}={label_value(schedule)},{LABEL_ROLE}=driver"
        status, body = self._call("GET", _PATHS["Job"].format(namespace=namespace), query=[("labelSelector", selector)])
        self._check(status, body, "listing jobs", namespace)
        return [dict(i) for i in body.get("items") or []]

    def delete_schedule(self, namespace: str, name: str) -> list[str]:
        """Delete the CronJob (its Jobs and driver pods go with it) and the driver's account, Role
        and RoleBinding; step Jobs still running are left to finish and expire by their TTL."""
        done: list[str] = []
        # Background propagation, or the CronJob's Jobs and their pods would be orphaned
        # (https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion).
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        targets = [
            ("CronJob", name),
            ("RoleBinding", driver_account(name)),
            ("Role", driver_account(name)),
            ("ServiceAccount", driver_account(name)),
        ]
        for kind, object_name in targets:
            path = _PATHS[kind].format(namespace=namespace) + f"/{object_name}"
            status, current = self._call("GET", path)
            if status == 404:
                continue
            self._check(status, current, f"reading {kind} {object_name}", namespace)
            if (current.get("metadata") or {}).get("labels", {}).get(LABEL_SCHEDULE) != label_value(name):
                continue  # not made by this schedule: leave it alone
            status, body = self._call("DELETE", path, body=options)
            if status != 404:
                self._check(status, body, f"deleting {kind} {object_name}", namespace)
            done.append(f"{kind.lower()}/{object_name} deleted")
        if not done:
            raise ClusterError(
                f"No schedule {name!r} in namespace {namespace!r}; `gokart-k8s schedule list` shows the schedules."
            )
        return done
