"""The compute agent's gRPC service (agentfleet.v1.ComputeAgent) over AIAgents, and the server
that carries it with the standard health and reflection services.

Each call: who is asking (the client certificate, identity.py), is the request well formed
(workloads.py, INVALID_ARGUMENT naming the field), may the caller do it (a SubjectAccessReview
per AIAgent verb, PERMISSION_DENIED otherwise), then the API acts with its own identity.
Failures that are the API's own (its RBAC, the API server unreachable, a bug) answer INTERNAL
or UNAVAILABLE with a request id only; the reason is logged under that id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agentfleet import __version__
from agentfleet.api import constants as c
from agentfleet.frontends.fleet import Access, Fleet
from agentfleet.frontends.grpc import identity
from agentfleet.frontends.grpc import workloads as w
from agentfleet.frontends.grpc.gen import compute_agent_pb2 as pb
from agentfleet.frontends.grpc.gen import compute_agent_pb2_grpc as pb_grpc
from agentfleet.frontends.grpc.identity import NotAuthenticated, User
from agentfleet.frontends.http.auth import TokenReviews
from agentfleet.kube.client import ApiError

log = logging.getLogger("agentfleet.api")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ComputeAgent"].full_name
EVENT_TYPES = {
    "ADDED": pb.AgentEvent.ADDED,
    "MODIFIED": pb.AgentEvent.MODIFIED,
    "DELETED": pb.AgentEvent.DELETED,
}


class Refused(Exception):
    """End the call with this status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """One call's caller, and the questions it may ask the API server on their behalf."""

    fleet: Fleet
    user: User

    async def require(self, namespace: str, *verbs: str, name: str | None = None) -> None:
        needs = [Access(verb, c.PLURAL, c.GROUP, namespace, name) for verb in verbs]
        allowed = await asyncio.gather(*(self.fleet.may(self.user, need) for need in needs))
        for need, ok in zip(needs, allowed, strict=True):
            if not ok:
                raise Refused(
                    grpc.StatusCode.PERMISSION_DENIED, f"{self.user['username']} may not {need}"
                )


