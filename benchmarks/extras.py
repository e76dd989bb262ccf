"""The later rows: fleets that exercise one feature each, every one with an operator of its
own in a namespace of its own (deleted before the next), created at once by the client.

- `gpu`: N agents with a slice of a time-sliced GPU, placed in a burst by the operator's
  placer. Placements per second come from the Pods' watch (when each got its decision),
  over-commit is checked from the Pods' annotations against the nodes (overcommit.py), the
  decision time is the operator's own `agentfleet_placement_decision_seconds` p99.
- `mesh`: N ambient agents in one namespace; their writes per agent include the objects the
  agents of a namespace share (the default-deny policy, the waypoint), whose size is shown.
- `keda`: N autoscaled agents; the real KEDA operator must accept every ScaledObject.
- mesh growth: the mesh fleet at several sizes in one namespace each; no shared object may
  grow with the fleet and writes per agent must stay flat.

Converged is what it is for the main fleet: Ready=True for the current generation and
every child as rendered (audit.py).
"""

from __future__ import annotations

import threading
from typing import Any

from benchmarks import nodes
from benchmarks.audit import shared_objects
from benchmarks.context import Bench, Fleet
from benchmarks.fleet import ready
from benchmarks.kube import BenchError
from benchmarks.overcommit import PLACEMENT, overcommitted
from benchmarks.scenarios import converged_moment

Result = dict[str, Any]
DECISION_HISTOGRAM = "agentfleet_placement_decision_seconds"


def run_fleet(bench: Bench, flavour: str, agents: int, suffix: str | None = None) -> Result:
    """Start an operator, create `agents` agents of the flavour at once, measure until they
    are converged and the operator idle; then what the flavour is about."""
    config = bench.config
    if flavour == "keda" and not keda_running(bench):
        return {"error": "KEDA's operator is not running (local cluster: --keda)"}
    if flavour == "gpu" and bench.access.local:
        nodes.ensure_gpus(bench.access, agents)
    fleet = bench.fleet(suffix or flavour, flavour)
    placed = PlacementTimes(bench, fleet.namespace) if flavour == "gpu" else None
    try:
        fleet.running.start()
        fleet.wait_idle()
        fleet.manifests = fleet.make("agent", agents, tag="1")
        window = fleet.open_window()
        applied = bench.client.apply(fleet.manifests, config.clients)
        ready_at = fleet.agents.when_all(
            fleet.names, ready, f"{flavour} agents Ready", config.timeout(agents)
        )
        fleet.wait_idle(timeout=config.timeout(agents))
        writes, cost = fleet.close_window(window)
        process = fleet.running.stats()
        converged_at, audit = converged_moment(fleet, ready_at, f"{flavour} agents")
        at_converged = fleet.running.stats_at(converged_at)
        result: Result = {
            "agents": agents,
            "create_seconds": round(applied.seconds, 2),
            "ready_seconds": round(ready_at - window.started, 2),
            "converged_seconds": round(converged_at - window.started, 2),
            "cpu_seconds_to_converge": round(at_converged.cpu_seconds, 2),
            "process_converged": at_converged.as_dict(),
            "process_idle": process.as_dict(),
            "writes": writes.as_dict(),
            "writes_per_agent": round(writes.total / agents, 2),
            "cost": cost.as_dict(),
            "audit": audit,
            "shared_objects": shared_objects(fleet.children),
        }
        if placed is not None:
            result |= gpu_measures(bench, fleet, placed, window.started)
        if flavour == "keda":
            result |= keda_measures(bench, fleet)
        return result
    except BenchError as error:
        bench.log(f"  FAILED: {error}")
        return {"error": str(error)}
    finally:
        if placed is not None:
            placed.stop()
        bench.drop(fleet)


def keda_running(bench: Bench) -> bool:
    """KEDA's operator runs when its ScaledObject CRD is served and the local cluster
    started it, or (a borrowed cluster) when its Deployment is there."""
    if not bench.access.served("keda.sh/v1alpha1", "scaledobjects"):
        return False
    from benchmarks import controlplane

    if "keda" in controlplane.processes(bench.access.kubeconfig):
        return True
    found = bench.access.kubectl(
        "get", "deployments", "-A", "-l", "app=keda-operator", "-o", "name", check=False
    )
    return bool(found.stdout.strip())


class PlacementTimes:
    """When each Pod of a namespace first carried its placement decision."""

    def __init__(self, bench: Bench, namespace: str) -> None:
        self.placed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._watches = bench.watches
        self._handle = bench.watches.add(f"/api/v1/namespaces/{namespace}/pods", self._observe)

    def _observe(self, kind: str, body: dict[str, Any], now: float) -> None:
        meta = body["metadata"]
        if kind != "DELETED" and PLACEMENT in (meta.get("annotations") or {}):
            with self._lock:
                self.placed.setdefault(meta["name"], now)

    def stop(self) -> None:
        self._watches.remove(self._handle)

    def times(self) -> list[float]:
        with self._lock:
            return sorted(self.placed.values())


def gpu_measures(bench: Bench, fleet: Fleet, placed: PlacementTimes, started: float) -> Result:
    times = placed.times()
    pods = bench.access.list_items("/api/v1/pods")
    problems = overcommitted(bench.access.list_items("/api/v1/nodes"), pods)
    p99 = fleet.running.quantile(DECISION_HISTOGRAM, 0.99)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "placed": len(times),
        "placed_seconds": round(times[-1] - started, 2) if times else None,
        "placements_per_second": round((len(times) - 1) / span, 1) if span else None,
        "overcommitted": len(problems),
        "overcommit_examples": problems[:10],
        "placed_pods_checked": sum(
            1 for pod in pods if PLACEMENT in (pod["metadata"].get("annotations") or {})
        ),
        "decision_p99_ms": round(p99 * 1000, 3) if p99 is not None else None,
    }


def keda_measures(bench: Bench, fleet: Fleet) -> Result:
    scaled = bench.access.list_items(
        f"/apis/keda.sh/v1alpha1/namespaces/{fleet.namespace}/scaledobjects"
    )
    accepted = sum(
        1
        for obj in scaled
        if any(
            cond.get("type") == "Ready" and cond.get("status") == "True"
            for cond in (obj.get("status") or {}).get("conditions") or []
        )
    )
    return {"scaled_objects": len(scaled), "keda_ready": accepted}


def mesh_growth(bench: Bench, sizes: tuple[int, ...]) -> Result:
    """The mesh fleet at each size, each in one namespace of its own: the size of every
    shared object and the writes per agent."""
    return {str(size): run_fleet(bench, "mesh", size, suffix=f"mesh{size}") for size in sizes}
