"""Disruptions: the Eviction API, Spot node preemption, and seeded random chaos.

Eviction (``POST pods/<name>/eviction``, https://kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/):
the pod gets ``DisruptionTarget=True, reason EvictionByEvictionAPI``, then is deleted gracefully
(SIGTERM, grace period, SIGKILL, terminal phase, object removed). There are no
PodDisruptionBudget objects here; instead a pod annotated
``cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`` or ``karpenter.sh/do-not-disrupt:
"true"`` is refused with ``429 TooManyRequests`` as if a PDB protected it — the same answer a
drain gets from a PDB. A terminal or unscheduled pod is simply deleted.

Spot preemption (graceful node shutdown, https://kubernetes.io/docs/concepts/cluster-administration/node-shutdown/):
the node is cordoned; every running pod on it gets ``DisruptionTarget=True, reason
TerminationByKubelet``, SIGTERM, at most ``spot_grace_seconds`` (GKE gives Spot pods 15 s) and
SIGKILL, and ends ``Failed`` with reason ``Terminated``; the Node is then deleted and its pods are
garbage-collected as PodGC does for a vanished node; the node comes back (same name, new uid)
after ``node_return_seconds``. Preemption ignores the protection annotations, as a cloud
provider's preemption does.

Random chaos (:class:`ChaosConfig`): a Poisson process per **running pod** with ``rate``
disruptions per minute of running time. When a pod becomes Running the monkey draws its
time-to-disruption from an exponential distribution and, if the pod is on a Spot node, whether it
will be a preemption (probability ``preempt_share``) or an eviction; the draw is seeded by
``(seed, namespace, step, attempt number)`` (the step: its ``gokart-k8s.io/unique-id`` label, else
the Job name, else the pod name), so the same seed and the same pipeline give the same plan
whatever the thread timing, the cache or the code package. When the time comes the pod is disrupted only if
it is still Running; protected pods are never evicted (but their Spot node may be preempted).
Every disruption, random or asked for, is appended to ``chaos_log`` and recorded as an Event.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gokart_k8s.conventions import CHAOS_RATE, CHAOS_SEED, LABEL_UNIQUE_ID

from . import resources as r
from .kubelet import Kubelet
from .loops import ControlLoop
from .status import ApiError
from .store import Obj, Store, timestamp

SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
DO_NOT_DISRUPT = "karpenter.sh/do-not-disrupt"
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."

#: Default random chaos, the same for ``run --chaos`` and ``local-cluster start --chaos`` (one
#: constant, in gokart_k8s.conventions): 10 disruptions per minute of running pod time, seed 3.
DEFAULT_CHAOS_RATE = CHAOS_RATE
DEFAULT_CHAOS_SEED = CHAOS_SEED


@dataclass(frozen=True)
class ChaosConfig:
    """Seeded random disruptions; ``rate`` is disruptions per minute of one running pod's time."""

    seed: int = DEFAULT_CHAOS_SEED
    rate: float = DEFAULT_CHAOS_RATE
    #: On a Spot node, the share of disruptions that are node preemptions rather than evictions.
    preempt_share: float = 0.5
    #: With an autoscaling cluster: after each random preemption, the node's Spot pool cannot
    #: scale up for this many cluster seconds (a stockout: GCE's ZONE_RESOURCE_POOL_EXHAUSTED).
    stockout_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"ChaosConfig.rate must be >= 0 disruptions per pod-minute, got {self.rate}")
        if not 0 <= self.preempt_share <= 1:
            raise ValueError(f"ChaosConfig.preempt_share must be between 0 and 1, got {self.preempt_share}")
        if self.stockout_seconds < 0:
            raise ValueError(f"ChaosConfig.stockout_seconds must be >= 0 cluster seconds, got {self.stockout_seconds}")


@dataclass(frozen=True)
class ChaosEvent:
    """One disruption: when (seconds since the cluster started), what, to whom, and why."""

    at: float
    action: str  # "evict" or "preempt"
    namespace: str
    pod: str
    node: str
    source: str  # "api", "manual" or "random"
    detail: str = ""


def is_protected(pod: Obj) -> bool:
    annotations = pod["metadata"].get("annotations") or {}
    return annotations.get(SAFE_TO_EVICT) == "false" or annotations.get(DO_NOT_DISRUPT) == "true"


def _add_condition(store: Store, pod: Obj, reason: str, message: str) -> None:
    def mutate(p: Obj) -> None:
        status = p.setdefault("status", {})
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(),
            }
        )
        status["conditions"] = conditions

    meta = pod["metadata"]
    store.update(r.POD, meta["namespace"], meta["name"], mutate, uid=meta["uid"])


