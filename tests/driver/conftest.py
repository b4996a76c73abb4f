"""Fixtures of the driver tests: kubeconfigs, and a scripted API server for the adapter's edge cases.

The scripted server answers each request from a queue of canned responses (status, JSON body,
headers) and records what it received, so the adapter's retry, adoption and error paths are
exercised over real HTTP on 127.0.0.1 without a cluster.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from gokart_k8s.cluster.kubernetes import KubernetesCluster, connect


def write_kubeconfig(path: Path, url: str, *, context: str = "test") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "test-token"}}],
                "contexts": [{"name": context, "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
                "current-context": context,
            }
        )
    )
    return path


@dataclass
class Scripted:
    """Canned responses, served in order (the last one repeats), and the requests received."""

    responses: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""

    def reply(self, status: int, body: Any = None, **headers: str) -> Scripted:
        self.responses.append((status, body if body is not None else {}, headers))
        return self


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    script = Scripted()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def handle(self) -> None:
            try:
                super().handle()
            except ConnectionError:
                pass  # the client closed a stream it had read enough of

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            with lock:
                script.requests.append((self.command, self.path, json.loads(raw) if raw else None))
                status, body, headers = script.responses.pop(0) if len(script.responses) > 1 else script.responses[0]
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield script
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def scripted_api(scripted: Scripted, tmp_path: Path) -> KubernetesCluster:
    return connect(
        kubeconfig=str(write_kubeconfig(tmp_path / "kubeconfig", scripted.url)), request_timeout=5, backoff_seconds=0.01
    )


from gokart_k8s.testing.cluster import local_cluster, local_cluster_factory  # noqa: E402, F401
