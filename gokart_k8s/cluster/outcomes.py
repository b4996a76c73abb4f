"""Outcomes: what a step's Job and pods say happened, and what the user should change.

Pure functions over the plain camelCase dicts the Kubernetes API returns (no client objects, no
I/O), so every rule is a row of a table and every row has a test.

Two levels:

:func:`classify_pod`
    One pod, on its own. The driver calls it on every pod that ends, to count evictions: with the
    Job's ``podFailurePolicy`` rule ``Ignore`` on ``DisruptionTarget`` (and on exit 143) the Job
    controller replaces an evicted pod without spending ``backoffLimit``
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy), so the Job
    itself never reports the eviction -- only the pod does.

:func:`classify`
    The Job together with its pods: succeeded, failed for a reason (blaming the pod that decided
    it), or still pending/running (with the reason a pod waits: unschedulable, image pull).

How a pod ends, first matching row wins (``_POD_RULES``):

===============================  ==================  =============================================
evidence                         kind                why
===============================  ==================  =============================================
condition DisruptionTarget=True  evicted             eviction API, scheduler preemption, kubelet
                                                     node shutdown, taint manager, pod GC
status.reason Shutdown, ...      evicted             GKE graceful node shutdown (flyte treats the
                                                     same reasons as system-retryable)
deleted before it finished       evicted             node lost, pod deleted by someone else
exit 143                         evicted             the step saved a checkpoint after SIGTERM
terminated reason OOMKilled      out_of_memory       the kubelet says the container hit its limit
exit 137                         killed              SIGKILL from something else (not the kubelet's
                                                     OOM report): a node agent, a force delete
exit 42                          user_error          the step's own code raised
exit 43                          code_skew           the image computes another unique id
StartError (command not run)     cannot_start        the image lacks the command
any other non-zero exit          failed              crash, signal
===============================  ==================  =============================================

DisruptionTarget is checked first because a disrupted pod that ignores SIGTERM is SIGKILLed after
its grace period and exits 137 -- an eviction, not a lack of memory
(https://kubernetes.io/docs/concepts/workloads/pods/disruptions/#pod-disruption-conditions).
Only the kubelet's ``OOMKilled`` reason means out of memory: exit 137 is just 128 + SIGKILL, and
advising more memory for a kill from elsewhere wastes money and hides the real cause
(https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#exceed-a-container-s-memory-request).

:class:`Attempt` is one pod of a step, as the run summary and the run record show it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from gokart_k8s.conventions import (
    EXIT_CODE_SKEW,
    EXIT_EVICTED,
    EXIT_USER_ERROR,
    LABEL_RESOURCE_CLASS,
    LABEL_STEP,
)
from gokart_k8s.errors import QuantityError
from gokart_k8s.placement import LABEL_CAPACITY, LABEL_POOL
from gokart_k8s.resources import BUILTIN_CLASSES, ResourceClass, format_bytes, parse_quantity

__all__ = [
    "DISRUPTION_REASONS",
    "NODE_SHUTDOWN_REASONS",
    "Attempt",
    "Outcome",
    "OutcomeKind",
    "attempt_of",
    "classify",
    "classify_pod",
    "next_class_up",
]


class OutcomeKind(str, enum.Enum):
    """What happened to a step (or one of its pods)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    EVICTED = "evicted"
    OUT_OF_MEMORY = "out_of_memory"
    KILLED = "killed"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    IMAGE_PULL_FAILED = "image_pull_failed"
    UNSCHEDULABLE = "unschedulable"
    #: The container cannot be created or its command cannot run (missing Secret, bad command).
    CANNOT_START = "cannot_start"
    USER_ERROR = "user_error"
    CODE_SKEW = "code_skew"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


