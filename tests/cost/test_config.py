"""Cost options from luigi.cfg: [gokart_k8s] region, [gokart_k8s.cost], [gokart_k8s.expected_runtime]."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from gokart_k8s.cli import main
from gokart_k8s.cost.config import expected_runtime_for, load_cost_options
from gokart_k8s.errors import ConfigurationError
from gokart_k8s.settings import load_settings


def test_the_cost_section_tunes_sizing_and_generation(luigi_cfg: Any, capsys: Any) -> None:
    luigi_cfg(
        "[gokart_k8s]\nplatform = gke-standard\nregion = us-central1\n"
        "[gokart_k8s.cost]\nmax_nodes = 3\ncluster = ml\nlocation_policy = BALANCED\n"
        "daemonset_cpu = 200m\ndaemonset_memory = 256Mi\nmax_stranded_share = 0.5\n"
        "spot_preemptions_per_hour = 0.2\ncheckpoint_interval = 15m\n"
    )
    options = load_cost_options(region="us-central1")
    assert (options.daemonset_cpu, options.daemonset_memory) == (Decimal("0.2"), Decimal(256 * 2**20))
    assert (options.spot_preemptions_per_hour, options.checkpoint_interval_seconds) == (Decimal("0.2"), 900)
    assert main(["pools", "--format", "gcloud"]) == 0
    out = capsys.readouterr().out
    assert "--cluster=ml" in out and "--total-max-nodes=3" in out and "--location-policy=BALANCED" in out


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_nodez = 3", "unknown key"),
        ("max_stranded_share = 2", "from 0 to 1"),
        ("location_policy = SOMEWHERE", "ANY or BALANCED"),
        ("daemonset_memory = 1 GB", "daemonset_memory"),
        ("checkpoint_interval = often", "checkpoint_interval"),
    ],
)
def test_a_bad_cost_setting_is_one_error_naming_it(luigi_cfg: Any, text: str, message: str) -> None:
    path = luigi_cfg(f"[gokart_k8s.cost]\n{text}\n")
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_cost_options(region="us-central1")
    assert str(caught.value).startswith(f"{path}:4: [gokart_k8s.cost]")  # file and line of the key


def test_expected_runtimes_come_from_their_section_by_task_family(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s.expected_runtime]\nTrainModel = 3h\n")
    options = load_cost_options()
    assert expected_runtime_for(options, "TrainModel") == 3 * 3600
    assert expected_runtime_for(options, "Other") is None


def test_the_region_is_a_setting_and_an_environment_variable(luigi_cfg: Any, monkeypatch: Any) -> None:
    luigi_cfg("[gokart_k8s]\nregion = us-central1\n")
    assert load_settings().region == "us-central1"
    monkeypatch.setenv("GOKART_K8S_REGION", "asia-northeast1")
    assert load_settings().region == "asia-northeast1"


def test_without_a_region_the_aws_region_cannot_be_guessed() -> None:
    from gokart_k8s.cost.config import CostOptions

    with pytest.raises(ConfigurationError, match="aws_region"):
        CostOptions(region="europe-west4").ec2_region()
    assert CostOptions(region="europe-west4", aws_region="eu-west-1").ec2_region() == "eu-west-1"
