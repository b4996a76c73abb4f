"""The cache of gokart_k8s: where step outputs and checkpoints live (a local directory or gs://).

- :mod:`gokart_k8s.cache.gcs` — gs:// for gokart through google-cloud-storage, create-only commits.
- :mod:`gokart_k8s.cache.completeness` — which steps are already cached, with few listings.
- :mod:`gokart_k8s.cache.checkpoints` — intermediate state of a long step, resumed after eviction.
- :mod:`gokart_k8s.cache.preflight` — refuse an unusable cache before anything starts.

See docs/cache.md.
"""

from __future__ import annotations
