"""Launch: run a planned pipeline on a backend. Shared by ``gokart-k8s run`` and :func:`build`.

Backends:

``inline``
    plain gokart in this process (luigi's local scheduler);
``local-cluster``
    a rehearsal: the embedded local cluster starts in the background, every step becomes its own
    Job there through the same driver and in-pod command as on a real cluster, and it stops at the
    end;
``kubernetes``
    every step a Job on the cluster of the kubeconfig (or the in-cluster config in a pod).

:func:`build` is ``gokart.build`` with a backend, and :func:`enable_remote_execution` makes plain
``gokart.build(...)`` calls go through it, so an existing script moves to the cluster unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# ``--chaos`` alone: one default for ``run`` and ``local-cluster start`` (see gokart_k8s.conventions).
from gokart_k8s.conventions import CHAOS_RATE, CHAOS_SEED
from gokart_k8s.errors import GokartK8sError, PlanError, StepFailedError
from gokart_k8s.plan import Plan, make_plan
from gokart_k8s.progress import ProgressDisplay
from gokart_k8s.settings import Settings, load_settings
from gokart_k8s.steps import OnProgress

if TYPE_CHECKING:  # the embedded cluster is imported only for a rehearsal
    from gokart_k8s.localcluster.warm.client import PrestartedServer

BACKENDS = ("inline", "local-cluster", "kubernetes")

#: The image name a rehearsal's Jobs carry when no image is set (its pods are local processes).
_REHEARSAL_IMAGE = "gokart-k8s/rehearsal:local"

#: Environment variables a rehearsal's pods inherit from this process (they stand in for what a
#: real pod gets from its image, its service account and its config map).
_INHERITED_ENV = ("STORAGE_EMULATOR_HOST", "GCS_CREDENTIAL")


@dataclass(frozen=True)
class RunOptions:
    """How to run, beyond the settings: the choices of one invocation."""

    backend: str = "inline"
    #: luigi workers of the inline backend.
    workers: int = 1
    #: Label of the run's Jobs; time based when None.
    run_id: str | None = None
    #: What Ctrl-C does to in-flight Jobs on the kubernetes backend: ask, delete or keep.
    on_interrupt: str = "ask"
    #: Local cluster only: seeded random evictions and Spot preemptions.
    chaos: bool = False
    chaos_seed: int | None = None
    chaos_rate: float | None = None
    #: Show each step's log lines (prefixed with the step) when its pod ends.
    logs: bool = True
    #: Step logs keep luigi's own lines (scheduler chatter, execution summary); see gokart_k8s.steplog.
    verbose: bool = False


def prepare_plan(
    roots: Sequence[Any],
    settings: Settings,
    backend: str,
    *,
    touch_cache: bool = True,
    on_progress: OnProgress | None = None,
) -> Plan:
    """Resolve the cache location for ``backend`` and plan every step under ``roots``."""
    from gokart_k8s.workspace import prepare, set_workspace_directory, workspace_directory

    workspace = workspace_directory()
    if backend == "local-cluster" and "://" not in workspace:
        # Pods of the local cluster are local processes: they share this directory, by absolute path.
        workspace = str(Path(workspace).resolve()) + "/"
        set_workspace_directory(workspace)
    cache_problem = None
    if "://" in workspace and touch_cache:
        try:
            prepare(workspace)
        except GokartK8sError as exc:
            # One problem among the others, after the table (offline, no credentials, no bucket):
            # the plan is still shown, and a run still refuses to start.
            cache_problem = str(exc)
    plan = make_plan(
        roots,
        settings,
        backend=backend,
        workspace=workspace,
        check_cache=touch_cache and cache_problem is None,
        on_progress=on_progress,
    )
    if cache_problem is not None:
        plan.problems.append(cache_problem)
    return plan


def execute(
    roots: Sequence[Any],
    plan: Plan,
    options: RunOptions,
    progress: ProgressDisplay,
    *,
    warm_server: PrestartedServer | None = None,
) -> bool:
    """Run a plan that has no problems; True when every step is cached or succeeded.

    Every backend writes the run record (:mod:`gokart_k8s.history`) as it goes; the summary ends
    with the path of the run's report. ``warm_server``: a rehearsal's warm interpreter started
    before the plan (:func:`prestart_warm_server`), which its cluster takes if it can.
    """
    if not plan.ok:
        raise PlanError(plan.problems)
    options = dataclasses.replace(options, run_id=_run_id(options))
    recorder = _open_recorder(roots, plan, options)
    state = "interrupted"
    try:
        ok = _execute(roots, plan, options, progress, recorder, warm_server)
        state = "succeeded" if ok else ("interrupted" if getattr(recorder, "interrupted", False) else "failed")
        return ok
    finally:
        if recorder is not None:
            report = recorder.finish(state)
            if report:
                progress.notes.append(f"run {recorder.run_id}: report {report}")


def _execute(
    roots: Sequence[Any],
    plan: Plan,
    options: RunOptions,
    progress: ProgressDisplay,
    recorder: Any,
    warm_server: PrestartedServer | None,
) -> bool:
    if options.backend == "inline":
        from gokart_k8s.inline import run_inline

        if recorder is not None:
            progress.observers.append(recorder)
        complete = {r.step.task.task_id for r in plan.rows if r.cached}
        ok = True
        for root in roots:
            ok = (
                run_inline(
                    root, plan.steps, progress, complete=complete, workers=options.workers, verbose=options.verbose
                )
                and ok
            )
        return ok
    if plan.rows and all(row.cached for row in plan.rows):
        # Nothing to submit: no cluster to start, no code to pack, no Jobs to follow.
        if recorder is not None:
            progress.observers.append(recorder)
        for row in plan.rows:
            progress.step_state(row.step.spec, "cached")
        progress.log(f"every step is in the cache at {plan.workspace}: nothing to run")
        return True
    return _run_on_cluster(plan, options, progress, recorder, warm_server)


def _open_recorder(roots: Sequence[Any], plan: Plan, options: RunOptions) -> Any:
    """The run record's recorder, or None (with a warning) if it cannot start: a record never fails a run."""
    from gokart_k8s.history import open_recorder
    from gokart_k8s.platforms import get_profile

    image = plan.settings.image
    if options.backend == "local-cluster":
        image = image or _REHEARSAL_IMAGE
    try:
        return open_recorder(
            roots,
            plan,
            run_id=str(options.run_id),
            backend=options.backend,
            image=image if options.backend != "inline" else None,
            profile=get_profile(plan.settings),
            node_poll_seconds=2.0 if options.backend == "local-cluster" else 10.0,
            pricer=_cost_pricer(plan.settings),
        )
    except Exception as exc:
        import sys

        print(f"gokart-k8s: the run record could not be started ({exc}); running without it", file=sys.stderr)
        return None


