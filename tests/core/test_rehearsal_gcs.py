"""A rehearsal can use a GCS emulator as its cache, exactly as a cluster run uses GCS."""

from __future__ import annotations

from typing import Any

from gokart_k8s.cli import main

pytest_plugins = ["gokart_k8s.testing.gcs"]


def test_a_rehearsal_writes_every_step_output_to_a_gs_cache_and_a_rerun_finds_it_there(
    gcs_bucket: str, capsys: Any
) -> None:
    from google.cloud import storage

    workspace = f"gs://{gcs_bucket}/ws"
    argv = ["run", "tests.core.pipelines.Summarise", "--n", "6", "--backend", "local-cluster", "--workspace", workspace]
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr()
    assert "3/3 steps done, 0 failed" in out.out and "submitted  Train" in out.err
    names = {blob.name for blob in storage.Client().list_blobs(gcs_bucket, prefix="ws/tests/core/pipelines/")}
    assert {name.split("/")[-1].split("_")[0] for name in names} == {"Source", "Train", "Summarise"}

    assert main(argv) == 0
    again = capsys.readouterr().err
    assert again.count("cached") == 3 and "submitted" not in again
