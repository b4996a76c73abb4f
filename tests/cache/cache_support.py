"""Helpers shared by the cache tests (a unique module name: tests/ directories share sys.path)."""

from __future__ import annotations

from typing import Any

import luigi
from google.cloud.storage.retry import DEFAULT_RETRY

#: Fast backoff so injected faults do not cost the library's 1 s first delay.
# Derived from DEFAULT_RETRY: its predicate also knows the media (upload/download) errors.
FAST_RETRY = DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.1, multiplier=2.0).with_timeout(30.0)


def use_workspace(workspace: str) -> str:
    """Make ``workspace`` gokart's default workspace_directory (set before creating tasks)."""
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", workspace)
    return workspace


def race_to_commit(emulator_url: str, bucket: str, index: int, start: Any) -> tuple[bool, bytes, bytes]:
    """One racer (run in its own spawned process): commit, then read back what is there.

    Returns (won the create-only checkpoint-style write, bytes at the checkpoint path after the
    race, bytes at the gokart-style output path after its own ``put``).
    """
    import os

    from gokart_k8s.cache.gcs import GCSFileSystem

    os.environ["STORAGE_EMULATOR_HOST"] = emulator_url
    fs = GCSFileSystem(retry=FAST_RETRY)
    payload = racer_payload(index)
    start.wait(60)
    won = fs.write_new(f"gs://{bucket}/race/ckpt.bin", payload)
    fs.put_string(payload, f"gs://{bucket}/race/output.pkl")
    return won, fs.read_bytes(f"gs://{bucket}/race/ckpt.bin"), fs.read_bytes(f"gs://{bucket}/race/output.pkl")


def racer_payload(index: int) -> bytes:
    """1 MiB that differs per racer in every block, so a mixed or partial object would show."""
    return bytes([index]) * (1 << 20)
