"""Small promises of the command line: one chaos default, and messages that read as English."""

from __future__ import annotations

from pathlib import Path

from gokart_k8s.cli import build_parser
from gokart_k8s.conventions import CHAOS_RATE, CHAOS_SEED

REPO = Path(__file__).resolve().parents[2]


def test_run_and_local_cluster_start_have_one_chaos_default_and_the_docs_say_it() -> None:
    from gokart_k8s.localcluster import ChaosConfig

    start = build_parser().parse_args(["local-cluster", "start", "--chaos"])
    assert (start.chaos_seed, start.chaos_rate) == (CHAOS_SEED, CHAOS_RATE)
    assert (ChaosConfig().seed, ChaosConfig().rate) == (CHAOS_SEED, CHAOS_RATE)
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()  # type: ignore[union-attr]
    assert f"default {CHAOS_SEED})" in run_help and f"default {CHAOS_RATE})" in run_help
    docs = (REPO / "docs" / "local-cluster.md").read_text() + (REPO / "README.md").read_text()
    assert f"Default seed {CHAOS_SEED} and rate {CHAOS_RATE:g} per pod-minute" in docs
    assert f"default seed {CHAOS_SEED}, {CHAOS_RATE:g} disruptions per pod-minute" in docs
