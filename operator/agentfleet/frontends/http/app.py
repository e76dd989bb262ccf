"""The deploy agent's HTTP API and Hypercore's POST /spawn, as a thin front end over AIAgents.

Clients written for the per-node deploy agent (`POST /deploy` a service.yaml, `GET /services`,
`POST /stop`, `GET /gpus`) and for Hypercore (`POST /spawn`, `GET /api/v1/nodes`) keep
working; each request creates, reads or deletes AIAgents, so kubectl sees the same fleet.

Security: every request carries a Kubernetes bearer token. A TokenReview says who it is, a
SubjectAccessReview whether that user may do what the route needs (e.g. `create aiagents`
in the namespace for /deploy), so the API grants nobody more than kubectl would; only then
does the API act, with its own identity. 401 without a valid token, 403 when not allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic import ValidationError as ModelError

from agentfleet import __version__, placement
from agentfleet.api import constants as c
from agentfleet.api.models import AgentSpec, AgentType
from agentfleet.frontends import importers
from agentfleet.frontends.fleet import (
    Access,
    Fleet,
    NodeView,
    Readiness,
    age,
    condition,
    connect,
    readiness,
)
from agentfleet.frontends.importers import InvalidSpec, ServiceManifest
from agentfleet.kube.client import ApiError, Target
from agentfleet.placement import labels as placement_labels

NAME_PATTERN = importers.NAME_PATTERN.pattern
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# What the request schemas promise, so that a schema-valid body is one Kubernetes accepts.
IMAGE_PATTERN = r"^\S+$"  # the API server refuses images with whitespace
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
VOLUME_PATTERN = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?|[/.~][^:]*):/[^:]*(:(ro|rw))?$"

# pydantic writes key constraints as patternProperties, which alone would allow other keys.
ONLY_PATTERN_KEYS: dict[str, Any] = {"additionalProperties": False}

AgentName = Annotated[str, StringConstraints(max_length=importers.NAME_MAX, pattern=NAME_PATTERN)]
Image = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=IMAGE_PATTERN)]
EnvName = Annotated[str, StringConstraints(max_length=256, pattern=ENV_NAME_PATTERN)]


@dataclass
class ApiSettings:
    target: Target
    max_wait_seconds: float = 600  # the longest any request waits for an agent
    token_cache_seconds: float = 10  # how long a TokenReview answer is reused
    cleanup_seconds: float = 60  # how long a refused deploy waits for its agent to be gone


# --- request and response bodies (the deploy agent's field names) ------------------------------


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _unicode_text(self) -> Body:
        """JSON may carry lone surrogates (\\ud800); Kubernetes cannot store them as UTF-8."""
        where = _not_unicode(self.model_dump(), "")
        if where is not None:
            raise ValueError(f"{where or 'body'}: must be Unicode text (no lone surrogates)")
        return self


def _not_unicode(value: Any, path: str) -> str | None:
    """The path of the first string that UTF-8 cannot encode, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = [(k, k) for k in value] + list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    for key, item in items:
        found = _not_unicode(
            item, f"{path}.{key}".lstrip(".") if isinstance(key, str | int) else path
        )
        if found is not None:
            return found
    return None


class DeployRequest(Body):
    """A deploy-agent service.yaml, as its skill agents forward it."""

    name: AgentName
    image: Image
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Preferred port; agents always serve 8080."
    )
    gpu: bool = False
    vram_gb: float | None = Field(default=None, ge=0.01, le=4096, description="VRAM per GPU, GiB.")
    env: dict[EnvName, str | int | float | bool] = Field(
        default_factory=dict, max_length=256, json_schema_extra=ONLY_PATTERN_KEYS
    )
    volumes: list[Annotated[str, StringConstraints(max_length=1024, pattern=VOLUME_PATTERN)]] = (
        Field(default_factory=list, max_length=64, description="NAME:/PATH[:ro], unique paths")
    )
    health: str | None = Field(default=None, max_length=1024, pattern=r"^/")
    ready_timeout: int = Field(default=120, ge=0, le=86400, description="Seconds to wait.")
    agent_type: AgentType = Field(default=AgentType.CUSTOM, description="agentfleet extension.")


ServiceStatus = Literal[
    "healthy", "starting", "unhealthy", "unschedulable", "scaled-to-zero", "deleting"
]


class DeployResponse(Body):
    ok: bool
    name: str
    host: str | None = Field(description="http://<service DNS name>:<port>")
    gpu: int | None = Field(description="GPU index on its node, when known; null: no GPU.")
    status: ServiceStatus
    already_running: bool
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    reason: str | None = None


class StopRequest(Body):
    name: AgentName


