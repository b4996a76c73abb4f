"""API errors as Kubernetes ``Status`` objects.

Every refusal of the local API server is an :class:`ApiError`, rendered as the same ``Status``
body a real API server sends (``kind: Status``, ``reason``, ``code`` and, for 422,
``details.causes[].field``), so the official client raises ``ApiException`` with the status code
and body a caller would see against a real cluster
(https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/status/).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_REASON_BY_CODE = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
}


@dataclass(frozen=True)
class Cause:
    """One ``details.causes[]`` entry: which field is wrong and why."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def render(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass
class ApiError(Exception):
    """A request the API server refuses; ``status()`` is the body sent back."""

    code: int
    message: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.reason:
            self.reason = _REASON_BY_CODE.get(self.code, "Unknown")
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            out["details"] = self.details
        return out


def _qualified(resource: str, group: str) -> str:
    """``jobs.batch``, ``Job.batch``; core resources have no group suffix (``pods``)."""
    return f"{resource}.{group}" if group else resource


def _object_error(
    code: int, message: str, group: str, kind: str, name: str, *, reason: str = "", **more: Any
) -> ApiError:
    """An error about one object: ``details`` names it (``name``, ``group``, ``kind``, then ``more``)."""
    return ApiError(code, message, reason=reason, details={"name": name, "group": group, "kind": kind, **more})


def not_found(group: str, plural: str, name: str) -> ApiError:
    return _object_error(404, f'{_qualified(plural, group)} "{name}" not found', group, plural, name)


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return _object_error(409, f'{_qualified(plural, group)} "{name}" already exists', group, plural, name)


def conflict(group: str, plural: str, name: str) -> ApiError:
    return _object_error(
        409,
        f'Operation cannot be fulfilled on {_qualified(plural, group)} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        group,
        plural,
        name,
        reason="Conflict",
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 like the API server: ``Job.batch "x" is invalid: [a: msg, b: msg]``."""
    rendered = [c.render() for c in causes]
    body = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return _object_error(
        422,
        f'{_qualified(kind, group)} "{name}" is invalid: {body}',
        group,
        kind,
        name,
        causes=[c.as_dict() for c in causes],
    )


def success_status(details: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        out["details"] = details
    out["code"] = code
    return out
