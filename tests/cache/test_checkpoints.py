"""Checkpoints: atomic, latest wins, keyed by the step's unique id, gone once the step succeeds."""

from __future__ import annotations

from pathlib import Path

import gokart
import luigi
import pytest

from gokart_k8s.cache.checkpoints import Checkpoint, checkpoint_location, clear_checkpoints
from gokart_k8s.cache.gcs import gcs_filesystem
from gokart_k8s.errors import CacheError


class Long(gokart.TaskOnKart[int]):
    lr: float = luigi.FloatParameter(default=0.1)

    def run(self) -> None:
        ckpt = Checkpoint.of(self)
        state = ckpt.restore(default={"epoch": 0})
        ckpt.save({"epoch": state["epoch"] + 1})
        self.dump(state["epoch"] + 1)


def _names(location: str) -> set[str]:
    if location.startswith("gs://"):
        return gcs_filesystem().list_children(location)
    return {p.name for p in Path(location).iterdir()} if Path(location).exists() else set()


def _put(location: str, name: str, data: bytes) -> None:
    if location.startswith("gs://"):
        gcs_filesystem().put_string(data, f"{location}/{name}")
    else:
        Path(location).mkdir(parents=True, exist_ok=True)
        (Path(location) / name).write_bytes(data)


def test_restore_returns_the_latest_save_and_only_the_last_two_are_kept(workspace: str) -> None:
    ckpt = Checkpoint.of(Long())
    assert not ckpt.exists()
    for epoch in range(1, 5):
        assert ckpt.save({"epoch": epoch}) is True

    again = Checkpoint.of(Long())  # a restarted attempt
    assert again.exists()
    assert again.restore() == {"epoch": 4}
    assert _names(ckpt.location) == {"ckpt-0000000003.pkl", "ckpt-0000000004.pkl"}
    again.save({"epoch": 5})
    assert Checkpoint.of(Long()).restore() == {"epoch": 5}


def test_half_written_or_foreign_files_are_never_loaded(workspace: str) -> None:
    ckpt = Checkpoint.of(Long())
    ckpt.save({"epoch": 1})
    _put(ckpt.location, ".tmp-abc.partial", b"\x80\x05half")  # a local save cut by SIGKILL
    _put(ckpt.location, "ckpt-99.pkl", b"not ours")
    assert Checkpoint.of(Long()).restore() == {"epoch": 1}


def test_a_step_with_other_parameters_does_not_see_another_steps_checkpoints(workspace: str) -> None:
    Checkpoint.of(Long(lr=0.1)).save({"epoch": 7})
    other = Checkpoint.of(Long(lr=0.2))
    assert not other.exists()
    assert checkpoint_location(Long(lr=0.1)) != checkpoint_location(Long(lr=0.2))
    assert f"/gokart_k8s/checkpoints/Long_{Long(lr=0.1).make_unique_id()}" in checkpoint_location(Long(lr=0.1))
    with pytest.raises(CacheError, match="No checkpoint saved"):
        other.restore()


def test_save_every_skips_saves_within_the_interval(workspace: str) -> None:
    ckpt = Checkpoint.of(Long())
    assert ckpt.save({"epoch": 1}, every=3600) is True  # the first save always writes
    assert ckpt.save({"epoch": 2}, every=3600) is False
    assert Checkpoint.of(Long()).restore() == {"epoch": 1}


def test_checkpoints_are_deleted_once_the_step_succeeds(workspace: str) -> None:
    assert gokart.build(Long(), reset_register=False) == 1
    assert _names(checkpoint_location(Long())) == set()


def test_clear_checkpoints_removes_them_for_a_runner_that_finds_the_step_complete(workspace: str) -> None:
    Checkpoint.of(Long()).save({"epoch": 3})
    clear_checkpoints(Long())
    assert not Checkpoint.of(Long()).exists()


def test_only_gokart_tasks_get_a_checkpoint_by_unique_id() -> None:
    class Plain(luigi.Task):
        pass

    with pytest.raises(CacheError, match=r"must be a gokart\.TaskOnKart"):
        Checkpoint.of(Plain())
