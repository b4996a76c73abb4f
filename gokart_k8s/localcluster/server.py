"""The HTTP API server: Kubernetes REST over ``http.server.ThreadingHTTPServer``.

One thread per connection (HTTP/1.1 keep-alive, as the official client's urllib3 pool expects).
Routing is driven by :mod:`.resources`; storage by :mod:`.store`; admission by :mod:`.validation`.

Requests handled (https://kubernetes.io/docs/reference/using-api/api-concepts/):

* discovery: ``/version``, ``/api``, ``/apis``, ``/api/v1``, ``/apis/<group>[/<version>]``,
  ``/healthz``, ``/readyz``, ``/livez``;
* collections: list (``labelSelector``, ``fieldSelector``), watch, create (``generateName``,
  ``dryRun``), ``deletecollection``;
* objects: get, replace (PUT, optimistic concurrency), patch (merge, JSON, strategic), delete
  (``propagationPolicy``, ``gracePeriodSeconds``, ``preconditions``);
* subresources: ``status`` (get/put/patch), ``pods/log`` (``follow``, ``tailLines``,
  ``timestamps``), ``pods/eviction``;
* ``kubectl get``'s Table responses (:mod:`.tables`);
* ``/openapi/v3`` and ``fieldValidation=Strict`` (:mod:`.openapi`);
* the protobuf bodies kubectl 1.32+ sends for the objects it builds itself (:mod:`.protobuf`).

Watches are chunked JSON lines. With no ``resourceVersion`` (or ``"0"``) they start with a
synthetic ``ADDED`` per existing object; with one they resume after it, or send an ``ERROR``
event with a 410 ``Expired`` Status when it has left the event log. Objects that start or stop
matching a selector arrive as ``ADDED``/``DELETED``, as from a real API server. ``timeoutSeconds``
ends the stream cleanly; ``allowWatchBookmarks`` adds ``BOOKMARK`` events when idle.

Any unexpected exception becomes a 500 ``Status``; the server itself never dies of a request.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import openapi, patching, protobuf, tables
from . import resources as r
from .kubelet import LogBuffer
from .resources import ResourceType
from .selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from .status import ApiError, success_status
from .store import Obj, Store

Evictor = Callable[[str, str, "int | None"], None]
LogLookup = Callable[[str], "LogBuffer | None"]

#: A watch without timeoutSeconds ends after this long (a real server picks 30-60 minutes).
DEFAULT_WATCH_SECONDS = 1800.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], api: ApiServer) -> None:
        self.api = api
        super().__init__(address, _Handler)


class ApiServer:
    """Serves the store over HTTP; ``start()`` binds and returns at once."""

    def __init__(
        self,
        store: Store,
        *,
        logs: LogLookup,
        evict: Evictor,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_seconds: float = 1.0,
    ) -> None:
        self.store = store
        self.logs = logs
        self.evict = evict
        self.bookmark_seconds = bookmark_seconds
        self.stopping = threading.Event()
        self._httpd = _Server((host, port), self)
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="local-cluster-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        with self.store.cond:
            self.store.cond.notify_all()
        self._httpd.shutdown()
        with self._conn_lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conn_lock:
            (self._connections.add if add else self._connections.discard)(conn)


def _parse_path(path: str) -> tuple[ResourceType, str | None, str | None, str | None] | None:
    """(resource, namespace, name, subresource) for a resource URL, None when it is not one."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    rt = r.lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        raise ApiError(404, f"the server could not find the requested resource ({path})", reason="NotFound")
    if rt.namespaced is False and namespace is not None:
        raise ApiError(404, f"the server could not find the requested resource ({path})", reason="NotFound")
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in rt.subresources:
        raise ApiError(404, f"the server could not find the requested resource ({path})", reason="NotFound")
    return rt, namespace, name, sub