class StopResponse(Body):
    ok: bool
    name: str


class Health(Body):
    status: Literal["ok"]
    hostname: str
    gpus: int | None = Field(description="GPUs in the cluster; null if you may not list nodes.")
    services_running: int
    version: str


class Service(Body):
    name: str
    namespace: str
    host: str | None
    port: int
    gpu: int | None
    gpus: int
    vram: str | None
    status: ServiceStatus
    uptime: int = Field(description="Seconds since it became Ready (0 while not Ready).")
    image: str
    replicas: int
    ready_replicas: int
    message: str


class Gpu(Body):
    id: int = Field(description="Index of the GPU on its node.")
    name: str
    node: str
    vram_total_gb: float
    vram_used_gb: float = Field(description="Committed to agents, or seen in use if more.")
    vram_free_gb: float
    services: list[str] = Field(description="namespace/name of the agents on it.")
    sharing: str
    state: str = Field(description="Ready, or why placement skips the node.")


def gpu_view(row: placement.GPURow) -> Gpu:
    def gb(mib: int) -> float:
        return round(mib / 1024, 1)

    return Gpu(
        id=row.index,
        name=row.product or "unknown",
        node=row.node,
        vram_total_gb=gb(row.total_mib),
        vram_used_gb=gb(row.total_mib - row.free_mib),
        vram_free_gb=gb(row.free_mib),
        services=list(row.agents),
        sharing=row.sharing,
        state=row.state,
    )


class SpawnRequest(Body):
    """Hypercore's POST /spawn."""

    cores: int = Field(ge=1, le=1024)
    memory: int = Field(ge=1, le=16 * 2**20, description="MiB")
    image_ref: Image
    ports: dict[
        Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}$")],
        Annotated[int, Field(ge=1, le=65535)],
    ] = Field(
        default_factory=dict,
        max_length=16,
        description='{"host port": container port}',
        json_schema_extra=ONLY_PATTERN_KEYS,
    )
    env: list[
        Annotated[str, StringConstraints(max_length=32768, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*=")]
    ] = Field(default_factory=list, max_length=256, description="NAME=VALUE")
    name: str | None = Field(
        default=None,
        max_length=importers.NAME_MAX - 6,
        pattern=NAME_PATTERN,
        description="agentfleet extension (default: from the image, with a random suffix).",
    )
    agent_type: AgentType = Field(default=AgentType.CUSTOM, description="agentfleet extension.")


class SpawnResponse(Body):
    id: str
    name: str
    namespace: str
    host: str
    warnings: list[str]


class NodeCapabilities(Body):
    os: str
    arch: str
    cpu_count: str
    mem_mb: int
    gpus: list[dict[str, Any]]


class NodeRecord(Body):
    """A Node in the shape of the node-registration control plane's GET /api/v1/nodes."""

    id: str
    name: str
    ip: str | None
    capabilities: NodeCapabilities
    last_seen: float | None = Field(description="Unix time of the node agent's last heartbeat.")
    heartbeat_age_seconds: float | None
    status: Literal["online", "offline", "unknown"]
    labels: dict[str, str]
    simulated: bool


class Problem(BaseModel):
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not JSON."},
    401: {"model": Problem, "description": "No bearer token, or the token is not valid."},
    403: {"model": Problem, "description": "The token's user may not do this (RBAC)."},
}


# --- who is asking ---------------------------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    description="A Kubernetes bearer token, e.g. `kubectl create token <serviceaccount>`.",
)


