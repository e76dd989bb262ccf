"""The operator's scenarios, in the order they run; each returns its measurements.

1. N agents created at once (and 6., new agents' first status while they converge)
2. an idle window: no writes
3. restart with everything converged: time to idle, no writes
4. N spec edits (new image) rolled out
5. SIGKILL while N/4 new agents converge, restart: all converged, no orphan or duplicate

"Converged" is checked by the harness (audit.py): Ready=True for the current generation, and
every object the renderers want holding exactly that content; the moment is the later of
the two. Windows start at the client's first request, so the operator's side pays for the
creation of its AIAgents as the baseline does.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from typing import Any

from benchmarks.audit import audit_content, audit_ownership
from benchmarks.context import Fleet
from benchmarks.fleet import ready
from benchmarks.kube import BenchError

Result = dict[str, Any]


def start_operator(fleet: Fleet) -> Result:
    """The operator on an empty fleet: what it costs before any agent exists."""
    seconds = fleet.running.start()
    fleet.wait_idle()
    return {"start_seconds": round(seconds, 2), "process": fleet.running.stats().as_dict()}


def converged_moment(fleet: Fleet, ready_at: float, what: str) -> tuple[float, Result]:
    """The audit after a window: the moment the fleet was Ready *and* every child held what
    the renderers want, or a BenchError naming what is not."""
    audit = audit_content(fleet.bench.access, fleet.children)
    if not audit.ok:
        raise BenchError(f"{what}: not what the renderers produce: {audit.summary()}")
    return max(ready_at, audit.content_at), audit.as_dict()


def create_at_once(fleet: Fleet) -> Result:
    """Scenario 1 (with 6): N agents applied at once by the client; until every one is
    Ready and its children are as rendered. Probe agents are created one at a time right
    after the burst, when the backlog is longest, and timed from their create request to
    their first status."""
    bench, config = fleet.bench, fleet.bench.config
    fleet.manifests = fleet.make("agent", config.agents, tag="1")
    window = fleet.open_window()
    applied = bench.client.apply(fleet.manifests, config.clients)
    probe_started, probe_backlog = create_probes(fleet)

    everyone = fleet.all_names
    ready_at = fleet.agents.when_all(everyone, ready, "agents Ready", config.timeout())
    idle_at = fleet.wait_idle()
    writes, cost = fleet.close_window(window)
    process_idle = fleet.running.stats()
    converged_at, audit = converged_moment(fleet, ready_at, "created agents")
    at_converged = fleet.running.stats_at(converged_at)
    agents = len(everyone)

    states = fleet.agents.snapshot()
    latencies = []
    for name, started in probe_started.items():
        shown = states[name].first_status_at if name in states else None
        if shown is None:
            raise BenchError(f"probe agent {name} never showed a status")
        latencies.append(round(shown - started, 2))
    return {
        "agents": config.agents,
        "probes": len(fleet.probes),
        "create_seconds": round(applied.seconds, 2),
        "ready_seconds": round(ready_at - window.started, 2),
        "converged_seconds": round(converged_at - window.started, 2),
        "idle_after_seconds": round(max(idle_at - converged_at, 0.0), 2),
        # The process's own CPU from its start (imports and the empty list included).
        "cpu_seconds_to_converge": round(at_converged.cpu_seconds, 2),
        "cpu_seconds_in_window": round(at_converged.cpu_seconds - window.cpu_seconds, 2),
        "cpu_seconds_to_idle": round(process_idle.cpu_seconds, 2),
        "process_converged": at_converged.as_dict(),
        "process_idle": process_idle.as_dict(),
        "writes": writes.as_dict(),
        "writes_per_agent": round(writes.total / agents, 2),
        "cost": cost.as_dict(),
        "audit": audit,
        "probe_first_status_seconds": latencies,
        "probe_backlog": probe_backlog,
        "probe_first_status_max": max(latencies, default=None),
        "probe_first_status_median": round(statistics.median(latencies), 2) if latencies else None,
    }


def create_probes(fleet: Fleet) -> tuple[dict[str, float], list[int]]:
    """Create the probe agents one by one. Returns the monotonic time each create request
    began, and how many of the N agents were not Ready yet at each (the backlog the probe
    met: 0 would mean it did not run while the others converged)."""
    config = fleet.bench.config
    client = fleet.bench.client
    started: dict[str, float] = {}
    backlog = []
    first = time.monotonic()
    for i, body in enumerate(fleet.make("probe", config.probes, tag="1")):
        time.sleep(max(first + i * config.probe_interval - time.monotonic(), 0.0))
        name = body["metadata"]["name"]
        backlog.append(len(fleet.names) - fleet.agents.count(fleet.names, ready))
        started[name] = time.monotonic()
        client.apply([body], 1)
        fleet.probes.append(name)
    return started, backlog


def idle_window(fleet: Fleet) -> Result:
    """Scenario 2: the whole fleet converged and Ready, nothing changes: no writes."""
    config = fleet.bench.config
    window = fleet.open_window()
    reconciles = fleet.running.progress().reconciles
    time.sleep(config.idle_seconds)
    writes, cost = fleet.close_window(window)
    return {
        "seconds": config.idle_seconds,
        "writes": writes.as_dict(),
        "writes_per_agent_minute": round(
            writes.total / len(fleet.all_names) * 60 / config.idle_seconds, 3
        ),
        "reconciles": round(fleet.running.progress().reconciles - reconciles),
        "cpu_seconds": round(fleet.running.stats().cpu_seconds - window.cpu_seconds, 2),
        "cost": cost.as_dict(),
        "process": fleet.running.stats().as_dict(),
    }


def restart(fleet: Fleet) -> Result:
    """Scenario 3: SIGTERM and start again with everything converged. Idle means an empty
    work queue, every agent seen, and no reconcile for a few seconds; no write is needed.
    The new process's peak memory (VmHWM) includes its start-up and its first list."""
    config = fleet.bench.config
    window = fleet.open_window()
    before = fleet.running.stats()
    stop_seconds = fleet.running.stop()
    started = time.monotonic()
    fleet.running.start()
    idle_at = fleet.wait_idle(len(fleet.all_names), timeout=config.restart_timeout)
    writes, cost = fleet.close_window(window, operator_writes=fleet.running.writes())
    return {
        "stop_seconds": round(stop_seconds, 2),
        "idle_seconds": round(idle_at - started, 2),
        "writes": writes.as_dict(),
        "cost": cost.as_dict(),
        "process_before": before.as_dict(),
        "process": fleet.running.stats().as_dict(),
    }