class Disruptor:
    """Evictions and node preemptions, shared by the API server, the Python API and the monkey."""

    def __init__(
        self,
        store: Store,
        kubelet: Kubelet,
        *,
        restore_node: Callable[[str], None],
        node_return_seconds: float = 5.0,
        spot_grace_seconds: float = 15.0,
    ) -> None:
        self.store = store
        self.kubelet = kubelet
        self._restore_node = restore_node
        self.node_return_seconds = node_return_seconds
        self.spot_grace_seconds = spot_grace_seconds
        self.log: list[ChaosEvent] = []
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._preempting: set[str] = set()
        #: Called first on every preemption with (node, source); True means it was handled there
        #: (Karpenter's interruption notice, see :mod:`gokart_k8s.localcluster.autoscaler.loop`).
        self.interrupt: Callable[[str, str], bool] | None = None

    def _record(self, event: ChaosEvent, involved: Obj, reason: str) -> None:
        with self._lock:
            self.log.append(event)
        self.store.record_event(involved, reason, event.detail, type_="Warning", component="local-cluster-chaos")

    def evict(self, namespace: str, name: str, grace: int | None, *, source: str = "api", force: bool = False) -> None:
        """The Eviction API; raises ApiError 404 or 429 like the real one (``force``: no 429)."""
        pod = self.store.get(r.POD, namespace, name)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") or not (pod.get("spec") or {}).get("nodeName"):
            self.store.delete(r.POD, namespace, name, grace_seconds=grace)
            return
        if is_protected(pod) and not force:
            raise ApiError(
                429,
                "Cannot evict pod as it would violate the pod's disruption budget.",
                details={
                    "causes": [
                        {
                            "reason": "DisruptionBudget",
                            "message": (
                                f"The pod is annotated {SAFE_TO_EVICT}=false or {DO_NOT_DISRUPT}=true, which the local "
                                "cluster treats as a PodDisruptionBudget allowing 0 disruptions"
                            ),
                        }
                    ]
                },
            )
        _add_condition(self.store, pod, "EvictionByEvictionAPI", "Eviction API: evicting")
        self.store.delete(r.POD, namespace, name, grace_seconds=grace, uid=pod["metadata"]["uid"])
        node = pod["spec"]["nodeName"]
        self._record(
            ChaosEvent(
                time.monotonic() - self._started,
                "evict",
                namespace,
                name,
                node,
                source,
                f"Evicted pod {namespace}/{name} from node {node} through the Eviction API ({source})",
            ),
            pod,
            "LocalClusterEviction",
        )

    def preempt_node(self, name: str, *, return_after: float | None = None, source: str = "manual") -> None:
        """Start a Spot preemption of node ``name``; returns at once, the shutdown runs in a thread."""
        node = self.store.get(r.NODE, None, name)
        with self._lock:
            if name in self._preempting:
                return
            self._preempting.add(name)
        if self.interrupt is not None and self.interrupt(name, source):
            self._record(
                ChaosEvent(
                    time.monotonic() - self._started,
                    "preempt",
                    "",
                    "",
                    name,
                    source,
                    f"Spot node {name} preempted ({source}); interruption notice, draining it",
                ),
                node,
                "LocalClusterPreemption",
            )
            return
        self._shut_down(name, node, source, return_after)

    def reclaim(self, name: str) -> None:
        """The end of an interruption notice: shut the node down now, whatever still runs there."""
        node = self.store.try_get(r.NODE, None, name)
        if node is not None:
            self._shut_down(name, node, "interruption", None)

    def remove_node(self, name: str) -> None:
        """Delete a node whose pods have ended (an autoscaler's scale-down), and what is left on it."""
        self._delete_node(name)

    def _shut_down(self, name: str, node: Obj, source: str, return_after: float | None) -> None:
        def cordon(n: Obj) -> None:
            n.setdefault("spec", {})["unschedulable"] = True

        self.store.update(r.NODE, None, name, cordon)
        pods, _ = self.store.list(
            r.POD,
            None,
            lambda p: (
                (p.get("spec") or {}).get("nodeName") == name
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            ),
        )
        for pod in pods:
            _add_condition(self.store, pod, "TerminationByKubelet", SHUTDOWN_MESSAGE)
            grace = min(
                float((pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)), self.spot_grace_seconds
            )
            self.kubelet.terminate(pod["metadata"]["uid"], grace, "Terminated", SHUTDOWN_MESSAGE)
        names = ", ".join(p["metadata"]["name"] for p in pods) or "no pods"
        self._record(
            ChaosEvent(
                time.monotonic() - self._started,
                "preempt",
                "",
                ",".join(p["metadata"]["name"] for p in pods),
                name,
                source,
                f"Spot node {name} preempted ({source}); terminating {names}",
            ),
            node,
            "LocalClusterPreemption",
        )
        delay = self.node_return_seconds if return_after is None else return_after
        threading.Thread(target=self._finish_preemption, args=(name, pods, delay), daemon=True).start()

    def _finish_preemption(self, name: str, pods: list[Obj], delay: float) -> None:
        for pod in pods:
            self.kubelet.wait_finished(pod["metadata"]["uid"], self.spot_grace_seconds + 10)
        self._delete_node(name)
        with self._lock:
            self._preempting.discard(name)
            timer = threading.Timer(delay, self._restore_node, args=(name,))
            timer.daemon = True
            self._timers.append(timer)
        timer.start()

    def _delete_node(self, name: str) -> None:
        try:
            self.store.delete(r.NODE, None, name)
        except ApiError:
            pass
        # PodGC removes the pods of a node that no longer exists
        # (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-garbage-collection).
        leftovers, _ = self.store.list(r.POD, None, lambda p: (p.get("spec") or {}).get("nodeName") == name)
        for pod in leftovers:
            try:
                self.store.delete(r.POD, pod["metadata"]["namespace"], pod["metadata"]["name"], grace_seconds=0)
            except ApiError:
                pass

    def preempting(self, name: str) -> bool:
        with self._lock:
            return name in self._preempting

    def stop(self) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for t in timers:
            t.cancel()


