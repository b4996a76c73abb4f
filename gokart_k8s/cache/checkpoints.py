"""Checkpoints: the intermediate state of a long step, so a restarted attempt continues.

Shape (after flytekit's ``prev_exists/restore/save`` and Metaflow's ``@checkpoint``)::

    class Train(gokart.TaskOnKart):
        def run(self):
            ckpt = gokart_k8s.Checkpoint.of(self)
            state = ckpt.restore() if ckpt.exists() else {"epoch": 0, "w": init()}
            for epoch in range(state["epoch"], 100):
                w = step(state["w"])
                state = {"epoch": epoch + 1, "w": w}
                ckpt.save(state, every=60)   # at most once a minute; SIGTERM saves the latest
            self.dump(w)                     # checkpoints are deleted once the step succeeds

Keyed by content, not by attempt: the location is
``<workspace_directory>/gokart_k8s/checkpoints/<task family>_<unique_id>/``, so an identical
step in a *new* run resumes, and a step whose parameters or inputs changed (another unique id)
never sees stale state. The workspace may be a local directory or ``gs://``.

Atomic: each save is a new file ``ckpt-<sequence>.pkl`` written in one piece (local: temporary
file + ``os.replace``; GCS: one create-only upload, visible only when complete,
https://cloud.google.com/storage/docs/consistency). The latest is the highest sequence number in
a plain prefix listing (never ``match_glob``), so a save cut short by SIGKILL is never loaded; the
previous one is kept until the next save succeeds (``keep=2``).

Values are pickled: restore them with the same code, like gokart's own ``.pkl`` cache.

SIGTERM: with :func:`gokart_k8s.termination.install_termination_handler` installed, every live
checkpoint saves its final state before the step stops: the value of its ``on_termination``
provider if one is set, else the last state ``save(..., every=...)`` skipped. That state is
pickled at SIGTERM time, so pass fresh objects to ``save`` (not arrays updated in place later)
if skipped states must be self-consistent.

Cleanup: a ``luigi.Event.SUCCESS`` handler deletes the checkpoints of every step that opened
one in this process, once its outputs are committed (luigi fires SUCCESS only after ``run()``
returned and ``complete()`` is true). :func:`clear_checkpoints` does the same for any task and is
what a runner calls when it finds a step already complete.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import tempfile
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Protocol

import gokart
import luigi

from gokart_k8s import termination
from gokart_k8s.errors import CacheError

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Checkpoint", "checkpoint_location", "clear_checkpoints"]

_NAME_RE = re.compile(r"^ckpt-(\d{10})\.pkl$")
_MISSING: Any = object()


class _Store(Protocol):
    def names(self) -> set[str]: ...
    def create(self, name: str, data: bytes) -> bool: ...
    def read(self, name: str) -> bytes: ...
    def delete(self, name: str) -> None: ...
    def delete_all(self) -> None: ...


class _LocalStore:
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def names(self) -> set[str]:
        try:
            return set(os.listdir(self.directory))
        except FileNotFoundError:
            return set()

    def create(self, name: str, data: bytes) -> bool:
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, name)
        if os.path.exists(final):
            return False
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".partial")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())  # the bytes are on disk before the name appears
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return True

    def read(self, name: str) -> bytes:
        with open(os.path.join(self.directory, name), "rb") as f:
            return f.read()

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.directory, name))

    def delete_all(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _GCSStore:
    def __init__(self, location: str) -> None:
        from gokart_k8s.cache.gcs import gcs_filesystem  # GCS libraries only for gs://

        self.location = location.rstrip("/")
        self.fs = gcs_filesystem()

    def names(self) -> set[str]:
        return self.fs.list_children(self.location)

    def create(self, name: str, data: bytes) -> bool:
        return self.fs.write_new(f"{self.location}/{name}", data)

    def read(self, name: str) -> bytes:
        return self.fs.read_bytes(f"{self.location}/{name}")

    def delete(self, name: str) -> None:
        self.fs.remove(f"{self.location}/{name}", recursive=False)

    def delete_all(self) -> None:
        self.fs.remove(self.location, recursive=True)


def checkpoint_location(task: luigi.Task, name: str = "") -> str:
    """``<workspace>/gokart_k8s/checkpoints/<family>_<unique_id>[/<name>]`` for a gokart task."""
    if not isinstance(task, gokart.TaskOnKart):
        raise CacheError(
            f"Checkpoint.of({type(task).__name__}): checkpoints are keyed by a gokart unique id, "
            f"so the step must be a gokart.TaskOnKart; use Checkpoint(location) for other tasks."
        )
    if name and not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise CacheError(f"Checkpoint name {name!r} must use only letters, digits, '_', '.' and '-'.")
    workspace = str(task.workspace_directory).rstrip("/")
    key = f"{task.get_task_family()}_{task.make_unique_id()}"
    parts = [workspace, "gokart_k8s", "checkpoints", key, *([name] if name else [])]
    return "/".join(parts) if workspace.startswith("gs://") else os.path.join(*parts)


class Checkpoint:
    """Save and restore the intermediate state of one step. See the module docstring."""

    def __init__(self, location: str, *, keep: int = 2) -> None:
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}.")
        self.location = location
        self.keep = keep
        self._store: _Store = _GCSStore(location) if location.startswith("gs://") else _LocalStore(location)
        self._sequence: int | None = None
        self._last_save: float | None = None
        self._pending: Any = _MISSING
        self._provider: Callable[[], Any] | None = None
        self._lock = threading.RLock()
        ref = weakref.ref(self)
        self._remove_hook = termination.add_termination_hook(lambda: _flush(ref))
        weakref.finalize(self, self._remove_hook)

    @classmethod
    def of(cls, task: luigi.Task, name: str = "", *, keep: int = 2) -> Checkpoint:
        """The checkpoint of ``task`` (optionally a named one, for steps with several)."""
        checkpoint = cls(checkpoint_location(task, name), keep=keep)
        with _registry_lock:
            _opened.setdefault(task.task_id, []).append(checkpoint)
        return checkpoint

    def _sequences(self) -> list[int]:
        found = (_NAME_RE.match(n) for n in self._store.names())
        return sorted(int(m.group(1)) for m in found if m)

    def exists(self) -> bool:
        """True if a complete checkpoint was saved (by this or an earlier attempt)."""
        return bool(self._sequences())

    def restore(self, default: Any = _MISSING) -> Any:
        """The latest saved state; ``default`` (or :class:`CacheError`) if there is none."""
        with self._lock:
            sequences = self._sequences()
            self._sequence = max(sequences, default=self._sequence or 0)
            errors: list[str] = []
            for sequence in reversed(sequences):
                try:
                    return pickle.loads(self._store.read(_name(sequence)))
                except (FileNotFoundError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
                    errors.append(f"{_name(sequence)}: {type(exc).__name__}: {exc}")
            if default is not _MISSING:
                return default
            if errors:
                raise CacheError(
                    f"No checkpoint in {self.location} can be loaded ({'; '.join(errors)}). They were "
                    f"pickled by other code; delete that directory to start the step from scratch."
                )
            raise CacheError(f"No checkpoint saved in {self.location}; test exists() first or pass a default.")

    def save(self, state: Any, *, every: float = 0.0) -> bool:
        """Save ``state`` atomically; with ``every``, at most once per ``every`` seconds.

        Returns True if written now. A skipped state is remembered and written on SIGTERM.
        """
        with self._lock:
            now = time.monotonic()
            if every > 0 and self._last_save is not None and now - self._last_save < every:
                self._pending = state
                return False
            self._write(state)
            return True

    def on_termination(self, provider: Callable[[], Any] | None) -> None:
        """On SIGTERM, save ``provider()`` as the final checkpoint (None: the last skipped state)."""
        self._provider = provider

    def clear(self) -> None:
        """Delete every checkpoint of this step (done automatically once the step succeeds)."""
        with self._lock:
            self._store.delete_all()
            self._sequence = 0
            self._pending = _MISSING

    def _write(self, state: Any) -> None:
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        with termination.critical_section():
            if self._sequence is None:
                self._sequence = max(self._sequences(), default=0)
            for _ in range(5):
                self._sequence += 1
                if self._store.create(_name(self._sequence), data):
                    break
                # Another attempt of the same step took this number: list again and go past it.
                self._sequence = max(self._sequences(), default=self._sequence)
            else:
                raise CacheError(
                    f"Could not save a checkpoint in {self.location}: another process keeps writing "
                    f"there. Two attempts of one step are running; stop the older one."
                )
            self._last_save = time.monotonic()
            self._pending = _MISSING
            for sequence in self._sequences():
                if sequence <= self._sequence - self.keep:
                    self._store.delete(_name(sequence))

    def _flush_final(self) -> None:
        with self._lock:
            if self._provider is not None:
                self._write(self._provider())
            elif self._pending is not _MISSING:
                self._write(self._pending)


def _name(sequence: int) -> str:
    return f"ckpt-{sequence:010d}.pkl"


def _flush(ref: weakref.ref[Checkpoint]) -> None:
    checkpoint = ref()
    if checkpoint is not None:
        checkpoint._flush_final()


_registry_lock = threading.Lock()
_opened: dict[str, list[Checkpoint]] = {}


def clear_checkpoints(task: luigi.Task) -> None:
    """Delete the checkpoints of ``task`` (all names). Call once its outputs are committed."""
    with _registry_lock:
        opened = _opened.pop(task.task_id, [])
    for checkpoint in opened:
        checkpoint.clear()
    if isinstance(task, gokart.TaskOnKart):
        location = checkpoint_location(task)
        store: _Store = _GCSStore(location) if location.startswith("gs://") else _LocalStore(location)
        store.delete_all()


def _clear_after_success(task: luigi.Task) -> None:
    # Only steps that opened a checkpoint in this process: no listing for every other step.
    with _registry_lock:
        opened = task.task_id in _opened
    if opened:
        clear_checkpoints(task)


# Registered on luigi.Task, so it fires for every step; luigi's decorator is untyped.
_event_handler: Any = luigi.Task.event_handler
_event_handler(luigi.Event.SUCCESS)(_clear_after_success)
