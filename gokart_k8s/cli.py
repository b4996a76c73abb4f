"""The ``gokart-k8s`` command line: a thin layer over plan, backends and the in-pod command.

::

    gokart-k8s plan   TASK [luigi params] [--output table|json]
    gokart-k8s run    TASK [luigi params] [--backend inline|local-cluster|kubernetes]
    gokart-k8s render TASK [luigi params] --platform P [--image IMAGE] -o DIR
    gokart-k8s step   --module M --family F --params JSON --unique-id U     (runs inside a pod)
    gokart-k8s config                                                       (settings reference)
    gokart-k8s local-cluster start                                          (embedded cluster)
    gokart-k8s runs   [--workspace W]                                       (recorded runs)
    gokart-k8s report [RUN_ID|latest] [-o FILE] [--format html|json|trace]  (a run's report)
    gokart-k8s image -o DIR                                                 (dependencies-only image)

``TASK`` and its parameters are named as luigi's command line names them; every argument this
command does not know is handed to luigi. Errors are one clear message and exit status 2 (bad
input) or 1 (a step failed); ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gokart_k8s.conventions import CHAOS_RATE, CHAOS_SEED
from gokart_k8s.errors import ConfigurationError, GokartK8sError, PlanError

if TYPE_CHECKING:  # a pod's `gokart-k8s step` imports nothing of the embedded cluster
    from gokart_k8s.localcluster.warm.client import PrestartedServer

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
#: 128 + SIGINT, as a shell reports a command stopped with Ctrl-C.
EXIT_INTERRUPTED = 130


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--platform", help="platform profile (overrides [gokart_k8s] platform)")
    parser.add_argument("--image", help="container image of step Jobs (overrides [gokart_k8s] image)")
    parser.add_argument(
        "--workspace", help="the cache location (overrides [TaskOnKart] workspace_directory), e.g. gs://bucket/prefix"
    )
    parser.add_argument(
        "--code-package",
        choices=("auto", "off"),
        help="ship the code and config as a code package (auto) or use the image's (off); "
        "overrides [gokart_k8s] code_package",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _task_command(command: str, options: str = "[options]") -> dict[str, Any]:
    """Usage and epilog of a command that takes TASK and its luigi parameters (argparse cannot show them)."""
    from gokart_k8s.tasks import TASK_ARGUMENTS_HELP, task_usage

    return {
        "usage": task_usage(command, options),
        "epilog": TASK_ARGUMENTS_HELP,
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }


def build_parser(*, step_only: bool = False) -> argparse.ArgumentParser:
    """The command line; ``step_only``: just ``step``, so a pod imports none of the other commands."""
    # allow_abbrev=False: luigi's task parameters pass through, and '--n' must not be taken as
    # an abbreviation of one of ours (e.g. '--no-logs').
    parser = argparse.ArgumentParser(
        prog="gokart-k8s",
        allow_abbrev=False,
        description="Run gokart pipelines locally, rehearse them on an embedded cluster, or run each "
        "step as its own Kubernetes Job.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    if step_only:
        _add_step(sub)
        return parser

    plan = sub.add_parser(
        "plan",
        allow_abbrev=False,
        help="show every step: class, eviction tolerance, cache, placement",
        **_task_command("plan"),
    )
    plan.add_argument("--output", "-O", choices=("table", "json"), default="table")
    plan.add_argument("--all", action="store_true", help="list every step (a large plan counts alike steps on one row)")
    plan.add_argument(
        "--backend",
        choices=("inline", "local-cluster", "kubernetes"),
        default="kubernetes",
        help="check the plan for this backend (default: kubernetes)",
    )
    plan.add_argument(
        "--no-cache-check", action="store_true", help="do not read the cache (offline: every step shows as not cached)"
    )
    _common(plan)
    from gokart_k8s.cost.command import add_plan_arguments

    add_plan_arguments(plan)

    run = sub.add_parser("run", allow_abbrev=False, help="run the pipeline", **_task_command("run"))
    run.add_argument("--backend", choices=("inline", "local-cluster", "kubernetes"), default="inline")
    run.add_argument("--workers", type=int, default=1, help="inline backend: luigi workers")
    run.add_argument("--run-id", help="run id label of the step Jobs (default: time based)")
    run.add_argument(
        "--on-interrupt", choices=("ask", "delete", "keep"), default="ask", help="what Ctrl-C does to in-flight Jobs"
    )
    run.add_argument("--chaos", action="store_true", help="local-cluster: evict and preempt pods at random")
    run.add_argument(
        "--chaos-seed", type=int, default=None, help=f"local-cluster: chaos random seed (default {CHAOS_SEED})"
    )
    run.add_argument(
        "--chaos-rate",
        type=float,
        default=None,
        help=f"local-cluster: disruptions per minute of running pod time (default {CHAOS_RATE})",
    )
    run.add_argument("--no-logs", action="store_true", help="do not stream step logs")
    run.add_argument(
        "--verbose", action="store_true", help="step logs keep luigi's own lines (scheduler chatter, summaries)"
    )
    _common(run)

    render = sub.add_parser(
        "render",
        allow_abbrev=False,
        help="write each step's Job manifest as YAML",
        **_task_command("render", "--platform P [--image IMAGE] -o DIR [options]"),
    )
    render.add_argument("-o", "--output-dir", required=True, type=Path)
    render.add_argument("--run-id", default="rendered")
    _common(render)

    _add_step(sub)

    config = sub.add_parser(
        "config",
        help="print the effective settings and where each comes from",
        usage="gokart-k8s config [TASK [task parameters]]",
        description="Every setting, the cache location and the resource classes, each with where its value "
        "comes from (environment variable, file:line, default); with TASK, also each step's resource class and "
        "eviction tolerance and whether the decorator or a default set it.",
    )
    config.add_argument("--debug", action="store_true")

    try:
        from gokart_k8s.localcluster.command import register as register_local_cluster
    except ImportError:  # pragma: no cover - the package always ships it
        pass
    else:
        register_local_cluster(sub)
    try:
        from gokart_k8s.scheduling.command import register as register_schedule
    except ImportError:
        pass
    else:
        register_schedule(sub)
    from gokart_k8s.history.command import register as register_history

    register_history(sub)

    from gokart_k8s.codepackage.image import register as register_image

    register_image(sub)
    from gokart_k8s.cost.command import register as register_cost

    register_cost(sub)
    return parser


def _add_step(sub: Any) -> None:
    step = sub.add_parser("step", help="run one step (the command a step's pod runs)")
    step.add_argument("--module", required=True)
    step.add_argument("--family", required=True)
    step.add_argument("--params", required=True, help="JSON object of luigi string parameters")
    step.add_argument("--unique-id", required=True)
    step.add_argument("--luigi-args", default="[]", help="JSON list of luigi's class-level arguments")
    step.add_argument("--debug", action="store_true")


def _settings(args: argparse.Namespace) -> Any:
    import dataclasses

    from gokart_k8s.settings import PLATFORMS, load_settings

    settings = load_settings()
    changes: dict[str, Any] = {}
    platform = getattr(args, "platform", None)
    if platform:
        if platform not in PLATFORMS:
            raise GokartK8sError(f"--platform must be one of {', '.join(PLATFORMS)}, got {platform!r}")
        changes["platform"] = platform
    if getattr(args, "image", None):
        changes["image"] = args.image
    if getattr(args, "code_package", None):
        changes["code_package"] = args.code_package
    return dataclasses.replace(settings, **changes) if changes else settings


def _plan(args: argparse.Namespace, luigi_argv: list[str], backend: str, *, touch_cache: bool = True) -> Any:
    from gokart_k8s.progress import WorkNotice
    from gokart_k8s.runner import prepare_plan
    from gokart_k8s.tasks import task_from_argv
    from gokart_k8s.workspace import set_workspace_directory

    settings = _settings(args)
    if getattr(args, "workspace", None):
        set_workspace_directory(args.workspace.rstrip("/") + "/")
    # A large graph takes seconds to plan: a live line says so on a terminal (nothing elsewhere).
    with WorkNotice() as notice:
        root = task_from_argv(luigi_argv)
        return root, prepare_plan([root], settings, backend, touch_cache=touch_cache, on_progress=notice)


def cmd_plan(args: argparse.Namespace, luigi_argv: list[str]) -> int:
    _root, plan = _plan(args, luigi_argv, args.backend, touch_cache=not args.no_cache_check)
    if args.output == "json":
        from gokart_k8s.cost.command import plan_cost_json

        data = plan.as_dict()
        cost = plan_cost_json(args, plan)
        if cost is not None:
            data["cost"] = cost
        print(json.dumps(data, indent=2))
    else:
        from gokart_k8s.plan import TABLE_STEPS

        print(plan.table(every_step_up_to=None if args.all else TABLE_STEPS))
        from gokart_k8s.cost.command import plan_report

        cost_report = plan_report(args, plan)
        if cost_report:
            print(cost_report)
        if plan.problems:
            # A plan changes nothing: what the problems block is a run (or a render).
            print(str(PlanError(plan.problems, consequence="a run would stop here")), file=sys.stderr)
    return 0 if plan.ok else EXIT_BAD_INPUT


def _store_rendered_package(package: Any, workspace: str, out_dir: Path) -> None:
    from gokart_k8s.codepackage.store import upload

    try:
        _url, created = upload(workspace, package.data)
    except GokartK8sError as exc:
        out_dir.mkdir(parents=True, exist_ok=True)
        local = out_dir / f"code-{package.sha256}.tar.gz"
        local.write_bytes(package.data)
        first_line = str(exc).splitlines()[0]
        print(
            f"code package {package.sha256[:12]}: not stored in the cache ({first_line}).\n"
            f"  The Jobs read it from {package.url}: copy it there before applying them,\n"
            f"  e.g. gcloud storage cp {local} {package.url}\n"
            "  (or render with --code-package off to run the image's own code).",
            file=sys.stderr,
        )
        return
    state = "uploaded" if created else "already in the cache"
    print(f"code package {package.sha256[:12]}: {package.files} files, {state} ({package.url})", file=sys.stderr)


def cmd_render(args: argparse.Namespace, luigi_argv: list[str]) -> int:
    from gokart_k8s.conventions import label_value
    from gokart_k8s.render import NOTHING_WRITTEN, render_steps
    from gokart_k8s.runner import pod_env

    # Rendering reads nothing from the cache (its one write is the code package, create-only and
    # content-addressed; --code-package off skips it and needs no credentials).
    _root, plan = _plan(args, luigi_argv, "kubernetes", touch_cache=False)
    if not plan.ok:
        raise PlanError(plan.problems, consequence=NOTHING_WRITTEN)
    settings = plan.settings
    # Exactly what `run` submits (the same pod environment: cache, run id, SIGTERM budget), so only
    # the run id differs from a run's Jobs.
    run_id = label_value(args.run_id)
    env = pod_env(plan, run_id)
    from gokart_k8s.runner import code_package

    # The manifests name the package by hash. It is stored now when the cache can be reached
    # (create-only, content-addressed); offline it is written beside the manifests with the one
    # command that stores it, so render works without credentials as plan and schedule -o do.
    package = code_package(plan, "kubernetes", upload=False)
    if package is not None:
        env.update(package.env())
        _store_rendered_package(package, plan.workspace, args.output_dir)
    paths = render_steps(
        [s.spec for s in plan.steps],
        settings,
        run_id=run_id,
        image=settings.image or "",
        out_dir=args.output_dir,
        env=env,
    )
    for path in paths:
        print(path)
    return 0


def cmd_run(args: argparse.Namespace, luigi_argv: list[str]) -> int:
    """``gokart-k8s run``; SIGTERM stops it as Ctrl-C does, and the exit status is 130 or 143 then."""
    from gokart_k8s.supervision.stopsignals import stop_signals

    with stop_signals() as stop:
        try:
            return stop.exit_code(_run(args, luigi_argv))
        except KeyboardInterrupt:  # before the run started: nothing was submitted
            print("gokart-k8s: interrupted", file=sys.stderr)
            return stop.exit_code(130)


def _run(args: argparse.Namespace, luigi_argv: list[str]) -> int:
    from gokart_k8s.codepackage.pod import activate_from_environment
    from gokart_k8s.runner import prestart_warm_server
    from gokart_k8s.scheduling.dates import resolve_scheduled_argv

    # A scheduled driver pod runs the code package its CronJob pins, like its step pods.
    activate_from_environment()
    # In a scheduled run (the driver pod of a CronJob), bind {scheduled_date} and friends, and take
    # the run id from the driver's Job so a replacement driver adopts the same step Jobs.
    try:
        luigi_argv, scheduled_run_id = resolve_scheduled_argv(luigi_argv, os.environ, timezone=None)
    except ConfigurationError:
        # A Job made by hand from the CronJob (kubectl create job --from=cronjob/NAME) has a name that
        # does not encode the scheduled time: its creation time stands in for it.
        created = driver_job_created(_settings(args))
        if created is None:
            raise
        luigi_argv, scheduled_run_id = resolve_scheduled_argv(
            luigi_argv, os.environ, timezone=None, job_created=created
        )
    # A rehearsal's warm interpreter preloads (on another core) while this process plans.
    warm_server = prestart_warm_server(_settings(args)) if args.backend == "local-cluster" else None
    try:
        return _run_planned(args, luigi_argv, scheduled_run_id, warm_server)
    finally:
        if warm_server is not None:
            warm_server.close()


def _run_planned(
    args: argparse.Namespace, luigi_argv: list[str], scheduled_run_id: str | None, warm_server: PrestartedServer | None
) -> int:
    from gokart_k8s.progress import ProgressDisplay
    from gokart_k8s.runner import RunOptions, execute

    root, plan = _plan(args, luigi_argv, args.backend)
    if not plan.ok:
        print(plan.table(), file=sys.stderr)
        raise PlanError(plan.problems)
    options = RunOptions(
        backend=args.backend,
        workers=args.workers,
        run_id=args.run_id or scheduled_run_id,
        on_interrupt=args.on_interrupt,
        chaos=args.chaos,
        chaos_seed=args.chaos_seed,
        chaos_rate=args.chaos_rate,
        logs=not args.no_logs,
        verbose=args.verbose,
    )
    from gokart_k8s.workspace import output_locations

    interrupted = False
    with ProgressDisplay([s.spec for s in plan.steps]) as progress:
        try:
            ok = execute([root], plan, options, progress, warm_server=warm_server)
        except KeyboardInterrupt:
            # Ctrl-C (or SIGTERM, handled as Ctrl-C): say so, in the summary and the exit status.
            interrupted, ok = True, False
            progress.mark_interrupted()
    print(progress.summary(outputs=output_locations(root) if ok else ()))
    if interrupted:
        print("gokart-k8s: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if ok else EXIT_FAILED


def driver_job_created(settings: Any) -> Any:
    """Creation time of the Job this driver pod belongs to (``GOKART_K8S_JOB_NAME``), or None."""
    from datetime import datetime

    from gokart_k8s.cluster.kubernetes import connect
    from gokart_k8s.scheduling.names import ENV_JOB_NAME

    name = os.environ.get(ENV_JOB_NAME)
    if not name:
        return None
    api = connect(context=settings.kube_context, request_timeout=settings.request_timeout_seconds)
    job = api.read_job(settings.namespace, name)
    stamp = ((job or {}).get("metadata") or {}).get("creationTimestamp")
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None


def cmd_step(args: argparse.Namespace, _luigi_argv: list[str]) -> int:
    from gokart_k8s.entrypoint import run_step_supervised

    return run_step_supervised(
        module=args.module,
        family=args.family,
        params_json=args.params,
        unique_id=args.unique_id,
        luigi_args_json=args.luigi_args,
    )


def cmd_config(args: argparse.Namespace, luigi_argv: list[str]) -> int:
    from gokart_k8s.settings import (
        config_files,
        field_docs,
        load_settings,
        setting_sources,
        workspace_source,
    )
    from gokart_k8s.workspace import workspace_directory

    def shown(value: Any) -> str:
        return "none" if value is None else str(value)

    settings = load_settings()
    sources = setting_sources()
    files = config_files()
    print(f"config files read (later wins): {', '.join(files) if files else 'none'}")
    print(f"cache = {workspace_directory()}    from {workspace_source()}    ([TaskOnKart] workspace_directory)")
    for name, default, doc in field_docs():
        if name in ("catalog", "pools"):
            continue
        source = sources[name]
        origin = "default" if source == "default" else f"from {source} (default {default})"
        print(f"{name} = {shown(getattr(settings, name))}    {origin}")
        print(f"    {doc}")
    print("resource classes:")
    for name, rc in settings.catalog.items():
        where = sources.get(f"resources.{name}", "built-in")
        print(f"    {name}: {rc.describe()}, spot {'allowed' if rc.spot else 'not allowed'}    ({where})")
    if settings.pools:
        print("node pools:")
        for pool in settings.pools:
            where = sources.get(f"pools.{pool.name}", "")
            print(
                f"    {pool.name}: {pool.cpu} cpu, {pool.memory}, spot={pool.spot}, labels={pool.labels}    ({where})"
            )
    if luigi_argv:
        _print_step_declarations(settings, sources, luigi_argv)
    return 0


def _print_step_declarations(settings: Any, sources: dict[str, str], luigi_argv: list[str]) -> None:
    """``config TASK``: each step's resource class and eviction tolerance, and where each comes from."""
    from gokart_k8s.declaration import declaration_of
    from gokart_k8s.steps import walk
    from gokart_k8s.tasks import task_from_argv

    def origin(key: str) -> str:
        source = sources[key]
        return f"[gokart_k8s] {key}, default" if source == "default" else f"[gokart_k8s] {key} from {source}"

    print("steps (resource class, eviction tolerance, and where each comes from):")
    for task in walk(task_from_argv(luigi_argv)):
        declared = declaration_of(task)
        decorator = f"@gokart_k8s.job on {type(task).__name__}"
        if declared.resources is None:
            resources = f"{settings.default_resources} ({origin('default_resources')})"
        else:
            name = getattr(declared.resources, "name", None) or declared.resources
            resources = f"{name if isinstance(name, str) else 'one-off'} ({decorator})"
        if declared.eviction is None:
            eviction = f"{settings.default_eviction.value} ({origin('default_eviction')})"
        else:
            eviction = f"{declared.eviction.value} ({decorator})"
        print(f"    {task.get_task_family()}: resources {resources}; eviction {eviction}")


