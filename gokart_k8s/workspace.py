"""The cache location (gokart's ``workspace_directory``) and what a run must do before using it."""

from __future__ import annotations

from typing import Any

#: Environment variable that carries the workspace into a step's pod (it is an insignificant
#: parameter, so gokart does not serialise it with the task).
WORKSPACE_ENV = "GOKART_K8S_WORKSPACE"


def workspace_directory() -> str:
    """``[TaskOnKart] workspace_directory`` as gokart resolves it (default ``./resources/``)."""
    import gokart

    return str(gokart.TaskOnKart().workspace_directory)


def set_workspace_directory(path: str) -> None:
    import luigi.configuration

    luigi.configuration.get_config().set("TaskOnKart", "workspace_directory", path)


def is_remote(path: str) -> bool:
    return path.startswith("gs://") or path.startswith("s3://")


def prepare(path: str) -> None:
    """Make ``path`` usable before any step runs: for gs://, install the google-cloud-storage
    filesystem at gokart's seam and check bucket, credentials and permission (a preflight), so a
    problem surfaces now rather than in the middle of a run."""
    if path.startswith("gs://"):
        from gokart_k8s.cache.gcs import install_gcs_filesystem
        from gokart_k8s.cache.preflight import preflight_cache

        install_gcs_filesystem()
        preflight_cache(path)


def find_complete(tasks: list[Any]) -> set[str]:
    """task_ids of the tasks whose outputs are all in the cache, checked in one batch."""
    from gokart_k8s.cache.completeness import find_complete as batch

    return {t.task_id for t in batch(tasks)}


def output_locations(task: Any) -> list[str]:
    """Where ``task``'s outputs are: gs:// URLs, or absolute local paths (ready to copy into a notebook)."""
    import os

    import luigi.task

    paths: list[str] = []
    for target in luigi.task.flatten(task.output()):
        path = target.path() if callable(getattr(target, "path", None)) else getattr(target, "path", None)
        if not path:
            continue
        path = str(path)
        paths.append(path if "://" in path else os.path.abspath(path))
    return paths
