"""The adapter around the official ``kubernetes`` client: the only module that imports it.

It implements :class:`gokart_k8s.cluster.ClusterAPI` over the client's ``ApiClient`` (kubeconfig
loading, TLS, auth plugins and token refresh stay the client's job) but sends the requests itself
through ``ApiClient.param_serialize`` / ``call_api`` and reads the JSON into plain dicts:

- the driver works on the camelCase JSON the API returns, which is what ``kubectl get -o json``
  shows and what :mod:`gokart_k8s.cluster.outcomes` reads; decoding into the client's pydantic
  models and back (``sanitize_for_serialization``) would cost CPU and memory per event for nothing;
- a manifest is submitted exactly as :mod:`gokart_k8s.manifests` built it, with no model round trip
  that could drop a field the installed client does not know yet;
- one request path means one retry policy and one error mapping for every call.

Every request carries a client-side timeout (``_request_timeout``): without it a half-open
connection can hang a call forever
(https://github.com/kubernetes-client/python/blob/master/examples/watch/timeout-settings.md).
429 and 5xx answers and dropped connections are retried with exponential backoff and jitter,
honouring ``Retry-After`` (https://kubernetes.io/docs/reference/using-api/api-concepts/#retry-after).
The client's own urllib3 retries are switched off so there is exactly one retry policy. A POST that
is retried after a lost answer may find its own Job already created: 409 AlreadyExists returns the
existing Job, so no retry can create a duplicate.
"""

from __future__ import annotations

import builtins
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gokart_k8s.cluster import ObjectList, Resource, WatchEvent
from gokart_k8s.cluster.kubeconfig import check_kubeconfig
from gokart_k8s.errors import ClusterError, ClusterUnreachableError, SubmissionError

__all__ = ["KubernetesCluster", "connect"]

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
_PATHS: dict[str, str] = {
    "jobs": "/apis/batch/v1/namespaces/{namespace}/jobs",
    "pods": "/api/v1/namespaces/{namespace}/pods",
}
_CONNECTION_ERRORS = (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)


def _default_kubeconfig() -> list[str]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [str(Path.home() / ".kube" / "config")]


def connect(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    request_timeout: float = 30.0,
    backoff_seconds: float = 0.2,
) -> KubernetesCluster:
    """A :class:`KubernetesCluster` from a kubeconfig (optionally one context) or in-cluster config.

    Order: ``kubeconfig`` if given; else ``$KUBECONFIG`` or ``~/.kube/config``; else, inside a pod,
    the service account (https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/).
    Raises :class:`ClusterError` naming what to set when none of them works.
    """
    configuration = k8s_client.Configuration()
    candidates = [kubeconfig] if kubeconfig else _default_kubeconfig()
    existing = [p for p in candidates if os.path.exists(p)]
    try:
        if existing:
            check_kubeconfig(existing[0])
            contexts, _current = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=existing[0]
            )
            names = [c.get("name") for c in contexts or []]
            if context and context not in names:
                raise ClusterError(
                    f"kube_context {context!r} is not in {existing[0]}; it has "
                    f"{', '.join(map(str, names)) or 'none'}. "
                    "Set kube_context in [gokart_k8s] of luigi.cfg (or GOKART_K8S_KUBE_CONTEXT) to one of "
                    "them, or leave it unset to use the current context."
                )
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=existing[0], context=context, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            where = kubeconfig or os.pathsep.join(candidates)
            raise ClusterError(
                f"No kubeconfig found (looked at {where}) and this is not a pod, so gokart-k8s does not know "
                "which cluster to use. Fetch credentials (GKE: `gcloud container clusters get-credentials "
                "NAME --region REGION`; EKS: `aws eks update-kubeconfig --name NAME`), or set KUBECONFIG, "
                "or rehearse without a cluster with --backend local-cluster."
            )
    except ConfigException as exc:
        raise ClusterError(
            f"The kubeconfig {existing[0] if existing else ''} cannot be used: {exc}. Check it with "
            "`kubectl config view`, or set kube_context to a context that works."
        ) from exc
    # One retry policy (ours, below): urllib3's own retries would hide connection errors and
    # multiply the attempts.
    configuration.retries = False
    return KubernetesCluster(
        k8s_client.ApiClient(configuration), request_timeout=request_timeout, backoff_seconds=backoff_seconds
    )


