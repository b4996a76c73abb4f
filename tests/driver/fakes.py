"""An in-memory cluster at the driver's seam (:class:`~gokart_k8s.cluster.ClusterAPI`) for tests
that feed the driver by hand: lists are empty, watches report nothing, pods log nothing. Tests
subclass it with the Job calls they observe."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from gokart_k8s.cluster import ObjectList, Resource, WatchEvent


class IdleStream:
    """A watch that ends at once with nothing to report."""

    def __iter__(self) -> Iterator[WatchEvent]:
        return iter(())

    def close(self) -> None:
        pass


class QuietStream:
    """A watch that reports nothing until it is closed (the driver's stop)."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def __iter__(self) -> Iterator[WatchEvent]:
        self._closed.wait(60)
        return iter(())

    def close(self) -> None:
        self._closed.set()


class QuietCluster:
    """Everything but the Job calls: access granted, empty lists, silent watches and logs."""

    #: The watch each ``watch()`` call returns.
    stream: type[IdleStream] | type[QuietStream] = IdleStream

    def check_access(self, namespace: str) -> None:
        pass

    def list(self, resource: Resource, namespace: str, selector: str) -> ObjectList:
        return ObjectList([], "1")

    def watch(
        self, resource: Resource, namespace: str, selector: str, *, resource_version: str, timeout_seconds: int
    ) -> Any:
        return self.stream()

    def read_pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        return ""

    def follow_pod_log(self, namespace: str, name: str, *, idle_timeout: float = 3600.0) -> Iterator[str]:
        return iter(())
