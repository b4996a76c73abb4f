"""Eviction tolerance: how a step takes being evicted.

Two values, one vocabulary everywhere (decorator, config, CLI, docs):

``tolerate``
    The step may be evicted (cluster-autoscaler scale-down, Karpenter consolidation, Spot
    preemption) and resumes: everything it finished is in the cache, and a long step loses at most
    the work since its last checkpoint. It may run on Spot capacity where its resource class allows
    Spot. This is the cheap default.

``protect``
    The step must not be disrupted voluntarily: it runs on on-demand capacity and carries the
    platform's "do not evict" marker (``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"``
    on GKE, ``karpenter.sh/do-not-disrupt: "true"`` on EKS/Karpenter). Involuntary disruptions
    (node failure, hardware repair) can still happen; the step then resumes like a tolerant one.

What each value becomes on each platform is the job of :mod:`gokart_k8s.platforms`; the README's
"Eviction tolerance" section has the table.
"""

from __future__ import annotations

import enum


class Eviction(str, enum.Enum):
    """A step's eviction tolerance."""

    TOLERATE = "tolerate"
    PROTECT = "protect"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: object, *, what: str = "eviction") -> Eviction:
        """Accept an :class:`Eviction` or its spelling (any case); refuse anything else clearly."""
        if isinstance(value, Eviction):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        valid = ", ".join(repr(e.value) for e in cls)
        raise ValueError(f"{what} must be one of {valid} (or gokart_k8s.Eviction.TOLERATE / .PROTECT), got {value!r}.")
