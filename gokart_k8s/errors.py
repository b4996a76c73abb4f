"""Every exception gokart_k8s raises on purpose, in one place.

The tree::

    GokartK8sError                      base of everything below
    ├── DeclarationError (TypeError)    bad @gokart_k8s.job(...) arguments, unknown resource class
    ├── QuantityError (ValueError)      a cpu/memory/disk value not in Kubernetes spelling
    ├── ConfigurationError (ValueError) settings, catalog or platform profile problems (file and line)
    ├── TaskNotFoundError (LookupError) TASK on the command line cannot be imported or does not exist
    ├── PlanError (ValueError)          one or more steps cannot be honoured; lists *every* problem
    ├── ClusterError                    the cluster is unreachable, forbidden, or refused an object
    │   ├── SubmissionError             the API refused a Job (the ApiException is the __cause__)
    │   └── ClusterUnreachableError     no answer at all (connection refused, timed out, reset)
    ├── CodeSkewError                   the image computes another unique id than the driver did
    ├── StepFailedError                 a step failed permanently (exit code, reason, advice)
    ├── StepEvictedError                a step was evicted or preempted (retryable, never the user's fault)
    ├── CacheError                      the cache (GCS bucket or local directory) cannot be used
    └── CodePackageError                the code package is too large, missing, or not what was packed

Messages follow one formula: *what* (the step, class or field), *why* (the rule), and *what to
change*. Client-library errors are chained as ``__cause__``, never swallowed.
"""

from __future__ import annotations

from collections.abc import Sequence


class GokartK8sError(Exception):
    """Base class of every error gokart_k8s raises on purpose."""


class DeclarationError(GokartK8sError, TypeError):
    """A ``@gokart_k8s.job(...)`` declaration is wrong; raised at decoration time."""


class QuantityError(GokartK8sError, ValueError):
    """A resource quantity is not valid Kubernetes spelling (``500m``, ``2``, ``16Gi``)."""


class ConfigurationError(GokartK8sError, ValueError):
    """The settings, the resource-class catalog or the platform profile is wrong."""


class TaskNotFoundError(GokartK8sError, LookupError):
    """The task named on the command line cannot be imported or does not exist."""


class PlanError(GokartK8sError, ValueError):
    """One or more steps cannot run as declared; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[str], *, consequence: str = "nothing was submitted") -> None:
        # ``consequence`` says what did not happen: a run submits nothing, a render writes no file.
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the pipeline; {consequence}:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


class ClusterError(GokartK8sError):
    """The Kubernetes cluster cannot be reached or used (kubeconfig, network, RBAC)."""


class SubmissionError(ClusterError):
    """The Kubernetes API refused an object gokart_k8s submitted."""


class ClusterUnreachableError(ClusterError):
    """The Kubernetes API did not answer at all: worth retrying for a while, unlike a refusal."""


class CodeSkewError(GokartK8sError):
    """The code in the pod computes a different unique id than the driver: the image is stale."""


class StepFailedError(GokartK8sError):
    """A step failed for a reason retrying will not fix (user error, out of memory, deadline)."""

    def __init__(self, message: str, *, step: str = "", reason: str = "", advice: str = "") -> None:
        self.step = step
        self.reason = reason
        self.advice = advice
        super().__init__(message if not advice else f"{message}\n{advice}")


class StepEvictedError(GokartK8sError):
    """A step was evicted or preempted; it resumes from its cache and checkpoints when retried."""


class CacheError(GokartK8sError):
    """The cache cannot be used: missing bucket, no credentials, permission denied, bad path."""


class CodePackageError(GokartK8sError):
    """The code package cannot be built (too large), stored, found, or trusted (hash mismatch)."""
