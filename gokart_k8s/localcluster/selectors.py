"""Label and field selectors, parsed once and matched against plain object dicts.

Label selectors follow the documented grammar: equality (``a=b``, ``a==b``, ``a!=b``) and
set-based (``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``), comma meaning AND
(https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors).
Field selectors support ``=``, ``==`` and ``!=`` on any dotted path (``metadata.name``,
``spec.nodeName``, ``status.phase``, ``involvedObject.name``); a real API server allows only a few
fields per kind, this one allows any
(https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .status import ApiError

_SET_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s+(in|notin)\s+\((.*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # in, notin, exists, !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # notin


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return parts


def parse_label_selector(text: str | None) -> tuple[Requirement, ...]:
    """Parse a ``labelSelector`` query parameter; 400 BadRequest when it is malformed."""
    if not text:
        return ()
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(part):
            op = "notin" if m.group(2) == "!=" else "in"
            reqs.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS_RE.match(part):
            reqs.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise ApiError(400, f"unable to parse requirement: {part.strip()!r} in labelSelector {text!r}")
    return tuple(reqs)


def selector_from_label_selector_object(selector: Mapping[str, Any] | None) -> tuple[Requirement, ...]:
    """A ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``) as requirements."""
    if not selector:
        return ()
    reqs = [Requirement(k, "in", frozenset([str(v)])) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}[expr["operator"]]
        reqs.append(Requirement(expr["key"], op, frozenset(expr.get("values") or [])))
    return tuple(reqs)


def labels_match(reqs: tuple[Requirement, ...], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    value: str
    negate: bool


def parse_field_selector(text: str | None) -> tuple[FieldRequirement, ...]:
    if not text:
        return ()
    reqs = []
    for part in text.split(","):
        if not part.strip():
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                reqs.append(FieldRequirement(tuple(key.strip().split(".")), value.strip(), op == "!="))
                break
        else:
            raise ApiError(400, f"invalid field selector: {part!r}: expected key=value or key!=value")
    return tuple(reqs)


def _field_value(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    current: Any = obj
    for step in path:
        if not isinstance(current, Mapping):
            return ""
        current = current.get(step)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    return str(current)


def fields_match(reqs: tuple[FieldRequirement, ...], obj: Mapping[str, Any]) -> bool:
    return all((_field_value(obj, r.path) == r.value) != r.negate for r in reqs)
