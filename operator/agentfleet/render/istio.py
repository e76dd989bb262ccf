"""Istio objects of an agent: who may call it, and how calls to it behave.

Zero trust, per agent: a PeerAuthentication (STRICT: plaintext is refused) and an
AuthorizationPolicy that allows only the callers in `spec.mesh.allowFrom`, resolved to SPIFFE
principals (`<trustDomain>/ns/<namespace>/sa/<serviceAccount>`), on the agent's ports. Every
other caller is denied, and so is everyone in a namespace whose default-deny policy this
module shares among the mesh agents of the namespace.

Where the policy is enforced decides its shape (Istio's rules, checked in its source):
- sidecar mode, or ambient without a waypoint: one policy with a `selector` on the agent's
  pods, enforced by the pod's sidecar or by ztunnel. L4 attributes only (principals,
  namespaces, ports): ztunnel turns an L7 rule into a deny.
- ambient with a waypoint: the callers' policy is bound to the agent's Service with
  `targetRefs` (`<agent>.via-waypoint`), so the waypoint enforces it with the caller's own
  identity. Behind a waypoint ztunnel only sees the waypoint's identity, so the pods' policy
  admits the waypoint (on exactly the ports the waypoint may forward) and nobody else: a
  caller that dials a pod IP to skip the waypoint is refused.
- metrics (9091) are admitted from the configured scraper namespaces at the pods (Prometheus
  scrapes pod IPs). Health (8081) needs no rule: the kubelet's probes bypass both data planes
  (sidecar probe rewrite, ambient's link-local SNAT), so nobody else is let in.

Traffic rules (render/traffic.py: retries and outlier detection by default, per agent type):
a DestinationRule (outlier detection, connection pool) whenever they are on; timeouts, retries
and fault injection on routes. The routes are Gateway API HTTPRoute and GRPCRoute in ambient
mode when the standard channel can express the rules (timeouts), and a VirtualService when it
cannot (retries and faults are absent from Gateway API v1.4 standard) or in sidecar mode;
never both for one host (render/gateway.py holds the Gateway API side).

Renderers stay pure: what they know of other agents (types, ServiceAccounts, who uses the
namespace waypoint) comes from `RenderContext.peers`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import (
    AIAgent,
    GRPCMode,
    MeshCaller,
    MeshMode,
    MeshPort,
    MTLSMode,
    Traffic,
    WaypointScope,
)
from agentfleet.render import traffic as traffic_rules
from agentfleet.render.common import object_meta, selector_labels, service_account_name
from agentfleet.render.context import Peer, RenderContext
from agentfleet.render.multicluster import exported

SECURITY_API: str = "security.istio.io/v1"
NETWORKING_API: str = "networking.istio.io/v1"
VIA_WAYPOINT_SUFFIX = ".via-waypoint"

PORT_OF: dict[MeshPort, c.Port] = {
    MeshPort.HTTP: c.HTTP,
    MeshPort.GRPC: c.GRPC,
    MeshPort.METRICS: c.METRICS,
}
DEFAULT_CALLER_PORTS = (MeshPort.HTTP, MeshPort.GRPC)


class Routes(StrEnum):
    """Which kind carries the agent's timeouts, retries and faults."""

    NONE = "none"
    GATEWAY_API = "gateway-api"  # HTTPRoute + GRPCRoute (ambient, through the waypoint)
    VIRTUAL_SERVICE = "virtual-service"


@dataclass(frozen=True)
class MeshPlan:
    """What the agent's mesh settings and the operator's defaults amount to."""

    mode: MeshMode
    waypoint: str | None = None  # the Gateway that serves the agent's Service
    shared_waypoint: bool = False  # the namespace's waypoint (several agents own it)
    routes: Routes = Routes.NONE
    destination_rule: bool = False
    traffic: Traffic | None = None  # every layer applied (render/traffic.py); None: no L7 rules


def effective_mode(mesh: dict[str, Any] | None, config: RenderConfig) -> MeshMode:
    """An agent's mode from its raw spec.mesh (no mesh or no mode: the operator's default)."""
    try:
        return MeshMode((mesh or {}).get("mode") or config.mesh_mode)
    except ValueError:
        return MeshMode.NONE


