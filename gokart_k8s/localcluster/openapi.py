"""OpenAPI v3 (and v2) documents for the kinds the cluster serves, and the strict field validation they promise.

kubectl downloads ``/openapi/v3`` before ``apply -f`` and ``create -f`` (to learn whether the server
validates fields itself) and for ``explain``; without it they fail with "failed to download openapi"
(https://kubernetes.io/docs/concepts/overview/kubernetes-api/#openapi-v3). The documents are built
from the JSON schemas the ``kubernetes-validate`` package ships (one set per Kubernetes minor; the
emulated minor's set is used), not from a copied spec file:

* ``/openapi/v3`` lists one document per group-version (``api/v1``, ``apis/batch/v1`` …);
* each document has the REST paths of that group-version's resources, with the query parameters a
  real server declares (kubectl looks for ``fieldValidation`` on the PATCH operation), and every
  schema reachable from its kinds under ``components.schemas``.

Because the documents declare ``fieldValidation``, kubectl leaves validation to the server and sends
``fieldValidation=Strict``; :func:`unknown_fields` gives what a real server then refuses
(https://kubernetes.io/docs/reference/using-api/api-concepts/#field-validation).

``/openapi/v2`` is served in JSON only (:func:`document_v2`): kubectl asks for it only when v3 is
missing, and then in protobuf.
"""

from __future__ import annotations

import functools
import hashlib
import json
from importlib import resources as importlib_resources
from typing import Any

from . import resources as r
from .resources import ResourceType
from .status import ApiError

Obj = dict[str, Any]
_REF = "#/$defs/"
_SCHEMAS = "#/components/schemas/"
_DEFINITIONS = "#/definitions/"


@functools.cache
def _definitions() -> dict[str, Obj]:
    """kubernetes-validate's definitions for the emulated minor (or its newest set), as OpenAPI schemas."""
    try:
        root = importlib_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    except ModuleNotFoundError as exc:
        raise ApiError(
            404,
            "the local cluster serves OpenAPI documents only with the kubernetes-validate package installed "
            "(pip install 'gokart-k8s[local-cluster]'), or pass --validate=false to kubectl",
            reason="NotFound",
        ) from exc
    minor = f"v{r.EMULATED_VERSION['major']}.{r.EMULATED_VERSION['minor']}.0-local"
    folders = sorted(p.name for p in root.iterdir() if p.name.endswith("-local"))
    folder = minor if minor in folders else max(folders, key=lambda n: tuple(int(x) for x in n[1:-6].split(".")))
    raw = json.loads((root / folder / "_definitions.json").read_text())["$defs"]
    return {name: _to_openapi(schema) for name, schema in raw.items()}


def _to_openapi(node: Any) -> Any:
    """JSON Schema 2020-12 (as kubernetes-validate writes it) → OpenAPI 3.0: refs moved, ``null`` types dropped."""
    if isinstance(node, list):
        return [_to_openapi(x) for x in node]
    if not isinstance(node, dict):
        return node
    if isinstance(node.get("$ref"), str) and len(node) > 1:
        # A described reference, as a real server writes it: the field's own description beside the type's.
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {"allOf": [{"$ref": node["$ref"].replace(_REF, _SCHEMAS)}], **_to_openapi(rest)}
    out: Obj = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace(_REF, _SCHEMAS)
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            out[key] = types[0] if len(types) == 1 else types
        else:
            out[key] = _to_openapi(value)
    return out


def _schema_name(rt: ResourceType) -> str | None:
    """The definition whose x-kubernetes-group-version-kind is ``rt``'s kind."""
    for name, schema in _definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            if (gvk.get("group"), gvk.get("version"), gvk.get("kind")) == (rt.group, rt.version, rt.kind):
                return name
    return None


def _closure(names: list[str]) -> dict[str, Obj]:
    defs, out, todo = _definitions(), {}, list(names)
    while todo:
        name = todo.pop()
        if name in out or name not in defs:
            continue
        out[name] = defs[name]
        todo.extend(ref[len(_SCHEMAS) :] for ref in _refs(defs[name]))
    return out


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for v in node.values() for ref in _refs(v)]
    if isinstance(node, list):
        return [ref for v in node for ref in _refs(v)]
    return []


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _query(name: str, v2: bool = False) -> Obj:
    # v2 types a parameter itself; v3 through its schema (as the real documents write them).
    if v2:
        return {"name": name, "in": "query", "type": "string", "uniqueItems": True}
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _in_path(name: str, v2: bool) -> Obj:
    typed: Obj = {"type": "string"} if v2 else {"schema": {"type": "string"}}
    return {"name": name, "in": "path", "required": True, **typed}


def _operation(rt: ResourceType, verb: str, schema: str, params: tuple[str, ...], v2: bool = False) -> Obj:
    ref = {"$ref": (_DEFINITIONS if v2 else _SCHEMAS) + schema}
    media = "application/merge-patch+json" if verb == "patch" else "application/json"
    op: Obj = {"operationId": f"{verb}{rt.kind}", "parameters": [_query(p, v2) for p in params]}
    if v2:
        if verb in ("post", "put", "patch"):
            op["parameters"].append({"name": "body", "in": "body", "required": True, "schema": ref})
            op["consumes"] = [media]
        op["produces"] = ["application/json"]
        op["responses"] = {"200": {"description": "OK", "schema": ref}}
    else:
        if verb in ("post", "put", "patch"):
            op["requestBody"] = {"content": {media: {"schema": ref}}}
        op["responses"] = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
    op["x-kubernetes-action"] = verb
    op["x-kubernetes-group-version-kind"] = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    return op


