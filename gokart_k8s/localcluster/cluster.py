"""``LocalCluster``: the API server, controllers, scheduler, kubelet and chaos, wired together.

Start-up creates the store (with the default namespaces), one Node per ``NodePool.nodes`` of each
pool (named ``<pool>-<i>``, labelled with the pool's labels plus ``kubernetes.io/hostname``,
tainted with the pool's taints, ``capacity`` = ``allocatable`` = ``pool.capacity()``), then
starts the threads and binds the HTTP port; it takes a few tens of milliseconds. ``stop()`` kills
every pod process group and joins the threads, so nothing outlives the cluster.
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..conventions import dump_yaml
from ..errors import ClusterError
from ..pools import NodePool
from . import resources as r
from .autoscaler import Autoscaler, Autoscaling, NodeLedger
from .autoscaler.core import POOL_ANNOTATION
from .chaos import ChaosConfig, ChaosEvent, ChaosMonkey, Disruptor
from .controllers import Clock, CronJobController, JobController, utc_now
from .kubelet import Kubelet
from .scheduler import Scheduler
from .server import ApiServer
from .status import ApiError
from .store import Obj, Store, timestamp
from .validation import admit
from .warm.client import PrestartedServer

if TYPE_CHECKING:  # the kubernetes client is imported only inside api_client()
    from kubernetes.client import ApiClient

SPOT_ANNOTATION = "gokart-k8s.io/spot"
NODE_POOL_LABEL = "gokart-k8s.io/node-pool"
CONTEXT_NAME = "gokart-k8s-local"


class LocalClusterError(ClusterError):
    """The local cluster refused a request made through its Python API."""


class EvictionRefusedError(LocalClusterError):
    """An eviction was refused (429) because the pod is protected from disruption."""


def default_pools() -> list[NodePool]:
    """One node with this machine's CPUs and memory."""
    memory_kib = 8 * 1024 * 1024
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    memory_kib = int(line.split()[1])
                    break
    except OSError:
        pass
    return [NodePool("default", cpu=str(os.cpu_count() or 1), memory=f"{memory_kib}Ki")]


def node_manifest(pool: NodePool, index: int | str) -> Obj:
    """Node ``<pool>-<index>`` (or the node named ``index``) of ``pool``, Ready."""
    name = index if isinstance(index, str) else f"{pool.name}-{index}"
    capacity = pool.capacity()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    now = timestamp()
    return {
        "metadata": {
            "name": name,
            "labels": {
                **pool.labels,
                # Which pool the node belongs to, whatever the platform's own labels say (run records).
                NODE_POOL_LABEL: pool.name,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
            },
            "annotations": {SPOT_ANNOTATION: "true" if pool.spot else "false", POOL_ANNOTATION: pool.name},
        },
        "spec": {"taints": [t.as_dict() for t in pool.taints]} if pool.taints else {},
        "status": {
            "capacity": dict(capacity),
            "allocatable": dict(capacity),
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "architecture": arch,
                "bootID": "",
                "containerRuntimeVersion": "local://subprocess",
                "kernelVersion": platform.release(),
                "kubeProxyVersion": "",
                "kubeletVersion": "v1.31.0-local",
                "machineID": "",
                "operatingSystem": "linux",
                "osImage": "gokart-k8s local cluster",
                "systemUUID": "",
            },
        },
    }