def waypoint_scope(
    mesh: dict[str, Any] | None,
    config: RenderConfig,
    agent_type: str = "",
    exported: bool = False,
) -> WaypointScope:
    """Ambient only; unset means a waypoint if traffic rules need one (the defaults of the
    agent's type count): the namespace's, or its own for an agent exported to other clusters
    (Istio makes every service behind a global waypoint global)."""
    if effective_mode(mesh, config) != MeshMode.AMBIENT:
        return WaypointScope.NONE
    mesh = mesh or {}
    if mesh.get("waypoint"):
        return WaypointScope(mesh["waypoint"])
    if not traffic_rules.has_rules(mesh.get("traffic"), agent_type, config.traffic_defaults):
        return WaypointScope.NONE
    return WaypointScope.AGENT if exported else WaypointScope.NAMESPACE


def peer_waypoint_scope(peer: Peer, config: RenderConfig) -> WaypointScope:
    return waypoint_scope(peer.mesh, config, peer.agent_type, peer.exported)


def agent_waypoint_name(agent_name: str) -> str:
    """`<agent>-waypoint`, shortened with a hash to stay a DNS label (istiod names the
    waypoint's Deployment, Service and ServiceAccount after it)."""
    name = f"{agent_name}-waypoint"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(agent_name.encode()).hexdigest()[:6]
    return f"{agent_name[:46].rstrip('-')}-{digest}-waypoint"


def raw_mesh(agent: AIAgent) -> dict[str, Any] | None:
    mesh = agent.spec.mesh
    return mesh.model_dump(mode="json", by_alias=True, exclude_none=True) if mesh else None


def plan(agent: AIAgent, context: RenderContext) -> MeshPlan:
    mesh = raw_mesh(agent)
    config = context.config
    mode = effective_mode(mesh, config)
    if mode == MeshMode.NONE:
        return MeshPlan(mode)
    agent_type = agent.spec.agent_type.value
    scope = waypoint_scope(mesh, config, agent_type, exported(agent))
    waypoint = {
        WaypointScope.NONE: None,
        WaypointScope.NAMESPACE: c.NAMESPACE_WAYPOINT,
        WaypointScope.AGENT: agent_waypoint_name(agent.metadata.name),
    }[scope]
    own = agent.spec.mesh.traffic if agent.spec.mesh else None
    traffic = traffic_rules.effective(agent_type, own, config.traffic_defaults)
    if mode == MeshMode.AMBIENT and waypoint is None:
        traffic = None  # ztunnel is L4 only: `waypoint: none` opts out of L7 rules
    return MeshPlan(
        mode,
        waypoint,
        scope == WaypointScope.NAMESPACE,
        _routes(mode, traffic),
        bool(traffic and (traffic.outlier_detection or traffic.connection_pool)),
        traffic,
    )


def _routes(mode: MeshMode, traffic: Traffic | None) -> Routes:
    if traffic is None or not (traffic.timeout or traffic.retries or traffic.fault_injection):
        return Routes.NONE
    if mode == MeshMode.SIDECAR or traffic.retries or traffic.fault_injection:
        return Routes.VIRTUAL_SERVICE
    return Routes.GATEWAY_API


# --- hooks for the Deployment and the Service ------------------------------------------------


def pod_labels(agent: AIAgent, context: RenderContext) -> dict[str, str]:
    """Enrol the agent's pods (and only them) in its mode. Ambient pods also refuse a
    sidecar, which would otherwise win in a namespace labelled for injection."""
    mode = plan(agent, context).mode
    if mode == MeshMode.AMBIENT:
        return {c.LABEL_ISTIO_DATAPLANE_MODE: "ambient", c.LABEL_ISTIO_SIDECAR_INJECT: "false"}
    if mode == MeshMode.SIDECAR and proxyless(agent, context) and _strict(agent):
        # Istio's grpc-agent template leaves this to the user "if gRPC is using mTLS": with
        # STRICT the agent serves xDS credentials, and callers' proxies must send mTLS.
        return {c.LABEL_ISTIO_SIDECAR_INJECT: "true", c.LABEL_ISTIO_TLS_MODE: "istio"}
    if mode == MeshMode.SIDECAR:
        return {c.LABEL_ISTIO_SIDECAR_INJECT: "true"}
    return {}