def edit_all(fleet: Fleet) -> Result:
    """Scenario 4: a new image for every agent, applied by the client, until each one is
    Ready at its new generation, its Deployment rolled out with the new image, and every
    child as rendered."""
    bench, config = fleet.bench, fleet.bench.config
    names = fleet.names
    generation = {name: state.generation for name, state in fleet.agents.snapshot().items()}
    edited = fleet.make("agent", config.agents, tag="2")
    image = {a["metadata"]["name"]: a["spec"]["image"] for a in edited}
    window = fleet.open_window()
    applied = bench.client.apply(edited, config.clients)
    ready_at = fleet.agents.when_all(
        names,
        lambda name, s: s.ready_at.get(s.generation) if s.generation > generation[name] else None,
        "edits Ready",
        config.timeout(),
    )
    rolled_out_at = fleet.children.when_rolled_out(names, image, config.timeout(), bench.log)
    fleet.wait_idle()
    writes, cost = fleet.close_window(window)
    done_at, audit = converged_moment(fleet, max(ready_at, rolled_out_at), "edited agents")
    return {
        "edits": len(names),
        "apply_seconds": round(applied.seconds, 2),
        "ready_seconds": round(ready_at - window.started, 2),
        "rolled_out_seconds": round(done_at - window.started, 2),
        "cpu_seconds": round(fleet.running.stats_at(done_at).cpu_seconds - window.cpu_seconds, 2),
        "writes": writes.as_dict(),
        "writes_per_edit": round(writes.total / len(names), 2),
        "cost": cost.as_dict(),
        "audit": audit,
        "process": fleet.running.stats().as_dict(),
    }


def kill_mid_converge(fleet: Fleet) -> Result:
    """Scenario 5: N/4 new agents; SIGKILL once some of them are Ready (the rest in
    flight), start again, and time until every agent is converged. Then audit: every
    child has an existing controlling agent, no agent has two children of a kind, none is
    missing, and every child is as rendered."""
    bench, config = fleet.bench, fleet.bench.config
    late = fleet.make("late", math.ceil(config.agents * config.late_fraction), tag="1")
    late_names = [a["metadata"]["name"] for a in late]
    window = fleet.open_window()
    failure: list[BaseException] = []

    def create() -> None:
        try:
            bench.client.apply(late, config.clients)
        except BaseException as error:
            failure.append(error)

    creating = threading.Thread(target=create, name="create-late")
    creating.start()
    threshold = max(1, math.ceil(len(late_names) * config.kill_fraction))
    deadline = time.monotonic() + config.timeout()
    while (done := fleet.agents.count(late_names, ready)) < threshold:
        if time.monotonic() > deadline or failure:
            raise BenchError(f"only {done} of {len(late_names)} Ready: {failure}")
        time.sleep(0.05)
    writes_before_kill = fleet.running.writes() - window.operator_writes
    fleet.running.kill()
    killed_at = time.monotonic()
    ready_at_kill = fleet.agents.count(late_names, ready)
    seen_at_kill = fleet.agents.count(late_names, lambda name, state: 0.0)
    creating.join()
    if failure:
        raise BenchError(f"creating the late agents failed: {failure[0]}")
    fleet.late = late_names

    started = time.monotonic()
    fleet.running.start()
    ready_at = fleet.agents.when_all(
        fleet.all_names, ready, "all agents Ready after SIGKILL", config.timeout()
    )
    fleet.wait_idle(seen_at_least=len(fleet.all_names))
    writes, cost = fleet.close_window(
        window, operator_writes=writes_before_kill + fleet.running.writes()
    )
    writes.notes.append(
        "operator counter: last scrape before SIGKILL plus the new process; a write in "
        "flight at the kill is only on the API server's count"
    )
    converged_at, audit = converged_moment(fleet, ready_at, "after SIGKILL")
    ownership = audit_ownership(bench.access, fleet.namespace)
    return {
        "late_agents": len(late_names),
        "kill_after_ready": threshold,
        "seen_at_kill": seen_at_kill,
        "ready_at_kill": ready_at_kill,
        "killed_after_seconds": round(killed_at - window.started, 2),
        "converged_seconds_after_restart": round(max(converged_at - started, 0.0), 2),
        "agents_total": ownership.agents,
        "audit": ownership.as_dict(),
        "content_audit": audit,
        "writes": writes.as_dict(),
        "writes_per_late_agent": round(writes.total / len(late_names), 2),
        "cost": cost.as_dict(),
        "process": fleet.running.stats().as_dict(),
    }
