"""Settings precedence: decorator > environment > luigi.cfg section > built-in default."""

from __future__ import annotations

from typing import Any

import gokart
import pytest

import gokart_k8s
from gokart_k8s import ConfigurationError, Eviction, Settings, load_settings
from gokart_k8s.settings import check_config_files, field_docs
from gokart_k8s.steps import spec_for
from tests.core.pipelines import Source, Train


def test_built_in_defaults_apply_with_no_config() -> None:
    settings = load_settings()
    assert settings == Settings(catalog=settings.catalog)
    assert settings.platform == "plain"
    assert settings.default_eviction is Eviction.TOLERATE
    spec = spec_for(Source(), settings)
    assert (spec.resource_class.name, spec.eviction) == ("standard", Eviction.TOLERATE)


def test_the_config_section_overrides_the_built_in_defaults(luigi_cfg: Any) -> None:
    luigi_cfg(
        "[gokart_k8s]\nplatform = gke-autopilot\ndefault_resources = small\n"
        "default_eviction = protect\nmax_concurrent_steps = 4\n"
    )
    settings = load_settings()
    assert (settings.platform, settings.max_concurrent_steps) == ("gke-autopilot", 4)
    spec = spec_for(Source(), settings)
    assert (spec.resource_class.name, spec.eviction) == ("small", Eviction.PROTECT)