#: ``DisruptionTarget`` reasons (k8s.io/api core/v1 types.go). Any reason counts as an eviction;
#: the list documents what we expect (https://kubernetes.io/docs/concepts/workloads/pods/disruptions/).
DISRUPTION_REASONS = frozenset(
    {
        "EvictionByEvictionAPI",
        "PreemptionByScheduler",
        "TerminationByKubelet",
        "DeletionByTaintManager",
        "DeletionByPodGC",
    }
)

#: ``status.reason`` of pods ended by a node going away. GKE sets Shutdown/NodeShutdown/Terminated
#: on graceful node shutdown (Spot preemption), see
#: https://cloud.google.com/kubernetes-engine/docs/how-to/preemptible-vms#graceful-shutdown ;
#: ``Evicted`` is the kubelet's node-pressure eviction
#: (https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/), ``NodeLost``
#: the node controller's. flyte classes the same reasons as system-retryable.
NODE_SHUTDOWN_REASONS = frozenset({"Shutdown", "NodeShutdown", "Terminated", "Evicted", "NodeLost"})

#: Waiting reasons of a container whose image cannot be pulled. ErrImagePull is the first failed
#: attempt (may be a registry hiccup); the kubelet then backs off (ImagePullBackOff), which we treat
#: as final. https://kubernetes.io/docs/concepts/containers/images/#imagepullbackoff
_IMAGE_PULL_FINAL = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_IMAGE_PULL_TRANSIENT = frozenset({"ErrImagePull"})

#: Waiting reasons of a container the kubelet cannot create or start; none heals without a change
#: (https://kubernetes.io/docs/tasks/debug/debug-application/debug-pods/#my-pod-stays-waiting).
_CANNOT_START_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
#: Terminated reasons of a container whose command could not be run (the runtime's exec failed).
_START_ERRORS = frozenset({"StartError", "ContainerCannotRun"})

_EXIT_SIGKILL = 137  # 128 + SIGKILL: the OOM killer's signal, but not only its


@dataclass(frozen=True)
class Outcome:
    """What happened, in a form the driver can act on and the user can read."""

    kind: OutcomeKind
    #: The Kubernetes reason that decided it (``EvictionByEvictionAPI``, ``OOMKilled``, ``exit 42``).
    reason: str = ""
    #: True when nothing more will happen without the driver acting (Job finished, image pull gave up).
    final: bool = False
    exit_code: int | None = None
    #: The pod the outcome is about, if any.
    pod: str | None = None
    #: What happened, one sentence naming the step.
    message: str = ""
    #: What to change.
    advice: str = ""
    #: For unschedulable pods: seconds since the scheduler first refused it (None if unknown).
    waiting_seconds: float | None = None

    @property
    def failed(self) -> bool:
        return self.final and self.kind is not OutcomeKind.SUCCEEDED


# --- facts extracted from a pod -------------------------------------------------------------