def _strict(agent: AIAgent) -> bool:
    return not agent.spec.mesh or agent.spec.mesh.mtls == MTLSMode.STRICT


def proxyless(agent: AIAgent, context: RenderContext) -> bool:
    """Proxyless gRPC: Istio injects an istio-agent without Envoy (sidecar mode only)."""
    mesh = agent.spec.mesh
    return bool(
        mesh and mesh.grpc == GRPCMode.PROXYLESS and plan(agent, context).mode == MeshMode.SIDECAR
    )


def pod_annotations(agent: AIAgent, context: RenderContext) -> dict[str, str]:
    """Proxyless gRPC pods ask the injector for the `grpc-agent` template (the istio-agent
    that serves the xDS bootstrap, certificates and no Envoy) and hold the app until that
    agent is ready, as Istio's proxyless gRPC guide does."""
    if not proxyless(agent, context):
        return {}
    return {
        c.ANNOTATION_ISTIO_INJECT_TEMPLATES: c.GRPC_AGENT_TEMPLATE,
        c.ANNOTATION_ISTIO_PROXY_CONFIG: '{"holdApplicationUntilProxyStarts": true}',
    }


def container_env(agent: AIAgent, context: RenderContext) -> list[dict[str, str]]:
    """What the grpc-agent template also gives the app container, written here too so the
    agent's pod template says it (the injector merges the same values): where gRPC finds
    its xDS bootstrap, and xDS credentials (mTLS from istio-agent's certificates) on."""
    if not proxyless(agent, context):
        return []
    return [
        {"name": "GRPC_XDS_BOOTSTRAP", "value": c.GRPC_XDS_BOOTSTRAP},
        {"name": "GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT", "value": "true"},
    ]


def service_labels(agent: AIAgent, context: RenderContext) -> dict[str, str]:
    """Bind the agent's Service to its waypoint, if it has one; an exported ambient agent's
    Service is also global (discovered by the mesh's other clusters)."""
    mesh_plan = plan(agent, context)
    labels = {c.LABEL_ISTIO_USE_WAYPOINT: mesh_plan.waypoint} if mesh_plan.waypoint else {}
    if mesh_plan.mode == MeshMode.AMBIENT and exported(agent):
        labels[c.LABEL_ISTIO_GLOBAL] = "true"
    return labels


# --- who may call the agent --------------------------------------------------------------------


def principal(config: RenderConfig, namespace: str, service_account: str) -> str:
    return f"{config.mesh_trust_domain}/ns/{namespace}/sa/{service_account}"


def namespace_agents(agent: AIAgent, context: RenderContext) -> list[Peer]:
    """The agents of the namespace, this one as it is now (the peer index may lag)."""
    me = Peer(
        agent.metadata.name,
        agent.metadata.uid,
        agent.spec.agent_type.value,
        service_account_name(agent),
        raw_mesh(agent),
        exported(agent),
    )
    others = [peer for peer in context.peers if peer.name != me.name]
    return sorted([*others, me], key=lambda peer: peer.name)


def _caller_source(
    caller: MeshCaller, agent: AIAgent, peers: list[Peer], config: RenderConfig
) -> tuple[set[str], set[str]]:
    """(principals, namespaces) one allowFrom entry stands for; empty if it names agents
    that do not exist (yet): the policy follows when they appear."""
    namespace = agent.metadata.namespace
    if caller.namespace:
        return set(), {caller.namespace}
    if caller.service_account:
        ref = caller.service_account
        return {principal(config, ref.namespace or namespace, ref.name)}, set()
    named = [
        peer
        for peer in peers
        if (caller.agent and peer.name == caller.agent)
        or (caller.agent_type and peer.agent_type == caller.agent_type.value)
    ]
    return {principal(config, namespace, peer.service_account) for peer in named}, set()


def _ports(names: list[MeshPort] | tuple[MeshPort, ...]) -> tuple[str, ...]:
    return tuple(str(n) for n in sorted(PORT_OF[name].number for name in set(names)))


