"""The compute agent's workloads as AIAgents, both ways. Pure: no I/O.

A workload is an AIAgent named by its id in the request's namespace; its type is the agent
type; the revision that was applied is an annotation on it (so the same revision again is
skipped without a write); Stopped is zero replicas. Requests are checked here first, and a bad
one is refused naming the field (INVALID_ARGUMENT), before anything is asked of the API server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from pydantic import ValidationError

from agentfleet.api import constants as c
from agentfleet.api.models import AgentSpec, AgentType
from agentfleet.frontends import importers
from agentfleet.frontends.fleet import readiness
from agentfleet.frontends.grpc.gen import compute_agent_pb2 as pb

DEFAULT_NAMESPACE = "default"
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
REVISION_MAX = 253
AGENT_TYPES = tuple(t.value for t in AgentType)


class InvalidArgument(Exception):
    """A request field that cannot be accepted, named as in the proto (e.g. `spec.image`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def namespace_of(value: str) -> str:
    if not value:
        return DEFAULT_NAMESPACE
    if len(value) > 63 or not NAMESPACE_PATTERN.match(value):
        raise InvalidArgument("namespace", f"{value[:80]!r} is not a namespace name")
    return value


def workload_id(value: str) -> str:
    if not value:
        raise InvalidArgument("id", "required")
    if len(value) > importers.NAME_MAX or not importers.NAME_PATTERN.match(value):
        raise InvalidArgument(
            "id",
            f"{value[:80]!r} is not an agent name: lower-case letters, digits and '-', "
            f"starting with a letter, at most {importers.NAME_MAX} characters",
        )
    return value


def agent_type(value: str, field: str = "type") -> str:
    if value not in AGENT_TYPES:
        raise InvalidArgument(field, f"{value[:80]!r} is not one of {', '.join(AGENT_TYPES)}")
    return value


@dataclass(frozen=True)
class Desired:
    """A checked ApplyWorkloadRequest: the AIAgent to apply and the revision it carries."""

    namespace: str
    name: str
    revision: str
    body: dict[str, Any]


def desired_agent(request: pb.ApplyWorkloadRequest) -> Desired:
    """The AIAgent an ApplyWorkloadRequest asks for, or InvalidArgument naming the field."""
    namespace = namespace_of(request.namespace)
    name = workload_id(request.id)
    revision = request.revision_id
    if not revision:
        raise InvalidArgument("revision_id", "required")
    if len(revision) > REVISION_MAX or not revision.isprintable():
        raise InvalidArgument(
            "revision_id", f"must be printable text of at most {REVISION_MAX} characters"
        )
    if request.desired_state not in pb.DesiredState.values():
        raise InvalidArgument("desired_state", f"{request.desired_state} is not RUNNING or STOPPED")
    stopped = request.desired_state == pb.DESIRED_STATE_STOPPED
    spec = (
        whole_numbers(json_format.MessageToDict(request.spec)) if request.HasField("spec") else {}
    )
    kind = agent_type(request.type or str(spec.get("agentType", "")))
    if spec.get("agentType", kind) != kind:
        raise InvalidArgument("spec.agentType", f"{spec['agentType']!r} differs from type {kind!r}")
    spec["agentType"] = kind
    if stopped:
        if spec.get("autoscaling"):
            raise InvalidArgument(
                "desired_state", "STOPPED is zero replicas, which spec.autoscaling would undo"
            )
        spec["replicas"] = 0
    elif spec.get("replicas") == 0:
        raise InvalidArgument("spec.replicas", "0 replicas is desired_state STOPPED")
    try:
        model = AgentSpec.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidArgument(f"spec.{where}" if where else "spec", first["msg"]) from error
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {c.ANNOTATION_WORKLOAD_REVISION: revision},
        },
        "spec": model.model_dump(mode="json", by_alias=True, exclude_unset=True),
    }
    return Desired(namespace, name, revision, body)


def whole_numbers(value: Any) -> Any:
    """protobuf's Struct has only doubles: 2.0 was 2 for the client (replicas, a weight)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_numbers(item) for item in value]
    return value


def revision_of(agent: dict[str, Any]) -> str:
    return str((agent["metadata"].get("annotations") or {}).get(c.ANNOTATION_WORKLOAD_REVISION, ""))


def workload_status(agent: dict[str, Any]) -> pb.WorkloadStatus:
    """Where an AIAgent stands, in the compute agent's terms."""
    meta, spec = agent["metadata"], agent.get("spec") or {}
    status = agent.get("status") or {}
    state = readiness(agent)
    stopped = int(spec.get("replicas", 1)) == 0 and not spec.get("autoscaling")
    if meta.get("deletionTimestamp"):
        phase = pb.WORKLOAD_STATE_DELETING
    elif state.state == "failed":
        phase = pb.WORKLOAD_STATE_FAILED
    elif state.state == "ready":
        zero = stopped or state.reason == c.Reason.SCALED_TO_ZERO
        phase = pb.WORKLOAD_STATE_STOPPED if zero else pb.WORKLOAD_STATE_RUNNING
    else:
        phase = pb.WORKLOAD_STATE_PENDING
    return pb.WorkloadStatus(
        id=meta["name"],
        namespace=meta.get("namespace", ""),
        type=str(spec.get("agentType", "")),
        revision_id=revision_of(agent),
        desired_state=pb.DESIRED_STATE_STOPPED if stopped else pb.DESIRED_STATE_RUNNING,
        state=phase,
        reason=state.reason,
        message=state.message,
        replicas=int(status.get("replicas") or 0),
        ready_replicas=int(status.get("readyReplicas") or 0),
        endpoint=str((status.get("endpoints") or {}).get(c.HTTP.endpoint_key) or ""),
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
    )


def spec_struct(spec: dict[str, Any]) -> Struct:
    """A spec as the request's `spec` field (for clients and tests)."""
    struct = Struct()
    struct.update(spec)
    return struct