@dataclass(frozen=True)
class _PodFacts:
    name: str
    phase: str
    status_reason: str
    disruption_reason: str | None
    exit_code: int | None
    terminated_reason: str
    waiting_reason: str
    waiting_message: str
    unschedulable_since: str | None
    unschedulable_message: str
    deleted: bool
    #: The message of a start failure (state or lastState ``StartError``), "" if none.
    start_error: str = ""

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in _conditions(obj):
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def _pod_facts(pod: Mapping[str, Any], *, deleted: bool) -> _PodFacts:
    status = pod.get("status") or {}
    disruption = _condition(pod, "DisruptionTarget")
    exit_code: int | None = None
    terminated_reason = ""
    waiting_reason = ""
    waiting_message = ""
    start_error = ""
    # The first container that ended non-zero decides (init containers first, as the kubelet runs
    # them); otherwise the first container that ended at all.
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    ended: list[Mapping[str, Any]] = []
    for cs in statuses:
        state = cs.get("state") or {}
        if state.get("terminated"):
            ended.append(state["terminated"])
        waiting = state.get("waiting") or {}
        if waiting.get("reason") and not waiting_reason:
            waiting_reason = str(waiting["reason"])
            waiting_message = str(waiting.get("message") or "")
        for ended_state in (state.get("terminated"), (cs.get("lastState") or {}).get("terminated")):
            if ended_state and ended_state.get("reason") in _START_ERRORS and not start_error:
                start_error = str(ended_state.get("message") or ended_state.get("reason"))
    failing = [t for t in ended if t.get("exitCode")]
    chosen = failing[0] if failing else (ended[0] if ended else None)
    if chosen is not None:
        exit_code = int(chosen.get("exitCode") or 0)
        terminated_reason = str(chosen.get("reason") or "")
    # PodScheduled=False/Unschedulable: "" when the API gave no lastTransitionTime.
    unschedulable_since: str | None = None
    unschedulable_message = ""
    for cond in _conditions(pod):
        if (cond.get("type"), cond.get("status"), cond.get("reason")) == (
            "PodScheduled",
            "False",
            "Unschedulable",
        ):
            unschedulable_since = str(cond.get("lastTransitionTime") or "")
            unschedulable_message = str(cond.get("message") or "")
    return _PodFacts(
        name=str((pod.get("metadata") or {}).get("name") or ""),
        phase=str(status.get("phase") or "Pending"),
        status_reason=str(status.get("reason") or ""),
        disruption_reason=None if disruption is None else str(disruption.get("reason") or "DisruptionTarget"),
        exit_code=exit_code,
        terminated_reason=terminated_reason,
        waiting_reason=waiting_reason,
        waiting_message=waiting_message,
        unschedulable_since=unschedulable_since,
        unschedulable_message=unschedulable_message,
        deleted=deleted,
        start_error=start_error,
    )


# --- the table of how a pod ended -----------------------------------------------------------

_Rule = tuple[str, Callable[[_PodFacts], "str | None"], OutcomeKind]


def _by_disruption(f: _PodFacts) -> str | None:
    return f.disruption_reason


def _by_node_shutdown(f: _PodFacts) -> str | None:
    return f.status_reason if f.status_reason in NODE_SHUTDOWN_REASONS else None


def _by_deletion(f: _PodFacts) -> str | None:
    # A pod that vanished before it finished (node lost, deleted by hand or by GC without a
    # DisruptionTarget condition): nothing the step did, so it is an eviction.
    return "PodDeleted" if f.deleted and not f.terminal else None


def _by_exit(code: int) -> Callable[[_PodFacts], str | None]:
    def rule(f: _PodFacts) -> str | None:
        return f"exit {code}" if f.exit_code == code else None

    return rule


def _by_oom(f: _PodFacts) -> str | None:
    return "OOMKilled" if f.terminated_reason == "OOMKilled" else None


def _by_sigkill(f: _PodFacts) -> str | None:
    return f"SIGKILL, exit {_EXIT_SIGKILL}" if f.exit_code == _EXIT_SIGKILL else None


def _by_start_error(f: _PodFacts) -> str | None:
    return f.terminated_reason if f.terminated_reason in _START_ERRORS else None


def _by_other_exit(f: _PodFacts) -> str | None:
    if f.phase == "Failed" or (f.exit_code not in (None, 0)):
        reason = f.terminated_reason or f.status_reason or "Error"
        return f"{reason}, exit {f.exit_code}" if f.exit_code is not None else reason
    return None


#: How a pod ended: the first matching row wins (see the module docstring for the table).
_POD_RULES: tuple[_Rule, ...] = (
    ("DisruptionTarget condition", _by_disruption, OutcomeKind.EVICTED),
    ("node shutdown status reason", _by_node_shutdown, OutcomeKind.EVICTED),
    ("deleted before it finished", _by_deletion, OutcomeKind.EVICTED),
    ("SIGTERM handled (checkpoint saved)", _by_exit(EXIT_EVICTED), OutcomeKind.EVICTED),
    ("out of memory (kubelet says OOMKilled)", _by_oom, OutcomeKind.OUT_OF_MEMORY),
    ("killed by SIGKILL", _by_sigkill, OutcomeKind.KILLED),
    ("user error", _by_exit(EXIT_USER_ERROR), OutcomeKind.USER_ERROR),
    ("code skew", _by_exit(EXIT_CODE_SKEW), OutcomeKind.CODE_SKEW),
    ("command could not start", _by_start_error, OutcomeKind.CANNOT_START),
    ("other failure", _by_other_exit, OutcomeKind.FAILED),
)


