"""Hypercore's routes: POST /spawn (create an agent, answer at once) and the node-registration
control plane's GET /api/v1/nodes (Nodes with capabilities and node agent heartbeats)."""

from __future__ import annotations

from fastapi import APIRouter

from agentfleet.api import constants as c
from agentfleet.frontends import importers
from agentfleet.frontends.http import schemas as s
from agentfleet.frontends.http.auth import FleetDep, GuardDep, may_agents, may_cluster
from agentfleet.frontends.http.errors import SPAWN_FIELDS, body_field, unprocessable
from agentfleet.frontends.importers import InvalidSpec

router = APIRouter(tags=["Hypercore"])


@router.post("/spawn", status_code=201, responses=s.ERRORS, dependencies=[may_agents("create")])
async def spawn(body: s.SpawnRequest, guard: GuardDep) -> s.SpawnResponse:
    """Hypercore's spawn: create the agent and answer at once (poll /services/{id})."""
    ns = guard.namespace
    base = body.name or importers.dns_name(body.image_ref.rsplit("/", 1)[-1].split(":")[0])
    try:
        options = importers.SpawnOptions(
            image=body.image_ref,
            agent_type=body.agent_type.value,
            cpu=str(body.cores),
            memory=importers.memory(body.memory, "memory"),
            env=importers.env_list(body.env, "env"),
        )
        warnings = importers.port_warnings(
            [f"{k}:{v}" for k, v in body.ports.items()], base or "agent"
        )
        spec = importers.spawn_spec(options)
        agent = importers.agent_body(base or "agent", ns, spec)
    except InvalidSpec as error:
        raise unprocessable(body_field(error.field, SPAWN_FIELDS), error.message) from error
    agent["metadata"] = {"generateName": f"{agent['metadata']['name']}-", "namespace": ns}
    created = await guard.fleet.create(agent)
    name = created["metadata"]["name"]
    return s.SpawnResponse(
        id=name,
        name=name,
        namespace=ns,
        host=f"http://{name}.{ns}.svc:{c.HTTP.number}",  # status has the full name later
        warnings=warnings,
    )


@router.get("/api/v1/nodes", responses=s.ERRORS, dependencies=[may_cluster("nodes")])
async def nodes(fleet: FleetDep) -> list[s.NodeRecord]:
    """Nodes with capabilities and heartbeats, as the node-registration API listed them."""
    return [s.node_record(view) for view in await fleet.node_views()]
