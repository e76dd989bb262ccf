"""The yardstick: the fastest plain way to create (and then edit) the objects the operator
creates, measured in the same run, in a namespace of its own, with no operator serving it.

Both sides pay the same: the baseline first creates the same N AIAgents the same way the
operator's side does (the client identity, as many concurrent clients as the operator has
workers, the operator's rate limit), which stay inert; then it server-side applies exactly
the objects the renderers produce for them (stamped and owned as the operator's are: the
owner uids are the new AIAgents'), and its window ends when every Deployment is rolled out,
as the operator's ends when every agent is Ready. It is measured with one client and with
as many concurrent clients as the operator has workers, each applying its share under one
rate limit; the faster of the two is the denominator of every ratio. An edit is timed the
same way: the new AIAgents, then the new Deployments, until all are rolled out.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import Bench, Fleet
from benchmarks.fleet import baseline_children, desired_children
from benchmarks.kube import BenchError
from benchmarks.plain import Prepared

Result = dict[str, Any]


def measure(bench: Bench) -> Result:
    """Every variant (one client, then the operator's worker count), each in a fresh
    namespace deleted afterwards; the fastest of each window."""
    variants: dict[str, Result] = {}
    for clients in dict.fromkeys((1, bench.config.clients)):
        bench.log(f"baseline: {clients} client(s)")
        fleet = bench.fleet(f"base{clients}", operator=False)
        try:
            variants[str(clients)] = variant(bench, fleet, clients)
        except BenchError as error:
            variants[str(clients)] = {"error": str(error)}
        finally:
            bench.drop(fleet)
        bench.log(f"  {summary(variants[str(clients)])}")
    return {"variants": variants, "fastest": fastest(variants)}


def fastest(variants: dict[str, Result]) -> Result:
    """The fastest variant of each window (they may differ), and which it was."""
    best: Result = {}
    for window in ("create", "edit"):
        measured = {
            clients: result[window]["total_seconds"]
            for clients, result in variants.items()
            if window in result
        }
        if measured:
            clients = min(measured, key=lambda key: measured[key])
            best[window] = {"seconds": measured[clients], "clients": int(clients)}
    return best


def variant(bench: Bench, fleet: Fleet, clients: int) -> Result:
    config = bench.config
    fleet.manifests = fleet.make("agent", config.agents, tag="1")
    names = fleet.names
    # Rendered and serialised before the window: the baseline knows what to send.
    agents = [Prepared.of(agent) for agent in fleet.manifests]
    children = [Prepared.of(obj) for obj in baseline_children(fleet.manifests)]
    uids: dict[str, str] = {}

    def keep_uid(index: int, answer: dict[str, Any]) -> None:
        if answer.get("kind") == "AIAgent":
            uids[answer["metadata"]["name"]] = answer["metadata"]["uid"]

    window = fleet.open_window()
    created, applied = bench.client.apply_steps(
        [
            (lambda: agents, config.clients),
            (lambda: [child.with_owners(uids) for child in children], clients),
        ],
        keep_uid,
    )
    rolled_out_at = fleet.children.when_rolled_out(names, None, config.timeout(), bench.log)
    writes, cost = fleet.close_window(window)
    create = {
        "agents_seconds": round(created.seconds, 2),
        "apply_seconds": round(applied.seconds, 2),
        "objects": applied.requests,
        "total_seconds": round(rolled_out_at - window.started, 2),
        "writes": writes.as_dict(),
        "cost": cost.as_dict(),
    }

    # The edit: new images on the AIAgents, then the Deployments rendered from them.
    edited = fleet.make("agent", config.agents, tag="2")
    image = {a["metadata"]["name"]: a["spec"]["image"] for a in edited}
    edited_agents = [Prepared.of(agent) for agent in edited]
    for agent in edited:  # rendered as the existing agents, sent without their uids
        agent["metadata"]["uid"] = uids[agent["metadata"]["name"]]
    deployments = [Prepared.of(obj) for obj in desired_children(edited, ["Deployment"]).values()]
    window = fleet.open_window()
    changed, redeployed = bench.client.apply_steps(
        [(lambda: edited_agents, config.clients), (lambda: deployments, clients)]
    )
    rolled_out_at = fleet.children.when_rolled_out(names, image, config.timeout(), bench.log)
    writes, cost = fleet.close_window(window)
    edit = {
        "agents_seconds": round(changed.seconds, 2),
        "apply_seconds": round(redeployed.seconds, 2),
        "objects": redeployed.requests,
        "total_seconds": round(rolled_out_at - window.started, 2),
        "writes": writes.as_dict(),
        "cost": cost.as_dict(),
    }
    return {"clients": clients, "create": create, "edit": edit}


def summary(result: Result) -> str:
    if "error" in result:
        return f"FAILED: {result['error']}"
    return ", ".join(
        f"{window} {result[window]['total_seconds']} s "
        f"(AIAgents {result[window]['agents_seconds']} s, "
        f"{result[window]['objects']:,} objects {result[window]['apply_seconds']} s)"
        for window in ("create", "edit")
    )
