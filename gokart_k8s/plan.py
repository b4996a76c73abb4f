"""Plan: resolve every step of a pipeline and check it, before anything runs or is submitted.

The plan is pure apart from reading the cache: it walks the gokart graph, resolves each step's
declaration against the settings, asks the platform profile where each step would run, and
collects **every** problem in the graph (unknown classes, impossible placements, a local cache
for a remote run) so they can be reported together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gokart_k8s.settings import Settings
from gokart_k8s.steps import OnProgress, Step, collect, is_external, prove_round_trips


@dataclass
class PlanRow:
    step: Step
    cached: bool
    placement: str
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        spec = self.step.spec
        return {
            "family": spec.family,
            "module": spec.module,
            "unique_id": spec.unique_id,
            "task_id": spec.task_id,
            "resource_class": spec.resource_class.as_dict(),
            "eviction": spec.eviction.value,
            "max_runtime_seconds": spec.max_runtime_seconds,
            "cached": self.cached,
            "placement": self.placement,
            "requires": list(spec.requires),
            "problems": self.problems,
        }


@dataclass
class InputRow:
    """An external task (``luigi.ExternalTask``): an input the pipeline reads and never runs.

    Its output must exist before the run (checked with the cache, ``complete`` None when the cache
    was not read); it is never submitted, and steps that need it start as if it were cached.
    """

    step: Step
    complete: bool | None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        spec = self.step.spec
        return {
            "family": spec.family,
            "module": spec.module,
            "task_id": spec.task_id,
            "outputs": output_paths(self.step.task),
            "complete": self.complete,
            "problems": self.problems,
        }


#: Past this many steps the plan table counts alike steps on one row (``plan --all``: every step).
TABLE_STEPS = 60


@dataclass
class Plan:
    settings: Settings
    backend: str
    workspace: str
    rows: list[PlanRow]
    problems: list[str]
    inputs: list[InputRow] = field(default_factory=list)

    @property
    def steps(self) -> list[Step]:
        return [r.step for r in self.rows]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "platform": self.settings.platform,
            "backend": self.backend,
            "workspace": self.workspace,
            "image": self.settings.image,
            "inputs": [i.as_dict() for i in self.inputs],
            "steps": [r.as_dict() for r in self.rows],
            "problems": self.problems,
            "ok": self.ok,
        }

    def table(self, *, every_step_up_to: int | None = TABLE_STEPS) -> str:
        """One row per step; past ``every_step_up_to`` steps (None: never), one row per kind of step.

        A kind is the steps alike in every column but their unique id (a fan-out's thousand
        spokes): a table of 10,000 rows that differ only there shows nothing a reader can take in.
        ``plan --all`` lists every step, and ``--output json`` always does.
        """
        header = ("STEP", "UNIQUE ID", "RESOURCE CLASS", "EVICTION", "CACHED", "PLACEMENT")
        rows: list[tuple[str, ...]] = [header]
        for i in self.inputs:
            exists = {True: "yes", False: "MISSING", None: "unchecked"}[i.complete]
            rows.append((i.step.spec.family, "-", "external input", "-", exists, "not run: must already exist"))
        cells: list[tuple[str, tuple[str, ...]]] = []
        for r in self.rows:
            spec = r.step.spec
            rc = spec.resource_class
            kind: tuple[str, ...] = (
                spec.family,
                f"{rc.name or 'one-off'} ({rc.describe()})",
                spec.eviction.value,
                "yes" if r.cached else "no",
                r.placement,
            )
            cells.append((spec.unique_id[:12], kind))
        grouped = every_step_up_to is not None and len(self.rows) > every_step_up_to
        if grouped:
            kinds: dict[tuple[str, ...], list[str]] = {}
            for uid, kind in cells:
                kinds.setdefault(kind, []).append(uid)
            for kind, uids in kinds.items():
                family, *rest = kind
                if len(uids) == 1:
                    rows.append((family, uids[0], *rest))
                else:
                    rows.append((f"{family} x{len(uids)}", f"{uids[0]} ...", *rest))
        else:
            for uid, (family, *rest) in cells:
                rows.append((family, uid, *rest))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        lines.append(
            f"{len(self.rows)} steps, {sum(r.cached for r in self.rows)} cached"
            + (f", {len(self.inputs)} external input{'s' if len(self.inputs) != 1 else ''}" if self.inputs else "")
            + f" · platform {self.settings.platform}"
            f" · backend {self.backend} · cache {self.workspace}"
        )
        if grouped:
            lines.append(
                f"(alike steps counted on one row: {len(rows) - 1 - len(self.inputs)} rows for {len(self.rows)} steps; "
                "--all lists every step, --output json too)"
            )
        return "\n".join(lines)


REMOTE_BACKENDS = ("kubernetes",)
CLUSTER_BACKENDS = ("kubernetes", "local-cluster")


def make_plan(
    roots: Sequence[Any],
    settings: Settings,
    *,
    backend: str = "inline",
    workspace: str,
    check_cache: bool = True,
    on_progress: OnProgress | None = None,
) -> Plan:
    """Resolve and check every step under ``roots``; never raises for a problem, collects it.

    ``on_progress`` hears each stage of the work as it starts, with the steps found so far.
    """
    from gokart_k8s.platforms import get_profile

    steps, problems = collect(roots, settings, prove=False, on_progress=on_progress)
    externals = [s for s in steps if is_external(s.task)]
    steps = [s for s in steps if not is_external(s.task)]
    profile = get_profile(settings)
    complete: set[str] = set()
    checked = False
    if check_cache:
        if on_progress is not None:
            on_progress("checking the cache", len(steps) + len(externals))
        try:
            from gokart_k8s.workspace import find_complete

            complete = find_complete([s.task for s in externals + steps])
            checked = True
        except Exception as exc:  # a cache problem is a plan problem, reported with the rest
            problems.append(f"cannot read the cache at {workspace}: {exc}")
    if backend in CLUSTER_BACKENDS:
        # Only a step that goes to a pod must survive the trip there (with its ancestors): steps
        # found in the cache are not run, and the inline backend runs every step in this process.
        if on_progress is not None:
            on_progress("checking each step's parameters survive the trip to a pod", len(steps))
        problems += prove_round_trips(steps, (s.spec.unique_id for s in steps if s.task.task_id not in complete))
    inputs: list[InputRow] = []
    for external in externals:
        row = InputRow(step=external, complete=external.task.task_id in complete if checked else None)
        if row.complete is False:
            outputs = ", ".join(output_paths(external.task)) or "none"
            row.problems.append(
                f"input {external.spec.family} is missing: {external.spec.task_id} is a luigi.ExternalTask, which "
                f"the pipeline reads but never makes, and its output ({outputs}) does not exist. Create it first, "
                "or point the task's parameters at data that exists."
            )
        inputs.append(row)
    if backend in REMOTE_BACKENDS:
        from gokart_k8s.workspace import is_remote

        if not is_remote(workspace):
            problems.append(
                f"the cache is the local directory {workspace!r}, but steps would run in pods on the "
                "cluster, whose outputs vanish with the pod. Set [TaskOnKart] workspace_directory = "
                "gs://<bucket>/<prefix> in luigi.cfg (or run with --backend local-cluster / inline)."
            )
        if not settings.image:
            problems.append(
                "no container image is set for the step Jobs. Set [gokart_k8s] image = <registry>/<image>:<tag> "
                "in luigi.cfg, GOKART_K8S_IMAGE, or pass --image."
            )
    remote = backend in REMOTE_BACKENDS
    for row in inputs:
        if remote:
            row.problems += _local_output_problems(row.step, "input", "step pods cannot read it")
        problems.extend(row.problems)
    for step in steps if remote else []:
        problems += _local_output_problems(step, "step", "it would vanish with the step's pod")
    rows: list[PlanRow] = []
    for step in steps:
        step_problems = list(profile.check(step.spec))
        if step_problems:
            placement = "impossible"
        else:
            placement = profile.place(step.spec).describe()
        problems.extend(step_problems)
        rows.append(
            PlanRow(step=step, cached=step.task.task_id in complete, placement=placement, problems=step_problems)
        )
    return Plan(settings=settings, backend=backend, workspace=workspace, rows=rows, problems=problems, inputs=inputs)


def output_paths(task: Any) -> list[str]:
    """The paths (or reprs) of ``task``'s outputs, for messages."""
    import luigi.task

    return [str(getattr(target, "path", target)) for target in luigi.task.flatten(task.output())]


def _local_output_problems(step: Step, what: str, consequence: str) -> list[str]:
    """A plain luigi task's outputs that are files of this machine, where steps run in pods.

    gokart tasks write to the cache (``workspace_directory``), which the plan checks on its own; a
    plain luigi task or an external input names its own targets, and a ``luigi.LocalTarget`` (or
    any path that is not a ``gs://``/``s3://`` URL) is a file of one machine. On the local cluster
    pods are local processes in this working directory, so there it is fine.
    """
    import gokart
    import luigi.task

    from gokart_k8s.workspace import is_remote

    if isinstance(step.task, gokart.TaskOnKart):
        return []
    local = [
        str(target.path)
        for target in luigi.task.flatten(step.task.output())
        if isinstance(getattr(target, "path", None), str) and not is_remote(target.path)
    ]
    return [
        f"{what} {step.spec.family} is a plain luigi task whose output is the local file {path!r}, but steps run in "
        f"pods on the cluster: {consequence}. Make it a gokart.TaskOnKart (its outputs go to the cache), or give "
        f"it a gs:// target (luigi.contrib.gcs.GCSTarget); or run with --backend local-cluster / inline."
        for path in local
    ]
