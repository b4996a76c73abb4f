"""Pytest fixtures for the embedded local Kubernetes cluster.

Add ``pytest_plugins = ["gokart_k8s.testing.cluster"]`` to a ``conftest.py`` and use:

- ``local_cluster``: a started :class:`~gokart_k8s.localcluster.LocalCluster` with the default
  pool, stopped after the test; the test fails if a pod process outlives it.
- ``local_cluster_factory``: ``make(pools=..., chaos=..., **options) -> LocalCluster`` for custom
  pools, chaos or clocks; every cluster made is stopped after the test.
- ``local_cluster_api``: a ``kubernetes.client.ApiClient`` for ``local_cluster``.
- :func:`wait_for`: poll until a predicate on the cluster's state is truthy, with a deadline.
- :func:`cluster_command`: ``gokart-k8s local-cluster start`` as a process, for kubectl and clients
  of its kubeconfig; stopped with SIGTERM at the end of the block, its output kept.

The clusters listen on 127.0.0.1 only and need no network. What they emulate is documented in
``docs/local-cluster.md``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from ..localcluster import LocalCluster

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

ClusterFactory = Callable[..., LocalCluster]
T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    what: str = "condition",
    *,
    interval: float = 0.05,
    failure: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate()`` every ``interval`` seconds until it is truthy and return its value.

    After ``timeout`` seconds raise ``AssertionError`` with ``failure()`` as message (computed only
    then, so it may describe the cluster's state), or ``timed out after <timeout>s waiting for <what>``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(failure() if failure else f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's pid reused
        return True
    # A zombie is gone for our purposes (its parent reaps it).
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_and_check(cluster: LocalCluster) -> None:
    """Stop ``cluster`` and fail if any pod process it started is still alive."""
    pids = cluster.running_pids()
    cluster.stop()
    leftovers = [pid for pid in pids if _alive(pid)]
    assert not leftovers, f"pod processes outlived the local cluster: {leftovers}"


@pytest.fixture
def local_cluster_factory() -> Iterator[ClusterFactory]:
    """Make started clusters with any LocalCluster arguments; all are stopped after the test."""
    made: list[LocalCluster] = []

    def make(*args: Any, **kwargs: Any) -> LocalCluster:
        cluster = LocalCluster(*args, **kwargs).start()
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        stop_and_check(cluster)


@pytest.fixture
def local_cluster(local_cluster_factory: ClusterFactory) -> LocalCluster:
    """A started local cluster with the default pool (this machine's CPUs and memory)."""
    return local_cluster_factory()


@pytest.fixture
def local_cluster_api(local_cluster: LocalCluster) -> Iterator[ApiClient]:
    """A ``kubernetes.client.ApiClient`` talking to ``local_cluster`` over HTTP."""
    client = local_cluster.api_client()
    yield client
    client.close()


@dataclass
class ClusterCommand:
    """A running ``gokart-k8s local-cluster start``: its process and kubeconfig; ``output`` (stdout
    and stderr) and ``returncode`` once the block has stopped it."""

    process: subprocess.Popen[str]
    kubeconfig: Path
    output: str = ""
    returncode: int | None = None


@contextlib.contextmanager
def cluster_command(cwd: Path, env: Mapping[str, str], *args: str, timeout: float = 120.0) -> Iterator[ClusterCommand]:
    """Start ``gokart-k8s local-cluster start --kubeconfig <cwd>/kubeconfig [args]`` and yield once
    its kubeconfig exists (the cluster answers by then); SIGTERM it when the block ends."""
    kubeconfig = cwd / "kubeconfig"
    argv = [sys.executable, "-m", "gokart_k8s", "local-cluster", "start", "--kubeconfig", str(kubeconfig), *args]
    process = subprocess.Popen(
        argv, cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    started = ClusterCommand(process, kubeconfig)
    deadline = time.monotonic() + timeout
    while not kubeconfig.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    if not kubeconfig.exists():
        process.kill()
        printed, _ = process.communicate(timeout=60)
        raise AssertionError(f"local-cluster start wrote no kubeconfig in {timeout:g}s:\n{printed}")
    try:
        yield started
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        started.output, _ = process.communicate(timeout=60)
        started.returncode = process.returncode
