"""Run in pod: the one command line a step's container runs, locally or on the cluster.

::

    gokart-k8s step --module pkg.pipeline --family TrainModel \
        --params '{"epochs":"10"}' --unique-id 0123abcd... [--luigi-args '["--LoadData-n-samples","500"]']

The same argv is used by the rehearsal (each step in its own process on the local cluster) and by
a real cluster, so a rehearsal proves the remote path. The command

1. with ``GOKART_K8S_CODE_URL`` set, downloads the run's code package, refuses it (exit
   ``EXIT_CODE_SKEW``) unless its sha256 is ``GOKART_K8S_CODE_SHA256``, and puts its code and
   config first (:mod:`gokart_k8s.codepackage.pod`); then imports ``--module`` so the task class
   registers with luigi (from the package, else from the image);
2. rebuilds the task from ``--family`` and ``--params`` (JSON of luigi's string parameters --
   never pickle), inside luigi's command-line context with ``--luigi-args`` (the class-level
   arguments of the driver's command line, see :mod:`gokart_k8s.tasks`), so the task's own
   ``requires()`` builds what the driver's did;
3. **refuses to run** if the task's ``make_unique_id()`` differs from ``--unique-id``: the image
   holds different code or dependencies than the driver, and running would write outputs under
   another cache key (exit ``EXIT_CODE_SKEW``);
4. builds the task with gokart (dependencies are already complete: the driver submits a step only
   when its requirements are cached), so gokart's ``complete_check_at_run`` makes a duplicate
   start of the same step a no-op. Its log is the step's own output (:mod:`gokart_k8s.steplog`):
   a failure's traceback once, then the verdict the driver shows as one last line,
   ``gokart-k8s step: step F failed: Exception: message``;
5. exits 0, ``EXIT_USER_ERROR`` when the task's own code raised, or ``EXIT_EVICTED`` when SIGTERM
   arrived (eviction, Spot preemption) and the step stopped after its final checkpoint.

The command is two processes (:mod:`gokart_k8s.supervision.step`): a supervising parent that
holds the SIGTERM budget whatever the step's code is doing, and a worker child that does 1-5.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gokart_k8s.steps import StepSpec


def step_argv(spec: StepSpec, *, program: str = "gokart-k8s") -> list[str]:
    """The explicit command line that runs ``spec`` in a pod (see the module docstring)."""
    import json

    # luigi's class-level arguments of the driver's command line, only when there are any (so the
    # Jobs of a pipeline run without them stay byte-identical).
    extra = ["--luigi-args", json.dumps(list(spec.luigi_args))] if spec.luigi_args else []
    return [
        program,
        "step",
        "--module",
        spec.module,
        "--family",
        spec.family,
        "--params",
        spec.params_json(),
        "--unique-id",
        spec.unique_id,
        *extra,
    ]


def _fail(message: str, code: int) -> int:

    print(f"gokart-k8s step: {message}", file=sys.stderr, flush=True)
    return code


def run_step_supervised(
    *, module: str, family: str, params_json: str, unique_id: str, luigi_args_json: str = "[]"
) -> int:
    """Run one step in a worker child under a supervisor that holds the SIGTERM budget.

    In the worker itself (:func:`gokart_k8s.supervision.step.is_worker`) this is :func:`run_step`.
    """
    import os
    import sys

    from gokart_k8s.supervision.step import is_worker, supervise
    from gokart_k8s.termination import BUDGET_ENV, DEFAULT_BUDGET_SECONDS

    if is_worker():
        return run_step(
            module=module, family=family, params_json=params_json, unique_id=unique_id, luigi_args_json=luigi_args_json
        )
    from gokart_k8s.conventions import EXIT_USER_ERROR

    raw = os.environ.get(BUDGET_ENV, str(DEFAULT_BUDGET_SECONDS))
    try:
        budget = float(raw)
        if not budget > 0:
            raise ValueError
    except ValueError:
        return _fail(f"{BUDGET_ENV} must be a positive number of seconds, got {raw!r}", EXIT_USER_ERROR)
    argv = [sys.executable, "-m", "gokart_k8s", "step", "--module", module, "--family", family]
    argv += ["--params", params_json, "--unique-id", unique_id, "--luigi-args", luigi_args_json]
    return supervise(argv, budget)


def run_step(*, module: str, family: str, params_json: str, unique_id: str, luigi_args_json: str = "[]") -> int:
    """Run one step in this process and return the exit code (see the module docstring)."""
    import importlib
    import json

    from gokart_k8s.conventions import EXIT_CODE_SKEW, EXIT_USER_ERROR

    if "" not in sys.path:
        sys.path.insert(0, "")
    # A container's stdout is a pipe, which Python buffers by blocks: line by line instead, so the
    # step's prints reach its log (and `kubectl logs -f`) as they happen, in order with its logging.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    from gokart_k8s.codepackage.pod import activate_from_environment
    from gokart_k8s.errors import CodePackageError

    try:
        # The run's code package (when the driver sent one) goes first on sys.path, and its luigi
        # config in force, before the step's module is imported.
        activate_from_environment()
    except CodePackageError as exc:
        return _fail(str(exc), EXIT_CODE_SKEW)
    try:
        importlib.import_module(module)
    except Exception as exc:
        return _fail(
            f"cannot import module {module!r} ({type(exc).__name__}: {exc}). The image does not hold the "
            "pipeline's code the driver has: rebuild the image from the same source, or set the image "
            "that does ([gokart_k8s] image / --image).",
            EXIT_CODE_SKEW,
        )
    from luigi.task_register import Register, TaskClassException

    try:
        cls = Register.get_task_cls(family)
    except TaskClassException as exc:
        return _fail(f"task {family!r} does not exist in module {module!r} in this image: {exc}", EXIT_CODE_SKEW)
    try:
        params = json.loads(params_json)
        if not isinstance(params, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        return _fail(f"--params is not a JSON object of parameters: {exc}", EXIT_USER_ERROR)
    try:
        luigi_args = json.loads(luigi_args_json)
        if not isinstance(luigi_args, list) or not all(isinstance(a, str) for a in luigi_args):
            raise ValueError("expected a JSON list of strings")
    except ValueError as exc:
        return _fail(f"--luigi-args is not a JSON list of luigi arguments: {exc}", EXIT_USER_ERROR)
    from gokart_k8s.steps import luigi_lookups_memoised
    from gokart_k8s.tasks import command_line

    # Everything that builds tasks (the rebuild below, its requires(), luigi's worker) runs inside
    # luigi's command-line context with the driver's class-level arguments, as under `luigi`;
    # and with each parameter's value found once (a step builds its requirements a dozen times:
    # luigi's scheduling, gokart's unique id and every dump), forgotten when the config changes.
    with command_line(family, luigi_args), luigi_lookups_memoised():
        return _build_step(cls, family, params, unique_id)


def _build_step(cls: Any, family: str, params: dict[str, Any], unique_id: str) -> int:
    import os

    from gokart_k8s.conventions import EXIT_CODE_SKEW, EXIT_EVICTED, EXIT_OK, EXIT_USER_ERROR
    from gokart_k8s.steps import unique_id_of
    from gokart_k8s.workspace import WORKSPACE_ENV, prepare, set_workspace_directory

    workspace = os.environ.get(WORKSPACE_ENV)
    if workspace:
        set_workspace_directory(workspace)
        prepare(workspace)
    try:
        task = cls.from_str_params(params)
    except Exception as exc:
        return _fail(f"cannot rebuild {family} from its parameters ({type(exc).__name__}: {exc})", EXIT_CODE_SKEW)
    actual = unique_id_of(task)
    if actual != unique_id:
        return _fail(
            f"step {family} computes unique id {actual} in this image, but the driver expected {unique_id}. "
            "The image holds different code or parameters than the driver, and running it would write "
            "another cache entry. Rebuild the image from the driver's source, or pin the image that matches.",
            EXIT_CODE_SKEW,
        )
    import luigi

    from gokart_k8s.steplog import failure_lines, is_eviction, step_logging, verbose_from_env, verdict
    from gokart_k8s.termination import BUDGET_ENV, DEFAULT_BUDGET_SECONDS, install_termination_handler

    budget = float(os.environ.get(BUDGET_ENV, str(DEFAULT_BUDGET_SECONDS)))
    termination = install_termination_handler(budget)
    verbose = verbose_from_env()
    failures: list[BaseException] = []

    def on_failure(_task: Any, exc: BaseException) -> None:
        failures.append(exc)
        if not verbose and not is_eviction(exc):  # verbose: luigi's worker logs the traceback itself
            print("\n".join(failure_lines(exc)), file=sys.stderr, flush=True)

    # The step's own output only (see gokart_k8s.steplog): luigi's boilerplate with --verbose.
    with step_logging(sys.stderr, verbose=verbose), _on_failure(on_failure):
        result = luigi.build([task], local_scheduler=True, workers=1, detailed_summary=True)
    if termination.terminated:
        # The SIGTERM warning of gokart_k8s.termination is the eviction's one line.
        if verbose:
            _fail(f"step {family} was asked to stop (SIGTERM: eviction or preemption)", EXIT_EVICTED)
        return EXIT_EVICTED
    if result.scheduling_succeeded and task.complete():
        # The output is committed: checkpoints of earlier attempts are of no use any more (the
        # SUCCESS handler clears them only when this attempt opened one).
        from gokart_k8s.cache.checkpoints import clear_checkpoints

        clear_checkpoints(task)
        return EXIT_OK
    if failures:
        why = verdict(failures[-1])
    else:  # nothing raised: luigi's own verdict (a requirement missing, a complete() that failed)
        why = f"luigi ended with status {result.status.name}"
    return _fail(f"step {family} failed: {why}", EXIT_USER_ERROR)


@contextlib.contextmanager
def _on_failure(handler: Any) -> Iterator[None]:
    """luigi's FAILURE event of every task, for the duration of the step's build."""
    import luigi

    callbacks = luigi.Task._event_callbacks.setdefault(luigi.Task, {})
    callbacks.setdefault(luigi.Event.FAILURE, set()).add(handler)
    try:
        yield
    finally:
        callbacks[luigi.Event.FAILURE].discard(handler)