COMMANDS = {"plan": cmd_plan, "run": cmd_run, "render": cmd_render, "step": cmd_step, "config": cmd_config}


def _help_task(_args: argparse.Namespace, luigi_argv: list[str]) -> int:
    from gokart_k8s.tasks import task_help

    print(task_help(luigi_argv))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A pod's `gokart-k8s step ...` imports nothing of the other commands (the embedded cluster, costs).
    parser = build_parser(step_only=argv[:1] == ["step"])
    args, rest = parser.parse_known_args(argv)
    debug = bool(getattr(args, "debug", False)) or "--debug" in argv
    command = args.command
    if command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    handler = COMMANDS.get(command) or getattr(args, "handler", None)
    if handler is None and callable(getattr(args, "func", None)):
        func = args.func
        handler = lambda parsed, _rest: func(parsed)  # noqa: E731  (commands that take no luigi args)
    if handler is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if command == "step" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if command in ("plan", "run", "render") and "--help-task" in rest:
        handler = _help_task
    try:
        from gokart_k8s.settings import check_config_files

        # Before anything imports luigi: luigi parses its config files on import.
        check_config_files()
        return int(handler(args, rest) or 0)
    except BrokenPipeError:
        # Output piped into a command that stopped reading (`| head`): not an error of ours.
        sys.stdout = open(os.devnull, "w")  # interpreter shutdown flushes stdout again
        return 0
    except GokartK8sError as exc:
        if debug:
            raise
        print(f"gokart-k8s: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT if not _is_run_failure(exc) else EXIT_FAILED
    except KeyboardInterrupt:
        print("gokart-k8s: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _is_run_failure(exc: BaseException) -> bool:
    from gokart_k8s.errors import StepEvictedError, StepFailedError

    return isinstance(exc, (StepFailedError, StepEvictedError))


if __name__ == "__main__":
    raise SystemExit(main())
