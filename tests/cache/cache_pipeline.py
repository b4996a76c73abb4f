"""Small gokart pipelines the cache tests run, on a local directory or on gs://.

``Source -> Scale -> Train -> Report`` is the resume pipeline: ``Train`` is the long step that
checkpoints every epoch and can be told to pause after an epoch (so a test can kill it there).
Every ``run()`` appends a line to ``$GOKART_K8S_TEST_RUNLOG`` so a test can tell what ran.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import gokart
import luigi
import pandas as pd

import gokart_k8s.cache.checkpoints as checkpoints
from gokart_k8s import termination
from gokart_k8s.cache.gcs import install_gcs_filesystem


def _log_run(name: str, detail: str = "") -> None:
    path = os.environ.get("GOKART_K8S_TEST_RUNLOG")
    if path:
        with open(path, "a") as f:
            f.write(f"{name} {detail}".rstrip() + "\n")


class Source(gokart.TaskOnKart[pd.DataFrame]):
    n: int = luigi.IntParameter(default=5)

    def run(self) -> None:
        _log_run("Source")
        self.dump(pd.DataFrame({"x": list(range(self.n))}))


class Scale(gokart.TaskOnKart[pd.DataFrame]):
    source = gokart.TaskInstanceParameter()
    factor: int = luigi.IntParameter(default=2)

    def output(self) -> Any:
        return self.make_target("scale/scaled.csv")

    def run(self) -> None:
        _log_run("Scale")
        df = self.load("source")
        self.dump(df.assign(y=df["x"] * self.factor))


class Train(gokart.TaskOnKart[dict[str, Any]]):
    """A training loop: one checkpoint per epoch, resumable after SIGTERM or SIGKILL."""

    data = gokart.TaskInstanceParameter()
    epochs: int = luigi.IntParameter(default=6)

    def output(self) -> Any:
        return {
            "model": self.make_target("train/model.pkl"),
            "history": self.make_target("train/history.pkl"),
        }

    def run(self) -> None:
        df = self.load("data")
        ckpt = checkpoints.Checkpoint.of(self)
        state: dict[str, Any] = ckpt.restore() if ckpt.exists() else {"epoch": 0, "w": 0.0, "history": []}
        _log_run("Train", f"start={state['epoch']}")
        pause = Path(os.environ.get("GOKART_K8S_TEST_PAUSE_DIR", "/nonexistent"))
        pause_after = int(os.environ.get("GOKART_K8S_TEST_PAUSE_AFTER", "-1"))
        every = float(os.environ.get("GOKART_K8S_TEST_SAVE_EVERY", "0"))
        for epoch in range(state["epoch"], self.epochs):
            w = state["w"] + float(df["y"].sum()) / (epoch + 1)
            state = {"epoch": epoch + 1, "w": w, "history": [*state["history"], round(w, 6)]}
            ckpt.save(state, every=every)
            _log_run("Train", f"epoch={epoch + 1}")
            if epoch + 1 == pause_after:
                # Tell the test we are mid-way, then wait to be killed.
                (pause / "paused").write_text(str(epoch + 1))
                while True:
                    time.sleep(0.05)
        self.dump({"w": state["w"]}, "model")
        self.dump(state["history"], "history")


class Report(gokart.TaskOnKart[str]):
    train = gokart.TaskInstanceParameter()

    def output(self) -> Any:
        return self.make_target("report/report.txt")

    def run(self) -> None:
        _log_run("Report")
        model = self.load("train")["model"]
        self.dump(f"w={model['w']:.6f}")


def resume_pipeline(epochs: int = 6) -> Report:
    return Report(train=Train(data=Scale(source=Source()), epochs=epochs))


def main(workspace: str, temporary_directory: str) -> int:
    """What the in-pod command does, in small: install the cache and SIGTERM handling, build."""
    handler = termination.install_termination_handler(budget_seconds=10)
    if workspace.startswith("gs://"):
        install_gcs_filesystem()
    config = luigi.configuration.get_config()
    config.set("TaskOnKart", "workspace_directory", workspace)
    config.set("TaskOnKart", "local_temporary_directory", temporary_directory)
    try:
        gokart.build(resume_pipeline(), reset_register=False, log_level=logging.CRITICAL)
        code = 0
    except Exception:
        # Also how a StepTerminated caught by luigi arrives: exit_code_or() maps it to 143.
        traceback.print_exc()
        code = 1
    return handler.exit_code_or(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
