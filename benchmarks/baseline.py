"""The yardstick: `kubectl apply --server-side` of exactly the objects the operator renders.

Run in the same cluster and the same run, after the operator scenarios with the operator
stopped, into a namespace of its own. Its Deployments roll out like the agents' do, so it
also gives the time the controller-manager and kwok need to make the same Pods available.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.context import Bench
from benchmarks.fleet import RUN_LABEL, baseline_objects
from benchmarks.kube import BenchError


def measure(bench: Bench, namespace: str) -> dict[str, Any]:
    config = bench.config
    bench.access.create_namespace(namespace, {RUN_LABEL: bench.run_id})
    objects = baseline_objects(bench.agents, namespace)
    files = bench.chunk_files(objects, "baseline", config.baseline_parallel)
    before = bench.meter.snapshot()
    started = time.monotonic()
    apply_seconds = bench.access.apply_files(files)
    writes = bench.meter.between(before, bench.meter.snapshot())
    result: dict[str, Any] = {
        "objects": len(objects),
        "kubectl_processes": len(files),
        "apply_seconds": round(apply_seconds, 2),
        # Only kubectl writes these kinds now; this checks the counting, not the operator.
        "writes_per_agent": round(sum(writes.by_resource.values()) / len(bench.agents), 2),
    }
    if config.baseline_ready:
        result["available_seconds"] = round(
            wait_available(bench, namespace, len(bench.agents)) - started, 2
        )
    return result


def wait_available(bench: Bench, namespace: str, count: int) -> float:
    """The moment all `count` Deployments of the namespace had every replica available."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    deadline = time.monotonic() + bench.config.timeout
    next_report = time.monotonic() + 10
    while True:
        looked = time.monotonic()
        available = 0
        for dep in bench.access.list_items(path, cached=True):
            status = dep.get("status") or {}
            if status.get("observedGeneration", 0) >= dep["metadata"]["generation"] and status.get(
                "availableReplicas", 0
            ) >= dep["spec"].get("replicas", 1):
                available += 1
        if available >= count:
            return looked
        if looked > deadline:
            raise BenchError(f"baseline: {available} of {count} Deployments available")
        if looked > next_report:
            bench.log(f"  baseline Deployments available: {available} of {count}")
            next_report = looked + 10
        time.sleep(1.0)
