"""gokart.build() moves to the cluster unchanged once remote execution is enabled."""

from __future__ import annotations

import gokart
import pytest

import gokart_k8s
from gokart_k8s import PlanError, StepFailedError
from tests.core.pipelines import Boom, Summarise


def test_gokart_build_runs_every_step_as_a_job_on_the_local_cluster_when_remote_execution_is_enabled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with gokart_k8s.enable_remote_execution("local-cluster"):
        assert gokart.build(Summarise(n=5), reset_register=False) == "total=10"
    err = capsys.readouterr().err
    assert "local cluster at http://127.0.0.1" in err
    for family in ("Source", "Train", "Summarise"):
        assert f"submitted  {family}" in err
    # Outside the block gokart.build is gokart's own again: everything is cached, nothing submitted.
    assert gokart.build(Summarise(n=5), reset_register=False) == "total=10"
    assert "submitted" not in capsys.readouterr().err


def test_gokart_k8s_build_with_the_inline_backend_returns_what_gokart_build_returns() -> None:
    assert gokart_k8s.build(Summarise(n=2), backend="inline", reset_register=False) == "total=1"


def test_a_failed_remote_step_raises_with_the_summary() -> None:
    with pytest.raises(StepFailedError, match=r"Boom did not succeed"):
        gokart_k8s.build(Boom(), backend="local-cluster")


def test_remote_build_refuses_a_plan_with_problems_before_submitting() -> None:
    # The kubernetes backend needs an image and a gs:// cache; both missing, both reported.
    with pytest.raises(PlanError, match=r"2 problems"):
        gokart_k8s.build(Summarise(n=2), backend="kubernetes")


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match=r"backend must be one of inline, local-cluster, kubernetes"):
        gokart_k8s.build(Summarise(n=2), backend="cloud")


def test_a_fully_cached_cluster_run_starts_no_cluster_and_packs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert gokart_k8s.build(Summarise(n=4), backend="inline", reset_register=False) == "total=6"
    capsys.readouterr()
    assert gokart_k8s.build(Summarise(n=4), backend="local-cluster") == "total=6"
    err = capsys.readouterr().err
    assert "nothing to run" in err
    assert "local cluster at" not in err and "code package" not in err and "submitted" not in err
