"""PATCH bodies: JSON merge patch, JSON patch and (approximated) strategic merge patch.

* ``application/merge-patch+json``: RFC 7386 (``null`` deletes, lists replace).
* ``application/json-patch+json``: RFC 6902 operations on JSON pointers.
* ``application/strategic-merge-patch+json``: approximated as a merge patch in which the lists the
  project patches are merged by their documented ``patchMergeKey`` (``conditions`` by ``type``,
  ``containers``/``env``/``volumes`` by ``name``, ``ownerReferences`` by ``uid`` …), ``finalizers``
  is merged as a set, and ``$patch: delete|replace`` and ``$deleteFromPrimitiveList/…`` are honoured
  (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
  Other directives (``$setElementOrder``, ``$retainKeys``) are ignored.
"""

from __future__ import annotations

from typing import Any

from .status import ApiError

_MERGE_KEYS = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "containerStatuses": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ownerReferences": "uid",
    "imagePullSecrets": "name",
    "taints": "key",
    "ports": "containerPort",
    "hostAliases": "ip",
}
_SET_LISTS = {"finalizers"}


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
            continue
        if key.startswith("$"):
            continue
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in _MERGE_KEYS and isinstance(current, list):
            result[key] = _merge_keyed_list(current, value, _MERGE_KEYS[key])
        elif isinstance(value, list) and key in _SET_LISTS and isinstance(current, list):
            result[key] = current + [v for v in value if v not in current]
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(current, value)
        else:
            result[key] = value
    return result


def _merge_keyed_list(current: list[Any], patch: list[Any], merge_key: str) -> list[Any]:
    out = list(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            out.append(item)
            continue
        index = next(
            (
                i
                for i, existing in enumerate(out)
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del out[index]
        elif index is None:
            out.append({k: v for k, v in item.items() if k != "$patch"})
        else:
            out[index] = strategic_merge_patch(out[index], item)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"invalid JSON pointer {path!r}: must start with '/'", reason="Invalid")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise ApiError(
                422,
                f"the server rejected our request due to an error in our request: path {path!r} does not exist",
                reason="Invalid",
            )
    return doc


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise ApiError(422, f"unable to remove nonexistent key {path!r}", reason="Invalid")


def _add(doc: Any, path: str, value: Any, *, replace: bool = False) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, f"replace operation does not apply: doc is missing key {path!r}", reason="Invalid")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise ApiError(422, f"index out of range in {path!r}", reason="Invalid")
    else:
        raise ApiError(422, f"cannot add at {path!r}", reason="Invalid")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    import copy

    if not isinstance(operations, list):
        raise ApiError(400, "a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_walk(doc, _pointer(op["from"]), op["from"])))
        elif kind == "test":
            if _walk(doc, _pointer(path), path) != op.get("value"):
                raise ApiError(422, f"testing value {path} failed", reason="Invalid")
        else:
            raise ApiError(400, f"unknown JSON patch operation {kind!r}")
    return doc


_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def check_media_type(content_type: str) -> str:
    """The base media type of a PATCH, or 415 for one this server does not apply.

    Called before the target is looked up, so server-side apply (``application/apply-patch+yaml``) on
    an object that does not exist yet is refused with 415 like on an existing one, not 404.
    """
    base = content_type.split(";")[0].strip()
    if base not in _MEDIA_TYPES:
        raise ApiError(
            415,
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(_MEDIA_TYPES)} (got {base!r}; server-side apply is not emulated)",
        )
    return base


def apply(content_type: str, doc: Any, patch: Any) -> Any:
    """Apply a PATCH body of the given content type to ``doc``."""
    base = check_media_type(content_type)
    if base == "application/json-patch+json":
        return json_patch(doc, patch)
    if base == "application/merge-patch+json":
        return merge_patch(doc, patch)
    return strategic_merge_patch(doc, patch)
