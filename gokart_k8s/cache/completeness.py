"""Which steps of a pipeline are already cached, with one listing per output directory.

gokart decides "cached" with ``task.complete()``, which asks for each output in turn: on GCS one
``objects.get`` per output, so a graph of 2,000 steps costs 2,000 round trips before anything
runs. :func:`find_complete` asks the same question for the whole graph at once: it collects every
output path, groups them by directory, lists each directory **once** (GCS: ``objects.list`` with
``prefix=`` and ``delimiter='/'``, 1,000 names per page; local: one ``os.scandir``) and tests
membership on the client. It never uses ``match_glob``: exact names need no server-side glob, and
fake-gcs-server ignores it. A directory asked about for only a few names (the driver asks about one
step as it ends) is not listed: each name is checked on its own (one ``objects.get``, a ``stat``),
since listing a directory that holds N outputs once per finished step made a run of N steps
quadratic.

Semantics are gokart's ``complete()`` for ordinary tasks: a task is complete when *every* output
exists (a dict/list ``output()`` counts only when all its targets exist), a path that is a
"directory" counts as existing (luigi's GCS rule), a gokart task with no output is complete, and a
plain luigi task with none is not. Anything that makes ``complete()`` more than "all outputs
exist" falls back to calling it: a class that overrides ``complete``, ``rerun=True`` (gokart
deletes the outputs inside ``complete()``), ``strict_check``, ``modification_time_check``, or an
output that is not a file target. Listings are strongly consistent on GCS
(https://cloud.google.com/storage/docs/consistency), so a listing is as fresh as a ``get``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext

import gokart
import gokart.target
import luigi
import luigi.target
from luigi.task import flatten as _flatten

__all__ = ["find_complete"]

#: A directory with at most this many names to test has each checked on its own instead of listed.
CHECK_EACH_UP_TO = 2

# luigi ships py.typed but leaves these untyped; give them the types they have.
flatten: Callable[[object], list[object]] = _flatten
_GOKART_COMPLETE = gokart.TaskOnKart.complete
_LUIGI_COMPLETE = luigi.Task.complete


def find_complete(tasks: Iterable[luigi.Task], *, max_workers: int = 8) -> set[luigi.Task]:
    """Return the subset of ``tasks`` that are complete, listing each output directory once.

    ``max_workers`` directories (or fallback ``complete()`` calls) are queried concurrently.
    """
    unique = {task.task_id: task for task in tasks}
    plans: dict[str, list[str] | None] = {tid: _output_paths(task) for tid, task in unique.items()}

    wanted: dict[str, set[str]] = {}
    for paths in plans.values():
        for path in paths or ():
            directory, name = _split(path)
            wanted.setdefault(directory, set()).add(name)
    directories = sorted(d for d, names in wanted.items() if len(names) > CHECK_EACH_UP_TO)
    singles = sorted((d, name) for d, names in wanted.items() if len(names) <= CHECK_EACH_UP_TO for name in names)
    fallbacks = [tid for tid, paths in plans.items() if paths is None]
    one_question = len(directories) + len(singles) + len(fallbacks) <= 1  # then no threads to start
    with nullcontext(None) if one_question else ThreadPoolExecutor(max_workers=max_workers) as pool:
        each = map if pool is None else pool.map
        listed = dict(zip(directories, each(_list_directory, directories), strict=True))
        found = each(lambda single: _exists(*single), singles)
        present = {single for single, there in zip(singles, found, strict=True) if there}
        checked = dict(zip(fallbacks, each(_call_complete, (unique[tid] for tid in fallbacks)), strict=True))

    def exists(path: str) -> bool:
        directory, name = _split(path)
        return name in listed[directory] if directory in listed else (directory, name) in present

    complete: set[luigi.Task] = set()
    for tid, paths in plans.items():
        if paths is None:
            done = checked[tid]
        else:
            done = all(exists(path) for path in paths)
            if not paths and not isinstance(unique[tid], gokart.TaskOnKart):
                done = False  # luigi.Task.complete() is False for a task without outputs
        if done:
            complete.add(unique[tid])
    return complete


def _call_complete(task: luigi.Task) -> bool:
    complete: Callable[[], object] = task.complete
    return bool(complete())


def _output_paths(task: luigi.Task) -> list[str] | None:
    """The output paths to test, or None when only ``task.complete()`` gives the right answer."""
    complete = type(task).complete
    if complete is not _GOKART_COMPLETE and complete is not _LUIGI_COMPLETE:
        return None
    if isinstance(task, gokart.TaskOnKart) and (task._rerun_state or task.strict_check or task.modification_time_check):
        return None
    paths: list[str] = []
    output: Callable[[], object] = task.output
    for target in flatten(output()):
        if isinstance(target, gokart.target.TargetOnKart):
            path = target.path()
        elif isinstance(target, luigi.target.FileSystemTarget):
            path = target.path
        else:
            return None
        if not isinstance(path, str) or path.endswith("/") or not (path.startswith("gs://") or "://" not in path):
            return None
        paths.append(path)
    return paths


def _split(path: str) -> tuple[str, str]:
    if path.startswith("gs://"):
        head, _, name = path.rpartition("/")
        return head, name
    full = os.path.abspath(path)
    return os.path.dirname(full), os.path.basename(full)


def _exists(directory: str, name: str) -> bool:
    """One name, as the listing would have it: an object or a "directory" (GCS), or a path that exists."""
    if directory.startswith("gs://"):
        from gokart_k8s.cache.gcs import gcs_filesystem

        return gcs_filesystem().exists(f"{directory}/{name}")
    return os.path.exists(os.path.join(directory, name))


def _list_directory(directory: str) -> set[str]:
    if directory.startswith("gs://"):
        from gokart_k8s.cache.gcs import gcs_filesystem  # GCS libraries only when gs:// is used

        return gcs_filesystem().list_children(directory)
    names: set[str] = set()
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                # os.path.exists (LocalTarget.exists) is False for a dangling symlink.
                if not entry.is_symlink() or os.path.exists(entry.path):
                    names.add(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return names
