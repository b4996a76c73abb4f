"""gokart_k8s: run gokart pipelines on Kubernetes, each step its own Job on the right pool.

Glossary (the same words in code, CLI, docs and messages):

step
    one gokart task, run as one unit: in this process, in its own process, or as its own Job.
resource class
    what a step needs: cpu, memory, GPU, disk, and whether Spot is allowed (:class:`ResourceClass`).
eviction tolerance
    ``tolerate`` (may be evicted and resumes) or ``protect`` (must not be evicted) (:class:`Eviction`).
platform profile
    how classes and tolerance become selectors, tolerations and annotations on one platform
    (``plain``, ``gke-standard``, ``gke-autopilot``, ``eks-karpenter``).
placement
    the result for one step: which pool, Spot or not, and the Kubernetes fields that say so.
cache
    gokart's workspace (a local directory or ``gs://``): every finished step's output.
checkpoint
    intermediate state a long step saves so a restarted attempt continues (:class:`Checkpoint`).
rehearsal
    a run on the embedded local cluster, each step a Job whose pod is a local process.
termination budget
    the seconds a step gets after SIGTERM to save a final checkpoint; the step supervisor (the
    parent process of ``gokart-k8s step``) ends the attempt with exit 143 when they are spent.

Phases: *declare* (:func:`job`, at import), *plan* (``gokart-k8s plan``: every problem before any
side effect), *launch* (a backend submits steps), *run in pod* (``gokart-k8s step``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gokart_k8s.declaration import StepDeclaration, declaration_of, job
from gokart_k8s.errors import (
    CacheError,
    ClusterError,
    CodeSkewError,
    ConfigurationError,
    DeclarationError,
    GokartK8sError,
    PlanError,
    QuantityError,
    StepEvictedError,
    StepFailedError,
    SubmissionError,
    TaskNotFoundError,
)
from gokart_k8s.eviction import Eviction
from gokart_k8s.resources import Catalog, ResourceClass
from gokart_k8s.settings import Settings, load_settings

if TYPE_CHECKING:
    from gokart_k8s.cache.checkpoints import Checkpoint
    from gokart_k8s.runner import build, enable_remote_execution

__version__ = "0.1.0"

__all__ = [
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
]


def __getattr__(name: str) -> Any:
    # Checkpoint lives with the cache (it may reach GCS); import it only when asked for, so
    # ``import gokart_k8s`` stays light for a local run.
    if name == "Checkpoint":
        from gokart_k8s.cache.checkpoints import Checkpoint

        return Checkpoint
    if name in ("build", "enable_remote_execution"):
        from gokart_k8s import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'gokart_k8s' has no attribute {name!r}")
