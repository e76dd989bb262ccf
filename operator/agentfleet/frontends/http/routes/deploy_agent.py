"""The per-GPU-node deploy agent's routes: GET /health, /services, /services/{name}, /gpus and
POST /deploy, /stop. Each reads or writes AIAgents; the deploy agent's field names stay.
"""

from __future__ import annotations

import socket
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request

from agentfleet import __version__
from agentfleet.frontends import importers
from agentfleet.frontends.fleet import Access, Fleet, Readiness, readiness
from agentfleet.frontends.http import schemas as s
from agentfleet.frontends.http.auth import FleetDep, GuardDep, may_agents, may_cluster
from agentfleet.frontends.http.errors import DEPLOY_FIELDS, Answer, body_field, unprocessable
from agentfleet.frontends.http.limits import Slots
from agentfleet.frontends.importers import InvalidSpec, ServiceManifest
from agentfleet.kube.client import ApiError

router = APIRouter(tags=["deploy agent"])

AgentNamePath = Annotated[str, Path(max_length=importers.NAME_MAX, pattern=s.NAME_PATTERN)]

DEPLOY_RESPONSES: dict[int | str, dict[str, Any]] = {
    **s.ERRORS,
    409: {
        "model": s.DeployResponse,
        "description": "No node can place it (nothing is left behind), or another "
        "agent of that name exists.",
    },
    422: {"description": "Invalid body, or the API server refused the agent (removed)."},
    429: {"model": s.Problem, "description": "Too many deploys in progress; see Retry-After."},
    504: {"model": s.DeployResponse, "description": "Not Ready within ready_timeout."},
}


@router.get("/health", responses=s.ERRORS, dependencies=[may_agents("list")])
async def health(guard: GuardDep) -> s.Health:
    """The deploy agent's own health: here the API's, with the fleet it fronts."""
    items = await guard.fleet.list_agents(guard.namespace)
    gpus = None
    if await guard.fleet.may(guard.user, Access("list", "nodes")):
        views = await guard.fleet.node_views()
        gpus = sum(gpu["count"] for view in views for gpu in view.gpus)
    return s.Health(
        status="ok",
        hostname=socket.gethostname(),
        gpus=gpus,
        services_running=sum(1 for a in items if s.service_status(a) == "healthy"),
        version=__version__,
    )


@router.get("/services", responses=s.ERRORS, dependencies=[may_agents("list")])
async def services(guard: GuardDep) -> list[s.Service]:
    """Every agent in the namespace, as the deploy agent lists its services."""
    return [s.service_view(agent) for agent in await guard.fleet.list_agents(guard.namespace)]


@router.get("/services/{name}", responses={**s.ERRORS, **s.NOT_FOUND})
async def service(name: AgentNamePath, guard: GuardDep) -> s.Service:
    await guard.require(guard.agents("get", name))
    agent = await get_or_404(guard.fleet, name, guard.namespace)
    return s.service_view(agent, s.gpu_index(await guard.fleet.agent_pods(name, guard.namespace)))


@router.post("/deploy", responses=DEPLOY_RESPONSES)
async def deploy(body: s.DeployRequest, guard: GuardDep, request: Request) -> s.DeployResponse:
    """Create the agent unless it already runs, then wait for Ready (idempotent)."""
    await guard.require(guard.agents("create"), guard.agents("get", body.name))
    manifest = ServiceManifest(
        name=body.name,
        image=body.image,
        port=body.port,
        gpu=body.gpu,
        vram_gb=body.vram_gb,
        env=dict(body.env),
        volumes=list(body.volumes),
        health=body.health,
        ready_timeout=body.ready_timeout,
    )
    try:
        imported = manifest.to_agent(guard.namespace, body.agent_type.value, "POST /deploy")
    except InvalidSpec as error:
        raise unprocessable(body_field(error.field, DEPLOY_FIELDS), error.message) from error
    settings = request.app.state.settings
    slots: Slots = request.app.state.deploy_slots
    with slots.take():
        within = min(float(body.ready_timeout), settings.max_wait_seconds)
        return await _deploy(guard.fleet, imported, within, settings.cleanup_seconds)