# --- context for messages -------------------------------------------------------------------


@dataclass(frozen=True)
class _JobContext:
    step: str
    resource_class: str
    memory: str
    image: str
    node_selector: Mapping[str, str]
    tolerations: Sequence[Mapping[str, Any]]
    requests: Mapping[str, str]
    deadline: int | None


def _job_context(job: Mapping[str, Any] | None) -> _JobContext:
    job = job or {}
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    spec = job.get("spec") or {}
    pod_spec = ((spec.get("template") or {}).get("spec")) or {}
    containers = pod_spec.get("containers") or [{}]
    main = containers[0]
    resources = main.get("resources") or {}
    limits = resources.get("limits") or {}
    requests = resources.get("requests") or {}
    return _JobContext(
        step=str(labels.get(LABEL_STEP) or meta.get("name") or "?"),
        resource_class=str(labels.get(LABEL_RESOURCE_CLASS) or ""),
        memory=str(limits.get("memory") or requests.get("memory") or ""),
        image=str(main.get("image") or ""),
        node_selector=dict(pod_spec.get("nodeSelector") or {}),
        tolerations=list(pod_spec.get("tolerations") or []),
        requests={str(k): str(v) for k, v in requests.items()},
        deadline=spec.get("activeDeadlineSeconds"),
    )


def next_class_up(memory: str, catalog: Mapping[str, ResourceClass] | None = None) -> str | None:
    """The class of ``catalog`` (default: the built-ins) to name in out-of-memory advice.

    The next class up by memory: the least memory above ``memory``, fewest cores among equals,
    without GPUs. Not the largest: a 1Gi step that ran out of memory most likely fits in the next
    size, and the largest class costs many times more.
    """
    try:
        have = parse_quantity(memory)
    except QuantityError:
        return None
    bigger = [
        (rc.memory_bytes, rc.cpu_cores, name)
        for name, rc in (BUILTIN_CLASSES if catalog is None else catalog).items()
        if rc.memory_bytes > have and not rc.gpu
    ]
    return min(bigger)[2] if bigger else None


def _pretty_memory(memory: str) -> str:
    try:
        return format_bytes(Decimal(parse_quantity(memory)))
    except QuantityError:
        return memory


#: How the in-pod command's verdict line of a failed step begins (gokart_k8s.entrypoint).
_VERDICT_PREFIX = "gokart-k8s step: step "


