"""The kubeconfig file, read once before the client reads it, so a broken file is one clear error.

The official client parses a kubeconfig with PyYAML and then indexes into it: a file that is not
YAML ends in ``yaml.scanner.ScannerError``, one that is YAML but not a mapping (a stray word, a
list) in ``TypeError``, a binary file in ``UnicodeDecodeError`` -- each a traceback that names
neither the file nor what to do. :func:`check_kubeconfig` finds those cases first and raises a
:class:`~gokart_k8s.errors.ClusterError` that names the file and the fix; everything past them
(missing contexts, bad certificates) stays the client's to report
(https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/).
"""

from __future__ import annotations

from pathlib import Path

from gokart_k8s.errors import ClusterError

__all__ = ["check_kubeconfig"]

_FIX = (
    "Fix or replace that file (`kubectl config view` shows how kubectl reads it; GKE: `gcloud container "
    "clusters get-credentials NAME --region REGION` writes a new one), or point KUBECONFIG at a working one."
)


def check_kubeconfig(path: str) -> None:
    """Raise :class:`ClusterError` naming ``path`` if it is not a YAML mapping; an empty file is left to the client."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ClusterError(f"The kubeconfig {path} is not a kubeconfig: it is not text. {_FIX}") from None
    except OSError as exc:
        raise ClusterError(f"The kubeconfig {path} cannot be read ({exc.strerror or exc}). {_FIX}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ClusterError(
            f"The kubeconfig {path} is not a kubeconfig: it does not parse as YAML{where} ({problem}). {_FIX}"
        ) from None
    if document is not None and not isinstance(document, dict):
        raise ClusterError(
            f"The kubeconfig {path} is not a kubeconfig: it is YAML, but a {type(document).__name__}, not a "
            f"mapping with clusters, users and contexts. {_FIX}"
        )
