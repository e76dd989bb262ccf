"""`agentfleet rpc`: call the control API like grpcurl, over mutual TLS, with JSON in and out.

The request is JSON in the proto's field names (`{"id": "coder", "revision_id": "r1", ...}`);
the answer is printed the same way, one JSON document per message of a stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from agentfleet.frontends.grpc.gen import compute_agent_pb2 as pb
from agentfleet.frontends.grpc.gen import compute_agent_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["ComputeAgent"]
METHODS = tuple(method.name for method in SERVICE.methods)


@dataclass(frozen=True)
class Credentials:
    """Mutual TLS: the client certificate and key, and the CA that signed the server's."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None
    token: str | None = None  # only over --insecure, where there is no client certificate


class BadRequest(ValueError):
    """The method or the request JSON is wrong (nothing was sent)."""


def request_of(method: str, text: str) -> Message:
    if method not in METHODS:
        raise BadRequest(f"{method!r} is not a method of {SERVICE.full_name}: {', '.join(METHODS)}")
    message_class = getattr(pb, SERVICE.methods_by_name[method].input_type.name)
    try:
        request: Message = json_format.Parse(text or "{}", message_class())
    except json_format.ParseError as error:
        raise BadRequest(f"the request is not a {message_class.__name__}: {error}") from error
    return request


def call(
    server: str, method: str, request: Message, credentials: Credentials, timeout: float
) -> Iterator[str]:
    """The answers as JSON (one for a unary method, each event of a stream)."""
    metadata = [("authorization", f"Bearer {credentials.token}")] if credentials.token else None
    if credentials.ca or credentials.cert:
        channel = grpc.secure_channel(
            server,
            grpc.ssl_channel_credentials(
                root_certificates=_read(credentials.ca),
                private_key=_read(credentials.key),
                certificate_chain=_read(credentials.cert),
            ),
        )
    else:
        channel = grpc.insecure_channel(server)
    with channel:
        stub = getattr(pb_grpc.ComputeAgentStub(channel), method)  # type: ignore[no-untyped-call]
        answer = stub(request, timeout=timeout, metadata=metadata)
        answers = answer if SERVICE.methods_by_name[method].server_streaming else [answer]
        for message in answers:
            yield json_format.MessageToJson(
                message,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
                indent=None,
            )


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path else None
