"""A driver killed mid-run leaves a readable record; the rerun adopts its Jobs and continues the record."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gokart_k8s.history import RecordNotFoundError, load_record
from gokart_k8s.history.store import open_store
from gokart_k8s.platforms import get_profile
from gokart_k8s.settings import Settings
from gokart_k8s.testing.cluster import ClusterFactory, wait_for
from gokart_k8s.testing.gcs import FakeGCSServer

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "examples.ml_pipeline.pipeline.Report"

pytest_plugins = ["gokart_k8s.testing.cluster", "gokart_k8s.testing.gcs"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_the_rerun_of_a_sigkilled_driver_reports_both_drivers_attempts(
    gcs_emulator: FakeGCSServer, gcs_bucket: str, local_cluster_factory: ClusterFactory, tmp_path: Path
) -> None:
    workspace = f"gs://{gcs_bucket}/ws"
    shared = {
        "PYTHONPATH": str(REPO),
        "STORAGE_EMULATOR_HOST": gcs_emulator.url,
        "LUIGI_CONFIG_PATH": str(REPO / "examples" / "ml_pipeline" / "luigi.cfg"),
    }
    # A cluster that outlives the driver (the local-cluster backend's embedded one would die with it).
    cluster = local_cluster_factory(get_profile(Settings(platform="gke-standard")).pools(), pod_env=shared)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_")}
    env.update(shared, KUBECONFIG=str(cluster.write_kubeconfig(tmp_path / "kubeconfig")))
    argv = [sys.executable, "-m", "gokart_k8s", "run", EXAMPLE, "--backend", "kubernetes", "--image", "local/x:1"]
    argv += ["--run-id", "nightly", "--workspace", workspace, "--on-interrupt", "keep", "--no-logs"]
    store = open_store(workspace)

    def training() -> bool:
        try:
            record = load_record(store, "nightly")
        except RecordNotFoundError:
            return False
        return any(a.started for s in record.steps if s.family == "TrainModel" for a in s.attempts)

    first = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(training, timeout=240, what="TrainModel to start under the first driver", interval=0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        _, err = first.communicate(timeout=60)
    partial = load_record(store, "nightly")
    assert partial.state == "running" and partial.end is None, err.decode()[-2000:]
    (killed,) = partial.drivers
    states = {s.family: s.state for s in partial.steps}
    assert states["LoadData"] == states["BuildFeatures"] == "succeeded"
    assert states["EvaluateModel"] == states["Report"] == "pending"

    again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    record = load_record(store, "nightly")
    (lost, finished) = record.drivers
    assert (lost.id, lost.state, finished.state, record.state) == (killed.id, "lost", "succeeded", "succeeded")
    assert all(s.state == "succeeded" for s in record.steps)
    by_driver = Counter(a.driver for s in record.steps for a in s.attempts)
    steps_of = {d: {s.family for s in record.steps for a in s.attempts if a.driver == d} for d in by_driver}
    assert {"LoadData", "BuildFeatures", "TrainModel"} <= steps_of[killed.id]
    assert {"EvaluateModel", "Report"} <= steps_of[finished.id]
    assert all(a.ended is not None for s in record.steps for a in s.attempts)

    page = tmp_path / "nightly.html"
    shown = subprocess.run(
        [sys.executable, "-m", "gokart_k8s", "report", "nightly", "--workspace", workspace, "-o", str(page)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    html = page.read_text()
    assert html.count('<g class="attempt"') == sum(by_driver.values())
    assert f"driver {killed.id}" in html and f"driver {finished.id}" in html
