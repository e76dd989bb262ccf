"""The generated AuthorizationPolicies, judged by an independent model of Istio's decision
(tests/unit/render/authz.py): for every pair of example agents and every port, "may A call
B on port P" is exactly what B's `allowFrom` says, and everything else is denied."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import AIAgent
from tests.unit.render.authz import Caller, Destination, decide, may_call
from tests.unit.render.fleet import generator

NS = "ai-agents"
TD = "cluster.local"
PORTS = [p.number for p in c.PORTS]
PORT_NUMBER = {"http": 8080, "grpc": 9090, "metrics": 9091}
PROMETHEUS = Caller(f"{TD}/ns/monitoring/sa/prometheus", "monitoring")
INGRESS = Caller(f"{TD}/ns/istio-ingress/sa/istio-ingressgateway", "istio-ingress")
STRANGER = Caller(f"{TD}/ns/elsewhere/sa/default", "elsewhere")
NEIGHBOUR = Caller(f"{TD}/ns/{NS}/sa/default", NS)  # a non-agent workload of the namespace
PLAINTEXT = Caller(None, None)


def identity(agent: AIAgent) -> Caller:
    sa = agent.spec.service_account_name or agent.metadata.name
    return Caller(f"{TD}/ns/{NS}/sa/{sa}", NS)


def expected(caller: Caller, caller_type: str | None, dest: dict[str, Any], port: int) -> bool:
    """What the spec says, read straight from the input (not from the renderer)."""
    if port == c.METRICS.number and caller.namespace == "monitoring":
        return True
    for entry in (dest["spec"].get("mesh") or {}).get("allowFrom") or []:
        if port not in [PORT_NUMBER[p] for p in entry.get("ports", ["http", "grpc"])]:
            continue
        sa = entry.get("serviceAccount")
        if (
            ("agent" in entry and caller.principal == f"{TD}/ns/{NS}/sa/{entry['agent']}")
            or ("agentType" in entry and caller_type == entry["agentType"])
            or ("namespace" in entry and caller.namespace == entry["namespace"])
            or (
                sa is not None
                and caller.principal == f"{TD}/ns/{sa.get('namespace', NS)}/sa/{sa['name']}"
            )
        ):
            return True
    return False


def destination(agent: AIAgent, objects: list[dict[str, Any]]) -> Destination:
    by_kind = {
        obj["kind"]: obj for obj in objects if obj["metadata"]["name"] == agent.metadata.name
    }
    service, deployment = by_kind["Service"], by_kind["Deployment"]
    return Destination(
        namespace=NS,
        pod_labels=deployment["spec"]["template"]["metadata"]["labels"],
        service=agent.metadata.name,
        waypoint=service["metadata"]["labels"].get(c.LABEL_ISTIO_USE_WAYPOINT),
        ports={p["port"]: p["port"] for p in service["spec"]["ports"]},
    )


@pytest.mark.parametrize("mode", ["ambient", "sidecar"])
@pytest.mark.parametrize("chaos", [None, "testing"])
def test_every_pair_of_example_agents_matches_allow_from_exactly(
    mode: str, chaos: str | None
) -> None:
    gen = generator()
    bodies = {b["metadata"]["name"]: b for b in gen.fleet_agents(mode, chaos)}
    fleet = gen.fleet_objects(list(bodies.values()))
    everything = [obj for _, objects in fleet for obj in objects]
    callers = [(identity(agent), agent.spec.agent_type.value) for agent, _ in fleet]
    callers += [(c_, None) for c_ in (PROMETHEUS, INGRESS, STRANGER, NEIGHBOUR, PLAINTEXT)]
    allowed = denied = 0
    for (agent, objects), (caller, caller_type), port in itertools.product(fleet, callers, PORTS):
        dest = destination(agent, objects)
        waypoint = Caller(f"{TD}/ns/{NS}/sa/{dest.waypoint}", NS) if dest.waypoint else None
        want = expected(caller, caller_type, bodies[agent.metadata.name], port)
        got = may_call(everything, caller, dest, port, waypoint)
        assert got == want, f"{caller} -> {agent.metadata.name}:{port} ({mode})"
        # Dialling a pod IP skips the waypoint: only the scrapers get through that way.
        direct = may_call(everything, caller, dest, port, waypoint, via_service=False)
        scraper = port == c.METRICS.number and caller.namespace == "monitoring"
        assert direct == (want and (dest.waypoint is None or scraper)), (
            f"{caller} -> pod of {agent.metadata.name}:{port} ({mode})"
        )
        allowed, denied = allowed + want, denied + (not want)
    assert allowed >= 30 and denied >= 280  # not trivially all-or-nothing (33 of 336 allowed)


def test_the_fleet_uses_every_enforcement_shape() -> None:
    """The example fleet exercises L4 policies, waypoint-bound ones and an agent's own
    waypoint in ambient mode, so the test above covers all three."""
    gen = generator()
    fleet = gen.fleet_objects(gen.fleet_agents("ambient"))
    waypoints = {
        objects[0]["metadata"]["name"]: destination(agent, objects).waypoint
        for agent, objects in fleet
    }
    assert waypoints["discovery"] is None  # L4, enforced by ztunnel
    assert waypoints["orchestrator"] == c.NAMESPACE_WAYPOINT
    assert waypoints["coding"] == "coding-waypoint"


def test_health_is_refused_to_every_mesh_caller() -> None:
    """The kubelet's probes bypass the data plane; no workload may use the health port."""
    gen = generator()
    fleet = gen.fleet_objects(gen.fleet_agents("sidecar"))
    everything = [obj for _, objects in fleet for obj in objects]
    for agent, objects in fleet:
        for caller in (PROMETHEUS, NEIGHBOUR, identity(agent)):
            assert not may_call(everything, caller, destination(agent, objects), 8081)


