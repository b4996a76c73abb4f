"""The public surface of gokart_k8s is exactly what __all__ promises."""

from __future__ import annotations

import gokart_k8s


def test_every_public_name_is_importable_from_the_package() -> None:
    for name in gokart_k8s.__all__:
        assert getattr(gokart_k8s, name) is not None, name


def test_the_public_names_are_the_documented_ones() -> None:
    assert set(gokart_k8s.__all__) == {
        "CacheError",
        "Catalog",
        "Checkpoint",
        "ClusterError",
        "CodeSkewError",
        "ConfigurationError",
        "DeclarationError",
        "Eviction",
        "GokartK8sError",
        "PlanError",
        "QuantityError",
        "ResourceClass",
        "Settings",
        "StepDeclaration",
        "StepEvictedError",
        "StepFailedError",
        "SubmissionError",
        "TaskNotFoundError",
        "build",
        "declaration_of",
        "enable_remote_execution",
        "job",
        "load_settings",
    }


def test_errors_subclass_the_matching_builtins() -> None:
    assert issubclass(gokart_k8s.DeclarationError, TypeError)
    assert issubclass(gokart_k8s.QuantityError, ValueError)
    assert issubclass(gokart_k8s.ConfigurationError, ValueError)
    assert issubclass(gokart_k8s.TaskNotFoundError, LookupError)
    for name in gokart_k8s.__all__:
        obj = getattr(gokart_k8s, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, gokart_k8s.GokartK8sError)


def test_every_setting_is_in_the_readme_configuration_reference() -> None:
    from pathlib import Path

    from gokart_k8s.settings import field_docs

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name, _default, _doc in field_docs():
        assert f"| `{name}` |" in readme, name
