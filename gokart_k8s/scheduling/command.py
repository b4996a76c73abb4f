"""``gokart-k8s schedule``: create, list, delete, trigger a schedule and show its runs.

The edge of the scheduling room: it parses the command line, reads the settings, imports and plans
the task (so a pipeline that cannot run is refused before anything is created), and either writes
the objects of :mod:`gokart_k8s.scheduling.objects` as YAML or sends them through
:mod:`gokart_k8s.cluster.schedules`. Everything it shows is computed by the pure modules beside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gokart_k8s.errors import ConfigurationError
from gokart_k8s.scheduling.dates import parse_date_option, resolve_scheduled_argv, zone
from gokart_k8s.scheduling.names import ANNOTATION_TASK, ENV_SCHEDULED_TIME, UTC
from gokart_k8s.scheduling.objects import (
    ScheduleConfig,
    build_objects,
    check_schedule,
    credential_warnings,
    default_name,
    job_from_cronjob,
    trigger_job_name,
    validate_schedule,
)
from gokart_k8s.scheduling.summaries import summarize_runs, table
from gokart_k8s.settings import parse_secret_ref

__all__ = ["config_from_args", "register", "write_yaml"]


_SUBCOMMANDS = ("create", "list", "delete", "trigger", "runs")


def register(subparsers: Any) -> None:
    """Add ``schedule`` to the ``gokart-k8s`` parser (called by :func:`gokart_k8s.cli.build_parser`).

    ``schedule TASK ...`` is ``schedule create TASK ...``: argparse cannot mix positional TASK
    with subcommands, so the handler looks at the first word and re-parses (:func:`_dispatch`).
    """
    parser = subparsers.add_parser(
        "schedule",
        help="run a pipeline on a cron schedule in the cluster (create, list, delete, trigger, runs)",
        description="gokart-k8s schedule [create] TASK [luigi params] --cron EXPR (-o DIR | --apply) | "
        "list | delete NAME | trigger NAME [--date D] | runs NAME",
        add_help=False,
    )
    parser.add_argument("words", nargs=argparse.REMAINDER)
    parser.set_defaults(handler=_dispatch)


def _schedule_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gokart-k8s schedule")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")

    from gokart_k8s.tasks import TASK_ARGUMENTS_HELP, task_usage

    create = sub.add_parser(
        "create",
        help="create or write a schedule: schedule [create] TASK [params] --cron ...",
        usage=task_usage("schedule [create]", "--cron EXPR (-o DIR | --apply) [options]"),
        epilog=TASK_ARGUMENTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    create.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *" or @daily')
    create.add_argument("--timezone", help="tz database name, e.g. Asia/Tokyo (default UTC)")
    create.add_argument("--name", help="CronJob name (default: the task's name)")
    target = create.add_mutually_exclusive_group(required=True)
    target.add_argument("-o", "--output-dir", type=Path, help="write the objects as YAML into this directory")
    target.add_argument("--apply", action="store_true", help="create or update the objects in the cluster")
    create.add_argument("--gcp-service-account", help="GSA e-mail for GKE Workload Identity on the driver's account")
    create.add_argument("--starting-deadline", type=int, default=3600, help="seconds a late start may still run")
    create.add_argument("--successful-history", type=int, default=3, help="finished runs kept")
    create.add_argument("--failed-history", type=int, default=3, help="failed runs kept")
    create.add_argument("--backoff-limit", type=int, default=3, help="driver crashes a run survives")
    create.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra env of the driver, in plain text in the CronJob: no credentials (see --secret-env)",
    )
    create.add_argument(
        "--secret-env",
        action="append",
        default=[],
        metavar="NAME=SECRET/KEY",
        help="env of the driver and of every step read from key KEY of Secret SECRET (a secretKeyRef)",
    )
    create.add_argument("--suspend", action="store_true", help="create the CronJob suspended")
    create.add_argument(
        "--code-package",
        choices=("auto", "off"),
        help="pin the code and config as a code package in the CronJob (auto) or use the image's (off)",
    )
    create.add_argument("--platform", help="platform profile (overrides [gokart_k8s] platform)")
    create.add_argument("--image", help="container image (overrides [gokart_k8s] image)")
    create.add_argument("--namespace", help="namespace (overrides [gokart_k8s] namespace)")
    create.add_argument(
        "--workspace", help="the cache, gs://BUCKET/PREFIX/ (overrides [TaskOnKart] workspace_directory)"
    )
    create.add_argument("--no-plan-check", action="store_true", help="do not import the task and check its plan")
    create.add_argument("--debug", action="store_true")

    sub.add_parser("list", help="list schedules").add_argument("--namespace")
    delete = sub.add_parser("delete", help="delete a schedule, its runs and its driver account")
    delete.add_argument("name")
    delete.add_argument("--namespace")
    trigger = sub.add_parser("trigger", help="run now, or re-run one day with --date")
    trigger.add_argument("name")
    trigger.add_argument("--date", help="scheduled date (2026-11-01) or time (2026-11-01T03:00) of the run")
    trigger.add_argument("--namespace")
    runs = sub.add_parser("runs", help="recent runs and their outcome")
    runs.add_argument("name")
    runs.add_argument("--namespace")
    for p in (delete, trigger, runs):
        p.add_argument("--debug", action="store_true")
    return parser


def _dispatch(args: argparse.Namespace, rest: list[str]) -> int:
    words = [*list(getattr(args, "words", []) or []), *rest]
    if not words or words[0] in ("-h", "--help"):
        _schedule_parser().print_help()
        return 0 if words else 2
    if words[0] not in _SUBCOMMANDS:
        words = ["create", *words]
    parsed, unknown = _schedule_parser().parse_known_args(words)
    if parsed.action != "create" and unknown:
        raise ConfigurationError(f"schedule {parsed.action}: unrecognized arguments: {' '.join(unknown)}")
    handlers = {
        "create": _cmd_create,
        "list": _cmd_list,
        "delete": _cmd_delete,
        "trigger": _cmd_trigger,
        "runs": _cmd_runs,
    }
    return handlers[parsed.action](parsed, unknown)


def _env_pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigurationError(f"--env {item!r} must be NAME=VALUE.")
        out[key] = value
    return out


def config_from_args(args: argparse.Namespace, task_argv: list[str], settings: Any, workspace: str) -> ScheduleConfig:
    """The :class:`ScheduleConfig` of ``schedule create``: options over settings."""
    return ScheduleConfig(
        name=args.name or default_name(task_argv),
        task_argv=tuple(task_argv),
        cron=args.cron,
        timezone=args.timezone,
        image=args.image or settings.image,
        workspace=args.workspace or workspace,
        namespace=args.namespace or settings.namespace,
        platform=args.platform or settings.platform,
        step_service_account=settings.service_account,
        gcp_service_account=args.gcp_service_account,
        starting_deadline_seconds=args.starting_deadline,
        successful_jobs_history_limit=args.successful_history,
        failed_jobs_history_limit=args.failed_history,
        backoff_limit=args.backoff_limit,
        env=_env_pairs(args.env),
        # [gokart_k8s] secret_env first, then the command line's, which wins for the same variable.
        secret_env=tuple(
            {
                ref.var: ref
                for ref in (
                    *settings.secret_env,
                    *(parse_secret_ref(item, "--secret-env") for item in args.secret_env),
                )
            }.values()
        ),
        suspend=args.suspend,
    )


def _plan_problems(config: ScheduleConfig, settings: Any) -> list[str]:
    """Import the task with a sample scheduled time and plan it for the platform: every problem."""
    import dataclasses

    from gokart_k8s.errors import GokartK8sError
    from gokart_k8s.plan import make_plan
    from gokart_k8s.tasks import task_from_argv

    sample = {ENV_SCHEDULED_TIME: datetime.now(zone(config.timezone)).replace(microsecond=0).isoformat()}
    try:
        argv, _ = resolve_scheduled_argv(list(config.task_argv), sample, timezone=config.timezone)
        root = task_from_argv(argv)
        plan_settings = dataclasses.replace(settings, platform=config.platform, image=config.image)
        # The cache is not read: the pod's cloud identity, not this machine's, will read it.
        plan = make_plan([root], plan_settings, backend="kubernetes", workspace=config.workspace, check_cache=False)
    except GokartK8sError as exc:
        return [str(exc)]
    return list(plan.problems)


def _pin_code_package(config: ScheduleConfig, settings: Any, mode: str | None) -> ScheduleConfig:
    """Pack and upload the pipeline's code now and pin it by hash in the driver's environment, so
    every run of the schedule -- a rerun of a past day too -- runs this code until it is scheduled
    again (see docs/code-packages.md)."""
    import dataclasses

    from gokart_k8s import codepackage
    from gokart_k8s.errors import CodePackageError, GokartK8sError
    from gokart_k8s.plan import make_plan
    from gokart_k8s.runner import code_package
    from gokart_k8s.tasks import task_from_argv

    settings = dataclasses.replace(settings, code_package=mode or settings.code_package)
    if not codepackage.enabled(settings.code_package, "kubernetes"):
        return config
    sample = {ENV_SCHEDULED_TIME: datetime.now(zone(config.timezone)).replace(microsecond=0).isoformat()}
    argv, _ = resolve_scheduled_argv(list(config.task_argv), sample, timezone=config.timezone)
    plan = make_plan(
        [task_from_argv(argv)], settings, backend="kubernetes", workspace=config.workspace, check_cache=False
    )
    try:
        package = code_package(plan, "kubernetes")
    except GokartK8sError as exc:
        raise CodePackageError(
            f"{exc}\nThe schedule pins the pipeline's code as a code package in {config.workspace}, so it must be "
            "uploaded now; or pass --code-package off to run the image's code."
        ) from exc
    if package is None:
        return config
    print(package.describe(), file=sys.stderr)
    return dataclasses.replace(config, env={**config.env, **package.env()})


def _cmd_create(args: argparse.Namespace, task_argv: list[str]) -> int:
    from gokart_k8s.settings import load_settings
    from gokart_k8s.workspace import workspace_directory

    settings = load_settings()
    config = config_from_args(args, task_argv, settings, workspace_directory())
    for warning in credential_warnings(config.env):
        print(f"gokart-k8s: warning: {warning}", file=sys.stderr)
    problems = validate_schedule(config)
    if not problems and not args.no_plan_check:
        problems = _plan_problems(config, settings)
    if problems:
        check_schedule(config)  # raises with the schedule's own problems first
        raise ConfigurationError(
            f"schedule {config.name!r}: the pipeline cannot run; nothing was created:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    if not args.no_plan_check:
        config = _pin_code_package(config, settings, args.code_package)
    objects = build_objects(config)
    if args.output_dir is not None:
        for path in write_yaml(objects, args.output_dir):
            print(path)
        return 0
    from gokart_k8s.cluster.schedules import ScheduleClient

    client = ScheduleClient.connect(settings)
    for obj, created in client.apply(objects):
        print(f"{obj['kind'].lower()}/{obj['metadata']['name']} {'created' if created else 'configured'}")
    print(
        f"schedule {config.name!r}: {config.cron} ({config.timezone or 'UTC'}) in namespace {config.namespace!r}; "
        f"run it now with `gokart-k8s schedule trigger {config.name}`"
    )
    return 0


def write_yaml(objects: Sequence[Mapping[str, Any]], directory: Path) -> list[Path]:
    """One YAML file per object, ``NN-kind-name.yaml`` so ``kubectl apply -f DIR`` keeps the order."""
    from gokart_k8s.conventions import dump_yaml

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, obj in enumerate(objects, 1):
        path = directory / f"{i:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        path.write_text(dump_yaml(obj))
        paths.append(path)
    return paths


def _client_and_namespace(args: argparse.Namespace) -> tuple[Any, str]:
    from gokart_k8s.cluster.schedules import ScheduleClient
    from gokart_k8s.settings import load_settings

    settings = load_settings()
    return ScheduleClient.connect(settings), args.namespace or settings.namespace


def _cmd_list(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    rows = []
    for cj in client.list_cronjobs(namespace):
        spec, status, meta = cj.get("spec") or {}, cj.get("status") or {}, cj.get("metadata") or {}
        rows.append(
            [
                str(meta.get("name", "")),
                str(spec.get("schedule", "")),
                str(spec.get("timeZone", "")),
                "yes" if spec.get("suspend") else "no",
                str(len(status.get("active") or [])),
                str(status.get("lastScheduleTime") or "-"),
                str((meta.get("annotations") or {}).get(ANNOTATION_TASK, "")),
            ]
        )
    print(table(["NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "ACTIVE", "LAST SCHEDULE", "TASK"], rows))
    return 0


def _cmd_delete(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    for line in client.delete_schedule(namespace, args.name):
        print(line)
    return 0


def _cmd_trigger(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    cronjob = client.read_cronjob(namespace, args.name)
    spec = cronjob.get("spec") or {}
    tz = spec.get("timeZone")
    when = parse_date_option(args.date, str(spec.get("schedule", "")), tz)
    job = job_from_cronjob(cronjob, name=trigger_job_name(args.name), scheduled_time=when)
    created = client.create_job(namespace, job)
    print(
        f"job/{created['metadata']['name']} created (scheduled time {when.isoformat()}); "
        f"follow it with `gokart-k8s schedule runs {args.name}`"
    )
    return 0


def _cmd_runs(args: argparse.Namespace, _rest: list[str]) -> int:
    client, namespace = _client_and_namespace(args)
    jobs = client.list_runs(namespace, args.name)
    runs = summarize_runs(jobs, now=datetime.now(UTC))
    if not runs:
        print(f"schedule {args.name!r} has no runs in namespace {namespace!r} yet.", file=sys.stderr)
        return 0
    # A scheduled run's id is its driver Job's name (resolve_scheduled_argv): `gokart-k8s report RUN_ID`.
    print(table(["RUN ID", "OUTCOME", "SCHEDULED", "STARTED", "DURATION", "BY"], [r.row() for r in runs]))
    return 0
