"""Pipelines of unusual input for the plan and run tests: luigi's own task kinds, unserialisable values.

``Tally`` is a plain ``luigi.Task``: it needs ``RawData``, a ``luigi.ExternalTask`` (an input
something outside the pipeline makes, at ``path`` relative to the working directory), and
``Stopwords``, a gokart step, and writes its own ``LocalTarget``. (A gokart task cannot need a plain
luigi task: gokart's ``dump`` asks each requirement's target for ``path()``, which luigi's targets
do not have.)
"""

from __future__ import annotations

from typing import Any

import gokart
import luigi
import numpy as np


class RawData(luigi.ExternalTask):  # type: ignore[misc]  # luigi is untyped
    """Made outside the pipeline: gokart-k8s checks it exists, and never runs it."""

    path: str = luigi.Parameter()  # type: ignore[assignment]  # luigi parameters are descriptors

    def output(self) -> Any:
        return luigi.LocalTarget(self.path)


class Stopwords(gokart.TaskOnKart[list[str]]):
    def run(self) -> None:
        self.dump(["a", "the"])


class Tally(luigi.Task):  # type: ignore[misc]
    """A plain luigi task: counts the words of its input that are not stop words, into its own file."""

    path: str = luigi.Parameter()  # type: ignore[assignment]

    def requires(self) -> Any:
        return {"raw": RawData(path=self.path), "stopwords": Stopwords()}

    def output(self) -> Any:
        return luigi.LocalTarget(f"{self.path}.tally")

    def run(self) -> None:
        stopwords = set(self.input()["stopwords"].load())
        with self.input()["raw"].open() as source, self.output().open("w") as out:
            out.write(str(len([w for w in source.read().split() if w not in stopwords])))


class Weighted(gokart.TaskOnKart[Any]):
    weights: dict[str, Any] = luigi.DictParameter()  # type: ignore[assignment]

    def run(self) -> None:
        self.dump(sum(self.weights["w"]))


class BuildsWeighted(gokart.TaskOnKart[Any]):
    """Makes its requirement with a numpy array in a DictParameter: luigi cannot write it as a string."""

    def requires(self) -> Any:
        return Weighted(weights={"w": np.arange(3)})

    def run(self) -> None:
        self.dump(self.load())


class QuietlyWeighted(gokart.TaskOnKart[Any]):
    """The same value in an insignificant parameter: the task is made, but cannot travel to a pod."""

    weights: dict[str, Any] = luigi.DictParameter(significant=False)  # type: ignore[assignment]

    def run(self) -> None:
        self.dump(1)


class BuildsQuietlyWeighted(gokart.TaskOnKart[Any]):
    def requires(self) -> Any:
        return QuietlyWeighted(weights={"w": np.arange(3)})

    def run(self) -> None:
        self.dump(self.load())
