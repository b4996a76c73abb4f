"""Real processes for the driver's reliability scenarios: a cluster, drivers, the attempt log, the cache.

* :class:`Scenario` -- one directory per test with its luigi.cfg, attempt log and kubeconfig; it
  starts ``gokart-k8s local-cluster start`` as its own process (the cluster a user starts) and
  drivers as ``gokart-k8s run … --backend kubernetes`` processes against it, and stops them all.
* :class:`DriverProcess` -- a running driver: wait for a line of its output, send it a signal,
  wait for its exit status.
* :func:`read_attempts` and :func:`overlaps` -- the attempt log the steps write from inside their
  pods (:mod:`tests.reliability.driver_pipelines`): who ran, where it wrote, and whether two
  attempts of a step ever ran at once.
* :func:`cached_families` -- which steps have an output in a ``gs://`` cache, read from the GCS
  emulator's JSON API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from gokart_k8s.testing.gcs import FakeGCSServer
from tests.reliability.driver_pipelines import ATTEMPT_LOG_ENV

REPO = Path(__file__).resolve().parents[2]

#: Spot and on-demand pools on the gke-standard profile, so the on-demand fallback has somewhere to go.
BASE_CONFIG = """
[gokart_k8s]
platform = gke-standard
image = local/pipeline:test
backoff_limit = 0
termination_grace_seconds = 5
termination_budget_seconds = 2
watch_timeout_seconds = 30
request_timeout_seconds = 10

[gokart_k8s.pools.spot]
cpu = 4
memory = 16Gi
spot = true

[gokart_k8s.pools.ondemand]
cpu = 4
memory = 16Gi

