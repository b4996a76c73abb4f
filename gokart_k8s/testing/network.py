"""A TCP line that can be cut: what a client sees when the API server goes away, then comes back.

:class:`CuttableProxy` forwards 127.0.0.1:``port`` to an upstream port. :meth:`~CuttableProxy.cut`
closes the listening socket (new connections are refused) and breaks every open connection (a
watch in progress ends with a connection error); :meth:`~CuttableProxy.restore` listens on the same
port again. :meth:`~CuttableProxy.hang` keeps every connection open but holds the bytes (a network
partition, a frozen server: nothing is refused, nothing answers) until :meth:`~CuttableProxy.restore`.
Clients keep their address throughout, as they keep an API server's.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["CuttableProxy"]


class CuttableProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:upstream_port`` until cut (see the module docstring)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        """Listen (again) on :attr:`port` and let the bytes flow."""
        self._flowing.set()
        if self._listener is not None:
            return  # it was hung, not cut
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and break every open one."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            _shut(conn)
            conn.close()

    def hang(self) -> None:
        """Keep connections (and accept new ones) but pass no byte on."""
        self._flowing.clear()

    def close(self) -> None:
        self._flowing.set()
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(src)
            _shut(dst)


def _shut(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