@router.post("/stop", responses={**s.ERRORS, **s.NOT_FOUND})
async def stop(body: s.StopRequest, guard: GuardDep) -> s.StopResponse:
    """Delete the agent; Kubernetes removes its Deployment, Service and Pods."""
    await guard.require(guard.agents("delete", body.name))
    try:
        await guard.fleet.delete(body.name, guard.namespace)
    except ApiError as error:
        if error.not_found:
            raise HTTPException(404, f"{body.name} is not deployed in {guard.namespace}") from error
        raise
    return s.StopResponse(ok=True, name=body.name)


@router.get("/gpus", responses=s.ERRORS, dependencies=[may_cluster("nodes", "pods")])
async def gpus(fleet: FleetDep) -> list[s.Gpu]:
    """Every GPU of the cluster with its VRAM and the agents on it (deploy-agent shape,
    plus `node`)."""
    return [s.gpu_view(row) for row in await fleet.gpu_table()]


# --- POST /deploy, step by step -------------------------------------------------------------


async def _deploy(
    fleet: Fleet, imported: importers.Imported, within: float, cleanup_seconds: float
) -> s.DeployResponse:
    name, ns = imported.name, imported.body["metadata"]["namespace"]
    existing = await get_or_none(fleet, name, ns)
    created = existing is None
    if existing is None:
        try:
            existing = await fleet.create(imported.body)
        except ApiError as error:
            if not error.already_exists:
                raise
            created, existing = False, await fleet.get(name, ns)
    if not created and (
        existing["metadata"].get("deletionTimestamp")
        or not s.same_spec(existing, imported.body["spec"])
    ):
        raise Answer(409, _conflict(existing, imported))
    state = readiness(existing)
    if state.state == "waiting" and within > 0:
        state = await fleet.wait_ready(name, within, ns)
    agent = await get_or_none(fleet, name, ns) or existing
    answer = s.DeployResponse(
        ok=state.state == "ready",
        name=name,
        host=s.host(agent),
        gpu=s.gpu_index(await fleet.agent_pods(name, ns)) if state.state == "ready" else None,
        status=s.service_status(agent),
        already_running=not created,
        warnings=imported.warnings,
    )
    if state.state == "ready":
        return answer
    answer.error, answer.reason = _failure(name, state, within), state.reason
    if state.state == "failed" and created:
        # Refused by placement or by the API server: leave nothing behind.
        await fleet.delete(name, ns, uid=existing["metadata"]["uid"], cascade="Foreground")
        await fleet.wait_deleted(name, cleanup_seconds, ns)
        answer.host = None
        if not state.unplaceable:
            raise unprocessable("", answer.error)
    raise Answer(504 if state.state == "waiting" else 409, answer)


def _conflict(existing: dict[str, Any], imported: importers.Imported) -> s.DeployResponse:
    name, ns = imported.name, imported.body["metadata"]["namespace"]
    why = (
        "is being deleted; retry when it is gone"
        if existing["metadata"].get("deletionTimestamp")
        else "already exists with a different spec; POST /stop it first, or change it with "
        "kubectl apply"
    )
    return s.DeployResponse(
        ok=False,
        name=name,
        host=s.host(existing),
        gpu=None,
        status=s.service_status(existing),
        already_running=True,
        warnings=imported.warnings,
        error=f"agent {name} in {ns} {why}",
        reason="Conflict",
    )


def _failure(name: str, state: Readiness, within: float) -> str:
    if state.state == "waiting":
        return f"{name} is not Ready after {within:g} s: {state.message}"
    return f"{name} cannot become Ready ({state.reason}): {state.message}"


async def get_or_none(fleet: Fleet, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return await fleet.get(name, namespace)
    except ApiError as error:
        if error.not_found:
            return None
        raise


async def get_or_404(fleet: Fleet, name: str, namespace: str) -> dict[str, Any]:
    agent = await get_or_none(fleet, name, namespace)
    if agent is None:
        raise HTTPException(404, f"{name} is not deployed in {namespace}")
    return agent
