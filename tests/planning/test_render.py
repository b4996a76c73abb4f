"""Render: one valid, deterministic YAML file per step, or every problem and no files."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from gokart_k8s.conventions import dump_yaml, job_name, step_identity
from gokart_k8s.errors import PlanError
from gokart_k8s.eviction import Eviction
from gokart_k8s.render import render_steps

from .specimens import make_spec, settings_for

SPECS = [
    make_spec("small", family="LoadData", unique_id="a" * 32),
    make_spec("highmem", family="BuildFeatures", unique_id="b" * 32),
    make_spec("gpu-t4", Eviction.PROTECT, family="TrainModel", unique_id="c" * 32, max_runtime_seconds=7200),
]


def render(platform: str, out_dir: Path) -> list[Path]:
    return render_steps(
        SPECS, settings_for(platform), run_id="nightly", image="pipeline:1", out_dir=out_dir, env={"A": "1"}
    )


@pytest.mark.parametrize("platform", ["plain", "gke-standard", "gke-autopilot", "eks-karpenter"])
def test_render_writes_one_valid_job_file_per_step_named_after_the_job(platform: str, tmp_path: Path) -> None:
    paths = render(platform, tmp_path / "jobs")
    identity = step_identity("pipeline:1", {"A": "1"})  # what a run with this image and env submits
    assert [p.name for p in paths] == [f"{job_name(s.family, s.unique_id, identity)}.yaml" for s in SPECS]
    assert sorted(p.name for p in (tmp_path / "jobs").iterdir()) == sorted(p.name for p in paths)
    for path in paths:
        [manifest] = list(yaml.safe_load_all(path.read_text()))
        kubernetes_validate.validate(manifest, "1.29.0", strict=True)
        assert path.read_text().startswith("# step ")


def test_yaml_is_written_without_anchors_even_when_a_value_occurs_twice() -> None:
    labels = {"app": "pipeline"}
    text = dump_yaml({"metadata": {"labels": labels}, "template": {"metadata": {"labels": labels}}})
    assert "&" not in text and "*" not in text
    assert yaml.safe_load(text) == {"metadata": {"labels": labels}, "template": {"metadata": {"labels": labels}}}
    assert list(yaml.safe_load(dump_yaml({"b": 1, "a": 2}))) == ["b", "a"]  # keys in the order built


@pytest.mark.parametrize("platform", ["plain", "gke-standard", "gke-autopilot", "eks-karpenter"])
def test_rendered_files_have_no_anchors_or_aliases(platform: str, tmp_path: Path) -> None:
    for path in render(platform, tmp_path):
        assert "&id" not in path.read_text() and "*id" not in path.read_text()


def test_rendering_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    first = [p.read_bytes() for p in render("gke-standard", tmp_path / "one")]
    second = [p.read_bytes() for p in render("gke-standard", tmp_path / "two")]
    assert first == second


def test_each_file_says_where_the_step_runs(tmp_path: Path) -> None:
    text = render("gke-autopilot", tmp_path)[1].read_text()
    assert "# platform gke-autopilot: Autopilot Spot, compute-class Balanced" in text


def test_render_refuses_with_every_problem_and_writes_nothing(tmp_path: Path) -> None:
    eight_days = 8 * 24 * 3600
    specs = [
        make_spec("standard", Eviction.PROTECT, family="Backfill", unique_id="d" * 32, max_runtime_seconds=eight_days),
        make_spec("highmem", Eviction.PROTECT, family="Reindex", unique_id="e" * 32, max_runtime_seconds=eight_days),
    ]
    out_dir = tmp_path / "jobs"
    with pytest.raises(PlanError) as raised:
        render_steps(specs, settings_for("gke-autopilot"), run_id="r", image="i", out_dir=out_dir, env={})
    assert [p.split(" ")[1] for p in raised.value.problems] == ["Backfill", "Reindex"]
    assert not out_dir.exists()
    # A render never submits anything, so it must not say that "nothing was submitted".
    assert str(raised.value).startswith("2 problems in the pipeline; no file was written:")


def test_render_refuses_two_steps_that_would_share_a_job_name(tmp_path: Path) -> None:
    twins = [make_spec("small", unique_id="f" * 32), make_spec("standard", unique_id="f" * 12 + "0" * 20)]
    with pytest.raises(PlanError, match="the same Job name"):
        render_steps(twins, settings_for("plain"), run_id="r", image="i", out_dir=tmp_path, env={})