def caller_rules(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    """One ALLOW rule per distinct set of ports, naming every caller allowed on them, plus
    the metrics scrapers. Never an empty list: Istio reads an empty field as "anyone"."""
    peers = namespace_agents(agent, context)
    grouped: dict[tuple[str, ...], tuple[set[str], set[str]]] = {}
    for caller in (agent.spec.mesh.allow_from if agent.spec.mesh else None) or []:
        principals, namespaces = _caller_source(caller, agent, peers, context.config)
        ports = _ports(caller.ports or DEFAULT_CALLER_PORTS)
        known = grouped.setdefault(ports, (set(), set()))
        known[0].update(principals)
        known[1].update(namespaces)
    rules = [
        _rule(principals, namespaces, ports)
        for ports, (principals, namespaces) in sorted(grouped.items())
        if principals or namespaces
    ]
    return rules + scraper_rules(context.config)


def scraper_rules(config: RenderConfig) -> list[dict[str, Any]]:
    scrapers = set(filter(None, config.mesh_metrics_namespaces))
    return [_rule(set(), scrapers, (str(c.METRICS.number),))] if scrapers else []


def _rule(principals: set[str], namespaces: set[str], ports: tuple[str, ...]) -> dict[str, Any]:
    sources = []
    if principals:
        sources.append({"source": {"principals": sorted(principals)}})
    if namespaces:
        sources.append({"source": {"namespaces": sorted(namespaces)}})
    return {"from": sources, "to": [{"operation": {"ports": list(ports)}}]}


def _policy(
    meta: dict[str, Any], spec: dict[str, Any], rules: list[dict[str, Any]]
) -> dict[str, Any]:
    # An ALLOW policy without rules allows nothing: exactly what "no callers" means.
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": meta,
        "spec": {**spec, "action": "ALLOW", **({"rules": rules} if rules else {})},
    }


