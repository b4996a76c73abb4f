"""Where run records live: ``<workspace>/gokart_k8s/runs/<run-id>/``, a local directory or gs://.

Layout of one run::

    runs/<run-id>/record.json             the folded record, rewritten every few seconds (a snapshot)
    runs/<run-id>/events/<driver>.jsonl   local: one append-only file per driver
    runs/<run-id>/events/<driver>/<n>.jsonl   gs://: one create-only object per flush of a driver
    runs/<run-id>/report.html             the report, written when a driver ends

GCS objects cannot be appended to, so on gs:// each flush of a driver's events is a new object
written create-only (``if_generation_match=0``), visible only once complete
(https://cloud.google.com/storage/docs/consistency); on a local disk the driver appends lines to
its own file and fsyncs. Either way two drivers never write the same file, and a driver killed
mid-flush leaves at worst one incomplete last line, which the reader skips.

The snapshot is rewritten in one piece (local: temporary file + ``os.replace``; GCS: one upload),
so a reader sees the old or the new snapshot, never half of one. It lets ``gokart-k8s runs`` read
one object per run; the report folds the events, which are the truth.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["RecordStore", "open_store", "runs_location"]

SNAPSHOT = "record.json"
REPORT = "report.html"
EVENTS = "events"


def runs_location(workspace: str) -> str:
    """``<workspace>/gokart_k8s/runs``."""
    return _join(workspace, "gokart_k8s", "runs")


def _join(base: str, *parts: str) -> str:
    if "://" in base:
        return "/".join([base.rstrip("/"), *parts])
    return os.path.join(base, *parts)


class RecordStore(Protocol):
    """The few operations a run record needs, on a local directory or a bucket."""

    location: str

    def run_ids(self) -> list[str]: ...
    def append_events(self, run_id: str, driver: str, sequence: int, data: bytes) -> None: ...
    def read_events(self, run_id: str) -> list[bytes]: ...
    def write(self, run_id: str, name: str, data: bytes) -> str: ...
    def read(self, run_id: str, name: str) -> bytes | None: ...
    def path(self, run_id: str, name: str) -> str: ...


class LocalStore:
    def __init__(self, location: str) -> None:
        self.location = location

    def path(self, run_id: str, name: str) -> str:
        return os.path.join(self.location, run_id, name)

    def run_ids(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.location) if os.path.isdir(os.path.join(self.location, n)))
        except FileNotFoundError:
            return []

    def append_events(self, run_id: str, driver: str, sequence: int, data: bytes) -> None:
        directory = self.path(run_id, EVENTS)
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"{driver}.jsonl"), "ab") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def read_events(self, run_id: str) -> list[bytes]:
        directory = self.path(run_id, EVENTS)
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                out.append(f.read())
        return out

    def write(self, run_id: str, name: str, data: bytes) -> str:
        final = self.path(run_id, name)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(final), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for everyone who can read the cache
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return final

    def read(self, run_id: str, name: str) -> bytes | None:
        try:
            with open(self.path(run_id, name), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None


class GCSStore:
    def __init__(self, location: str) -> None:
        from gokart_k8s.cache.gcs import GCSFileSystem  # GCS libraries only for gs://

        self.location = location.rstrip("/")
        # Its own client, made as gokart's is (make_storage_client: emulator, key, or Workload
        # Identity), from the environment of the moment rather than one cached earlier.
        self.fs = GCSFileSystem()
        # The snapshot and report are rewritten: a second filesystem on the same client, for which
        # every path is last-writer-wins instead of create-only.
        self._rewriting = GCSFileSystem(self.fs.storage_client, rewritable=lambda path: True)

    def path(self, run_id: str, name: str) -> str:
        return f"{self.location}/{run_id}/{name}"

    def run_ids(self) -> list[str]:
        return sorted(self.fs.list_children(self.location))

    def append_events(self, run_id: str, driver: str, sequence: int, data: bytes) -> None:
        self.fs.write_new(self.path(run_id, f"{EVENTS}/{driver}/{sequence:08d}.jsonl"), data)

    def read_events(self, run_id: str) -> list[bytes]:
        return [self.fs.read_bytes(p) for p in sorted(self.fs.listdir(self.path(run_id, EVENTS)))]

    def write(self, run_id: str, name: str, data: bytes) -> str:
        path = self.path(run_id, name)
        self._rewriting.put_string(data, path)
        return path

    def read(self, run_id: str, name: str) -> bytes | None:
        try:
            return self.fs.read_bytes(self.path(run_id, name))
        except FileNotFoundError:
            return None


def open_store(workspace: str) -> RecordStore:
    """The run records of ``workspace`` (a local directory or ``gs://bucket/prefix``)."""
    location = runs_location(workspace)
    if location.startswith("gs://"):
        return GCSStore(location)
    return LocalStore(location)


def parse_events(chunks: list[bytes]) -> Iterator[dict[str, Any]]:
    """Every complete event line; a line cut short by a killed driver is skipped."""
    for chunk in chunks:
        for line in chunk.splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                yield event