_WRITE = ("dryRun", "fieldManager", "fieldValidation", "pretty")


def _paths(rt: ResourceType, schema: str, v2: bool = False) -> dict[str, Obj]:
    base = "/api/v1" if not rt.group else f"/apis/{rt.group}/{rt.version}"
    prefix = f"{base}/namespaces/{{namespace}}" if rt.namespaced else base
    scope = [_in_path("namespace", v2)] if rt.namespaced else []
    return {
        f"{prefix}/{rt.plural}": {
            "parameters": scope,
            "get": _operation(rt, "list", schema, ("labelSelector", "fieldSelector", "watch"), v2),
            "post": _operation(rt, "post", schema, _WRITE, v2),
        },
        f"{prefix}/{rt.plural}/{{name}}": {
            "parameters": [*scope, _in_path("name", v2)],
            "get": _operation(rt, "get", schema, ("pretty",), v2),
            "put": _operation(rt, "put", schema, _WRITE, v2),
            "patch": _operation(rt, "patch", schema, (*_WRITE, "force"), v2),
            "delete": _operation(rt, "delete", schema, ("dryRun", "gracePeriodSeconds", "propagationPolicy"), v2),
        },
    }


def _info() -> Obj:
    return {"title": "Kubernetes (gokart-k8s local cluster)", "version": r.EMULATED_VERSION["gitVersion"]}


@functools.cache
def document(group: str, version: str) -> bytes | None:
    """The OpenAPI v3 document of one group-version, serialised once."""
    types = [t for t in r.ALL_TYPES if (t.group, t.version) == (group, version)]
    if not types:
        return None
    paths: dict[str, Obj] = {}
    names: list[str] = []
    for rt in types:
        schema = _schema_name(rt)
        if schema is not None:
            names.append(schema)
            paths.update(_paths(rt, schema))
    doc = {"openapi": "3.0.0", "info": _info(), "paths": paths, "components": {"schemas": _closure(names)}}
    return json.dumps(doc).encode()


@functools.cache
def document_v2() -> bytes:
    """``/openapi/v2``: one Swagger 2.0 document for every kind served, serialised once.

    kubectl 1.37 reads v3 (it asks for v2 only when v3 is missing, and then in protobuf, which this
    cluster does not speak: it answers 406 to that); v2 in JSON is for other tools and for
    ``kubectl get --raw /openapi/v2``. The same schemas, with v2's references and parameters.
    """
    paths: dict[str, Obj] = {}
    names: list[str] = []
    for rt in r.ALL_TYPES:
        schema = _schema_name(rt)
        if schema is not None:
            names.append(schema)
            paths.update(_paths(rt, schema, v2=True))
    definitions = {name: _moved_refs(value) for name, value in _closure(names).items()}
    doc = {"swagger": "2.0", "info": _info(), "paths": paths, "definitions": definitions}
    return json.dumps(doc).encode()


def _moved_refs(node: Any) -> Any:
    """A v3 schema as v2 writes it: references under ``#/definitions/``, and no ``oneOf`` (which
    Swagger 2.0 lacks): an int-or-string is ``type: string, format: int-or-string``, as in the
    real v2 document."""
    if isinstance(node, list):
        return [_moved_refs(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace(_SCHEMAS, _DEFINITIONS)
        elif key in ("oneOf", "anyOf") and isinstance(value, list):
            types = {alt.get("type") for alt in value if isinstance(alt, dict)}
            out["type"] = "string"
            if "integer" in types:
                out["format"] = "int-or-string"
        else:
            out[key] = _moved_refs(value)
    return out


def index() -> Obj:
    """``/openapi/v3``: where each group-version's document is, with a content hash as real servers add."""
    paths = {}
    for group, version in [("", "v1"), *r.groups()]:
        body = document(group, version)
        if body is not None:
            digest = hashlib.sha512(body).hexdigest()[:64].upper()
            paths[_gv_path(group, version)] = {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}?hash={digest}"
            }
    return {"paths": paths}


def unknown_fields(rt: ResourceType, obj: Any) -> list[str]:
    """Dotted paths of the fields in ``obj`` that ``rt``'s schema does not have (for fieldValidation=Strict)."""
    name = _schema_name(rt)
    return [] if name is None else _unknown(_definitions()[name], obj, "")


def _unknown(schema: Obj, value: Any, path: str) -> list[str]:
    defs = _definitions()
    while "$ref" in schema or len(schema.get("allOf") or []) == 1:
        ref = schema["$ref"] if "$ref" in schema else schema["allOf"][0].get("$ref", "")
        schema = defs.get(ref[len(_SCHEMAS) :], {})
    if isinstance(value, dict):
        props = schema.get("properties")
        if props is None:  # a map (labels, resources) or a free-form object
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return [u for k, v in value.items() for u in _unknown(extra, v, f"{path}.{k}" if path else k)]
            return []
        found: list[str] = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in props:
                found.append(where)
            else:
                found.extend(_unknown(props[key], item, where))
        return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [u for i, item in enumerate(value) for u in _unknown(schema["items"], item, f"{path}[{i}]")]
    return []
