"""Gateway API objects of an agent in ambient mode: its waypoint and its routes.

- Waypoint: a Gateway of class `istio-waypoint` with the `mesh` listener (15008, HBONE) that
  istiod turns into an Envoy Deployment, Service and ServiceAccount named after it. The
  namespace's waypoint (`waypoint`) is shared: one ownerReference per agent using it and none
  the controller, so it outlives any one agent. An agent may also have its own
  (`<agent>-waypoint`, controlled by the agent). The Gateway's labels are copied by istiod to
  what it creates, so they never include an agent's selector labels.
- Routes (GAMMA: `parentRefs` to the agent's Service, one port each): an HTTPRoute for http
  (8080) with the request timeout, and a GRPCRoute for grpc (9090), so the waypoint routes
  gRPC as HTTP/2. Only when the agent's rules fit Gateway API's standard channel; see
  render/istio.py for when a VirtualService carries them instead.
- Multi-cluster (ambient): an exported agent's own waypoint is global (`istio.io/global` on
  the Service istiod makes for it, through `spec.infrastructure.labels`).
"""

from __future__ import annotations

from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent, MeshMode, WaypointScope
from agentfleet.render import istio
from agentfleet.render.common import object_meta
from agentfleet.render.context import RenderContext
from agentfleet.render.multicluster import exported

API_VERSION = "gateway.networking.k8s.io/v1"


def waypoints(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    mesh_plan = istio.plan(agent, context)
    if mesh_plan.waypoint is None:
        return []
    if mesh_plan.shared_waypoint:
        users = [
            peer
            for peer in istio.namespace_agents(agent, context)
            if istio.peer_waypoint_scope(peer, context.config) == WaypointScope.NAMESPACE
        ]
        meta = istio.shared_meta(mesh_plan.waypoint, agent.metadata.namespace, users)
    else:
        meta = object_meta(agent, mesh_plan.waypoint)
    meta["labels"] = {
        c.LABEL_COMPONENT: "waypoint",
        c.LABEL_PART_OF: c.PART_OF,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_ISTIO_WAYPOINT_FOR: "service",
    }
    infrastructure = {c.LABEL_PART_OF: c.PART_OF}
    if not mesh_plan.shared_waypoint and exported(agent):
        # Ambient multi-cluster: the waypoint's Service must be global too (Istio's
        # multicluster guide); only an agent's own waypoint ever is (see traffic.py).
        infrastructure[c.LABEL_ISTIO_GLOBAL] = "true"
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": meta,
            "spec": {
                "gatewayClassName": c.WAYPOINT_GATEWAY_CLASS,
                # What istiod stamps on the waypoint's Deployment, pods and Service instead
                # of the Gateway's own labels (our managed-by label would mislead there).
                "infrastructure": {"labels": infrastructure},
                "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
            },
        }
    ]


def still_wanted(body: dict[str, Any], context: RenderContext) -> bool:
    """The namespace waypoint stays while any agent of the namespace uses it; an agent's
    own waypoint (controller reference) is wanted by nobody else."""
    meta = body["metadata"]
    if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return False
    return meta["name"] == c.NAMESPACE_WAYPOINT and any(
        istio.peer_waypoint_scope(peer, context.config) == WaypointScope.NAMESPACE
        for peer in context.peers
    )


def _route(agent: AIAgent, kind: str, port: c.Port, rule: dict[str, Any]) -> dict[str, Any]:
    name = agent.metadata.name
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": object_meta(agent),
        "spec": {
            "parentRefs": [{"group": "", "kind": "Service", "name": name, "port": port.number}],
            "rules": [{"backendRefs": [{"name": name, "port": port.number}], **rule}],
        },
    }


def _gateway_api_routes(agent: AIAgent, context: RenderContext) -> bool:
    mesh_plan = istio.plan(agent, context)
    return mesh_plan.mode == MeshMode.AMBIENT and mesh_plan.routes == istio.Routes.GATEWAY_API


def http_routes(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    if not _gateway_api_routes(agent, context):
        return []
    traffic = agent.spec.mesh.traffic if agent.spec.mesh else None
    timeout = traffic.timeout if traffic else None
    rule = {"timeouts": {"request": timeout}} if timeout else {}
    return [_route(agent, "HTTPRoute", c.HTTP, rule)]


def grpc_routes(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    if not _gateway_api_routes(agent, context):
        return []
    return [_route(agent, "GRPCRoute", c.GRPC, {})]


def health(body: dict[str, Any]) -> tuple[bool, str, str] | None:
    """A Gateway or route its controller (istiod) refused: Accepted, Programmed or
    ResolvedRefs False, with the controller's words. Nothing to say while no controller
    has reported (the API server's default status is Unknown/Pending)."""
    status = body.get("status") or {}
    conditions = list(status.get("conditions") or [])
    for parent in status.get("parents") or []:
        conditions += parent.get("conditions") or []
    for cond in conditions:
        if cond.get("type") in ("Accepted", "Programmed", "ResolvedRefs") and (
            cond.get("status") == "False"
        ):
            where = f"{body.get('kind')} {body['metadata']['name']}"
            return (
                False,
                str(cond.get("reason") or "NotAccepted"),
                f"{where}: {cond.get('message', '')}",
            )
    return None