def _advice(
    kind: OutcomeKind,
    facts: _PodFacts | None,
    ctx: _JobContext,
    log_tail: Sequence[str],
    catalog: Mapping[str, ResourceClass] | None = None,
) -> tuple[str, str]:
    """(message, advice) for a failure of ``kind``; every message names the step."""
    step = ctx.step
    rc = ctx.resource_class or "one-off"
    code = None if facts is None else facts.exit_code
    if kind is OutcomeKind.OUT_OF_MEMORY:
        mem = _pretty_memory(ctx.memory) if ctx.memory else "its memory limit"
        bigger = next_class_up(ctx.memory, catalog) if ctx.memory else None
        example = f" (the next one up is {bigger!r})" if bigger else ""
        where = (
            f"or raise memory for {rc!r} in luigi.cfg ([gokart_k8s.resources.{rc}] memory = ...)"
            if ctx.resource_class
            else "or raise memory= in the step's @gokart_k8s.job(resources=...)"
        )
        return (
            f"Step {step} ran out of memory on resource class {rc!r} ({mem}).",
            f"Use a bigger class{example}, {where}.",
        )
    if kind is OutcomeKind.KILLED:
        return (
            f"Step {step} was killed (SIGKILL, exit {_EXIT_SIGKILL}) without the kubelet reporting OOMKilled.",
            "Something outside the step killed it: a node agent, a force deletion (`kubectl delete pod "
            "--grace-period=0`), the node's own out-of-memory killer acting on a child process, or a step that "
            "ignored SIGTERM past its grace period. It is retried up to backoff_limit times; check the node's "
            "events (`kubectl describe node`) before giving the step more memory.",
        )
    if kind is OutcomeKind.USER_ERROR:
        # The in-pod command ends a failure with one verdict line naming the exception (its traceback
        # is in the step's log, once): that line is the message. Without one, the log's last lines.
        verdicts = [line for line in log_tail if line.startswith(_VERDICT_PREFIX)]
        if verdicts:
            message = f"Step {step} failed: {verdicts[-1].split(' failed: ', 1)[-1]}"
        else:
            tail = "\n".join(f"    {line}" for line in log_tail)
            shown = f" Last lines of its log:\n{tail}\n" if tail else " "
            message = f"Step {step} failed: its code raised an error (exit {EXIT_USER_ERROR}).{shown}".rstrip()
        return (
            message,
            "Fix the error in the step's code; it was not retried because the same code on the same input "
            "fails again. `gokart-k8s run TASK --backend inline` reproduces it on this machine.",
        )
    if kind is OutcomeKind.CODE_SKEW:
        # A code package the pod refused (its hash differs, it is missing) is not the image's fault:
        # say what the pod said (the in-pod command prints one "gokart-k8s step: ..." line).
        refusal = [line for line in log_tail if "gokart-k8s step: " in line and "code package" in line]
        if refusal:
            return (
                f"Step {step} refused its code package (exit {EXIT_CODE_SKEW}): "
                f"{refusal[-1].split('gokart-k8s step: ', 1)[1]}",
                "The package in the cache is not the one this run packed; nothing was run. See docs/code-packages.md.",
            )
        return (
            f"Step {step} refused to run: the code in image {ctx.image!r} computes another unique id "
            f"than this checkout (exit {EXIT_CODE_SKEW}).",
            "Rebuild and push the image from this checkout (or point image= at the one built from it), so "
            "the pod and the driver agree on the step's parameters and cache key.",
        )
    if kind is OutcomeKind.DEADLINE_EXCEEDED:
        limit = f" ({ctx.deadline} s, the Job's activeDeadlineSeconds)" if ctx.deadline else ""
        return (
            f"Step {step} ran longer than its max_runtime{limit} and was stopped.",
            "Raise max_runtime= in the step's @gokart_k8s.job(...) or max_runtime_seconds in [gokart_k8s] of "
            "luigi.cfg, or make the step save checkpoints so a rerun starts where it stopped.",
        )
    if kind is OutcomeKind.IMAGE_PULL_FAILED:
        reason = facts.waiting_reason if facts else "ImagePullBackOff"
        said = f": {facts.waiting_message}" if facts and facts.waiting_message else ""
        return (
            f"Step {step} cannot start: the image {ctx.image!r} cannot be pulled ({reason}{said}).",
            "Check the image name and tag exist (set image= or GOKART_K8S_IMAGE), and that the pods' service "
            "account has a pull secret or registry access (Workload Identity / Artifact Registry reader).",
        )
    if kind is OutcomeKind.CANNOT_START:
        return _cannot_start_advice(facts, ctx)
    if kind is OutcomeKind.UNSCHEDULABLE:
        selectors = ", ".join(f"{k}={v}" for k, v in sorted(ctx.node_selector.items())) or "none"
        tols = ", ".join(
            f"{t.get('key', '*')}{'=' + str(t['value']) if t.get('value') else ''}:{t.get('effect', 'any')}"
            for t in ctx.tolerations
        )
        requests = ", ".join(f"{k}={v}" for k, v in sorted(ctx.requests.items())) or "none"
        with_tols = f" with tolerations [{tols}]" if tols else ""
        said = f" The scheduler said: {facts.unschedulable_message}" if facts and facts.unschedulable_message else ""
        return (
            f"Step {step} cannot be scheduled: no node matches node selectors [{selectors}]"
            f"{with_tols} and has room for requests [{requests}].{said}",
            f"Check that a node pool carries these labels (and its taints are tolerated) and has nodes big "
            f"enough for resource class {rc!r} (see the platform profile's pools; an autoscaled pool may be "
            f"at its maximum), or choose a smaller class.",
        )
    if kind is OutcomeKind.EVICTED:
        reason = (facts.disruption_reason or facts.status_reason or "evicted") if facts else "evicted"
        return (
            f"Step {step} was evicted ({reason}).",
            "Evictions are retried without spending the step's retry budget; if it keeps happening, "
            "set eviction='protect' for the step or spot = false for its resource class.",
        )
    what = f"exit code {code}" if code is not None else (facts.status_reason if facts else "") or "an error"
    return (
        f"Step {step} failed with {what}"
        + (f" ({facts.terminated_reason})" if facts and facts.terminated_reason else "")
        + ".",
        "Read the step's log above. Crashes outside the step's own code (signals, node trouble) are retried "
        "backoff_limit times before the step fails.",
    )