class ChaosMonkey(ControlLoop):
    """Seeded random evictions and Spot preemptions of Running pods (see the module docstring)."""

    def __init__(self, store: Store, disruptor: Disruptor, config: ChaosConfig) -> None:
        super().__init__("chaos-monkey")
        self.store = store
        self.disruptor = disruptor
        self.config = config
        self._attempts: dict[tuple[str, str], int] = {}
        self._plan: list[tuple[float, int, str, str, str, str, float]] = []
        self._counter = 0
        self._cond = threading.Condition()
        #: (namespace, job or pod, attempt, action, delay) of every disruption planned, in order.
        self.planned: list[tuple[str, str, int, str, float]] = []
        store.add_listener(self._on_event)

    def _wake_up(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _on_event(self, kind: str, rt: r.ResourceType, obj: Obj, old: Obj | None) -> None:
        if rt is not r.POD or kind != "MODIFIED" or self.config.rate <= 0:
            return
        phase = (obj.get("status") or {}).get("phase")
        old_phase = ((old or {}).get("status") or {}).get("phase")
        if phase != "Running" or old_phase == "Running" or obj["metadata"].get("deletionTimestamp"):
            return
        meta = obj["metadata"]
        labels = meta.get("labels") or {}
        # A step's pods are keyed by the step (its unique id), not by its Job's name: the name
        # also hashes the cache and the code package (conventions.step_identity), which differ
        # from run to run, and the demo's evictions should not.
        owner = labels.get(LABEL_UNIQUE_ID) or labels.get("batch.kubernetes.io/job-name") or meta["name"]
        key = (meta["namespace"], owner)
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        rng = random.Random(f"{self.config.seed}:{meta['namespace']}:{owner}:{attempt}")
        delay = rng.expovariate(self.config.rate / 60.0)
        preempt = rng.random() < self.config.preempt_share
        action = "preempt" if preempt else "evict"
        self.planned.append((meta["namespace"], owner, attempt, action, round(delay, 6)))
        with self._cond:
            self._counter += 1
            heapq.heappush(
                self._plan,
                (time.monotonic() + delay, self._counter, meta["namespace"], meta["name"], meta["uid"], action, delay),
            )
            self._cond.notify()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._stopping.is_set() and (not self._plan or self._plan[0][0] > time.monotonic()):
                    timeout = 0.5 if not self._plan else max(0.001, self._plan[0][0] - time.monotonic())
                    self._cond.wait(min(0.5, timeout))
                if self._stopping.is_set():
                    return
                _, _, namespace, name, uid, action, _ = heapq.heappop(self._plan)
            try:
                self._strike(namespace, name, uid, action)
            except ApiError:
                pass  # the pod went away meanwhile

    def _strike(self, namespace: str, name: str, uid: str, action: str) -> None:
        pod = self.store.try_get(r.POD, namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid or pod["metadata"].get("deletionTimestamp"):
            return
        if (pod.get("status") or {}).get("phase") != "Running":
            return
        node_name = (pod.get("spec") or {}).get("nodeName") or ""
        node = self.store.try_get(r.NODE, None, node_name)
        spot = bool(node and (node["metadata"].get("annotations") or {}).get("gokart-k8s.io/spot") == "true")
        if action == "preempt" and spot and not self.disruptor.preempting(node_name):
            self.disruptor.preempt_node(node_name, source="random")
        elif not is_protected(pod):
            self.disruptor.evict(namespace, name, None, source="random")

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.config.seed,
            "rate_per_pod_minute": self.config.rate,
            "preempt_share": self.config.preempt_share,
        }
