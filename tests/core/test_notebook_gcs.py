"""The Python API and the command line use one code path: a gs:// cache on the inline backend goes
through the create-only GCS filesystem (and the emulator), and a notebook reads a pipeline's outputs
the one documented way (docs/cache.md): set the cache, name the task, ``gokart_k8s.build(task, backend="inline")``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gokart
import pytest

import gokart_k8s
from gokart_k8s.cli import main
from gokart_k8s.errors import PlanError
from gokart_k8s.workspace import set_workspace_directory

pytest_plugins = ["gokart_k8s.testing.gcs"]


def blobs(bucket: str) -> dict[str, int]:
    from google.cloud import storage

    return {b.name: int(b.generation) for b in storage.Client().list_blobs(bucket, prefix="ws/tests/core/")}


@pytest.fixture(autouse=True)
def _gokarts_own_client() -> Iterator[None]:
    """Each test starts with gokart's own GCS client, as a fresh process (a notebook) does."""
    from gokart_k8s.cache.gcs import install_gcs_filesystem

    install_gcs_filesystem().uninstall()
    yield
    install_gcs_filesystem().uninstall()  # and no client of this test's emulator settings is left behind


def test_build_inline_writes_a_gs_cache_through_the_create_only_filesystem(gcs_bucket: str) -> None:
    from tests.core.pipelines import Summarise

    set_workspace_directory(f"gs://{gcs_bucket}/ws/")
    assert gokart_k8s.build(Summarise(n=3), backend="inline") == "total=3"
    names = {name.split("/")[-1].split("_")[0] for name in blobs(gcs_bucket)}
    assert {"Source", "Train", "Summarise"} <= names
    # The same path as `run --backend inline`: gokart's gs:// paths go through gokart_k8s's filesystem.
    from gokart.gcs_config import GCSConfig

    assert type(GCSConfig().get_gcs_client()).__module__ == "gokart_k8s.cache.gcs"


def test_enable_remote_execution_inline_checks_the_bucket_before_running(gcs_bucket: str) -> None:
    from tests.core.pipelines import Summarise

    set_workspace_directory("gs://no-such-bucket/ws/")
    with pytest.raises(PlanError, match="no-such-bucket"):
        with gokart_k8s.enable_remote_execution("inline"):
            gokart.build(Summarise(n=4))


def test_a_notebook_reads_a_gs_pipelines_output_without_running_anything(gcs_bucket: str, capsys: Any) -> None:
    workspace = f"gs://{gcs_bucket}/ws"
    assert main(["run", "tests.core.pipelines.Summarise", "--n", "4", "--workspace", workspace]) == 0
    written = blobs(gcs_bucket)
    capsys.readouterr()

    # The notebook: import the pipeline, name the task as the run did, ask for its value.
    from luigi.task_register import Register

    from tests.core.pipelines import Source, Summarise

    Register.clear_instance_cache()
    import luigi.configuration

    # As docs/cache.md says (or [TaskOnKart] workspace_directory in the notebook's luigi.cfg):
    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", f"{workspace}/")
    value = gokart_k8s.build(Summarise(n=4), backend="inline")
    assert value == "total=6"
    assert blobs(gcs_bucket) == written  # read from the cache: nothing ran, nothing was rewritten
    assert "running" not in capsys.readouterr().err
    # One step's output, the same way: the cache is set up, so gokart's own load() reads gs://.
    assert Source(n=4).output().load() == [0, 1, 2, 3]