def _cannot_start_advice(facts: _PodFacts | None, ctx: _JobContext) -> tuple[str, str]:
    """A container the kubelet cannot create (a Secret or ConfigMap it reads is missing) or whose
    command cannot run."""
    step = ctx.step
    if facts is not None and facts.waiting_reason in _CANNOT_START_WAITING:
        said = facts.waiting_message or facts.waiting_reason
        secret = re.search(r'secret "([^"]+)" not found|in Secret [^/\s]+/(\S+)', said)
        if secret:
            name = secret.group(1) or secret.group(2)
            return (
                f"Step {step} cannot start: {facts.waiting_reason}: {said}.",
                f"Create the Secret {name!r} (with the key the step reads) in the step's namespace, e.g. "
                f"kubectl create secret generic {name} --from-literal=KEY=VALUE, or change the step's "
                "secret_env to a Secret that exists.",
            )
        return (
            f"Step {step} cannot start: {facts.waiting_reason}: {said}.",
            "Create the Secret or ConfigMap the step's environment refers to, or change the reference.",
        )
    said = facts.start_error if facts is not None and facts.start_error else "StartError"
    return (
        f"Step {step} cannot start: its command could not be run ({said}).",
        f"Use an image with Python and gokart-k8s on its PATH (the pods run `gokart-k8s step ...`; "
        f"image {ctx.image!r}), set with image= or GOKART_K8S_IMAGE.",
    )


