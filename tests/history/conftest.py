"""The history tests run like the core tests: an isolated luigi config and directory per test."""

from gokart_k8s.testing.cluster import local_cluster_factory
from gokart_k8s.testing.gcs import gcs_bucket, gcs_emulator
from tests.core.conftest import _isolated, _task_register, luigi_cfg

__all__ = ["_isolated", "_task_register", "gcs_bucket", "gcs_emulator", "local_cluster_factory", "luigi_cfg"]