class TokenCache:
    """TokenReview answers for a few seconds: a burst of requests costs one review."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.entries: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def user(self, fleet: Fleet, token: str) -> dict[str, Any] | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        cached = self.entries.get(key)
        if cached and now - cached[0] < self.seconds:
            return cached[1]
        user = await fleet.review_token(token)
        if len(self.entries) > 10_000:
            self.entries.clear()
        self.entries[key] = (now, user)
        return user


def _fleet(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> dict[str, Any]:
    """The Kubernetes user behind the bearer token; 401 if there is none."""
    unauthorized = HTTPException(
        401, "a valid Kubernetes bearer token is required", {"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or not credentials.credentials:
        raise unauthorized
    tokens: TokenCache = request.app.state.tokens
    user = await tokens.user(_fleet(request), credentials.credentials)
    if user is None:
        raise unauthorized
    return user


Caller = Annotated[dict[str, Any], Depends(caller)]
FleetDep = Annotated[Fleet, Depends(_fleet)]
NamespaceQuery = Annotated[
    str | None,
    Query(
        max_length=63,
        pattern=NAMESPACE_PATTERN,
        description="Namespace of the agents (default: the API's).",
    ),
]


async def authorize(fleet: Fleet, user: dict[str, Any], *needs: Access) -> None:
    """403 unless the user may do every one of `needs`."""
    allowed = await asyncio.gather(*(fleet.may(user, need) for need in needs))
    for need, ok in zip(needs, allowed, strict=True):
        if not ok:
            raise HTTPException(403, f"{user.get('username')} may not {need}")


def agents(verb: str, namespace: str, name: str | None = None) -> Access:
    return Access(verb, c.PLURAL, c.GROUP, namespace, name)


# --- how an agent looks to deploy-agent clients ----------------------------------------------


def host(agent: dict[str, Any]) -> str | None:
    endpoint = ((agent.get("status") or {}).get("endpoints") or {}).get("http")
    return f"http://{endpoint}" if endpoint else None


def service_status(agent: dict[str, Any]) -> ServiceStatus:
    if agent["metadata"].get("deletionTimestamp"):
        return "deleting"
    state = readiness(agent)
    if state.unplaceable:
        return "unschedulable"
    if state.state == "failed":
        return "unhealthy"
    if state.state == "ready":
        return "scaled-to-zero" if state.reason == c.Reason.SCALED_TO_ZERO else "healthy"
    return "starting"


def gpu_index(pods: list[dict[str, Any]]) -> int | None:
    """The first GPU index the placement ledger recorded on the agent's Pods, if any."""
    for pod in pods:
        note = (pod["metadata"].get("annotations") or {}).get(placement_labels.PLACEMENT)
        if not note:
            continue
        with contextlib.suppress(ValueError):
            record = placement.parse_placement(note)
            if record.gpus:
                return record.gpus[0]
    return None


def service_view(agent: dict[str, Any], gpu: int | None = None) -> Service:
    meta, spec = agent["metadata"], agent.get("spec") or {}
    status = agent.get("status") or {}
    ready = condition(agent, c.COND_READY) or {}
    uptime = age(ready.get("lastTransitionTime")) if ready.get("status") == "True" else 0
    wanted_gpu = spec.get("gpu") or {}
    return Service(
        name=meta["name"],
        namespace=meta.get("namespace", ""),
        host=host(agent),
        port=c.HTTP.number,
        gpu=gpu,
        gpus=int(wanted_gpu.get("count", 1)) if wanted_gpu else 0,
        vram=str(wanted_gpu["vram"]) if wanted_gpu.get("vram") else None,
        status=service_status(agent),
        uptime=int(uptime or 0),
        image=str(spec.get("image", "")),
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas") or 0),
        message=readiness(agent).message,
    )


