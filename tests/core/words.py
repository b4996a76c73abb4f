"""A three-step pipeline whose inner steps are configured only by luigi's class-level parameters.

``TopWords`` builds ``CountWords()`` in ``requires()`` and ``CountWords`` builds ``ReadText()``: their
parameters can only come from ``--CountWords-chunk 50`` style arguments (or luigi.cfg), exactly the
case where a graph resolved outside luigi's command-line context silently uses the defaults.
"""

from __future__ import annotations

from typing import Any

import gokart
import luigi


class ReadText(gokart.TaskOnKart[Any]):
    lines: int = luigi.IntParameter(default=12)

    def run(self) -> None:
        self.dump([f"w{i % 7} w{i % 3}" for i in range(self.lines)])


class CountWords(gokart.TaskOnKart[Any]):
    chunk: int = luigi.IntParameter(default=20)
    #: Insignificant: not in the unique id, but it must still reach the step (here: into its output).
    delay: float = luigi.FloatParameter(default=0.0, significant=False)

    def requires(self) -> gokart.TaskOnKart[Any]:
        return ReadText()

    def run(self) -> None:
        words = [w for line in self.load() for w in line.split()]
        print(f"counting {len(words)} words in chunks of {self.chunk} (delay {self.delay})")
        self.dump({"chunk": self.chunk, "delay": self.delay, "counts": {w: words.count(w) for w in sorted(set(words))}})


class TopWords(gokart.TaskOnKart[Any]):
    top: int = luigi.IntParameter(default=3)

    def requires(self) -> gokart.TaskOnKart[Any]:
        return CountWords()

    def run(self) -> None:
        counted = self.load()
        ranked = sorted(counted["counts"].items(), key=lambda kv: (-kv[1], kv[0]))[: self.top]
        self.dump({"chunk": counted["chunk"], "delay": counted["delay"], "top": ranked})
