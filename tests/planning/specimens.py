"""Steps and settings for the planning tests, built directly: no gokart task is needed."""

from __future__ import annotations

from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import BUILTIN_CLASSES, ResourceClass
from gokart_k8s.settings import PLATFORMS, Settings
from gokart_k8s.steps import StepSpec

PLATFORM_NAMES = list(PLATFORMS)
CLASS_NAMES = list(BUILTIN_CLASSES)
EVICTIONS = list(Eviction)
#: Every platform x built-in resource class x eviction tolerance, with readable ids.
COMBINATIONS = [(p, c, e) for p in PLATFORM_NAMES for c in CLASS_NAMES for e in EVICTIONS]
COMBINATION_IDS = [f"{p}-{c}-{e.value}" for p, c, e in COMBINATIONS]

UNIQUE_ID = "0123456789abcdef0123456789abcdef"


def make_spec(
    resource_class: str | ResourceClass = "standard",
    eviction: Eviction = Eviction.TOLERATE,
    *,
    family: str = "TrainModel",
    unique_id: str = UNIQUE_ID,
    max_runtime_seconds: int | None = None,
) -> StepSpec:
    rc = BUILTIN_CLASSES[resource_class] if isinstance(resource_class, str) else resource_class
    return StepSpec(
        family=family,
        module="pipeline.models",
        unique_id=unique_id,
        task_id=f"{family}_10_{unique_id[:10]}",
        params={"epochs": "10"},
        resource_class=rc,
        eviction=eviction,
        max_runtime_seconds=max_runtime_seconds,
    )


def settings_for(platform: str, **changes: object) -> Settings:
    return Settings(platform=platform, **changes)  # type: ignore[arg-type]