# --- public functions -----------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def classify_pod(
    pod: Mapping[str, Any],
    *,
    job: Mapping[str, Any] | None = None,
    deleted: bool = False,
    log_tail: Sequence[str] = (),
    now: datetime | None = None,
    catalog: Mapping[str, ResourceClass] | None = None,
) -> Outcome:
    """How one pod ended, or why it is still waiting; ``deleted`` if the API reported it deleted.

    ``job`` (the pod's Job) is only used to name the step, class and image in messages;
    ``catalog`` (default: the built-ins) to name the next class up in out-of-memory advice.
    """
    facts = _pod_facts(pod, deleted=deleted)
    ctx = _job_context(job)
    if facts.phase == "Succeeded" and not deleted:
        return Outcome(OutcomeKind.SUCCEEDED, "Succeeded", final=True, exit_code=0, pod=facts.name)
    if facts.terminal or deleted or facts.disruption_reason:
        for _name, rule, kind in _POD_RULES:
            reason = rule(facts)
            if reason is None:
                continue
            message, advice = _advice(kind, facts, ctx, log_tail, catalog)
            return Outcome(
                kind,
                reason,
                final=facts.terminal or deleted,
                exit_code=facts.exit_code,
                pod=facts.name,
                message=message,
                advice=advice,
            )
        if facts.phase == "Succeeded":
            return Outcome(OutcomeKind.SUCCEEDED, "Succeeded", final=True, exit_code=0, pod=facts.name)
    if facts.waiting_reason in _IMAGE_PULL_FINAL | _IMAGE_PULL_TRANSIENT:
        message, advice = _advice(OutcomeKind.IMAGE_PULL_FAILED, facts, ctx, log_tail)
        return Outcome(
            OutcomeKind.IMAGE_PULL_FAILED,
            facts.waiting_reason,
            final=facts.waiting_reason in _IMAGE_PULL_FINAL,
            pod=facts.name,
            message=message,
            advice=advice,
        )
    crash_looping = facts.waiting_reason == "CrashLoopBackOff" and facts.start_error
    if facts.waiting_reason in _CANNOT_START_WAITING or crash_looping:
        message, advice = _advice(OutcomeKind.CANNOT_START, facts, ctx, log_tail)
        reason = facts.waiting_reason if not crash_looping else "CrashLoopBackOff: StartError"
        return Outcome(OutcomeKind.CANNOT_START, reason, final=True, pod=facts.name, message=message, advice=advice)
    if facts.unschedulable_since is not None:
        since = _parse_time(facts.unschedulable_since)
        waited = None
        if since is not None:
            waited = max(0.0, ((now or datetime.now(timezone.utc)) - since).total_seconds())
        message, advice = _advice(OutcomeKind.UNSCHEDULABLE, facts, ctx, log_tail)
        return Outcome(
            OutcomeKind.UNSCHEDULABLE,
            "Unschedulable",
            pod=facts.name,
            message=message,
            advice=advice,
            waiting_seconds=waited,
        )
    if facts.phase == "Running":
        return Outcome(OutcomeKind.RUNNING, "Running", pod=facts.name)
    return Outcome(OutcomeKind.PENDING, facts.waiting_reason or facts.phase, pod=facts.name)


