"""A rehearsal's cluster autoscales from empty pools and says how many node-hours the run used."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gokart_k8s.cli import main


def test_a_rehearsal_starts_with_empty_pools_scales_up_and_reports_node_hours_by_pool(
    tmp_path: Path, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("GOKART_K8S_PLATFORM", raising=False)
    argv = ["run", "tests.core.pipelines.Summarise", "--n", "2", "--backend", "local-cluster"]
    argv += ["--workspace", str(tmp_path / "ws")]
    assert main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "(cluster-autoscaler, time scale 60)" in err
    # Every node was added for the run (the pools start at min_nodes = 0) and is counted.
    total = re.search(r"node-hours by pool \(cluster time, 60x the wall clock\): ([0-9.]+) in all", err)
    assert total and float(total.group(1)) > 0, err
    assert re.search(r"^  default: [0-9.]+ h, \d+ node\(s\)", err, re.MULTILINE), err
