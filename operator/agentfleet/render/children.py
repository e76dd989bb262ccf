"""The one table of the kinds an AIAgent owns.

Every layer reads this table and nothing else: the renderers (which objects to build), the
reconciler (apply order, pruning, feature conditions), the kopf glue (one watch and cache per
kind, server-side filtered by our label) and the RBAC rules (tests check they match). Adding a
kind is one row and one renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api.models import AIAgent
from agentfleet.render import (
    deployment,
    gateway,
    istio,
    keda,
    multicluster,
    service,
    serviceaccount,
    tracing,
)
from agentfleet.render.context import RenderContext

Renderer = Callable[[AIAgent, RenderContext], list[dict[str, Any]]]
# (ok, reason, message) for the feature's condition, read from the applied object's status
# (e.g. KEDA's own conditions on a ScaledObject); None while there is nothing to report.
Health = Callable[[dict[str, Any]], "tuple[bool, str, str] | None"]
# For shared objects: does any agent of the namespace (ctx.peers) still want this object?
StillWanted = Callable[[dict[str, Any], RenderContext], bool]


@dataclass(frozen=True)
class ChildKind:
    kind: str
    api_version: str
    plural: str
    render: Renderer
    # Optional kinds belong to a feature whose CRDs may be absent (KEDA, Istio, Gateway API).
    # Their state is reported by this condition type instead of stalling the agent.
    feature: str | None = None
    # Objects several agents share (a namespace waypoint): one ownerReference per agent,
    # none of them the controller.
    shared: bool = False
    # The group of RBAC rules (and Helm values toggle) that grants access to this kind.
    rbac_group: str = "core"
    health: Health | None = None
    still_wanted: StillWanted | None = None  # required for shared kinds

    @property
    def optional(self) -> bool:
        return self.feature is not None

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def resource(self) -> str:
        """`plural.group` as RBAC, CRDs and `kubectl get` name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


# In apply order: the ServiceAccount must exist before the ReplicaSet creates Pods.
CHILD_KINDS: tuple[ChildKind, ...] = (
    ChildKind("ServiceAccount", "v1", "serviceaccounts", serviceaccount.render),
    ChildKind("Service", "v1", "services", service.render),
    ChildKind(
        multicluster.KIND,
        multicluster.API_VERSION,
        "serviceexports",
        multicluster.service_exports,
        feature=c.COND_MULTICLUSTER_READY,
        rbac_group="multicluster",
        health=multicluster.health,
    ),
    # The mesh, before the Deployment so that pods start with their policies in place. The
    # AuthorizationPolicy and Gateway rows also hold objects the mesh agents of a namespace
    # share (its default-deny policy and waypoint); an agent's own ones have a controller.
    ChildKind(
        "PeerAuthentication",
        istio.SECURITY_API,
        "peerauthentications",
        istio.peer_authentications,
        feature=c.COND_MESH_READY,
        rbac_group="istio",
    ),
    ChildKind(
        "AuthorizationPolicy",
        istio.SECURITY_API,
        "authorizationpolicies",
        istio.authorization_policies,
        feature=c.COND_MESH_READY,
        shared=True,
        rbac_group="istio",
        still_wanted=istio.still_wanted,
    ),
    ChildKind(
        "Gateway",
        gateway.API_VERSION,
        "gateways",
        gateway.waypoints,
        feature=c.COND_MESH_READY,
        shared=True,
        rbac_group="gatewayApi",
        health=gateway.health,
        still_wanted=gateway.still_wanted,
    ),
    ChildKind(
        "DestinationRule",
        istio.NETWORKING_API,
        "destinationrules",
        istio.destination_rules,
        feature=c.COND_MESH_READY,
        rbac_group="istio",
    ),
    ChildKind(
        "VirtualService",
        istio.NETWORKING_API,
        "virtualservices",
        istio.virtual_services,
        feature=c.COND_MESH_READY,
        rbac_group="istio",
    ),
    ChildKind(
        "HTTPRoute",
        gateway.API_VERSION,
        "httproutes",
        gateway.http_routes,
        feature=c.COND_MESH_READY,
        rbac_group="gatewayApi",
        health=gateway.health,
    ),
    ChildKind(
        "GRPCRoute",
        gateway.API_VERSION,
        "grpcroutes",
        gateway.grpc_routes,
        feature=c.COND_MESH_READY,
        rbac_group="gatewayApi",
        health=gateway.health,
    ),
    ChildKind(
        "Telemetry",
        tracing.TELEMETRY_API,
        "telemetries",
        tracing.telemetries,
        feature=c.COND_MESH_READY,
        rbac_group="istio",
    ),
    ChildKind("Deployment", "apps/v1", "deployments", deployment.render),
    ChildKind(
        keda.KIND,
        keda.API_VERSION,
        "scaledobjects",
        keda.render,
        feature=c.COND_SCALER_READY,
        rbac_group="keda",
        health=keda.health,
    ),
)


def desired_objects(agent: AIAgent, context: RenderContext) -> list[dict[str, Any]]:
    """Every object the agent should own, in apply order."""
    return [obj for row in CHILD_KINDS for obj in row.render(agent, context)]