def _run_id(options: RunOptions) -> str:
    from gokart_k8s.conventions import label_value

    return label_value(options.run_id or time.strftime("run-%Y%m%d-%H%M%S"))


def pod_env(plan: Plan, run_id: str, *, verbose: bool = False) -> dict[str, str]:
    """Environment of every step pod: where the cache is, which run (the manifest adds the SIGTERM budget)."""
    from gokart_k8s.conventions import RUN_ID_ENV
    from gokart_k8s.steplog import VERBOSE_ENV
    from gokart_k8s.workspace import WORKSPACE_ENV

    env = {WORKSPACE_ENV: plan.workspace, RUN_ID_ENV: run_id}
    if verbose:
        env[VERBOSE_ENV] = "1"
    return env


def _is_complete(steps: Sequence[Any]) -> set[str]:
    from gokart_k8s.workspace import find_complete

    done = find_complete([s.task for s in steps])
    return {s.spec.unique_id for s in steps if s.task.task_id in done}


def _run_on_cluster(
    plan: Plan,
    options: RunOptions,
    progress: ProgressDisplay,
    recorder: Any = None,
    warm_server: PrestartedServer | None = None,
) -> bool:
    from gokart_k8s.cluster.kubernetes import connect
    from gokart_k8s.driver import run_steps
    from gokart_k8s.platforms import get_profile

    settings = plan.settings
    profile = get_profile(settings)
    run_id = _run_id(options)
    log_sink: Callable[[str, str], None] | None = None
    if options.logs:
        log_sink = lambda family, line: progress.log(f"[{family}] {line}")  # noqa: E731

    package = code_package(plan, options.backend)
    env = pod_env(plan, run_id, verbose=options.verbose)
    if package is not None:
        progress.log(package.describe())
        env.update(package.env())
        if recorder is not None:
            recorder.code_version(package.sha256)

    def drive(api: Any, image: str, on_interrupt: str) -> bool:
        api.check_access(settings.namespace)
        if recorder is not None:
            recorder.attach_nodes(api.list_nodes)
        report = run_steps(
            plan.steps,
            settings,
            api,
            run_id=run_id,
            image=image,
            env=env,
            profile=profile,
            progress=progress,
            log_sink=log_sink,
            on_interrupt=on_interrupt,  # type: ignore[arg-type]
            is_complete=_is_complete,
            recorder=recorder,
            notice=progress.log,
        )
        if recorder is not None:
            recorder.interrupted = report.interrupted
            recorder.detach_nodes()
        _report(report, progress)
        _report_cost(recorder.record().steps if recorder is not None else report.steps, settings, progress)
        if report.interrupted:
            raise KeyboardInterrupt  # the caller reports an interrupted run (exit 130), not a failed one
        return bool(report.ok)

    if options.backend == "kubernetes":
        api = connect(context=settings.kube_context, request_timeout=settings.request_timeout_seconds)
        return drive(api, settings.image or "", options.on_interrupt)

    from gokart_k8s.localcluster import ChaosConfig, LocalCluster
    from gokart_k8s.localcluster.autoscaler import Autoscaling, summary_lines

    chaos = None
    if options.chaos or options.chaos_rate is not None or options.chaos_seed is not None:
        chaos = ChaosConfig(
            seed=CHAOS_SEED if options.chaos_seed is None else options.chaos_seed,
            rate=CHAOS_RATE if options.chaos_rate is None else options.chaos_rate,
        )
    # Pods are local processes started from this environment: the pipeline's modules must import
    # from the working directory, as they would from the image; the config file travels too.
    rehearsal_env = {"PYTHONPATH": os.pathsep.join(_import_roots(plan))}
    if os.environ.get("LUIGI_CONFIG_PATH"):
        rehearsal_env["LUIGI_CONFIG_PATH"] = os.path.abspath(os.environ["LUIGI_CONFIG_PATH"])
    rehearsal_env.update(_inherited_env())
    # With a code package, pods start in an empty working directory (_packaged_pod_env); only a
    # plan with local-file inputs or outputs (allowed on the local cluster alone) keeps this one.
    if package is not None and _uses_local_files(plan):
        progress.log("pods start in this working directory: the pipeline reads or writes local files")
    from gokart_k8s.supervision.stopsignals import scratch_directory, stopped_by

    pools = profile.pools()
    # The platform's autoscaler, its timers compressed by time_scale; the driver's Spot fallback
    # timer is compressed alike, so a rehearsal shows it in seconds.
    autoscaling = Autoscaling.for_platform(settings.platform, **_catalog_prices(settings))
    settings = dataclasses.replace(
        settings, spot_unavailable_fallback_seconds=settings.spot_unavailable_fallback_seconds / autoscaling.time_scale
    )
    # One scratch folder for the kubeconfig, the pods' empty working directory and their extracted
    # code packages: removed however the run ends (swept by the next run after a SIGKILL), and only
    # after the cluster stopped, so no pod loses its working directory or code while it runs.
    with scratch_directory() as tmp:
        empty_dir, code_cache = tmp / "gokart-k8s-pod", tmp / "gokart-k8s-code"
        empty_dir.mkdir()
        code_cache.mkdir()
        cluster = LocalCluster(
            pools,
            pod_env=_packaged_pod_env(str(code_cache)) if package is not None else rehearsal_env,
            chaos=chaos,
            autoscaling=autoscaling,
            workdir=empty_dir if package is not None and not _uses_local_files(plan) else None,
            warm_interpreter=settings.warm_interpreter,
            warm_server=warm_server,
        ).start()
        cluster.warm_up()  # steps will run: preload while the first nodes come up
        try:
            progress.log(
                f"local cluster at {cluster.url}, pools: {', '.join(p.name for p in pools)} "
                f"({autoscaling.mode}, time scale {autoscaling.time_scale:g})"
            )
            kubeconfig = cluster.write_kubeconfig(tmp / "kubeconfig", namespace=settings.namespace)
            progress.log(f"while the run lasts: export KUBECONFIG={kubeconfig}  (then: kubectl get jobs,pods)")
            api = connect(kubeconfig=str(kubeconfig), request_timeout=settings.request_timeout_seconds)
            # The rehearsal's cluster stops with this block: its Jobs are deleted on Ctrl-C.
            ok = drive(api, settings.image or _REHEARSAL_IMAGE, "delete")
            if chaos is not None:
                events = cluster.chaos_log
                progress.log(f"chaos (seed {chaos.seed}, rate {chaos.rate}/pod-minute): {len(events)} disruption(s)")
                for event in events:
                    progress.log(f"  {event.at:6.1f}s  {event.detail}")
            for line in summary_lines(cluster.node_lifetimes(), autoscaling.time_scale):
                progress.log(line)
            _report_node_cost(cluster.node_lifetimes(), settings, progress, autoscaling.time_scale)
        finally:
            # Stopped by a signal: the deleted pods got SIGTERM; give them their budget to save a
            # final checkpoint before the cluster kills what is left.
            cluster.stop(grace_seconds=settings.termination_budget_seconds + 1 if stopped_by() else 0.0)
    return ok


