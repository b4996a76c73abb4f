"""Resume, shown: a pipeline killed mid-step reruns only what is missing, from its last checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gokart_k8s.cache.gcs import GCSFileSystem
from gokart_k8s.conventions import EXIT_EVICTED

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def _start(workspace: str, tmp: Path, runlog: Path, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
        "GOKART_K8S_TEST_RUNLOG": str(runlog),
        "GOKART_K8S_TEST_PAUSE_DIR": str(tmp),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, str(HERE / "cache_pipeline.py"), workspace, str(tmp / "tmp")],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _run(workspace: str, tmp: Path, runlog: Path, **env: str) -> int:
    process = _start(workspace, tmp, runlog, **env)
    _, err = process.communicate(timeout=120)
    assert process.returncode in (0, EXIT_EVICTED), err.decode()[-3000:]
    return process.returncode


def _run_and_kill(workspace: str, tmp: Path, runlog: Path, sig: signal.Signals, after_epoch: int, every: str) -> int:
    process = _start(
        workspace, tmp, runlog, GOKART_K8S_TEST_PAUSE_AFTER=str(after_epoch), GOKART_K8S_TEST_SAVE_EVERY=every
    )
    paused = tmp / "paused"
    deadline = time.monotonic() + 120
    while not paused.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
        assert time.monotonic() < deadline, "the step never reached the epoch to be killed at"
        time.sleep(0.05)
    paused.unlink()
    process.send_signal(sig)
    process.communicate(timeout=60)
    return process.returncode


def _outputs(workspace: str, *, checkpoints: bool = False) -> dict[str, bytes]:
    """Bytes of every step output (not gokart's log/ side files), by relative path."""
    if workspace.startswith("gs://"):
        fs = GCSFileSystem()
        paths = [p for p in fs.listdir(workspace)]
        read = fs.read_bytes
    else:
        paths = [str(p) for p in Path(workspace).rglob("*") if p.is_file()]

        def read(p: str) -> bytes:
            return Path(p).read_bytes()

    relative = {p[len(workspace) + 1 :]: p for p in paths}
    wanted = (
        ("gokart_k8s/",) if checkpoints else tuple(r for r in relative if not r.startswith(("log/", "gokart_k8s/")))
    )
    return {r: read(p) for r, p in relative.items() if r.startswith(wanted)}


def _lines(runlog: Path) -> list[str]:
    return runlog.read_text().splitlines() if runlog.exists() else []


@pytest.mark.parametrize(
    ("sig", "every", "resumes_at"),
    [
        # Checkpoints are throttled to one an hour, so only epoch 1 was saved by save(); SIGTERM
        # makes the handler write the latest state (epoch 3) before the process exits with 143.
        (signal.SIGTERM, "3600", 3),
        # SIGKILL gives no chance to save: the step resumes from the last checkpoint written (1).
        (signal.SIGKILL, "3600", 1),
    ],
    ids=["sigterm", "sigkill"],
)
@pytest.mark.parametrize("where", ["local", "gcs"])
def test_a_killed_pipeline_resumes_from_its_cache_and_last_checkpoint_with_identical_outputs(
    where: str, sig: signal.Signals, every: str, resumes_at: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if where == "gcs":
        bucket = request.getfixturevalue("gcs_bucket")
        reference_ws, workspace = f"gs://{bucket}/reference", f"gs://{bucket}/ws"
    else:
        reference_ws, workspace = str(tmp_path / "reference"), str(tmp_path / "ws")
    (tmp_path / "ref").mkdir()
    assert _run(reference_ws, tmp_path / "ref", tmp_path / "ref.log") == 0
    runlog = tmp_path / "run.log"

    killed = _run_and_kill(workspace, tmp_path, runlog, sig, after_epoch=3, every=every)
    before_rerun = _lines(runlog)
    rerun = _run(workspace, tmp_path, runlog)

    assert killed == (EXIT_EVICTED if sig == signal.SIGTERM else -signal.SIGKILL)
    assert before_rerun[:3] == ["Source", "Scale", "Train start=0"]
    after = _lines(runlog)[len(before_rerun) :]
    assert rerun == 0
    assert after[0] == f"Train start={resumes_at}"  # not from zero, and Source/Scale did not run again
    assert "Source" not in after and "Scale" not in after
    assert after[-1] == "Report"
    assert _outputs(workspace) == _outputs(reference_ws)
    assert len(_outputs(workspace)) == 5  # source, scaled csv, model, history, report
    assert _outputs(workspace, checkpoints=True) == {}  # deleted once Train succeeded
