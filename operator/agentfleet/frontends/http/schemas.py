"""The HTTP API's request and response bodies (the deploy agent's and Hypercore's field names),
and how an AIAgent looks to their clients. Pure: no I/O, tested in tests/unit/test_api.py.

The schemas promise what Kubernetes accepts, so that a schema-valid body is never refused by
the API server for its shape (the schemathesis fuzz in the integration tests holds this).
"""

from __future__ import annotations

import contextlib
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic import ValidationError as ModelError

from agentfleet import placement
from agentfleet.api import constants as c
from agentfleet.api.models import AgentSpec, AgentType
from agentfleet.frontends import importers
from agentfleet.frontends.fleet import NodeView, age, condition, readiness
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
    413: {"model": Problem, "description": "The body is larger than the API accepts."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Not deployed."}
}

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