class _Response:
    """Status, headers and body of one finished request."""

    def __init__(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        #: Set for a non-2xx answer: the client's exception, to chain as the cause.
        self.exception: ApiException | None = None

    def json(self) -> dict[str, Any]:
        data = json.loads(self.body or b"{}")
        return data if isinstance(data, dict) else {}


class _Watch:
    """One open WATCH request; iterate for events, ``close()`` from any thread to stop it."""

    def __init__(self, cluster: KubernetesCluster, path: str, query: list[tuple[str, str]], timeout: float) -> None:
        self._cluster = cluster
        self._path = path
        self._query = query
        self._timeout = timeout
        self._response: Any = None
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        if self._closed.is_set():
            return
        raw = self._cluster._open(self._path, self._query, self._timeout)
        self._response = raw.response
        try:
            if raw.status == 410:
                yield WatchEvent("ERROR", {"code": 410, "reason": "Expired"})
                return
            if not 200 <= raw.status <= 299:
                raise self._cluster._error(f"watch {self._path}", ApiException(http_resp=raw.response, body=None))
            buffer = b""
            try:
                for chunk in raw.response.stream(64 * 1024, decode_content=True):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        if line.strip():
                            yield _event(line)
            except _CONNECTION_ERRORS as exc:
                if self._closed.is_set():
                    return
                raise ClusterUnreachableError(
                    f"The watch on {self._path} broke ({type(exc).__name__}); it resumes from its resourceVersion."
                ) from exc
            if buffer.strip():
                yield _event(buffer)
        finally:
            raw.response.release_conn()

    def close(self) -> None:
        self._closed.set()
        response = self._response
        if response is not None:
            # urllib3 >= 2.3: wakes a read blocked in another thread.
            shutdown = getattr(response, "shutdown", None)
            if shutdown is not None:
                shutdown()


def _event(line: bytes) -> WatchEvent:
    data = json.loads(line)
    return WatchEvent(str(data.get("type") or ""), dict(data.get("object") or {}))


class KubernetesCluster:
    """:class:`~gokart_k8s.cluster.ClusterAPI` over the official client (see the module docstring).

    ``retries`` bounds the attempts of one call on 429/5xx/connection errors; ``sleep`` is injectable
    so tests of the backoff need not wait.
    """

    def __init__(
        self,
        api_client: Any,
        *,
        request_timeout: float = 30.0,
        retries: int = 5,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._api = api_client
        self._timeout = request_timeout
        self._retries = retries
        self._backoff = backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._sleep = sleep

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    # --- requests ---------------------------------------------------------------------------

    def _open(self, path: str, query: list[tuple[str, str]], timeout: float | tuple[float, float]) -> Any:
        """Send a GET whose body is streamed by the caller; returns the client's RESTResponse."""
        method, url, headers, body, post = self._api.param_serialize(
            method="GET",
            resource_path=path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        try:
            return self._api.call_api(method, url, headers, body, post, _request_timeout=timeout)
        except _CONNECTION_ERRORS as exc:
            raise self._unreachable(exc) from exc

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        retries: int | None = None,
    ) -> _Response:
        """One call with the retry policy of the module docstring; non-2xx is returned, not raised."""
        attempts = (self._retries if retries is None else retries) + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                http_method, url, headers, data, post = self._api.param_serialize(
                    method=method,
                    resource_path=path,
                    query_params=query or [],
                    header_params={"Accept": "application/json", "Content-Type": "application/json"},
                    body=body,
                    auth_settings=["BearerToken"],
                )
                raw = self._api.call_api(http_method, url, headers, data, post, _request_timeout=self._timeout)
                payload = raw.read()
            except _CONNECTION_ERRORS as exc:
                if last:
                    raise self._unreachable(exc) from exc
                self._sleep(self._delay(attempt, None))
                continue
            response = _Response(raw.status, raw.headers, payload or b"")
            if response.status in _RETRYABLE_STATUS and not last:
                self._sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            if response.status in _RETRYABLE_STATUS or not 200 <= response.status <= 299:
                response.exception = ApiException(
                    status=response.status, reason=raw.reason, body=payload.decode("utf-8", "replace")
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self._max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        # Full jitter, so a crowd of retries does not hit the API server at the same instant.
        return random.uniform(0, min(self._max_backoff, self._backoff * 2**attempt))

    def _unreachable(self, exc: BaseException) -> ClusterUnreachableError:
        why = "timed out" if "timeout" in type(exc).__name__.lower() or "timed out" in str(exc) else "was refused"
        if "refused" not in str(exc).lower() and why != "timed out":
            why = f"failed ({type(exc).__name__})"
        return ClusterUnreachableError(
            f"Cannot reach the Kubernetes API at {self.host}: the connection {why}. "
            "Check that the cluster is running and that the kubeconfig's current context "
            "(or kube_context in [gokart_k8s]) is the one "
            "you mean: `kubectl cluster-info` should answer."
        )

    def _error(self, what: str, exc: ApiException, *, namespace: str = "", submission: bool = False) -> ClusterError:
        """Turn a refused request into an error that says what to change; the ApiException is the cause."""
        status = exc.status or 0
        said = _status_message(exc)
        cls = SubmissionError if submission else ClusterError
        if status == 401:
            message = (
                f"The cluster at {self.host} refused the kubeconfig's credentials "
                f"({what}: 401 Unauthorized). "
                "Refresh them (GKE: `gcloud container clusters get-credentials`; EKS: `aws eks "
                "update-kubeconfig`) and check `kubectl auth whoami`."
            )
        elif status == 403:
            message = (
                f"Forbidden: {what} in namespace {namespace!r} ({said}). gokart-k8s needs "
                "create/get/list/watch/delete on jobs and get/list/watch on pods and pods/log there: "
                "ask for a Role granting them, or set namespace in [gokart_k8s] (GOKART_K8S_NAMESPACE) "
                "to a namespace you may use."
            )
        elif status == 404 and namespace and "namespace" in said.lower():
            message = (
                f"Namespace {namespace!r} does not exist ({what}). Create it (`kubectl create namespace "
                f"{namespace}`) or set namespace in [gokart_k8s] to an existing one."
            )
        elif submission and status in (400, 422):
            message = (
                f"The API server refused the Job ({what}: {status} {said}). This is a bug in the "
                "manifest gokart-k8s built or a field the cluster's version does not know; "
                "`gokart-k8s render` shows it."
            )
        else:
            message = f"The Kubernetes API refused {what} ({status} {exc.reason}: {said})."
            if status == 429 or status >= 500:
                # Still failing after the retries: the API server is overloaded or restarting.
                cls = ClusterUnreachableError
        error = cls(message)
        error.__cause__ = exc
        return error

    def _raise_for(self, response: _Response, what: str, *, namespace: str = "", submission: bool = False) -> None:
        exc = response.exception
        if exc is not None:
            raise self._error(what, exc, namespace=namespace, submission=submission) from exc

    # --- ClusterAPI -------------------------------------------------------------------------

    def check_access(self, namespace: str) -> None:
        """Reach the API, read Jobs and pods in ``namespace``, and (if the server can say) create Jobs.

        Fails fast (one retry) with a :class:`ClusterError` naming what to change, before any step runs.
        """
        for resource in ("jobs", "pods"):
            path = _PATHS[resource].format(namespace=namespace)
            response = self._request("GET", path, query=[("limit", "1")], retries=1)
            self._raise_for(response, f"listing {resource}", namespace=namespace)
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": "create",
                    "group": "batch",
                    "resource": "jobs",
                }
            },
        }
        response = self._request(
            "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=review, retries=1
        )
        # A server without the authorization API (an emulator) cannot tell; the first create will.
        if response.status in (200, 201):
            status = response.json().get("status") or {}
            if status.get("allowed") is False:
                exc = ApiException(
                    status=403,
                    reason="Forbidden",
                    body=json.dumps({"message": status.get("reason") or "create jobs denied"}),
                )
                raise self._error("creating jobs", exc, namespace=namespace) from exc

    def check_service_account(self, namespace: str, name: str) -> None:
        """A missing service account makes the API server refuse every pod of a step's Job: the Job only
        records ``FailedCreate`` events and never fails, so the step would wait forever
        (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#serviceaccount).
        Checked once, before anything is submitted; a 403 (no right to read service accounts) is not a
        verdict, so the run goes on."""
        response = self._request("GET", f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}", retries=1)
        if response.status == 404:
            raise ClusterError(
                f"Service account {name!r} does not exist in namespace {namespace!r}, so the cluster refuses "
                f"every step's pod (the Jobs record FailedCreate). Create it (kubectl create serviceaccount {name} "
                f"-n {namespace}), or change service_account in [gokart_k8s] of luigi.cfg "
                "(unset, pods run as the namespace's default account)."
            )
        if response.status == 403:
            return
        self._raise_for(response, f"reading service account {name}", namespace=namespace)

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        name = str((manifest.get("metadata") or {}).get("name") or "")
        path = _PATHS["jobs"].format(namespace=namespace)
        for _ in range(3):
            response = self._request("POST", path, body=dict(manifest))
            if response.status == 409:
                # The name is taken: by our own earlier attempt, or by a Job a previous driver
                # submitted. Return it so the caller adopts it instead of duplicating the step.
                existing = self.read_job(namespace, name)
                if existing is not None:
                    return existing, False
                continue  # deleted in between: try the create again
            self._raise_for(response, f"creating Job {name}", namespace=namespace, submission=True)
            return response.json(), True
        raise SubmissionError(
            f"Job {name} in namespace {namespace!r} kept being created and deleted by someone else; "
            "check that no other driver runs the same pipeline."
        )

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        response = self._request("GET", _PATHS["jobs"].format(namespace=namespace) + f"/{name}")
        if response.status == 404:
            return None
        self._raise_for(response, f"reading Job {name}", namespace=namespace)
        return response.json()

    def delete_job(self, namespace: str, name: str) -> None:
        # Background propagation: without it a Job deleted through the API orphans its pods
        # (https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup).
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        response = self._request("DELETE", _PATHS["jobs"].format(namespace=namespace) + f"/{name}", body=body)
        if response.status == 404:
            return
        self._raise_for(response, f"deleting Job {name}", namespace=namespace)

    def list(self, resource: Resource, namespace: str, selector: str) -> ObjectList:
        query = [("labelSelector", selector)] if selector else []
        response = self._request("GET", _PATHS[resource].format(namespace=namespace), query=query)
        self._raise_for(response, f"listing {resource}", namespace=namespace)
        data = response.json()
        items = [dict(i) for i in data.get("items") or []]
        return ObjectList(items, str((data.get("metadata") or {}).get("resourceVersion") or ""))

    def list_nodes(self) -> builtins.list[dict[str, Any]]:
        """Every Node of the cluster (cluster-scoped: needs ``list nodes`` in a ClusterRole)."""
        response = self._request("GET", "/api/v1/nodes")
        self._raise_for(response, "listing nodes")
        return [dict(i) for i in response.json().get("items") or []]

    def watch(
        self,
        resource: Resource,
        namespace: str,
        selector: str,
        *,
        resource_version: str,
        timeout_seconds: int,
    ) -> _Watch:
        query = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            # The server ends the watch after timeoutSeconds; BOOKMARKs keep our resourceVersion
            # fresh so the re-watch rarely hits 410 (https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks).
            ("timeoutSeconds", str(timeout_seconds)),
            ("allowWatchBookmarks", "true"),
        ]
        if selector:
            query.append(("labelSelector", selector))
        # The read timeout is the longest silence we accept: the server's own timeout plus a margin.
        # A connection that stays silent longer is dead and the call fails instead of hanging.
        timeout = (self._timeout, timeout_seconds + self._timeout)
        return _Watch(self, _PATHS[resource].format(namespace=namespace), query, timeout)  # type: ignore[arg-type]

    def read_pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        query = [("tailLines", str(tail_lines))] if tail_lines is not None else []
        path = _PATHS["pods"].format(namespace=namespace) + f"/{name}/log"
        response = self._request("GET", path, query=query, retries=2)
        if not 200 <= response.status <= 299:
            return ""  # pod gone (TTL, eviction) or container never started: no log to show
        return response.body.decode("utf-8", "replace")

    def follow_pod_log(self, namespace: str, name: str, *, idle_timeout: float = 3600.0) -> Iterator[str]:
        """The pod's log lines as they are written, until the container ends (``follow=true``).

        Returns when the stream ends (the container ended, or the pod is gone); raises
        :class:`ClusterError` when it breaks or nothing arrives for ``idle_timeout`` seconds, so the
        caller knows to read the rest of the log another way.
        """
        path = _PATHS["pods"].format(namespace=namespace) + f"/{name}/log"
        raw = self._open(path, [("follow", "true")], (self._timeout, idle_timeout))
        try:
            if not 200 <= raw.status <= 299:
                raise ClusterError(f"following the log of pod {namespace}/{name} was refused ({raw.status})")
            buffer = b""
            try:
                for chunk in raw.response.stream(4096, decode_content=True):
                    buffer += chunk
                    while b"\n" in buffer:
                        line, buffer = buffer.split(b"\n", 1)
                        yield line.decode("utf-8", "replace")
            except _CONNECTION_ERRORS as exc:
                raise ClusterError(f"following the log of pod {namespace}/{name} broke ({type(exc).__name__})") from exc
            if buffer:
                yield buffer.decode("utf-8", "replace")
        finally:
            raw.response.release_conn()


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the Status object in an error body, or the raw body."""
    body = exc.body or ""
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body)[:300]
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return str(body)[:300]