def test_environment_variables_override_the_config_file(luigi_cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke-autopilot\ndefault_eviction = protect\n")
    monkeypatch.setenv("GOKART_K8S_PLATFORM", "eks-karpenter")
    monkeypatch.setenv("GOKART_K8S_DEFAULT_EVICTION", "tolerate")
    settings = load_settings()
    assert settings.platform == "eks-karpenter"
    assert settings.default_eviction is Eviction.TOLERATE


def test_the_decorator_overrides_config_and_environment(luigi_cfg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    luigi_cfg("[gokart_k8s]\ndefault_resources = small\ndefault_eviction = tolerate\n")
    monkeypatch.setenv("GOKART_K8S_DEFAULT_RESOURCES", "highcpu")
    spec = spec_for(Train(source=Source()), load_settings())
    assert (spec.resource_class.name, spec.eviction) == ("highmem", Eviction.PROTECT)


def test_resource_classes_come_from_their_own_config_sections(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s.resources.highmem]\ncpu = 8\nmemory = 64Gi\nspot = false\n")
    settings = load_settings()
    assert settings.catalog["highmem"].memory == "64Gi"
    assert settings.catalog["highmem"].spot is False
    assert spec_for(Train(source=Source()), settings).resource_class.memory == "64Gi"


def test_a_bad_quantity_in_the_catalog_names_file_line_class_and_field(luigi_cfg: Any) -> None:
    path = luigi_cfg("[gokart_k8s.resources.big]\ncpu = 4\nmemory = 4 GB\n")
    with pytest.raises(ConfigurationError, match=rf"{path}:3: resource class 'big', field 'memory': '4 GB'"):
        load_settings()


def test_an_unknown_setting_is_refused_with_file_line_and_the_valid_ones(luigi_cfg: Any) -> None:
    path = luigi_cfg("[gokart_k8s]\nplatfrom = gke-standard\n")
    with pytest.raises(ConfigurationError, match=rf"{path}:4: unknown setting 'platfrom'.*valid settings: .*platform"):
        load_settings()


def test_a_bad_platform_or_number_is_refused_with_what_is_valid(
    luigi_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    luigi_cfg("[gokart_k8s]\nplatform = gke\n")
    with pytest.raises(
        ConfigurationError, match=r"'platform': must be one of plain, gke-standard, gke-autopilot, eks-karpenter"
    ):
        load_settings()
    luigi_cfg("")
    monkeypatch.setenv("GOKART_K8S_MAX_CONCURRENT_STEPS", "many")
    with pytest.raises(ConfigurationError, match=r"environment variable GOKART_K8S_MAX_CONCURRENT_STEPS"):
        load_settings()


def test_a_config_file_that_does_not_parse_is_reported_with_file_and_line(tmp_path: Any) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("[gokart_k8s]\nplatform = plain\nthis line has no equals sign\n")
    with pytest.raises(ConfigurationError, match=rf"{bad}:3: the config file does not parse"):
        check_config_files([str(bad)])


def test_an_unknown_default_class_is_refused_with_the_known_classes(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s]\ndefault_resources = tiny\n")
    with pytest.raises(ConfigurationError, match=r"unknown default resource class 'tiny'. Known classes"):
        load_settings()


def test_node_pools_come_from_their_own_config_sections(luigi_cfg: Any) -> None:
    luigi_cfg(
        "[gokart_k8s.pools.spot-small]\ncpu = 4\nmemory = 16Gi\nspot = true\n"
        "labels = cloud.google.com/gke-nodepool=spot-small\ntaints = cloud.google.com/gke-spot=true:NoSchedule\n"
    )
    (pool,) = load_settings().pools
    assert pool.name == "spot-small" and pool.spot
    assert pool.labels == {"cloud.google.com/gke-nodepool": "spot-small"}
    assert pool.taints[0].as_dict() == {"key": "cloud.google.com/gke-spot", "value": "true", "effect": "NoSchedule"}


def test_node_pools_autoscale_from_zero_to_three_nodes_unless_told_otherwise(luigi_cfg: Any) -> None:
    luigi_cfg(
        "[gokart_k8s.pools.a]\ncpu = 4\nmemory = 16Gi\n"
        "[gokart_k8s.pools.b]\ncpu = 4\nmemory = 16Gi\nmin_nodes = 1\nmax_nodes = 10\n"
        "[gokart_k8s.pools.c]\ncpu = 4\nmemory = 16Gi\nmin_nodes = 5\n"
    )
    pools = {p.name: (p.min_nodes, p.max_nodes) for p in load_settings().pools}
    assert pools == {"a": (0, 3), "b": (1, 10), "c": (5, 5)}


def test_a_pool_minimum_above_its_maximum_is_refused_with_both_values(luigi_cfg: Any) -> None:
    luigi_cfg("[gokart_k8s.pools.a]\ncpu = 4\nmemory = 16Gi\nmin_nodes = 4\nmax_nodes = 2\n")
    with pytest.raises(ConfigurationError, match="min_nodes=4 above max_nodes=2; set min_nodes <= max_nodes"):
        load_settings()


def test_every_setting_is_documented() -> None:
    for name, _default, doc in field_docs():
        assert len(doc) > 20, f"setting {name} needs a documentation string"


def test_settings_are_not_a_module_level_global() -> None:
    assert load_settings() is not load_settings()


def test_one_off_resource_classes_do_not_need_the_catalog() -> None:
    @gokart_k8s.job(resources=gokart_k8s.ResourceClass(cpu="3", memory="3Gi"))
    class OneOff(gokart.TaskOnKart[Any]):
        pass

    spec = spec_for(OneOff(), load_settings())
    assert spec.resource_class.cpu == "3" and spec.resource_class.name == ""


def test_the_config_search_path_known_without_luigi_is_luigis_own() -> None:
    import json
    import subprocess
    import sys

    from gokart_k8s.settings import LUIGI_CONFIG_PATHS

    # In a fresh process: this test's fixtures patch luigi's list in this one.
    code = (
        "import json; from luigi.configuration.cfg_parser import LuigiConfigParser as P; "
        "print(json.dumps(P._config_paths))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert tuple(json.loads(done.stdout)) == LUIGI_CONFIG_PATHS


def test_secret_env_is_read_as_references_and_a_bad_one_names_the_setting_and_the_form(
    luigi_cfg: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    luigi_cfg("[gokart_k8s]\nsecret_env = GCS_CREDENTIAL=gcs-key/key.json, API_TOKEN=api/token\n")
    refs = load_settings().secret_env
    assert [(r.var, r.secret, r.key) for r in refs] == [
        ("GCS_CREDENTIAL", "gcs-key", "key.json"),
        ("API_TOKEN", "api", "token"),
    ]
    # Shown (`gokart-k8s config`) in the spelling it is written in; none when there are none.
    assert str(refs) == "GCS_CREDENTIAL=gcs-key/key.json,API_TOKEN=api/token"
    assert str(Settings().secret_env) == "none"
    monkeypatch.setenv("GOKART_K8S_SECRET_ENV", "GCS_CREDENTIAL=gcs-key")
    with pytest.raises(
        ConfigurationError, match=r"GOKART_K8S_SECRET_ENV: setting 'secret_env': .* must be VAR=SECRET/KEY"
    ):
        load_settings()
    monkeypatch.setenv("GOKART_K8S_SECRET_ENV", "GCS_CREDENTIAL=Not_A_Secret/key")
    with pytest.raises(ConfigurationError, match="is not a Secret name"):
        load_settings()