# Between the Greedy step's 300Mi and the smallest built-in class (1Gi): out-of-memory advice
# must name it, the next class up in this catalog.
[gokart_k8s.resources.roomy]
cpu = 50m
memory = 700Mi
"""


def wait_until(predicate: object, timeout: float, what: str) -> None:
    """Poll ``predicate()`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class DriverProcess:
    """One ``gokart-k8s run`` process; its stdout and stderr go to files, read as they grow."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 120.0) -> None:
        """Wait until ``text`` appears in the driver's stderr (its progress lines)."""

        def seen() -> bool:
            if text in self.stderr:
                return True
            if self.process.poll() is not None:
                raise AssertionError(f"the driver exited ({self.process.returncode}) before {text!r}:\n{self.stderr}")
            return False

        wait_until(seen, timeout, f"{text!r} in the driver's output")

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 240.0) -> int:
        """The exit status (waiting at most ``timeout`` seconds: a driver that hangs fails the test)."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the driver did not exit within {timeout} s:\n{self.stderr}") from None


@dataclass
class Scenario:
    """A test's directory, its cluster process and its drivers (see the module docstring)."""

    root: Path
    storage_emulator: str = ""
    config: str = ""
    cluster: subprocess.Popen[bytes] | None = None
    drivers: list[DriverProcess] = field(default_factory=list)

    @property
    def attempt_log(self) -> Path:
        return self.root / "attempts.log"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def config_path(self) -> Path:
        return self.root / "luigi.cfg"

    def env(self, extra: Mapping[str, str] = ()) -> dict[str, str]:  # type: ignore[assignment]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_")}
        env.update(
            PYTHONPATH=str(REPO),
            LUIGI_CONFIG_PATH=str(self.config_path),
            KUBECONFIG=str(self.kubeconfig),
            GOKART_K8S_NAMESPACE="default",
        )
        if self.storage_emulator:
            env["STORAGE_EMULATOR_HOST"] = self.storage_emulator
        env.update(dict(extra))
        return env

    def start_cluster(self) -> None:
        """``gokart-k8s local-cluster start`` in the background; returns once its kubeconfig is written."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(BASE_CONFIG + self.config)
        pod_env = {ATTEMPT_LOG_ENV: str(self.attempt_log), "PYTHONPATH": str(REPO)}
        pod_env["LUIGI_CONFIG_PATH"] = str(self.config_path)
        if self.storage_emulator:
            pod_env["STORAGE_EMULATOR_HOST"] = self.storage_emulator
        argv = [sys.executable, "-m", "gokart_k8s", "local-cluster", "start", "--kubeconfig", str(self.kubeconfig)]
        for key, value in pod_env.items():
            argv += ["--pod-env", f"{key}={value}"]
        self.cluster = subprocess.Popen(
            argv,
            env=self.env(),
            cwd=self.root,
            stdout=open(self.root / "cluster.out", "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: self.kubeconfig.exists() and "export KUBECONFIG" in (self.root / "cluster.out").read_text(),
            60,
            "the local cluster to start",
        )

    def stop_cluster(self) -> None:
        if self.cluster is not None and self.cluster.poll() is None:
            self.cluster.send_signal(signal.SIGTERM)
            try:
                self.cluster.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.cluster.kill()
                self.cluster.wait()

    def run(self, task: str, *params: str, workspace: str, run_id: str, env: Mapping[str, str] = ()) -> DriverProcess:  # type: ignore[assignment]
        """Start a driver: ``gokart-k8s run TASK PARAMS --backend kubernetes --workspace … --run-id …``."""
        n = len(self.drivers)
        out, err = self.root / f"driver{n}.out", self.root / f"driver{n}.err"
        argv = [sys.executable, "-m", "gokart_k8s", "run", f"tests.reliability.driver_pipelines.{task}", *params]
        argv += ["--backend", "kubernetes", "--workspace", workspace, "--run-id", run_id, "--on-interrupt", "keep"]
        process = subprocess.Popen(
            argv,
            env=self.env(env),
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=open(out, "wb"),
            stderr=open(err, "wb"),
        )
        driver = DriverProcess(process, out, err)
        self.drivers.append(driver)
        return driver

    # --- the cluster's side ------------------------------------------------------------------

    def _api(self, method: str, path: str, body: object = None) -> dict[str, object]:
        config = yaml.safe_load(self.kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        token = config["users"][0]["user"].get("token", "")
        request = urllib.request.Request(
            server + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            data: dict[str, object] = json.loads(response.read() or b"{}")
            return data

    def jobs(self) -> dict[str, dict[str, object]]:
        items = self._api("GET", "/apis/batch/v1/namespaces/default/jobs")["items"]
        return {str(j["metadata"]["name"]): j for j in items}  # type: ignore[index, union-attr, attr-defined]

    def running_pods(self, job_prefix: str) -> list[str]:
        items = self._api("GET", "/api/v1/namespaces/default/pods")["items"]
        return [
            str(p["metadata"]["name"])  # type: ignore[index]
            for p in items  # type: ignore[attr-defined]
            if str(p["metadata"]["name"]).startswith(job_prefix) and p["status"].get("phase") == "Running"  # type: ignore[index]
        ]

    def evict(self, pod: str) -> None:
        """The Eviction API, as a node drain or the autoscaler uses it."""
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 1},
        }
        self._api("POST", f"/api/v1/namespaces/default/pods/{pod}/eviction", body)

    def close(self) -> None:
        for driver in self.drivers:
            if driver.process.poll() is None:
                driver.process.kill()
                driver.process.wait()
        self.stop_cluster()


@pytest.fixture
def scenario(tmp_path: Path) -> Iterator[Scenario]:
    made = Scenario(tmp_path / "scenario")
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def gcs_scenario(scenario: Scenario, gcs_emulator: FakeGCSServer) -> Scenario:
    scenario.storage_emulator = gcs_emulator.url
    return scenario


# --- the step side: the attempt log -----------------------------------------------------------


@dataclass(frozen=True)
class AttemptSpan:
    """One attempt of a step, from its pod's own log lines."""

    step: str
    workspace: str
    pid: int
    start: float
    last: float
    ended: bool


def read_attempts(path: Path) -> list[AttemptSpan]:
    if not path.exists():
        return []
    spans: dict[tuple[str, str, int], list[float]] = {}
    ended: set[tuple[str, str, int]] = set()
    order: list[tuple[str, str, int]] = []
    for line in path.read_text().splitlines():
        kind, step, workspace, pid, at = line.split("|")
        key = (step, workspace, int(pid))
        if key not in spans:
            spans[key] = []
            order.append(key)
        spans[key].append(float(at))
        if kind == "end":
            ended.add(key)
    return [AttemptSpan(k[0], k[1], k[2], min(spans[k]), max(spans[k]), k in ended) for k in order]


def overlaps(attempts: list[AttemptSpan]) -> list[tuple[AttemptSpan, AttemptSpan]]:
    """Pairs of attempts of the same step and cache whose lifetimes overlap: two at once."""
    found = []
    for i, a in enumerate(attempts):
        for b in attempts[i + 1 :]:
            if (a.step, a.workspace) == (b.step, b.workspace) and a.start < b.last and b.start < a.last:
                found.append((a, b))
    return found


# --- the cache ----------------------------------------------------------------------------------


def cached_families(emulator: str, workspace: str) -> set[str]:
    """Step families with an output object under ``workspace`` (``gs://bucket/prefix``)."""
    bucket, _, prefix = workspace.removeprefix("gs://").partition("/")
    query = urllib.parse.urlencode({"prefix": prefix.rstrip("/") + "/tests/reliability/driver_pipelines/"})
    with urllib.request.urlopen(f"{emulator}/storage/v1/b/{bucket}/o?{query}", timeout=10) as response:
        items = json.loads(response.read()).get("items") or []
    return {str(item["name"]).rsplit("/", 1)[-1].split("_")[0] for item in items if str(item["name"]).endswith(".pkl")}