class LocalCluster:
    """An embedded Kubernetes cluster for rehearsals and tests; see docs/local-cluster.md.

    >>> with LocalCluster() as cluster:
    ...     api = cluster.api_client()
    """

    def __init__(
        self,
        pools: Sequence[NodePool] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pod_env: Mapping[str, str] | None = None,
        workdir: Path | None = None,
        chaos: ChaosConfig | None = None,
        clock: Clock | None = None,
        backoff_base_seconds: float = 0.1,
        backoff_max_seconds: float = 2.0,
        node_return_seconds: float = 5.0,
        spot_grace_seconds: float = 15.0,
        max_events: int = 50_000,
        cronjob_sync_seconds: float = 1.0,
        bookmark_seconds: float = 1.0,
        poll_seconds: float = 0.2,
        autoscaling: Autoscaling | None = None,
        warm_interpreter: bool = True,
        warm_server: PrestartedServer | None = None,
    ) -> None:
        self.pools: tuple[NodePool, ...] = tuple(pools) if pools else tuple(default_pools())
        names = [p.name for p in self.pools]
        if len(set(names)) != len(names):
            raise ValueError(f"node pool names must be unique, got {names}")
        self.chaos = chaos
        self.autoscaling = autoscaling
        # Without an autoscaler each pool has its fixed ``nodes``; with one, pools start at
        # ``min_nodes`` and the autoscaler adds and removes nodes (docs/local-cluster.md).
        self._node_templates = (
            {}
            if autoscaling
            else {f"{pool.name}-{i}": node_manifest(pool, i) for pool in self.pools for i in range(pool.nodes)}
        )
        self.store = Store(max_events=max_events, admission=admit, clock=clock)
        self.ledger = NodeLedger(self.store, time_scale=autoscaling.time_scale if autoscaling else 1.0)
        self.kubelet = Kubelet(
            self.store,
            pod_env=dict(pod_env or {}),
            workdir=workdir,
            poll_seconds=poll_seconds,
            warm_interpreter=warm_interpreter,
            warm_server=warm_server,
        )
        self.scheduler = Scheduler(self.store)
        self.jobs = JobController(
            self.store, backoff_base_seconds=backoff_base_seconds, backoff_max_seconds=backoff_max_seconds
        )
        self.cronjobs = CronJobController(self.store, clock=clock or utc_now, sync_seconds=cronjob_sync_seconds)
        self.disruptor = Disruptor(
            self.store,
            self.kubelet,
            restore_node=self._node_returns,
            node_return_seconds=node_return_seconds,
            spot_grace_seconds=spot_grace_seconds,
        )
        self.autoscaler = (
            Autoscaler(
                self.store,
                self.disruptor,
                self.pools,
                node_manifest,
                autoscaling,
                stockout_after_preemption=chaos.stockout_seconds if chaos else 0.0,
            )
            if autoscaling
            else None
        )
        if self.autoscaler is not None:
            self.disruptor.interrupt = self.autoscaler.interrupt
        self.monkey = ChaosMonkey(self.store, self.disruptor, chaos) if chaos else None
        self.server = ApiServer(
            self.store,
            logs=self.kubelet.logs,
            evict=self.disruptor.evict,
            host=host,
            port=port,
            bookmark_seconds=bookmark_seconds,
        )
        self._started = False
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> LocalCluster:
        with self._lock:
            if self._started:
                return self
            for manifest in self._node_templates.values():
                self.store.create(r.NODE, manifest)
            if self.autoscaler is not None:
                for manifest in self.autoscaler.initial_nodes():
                    self.store.create(r.NODE, manifest)
            self.kubelet.start()
            self.scheduler.start()
            self.jobs.start()
            self.cronjobs.start()
            if self.monkey:
                self.monkey.start()
            if self.autoscaler is not None:
                self.autoscaler.start()
            self.server.start()
            self._started = True
        return self

    def warm_up(self) -> LocalCluster:
        """Start the warm interpreter now, for a caller that knows step pods follow (a rehearsal run).

        Its preload (about a second of imports) then runs while the first nodes are provisioned
        and the first Jobs are created, instead of after the first pod's node came up.
        """
        self.kubelet.warm_up()
        return self

    def stop(self, grace_seconds: float = 0.0) -> None:
        """Stop everything; pod processes get ``grace_seconds`` after SIGTERM, then SIGKILL."""
        with self._lock:
            if not self._started:
                return
            self._started = False
        if self.monkey:
            self.monkey.stop()
        if self.autoscaler is not None:
            self.autoscaler.stop()
        self.disruptor.stop()
        self.server.stop()
        self.cronjobs.stop()
        self.jobs.stop()
        self.scheduler.stop()
        self.kubelet.shutdown(grace_seconds)
        self.ledger.close_all()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    @property
    def url(self) -> str:
        return self.server.url

    def write_kubeconfig(self, path: Path | str, *, namespace: str = "default") -> Path:
        """Write a kubeconfig for ``kubectl`` and ``kubernetes.config.load_kube_config``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT_NAME, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT_NAME, "user": {"token": "local-cluster"}}],
            "contexts": [
                {
                    "name": CONTEXT_NAME,
                    "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": namespace},
                }
            ],
            "current-context": CONTEXT_NAME,
        }
        target.write_text(dump_yaml(config))
        return target

    def api_client(self) -> ApiClient:
        """A ``kubernetes.client.ApiClient`` configured for this cluster (the import is lazy)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        return client.ApiClient(configuration)

    # ------------------------------------------------------------------ disruptions
    def evict_pod(self, namespace: str, name: str, *, grace_seconds: int | None = None) -> None:
        """Evict a pod through the Eviction API's logic; refused pods raise EvictionRefusedError."""
        try:
            self.disruptor.evict(namespace, name, grace_seconds, source="manual")
        except ApiError as exc:
            error = EvictionRefusedError if exc.code == 429 else LocalClusterError
            raise error(f"eviction of pod {namespace}/{name} refused: {exc.message}") from exc

    def preempt_node(self, name: str, *, return_after: float | None = None) -> None:
        """Preempt a node like a Spot VM reclaim; it comes back after ``return_after`` seconds."""
        try:
            self.disruptor.preempt_node(name, return_after=return_after, source="manual")
        except ApiError as exc:
            raise LocalClusterError(f"cannot preempt node {name}: {exc.message}") from exc

    def _node_returns(self, name: str) -> None:
        """A preempted node's return: the same node comes back on a fixed pool; an autoscaling
        cluster instead provisions a new node when pods need one."""
        if self.autoscaler is None:
            self.restore_node(name)

    def stockout(self, pool: str, seconds: float) -> None:
        """Make Spot pool ``pool`` unable to scale up for ``seconds`` of cluster time (autoscaling only)."""
        if self.autoscaler is None:
            raise LocalClusterError("stockouts need an autoscaling cluster: LocalCluster(autoscaling=Autoscaling())")
        try:
            self.autoscaler.stockout(pool, seconds)
        except KeyError:
            raise LocalClusterError(
                f"no node pool {pool!r}: the pools are {sorted(p.name for p in self.pools)}"
            ) from None

    def restore_node(self, name: str) -> None:
        """Bring a node back now (recreated if it was deleted, uncordoned if it was cordoned)."""
        template = self._node_templates.get(name)
        if template is None:
            raise LocalClusterError(f"node {name} is not one of this cluster's nodes: {sorted(self._node_templates)}")
        if self.store.try_get(r.NODE, None, name) is None:
            try:
                self.store.create(r.NODE, template)
            except ApiError:
                pass
        else:

            def uncordon(node: Obj) -> None:
                node.setdefault("spec", {}).pop("unschedulable", None)

            self.store.update(r.NODE, None, name, uncordon)

    @property
    def chaos_log(self) -> list[ChaosEvent]:
        return list(self.disruptor.log)

    # ------------------------------------------------------------------ cronjobs
    def trigger_cronjob(self, namespace: str, name: str) -> str:
        """Create a Job from a CronJob now (``kubectl create job --from=cronjob/<name>``)."""
        try:
            return self.cronjobs.trigger(namespace, name)
        except ApiError as exc:
            raise LocalClusterError(f"cannot trigger cronjob {namespace}/{name}: {exc.message}") from exc

    def sync_cronjobs(self, now: datetime | None = None) -> None:
        """Run one CronJob controller pass now (at ``now``, default: the cluster's clock)."""
        self.cronjobs.sync_all(now)

    # ------------------------------------------------------------------ introspection
    @property
    def pods_started(self) -> int:
        """How many container processes the kubelet has started (restarts included)."""
        return self.kubelet.pods_started

    def node_names(self) -> list[str]:
        """The nodes that exist now (fixed pools: every node, including one being preempted)."""
        if self.autoscaler is None:
            return list(self._node_templates)
        nodes, _ = self.store.list(r.NODE, copy=False)
        return [n["metadata"]["name"] for n in nodes]

    def node_lifetimes(self) -> list[dict[str, Any]]:
        """Every node's lifetime so far: plain dicts with ``pool``, ``machine_type``,
        ``capacity_type``, ``start``, ``end`` (epoch seconds, wall clock; ``end`` None while it
        lives), ``node``, ``billing`` and ``hours`` (cluster time). See
        :mod:`gokart_k8s.localcluster.autoscaler.ledger`."""
        return self.ledger.lifetimes()

    def pod_pid(self, namespace: str, name: str) -> int | None:
        """The pid of a running pod's process (its process group id), None when not running."""
        pod = self.store.try_get(r.POD, namespace, name)
        return None if pod is None else self.kubelet.pid_of(pod["metadata"]["uid"])

    def running_pids(self) -> list[int]:
        return self.kubelet.running_pids()

    def pod_logs(self, namespace: str, name: str) -> str:
        pod = self.store.get(r.POD, namespace, name)
        buffer = self.kubelet.logs(pod["metadata"]["uid"])
        return "" if buffer is None else buffer.text()

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "pools": [
                {
                    "name": p.name,
                    "nodes": p.nodes,
                    "cpu": p.cpu,
                    "memory": p.memory,
                    "gpu": p.gpu,
                    "spot": p.spot,
                    "min_nodes": p.min_nodes,
                    "max_nodes": p.max_nodes,
                    "labels": dict(p.labels),
                    "taints": [t.as_dict() for t in p.taints],
                }
                for p in self.pools
            ],
            "chaos": self.monkey.describe() if self.monkey else None,
            "autoscaler": self.autoscaler.describe() if self.autoscaler else None,
        }
