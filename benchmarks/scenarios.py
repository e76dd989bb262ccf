"""The scenarios of issue 17, in the order they run; each returns its measurements.

1. N agents created at once (and 6., new agents' first status while they converge)
2. an idle window: no writes
3. restart with everything converged: time to idle, no writes
4. N spec edits (new image) rolled out
5. SIGKILL while N/4 new agents converge, restart: all converged, no orphan or duplicate
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from typing import Any

from agentfleet.api import constants as c
from benchmarks.context import Bench
from benchmarks.fleet import agents_path, audit_children, converged, ready
from benchmarks.kube import BenchError

Result = dict[str, Any]


def start_operator(bench: Bench) -> Result:
    """The operator on an empty fleet: what it costs before any agent exists."""
    seconds = bench.operator.start()
    bench.wait_idle()
    return {"start_seconds": round(seconds, 2), "process": bench.operator.stats().as_dict()}


def create_at_once(bench: Bench) -> Result:
    """Scenario 1 (with 6): N agents applied at once; until every one converged, then Ready.
    Probe agents are created one at a time right after the burst, when the backlog is
    longest, and timed from their create request to their first status."""
    config = bench.config
    bench.agents = bench.manifests("agent", config.agents, tag="1")
    files = bench.chunk_files(bench.agents, "agents", config.create_parallel)
    window = bench.open_window()
    created_seconds = bench.access.apply_files(files)
    probe_started, probe_backlog = create_probes(bench)

    names = bench.names
    status_at = bench.tracker.when_all(names, converged, "agents converged", config.timeout)
    cpu_converged = bench.operator.stats().cpu_seconds - window.cpu_seconds
    converged_at = max(status_at, wait_children(bench, names))
    rss_converged = bench.operator.stats()
    ready_at = bench.tracker.when_all(
        [*names, *bench.probes], ready, "agents Ready", config.timeout
    )
    idle_at = bench.wait_idle()
    writes = bench.writes_since(window)
    agents = len(names) + len(bench.probes)

    states = bench.tracker.snapshot()
    latencies = []
    for name, started in probe_started.items():
        shown = states[name].first_status_at if name in states else None
        if shown is None:
            raise BenchError(f"probe agent {name} never showed a status")
        latencies.append(round(shown - started, 2))
    return {
        "agents": config.agents,
        "probes": len(bench.probes),
        "create_seconds": round(created_seconds, 2),
        "converged_seconds": round(converged_at - window.started, 2),
        "ready_seconds": round(ready_at - window.started, 2),
        "idle_after_seconds": round(max(idle_at - ready_at, 0.0), 2),
        "cpu_seconds_to_converge": round(cpu_converged, 2),
        "cpu_seconds_to_idle": round(bench.operator.stats().cpu_seconds - window.cpu_seconds, 2),
        "process_converged": rss_converged.as_dict(),
        "process_idle": bench.operator.stats().as_dict(),
        "writes": writes.as_dict(),
        "writes_per_agent": round(writes.total / agents, 2),
        "probe_first_status_seconds": latencies,
        "probe_backlog": probe_backlog,
        "probe_first_status_max": max(latencies, default=None),
        "probe_first_status_median": round(statistics.median(latencies), 2) if latencies else None,
    }


def create_probes(bench: Bench) -> tuple[dict[str, float], list[int]]:
    """Create the probe agents one by one. Returns the monotonic time each create request
    began, and how many of the N agents had not converged yet at each (the backlog the
    probe met: 0 would mean it did not run while the others converged)."""
    from kubernetes import client

    api = client.CustomObjectsApi(bench.access.api)
    started: dict[str, float] = {}
    backlog = []
    first = time.monotonic()
    for i, body in enumerate(bench.manifests("probe", bench.config.probes, tag="1")):
        time.sleep(max(first + i * bench.config.probe_interval - time.monotonic(), 0.0))
        name = body["metadata"]["name"]
        backlog.append(len(bench.agents) - bench.tracker.count(bench.names, converged))
        started[name] = time.monotonic()
        api.create_namespaced_custom_object(c.GROUP, c.VERSION, bench.namespace, c.PLURAL, body)
        bench.probes.append(name)
    return started, backlog


def wait_children(bench: Bench, names: list[str]) -> float:
    """Check that every named agent's three children exist. Returns 0.0 when the first look
    finds them all (the operator writes status only after applying them, so they existed
    when the status said converged); otherwise the moment a later look found them."""
    deadline = time.monotonic() + bench.config.timeout
    first = True
    while True:
        looked = time.monotonic()
        audit = audit_children(bench.access, bench.namespace, names, cached=True)
        if not audit.missing:
            return 0.0 if first else looked
        if looked > deadline:
            raise BenchError(f"children never appeared: {audit.missing[:10]}")
        first = False
        time.sleep(0.5)


def idle_window(bench: Bench) -> Result:
    """Scenario 2: the whole fleet converged and Ready, nothing changes: no writes."""
    window = bench.open_window()
    reconciles = bench.operator.progress().reconciles
    time.sleep(bench.config.idle_seconds)
    writes = bench.writes_since(window)
    return {
        "seconds": bench.config.idle_seconds,
        "writes": writes.as_dict(),
        "writes_per_agent_minute": round(
            writes.total / len(bench.all_names) * 60 / bench.config.idle_seconds, 3
        ),
        "reconciles": round(bench.operator.progress().reconciles - reconciles),
        "cpu_seconds": round(bench.operator.stats().cpu_seconds - window.cpu_seconds, 2),
        "process": bench.operator.stats().as_dict(),
    }


def restart(bench: Bench) -> Result:
    """Scenario 3: SIGTERM and start again with everything converged. Idle means an empty
    work queue, every agent seen, and no reconcile for a few seconds; no write is needed."""
    window = bench.open_window()
    before = bench.operator.stats()
    stop_seconds = bench.operator.stop()
    started = time.monotonic()
    bench.operator.start()
    idle_at = bench.wait_idle(len(bench.all_names), timeout=bench.config.restart_timeout)
    writes = bench.writes_since(window, operator_writes=bench.operator.writes())
    return {
        "stop_seconds": round(stop_seconds, 2),
        "idle_seconds": round(idle_at - started, 2),
        "writes": writes.as_dict(),
        "process_before": before.as_dict(),
        "process": bench.operator.stats().as_dict(),
    }


def edit_all(bench: Bench) -> Result:
    """Scenario 4: a new image for every agent, until each one is Ready at its new
    generation and its Deployment runs the new image."""
    config = bench.config
    names = bench.names
    generation = {name: state.generation for name, state in bench.tracker.snapshot().items()}
    edited = bench.manifests("agent", config.agents, tag="2")
    image = {a["metadata"]["name"]: a["spec"]["image"] for a in edited}
    files = bench.chunk_files(edited, "edits", config.create_parallel)
    window = bench.open_window()
    apply_seconds = bench.access.apply_files(files)
    ready_at = bench.tracker.when_all(
        names,
        lambda name, s: s.ready_at.get(s.generation) if s.generation > generation[name] else None,
        "edits rolled out",
        config.timeout,
    )
    rolled_out_at = max(ready_at, wait_rolled_out(bench, image))
    cpu = bench.operator.stats().cpu_seconds - window.cpu_seconds
    bench.wait_idle()
    writes = bench.writes_since(window)
    return {
        "edits": len(names),
        "apply_seconds": round(apply_seconds, 2),
        "rolled_out_seconds": round(rolled_out_at - window.started, 2),
        "cpu_seconds": round(cpu, 2),
        "writes": writes.as_dict(),
        "writes_per_edit": round(writes.total / len(names), 2),
        "process": bench.operator.stats().as_dict(),
    }


def wait_rolled_out(bench: Bench, image: dict[str, str]) -> float:
    """Check that every edited agent's Deployment runs its new image on all replicas; 0.0
    when the first look (right after the agents said Ready) confirms it, else the moment a
    later look did."""
    path = f"/apis/apps/v1/namespaces/{bench.namespace}/deployments"
    deadline = time.monotonic() + bench.config.timeout
    first = True
    while True:
        looked = time.monotonic()
        behind = []
        for dep in bench.access.list_items(path, cached=True):
            name = dep["metadata"]["name"]
            if name not in image:
                continue
            status, wanted = dep.get("status") or {}, dep["spec"].get("replicas", 1)
            if (
                dep["spec"]["template"]["spec"]["containers"][0]["image"] != image[name]
                or status.get("observedGeneration", 0) < dep["metadata"]["generation"]
                or status.get("updatedReplicas", 0) < wanted
                or status.get("availableReplicas", 0) < wanted
                or status.get("replicas", 0) > wanted
            ):
                behind.append(name)
        if not behind:
            return 0.0 if first else looked
        if looked > deadline:
            raise BenchError(f"{len(behind)} Deployments not rolled out, e.g. {behind[:5]}")
        first = False
        time.sleep(0.5)


def kill_mid_converge(bench: Bench) -> Result:
    """Scenario 5: N/4 new agents; SIGKILL once some of them converged (the rest in flight),
    start again, and time until every agent converged. Then audit: every child has an
    existing controlling agent, no agent has two children of a kind, none is missing."""
    config = bench.config
    late = bench.manifests("late", math.ceil(config.agents * config.late_fraction), tag="1")
    late_names = [a["metadata"]["name"] for a in late]
    files = bench.chunk_files(late, "late", config.create_parallel)
    window = bench.open_window()
    failure: list[BaseException] = []

    def create() -> None:
        try:
            bench.access.apply_files(files)
        except BaseException as error:
            failure.append(error)

    creating = threading.Thread(target=create, name="create-late")
    creating.start()
    threshold = max(1, math.ceil(len(late_names) * config.kill_fraction))
    deadline = time.monotonic() + config.timeout
    while (done := bench.tracker.count(late_names, converged)) < threshold:
        if time.monotonic() > deadline or failure:
            raise BenchError(f"only {done} of {len(late_names)} converged: {failure}")
        time.sleep(0.05)
    writes_before_kill = bench.operator.writes() - window.operator_writes
    bench.operator.kill()
    killed_at = time.monotonic()
    converged_at_kill = bench.tracker.count(late_names, converged)
    seen_at_kill = bench.tracker.count(late_names, lambda name, state: 0.0)
    creating.join()
    if failure:
        raise BenchError(f"creating the late agents failed: {failure[0]}")
    bench.late = late_names

    started = time.monotonic()
    bench.operator.start()
    converged_at = bench.tracker.when_all(
        bench.all_names, converged, "all agents converged after SIGKILL", config.timeout
    )
    children_at = wait_children(bench, bench.all_names)
    all_converged_at = max(converged_at, children_at)
    bench.tracker.when_all(bench.all_names, ready, "all agents Ready", config.timeout)
    bench.wait_idle(seen_at_least=len(bench.all_names))
    audit = audit_children(bench.access, bench.namespace)
    writes = bench.writes_since(
        window, operator_writes=writes_before_kill + bench.operator.writes()
    )
    writes.notes.append(
        "operator counter: last scrape before SIGKILL plus the new process; a write in "
        "flight at the kill is only on the API server's count"
    )
    agents = bench.access.list_items(agents_path(bench.namespace))
    return {
        "late_agents": len(late_names),
        "kill_after_converged": threshold,
        "seen_at_kill": seen_at_kill,
        "converged_at_kill": converged_at_kill,
        "killed_after_seconds": round(killed_at - window.started, 2),
        "converged_seconds_after_restart": round(max(all_converged_at - started, 0.0), 2),
        "agents_total": len(agents),
        "audit": audit.as_dict(),
        "writes": writes.as_dict(),
        "writes_per_late_agent": round(writes.total / len(late_names), 2),
        "process": bench.operator.stats().as_dict(),
    }
