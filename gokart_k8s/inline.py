"""The inline backend: the pipeline runs as plain gokart in this process (luigi local scheduler).

Nothing is submitted anywhere; this is exactly ``gokart.build`` plus a progress display. Decorated
and undecorated tasks behave the same: the decorator only declares.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gokart_k8s.progress import ProgressDisplay
from gokart_k8s.steps import Step


@contextmanager
def _luigi_events(handlers: dict[Any, Callable[..., None]]) -> Iterator[None]:
    """Register luigi event handlers on every task for the duration of a run, then remove them."""
    import luigi

    callbacks = luigi.Task._event_callbacks.setdefault(luigi.Task, {})
    for event, fn in handlers.items():
        callbacks.setdefault(event, set()).add(fn)
    try:
        yield
    finally:
        for event, fn in handlers.items():
            callbacks.get(event, set()).discard(fn)


def run_inline(
    root: Any,
    steps: list[Step],
    progress: ProgressDisplay,
    *,
    complete: set[str],
    workers: int = 1,
    verbose: bool = False,
) -> bool:
    """Build ``root`` with luigi's local scheduler; report each step to ``progress``.

    A step's own output (its prints, its logging, a failure's traceback once) is shown as a pod's
    log is: each line on stderr, prefixed with the step (see :mod:`gokart_k8s.steplog`), never
    mixed into the summary on stdout. luigi's own lines only when ``verbose``.
    """
    import contextlib

    import luigi

    from gokart_k8s.steplog import LineWriter, failure_lines, is_eviction, step_logging, verdict

    by_task_id = {s.task.task_id: s for s in steps}
    current: list[str] = []

    def show(line: str) -> None:
        progress.log(f"[{current[-1]}] {line}" if current else line)

    writer = LineWriter(show)

    def state(task: Any, name: str, detail: str = "") -> None:
        step = by_task_id.get(task.task_id)
        if step is not None:
            progress.step_state(step.spec, name, detail)

    def on_start(task: Any) -> None:
        current.append(task.get_task_family())
        state(task, "running")

    def on_end(task: Any, name: str, detail: str = "") -> None:
        writer.flush()
        state(task, name, detail)
        if current:
            current.pop()

    def on_failure(task: Any, exc: BaseException) -> None:
        if not verbose and not is_eviction(exc):  # verbose: luigi's worker logs the traceback itself
            for line in failure_lines(exc):
                show(line)
        on_end(task, "failed", verdict(exc))

    handlers: dict[Any, Callable[..., None]] = {
        luigi.Event.START: on_start,
        luigi.Event.SUCCESS: lambda task: on_end(task, "succeeded"),
        luigi.Event.FAILURE: on_failure,
    }
    for step in steps:
        if step.task.task_id in complete:
            progress.step_state(step.spec, "cached")
    if all(step.task.task_id in complete for step in steps):
        # The plan found every step in the cache: nothing for luigi's scheduler to do, and its
        # graph walk is a second resolution of every step.
        return True
    from gokart_k8s.tasks import command_line, luigi_args_of

    # Inside luigi's command-line context, as under `luigi`: dynamic dependencies see it too.
    with (
        _luigi_events(handlers),
        command_line(root.get_task_family(), luigi_args_of(root)),
        contextlib.redirect_stdout(writer),  # type: ignore[type-var]
        contextlib.redirect_stderr(writer),  # type: ignore[type-var]
        step_logging(writer, verbose=verbose),  # type: ignore[arg-type]
    ):
        result = luigi.build([root], local_scheduler=True, workers=workers, detailed_summary=True)
    writer.flush()
    for step in steps:
        entry = progress.steps.get(step.spec.unique_id)
        if entry is not None and entry.state == "pending":
            done = step.task.complete()
            progress.step_state(step.spec, "cached" if done else "skipped", "" if done else "a requirement failed")
    return bool(result.scheduling_succeeded) and all(
        progress.steps[s.spec.unique_id].state in ("cached", "succeeded") for s in steps
    )
