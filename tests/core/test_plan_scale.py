"""A plan's work is linear in steps and edges, on every graph shape (counted, not timed)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import gokart
import luigi
import pytest

from gokart_k8s.settings import load_settings
from gokart_k8s.steps import collect

CALLS: Counter[str] = Counter()


class ChainStep(gokart.TaskOnKart):
    n = luigi.IntParameter()
    label = luigi.Parameter(default="default", significant=False)

    def requires(self) -> Any:
        CALLS["requires"] += 1
        return ChainStep(n=self.n - 1) if self.n > 0 else []


class LatticeStep(gokart.TaskOnKart):
    depth = luigi.IntParameter()
    i = luigi.IntParameter(default=0)

    def requires(self) -> Any:
        CALLS["requires"] += 1
        if self.depth == 0:
            return []
        return [LatticeStep(depth=self.depth - 1, i=self.i), LatticeStep(depth=self.depth - 1, i=self.i + 1)]


class Scaled(gokart.TaskOnKart):
    """Passes its FloatParameter on: an int given here changes on its way to a pod, in the child too."""

    x = luigi.FloatParameter()

    def requires(self) -> Any:
        return ScaledChild(y=self.x)


class ScaledChild(gokart.TaskOnKart):
    y = luigi.Parameter()


@pytest.mark.parametrize(
    ("root", "steps"),
    [(ChainStep(n=60), 61), (LatticeStep(depth=12), 91)],
    ids=["chain", "diamond-lattice"],
)
def test_requires_is_called_a_constant_number_of_times_per_step(root: Any, steps: int) -> None:
    """Once per path through the graph would be 1,830 calls for the chain and 2**13 for the lattice."""
    CALLS.clear()
    found, problems = collect([root], load_settings())
    assert (len(found), problems) == (steps, [])
    assert CALLS["requires"] <= 5 * steps


def test_luigi_reads_each_config_value_once_per_plan(luigi_cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    luigi_cfg("[ChainStep]\nlabel = from-config\n")
    import luigi.parameter

    reads: Counter[tuple[str, str]] = Counter()
    original = luigi.parameter.Parameter._get_value_from_config

    def counting(param: Any, section: str, name: str) -> Any:
        reads[(section, name)] += 1
        return original(param, section, name)

    monkeypatch.setattr(luigi.parameter.Parameter, "_get_value_from_config", counting)
    found, _ = collect([ChainStep(n=30)], load_settings())
    assert {s.task.label for s in found} == {"from-config"}
    # A few times for the root (built before the plan, unmemoised) and once in the plan: not ~10 per step.
    assert max(reads.values()) <= 6, reads.most_common(3)


def test_a_change_on_the_way_to_the_pod_is_still_found_with_the_memo() -> None:
    from luigi.task_register import Register

    Register.clear_instance_cache()
    _found, problems = collect([Scaled(x=4)], load_settings())
    assert any("x='4' becomes '4.0'" in p for p in problems), problems


def test_luigi_lists_each_class_parameters_once_per_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    import luigi.task

    listed: Counter[str] = Counter()
    original = luigi.task.Task.__dict__["get_params"]

    def counting(cls: type) -> Any:
        listed[cls.__name__] += 1
        return original.__func__(cls)

    monkeypatch.setattr(luigi.task.Task, "get_params", classmethod(counting))
    found, _ = collect([ChainStep(n=30)], load_settings())
    assert len(found) == 31
    # The root's construction (before the plan) lists them a few times; the plan once, not ~6 per step.
    assert listed["ChainStep"] <= 6, listed


def test_pinning_a_deep_chain_hashes_each_step_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leaves first: root first recurses past Python's recursion limit and redoes every failed level."""
    from gokart_k8s.tasks import resolve_graph

    hashed: Counter[str] = Counter()
    original = gokart.TaskOnKart._make_hash_id

    def counting(self: Any) -> str:
        hashed["hash"] += 1
        return str(original(self))

    monkeypatch.setattr(gokart.TaskOnKart, "_make_hash_id", counting)
    resolve_graph(ChainStep(n=1500), ())
    assert hashed["hash"] <= 2 * 1501, hashed
