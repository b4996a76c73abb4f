"""find_complete answers like gokart's complete(), with one listing per output directory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gokart
import luigi
import pytest
from cache_support import FAST_RETRY, use_workspace

from gokart_k8s.cache.completeness import find_complete
from gokart_k8s.cache.gcs import GCSFileSystem, install_gcs_filesystem
from gokart_k8s.testing.gcs import FakeGCSServer, FaultProxy


class One(gokart.TaskOnKart[int]):
    i: int = luigi.IntParameter()

    def run(self) -> None:
        self.dump(self.i)


class Pair(gokart.TaskOnKart[int]):
    i: int = luigi.IntParameter()

    def output(self) -> Any:
        return {"a": self.make_target("pair/a.pkl"), "b": self.make_target("pair/b.pkl")}


class Nothing(gokart.TaskOnKart[None]):
    def output(self) -> Any:
        return []


class AlwaysDone(gokart.TaskOnKart[int]):
    def complete(self) -> bool:
        return True


class PlainLuigi(luigi.Task):
    path: str = luigi.Parameter()

    def output(self) -> Any:
        return luigi.LocalTarget(self.path)


def test_answers_like_gokarts_complete_for_every_kind_of_task(workspace: str) -> None:
    ones = [One(i=i) for i in range(6)]
    for task in ones[:3]:
        task.dump(task.i)
    pairs = [Pair(i=i) for i in range(3)]
    pairs[0].dump(1, "a")
    pairs[0].dump(2, "b")
    pairs[1].dump(1, "a")  # half-written step: one of two outputs
    tasks: list[luigi.Task] = [*ones, *pairs, Nothing(), AlwaysDone()]

    found = find_complete(tasks)

    assert found == {t for t in tasks if t.complete()}
    assert found == {*ones[:3], pairs[0], Nothing(), AlwaysDone()}


def test_rerun_and_modification_time_checks_fall_back_to_complete(workspace: str) -> None:
    cached = One(i=1)
    cached.dump(1)
    assert find_complete([One(i=1, rerun=True)]) == set()  # gokart deletes the output in complete()
    assert not cached.output().exists()
    again = One(i=2)
    again.dump(2)
    assert find_complete([One(i=2, modification_time_check=True)]) == {One(i=2, modification_time_check=True)}


def test_a_plain_luigi_task_counts_its_file_targets(tmp_path: Any) -> None:
    present = tmp_path / "present.txt"
    present.write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    tasks = [
        PlainLuigi(path=str(present)),
        PlainLuigi(path=str(tmp_path / "absent")),
        PlainLuigi(path=str(tmp_path / "dangling")),
    ]
    assert find_complete(tasks) == {tasks[0]}


@pytest.fixture
def thirty_of_forty_cached(
    gcs_emulator: FakeGCSServer, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FaultProxy, list[One]]]:
    """Forty steps sharing one gs:// output directory, the first thirty cached; requests counted from here."""
    with FaultProxy(gcs_emulator.url) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.url)
        with install_gcs_filesystem(GCSFileSystem(retry=FAST_RETRY)):
            use_workspace(f"gs://{gcs_bucket}/ws")
            tasks = [One(i=i) for i in range(40)]
            for task in tasks[:30]:
                task.dump(task.i)
            proxy.reset()
            yield proxy, tasks


def test_lists_each_gcs_directory_once_instead_of_one_request_per_output(
    thirty_of_forty_cached: tuple[FaultProxy, list[One]],
) -> None:
    proxy, tasks = thirty_of_forty_cached
    found = find_complete(tasks)
    listings = proxy.request_count(method="GET", path_contains="/o?")
    total = proxy.request_count()

    assert found == set(tasks[:30])
    assert listings == 1
    assert total <= 2  # the listing, plus at most one bucket-metadata lookup


def test_one_step_among_many_is_checked_on_its_own_not_by_listing_its_directory(
    thirty_of_forty_cached: tuple[FaultProxy, list[One]],
) -> None:
    # The driver asks about each step as it ends: listing the shared output directory each time
    # made a run of N steps read N names N times.
    proxy, tasks = thirty_of_forty_cached
    assert find_complete([tasks[3]]) == {tasks[3]}
    assert find_complete([tasks[35]]) == set()
    assert find_complete([tasks[4], tasks[36]]) == {tasks[4]}
    listings = [path for _, path, _ in proxy.requests if "delimiter=" in path]
    assert listings == []
    # Per name: one objects.get, and for a missing one luigi's "is it a directory" probe.
    assert proxy.request_count() <= 2 * 4 + 1
