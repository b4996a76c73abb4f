"""Generators: gcloud, Terraform (parsed back), Karpenter (validated against the CRD), luigi.cfg."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import pytest
import yaml

from gokart_k8s.cost import generate
from gokart_k8s.cost.config import CostOptions
from gokart_k8s.cost.machines import load_machines
from gokart_k8s.cost.sizing import Sizing, needs_for_catalog, size_pools
from gokart_k8s.eviction import Eviction
from gokart_k8s.platforms.gke_standard import GkeStandardProfile
from gokart_k8s.resources import Catalog
from gokart_k8s.settings import load_settings
from gokart_k8s.steps import StepSpec

CRD = Path(__file__).with_name("karpenter.sh_nodepools.v1.14.1.yaml")
OPTIONS = CostOptions(region="asia-northeast1", cluster="ml")


def sizing(cloud: str = "gcp") -> Sizing:
    return size_pools(needs_for_catalog(Catalog().values()), load_machines(), OPTIONS, cloud=cloud)


def unquote(value: Any) -> Any:
    return value[1:-1] if isinstance(value, str) and value.startswith('"') else value


def terraform_resources(text: str) -> dict[str, dict[str, Any]]:
    parsed = hcl2.loads(text)
    out = {}
    for block in parsed["resource"]:
        for kind, resources in block.items():
            assert unquote(kind) == "google_container_node_pool"
            for name, body in resources.items():
                out[unquote(name)] = body
    return out


def test_terraform_parses_back_with_one_resource_per_pool() -> None:
    s = sizing()
    resources = terraform_resources(generate.terraform(s.pools, OPTIONS))
    assert len(resources) == len(s.pools)
    for pool in s.pools:
        body = resources[pool.name.replace("-", "_")]
        assert unquote(body["name"]) == pool.name
        assert unquote(body["location"]) == "asia-northeast1" and unquote(body["cluster"]) == "ml"
        assert body["initial_node_count"] == 0
        scaling = body["autoscaling"][0]
        assert (scaling["total_min_node_count"], scaling["total_max_node_count"]) == (0, 10)
        assert unquote(scaling["location_policy"]) == "ANY"
        node = body["node_config"][0]
        assert unquote(node["machine_type"]) == pool.machine.machine_type
        assert node["spot"] is pool.spot
        taints = node.get("taint", [])
        assert [unquote(t["key"]) for t in taints] == (["cloud.google.com/gke-spot"] if pool.spot else [])
        accelerators = node.get("guest_accelerator", [])
        if pool.machine.gpus:
            assert unquote(accelerators[0]["type"]) == pool.machine.accelerator
            assert accelerators[0]["count"] == pool.machine.gpus
            driver = accelerators[0]["gpu_driver_installation_config"][0]["gpu_driver_version"]
            assert unquote(driver) == "DEFAULT"
        else:
            assert accelerators == []


def test_gcloud_commands_create_each_pool_with_spot_taints_autoscaling_and_gpus() -> None:
    s = sizing()
    text = generate.gcloud(s.pools, OPTIONS)
    commands = [c for c in text.split("\n\n") if "gcloud container node-pools create" in c]
    assert len(commands) == len(s.pools)
    for pool, command in zip(s.pools, commands, strict=True):
        flags = re.findall(r"--[a-z-]+(?:=\S+)?", command)
        assert f"--machine-type={pool.machine.machine_type}" in flags
        assert ("--spot" in flags) is pool.spot
        assert ("--node-taints=cloud.google.com/gke-spot=true:NoSchedule" in flags) is pool.spot
        assert {"--enable-autoscaling", "--total-min-nodes=0", "--total-max-nodes=10", "--location-policy=ANY"} <= set(
            flags
        )
        gpu = [f for f in flags if f.startswith("--accelerator=")]
        if pool.machine.gpus:
            assert gpu == [f"--accelerator=type={pool.machine.accelerator},count=1,gpu-driver-version=default"]
        else:
            assert gpu == []


def crd_schema() -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(CRD.read_text()) if d]
    version = next(v for v in docs[0]["spec"]["versions"] if v["name"] == "v1")
    return version["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def cel_rules(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        out += [v["rule"] for v in node.get("x-kubernetes-validations", [])]
        for value in node.values():
            out += cel_rules(value)
    elif isinstance(node, list):
        for value in node:
            out += cel_rules(value)
    return out


def karpenter_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(generate.karpenter(sizing("aws").pools, OPTIONS)) if d]


def test_karpenter_nodepools_validate_against_the_crd_schema() -> None:
    validator = jsonschema.Draft7Validator(crd_schema())
    pools = [d for d in karpenter_docs() if d["kind"] == "NodePool"]
    assert {p["metadata"]["name"] for p in pools} == {
        f"gokart-{capacity}{gpu}" for capacity in ("on-demand", "spot") for gpu in ("", "-t4", "-l4")
    }
    for pool in pools:
        errors = [e.message for e in validator.iter_errors(pool)]
        assert errors == [], errors


def test_the_schema_check_catches_a_broken_nodepool() -> None:
    # Proves the validation above can fail: a consolidation policy the CRD does not know.
    pool = next(d for d in karpenter_docs() if d["kind"] == "NodePool")
    pool["spec"]["disruption"]["consolidationPolicy"] = "Sometimes"
    del pool["spec"]["template"]["spec"]["nodeClassRef"]["kind"]
    errors = list(jsonschema.Draft7Validator(crd_schema()).iter_errors(pool))
    assert len(errors) == 2


# The CRD's CEL rules (x-kubernetes-validations). jsonschema ignores them; the ones that can apply to a
# generated NodePool are checked in Python below. Not checked: immutability of nodeClassRef group/kind
# (rules on updates, with oldSelf), the replicas rules (static NodePools, never generated), the budgets'
# schedule/duration pairing (no schedule is generated), Gt/Lt/Gte/Lte and minValues (operators not
# generated), and the label-domain rules for kubernetes.io/k8s.io beyond the keys used here.
CHECKED = {
    "self != ''",
    'self in ["karpenter.sh/capacity-type", "karpenter.sh/nodepool"] || '
    '!self.find("^([^/]+)").endsWith("karpenter.sh")',
    'self != "karpenter.sh/nodepool"',
    'self != "kubernetes.io/hostname"',
    "self.all(x, x.operator == 'In' ? x.values.size() != 0 : true)",
}


def test_the_cel_rules_that_apply_hold_and_the_rest_are_listed() -> None:
    rules = set(cel_rules(crd_schema()))
    assert CHECKED <= rules, CHECKED - rules
    assert len(rules) == 16  # a new CRD version with new rules must be reviewed against this list
    for pool in (d for d in karpenter_docs() if d["kind"] == "NodePool"):
        spec = pool["spec"]["template"]["spec"]
        assert all(spec["nodeClassRef"][k] for k in ("group", "kind", "name"))
        for req in spec["requirements"]:
            key = req["key"]
            assert key in ("karpenter.sh/capacity-type", "karpenter.sh/nodepool") or not key.split("/")[0].endswith(
                "karpenter.sh"
            )
            assert key not in ("karpenter.sh/nodepool", "kubernetes.io/hostname")
            assert req["operator"] != "In" or req["values"]


def test_karpenter_pools_are_per_capacity_type_with_limits_disruption_and_a_node_class() -> None:
    docs = karpenter_docs()
    by_name = {d["metadata"]["name"]: d for d in docs}
    spot = by_name["gokart-spot"]["spec"]
    reqs = {r["key"]: r["values"] for r in spot["template"]["spec"]["requirements"]}
    assert reqs["karpenter.sh/capacity-type"] == ["spot"]
    # small and standard on the priced m6i.2xlarge; highmem and highcpu on types without a Tokyo Spot
    # price, still offered so their steps get nodes.
    assert reqs["node.kubernetes.io/instance-type"] == ["m6i.2xlarge", "m6i.4xlarge", "r6i.2xlarge"]
    assert spot["limits"] == {"cpu": "160", "memory": "640Gi"}
    gpu = by_name["gokart-spot-l4"]["spec"]
    gpu_reqs = {r["key"]: r["values"] for r in gpu["template"]["spec"]["requirements"]}
    assert gpu_reqs["karpenter.k8s.aws/instance-gpu-name"] == ["l4"]
    assert gpu["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert gpu["limits"]["nvidia.com/gpu"] == "10"
    assert spot["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    on_demand = by_name["gokart-on-demand"]["spec"]["template"]["spec"]["requirements"]
    assert {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]} in on_demand
    node_class = by_name["default"]
    assert node_class["kind"] == "EC2NodeClass"
    assert set(node_class["spec"]) == {"amiSelectorTerms", "role", "subnetSelectorTerms", "securityGroupSelectorTerms"}


def test_luigi_cfg_sections_are_the_pools_placement_then_uses(luigi_cfg: Any) -> None:
    s = sizing()
    luigi_cfg("[gokart_k8s]\nplatform = gke-standard\n" + generate.luigi_cfg(s.pools, platform="gke-standard"))
    settings = load_settings()
    assert {p.name for p in settings.pools} == {p.name for p in s.pools}
    profile = GkeStandardProfile(settings)
    for rc in Catalog().values():
        for eviction in (Eviction.TOLERATE, Eviction.PROTECT):
            spec = StepSpec("F", "m", "u" * 32, "t", {}, rc, eviction)
            placement = profile.place(spec)
            expected = s.pool_for(rc, spot=eviction is Eviction.TOLERATE)
            assert expected is not None and placement.pool == expected.name


def test_quantities_round_down_so_a_pool_never_claims_more_than_a_node_has() -> None:
    assert generate.cpu_quantity(Decimal("3.4709")) == "3470m"
    assert generate.memory_quantity(Decimal(2**20) * Decimal("12710.9")) == "12710Mi"


def test_autopilot_and_plain_say_what_instead_of_pools() -> None:
    text = generate.autopilot(list(Catalog().values()))
    assert "no node pools" in text
    assert "cloud.google.com/compute-class=Balanced" in text  # highmem: 8 GiB per cpu
    assert "cloud.google.com/gke-accelerator=nvidia-l4" in text
    assert "nothing is\ngenerated" in generate.plain()


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
def test_gke_generators_need_a_region(fmt: str) -> None:
    from gokart_k8s.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="region"):
        getattr(generate, fmt)(sizing().pools, CostOptions())


NODE_CLASS_CRD = Path(__file__).with_name("karpenter.k8s.aws_ec2nodeclasses.v1.14.1.yaml")


def test_the_ec2nodeclass_skeleton_validates_against_its_crd_and_its_cel_rules_that_apply() -> None:
    docs = [d for d in yaml.safe_load_all(NODE_CLASS_CRD.read_text()) if d]
    schema = next(v for v in docs[0]["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]
    node_class = next(d for d in karpenter_docs() if d["kind"] == "EC2NodeClass")
    assert list(jsonschema.Draft7Validator(schema).iter_errors(node_class)) == []
    spec = node_class["spec"]
    # CEL rules checked in Python (the ones a skeleton can break; the kubelet, block-device,
    # capacity-reservation, network-interface and tag-key rules concern fields it does not set):
    assert ("role" in spec) != ("instanceProfile" in spec)  # exactly one of role / instanceProfile
    terms = spec["amiSelectorTerms"]
    alias = terms[0]["alias"]
    assert len(terms) == 1 and set(terms[0]) == {"alias"}  # an alias term stands alone
    assert re.match(r"^[a-zA-Z0-9]+@.+$", alias) and alias.split("@")[0] in ("al2", "al2023", "bottlerocket")
    assert "amiFamily" not in spec  # not needed with an alias
    for key in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
        assert spec[key] and all(t.get("tags") and all(k and v for k, v in t["tags"].items()) for t in spec[key])


def test_karpenter_luigi_cfg_sections_hold_every_class_on_its_capacity_type(luigi_cfg: Any) -> None:
    from gokart_k8s.platforms.eks_karpenter import EksKarpenterProfile

    s = sizing("aws")
    luigi_cfg("[gokart_k8s]\nplatform = eks-karpenter\n" + generate.luigi_cfg(s.pools, platform="eks-karpenter"))
    profile = EksKarpenterProfile(load_settings())
    for rc in Catalog().values():
        for eviction in (Eviction.TOLERATE, Eviction.PROTECT):
            spec = StepSpec("F", "m", "u" * 32, "t", {}, rc, eviction)
            assert profile.check(spec) == [], (rc.name, eviction)
