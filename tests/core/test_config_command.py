"""``gokart-k8s config`` says where every value comes from: decorator, environment, file:line, default."""

from __future__ import annotations

from typing import Any

import pytest

from gokart_k8s.cli import main


def test_config_names_the_source_of_every_value_and_the_cache(
    luigi_cfg: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = luigi_cfg("[gokart_k8s]\nplatform = gke-standard\n\n[gokart_k8s.resources.big]\ncpu = 4\nmemory = 8Gi\n")
    monkeypatch.setenv("GOKART_K8S_NAMESPACE", "ml")
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()

    def line(prefix: str) -> str:
        return next(x for x in lines if x.startswith(prefix))

    assert line("platform = ") == f"platform = gke-standard    from {path}:4 (default plain)"
    assert line("namespace = ") == "namespace = ml    from environment variable GOKART_K8S_NAMESPACE (default default)"
    assert line("image = ") == "image = none    default"
    assert line("cache = ").startswith(f"cache = {path.parent / 'resources'}/    from {path}:2")
    assert line("    big: ").endswith(f"({path}:6)") and line("    small: ").endswith("(built-in)")
    assert not [x for x in lines if " = None" in x]


def test_config_with_a_task_says_whether_the_decorator_or_a_default_set_each_step(luigi_cfg: Any, capsys: Any) -> None:
    path = luigi_cfg("[gokart_k8s]\ndefault_eviction = protect\n")
    assert main(["config", "tests.core.pipelines.Summarise"]) == 0
    out = capsys.readouterr().out
    assert "    Train: resources highmem (@gokart_k8s.job on Train); eviction protect (@gokart_k8s.job on Train)" in out
    assert (
        "    Source: resources standard ([gokart_k8s] default_resources, default); "
        f"eviction protect ([gokart_k8s] default_eviction from {path}:4)"
    ) in out
