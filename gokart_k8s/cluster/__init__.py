"""The cluster seam: the few Kubernetes operations the driver needs, as a Protocol over plain dicts.

Everything above this seam (the driver, the watcher, outcome classification) sees Jobs and pods as
the camelCase JSON the API returns, never client objects; everything below it is one adapter,
:mod:`gokart_k8s.cluster.kubernetes`, the only module of the project that imports the
``kubernetes`` client. Tests and the local rehearsal use the same adapter against the embedded
local cluster's URL, so the seam is exercised over real HTTP.

Contract every implementation keeps:

- every call is bounded by a client-side timeout, so a dead connection cannot hang the driver;
- transient failures (429, 5xx, connection reset) are retried inside the call; what is left is
  raised as :class:`~gokart_k8s.errors.ClusterError` (or :class:`~gokart_k8s.errors.SubmissionError`
  for a refused Job), with the client's exception as ``__cause__``;
- :meth:`ClusterAPI.create_job` never creates a duplicate: Job names are deterministic, and a 409
  AlreadyExists returns the existing Job with ``created=False`` so the caller adopts it;
- :meth:`ClusterAPI.watch` reports an expired resourceVersion (410 Gone) as an ``ERROR`` event with
  ``object["code"] == 410`` rather than raising, so the watcher re-lists.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["ClusterAPI", "ObjectList", "Resource", "WatchEvent", "WatchStream"]

#: The two kinds of object the driver lists and watches.
Resource = Literal["jobs", "pods"]


@dataclass(frozen=True)
class ObjectList:
    """A LIST result: the items and the list's resourceVersion to watch from.

    Watching from the list's resourceVersion (not from "now") is what makes list-then-watch
    lossless: a pod that ends between the two calls is still reported
    (https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes).
    """

    items: list[dict[str, Any]]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    """One watch event: ``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK`` or ``ERROR``."""

    type: str
    object: dict[str, Any] = field(default_factory=dict)

    @property
    def expired(self) -> bool:
        """True for the 410 Gone error: the resourceVersion is too old; re-list, then watch again."""
        return self.type == "ERROR" and self.object.get("code") == 410


class WatchStream(Protocol):
    """An open watch: iterate for events; ``close()`` from another thread ends the iteration."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


class ClusterAPI(Protocol):
    """The operations the driver performs on a cluster (see the module docstring for the contract)."""

    def check_access(self, namespace: str) -> None:
        """Fail with advice before any step runs if Jobs cannot be created and watched in ``namespace``."""
        ...

    def check_service_account(self, namespace: str, name: str) -> None:
        """Fail with advice before any step runs if service account ``name`` is missing from ``namespace``."""
        ...

    def create_job(self, namespace: str, manifest: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create a Job; return ``(job, True)``, or ``(existing_job, False)`` if the name is taken."""
        ...

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Job, or None if it does not exist."""
        ...

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete a Job and, in the background, its pods; a missing Job is not an error."""
        ...

    def list(self, resource: Resource, namespace: str, selector: str) -> ObjectList:
        """LIST Jobs or pods matching the label ``selector``."""
        ...

    def watch(
        self,
        resource: Resource,
        namespace: str,
        selector: str,
        *,
        resource_version: str,
        timeout_seconds: int,
    ) -> WatchStream:
        """WATCH from ``resource_version``; the server ends the stream after ``timeout_seconds``."""
        ...

    def read_pod_log(self, namespace: str, name: str, *, tail_lines: int | None = None) -> str:
        """The pod's log (its last ``tail_lines`` lines); empty if the pod or its log is gone."""
        ...

    def follow_pod_log(self, namespace: str, name: str, *, idle_timeout: float = 3600.0) -> Iterator[str]:
        """Log lines as the pod writes them, until its container ends; ClusterError if the stream breaks."""
        ...