def code_package(plan: Plan, backend: str, *, upload: bool = True) -> Any:
    """Pack and upload the pipeline's code when ``[gokart_k8s] code_package`` says so for
    ``backend``; the :class:`~gokart_k8s.codepackage.CodePackage`, or None (the image holds the code)."""
    from gokart_k8s import codepackage

    if not codepackage.enabled(plan.settings.code_package, backend):
        return None
    pinned = codepackage.pinned(os.environ)
    if pinned is not None:
        return pinned
    return codepackage.prepare(
        _import_roots(plan, with_gokart_k8s=False),
        plan.workspace,
        limit_mb=plan.settings.code_package_max_mb,
        upload_it=upload,
    )


def _uses_local_files(plan: Plan) -> bool:
    """True if a plain luigi step or input of ``plan`` names a file of this machine (relative to
    this working directory), which the local cluster allows and a real cluster refuses."""
    from gokart_k8s.plan import _local_output_problems

    return any(_local_output_problems(step, "", "") for step in [*plan.steps, *(i.step for i in plan.inputs)])


def _inherited_env() -> dict[str, str]:
    return {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}


def prestart_warm_server(settings: Settings) -> PrestartedServer | None:
    """Start a rehearsal's warm interpreter now, before the plan, so its preload (a second or more:
    it imports gokart) runs beside the driver's own import of the pipeline instead of after it.

    Only where its environment can be known before the plan: with a code package (the default),
    pods get ``PYTHONPATH`` = gokart_k8s's import path whatever the pipeline. The cluster takes it
    only if that is exactly the environment it would start one with; the caller closes it after the
    run (a no-op once taken; it kills one nobody took). None when there is nothing to start.
    """
    from gokart_k8s import codepackage

    if not settings.warm_interpreter or not codepackage.enabled(settings.code_package, "local-cluster"):
        return None
    from gokart_k8s.localcluster.kubelet import base_environment
    from gokart_k8s.localcluster.warm.client import PrestartedServer

    # The cache directory is not known yet, but it is one of gokart_k8s's variables, which the
    # server's environment leaves out.
    return PrestartedServer(base_environment(_packaged_pod_env("")))