def authorization_policies(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    mesh_plan = plan(agent, context)
    if mesh_plan.mode == MeshMode.NONE:
        return []
    name = agent.metadata.name
    pods = {"selector": {"matchLabels": selector_labels(agent)}}
    rules = caller_rules(agent, context)
    if mesh_plan.waypoint is None:
        policies = [_policy(object_meta(agent), pods, rules)]
    else:
        service = {"targetRefs": [{"group": "", "kind": "Service", "name": name}]}
        forwarded = sorted({p for rule in rules for p in rule["to"][0]["operation"]["ports"]})
        waypoint = principal(
            context.config, agent.metadata.namespace, mesh_plan.waypoint
        )  # istiod names the waypoint's ServiceAccount after its Gateway
        at_pods = [_rule({waypoint}, set(), tuple(forwarded))] if forwarded else []
        policies = [
            _policy(object_meta(agent), pods, at_pods + scraper_rules(context.config)),
            _policy(object_meta(agent, name + VIA_WAYPOINT_SUFFIX), service, rules),
        ]
    if context.config.mesh_default_deny:
        policies.append(default_deny(agent, context))
    return policies


def default_deny(agent: AIAgent, context: RenderContext) -> dict[str, Any]:
    """The namespace-wide allow-nothing policy, shared by the namespace's mesh agents."""
    users = [
        peer
        for peer in namespace_agents(agent, context)
        if effective_mode(peer.mesh, context.config) != MeshMode.NONE
    ]
    return {
        "apiVersion": SECURITY_API,
        "kind": "AuthorizationPolicy",
        "metadata": shared_meta(c.NAMESPACE_DEFAULT_DENY, agent.metadata.namespace, users),
        "spec": {},
    }


def shared_meta(name: str, namespace: str, users: list[Peer]) -> dict[str, Any]:
    """An object several agents share: one ownerReference per agent using it and none of
    them the controller, so the garbage collector deletes it only when all of them are gone."""
    return {
        "name": name,
        "namespace": namespace,
        "labels": {
            c.LABEL_COMPONENT: "mesh",
            c.LABEL_PART_OF: c.PART_OF,
            c.LABEL_MANAGED_BY: c.MANAGED_BY,
        },
        "ownerReferences": [
            {"apiVersion": c.API_VERSION, "kind": c.KIND, "name": peer.name, "uid": peer.uid}
            for peer in users
            if peer.uid
        ],
    }


def still_wanted(body: dict[str, Any], context: RenderContext) -> bool:
    """A shared AuthorizationPolicy stays while any mesh agent of the namespace uses it; an
    agent's own policies (controller reference) are wanted by nobody else."""
    meta = body["metadata"]
    if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return False
    if meta["name"] != c.NAMESPACE_DEFAULT_DENY or not context.config.mesh_default_deny:
        return False
    return any(effective_mode(peer.mesh, context.config) != MeshMode.NONE for peer in context.peers)


def peer_authentications(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    if plan(agent, context).mode == MeshMode.NONE:
        return []
    mtls = agent.spec.mesh.mtls.value if agent.spec.mesh else "STRICT"
    return [
        {
            "apiVersion": SECURITY_API,
            "kind": "PeerAuthentication",
            "metadata": object_meta(agent),
            "spec": {
                "selector": {"matchLabels": selector_labels(agent)},
                "mtls": {"mode": mtls},
            },
        }
    ]


# --- how calls to the agent behave --------------------------------------------------------------


def host(agent: AIAgent, context: RenderContext) -> str:
    meta = agent.metadata
    return f"{meta.name}.{meta.namespace}.svc.{context.config.cluster_domain}"


def destination_rules(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    mesh_plan = plan(agent, context)
    traffic = mesh_plan.traffic
    if traffic is None or not mesh_plan.destination_rule:
        return []
    policy: dict[str, Any] = {}
    if traffic.connection_pool:
        pool = traffic.connection_pool
        tcp = {"maxConnections": pool.max_connections}
        http = {
            "http1MaxPendingRequests": pool.max_pending_requests,
            "http2MaxRequests": pool.max_requests,
            "maxRequestsPerConnection": pool.max_requests_per_connection,
        }
        policy["connectionPool"] = {
            key: {k: v for k, v in part.items() if v is not None}
            for key, part in (("tcp", tcp), ("http", http))
            if any(v is not None for v in part.values())
        }
    if traffic.outlier_detection:
        outlier = traffic.outlier_detection
        policy["outlierDetection"] = {
            "consecutive5xxErrors": outlier.consecutive_5xx_errors,
            "interval": outlier.interval,
            "baseEjectionTime": outlier.base_ejection_time,
            "maxEjectionPercent": outlier.max_ejection_percent,
        }
    return [
        {
            "apiVersion": NETWORKING_API,
            "kind": "DestinationRule",
            "metadata": object_meta(agent),
            "spec": {"host": host(agent, context), "trafficPolicy": policy},
        }
    ]


def virtual_services(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    """Every port of the host gets a route (a VirtualService answers 404 on a port without
    one); faults, retries and the timeout only on http and grpc, never on health or metrics."""
    mesh_plan = plan(agent, context)
    traffic = mesh_plan.traffic
    if traffic is None or mesh_plan.routes != Routes.VIRTUAL_SERVICE:
        return []
    fqdn = host(agent, context)
    routes = []
    for port in c.PORTS:
        route: dict[str, Any] = {
            "name": port.name,
            "match": [{"port": port.number}],
            "route": [{"destination": {"host": fqdn, "port": {"number": port.number}}}],
        }
        if port in (c.HTTP, c.GRPC):
            route.update(_http_rules(traffic, grpc=port == c.GRPC))
        routes.append(route)
    return [
        {
            "apiVersion": NETWORKING_API,
            "kind": "VirtualService",
            "metadata": object_meta(agent),
            "spec": {"hosts": [fqdn], "http": routes},
        }
    ]


def _http_rules(traffic: Traffic, grpc: bool) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if traffic.timeout:
        rules["timeout"] = traffic.timeout
    if traffic.retries:
        retries = traffic.retries
        rules["retries"] = {
            "attempts": retries.attempts,
            **({"perTryTimeout": retries.per_try_timeout} if retries.per_try_timeout else {}),
            **({"retryOn": retries.retry_on} if retries.retry_on else {}),
        }
    faults = traffic.fault_injection
    if faults:
        fault: dict[str, Any] = {}
        if faults.delay:
            fault["delay"] = {
                "percentage": {"value": faults.delay.percent},
                "fixedDelay": faults.delay.fixed_delay,
            }
        if faults.abort:
            status = (
                {"grpcStatus": "UNAVAILABLE"} if grpc else {"httpStatus": faults.abort.http_status}
            )
            fault["abort"] = {"percentage": {"value": faults.abort.percent}, **status}
        rules["fault"] = fault
    return rules