def _flag(params: dict[str, str], key: str) -> bool:
    return params.get(key, "").lower() in ("true", "1")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: TCP_NODELAY on every connection, as a real API server (Go's net/http) sets it: without it each
    #: small response waits ~40 ms for the client's delayed ACK (Nagle's algorithm).
    disable_nagle_algorithm = True
    server: _Server

    # ------------------------------------------------------------------ plumbing
    def setup(self) -> None:
        super().setup()
        self.server.api.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.api.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def api(self) -> ApiServer:
        return self.server.api

    def _send_json(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, code: int, text: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _body(self) -> Any:
        raw = self._raw_body
        if not raw:
            return None
        if (self.headers.get("Content-Type") or "").startswith(protobuf.PROTOBUF):
            return protobuf.decode(raw)
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"the request body is not valid JSON: {exc}") from exc

    def _dispatch(self, method: str) -> None:
        # Read the whole body first, even for a request that ends in an error: an unread body
        # would be taken as the start of the next request on this keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        try:
            self._route(method, split.path.rstrip("/") or "/", params)
        except ApiError as exc:
            self._send_json(exc.code, exc.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the catch-all that keeps the server alive
            traceback.print_exc(file=sys.stderr)
            try:
                self._send_json(500, ApiError(500, f"internal error in the local cluster: {exc!r}").status())
            except OSError:
                self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # ------------------------------------------------------------------ routing
    def _route(self, method: str, path: str, params: dict[str, str]) -> None:
        if method == "GET" and self._discovery(path):
            return
        parsed = _parse_path(path)
        if parsed is None:
            raise ApiError(404, f"the server could not find the requested resource ({path})", reason="NotFound")
        rt, namespace, name, sub = parsed
        store = self.api.store
        dry_run = bool(params.get("dryRun"))
        if name is None:
            if method == "GET":
                if _flag(params, "watch"):
                    self._watch(rt, namespace, params)
                else:
                    self._list(rt, namespace, params)
            elif method == "POST":
                body = self._strict(rt, self._require_object(self._body(), rt), params)
                if rt.has_status:
                    body.pop("status", None)  # status is ignored on create
                self._send_json(201, store.create(rt, body, namespace, dry_run=dry_run))
            elif method == "DELETE":
                self._delete_collection(rt, namespace, params)
            else:
                raise ApiError(405, f"{method} is not allowed on a collection", reason="MethodNotAllowed")
            return
        if sub == "log" and method == "GET":
            self._logs(namespace or "", name, params)
        elif sub == "eviction" and method == "POST":
            body = self._body() or {}
            grace = (body.get("deleteOptions") or {}).get("gracePeriodSeconds")
            self.api.evict(namespace or "", name, grace)
            self._send_json(201, success_status(code=201))
        elif method == "GET":
            obj = store.get(rt, namespace, name)
            if self._table_wanted():
                rv = int(obj["metadata"]["resourceVersion"])
                obj = tables.table(rt, [obj], rv, params.get("includeObject", "Metadata"))
            self._send_json(200, obj)
        elif method == "PUT":
            body = self._strict(rt, self._require_object(self._body(), rt), params)
            self._send_json(200, store.replace(rt, namespace, name, body, subresource=sub, dry_run=dry_run))
        elif method == "PATCH":
            self._patch(rt, namespace, name, sub, dry_run, params)
        elif method == "DELETE" and sub is None:
            self._delete(rt, namespace, name, params)
        else:
            raise ApiError(405, f"{method} is not allowed on {rt.plural}/{sub}", reason="MethodNotAllowed")

    def _send_document(self, body: bytes) -> None:
        """A JSON document serialised once and served as is (the OpenAPI documents)."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _discovery(self, path: str) -> bool:
        doc: Any = None
        if path == "/version":
            doc = {**r.EMULATED_VERSION, "platform": sys.platform, "goVersion": "python", "compiler": "cpython"}
        elif path in ("/healthz", "/readyz", "/livez"):
            self._send_text(200, b"ok")
            return True
        elif path == "/api":
            doc = r.api_versions(self.api.url)
        elif path == "/apis":
            doc = r.api_group_list()
        elif path == "/openapi/v3":
            doc = openapi.index()
        elif path == "/openapi/v2":
            accept = self.headers.get("Accept") or "*/*"
            if not any(m in accept for m in ("json", "*/*")):
                raise ApiError(
                    406, f"/openapi/v2 is served as application/json only, not {accept}", reason="NotAcceptable"
                )
            body = openapi.document_v2()
            self._send_document(body)
            return True
        elif path.startswith("/openapi/v3/"):
            parts = path[len("/openapi/v3/") :].split("/")
            body = None
            if parts[0] == "api" and len(parts) == 2:
                body = openapi.document("", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                body = openapi.document(parts[1], parts[2])
            if body is None:
                raise ApiError(404, f"the server could not find the requested resource ({path})", reason="NotFound")
            self._send_document(body)
            return True
        elif path == "/api/v1":
            doc = r.api_resource_list("", "v1")
        else:
            parts = [p for p in path.split("/") if p]
            if len(parts) == 2 and parts[0] == "apis":
                doc = r.api_group(parts[1])
            elif len(parts) == 3 and parts[0] == "apis":
                doc = r.api_resource_list(parts[1], parts[2])
            else:
                return False
            if doc is None:
                raise ApiError(404, f"the server could not find the requested resource ({path})", reason="NotFound")
        self._send_json(200, doc)
        return True

    @staticmethod
    def _strict(rt: ResourceType, body: Obj, params: dict[str, str]) -> Obj:
        """``fieldValidation=Strict`` (what kubectl sends since the OpenAPI documents declare it): unknown
        fields are a 400, worded as a real server words it."""
        if params.get("fieldValidation") == "Strict":
            unknown = openapi.unknown_fields(rt, body)
            if unknown:
                fields = ", ".join(f'unknown field "{u}"' for u in unknown)
                what = f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}'
                raise ApiError(400, f"{what}: strict decoding error: {fields}", reason="BadRequest")
        return body

    @staticmethod
    def _require_object(body: Any, rt: ResourceType) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, f"the request body must be a {rt.kind} object")
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise ApiError(400, f"the kind of the body ({kind}) does not match the URL ({rt.kind})")
        return body

    def _table_wanted(self) -> bool:
        """``kubectl get`` asks for ``application/json;as=Table;v=v1;g=meta.k8s.io`` (list, get and watch)."""
        return "as=Table" in (self.headers.get("Accept") or "")

    # ------------------------------------------------------------------ verbs
    def _matcher(self, namespace: str | None, params: dict[str, str]) -> Callable[[Obj], bool]:
        label_reqs = parse_label_selector(params.get("labelSelector"))
        field_reqs = parse_field_selector(params.get("fieldSelector"))

        def matches(obj: Obj) -> bool:
            if namespace is not None and obj["metadata"].get("namespace") != namespace:
                return False
            return labels_match(label_reqs, obj) and fields_match(field_reqs, obj)

        return matches

    def _list(self, rt: ResourceType, namespace: str | None, params: dict[str, str]) -> None:
        items, rv = self.api.store.list(rt, namespace, self._matcher(namespace, params), copy=False)
        if self._table_wanted():
            self._send_json(200, tables.table(rt, items, rv, params.get("includeObject", "Metadata")))
            return
        self._send_json(
            200,
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": items,
            },
        )

    def _patch(
        self, rt: ResourceType, namespace: str | None, name: str, sub: str | None, dry_run: bool, params: dict[str, str]
    ) -> None:
        store = self.api.store
        content_type = self.headers.get("Content-Type") or "application/merge-patch+json"
        patching.check_media_type(content_type)
        patch = self._body()
        with store.cond:
            current = store.get(rt, namespace, name)
            patched = patching.apply(content_type, current, patch)
            if not isinstance(patched, dict):
                raise ApiError(422, "the patch did not produce an object", reason="Invalid")
            self._strict(rt, patched, params)
            # A patch only conflicts when it carries a resourceVersion of its own.
            sent_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            if not sent_rv:
                patched.setdefault("metadata", {})["resourceVersion"] = current["metadata"]["resourceVersion"]
            result = store.replace(rt, namespace, name, patched, subresource=sub, dry_run=dry_run)
        self._send_json(200, result)

    def _delete_options(self, params: dict[str, str]) -> tuple[str | None, int | None, str | None]:
        body = self._body() or {}
        policy = params.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is None and body.get("orphanDependents") is not None:
            policy = "Orphan" if body["orphanDependents"] else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(400, f'propagationPolicy "{policy}" is not one of Orphan, Background, Foreground')
        grace_text = params.get("gracePeriodSeconds")
        grace = int(grace_text) if grace_text else body.get("gracePeriodSeconds")
        uid = (body.get("preconditions") or {}).get("uid")
        return policy, grace, uid

    def _delete(self, rt: ResourceType, namespace: str | None, name: str, params: dict[str, str]) -> None:
        policy, grace, uid = self._delete_options(params)
        result = self.api.store.delete(
            rt, namespace, name, propagation=policy, grace_seconds=grace, uid=uid, dry_run=bool(params.get("dryRun"))
        )
        still_there = self.api.store.try_get(rt, namespace, name) is not None
        if rt in (r.POD, r.NAMESPACE, r.NODE) or still_there:
            # Pods (and objects still held by finalizers) come back as the object itself.
            self._send_json(200, result)
        else:
            self._send_json(
                200,
                success_status({"name": name, "group": rt.group, "kind": rt.plural, "uid": result["metadata"]["uid"]}),
            )

    def _delete_collection(self, rt: ResourceType, namespace: str | None, params: dict[str, str]) -> None:
        policy, grace, _ = self._delete_options(params)
        items, rv = self.api.store.list(rt, namespace, self._matcher(namespace, params), copy=False)
        deleted = []
        for item in items:
            try:
                deleted.append(
                    self.api.store.delete(
                        rt,
                        item["metadata"].get("namespace"),
                        item["metadata"]["name"],
                        propagation=policy,
                        grace_seconds=grace,
                    )
                )
            except ApiError:
                continue  # deleted meanwhile
        self._send_json(
            200,
            {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": str(rv)},
                "items": deleted,
            },
        )

    # ------------------------------------------------------------------ watch
    def _watch(self, rt: ResourceType, namespace: str | None, params: dict[str, str]) -> None:
        store = self.api.store
        matches = self._matcher(namespace, params)
        timeout = float(params.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        deadline = time.monotonic() + timeout
        bookmarks = _flag(params, "allowWatchBookmarks")
        start_rv = params.get("resourceVersion") or ""
        initial: list[tuple[str, Obj]] = []
        # A streaming list (client-go's WatchListClient, on by default in kubectl 1.35+): the current
        # objects as ADDED, then a BOOKMARK annotated k8s.io/initial-events-end, then the watch goes on
        # (https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists).
        send_initial = _flag(params, "sendInitialEvents")
        if start_rv in ("", "0") or send_initial:
            with store.cond:
                items, cursor = store.list(rt, namespace, matches, copy=False)
            initial = [("ADDED", o) for o in items]
        else:
            try:
                cursor = int(start_rv)
            except ValueError as exc:
                raise ApiError(400, f"invalid resourceVersion {start_rv!r}") from exc
        as_table = self._table_wanted()
        include = params.get("includeObject", "Metadata")
        self._start_stream("application/json")
        try:
            self._send_events(initial, rt, as_table, include)
            if send_initial:
                end = {
                    "kind": rt.kind,
                    "apiVersion": rt.api_version,
                    "metadata": {
                        "resourceVersion": str(cursor),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                self._send_events([("BOOKMARK", end)])
            last_sent = time.monotonic()
            while not self.api.stopping.is_set():
                with store.cond:
                    while (
                        cursor >= store.resource_version
                        and time.monotonic() < deadline
                        and not self.api.stopping.is_set()
                        and not (bookmarks and time.monotonic() - last_sent >= self.api.bookmark_seconds)
                    ):
                        store.cond.wait(max(0.01, min(0.5, deadline - time.monotonic())))
                    events = store.events_since(cursor)
                    current = store.resource_version
                if events is None:
                    self._send_events([("ERROR", self._expired(cursor))])
                    break
                out = self._filter(events, rt, matches)
                cursor = current
                if out:
                    self._send_events(out, rt, as_table, include)
                    last_sent = time.monotonic()
                elif bookmarks and time.monotonic() - last_sent >= self.api.bookmark_seconds:
                    bookmark = {
                        "kind": rt.kind,
                        "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": str(cursor)},
                    }
                    self._send_events([("BOOKMARK", bookmark)])
                    last_sent = time.monotonic()
                if time.monotonic() >= deadline:
                    break
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    @staticmethod
    def _expired(cursor: int) -> Obj:
        return ApiError(410, f"too old resource version: {cursor}", reason="Expired").status()

    @staticmethod
    def _filter(events: list[Any], rt: ResourceType, matches: Callable[[Obj], bool]) -> list[tuple[str, Obj]]:
        out: list[tuple[str, Obj]] = []
        for _, kind, event_rt, obj, old in events:
            if event_rt is not rt:
                continue
            now_ok = matches(obj)
            was_ok = old is not None and matches(old)
            if kind == "ADDED" and now_ok:
                out.append(("ADDED", obj))
            elif kind == "MODIFIED":
                if now_ok and was_ok:
                    out.append(("MODIFIED", obj))
                elif now_ok:
                    out.append(("ADDED", obj))
                elif was_ok:
                    out.append(("DELETED", obj))
            elif kind == "DELETED" and (now_ok or was_ok):
                out.append(("DELETED", obj))
        return out

    def _send_events(
        self, events: list[tuple[str, Obj]], rt: ResourceType | None = None, as_table: bool = False, include: str = ""
    ) -> None:
        """One chunk of JSON lines. For ``as=Table`` each object becomes a one-row Table, as a real server
        sends it to ``kubectl get -w`` (https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables).
        """
        if not events:
            return
        if as_table and rt is not None:
            events = [
                (t, tables.table(rt, [o], int(o["metadata"].get("resourceVersion") or 0), include))
                if t in ("ADDED", "MODIFIED", "DELETED")
                else (t, o)
                for t, o in events
            ]
        self._chunk(b"".join(json.dumps({"type": t, "object": o}).encode() + b"\n" for t, o in events))

    # ------------------------------------------------------------------ logs
    def _logs(self, namespace: str, name: str, params: dict[str, str]) -> None:
        pod = self.api.store.get(r.POD, namespace, name)
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = params.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        buffer = self.api.logs(pod["metadata"]["uid"]) if container == containers[0] else None
        if buffer is None:
            raise ApiError(400, f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        tail = int(params["tailLines"]) if params.get("tailLines") else None
        stamps = _flag(params, "timestamps")
        lines, index, closed = buffer.read(0, tail)
        if not _flag(params, "follow"):
            self._send_text(200, b"".join(buffer.render(line, stamps) for line in lines))
            return
        self._start_stream("text/plain")
        try:
            self._chunk(b"".join(buffer.render(line, stamps) for line in lines))
            while not closed and not self.api.stopping.is_set():
                buffer.wait(index, 0.5)
                lines, index, closed = buffer.read(index, None)
                self._chunk(b"".join(buffer.render(line, stamps) for line in lines))
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
