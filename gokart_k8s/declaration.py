"""Declare: ``@gokart_k8s.job(resources=..., eviction=...)`` on a gokart task.

The decorator only *declares*. It records a frozen :class:`StepDeclaration` on the class and
returns the very same class: it does not wrap ``run()``, adds no luigi parameter and changes
nothing gokart hashes, so ``make_unique_id()`` -- and with it every cached output -- is the same
with and without it. (Moving a step to the cluster must never throw its cache away.)

Subclasses inherit a declaration through ordinary attribute lookup unless they are decorated
themselves. Undecorated tasks get the pipeline's defaults (``[gokart_k8s] default_resources`` and
``default_eviction``) when the plan resolves them.

Misuse is refused at decoration time (import time of the user's module), with a message that lists
what is valid.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gokart_k8s.errors import ConfigurationError, DeclarationError, QuantityError
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import Catalog, ResourceClass

T = TypeVar("T", bound=type)

#: Attribute on the task class that holds its declaration.
DECLARATION_ATTR = "__gokart_k8s_declaration__"

_VALID_KEYWORDS = ("resources", "eviction", "max_runtime", "expected_runtime")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class StepDeclaration:
    """What ``@gokart_k8s.job(...)`` recorded on a task class; ``None`` means "the default"."""

    resources: str | ResourceClass | None = None
    eviction: Eviction | None = None
    max_runtime_seconds: int | None = None
    #: How long the step usually runs, for cost estimates (``plan --cost``); never a limit.
    expected_runtime_seconds: int | None = None


def parse_duration(value: object, *, what: str = "max_runtime") -> int:
    """Seconds from ``"90m"``, ``"6h"``, ``"7d"``, a number of seconds or a ``timedelta``."""
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m[1]) * _UNIT_SECONDS[m[2]]
    else:
        raise ValueError(
            f"{what} must be a duration such as '90m', '6h', '2d', a number of seconds or a "
            f"datetime.timedelta, got {value!r}"
        )
    if seconds <= 0:
        raise ValueError(f"{what} must be more than zero, got {value!r}")
    return int(seconds)


def job(
    *args: Any,
    resources: str | ResourceClass | None = None,
    eviction: Eviction | str | None = None,
    max_runtime: str | int | float | datetime.timedelta | None = None,
    expected_runtime: str | int | float | datetime.timedelta | None = None,
    **unknown: Any,
) -> Callable[[T], T]:
    """Declare how a gokart task runs as a step on Kubernetes.

    Args:
        resources: a resource-class name from the catalog (built-ins: ``small``, ``standard``,
            ``highcpu``, ``highmem``, ``gpu-t4``, ``gpu-l4``; more in ``luigi.cfg``), or a
            :class:`gokart_k8s.ResourceClass` for a one-off. Default: ``[gokart_k8s] default_resources``.
        eviction: ``"tolerate"`` (may run on Spot or be evicted; resumes from cache and
            checkpoints) or ``"protect"`` (on-demand capacity, protected from voluntary eviction);
            also :class:`gokart_k8s.Eviction`. Default: ``[gokart_k8s] default_eviction``.
        max_runtime: the longest one attempt of the step may run (``"6h"``, ``"2d"``, seconds or a
            ``timedelta``). It becomes the Job's ``activeDeadlineSeconds`` and is checked against
            platform limits (GKE Autopilot protects a pod for at most 7 days).
        expected_runtime: how long the step usually runs (same spellings as ``max_runtime``). Only
            ``gokart-k8s plan --cost`` reads it, to estimate what the step costs; it limits nothing.

    Returns the decorated class unchanged except for one class attribute.
    """
    if args:
        raise DeclarationError(
            "@gokart_k8s.job takes keyword arguments only, e.g. @gokart_k8s.job(resources='highmem', "
            "eviction='protect'); write @gokart_k8s.job() with parentheses even without arguments. "
            f"Valid keywords: {', '.join(_VALID_KEYWORDS)}."
        )
    if unknown:
        names = ", ".join(repr(k) for k in sorted(unknown))
        raise DeclarationError(
            f"@gokart_k8s.job got unknown keyword argument(s) {names}. Valid keywords: {', '.join(_VALID_KEYWORDS)}."
        )
    declaration = _declaration(resources, eviction, max_runtime)
    if expected_runtime is not None:
        try:
            expected = parse_duration(expected_runtime, what="@gokart_k8s.job(expected_runtime=...)")
        except ValueError as exc:
            raise DeclarationError(str(exc)) from None
        declaration = dataclasses.replace(declaration, expected_runtime_seconds=expected)

    def decorate(cls: T) -> T:
        _require_gokart_task(cls)
        setattr(cls, DECLARATION_ATTR, declaration)
        return cls

    return decorate


def _declaration(
    resources: str | ResourceClass | None,
    eviction: Eviction | str | None,
    max_runtime: str | int | float | datetime.timedelta | None,
) -> StepDeclaration:
    if resources is not None and not isinstance(resources, (str, ResourceClass)):
        raise DeclarationError(
            "@gokart_k8s.job(resources=...) must be a resource-class name (e.g. 'highmem') or a "
            f"gokart_k8s.ResourceClass(cpu=..., memory=...), got {type(resources).__name__} {resources!r}."
        )
    if isinstance(resources, str):
        _check_class_name(resources)
    evict: Eviction | None = None
    if eviction is not None:
        try:
            evict = Eviction.parse(eviction, what="@gokart_k8s.job(eviction=...)")
        except ValueError as exc:
            raise DeclarationError(str(exc)) from None
    seconds: int | None = None
    if max_runtime is not None:
        try:
            seconds = parse_duration(max_runtime, what="@gokart_k8s.job(max_runtime=...)")
        except ValueError as exc:
            raise DeclarationError(str(exc)) from None
    return StepDeclaration(resources=resources, eviction=evict, max_runtime_seconds=seconds)


def _check_class_name(name: str) -> None:
    """Refuse an unknown class name now, against the catalog of the current luigi config."""
    from gokart_k8s.settings import load_catalog

    try:
        catalog: Catalog = load_catalog()
        catalog.resolve(name)
    except (ConfigurationError, QuantityError) as exc:
        raise DeclarationError(f"@gokart_k8s.job(resources={name!r}): {exc}") from None


def _require_gokart_task(cls: object) -> None:
    import gokart

    if not (isinstance(cls, type) and issubclass(cls, gokart.TaskOnKart)):
        what = cls.__name__ if isinstance(cls, type) else repr(cls)
        raise DeclarationError(
            f"@gokart_k8s.job can only decorate a subclass of gokart.TaskOnKart, got {what}. "
            "Make the class inherit from gokart.TaskOnKart (a plain luigi.Task has no cache to resume from)."
        )


def declaration_of(task_or_class: object) -> StepDeclaration:
    """The declaration a task (or task class) carries; an empty one if undecorated."""
    cls = task_or_class if isinstance(task_or_class, type) else type(task_or_class)
    found = getattr(cls, DECLARATION_ATTR, None)
    return found if isinstance(found, StepDeclaration) else StepDeclaration()
