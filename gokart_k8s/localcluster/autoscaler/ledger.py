"""Node lifetimes: which node lived when, what it was, and what that adds up to.

A :class:`NodeLedger` listens to the store: a Node added opens a lifetime, a Node deleted closes
it, whoever did it (the autoscaler, a Spot preemption, ``kubectl delete node``). A node the
autoscaler asked for is billed from the request (the VM boots, and bills, before the Node
registers): its ``gokart-k8s.io/requested-at`` annotation holds that wall-clock time.

:meth:`NodeLedger.lifetimes` gives plain dicts for the run record: ``pool``, ``machine_type``,
``capacity_type`` (``spot`` or ``on-demand``), ``start`` and ``end`` (epoch seconds, wall clock,
comparable with pod timestamps; ``end`` is None while the node lives), plus ``node``, ``billing``
(``node``, or ``pod`` on Autopilot, which bills the pod's requests) and ``hours`` -- the lifetime
in *cluster* hours, i.e. ``(end - start) * time_scale / 3600`` (see
:mod:`gokart_k8s.localcluster.autoscaler.config`).

:func:`node_hours` sums hours by pool and machine type; :func:`node_costs` prices them. Prices are
kept out of the ledger on purpose: the price catalog (``gokart_k8s.cost``) is wired in by passing
its prices to :func:`node_costs`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import resources as r
from ..quantity import parse_quantity
from ..store import Obj, Store
from .config import Prices
from .core import POOL_ANNOTATION, machine_type

SPOT_ANNOTATION = "gokart-k8s.io/spot"
REQUESTED_AT_ANNOTATION = "gokart-k8s.io/requested-at"
BILLING_ANNOTATION = "gokart-k8s.io/billing"


@dataclass
class _Life:
    node: str
    uid: str
    pool: str
    machine_type: str
    capacity_type: str
    billing: str
    allocatable: dict[str, str]
    start: float
    end: float | None = None


class NodeLedger:
    """Records every node's lifetime from the store's events (see the module docstring)."""

    def __init__(self, store: Store, *, time_scale: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.time_scale = time_scale
        self._clock = clock
        self._lock = threading.Lock()
        self._lives: list[_Life] = []
        self._open: dict[str, _Life] = {}
        store.add_listener(self._on_event)

    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is not r.NODE:
            return
        meta = obj["metadata"]
        uid = str(meta.get("uid", ""))
        now = self._clock()
        with self._lock:
            if kind == "ADDED" and uid not in self._open:
                annotations = meta.get("annotations") or {}
                try:
                    start = float(annotations.get(REQUESTED_AT_ANNOTATION, now))
                except ValueError:
                    start = now
                life = _Life(
                    node=str(meta["name"]),
                    uid=uid,
                    pool=str(annotations.get(POOL_ANNOTATION) or meta["name"]),
                    machine_type=machine_type(obj),
                    capacity_type="spot" if annotations.get(SPOT_ANNOTATION) == "true" else "on-demand",
                    billing=str(annotations.get(BILLING_ANNOTATION) or "node"),
                    allocatable=dict((obj.get("status") or {}).get("allocatable") or {}),
                    start=min(start, now),
                )
                self._open[uid] = life
                self._lives.append(life)
            elif kind == "DELETED" and uid in self._open:
                self._open.pop(uid).end = now

    def close_all(self) -> None:
        """End every open lifetime now (the cluster stops, so do its nodes)."""
        now = self._clock()
        with self._lock:
            for life in self._open.values():
                life.end = now
            self._open.clear()

    def lifetimes(self) -> list[dict[str, Any]]:
        """Every node's lifetime so far, oldest first, as plain dicts (see the module docstring)."""
        now = self._clock()
        with self._lock:
            lives = list(self._lives)
        return [
            {
                "pool": life.pool,
                "machine_type": life.machine_type,
                "capacity_type": life.capacity_type,
                "start": life.start,
                "end": life.end,
                "node": life.node,
                "billing": life.billing,
                "allocatable": dict(life.allocatable),
                "hours": ((life.end if life.end is not None else now) - life.start) * self.time_scale / 3600,
            }
            for life in lives
        ]


def node_hours(lifetimes: Iterable[Mapping[str, Any]], by: tuple[str, ...] = ("pool",)) -> dict[tuple[str, ...], float]:
    """Cluster hours summed by the given keys of each lifetime (e.g. ``("pool",)`` or
    ``("machine_type", "capacity_type")``)."""
    out: dict[tuple[str, ...], float] = {}
    for life in lifetimes:
        key = tuple(str(life[k]) for k in by)
        out[key] = out.get(key, 0.0) + float(life["hours"])
    return out


def node_costs(lifetimes: Iterable[Mapping[str, Any]], prices: Prices) -> dict[str, float]:
    """USD by pool: each lifetime's hours times the hourly price of its node (Autopilot: of its
    pod's requests, which are the node's allocatable there). ``prices`` is where the price catalog
    plugs in."""
    out: dict[str, float] = {}
    for life in lifetimes:
        alloc = life.get("allocatable") or {}
        hourly = prices.hourly(
            parse_quantity(alloc.get("cpu", "0")),
            parse_quantity(alloc.get("memory", "0")),
            int(parse_quantity(alloc.get("nvidia.com/gpu", "0"))),
            life["capacity_type"] == "spot",
            str(life["machine_type"]),
        )
        out[str(life["pool"])] = out.get(str(life["pool"]), 0.0) + hourly * float(life["hours"])
    return out


def summary_lines(lifetimes: Iterable[Mapping[str, Any]], time_scale: float = 1.0) -> list[str]:
    """The end-of-run summary: node-hours by pool (cluster time), with node counts and shapes.

    With a compressed clock the header says so: the hours are the autoscaler's, ``time_scale``
    times the wall clock's (a step's own seconds, as its cost line counts them, are wall time).
    """
    lives = list(lifetimes)
    if not lives:
        return ["nodes: none"]
    clock = "cluster time" if time_scale == 1 else f"cluster time, {time_scale:g}x the wall clock"
    lines = [f"node-hours by pool ({clock}): {sum(float(x['hours']) for x in lives):.2f} in all"]
    by_pool: dict[str, list[Mapping[str, Any]]] = {}
    for life in lives:
        by_pool.setdefault(str(life["pool"]), []).append(life)
    for pool, items in sorted(by_pool.items()):
        hours = sum(float(x["hours"]) for x in items)
        shapes = ", ".join(sorted({f"{x['machine_type']} {x['capacity_type']}" for x in items}))
        lines.append(f"  {pool}: {hours:.2f} h, {len(items)} node(s) ({shapes})")
    return lines