def same_spec(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Equal once both are read by the models (defaults filled in, quantities as given)."""
    try:
        have = AgentSpec.model_validate(existing.get("spec") or {})
    except ModelError:
        return False
    want = AgentSpec.model_validate(wanted)
    return have.model_dump(mode="json") == want.model_dump(mode="json")


# Which request field sets which part of the AIAgent spec, to name the field at fault.
DEPLOY_FIELDS = {
    "spec.image": "image",
    "spec.env": "env",
    "spec.gpu": "vram_gb",
    "spec.volumes": "volumes",
    "spec.volumeMounts": "volumes",
    "spec.probes": "health",
    "spec.agentType": "agent_type",
}
SPAWN_FIELDS = {
    "spec.image": "image_ref",
    "spec.env": "env",
    "spec.resources.requests.cpu": "cores",
    "spec.resources": "memory",
    "spec.agentType": "agent_type",
}


def body_field(field: str, fields: dict[str, str]) -> str:
    return next((name for prefix, name in fields.items() if field.startswith(prefix)), field)


def unprocessable(field: str, message: str) -> HTTPException:
    """422 in FastAPI's own shape, naming the request field at fault."""
    location = ["body", *field.replace("[", ".").replace("]", "").split(".")] if field else ["body"]
    return HTTPException(422, [{"loc": location, "msg": message, "type": "value_error"}])


# --- the application -------------------------------------------------------------------------


def create_app(settings: ApiSettings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        fleet = await connect(settings.target)
        app.state.fleet = fleet
        app.state.tokens = TokenCache(settings.token_cache_seconds)
        try:
            yield
        finally:
            await fleet.close()

    app = FastAPI(
        title="agentfleet API",
        version=__version__,
        description=__doc__,
        lifespan=lifespan,
    )

    @app.exception_handler(ApiError)
    async def api_server_refused(_: Request, error: ApiError) -> JSONResponse:
        """The user's refusals pass through; the API's own (403: its RBAC) are a 502."""
        if error.status == 422:
            problem = unprocessable("", error.message)
            return JSONResponse({"detail": problem.detail}, status_code=422)
        status = error.status if error.status in (404, 409) else 502
        return JSONResponse({"detail": error.message}, status_code=status)

    @app.get("/healthz", include_in_schema=False)
    async def liveness() -> dict[str, str]:
        """For the kubelet, which has no token; says nothing about the fleet."""
        return {"status": "ok"}

    @app.get("/health", responses=ERRORS)
    async def health(fleet: FleetDep, user: Caller, namespace: NamespaceQuery = None) -> Health:
        """The deploy agent's own health: here the API's, with the fleet it fronts."""
        ns = namespace or fleet.namespace
        await authorize(fleet, user, agents("list", ns))
        items = await fleet.list_agents(ns)
        running = sum(1 for a in items if service_status(a) == "healthy")
        gpus = None
        if await fleet.may(user, Access("list", "nodes")):
            gpus = sum(gpu["count"] for view in await fleet.node_views() for gpu in view.gpus)
        return Health(
            status="ok",
            hostname=socket.gethostname(),
            gpus=gpus,
            services_running=running,
            version=__version__,
        )

    @app.get("/services", responses=ERRORS)
    async def services(
        fleet: FleetDep, user: Caller, namespace: NamespaceQuery = None
    ) -> list[Service]:
        """Every agent in the namespace, as the deploy agent lists its services."""
        ns = namespace or fleet.namespace
        await authorize(fleet, user, agents("list", ns))
        return [service_view(agent) for agent in await fleet.list_agents(ns)]

    @app.get(
        "/services/{name}",
        responses={**ERRORS, 404: {"model": Problem, "description": "Not deployed."}},
    )
    async def service(
        name: Annotated[str, Path(max_length=importers.NAME_MAX, pattern=NAME_PATTERN)],
        fleet: FleetDep,
        user: Caller,
        namespace: NamespaceQuery = None,
    ) -> Service:
        ns = namespace or fleet.namespace
        await authorize(fleet, user, agents("get", ns, name))
        agent = await _get_or_404(fleet, name, ns)
        return service_view(agent, gpu_index(await fleet.agent_pods(name, ns)))

    deploy_responses: dict[int | str, dict[str, Any]] = {
        **ERRORS,
        409: {
            "model": DeployResponse,
            "description": "No node can place it (nothing is left behind), or another "
            "agent of that name exists.",
        },
        422: {"description": "Invalid body, or the API server refused the agent (removed)."},
        504: {"model": DeployResponse, "description": "Not Ready within ready_timeout."},
    }

    @app.post("/deploy", responses=deploy_responses)
    async def deploy(
        body: DeployRequest, fleet: FleetDep, user: Caller, namespace: NamespaceQuery = None
    ) -> DeployResponse:
        """Create the agent unless it already runs, then wait for Ready (idempotent)."""
        ns = namespace or fleet.namespace
        await authorize(fleet, user, agents("create", ns), agents("get", ns, body.name))
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
            imported = manifest.to_agent(ns, body.agent_type.value, "POST /deploy")
        except InvalidSpec as error:
            raise unprocessable(body_field(error.field, DEPLOY_FIELDS), error.message) from error
        within = min(float(body.ready_timeout), settings.max_wait_seconds)
        return await _deploy(fleet, imported, within)

    async def _deploy(fleet: Fleet, imported: importers.Imported, within: float) -> DeployResponse:
        name, ns = imported.name, imported.body["metadata"]["namespace"]
        existing = await _get_or_none(fleet, name, ns)
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
            or not same_spec(existing, imported.body["spec"])
        ):
            raise _Answer(409, _conflict(existing, imported))
        state = readiness(existing)
        if state.state == "waiting" and within > 0:
            state = await fleet.wait_ready(name, within, ns)
        agent = await _get_or_none(fleet, name, ns) or existing
        answer = DeployResponse(
            ok=state.state == "ready",
            name=name,
            host=host(agent),
            gpu=gpu_index(await fleet.agent_pods(name, ns)) if state.state == "ready" else None,
            status=service_status(agent),
            already_running=not created,
            warnings=imported.warnings,
        )
        if state.state == "ready":
            return answer
        answer.error, answer.reason = _failure(name, state, within), state.reason
        if state.state == "failed" and created:
            # Refused by placement or by the API server: leave nothing behind.
            await fleet.delete(name, ns, uid=existing["metadata"]["uid"], cascade="Foreground")
            await fleet.wait_deleted(name, settings.cleanup_seconds, ns)
            answer.host = None
            if not state.unplaceable:
                raise unprocessable("", answer.error)
        raise _Answer(504 if state.state == "waiting" else 409, answer)

    @app.post(
        "/stop",
        responses={**ERRORS, 404: {"model": Problem, "description": "Not deployed."}},
    )
    async def stop(
        body: StopRequest, fleet: FleetDep, user: Caller, namespace: NamespaceQuery = None
    ) -> StopResponse:
        """Delete the agent; Kubernetes removes its Deployment, Service and Pods."""
        ns = namespace or fleet.namespace
        await authorize(fleet, user, agents("delete", ns, body.name))
        try:
            await fleet.delete(body.name, ns)
        except ApiError as error:
            if error.not_found:
                raise HTTPException(404, f"{body.name} is not deployed in {ns}") from error
            raise
        return StopResponse(ok=True, name=body.name)

    @app.get("/gpus", responses=ERRORS)
    async def gpus(fleet: FleetDep, user: Caller) -> list[Gpu]:
        """Every GPU of the cluster with its VRAM and the agents on it (deploy-agent shape,
        plus `node`)."""
        await authorize(fleet, user, Access("list", "nodes"), Access("list", "pods"))
        return [gpu_view(row) for row in await fleet.gpu_table()]

    @app.post("/spawn", status_code=201, responses=ERRORS)
    async def spawn(
        body: SpawnRequest, fleet: FleetDep, user: Caller, namespace: NamespaceQuery = None
    ) -> SpawnResponse:
        """Hypercore's spawn: create the agent and answer at once (poll /services/{id})."""
        ns = namespace or fleet.namespace
        await authorize(fleet, user, agents("create", ns))
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
        created = await fleet.create(agent)
        name = created["metadata"]["name"]
        return SpawnResponse(
            id=name,
            name=name,
            namespace=ns,
            host=f"http://{name}.{ns}.svc:{c.HTTP.number}",  # status has the full name later
            warnings=warnings,
        )

    @app.get("/api/v1/nodes", responses=ERRORS)
    async def nodes(fleet: FleetDep, user: Caller) -> list[NodeRecord]:
        """Nodes with capabilities and heartbeats, as the node-registration API listed them."""
        await authorize(fleet, user, Access("list", "nodes"))
        return [node_record(view) for view in await fleet.node_views()]

    @app.exception_handler(_Answer)
    async def answer(_: Request, reply: _Answer) -> JSONResponse:
        return JSONResponse(reply.body.model_dump(mode="json"), status_code=reply.status)

    return app


class _Answer(Exception):
    """A response body with a non-2xx status (a deploy that did not become Ready)."""

    def __init__(self, status: int, body: BaseModel) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _conflict(existing: dict[str, Any], imported: importers.Imported) -> DeployResponse:
    name, ns = imported.name, imported.body["metadata"]["namespace"]
    why = (
        "is being deleted; retry when it is gone"
        if existing["metadata"].get("deletionTimestamp")
        else "already exists with a different spec; POST /stop it first, or change it with "
        "kubectl apply"
    )
    return DeployResponse(
        ok=False,
        name=name,
        host=host(existing),
        gpu=None,
        status=service_status(existing),
        already_running=True,
        warnings=imported.warnings,
        error=f"agent {name} in {ns} {why}",
        reason="Conflict",
    )


def _failure(name: str, state: Readiness, within: float) -> str:
    if state.state == "waiting":
        return f"{name} is not Ready after {within:g} s: {state.message}"
    return f"{name} cannot become Ready ({state.reason}): {state.message}"


async def _get_or_none(fleet: Fleet, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return await fleet.get(name, namespace)
    except ApiError as error:
        if error.not_found:
            return None
        raise


async def _get_or_404(fleet: Fleet, name: str, namespace: str) -> dict[str, Any]:
    agent = await _get_or_none(fleet, name, namespace)
    if agent is None:
        raise HTTPException(404, f"{name} is not deployed in {namespace}")
    return agent


def node_record(view: NodeView) -> NodeRecord:
    last_seen = None
    if view.heartbeat_age is not None:
        last_seen = time.time() - view.heartbeat_age
    status: Literal["online", "offline", "unknown"] = "unknown"
    if view.ready in ("True", "False"):
        status = "online" if view.ready == "True" else "offline"
    return NodeRecord(
        id=view.uid,
        name=view.name,
        ip=view.address,
        capabilities=NodeCapabilities(
            os=view.os,
            arch=view.arch,
            cpu_count=view.cpu,
            mem_mb=view.memory_mib,
            gpus=view.gpus,
        ),
        last_seen=last_seen,
        heartbeat_age_seconds=view.heartbeat_age,
        status=status,
        labels=view.labels,
        simulated=view.simulated,
    )
