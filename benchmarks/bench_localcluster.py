"""Benchmark of the embedded local cluster: start-up, 500 pods in flight, watch fan-out.

Prints figures; asserts nothing about time (the targets are: start < 1 s, 500 pods Running at
once, every watcher sees every pod event). Bounded to about two minutes; 127.0.0.1 only.

    PYTHONPATH=. python benchmarks/bench_localcluster.py [--jobs 500] [--watchers 4]
"""

from __future__ import annotations

import argparse
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.localcluster import resources as r
from gokart_k8s.pools import NodePool


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--watchers", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=30.0, help="give up after this many seconds")
    args = parser.parse_args()
    from kubernetes import client, watch  # imported before timing start-up: users pay it anyway

    nodes = max(1, -(-args.jobs // 100))
    pools = [NodePool("big", cpu="64", memory="256Gi", nodes=nodes)]
    t0 = time.perf_counter()
    cluster = LocalCluster(pools).start()
    startup = time.perf_counter() - t0
    print(f"start-up: {startup * 1000:.0f} ms ({nodes} nodes)")
    rss_idle = rss_mib()
    deadline = time.monotonic() + args.deadline
    try:
        api = cluster.api_client()
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        start_rv = core.list_namespaced_pod("default").metadata.resource_version
        counts = [0] * args.watchers
        stop = threading.Event()

        def watcher(i: int) -> None:
            w = watch.Watch()
            # deserialize=False: count raw events; the client's model parsing would otherwise share
            # this process's CPU with the server being measured.
            for _ in w.stream(
                client.CoreV1Api(cluster.api_client()).list_namespaced_pod,
                "default",
                resource_version=start_rv,
                timeout_seconds=int(args.deadline) + 30,
                deserialize=False,
            ):
                counts[i] += 1
                if stop.is_set():
                    break

        threads = [threading.Thread(target=watcher, args=(i,), daemon=True) for i in range(args.watchers)]
        for t in threads:
            t.start()
        body = {
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "20"]}],
                    }
                }
            }
        }
        t1 = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda i: batch.create_namespaced_job("default", {**body, "metadata": {"name": f"load-{i}"}}),
                    range(args.jobs),
                )
            )
        created = time.perf_counter() - t1
        print(f"created {args.jobs} Jobs over HTTP in {created:.2f} s ({args.jobs / created:.0f} Jobs/s)")
        running = 0
        while time.monotonic() < deadline:
            pods, _ = cluster.store.list(r.POD, "default", copy=False)
            running = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Running")
            if running >= args.jobs:
                break
            time.sleep(0.2)
        all_running = time.perf_counter() - t1
        print(
            f"{running}/{args.jobs} pods Running at once, {all_running:.2f} s after the first create; "
            f"{cluster.pods_started} processes started"
        )
        print(
            f"cluster process RSS: {rss_idle:.0f} MiB idle -> {rss_mib():.0f} MiB with {running} pods "
            f"(API server, controllers, kubelet threads and this client share the process)"
        )
        t2 = time.perf_counter()
        batch.delete_collection_namespaced_job("default", propagation_policy="Background")
        while time.monotonic() < deadline + 20 and cluster.store.list(r.POD, "default", copy=False)[0]:
            time.sleep(0.2)
        left, _ = cluster.store.list(r.POD, "default", copy=False)
        if left:
            import json

            print("LEFT", len(left), json.dumps(left[0])[:3000])
        print(f"deleted all Jobs and pods (SIGTERM, terminal phase, finalizers) in {time.perf_counter() - t2:.2f} s")
        events = cluster.store.events_since(int(start_rv)) or []
        expected = sum(1 for e in events if e[2] is r.POD)
        settle = time.monotonic() + 10
        while time.monotonic() < settle and min(counts) < expected:
            time.sleep(0.1)
        stop.set()
        print(
            f"pod events in the store: {expected}; seen by each of {args.watchers} watchers: {counts} "
            f"-> {'all watchers saw every event' if all(c == expected for c in counts) else 'MISSED EVENTS'}"
        )
    finally:
        t3 = time.perf_counter()
        cluster.stop()
        print(f"stop (kills every process group): {time.perf_counter() - t3:.2f} s")


if __name__ == "__main__":
    main()
