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


@pytest.fixture
def rebuilt(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many steps a plan rebuilt from their string parameters (the round-trip proof), by family."""
    counts: Counter[str] = Counter()
    original = luigi.Task.__dict__["from_str_params"]

    def counting(cls: Any, params_str: Any) -> Any:
        counts[cls.__name__] += 1
        return original.__func__(cls, params_str)

    monkeypatch.setattr(luigi.Task, "from_str_params", classmethod(counting))
    return counts


def _cache(root: Any, *, but: Any = None) -> None:
    from gokart_k8s.steps import walk

    for task in walk(root):
        if task is not but:
            task.dump(0)


def _plan(root: Any, backend: str) -> Any:
    from gokart_k8s.plan import make_plan
    from gokart_k8s.workspace import workspace_directory

    return make_plan([root], load_settings(), backend=backend, workspace=workspace_directory())


def test_a_fully_cached_plan_for_the_cluster_rebuilds_no_step(rebuilt: Counter[str]) -> None:
    """Nothing travels to a pod, so nothing needs proving: a cached rerun of 10,000 steps rebuilds none."""
    root = ChainStep(n=40)
    _cache(root)
    plan = _plan(root, "local-cluster")
    assert (len(plan.rows), sum(r.cached for r in plan.rows), plan.problems) == (41, 41, [])
    assert rebuilt["ChainStep"] == 0


def test_an_uncached_plan_for_the_cluster_proves_every_step_and_inline_none(rebuilt: Counter[str]) -> None:
    _plan(ChainStep(n=40), "inline")
    assert rebuilt["ChainStep"] == 0  # the inline backend runs every step in this process
    _plan(ChainStep(n=40), "local-cluster")
    assert rebuilt["ChainStep"] == 41


def test_a_step_to_run_after_a_cached_deep_chain_is_proven_with_its_ancestors(rebuilt: Counter[str]) -> None:
    """Its pod hashes its ancestors' ids: proven leaves first they are looked up, not recomputed
    down the whole chain (which passes Python's recursion limit at this depth)."""
    root = ChainStep(n=1500)
    _cache(root, but=root)
    plan = _plan(root, "local-cluster")
    assert ([r.cached for r in plan.rows].count(False), plan.problems) == (1, [])
    assert rebuilt["ChainStep"] == 1501


def test_a_step_that_would_change_on_the_way_is_reported_while_it_is_to_run_not_once_cached() -> None:
    root = Scaled(x=4)
    _cache(root, but=root)
    assert any("x='4' becomes '4.0'" in p for p in _plan(root, "local-cluster").problems)
    _cache(root)
    assert _plan(root, "local-cluster").problems == []  # nothing runs, nothing travels


BUILT: Counter[str] = Counter()


class Spoke(gokart.TaskOnKart):
    i = luigi.IntParameter()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        BUILT["Spoke"] += 1
        super().__init__(*args, **kwargs)


class Hub(gokart.TaskOnKart):
    n = luigi.IntParameter()

    def requires(self) -> Any:
        return [Spoke(i=i) for i in range(self.n)]


def test_proving_a_fan_in_builds_each_dependency_once_more_not_once_per_edge() -> None:
    """The hub's values come back identical, so its pod builds the very spokes the driver built:
    only each spoke's own proof rebuilds it (a 10,000-step fan-in built its spokes three times)."""
    from luigi.task_register import Register

    Register.clear_instance_cache()
    BUILT.clear()
    plan = _plan(Hub(n=50), "local-cluster")
    assert (len(plan.rows), plan.problems) == (51, [])
    assert BUILT["Spoke"] == 2 * 50  # the driver's, then each spoke's rebuild from its strings


class Tunable(luigi.Task):
    knob = luigi.Parameter(default="default")


def test_the_memo_forgets_its_values_whenever_luigis_config_changes(luigi_cfg: Any, tmp_path: Any) -> None:
    from luigi.configuration import LuigiConfigParser, add_config_path, get_config

    from gokart_k8s.steps import luigi_lookups_memoised

    extra = tmp_path / "extra.cfg"
    extra.write_text("[Tunable]\nknob = from-a-file\n")
    own = {name: LuigiConfigParser.__dict__.get(name) for name in ("set", "_read", "read_dict")}
    seen = []
    with luigi_lookups_memoised():
        seen.append(Tunable().knob)
        get_config().set("Tunable", "knob", "set")
        seen.append(Tunable().knob)
        get_config()["Tunable"] = {"knob": "by-item"}
        seen.append(Tunable().knob)
        add_config_path(str(extra))
        seen.append(Tunable().knob)
        LuigiConfigParser._instance = None  # a new parser: its first read is a change too
        seen.append(Tunable().knob)
    assert seen == ["default", "set", "by-item", "from-a-file", "from-a-file"]
    # The parser classes are as they were (what they define themselves, nothing added).
    assert {name: LuigiConfigParser.__dict__.get(name) for name in own} == own
