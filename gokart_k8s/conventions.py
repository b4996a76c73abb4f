"""Names, labels and exit codes shared by the driver, the manifests and the in-pod command.

Everything that must agree between the process that submits a step and the process that runs it
lives here, so there is one spelling of each.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

#: Prefix of every label and annotation key gokart_k8s writes.
LABEL_PREFIX = "gokart-k8s.io"
LABEL_RUN_ID = f"{LABEL_PREFIX}/run-id"
LABEL_STEP = f"{LABEL_PREFIX}/step"
LABEL_UNIQUE_ID = f"{LABEL_PREFIX}/unique-id"
LABEL_RESOURCE_CLASS = f"{LABEL_PREFIX}/resource-class"
LABEL_EVICTION = f"{LABEL_PREFIX}/eviction"
#: Short hash of what a step's Job writes and where (see :func:`step_identity`).
LABEL_IDENTITY = f"{LABEL_PREFIX}/identity"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "gokart-k8s"

# Exit codes of the in-pod command (``gokart-k8s step``). The Job's podFailurePolicy matches the
# deterministic ones with ``FailJob`` so a user error is not retried six times
# (https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy).
EXIT_OK = 0
#: The step's own code raised: retrying the same code on the same input will fail again.
EXIT_USER_ERROR = 42
#: The image's code computes another unique id than the driver's: rebuild or pin the image.
EXIT_CODE_SKEW = 43
#: The step received SIGTERM (eviction, Spot preemption) and stopped after its final checkpoint.
#: 143 = 128 + SIGTERM, what a shell reports for a process ended by SIGTERM.
EXIT_EVICTED = 143
#: Exit codes that fail the Job at once instead of spending its retry budget.
DETERMINISTIC_EXIT_CODES = (EXIT_USER_ERROR, EXIT_CODE_SKEW)

#: Environment variable naming the run that submitted a pod. It changes on every run, so it is left
#: out of a step's identity: a rerun must find (adopt) the Jobs of an earlier run.
RUN_ID_ENV = "GOKART_K8S_RUN_ID"

_DNS_LABEL_MAX = 63
_IDENTITY_LENGTH = 6
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def is_dns1123_label(value: str) -> bool:
    """True if ``value`` is a valid DNS-1123 label (lower case, digits, '-', at most 63 chars)."""
    return len(value) <= _DNS_LABEL_MAX and bool(_DNS1123_LABEL_RE.match(value))


def is_label_value(value: str) -> bool:
    """True if ``value`` is a valid Kubernetes label value (at most 63 chars, alnum at both ends)."""
    return len(value) <= _DNS_LABEL_MAX and bool(_LABEL_VALUE_RE.match(value))


def label_value(text: str) -> str:
    """Turn arbitrary text into a valid label value, keeping it recognisable.

    Invalid characters become '-', and text longer than 63 characters is cut and suffixed with a
    short hash so two long values stay distinct
    (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip("-_.")
    if len(cleaned) > _DNS_LABEL_MAX:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        cleaned = cleaned[: _DNS_LABEL_MAX - 9].rstrip("-_.") + "-" + digest
    return cleaned


def dns_label(text: str, *, max_length: int = _DNS_LABEL_MAX) -> str:
    """Turn arbitrary text into a DNS-1123 label of at most ``max_length`` characters."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if len(cleaned) > max_length:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        cleaned = cleaned[: max_length - 9].rstrip("-") + "-" + digest
    return cleaned or "x"


def step_identity(image: str, env: Mapping[str, str]) -> str:
    """A short hash of everything besides the step's parameters that changes what its Job writes.

    gokart's ``unique_id`` covers the task's significant parameters, but not *where* the output
    goes (the workspace is an insignificant parameter, carried to the pod in the environment), nor
    the code that computes it (the image), nor the settings that reach the pod through its
    environment. Two drivers whose steps differ only in those must never adopt each other's Jobs:
    a Job writing to another cache would be reported done while this run's cache stays empty.
    The run id is left out (:data:`RUN_ID_ENV`), so a rerun still adopts an earlier run's Jobs.
    """
    significant = {k: v for k, v in env.items() if k != RUN_ID_ENV}
    text = json.dumps({"image": image, "env": significant}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:_IDENTITY_LENGTH]


def job_name(step_family: str, unique_id: str, identity: str = "", *, variant: str = "") -> str:
    """The deterministic Job name of a step: the same step always gets the same name.

    A resubmission (a restarted driver, a retried request) therefore finds the existing Job
    (409 AlreadyExists) instead of creating a duplicate. ``identity`` (:func:`step_identity`) is
    part of the name, so the same step writing to another cache or built from another image gets
    another Job. ``variant`` is appended as is (``od`` for the on-demand fallback); the step
    family is shortened, never the hashes. Job names must be DNS-1123 labels of at most 63 characters
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#writing-a-job-spec).
    """
    suffix = unique_id[:12].lower() + (f"-{identity[:_IDENTITY_LENGTH]}" if identity else "")
    suffix += f"-{variant}" if variant else ""
    head = dns_label(step_family, max_length=_DNS_LABEL_MAX - len(suffix) - 1)
    return f"{head}-{suffix}"


def dump_yaml(obj: Any, **options: Any) -> str:
    """``obj`` as YAML the way every file gokart_k8s writes spells it: keys in the order built, and
    no anchors or aliases.

    PyYAML writes a dict or list that occurs twice in one document once, as an anchor ``&id001``,
    and then as an alias ``*id001`` (the CronJob's labels, shared by its jobTemplate and its pod
    template). ``kubectl`` resolves them, but a reviewer of the YAML in git sees a puzzle, and a
    change to one place silently changes the other; so every value is written out in full
    (``ignore_aliases``, https://pyyaml.org/wiki/PyYAMLDocumentation, "Dumper").
    """
    import yaml

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return str(yaml.dump(obj, Dumper=_NoAliases, sort_keys=False, **options))


#: Random chaos of the embedded local cluster, the one default of ``run --chaos`` and
#: ``local-cluster start --chaos``: 10 disruptions per minute of running pod time (one every 6 s on
#: average) with seed 3, which preempts the example's long TrainModel step twice mid-training (it
#: resumes from its checkpoint, then moves to on-demand capacity) and tries, and fails, to evict the
#: protected EvaluateModel. Pass a seed and rate for other disruption plans.
CHAOS_RATE = 10.0
CHAOS_SEED = 3