class ComputeAgent(pb_grpc.ComputeAgentServicer):
    def __init__(self, fleet: Fleet, tokens: TokenReviews, max_watches: int) -> None:
        self.fleet = fleet
        self.tokens = tokens
        self.max_watches = max_watches
        self.watches = 0

    # -- plumbing --

    async def _caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> User:
        """The client certificate's user; without TLS, a bearer token's (TokenReview)."""
        auth = context.auth_context()
        certificate = next(iter(auth.get("x509_pem_cert") or ()), None)
        try:
            if certificate:
                return identity.certificate_user(certificate)
        except NotAuthenticated as error:
            raise Refused(grpc.StatusCode.UNAUTHENTICATED, str(error)) from error
        token = identity.bearer_token(context.invocation_metadata())
        user = await self.tokens.user(token) if token else None
        if user is None:
            raise Refused(
                grpc.StatusCode.UNAUTHENTICATED,
                "a client certificate (mutual TLS) or a valid bearer token is required",
            )
        return user

    @contextlib.asynccontextmanager
    async def _call(self, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Call]:
        """Authenticate, run the body, and turn every failure into a status for the client."""
        code, message = grpc.StatusCode.OK, ""
        try:
            yield Call(self.fleet, await self._caller(context))
        except Refused as refused:
            code, message = refused.code, refused.message
        except w.InvalidArgument as invalid:
            code, message = grpc.StatusCode.INVALID_ARGUMENT, str(invalid)
        except ApiError as error:
            code, message = _api_server_refused(error)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as error:
            code, message = _internal(f"{type(error).__name__}: {error}")
        if code != grpc.StatusCode.OK:
            await context.abort(code, message)

    # -- the service --

    async def ApplyWorkload(
        self, request: pb.ApplyWorkloadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ApplyWorkloadResponse:
        async with self._call(context) as call:
            desired = w.desired_agent(request)
            ns, name = desired.namespace, desired.name
            await call.require(ns, "get", "patch", name=name)
            existing = await _get_or_none(self.fleet, name, ns)
            if existing is not None and w.revision_of(existing) == desired.revision:
                return pb.ApplyWorkloadResponse(
                    applied=False, skipped=True, status=w.workload_status(existing)
                )
            if existing is None:
                await call.require(ns, "create")
            applied = await self.fleet.apply(desired.body, c.API_FIELD_MANAGER)
            return pb.ApplyWorkloadResponse(
                applied=True, skipped=False, status=w.workload_status(applied)
            )
        raise AssertionError("unreachable: _call aborts")

    async def DeleteWorkload(
        self, request: pb.DeleteWorkloadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.DeleteWorkloadResponse:
        async with self._call(context) as call:
            ns, name = w.namespace_of(request.namespace), w.workload_id(request.id)
            await call.require(ns, "delete", name=name)
            await self.fleet.delete(name, ns)
            return pb.DeleteWorkloadResponse(deleted=True)
        raise AssertionError("unreachable: _call aborts")

    async def GetWorkloadStatus(
        self, request: pb.GetWorkloadStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetWorkloadStatusResponse:
        async with self._call(context) as call:
            ns, name = w.namespace_of(request.namespace), w.workload_id(request.id)
            await call.require(ns, "get", name=name)
            agent = await self.fleet.get(name, ns)
            return pb.GetWorkloadStatusResponse(status=w.workload_status(agent))
        raise AssertionError("unreachable: _call aborts")

    async def ListWorkloads(
        self, request: pb.ListWorkloadsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ListWorkloadsResponse:
        async with self._call(context) as call:
            ns = w.namespace_of(request.namespace)
            kind = w.agent_type(request.type) if request.type else ""
            await call.require(ns, "list")
            agents = await self.fleet.list_agents(ns)
            return pb.ListWorkloadsResponse(
                workloads=[w.workload_status(a) for a in agents if _of_type(a, kind)]
            )
        raise AssertionError("unreachable: _call aborts")

    async def HealthCheck(
        self, request: pb.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HealthCheckResponse:
        async with self._call(context):
            try:
                async with asyncio.timeout(5):
                    await self.fleet.kube.version()
            except (ApiError, TimeoutError, OSError) as error:
                log.warning("health check: the API server does not answer: %s", error)
                return pb.HealthCheckResponse(
                    healthy=False,
                    version=__version__,
                    message="the Kubernetes API server does not answer",
                )
            return pb.HealthCheckResponse(healthy=True, version=__version__)
        raise AssertionError("unreachable: _call aborts")

    async def WatchAgents(
        self, request: pb.WatchAgentsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.AgentEvent]:
        async with self._call(context) as call:
            ns = w.namespace_of(request.namespace)
            kind = w.agent_type(request.type) if request.type else ""
            await call.require(ns, "list", "watch")
            if self.watches >= self.max_watches:
                raise Refused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self.max_watches} watches are open; retry later",
                )
            self.watches += 1
            try:
                async for event in self._changes(ns, kind):
                    yield event
            finally:
                self.watches -= 1

    async def _changes(self, namespace: str, kind: str) -> AsyncIterator[pb.AgentEvent]:
        """Each change of a workload's status (not every write to the AIAgent)."""
        last: dict[str, pb.WorkloadStatus] = {}
        async for event_type, agent in self.fleet.watch_agents(namespace):
            if not _of_type(agent, kind):
                continue
            status = w.workload_status(agent)
            if event_type == "DELETED":
                last.pop(status.id, None)
            elif last.get(status.id) == status:
                continue
            else:
                event_type = "MODIFIED" if status.id in last else "ADDED"
                last[status.id] = status
            yield pb.AgentEvent(type=EVENT_TYPES[event_type], workload=status)


def _of_type(agent: dict[str, Any], kind: str) -> bool:
    return not kind or (agent.get("spec") or {}).get("agentType") == kind


async def _get_or_none(fleet: Fleet, name: str, namespace: str) -> dict[str, Any] | None:
    try:
        return await fleet.get(name, namespace)
    except ApiError as error:
        if error.not_found:
            return None
        raise


def _api_server_refused(error: ApiError) -> tuple[grpc.StatusCode, str]:
    """The caller's mistakes pass through in the API server's words; the API's own do not."""
    if error.status == 404:
        return grpc.StatusCode.NOT_FOUND, error.message
    if error.status == 409:
        return grpc.StatusCode.ABORTED, error.message
    if error.status == 422:
        return grpc.StatusCode.INVALID_ARGUMENT, error.message
    return _internal(f"API server answered {error.status}: {error.message}")


def _internal(reason: str) -> tuple[grpc.StatusCode, str]:
    rid = uuid.uuid4().hex
    log.error("grpc request %s failed: %s", rid, reason)
    return grpc.StatusCode.INTERNAL, f"the API could not complete this request (request id {rid})"


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    cert: str
    key: str
    client_ca: str


async def server(
    fleet: Fleet,
    tokens: TokenReviews,
    address: str,
    tls: TLSFiles | None,
    max_message_bytes: int,
    max_watches: int,
) -> tuple[grpc.aio.Server, int]:
    """The gRPC server (not started) and the port it bound. With `tls`, mutual TLS: a client
    without a certificate from the client CA is refused in the handshake."""
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", 16 * max_message_bytes),
        ]
    )
    service = ComputeAgent(fleet, tokens, max_watches)
    pb_grpc.add_ComputeAgentServicer_to_server(service, grpc_server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), grpc_server
    )
    if tls is None:
        port = grpc_server.add_insecure_port(address)
    else:
        credentials = grpc.ssl_server_credentials(
            [(_read(tls.key), _read(tls.cert))],
            root_certificates=_read(tls.client_ca),
            require_client_auth=True,
        )
        port = grpc_server.add_secure_port(address, credentials)
    for name in (health.OVERALL_HEALTH, SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return grpc_server, port


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()