def _created(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def classify(
    job: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    *,
    log_tail: Sequence[str] = (),
    now: datetime | None = None,
    catalog: Mapping[str, ResourceClass] | None = None,
) -> Outcome:
    """The step's outcome from its Job and the Job's pods (any order; deleted pods left out).

    Terminal Job conditions decide; since Kubernetes 1.31 ``FailureTarget`` and
    ``SuccessCriteriaMet`` come before ``Failed``/``Complete`` (which wait for every pod to stop),
    so both are read to decide early
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#termination-of-job-pods).
    """
    ctx = _job_context(job)
    ordered = sorted(pods, key=_created)
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return Outcome(OutcomeKind.SUCCEEDED, "Complete", final=True, exit_code=0)
    failed = _condition(job, "Failed") or _condition(job, "FailureTarget")
    if failed is not None:
        reason = str(failed.get("reason") or "Failed")
        if reason == "DeadlineExceeded":
            message, advice = _advice(OutcomeKind.DEADLINE_EXCEEDED, None, ctx, log_tail)
            return Outcome(OutcomeKind.DEADLINE_EXCEEDED, reason, final=True, message=message, advice=advice)
        # Blame the pod that decided it: the latest one that failed for a reason of its own
        # (not an eviction, which the podFailurePolicy ignores), else the latest failed pod.
        outcomes = [classify_pod(p, job=job, log_tail=log_tail, now=now, catalog=catalog) for p in ordered]
        ended = [o for o in outcomes if o.final and o.kind is not OutcomeKind.SUCCEEDED]
        own = [o for o in ended if o.kind is not OutcomeKind.EVICTED]
        if not ended:
            message = f"Step {ctx.step} failed ({reason}: {failed.get('message') or 'no pod left to inspect'})."
            return Outcome(
                OutcomeKind.FAILED,
                reason,
                final=True,
                message=message,
                advice="Run `kubectl describe job` on the step's Job for the controller's events.",
            )
        blamed = (own or ended)[-1]
        return replace(blamed, final=True, reason=f"{reason}: {blamed.reason}")
    live = [
        classify_pod(p, job=job, log_tail=log_tail, now=now, catalog=catalog) for p in ordered if not _is_terminal(p)
    ]
    for kind in (
        OutcomeKind.CANNOT_START,
        OutcomeKind.IMAGE_PULL_FAILED,
        OutcomeKind.UNSCHEDULABLE,
        OutcomeKind.RUNNING,
    ):
        for outcome in live:
            if outcome.kind is kind:
                return outcome
    return Outcome(OutcomeKind.PENDING, "Pending")


def _is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


# --- attempts -------------------------------------------------------------------------------

#: Node-selector keys that name a pool or the capacity type on the platforms we know.
_POOL_SELECTORS = ("cloud.google.com/gke-nodepool", "karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup")
_SPOT_SELECTORS = {
    ("cloud.google.com/gke-spot", "true"): "spot",
    ("cloud.google.com/gke-provisioning", "spot"): "spot",
    ("karpenter.sh/capacity-type", "spot"): "spot",
    ("karpenter.sh/capacity-type", "on-demand"): "on-demand",
    ("eks.amazonaws.com/capacityType", "SPOT"): "spot",
    ("eks.amazonaws.com/capacityType", "ON_DEMAND"): "on-demand",
}


@dataclass(frozen=True)
class Attempt:
    """One pod of a step: where it ran, when, and how it ended.

    Times are wall-clock epoch seconds (None when the API did not say); ``outcome`` is an
    :class:`OutcomeKind` value (``running`` or ``pending`` for a pod the run stopped following).
    """

    pod: str
    node: str | None
    #: The node pool, from the pod's labels or node selector, when the placement names one.
    pool: str | None
    #: ``spot``, ``on-demand``, or None when the placement allowed either.
    capacity_type: str | None
    submitted: float | None
    started: float | None
    ended: float | None
    outcome: str
    reason: str
    exit_code: int | None


def _epoch(text: Any) -> float | None:
    parsed = _parse_time(str(text)) if text else None
    return parsed.timestamp() if parsed is not None else None


def attempt_of(pod: Mapping[str, Any], outcome: Outcome, *, ended: float | None = None) -> Attempt:
    """The :class:`Attempt` of ``pod`` as ``outcome`` describes it.

    ``ended`` is used when the pod's container says nothing (a pod deleted before it started).
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    pool = labels.get(LABEL_POOL) or next((selector[k] for k in _POOL_SELECTORS if selector.get(k)), None)
    capacity = labels.get(LABEL_CAPACITY)
    if capacity not in ("spot", "on-demand"):
        capacity = next((v for (k, want), v in _SPOT_SELECTORS.items() if selector.get(k) == want), None)
    started = _epoch(status.get("startTime"))
    finished: float | None = None
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for key in ("running", "terminated"):
            if state.get(key):
                started = _epoch(state[key].get("startedAt")) or started
        if state.get("terminated"):
            finished = _epoch(state["terminated"].get("finishedAt"))
    return Attempt(
        pod=str(meta.get("name") or ""),
        node=spec.get("nodeName") or None,
        pool=str(pool) if pool else None,
        capacity_type=capacity,
        submitted=_epoch(meta.get("creationTimestamp")),
        started=started,
        ended=finished if finished is not None else (ended if outcome.final else None),
        outcome=outcome.kind.value,
        reason=outcome.reason,
        exit_code=outcome.exit_code,
    )