def _packaged_pod_env(code_cache: str) -> dict[str, str]:
    """The rehearsal pods' environment with a code package: they start as on a real cluster, with
    only gokart_k8s importable (the image's part); the pipeline's code and config come from the
    package (extracted under ``code_cache``), so what runs is what was packed."""
    from gokart_k8s.codepackage.pod import CACHE_ENV

    return {"PYTHONPATH": _gokart_k8s_import_path(), **_inherited_env(), CACHE_ENV: code_cache}


def _gokart_k8s_import_path() -> str:
    """What a rehearsal pod needs on PYTHONPATH to import gokart_k8s as this process does: nothing
    when it is installed (the interpreter finds it), else the directory above the package."""
    import gokart_k8s

    parent = Path(gokart_k8s.__file__).resolve().parent.parent
    return "" if any(p in ("site-packages", "dist-packages") for p in parent.parts) else str(parent)


def _import_roots(plan: Plan, *, with_gokart_k8s: bool = True) -> list[str]:
    """Absolute directories from which this process imported the pipeline's modules.

    A rehearsal's pods are local processes; they must import each step's module from the same
    place this process did (as a pod imports it from its image): the working directory, this
    process's PYTHONPATH, and the directory above each step module's top-level package.
    """
    import sys

    roots = [os.getcwd()]
    roots += [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    for name in {step.spec.module.split(".")[0] for step in plan.steps} | (
        {"gokart_k8s"} if with_gokart_k8s else set()
    ):
        top = sys.modules.get(name)
        if top is None:
            continue
        package_dirs = list(getattr(top, "__path__", []))  # a package (regular or namespace)
        if package_dirs:
            roots += [str(Path(d).resolve().parent) for d in package_dirs]
        elif getattr(top, "__file__", None):  # a plain module
            roots.append(str(Path(str(top.__file__)).resolve().parent))
    return list(dict.fromkeys(roots))


def _report(report: Any, progress: ProgressDisplay) -> None:
    """Evictions, fallbacks and advice the progress summary does not show."""
    for step in report.steps:
        notes = []
        if step.evictions:
            notes.append(f"evicted {step.evictions}x")
        if step.fallback:
            notes.append("moved to on-demand capacity")
        if step.adopted:
            notes.append("adopted its Job from an earlier driver")
        if notes:
            progress.log(f"{step.spec.family}: {', '.join(notes)} (attempts {step.attempts})")
        if len(step.attempt_log) > 1 or any(a.outcome not in ("succeeded", "running") for a in step.attempt_log):
            # Every attempt, so a retry spent on a kill or an OOM is visible, not just the last one.
            for number, attempt in enumerate(step.attempt_log, 1):
                where = [f"node {attempt.node}"] if attempt.node else []
                where += [f"pool {attempt.pool}"] if attempt.pool else []
                where += [f"{attempt.capacity_type} capacity"] if attempt.capacity_type else []
                progress.log(
                    f"{step.spec.family}: attempt {number}: pod {attempt.pod}"
                    f"{' on ' + ', '.join(where) if where else ''}: {attempt_verdict(attempt)}"
                )
        if step.error is not None:
            progress.log(f"{step.spec.family}: {step.error}")
    if report.error is not None:
        progress.log(f"gokart-k8s: error: {report.error}")


def attempt_verdict(attempt: Any) -> str:
    """How an attempt ended, for its summary line: ``evicted (TerminationByKubelet, exit 143)``.

    A pod that ended without a node, a start or an exit code never ran: it was deleted while it
    waited to be scheduled (its Job replaced by the on-demand one, or deleted), which is no failure
    of the step, whatever phase its deletion left it in.
    """
    if (
        attempt.node is None
        and attempt.started is None
        and attempt.exit_code is None
        and attempt.reason in ("", "Error")
    ):
        if attempt.outcome not in ("running", "pending", "succeeded"):
            return "never ran (deleted before it was scheduled on a node)"
    said = attempt.reason
    if attempt.exit_code is not None and f"exit {attempt.exit_code}" not in said:
        said = f"{said}, exit {attempt.exit_code}" if said else f"exit {attempt.exit_code}"
    return f"{attempt.outcome}{f' ({said})' if said else ''}"


def _report_cost(steps: Sequence[Any], settings: Settings, progress: ProgressDisplay) -> None:
    """The run's cost line (:mod:`gokart_k8s.cost.summary`) from the attempts the run reports per
    step (the run record's, else the driver's); nothing when there are none. A price problem is
    said, never raised: the run is over."""
    steps = [s for s in steps if getattr(s, "attempts", None) or getattr(s, "attempt_log", None)]
    if not steps:
        return
    from gokart_k8s.cost.config import load_cost_options
    from gokart_k8s.cost.machines import load_machines
    from gokart_k8s.cost.summary import summary_line
    from gokart_k8s.errors import GokartK8sError

    try:
        options = load_cost_options(region=settings.region)
        line = summary_line(steps, platform=settings.platform, options=options, machines=load_machines())
    except GokartK8sError as exc:
        line = f"cost: not estimated ({exc})"
    progress.log(line)


def _catalog_prices(settings: Settings) -> dict[str, Any]:
    """``prices=`` for the rehearsal's autoscaler: the catalog's, when a region is set and its
    prices read (else the autoscaler's own linear stand-in)."""
    if not settings.region or settings.platform in ("plain", "gke-autopilot"):
        return {}
    from gokart_k8s.cost.billing import CatalogNodePrices
    from gokart_k8s.cost.config import load_cost_options
    from gokart_k8s.cost.machines import load_machines
    from gokart_k8s.errors import GokartK8sError
    from gokart_k8s.localcluster.autoscaler.config import LinearPrices

    try:
        options = load_cost_options(region=settings.region)
        return {"prices": CatalogNodePrices(settings.platform, options, load_machines(), LinearPrices())}
    except GokartK8sError:
        return {}


def _cost_pricer(settings: Settings) -> Any:
    """The run record's pricing hook (:func:`gokart_k8s.cost.billing.attempt_pricer`), or None
    when the run cannot be priced (no region, a plain cluster, prices that do not read)."""
    if not settings.region or settings.platform == "plain":
        return None
    from gokart_k8s.cost.billing import attempt_pricer
    from gokart_k8s.cost.config import load_cost_options
    from gokart_k8s.cost.machines import load_machines
    from gokart_k8s.errors import GokartK8sError

    try:
        return attempt_pricer(settings.platform, load_cost_options(region=settings.region), load_machines())
    except GokartK8sError:
        return None


def _report_node_cost(lifetimes: Any, settings: Settings, progress: ProgressDisplay, time_scale: float = 1.0) -> None:
    """What the rehearsal's nodes would cost at the catalog's list prices (:mod:`gokart_k8s.cost.billing`),
    over the cluster's (compressed) clock, as the node-hours above it."""
    from gokart_k8s.cost.billing import node_cost_line
    from gokart_k8s.cost.config import load_cost_options
    from gokart_k8s.cost.machines import load_machines
    from gokart_k8s.errors import GokartK8sError

    try:
        options = load_cost_options(region=settings.region)
        label = "node cost" if time_scale == 1 else "node cost (cluster time)"
        line = node_cost_line(
            lifetimes, platform=settings.platform, options=options, machines=load_machines(), label=label
        )
    except GokartK8sError as exc:
        line = f"node cost: not estimated ({exc})"
    progress.log(line)


def build(
    task: Any,
    *,
    backend: str = "kubernetes",
    return_value: bool = True,
    settings: Settings | None = None,
    options: RunOptions | None = None,
    **gokart_kwargs: Any,
) -> Any:
    """``gokart.build(task)`` with every step run by ``backend`` (default: each step a Job).

    One code path with ``gokart-k8s run`` on every backend: the cache is prepared the same way
    (for ``gs://``, the create-only google-cloud-storage filesystem, honouring
    ``STORAGE_EMULATOR_HOST``, and a check of the bucket), the plan is made (every problem raised
    together as :class:`PlanError`, before anything runs or is submitted), steps already cached are
    not run again, and the task's output is returned like ``gokart.build``. A failed step raises
    :class:`StepFailedError`.

    The cache is ``[TaskOnKart] workspace_directory`` of luigi's config, as for ``gokart.build``:
    set it before the task object is made (a task reads it when it is constructed). The keyword
    arguments of ``gokart.build`` (``reset_register``, ``log_level``) are accepted and have no effect.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    settings = settings or load_settings()
    options = dataclasses.replace(options or RunOptions(), backend=backend)
    plan = prepare_plan([task], settings, backend)
    if not plan.ok:
        raise PlanError(plan.problems)
    with ProgressDisplay([s.spec for s in plan.steps]) as progress:
        ok = execute([task], plan, options, progress)
    if not ok:
        failed = [e.spec.family for e in progress.steps.values() if e.state not in ("cached", "succeeded")]
        raise StepFailedError(
            f"the pipeline did not finish on the {backend} backend: {', '.join(failed)} did not succeed.\n"
            + progress.summary()
        )
    if not return_value:
        return None
    import importlib

    # gokart's own way of reading a built task's output(s), so the value is what gokart.build returns.
    return importlib.import_module("gokart.build")._get_output(task)


@contextmanager
def enable_remote_execution(backend: str = "kubernetes", **build_kwargs: Any) -> Iterator[None]:
    """Within the block, ``gokart.build(task)`` runs every step on ``backend``.

    ::

        with gokart_k8s.enable_remote_execution("kubernetes"):
            result = gokart.build(TrainModel())     # each step its own Job

    The original ``gokart.build`` is restored on exit.
    """
    import gokart

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    original = gokart.build

    def remote_build(task: Any, return_value: bool = True, **kwargs: Any) -> Any:
        kwargs.pop("reset_register", None)
        kwargs.pop("log_level", None)
        return build(task, backend=backend, return_value=return_value, **build_kwargs)

    gokart.build = remote_build  # type: ignore[assignment]
    try:
        yield
    finally:
        gokart.build = original
