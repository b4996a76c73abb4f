"""The decorator only declares: same class, same unique id, clear refusals at decoration time."""

from __future__ import annotations

from typing import Any

import gokart
import luigi
import pytest

import gokart_k8s
from gokart_k8s import DeclarationError, Eviction, ResourceClass
from gokart_k8s.declaration import StepDeclaration, declaration_of
from tests.core.pipelines import Source, Train, TrainSubclass


def _twin_classes(**declaration: Any) -> tuple[type, type]:
    """Two identical task classes (same name, same code), the second one decorated."""

    def make() -> type:
        class Twin(gokart.TaskOnKart[Any]):
            x: int = luigi.IntParameter(default=1)
            serialized_task_definition_check = True

            def run(self) -> None:
                self.dump(self.x)

        return Twin

    plain = make()
    decorated = gokart_k8s.job(**declaration)(make())
    return plain, decorated


@pytest.mark.parametrize(
    "declaration",
    [
        {"resources": "highmem", "eviction": "protect"},
        {"resources": ResourceClass(cpu="250m", memory="512Mi"), "eviction": Eviction.TOLERATE},
        {"max_runtime": "6h"},
        {},
    ],
    ids=["named-protect", "one-off-tolerate", "max-runtime", "empty"],
)
def test_decorating_a_task_leaves_its_unique_id_unchanged(declaration: dict[str, Any]) -> None:
    plain, decorated = _twin_classes(**declaration)
    for x in (1, 2):
        assert plain(x=x).make_unique_id() == decorated(x=x).make_unique_id()
        assert plain(x=x).task_id == decorated(x=x).task_id
        assert plain(x=x).output().path() == decorated(x=x).output().path()


def test_the_decorator_returns_the_same_class_without_wrapping_run_or_adding_parameters() -> None:
    class Task(gokart.TaskOnKart[Any]):
        def run(self) -> None:
            self.dump(1)

    run_before = Task.run
    params_before = [name for name, _ in Task.get_params()]
    result = gokart_k8s.job(resources="small")(Task)
    assert result is Task
    assert Task.run is run_before
    assert [name for name, _ in Task.get_params()] == params_before


def test_a_declaration_records_what_was_given_and_nothing_else() -> None:
    assert declaration_of(Train) == StepDeclaration(resources="highmem", eviction=Eviction.PROTECT)
    assert declaration_of(Source) == StepDeclaration()


def test_subclasses_inherit_a_declaration_unless_they_override_it() -> None:
    assert declaration_of(TrainSubclass) == declaration_of(Train)

    @gokart_k8s.job(resources="small", eviction="tolerate")
    class Override(Train):
        pass

    assert declaration_of(Override).resources == "small"
    assert declaration_of(Train).resources == "highmem"


def test_eviction_accepts_the_enum_and_any_case_of_its_spelling() -> None:
    for value in ("protect", "PROTECT", Eviction.PROTECT):

        @gokart_k8s.job(eviction=value)
        class T(gokart.TaskOnKart[Any]):
            pass

        assert declaration_of(T).eviction is Eviction.PROTECT


def test_max_runtime_accepts_durations_seconds_and_timedeltas() -> None:
    import datetime

    for value, seconds in (("90m", 5400), ("2d", 172800), (60, 60), (datetime.timedelta(hours=1), 3600)):

        @gokart_k8s.job(max_runtime=value)
        class T(gokart.TaskOnKart[Any]):
            pass

        assert declaration_of(T).max_runtime_seconds == seconds


def test_decorating_a_class_that_is_not_a_gokart_task_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"subclass of gokart.TaskOnKart, got Plain"):

        @gokart_k8s.job(resources="small")
        class Plain(luigi.Task):
            pass

    with pytest.raises(DeclarationError, match=r"subclass of gokart.TaskOnKart"):
        gokart_k8s.job()(lambda: None)  # type: ignore[arg-type]


def test_an_unknown_keyword_is_refused_with_the_valid_ones_listed() -> None:
    with pytest.raises(
        DeclarationError,
        match=r"unknown keyword argument\(s\) 'memory'.*Valid keywords: resources, eviction, max_runtime",
    ):
        gokart_k8s.job(memory="4Gi")


def test_the_decorator_without_parentheses_is_refused_with_how_to_write_it() -> None:
    class Task(gokart.TaskOnKart[Any]):
        pass

    with pytest.raises(DeclarationError, match=r"keyword arguments only.*with parentheses"):
        gokart_k8s.job(Task)


def test_an_unknown_resource_class_is_refused_with_the_known_classes_listed() -> None:
    with pytest.raises(
        DeclarationError,
        match=r"unknown resource class 'hugemem'\. Known classes: gpu-l4, gpu-t4, highcpu, highmem, small, standard",
    ):
        gokart_k8s.job(resources="hugemem")


def test_a_class_defined_in_luigi_cfg_is_accepted_by_the_decorator(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s.resources.hugemem]\ncpu = 16\nmemory = 128Gi\n")

    @gokart_k8s.job(resources="hugemem")
    class T(gokart.TaskOnKart[Any]):
        pass

    assert declaration_of(T).resources == "hugemem"


def test_an_unknown_eviction_value_is_refused_with_the_valid_values_listed() -> None:
    with pytest.raises(DeclarationError, match=r"must be one of 'tolerate', 'protect'.*got 'sometimes'"):
        gokart_k8s.job(eviction="sometimes")


def test_a_wrong_type_of_resources_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"resource-class name.*got dict"):
        gokart_k8s.job(resources={"cpu": "1"})  # type: ignore[arg-type]


def test_a_bad_max_runtime_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"max_runtime.*duration such as '90m'"):
        gokart_k8s.job(max_runtime="forever")
    with pytest.raises(DeclarationError, match=r"more than zero"):
        gokart_k8s.job(max_runtime=0)


def test_gokart_build_runs_decorated_tasks_unchanged() -> None:
    from tests.core.pipelines import Summarise

    assert gokart.build(Summarise(n=4), reset_register=False) == "total=6"


def test_expected_runtime_is_declared_for_cost_estimates_and_leaves_the_unique_id_alone() -> None:
    class Plain(gokart.TaskOnKart[int]):
        pass

    before = Plain().make_unique_id()
    gokart_k8s.job(expected_runtime="90m")(Plain)
    assert declaration_of(Plain).expected_runtime_seconds == 5400
    assert Plain().make_unique_id() == before
    with pytest.raises(DeclarationError, match="expected_runtime"):
        gokart_k8s.job(expected_runtime="soon")
