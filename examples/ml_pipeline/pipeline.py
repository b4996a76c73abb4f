"""A small but complete ML pipeline: load -> features -> train -> evaluate -> report.

Data is generated (a seeded two-class problem), so the example needs no download. The steps
declare different needs, the way a real team's pipeline would:

=================  ==============  ==========  ==============================================
step               resource class  eviction    why
=================  ==============  ==========  ==============================================
LoadData           small           tolerate    cheap, quick; Spot is fine
BuildFeatures      standard        tolerate    moderate; resumes from cache if evicted
TrainModel         highcpu         tolerate    long; saves a checkpoint every epoch, so an
                                               eviction costs at most one epoch
EvaluateModel      highmem         protect     big and must not be interrupted (on-demand)
Report             small           tolerate    tiny
=================  ==============  ==========  ==============================================

Run it::

    gokart-k8s run examples.ml_pipeline.pipeline.Report                     # plain gokart, here
    gokart-k8s run examples.ml_pipeline.pipeline.Report --backend local-cluster --chaos
    gokart-k8s plan examples.ml_pipeline.pipeline.Report --platform gke-standard
"""

from __future__ import annotations

import json
import time
from typing import Any

import gokart
import luigi
import numpy as np

import gokart_k8s


@gokart_k8s.job(resources="small", eviction="tolerate")
class LoadData(gokart.TaskOnKart[Any]):
    """Generate a seeded two-class data set (stands in for reading a table)."""

    n_samples: int = luigi.IntParameter(default=20000)
    seed: int = luigi.IntParameter(default=7)

    def run(self) -> None:
        rng = np.random.default_rng(self.seed)
        n = self.n_samples
        y = rng.integers(0, 2, size=n)
        centers = np.where(y[:, None] == 1, 1.0, -1.0) * np.array([0.8, -0.5, 0.3, 0.0, 0.6])
        x = centers + rng.normal(scale=1.2, size=(n, 5))
        self.dump({"x": x, "y": y})


@gokart_k8s.job(resources="standard", eviction="tolerate")
class BuildFeatures(gokart.TaskOnKart[Any]):
    """Standardise the columns and add pairwise products."""

    data: gokart.TaskOnKart[Any] = gokart.TaskInstanceParameter()

    def requires(self) -> gokart.TaskOnKart[Any]:
        return self.data

    def run(self) -> None:
        data = self.load()
        x = data["x"]
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        pairs = np.stack([x[:, i] * x[:, j] for i in range(x.shape[1]) for j in range(i + 1, x.shape[1])], axis=1)
        features = np.concatenate([x, pairs, np.ones((x.shape[0], 1))], axis=1)
        split = int(0.8 * len(features))
        self.dump({"train": (features[:split], data["y"][:split]), "test": (features[split:], data["y"][split:])})


@gokart_k8s.job(resources="highcpu", eviction="tolerate", max_runtime="2h")
class TrainModel(gokart.TaskOnKart[Any]):
    """Logistic regression by full-batch gradient descent, one checkpoint per epoch.

    Deterministic: the same input and the same number of epochs give byte-identical weights,
    whether or not the step was evicted and resumed from a checkpoint in between.
    """

    features: gokart.TaskOnKart[Any] = gokart.TaskInstanceParameter()
    epochs: int = luigi.IntParameter(default=30)
    learning_rate: float = luigi.FloatParameter(default=0.5)
    #: Stands in for the minutes an epoch takes on real data, so eviction has something to lose (and
    #: the README's chaos rehearsal, default seed and rate, has time to evict it: 12 s of training).
    seconds_per_epoch: float = luigi.FloatParameter(default=0.4, significant=False)

    def requires(self) -> gokart.TaskOnKart[Any]:
        return self.features

    def run(self) -> None:
        x, y = self.load()["train"]
        checkpoint = gokart_k8s.Checkpoint.of(self)
        if checkpoint.exists():
            state = checkpoint.restore()
            print(f"resuming from checkpoint at epoch {state['epoch']}", flush=True)
        else:
            state = {"epoch": 0, "w": np.zeros(x.shape[1])}
        w = state["w"]
        for epoch in range(state["epoch"], self.epochs):
            p = 1.0 / (1.0 + np.exp(-(x @ w)))
            w = w - self.learning_rate * (x.T @ (p - y)) / len(y)
            time.sleep(self.seconds_per_epoch)
            checkpoint.save({"epoch": epoch + 1, "w": w})
            print(f"epoch {epoch + 1}/{self.epochs}", flush=True)
        self.dump({"w": w, "epochs": self.epochs})


@gokart_k8s.job(resources="highmem", eviction="protect")
class EvaluateModel(gokart.TaskOnKart[Any]):
    """Accuracy and log-loss on the held-out split."""

    features: gokart.TaskOnKart[Any] = gokart.TaskInstanceParameter()
    model: gokart.TaskOnKart[Any] = gokart.TaskInstanceParameter()

    def requires(self) -> dict[str, gokart.TaskOnKart[Any]]:
        return {"features": self.features, "model": self.model}

    def run(self) -> None:
        x, y = self.load("features")["test"]
        w = self.load("model")["w"]
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        eps = 1e-12
        self.dump(
            {
                "accuracy": round(float(np.mean((p > 0.5) == y)), 6),
                "log_loss": round(float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))), 6),
                "n_test": len(y),
            }
        )


@gokart_k8s.job(resources="small")
class Report(gokart.TaskOnKart[str]):
    """A short text report (the pipeline's final output)."""

    n_samples: int = luigi.IntParameter(default=20000)
    epochs: int = luigi.IntParameter(default=30)

    def requires(self) -> gokart.TaskOnKart[Any]:
        features = BuildFeatures(data=LoadData(n_samples=self.n_samples))
        model = TrainModel(features=features, epochs=self.epochs)
        return EvaluateModel(features=features, model=model)

    def output(self) -> Any:
        return self.make_target("ml_pipeline/report.txt")

    def run(self) -> None:
        metrics = self.load()
        self.dump(json.dumps({"samples": self.n_samples, "epochs": self.epochs, **metrics}, sort_keys=True))