def test_trust_domain_and_scraper_namespaces_come_from_the_configuration() -> None:
    gen = generator()
    config = RenderConfig(mesh_trust_domain="prod.example", mesh_metrics_namespaces=("obs",))
    fleet = gen.fleet_objects(gen.fleet_agents("sidecar"), config)
    everything = [obj for _, objects in fleet for obj in objects]
    discovery, objects = next((a, o) for a, o in fleet if a.metadata.name == "discovery")
    dest = destination(discovery, objects)
    assert may_call(everything, Caller("prod.example/ns/ai-agents/sa/coding", NS), dest, 9090)
    assert not may_call(everything, identity(discovery), dest, 9090)  # cluster.local: no
    assert may_call(everything, Caller("prod.example/ns/obs/sa/p", "obs"), dest, 9091)
    assert not may_call(everything, PROMETHEUS, dest, 9091)


# --- the model itself, on Istio's documented examples ----------------------------------------


def policy(spec: dict[str, Any], **meta: str) -> dict[str, Any]:
    return {
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "p", "namespace": NS, **meta},
        "spec": spec,
    }


ALICE = Caller(f"{TD}/ns/{NS}/sa/alice", NS)


def test_no_policy_allows_and_allow_nothing_denies() -> None:
    assert decide([], ALICE, 8080)
    assert not decide([policy({})], ALICE, 8080)


def test_allow_rules_and_deny_precedence() -> None:
    allow = policy({"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": [NS]}}]}]})
    deny = policy({"action": "DENY", "rules": [{"to": [{"operation": {"ports": ["8080"]}}]}]})
    assert decide([allow], ALICE, 8080)
    assert not decide([allow], STRANGER, 8080)
    assert not decide([allow, deny], ALICE, 8080)
    assert decide([allow, deny], ALICE, 9090)


def test_empty_lists_mean_unset_and_wildcards_match() -> None:
    """Why the renderers must never emit `principals: []`: Istio reads it as "anyone"."""
    empty = policy({"rules": [{"from": [{"source": {"principals": []}}]}]})
    assert decide([empty], STRANGER, 8080)
    suffix = policy({"rules": [{"from": [{"source": {"principals": ["*/sa/alice"]}}]}]})
    assert decide([suffix], ALICE, 8080) and not decide([suffix], STRANGER, 8080)
    assert not decide([suffix], PLAINTEXT, 8080)


def test_waypoint_policies_apply_only_at_the_waypoint() -> None:
    bound = policy({"targetRefs": [{"group": "", "kind": "Service", "name": "b"}], "rules": []})
    dest = Destination(NS, {"app": "b"}, "b", waypoint="waypoint")
    waypoint = Caller(f"{TD}/ns/{NS}/sa/waypoint", NS)
    assert not may_call([bound], ALICE, dest, 8080, waypoint)  # the waypoint denies
    assert may_call([bound], ALICE, dest, 8080, waypoint, via_service=False)  # pods: no policy
