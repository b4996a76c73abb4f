"""Adoption: what the driver does with the Jobs it finds for a step before it submits one.

A step can have Jobs on the cluster before this driver submits anything: an earlier driver was
stopped (Ctrl-C with ``keep``, SIGKILL, a scheduled run's driver pod replaced), or another driver
runs the same pipeline. Each step has two Job *variants* with deterministic names, the original
(:func:`~gokart_k8s.conventions.job_name`) and the on-demand fallback (``…-od``, after repeated
evictions on Spot). Only Jobs of the step's *identity* count (same unique id, same cache, same
image, same pod settings: :func:`~gokart_k8s.conventions.step_identity`); the driver lists by it.

:func:`decide` is pure: Jobs in (plain dicts, as the API returns them), one :class:`Decision` out.
The rules, in order:

1. **One active Job is followed, never duplicated.** Jobs still running (not finished, not being
   deleted) are adopted; if there are several (left by an older driver that did not look for the
   ``-od`` variant), the on-demand one is kept -- it is the later, the one evictions moved the step
   to -- and the others are deleted.
2. **A finished Job of this same run stands.** A replacement driver of the same run (a scheduled
   run's driver pod started again) follows it to its outcome: a failed step fails once, not once
   per driver pod, and a succeeded one is done once the cache confirms its output.
3. **Otherwise a new Job is submitted**, after the finished Jobs of earlier runs are deleted (their
   names are taken). A step that had moved to on-demand capacity stays there: it is submitted as
   the ``-od`` variant again.

Jobs being deleted are left alone; the driver waits for their pods to stop before it submits the
replacement, so two attempts of a step never run at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from gokart_k8s.conventions import LABEL_RUN_ID, label_value

__all__ = ["Decision", "decide", "job_finished"]


@dataclass(frozen=True)
class Decision:
    """What to do with a step: follow an existing Job, or submit a new one."""

    action: Literal["follow", "submit"]
    #: The Job to follow, or the name to submit under.
    job: str
    #: True if that Job is (to be) the on-demand variant.
    on_demand: bool
    #: Jobs to delete first (finished Jobs of earlier runs, surplus active Jobs).
    retire: tuple[str, ...] = ()
    #: Why, in a few words for the progress display.
    reason: str = ""


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def job_finished(job: Mapping[str, Any]) -> bool:
    """True if the Job has a terminal condition (``Complete``/``Failed`` or their 1.31 forerunners)."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in (
            "Complete",
            "Failed",
            "SuccessCriteriaMet",
            "FailureTarget",
        ):
            return True
    return False


def decide(jobs: Sequence[Mapping[str, Any]], *, primary: str, fallback: str, run_id: str) -> Decision:
    """Decide what to do with a step whose Jobs named ``primary`` or ``fallback`` are ``jobs``.

    ``jobs`` may hold Jobs of other names (ignored) and Jobs being deleted (ignored). ``run_id``
    is this driver's run id (compared with each Job's run-id label).
    """
    mine = {str(_meta(j).get("name")): j for j in jobs if _meta(j).get("name") in (primary, fallback)}
    present = {name: j for name, j in mine.items() if not _meta(j).get("deletionTimestamp")}
    active = [name for name, j in present.items() if not job_finished(j)]
    if active:
        keep = fallback if fallback in active else primary
        surplus = tuple(sorted(n for n in active if n != keep))
        why = f"adopted running Job {keep}" + (f", deleted duplicate {', '.join(surplus)}" if surplus else "")
        return Decision("follow", keep, keep == fallback, retire=surplus, reason=why)
    this_run = label_value(run_id)
    own = [name for name, j in present.items() if (_meta(j).get("labels") or {}).get(LABEL_RUN_ID) == this_run]
    if own:
        keep = fallback if fallback in own else primary
        return Decision("follow", keep, keep == fallback, reason=f"adopted finished Job {keep} of this run")
    on_demand = fallback in mine
    name = fallback if on_demand else primary
    retire = tuple(sorted(present))
    why = "resubmitted after Job " + ", ".join(retire) + " of an earlier run" if retire else ""
    return Decision("submit", name, on_demand, retire=retire, reason=why)
