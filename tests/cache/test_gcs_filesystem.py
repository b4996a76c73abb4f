"""gs:// through google-cloud-storage: every gokart output type works unchanged on the emulator."""

from __future__ import annotations

import os
import pickle
from typing import Any

import gokart
import gokart.gcs_config
import luigi
import pandas as pd
import pytest

from gokart_k8s.cache.gcs import GCSFileSystem, install_gcs_filesystem, installed_filesystem, is_side_file


def _save_model(model: dict[str, float], path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(model, f)


def _load_model(path: str) -> dict[str, float]:
    with open(path, "rb") as f:
        return dict(pickle.load(f))


class AllFormats(gokart.TaskOnKart[dict[str, Any]]):
    tag: str = luigi.Parameter(default="v1")

    def output(self) -> Any:
        return {
            "pickle": self.make_target("formats/obj.pkl"),
            "csv": self.make_target("formats/frame.csv"),
            "tsv": self.make_target("formats/frame.tsv"),
            "parquet": self.make_target("formats/frame.parquet"),
            "feather": self.make_target("formats/frame.feather"),
            "text": self.make_target("formats/note.txt"),
            "model": self.make_model_target("formats/model.zip", save_function=_save_model, load_function=_load_model),
            "large": self.make_large_data_frame_target("formats/large.zip", max_byte=64),
        }

    def run(self) -> None:
        frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
        self.dump({"k": [1, 2]}, "pickle")
        for key in ("csv", "tsv", "parquet", "feather", "large"):
            self.dump(frame, key)
        self.dump("hello", "text")
        self.dump({"coef": 2.5}, "model")


def _build(task: luigi.Task) -> Any:
    return gokart.build(task, reset_register=False)


def test_every_gokart_output_type_round_trips_through_the_workspace(workspace: str) -> None:
    result = _build(AllFormats())

    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert result["pickle"] == {"k": [1, 2]}
    for key in ("csv", "tsv", "parquet", "feather"):
        pd.testing.assert_frame_equal(result[key].reset_index(drop=True), frame)
    pd.testing.assert_frame_equal(result["large"].sort_index(), frame)
    assert result["text"] == ["hello"]  # gokart reads .txt back as a list of lines
    assert result["model"] == {"coef": 2.5}
    assert AllFormats().complete()


def test_outputs_and_side_files_land_in_the_bucket_with_gokart_metadata_labels(
    gcs_workspace: str, gcs_fs: GCSFileSystem
) -> None:
    _build(AllFormats())

    names = [p[len(gcs_workspace) + 1 :] for p in gcs_fs.listdir(gcs_workspace)]

    assert any(n.startswith("formats/obj_") and n.endswith(".pkl") for n in names)
    assert any(n.startswith("formats/model_") and n.endswith(".zip") for n in names)
    assert any(n.startswith("log/task_params/AllFormats_") for n in names)
    pickle_path = next(p for p in gcs_fs.listdir(gcs_workspace) if "/formats/obj_" in p)
    bucket, key = gcs_fs._path_to_bucket_and_key(pickle_path)
    resource = gcs_fs.client.objects().get(bucket=bucket, object=key).execute()
    assert resource["metadata"]["tag"] == "v1"  # gokart labels each output with its parameters


def test_a_second_build_is_served_from_the_cache_without_running(workspace: str) -> None:
    _build(AllFormats())
    task = AllFormats()
    assert task.complete()
    # gokart's timestamp path (used by modification_time_check) goes through the shim on gs://.
    assert task.output()["pickle"].last_modification_time() is not None


def test_installing_is_idempotent_and_uninstalling_restores_gokarts_client() -> None:
    original = gokart.gcs_config.GCSConfig.get_gcs_client
    fs = GCSFileSystem()
    with install_gcs_filesystem(fs) as installed:
        assert installed is fs
        assert install_gcs_filesystem().filesystem is fs
        assert gokart.gcs_config.GCSConfig().get_gcs_client() is fs
        assert installed_filesystem() is fs
    assert gokart.gcs_config.GCSConfig.get_gcs_client is original
    assert installed_filesystem() is None


def test_installing_another_filesystem_swaps_it_and_uninstall_still_restores_gokarts_client() -> None:
    original = gokart.gcs_config.GCSConfig.get_gcs_client
    first = install_gcs_filesystem(GCSFileSystem())
    second = install_gcs_filesystem(GCSFileSystem())
    assert gokart.gcs_config.GCSConfig().get_gcs_client() is second.filesystem
    first.uninstall()  # stale handle: no effect
    assert gokart.gcs_config.GCSConfig().get_gcs_client() is second.filesystem
    second.uninstall()
    assert gokart.gcs_config.GCSConfig.get_gcs_client is original


@pytest.mark.parametrize(
    ("path", "rewritable"),
    [
        ("gs://b/ws/log/task_params/T_1.pkl", True),
        ("gs://b/ws/log/module_versions/T_1.txt", True),
        ("gs://b/ws/pkg/T_1.pkl", False),
        ("gs://b/ws/gokart_k8s/checkpoints/T_1/ckpt-0000000001.pkl", False),
    ],
)
def test_only_gokarts_log_side_files_are_rewritable(path: str, rewritable: bool) -> None:
    assert is_side_file(path) is rewritable


def test_filesystem_basics_on_the_emulator(gcs_bucket: str, gcs_fs: GCSFileSystem, tmp_path: Any) -> None:
    root = f"gs://{gcs_bucket}/d"
    gcs_fs.put_string(b"abc", f"{root}/x/a.bin")
    local = tmp_path / "f.txt"
    local.write_text("file")
    gcs_fs.put(str(local), f"{root}/b.txt")

    assert gcs_fs.exists(f"{root}/x/a.bin") and gcs_fs.exists(f"{root}/x") and gcs_fs.isdir(root)
    assert not gcs_fs.exists(f"{root}/missing")
    assert gcs_fs.list_children(root) == {"x", "b.txt"}
    assert sorted(gcs_fs.listdir(root)) == [f"{root}/b.txt", f"{root}/x/a.bin"]
    with gcs_fs.download(f"{root}/b.txt") as f:
        assert f.read() == b"file"
        downloaded = f.name
    assert not os.path.exists(downloaded)
    gcs_fs.copy(f"{root}/x", f"{root}/y")
    gcs_fs.move(f"{root}/b.txt", f"{root}/c.txt")
    assert gcs_fs.read_bytes(f"{root}/y/a.bin") == b"abc"
    assert gcs_fs.list_children(root) == {"x", "y", "c.txt"}
    assert gcs_fs.remove(root) is True
    assert not gcs_fs.exists(root)
    with pytest.raises(FileNotFoundError):
        gcs_fs.download(f"{root}/c.txt")
