"""Platform profiles: how a step's resource class and eviction tolerance become a placement.

One profile per platform, chosen by ``settings.platform``; switching platform is changing that
one value. Every profile answers three questions, as pure functions over plain data:

* :meth:`PlatformProfile.check` -- can this step run here at all? Every problem, each a full
  message (what, why, what to change). :func:`check_steps` gathers them for a whole pipeline,
  so the plan reports all of them at once before anything is submitted.
* :meth:`PlatformProfile.place` -- where does it run? A :class:`~gokart_k8s.placement.Placement`
  (node selector, tolerations, annotations, requests and limits) the Job manifest copies.
  ``on_demand=True`` asks for on-demand capacity: the driver's fallback for a tolerant step that
  was evicted too often.
* :meth:`PlatformProfile.pools` -- which nodes does it schedule onto? The local cluster creates
  its nodes from them, so a rehearsal proves the placement schedules; their labels and taints are
  exactly what the placements select and tolerate.

=================  ==========================================  =====================================
platform           tolerate (class allows Spot)                 protect
=================  ==========================================  =====================================
gke-standard       smallest Spot pool that suits                smallest on-demand pool that suits,
                                                               ``safe-to-evict: "false"``
gke-autopilot      Spot Pod (``gke-spot`` selector)             extended run time (``safe-to-evict:
                                                               "false"``), at most 7 days
eks-karpenter      ``capacity-type: spot``                      ``capacity-type: on-demand``,
                                                               ``do-not-disrupt: "true"``
plain              any node                                     any node, ``safe-to-evict: "false"``
=================  ==========================================  =====================================

``docs/platforms.md`` says precisely what each does and refuses, with sources.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from gokart_k8s.errors import ConfigurationError
from gokart_k8s.placement import Placement
from gokart_k8s.platforms.eks_karpenter import EksKarpenterProfile
from gokart_k8s.platforms.gke_autopilot import GkeAutopilotProfile
from gokart_k8s.platforms.gke_standard import GkeStandardProfile
from gokart_k8s.platforms.plain import PlainProfile
from gokart_k8s.pools import NodePool
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec

__all__ = ["PROFILES", "PlatformProfile", "check_steps", "get_profile"]


class PlatformProfile(Protocol):
    """What every platform profile offers (see the module docstring)."""

    @property
    def name(self) -> str:
        """The platform's name as ``settings.platform`` spells it."""
        ...

    def place(self, spec: StepSpec, *, on_demand: bool = False) -> Placement:
        """Where ``spec`` runs. Raises :class:`~gokart_k8s.errors.PlanError` if it cannot run at all."""
        ...

    def check(self, spec: StepSpec) -> list[str]:
        """Every reason ``spec`` cannot run on this platform; empty when it can."""
        ...

    def pools(self) -> tuple[NodePool, ...]:
        """The nodes placements schedule onto (real pools, or an emulation of the platform's nodes)."""
        ...


#: Profile factories by platform name.
PROFILES: Mapping[str, Callable[[Settings], PlatformProfile]] = {
    "plain": PlainProfile,
    "gke-standard": GkeStandardProfile,
    "gke-autopilot": GkeAutopilotProfile,
    "eks-karpenter": EksKarpenterProfile,
}


def get_profile(settings: Settings) -> PlatformProfile:
    """The profile ``settings.platform`` names, built from the settings (pools, catalog)."""
    try:
        factory = PROFILES[settings.platform]
    except KeyError:
        raise ConfigurationError(
            f"setting 'platform' must be one of {', '.join(PROFILES)}, got {settings.platform!r}. "
            "Set it in [gokart_k8s] platform= of luigi.cfg or with GOKART_K8S_PLATFORM."
        ) from None
    return factory(settings)


def check_steps(specs: Sequence[StepSpec], profile: PlatformProfile) -> list[str]:
    """Every problem of every step on ``profile``, in step order; steps sharing a class and
    eviction tolerance still each get their own message, since each names its step."""
    problems: list[str] = []
    for spec in specs:
        problems.extend(profile.check(spec))
    return problems
