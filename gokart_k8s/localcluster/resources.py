"""The resource types the local API server knows, and the discovery documents built from them.

One :class:`ResourceType` per REST resource (``pods``, ``jobs`` …). The same table drives routing,
the store, discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/batch/v1`` — what ``kubectl``
reads before anything else, https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api)
and ``kubectl``'s short names and categories (``kubectl get all``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The Kubernetes version the emulation follows (Job conditions as in 1.31+, etc.).
EMULATED_VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0-gokart-k8s-local",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
}

_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, what it is called, what it may do."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: Objects with a status subresource: PUT/PATCH of the main resource keep the stored status.
    has_status: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def singular(self) -> str:
        return self.kind.lower()


POD = ResourceType("", "v1", "pods", "Pod", True, ("po",), ("status", "log", "eviction"), ("all",), has_status=True)
NODE = ResourceType("", "v1", "nodes", "Node", False, ("no",), ("status",), has_status=True)
NAMESPACE = ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), ("status",), has_status=True)
EVENT = ResourceType("", "v1", "events", "Event", True, ("ev",))
CONFIGMAP = ResourceType("", "v1", "configmaps", "ConfigMap", True, ("cm",))
SECRET = ResourceType("", "v1", "secrets", "Secret", True)
SERVICEACCOUNT = ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",))
JOB = ResourceType("batch", "v1", "jobs", "Job", True, (), ("status",), ("all",), has_status=True)
CRONJOB = ResourceType("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",), ("all",), True)
ROLE = ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
ROLEBINDING = ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True)

ALL_TYPES: tuple[ResourceType, ...] = (
    POD,
    NODE,
    NAMESPACE,
    EVENT,
    CONFIGMAP,
    SECRET,
    SERVICEACCOUNT,
    JOB,
    CRONJOB,
    ROLE,
    ROLEBINDING,
)
_BY_PATH = {(t.group, t.version, t.plural): t for t in ALL_TYPES}
_BY_KIND = {(t.api_version, t.kind): t for t in ALL_TYPES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceType | None:
    return _BY_KIND.get((api_version, kind))


def groups() -> list[tuple[str, str]]:
    """(group, version) pairs of the named groups, in a stable order."""
    seen: list[tuple[str, str]] = []
    for t in ALL_TYPES:
        if t.group and (t.group, t.version) not in seen:
            seen.append((t.group, t.version))
    return seen


def api_versions(server: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server}],
    }


def _group_doc(group: str, version: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group_doc(g, v) for g, v in groups()]}


def api_group(group: str) -> dict[str, Any] | None:
    for g, v in groups():
        if g == group:
            return _group_doc(g, v)
    return None


def api_resource_list(group: str, version: str) -> dict[str, Any] | None:
    types = [t for t in ALL_TYPES if t.group == group and t.version == version]
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        entry: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": _ALL_VERBS,
        }
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in t.subresources:
            sub_kind = {"log": "Pod", "eviction": "Eviction"}.get(sub, t.kind)
            verbs = {"log": ["get"], "eviction": ["create"]}.get(sub, ["get", "patch", "update"])
            sub_entry: dict[str, Any] = {
                "name": f"{t.plural}/{sub}",
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": sub_kind,
                "verbs": verbs,
            }
            if sub == "eviction":
                sub_entry.update(group="policy", version="v1")
            resources.append(sub_entry)
    gv = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
