"""`agentfleet api`: the HTTP API (deploy agent, Hypercore) and the gRPC control API (the
compute agent's) in one process, sharing one API server client and one TokenReview cache.

TLS by default on both: HTTPS with the serving certificate, and on gRPC mutual TLS (a client
certificate from the client CA names the caller). Plain HTTP and plaintext gRPC only with
`insecure`, for local use. Imports grpc: only the `api` command imports this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import uvicorn

from agentfleet.frontends.fleet import connect
from agentfleet.frontends.grpc import service as grpc_service
from agentfleet.frontends.grpc.service import TLSFiles
from agentfleet.frontends.http.app import ApiSettings, create_app, token_reviews

log = logging.getLogger("agentfleet.api")


@dataclass(frozen=True)
class Listen:
    host: str
    port: int  # HTTP(S)
    grpc_port: int  # 0: no gRPC server
    tls: TLSFiles | None  # None: plain HTTP and plaintext gRPC (--insecure)
    max_watches: int = 64  # gRPC WatchAgents streams open at once


async def serve(settings: ApiSettings, listen: Listen) -> None:
    """Run both servers until SIGINT/SIGTERM (uvicorn's), then stop gRPC with a grace period."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    fleet = await connect(settings.target)
    async with fleet:
        tokens = token_reviews(fleet, settings)  # one cache: a token is reviewed once
        app = create_app(settings, fleet, tokens)
        config = uvicorn.Config(
            app,
            host=listen.host,
            port=listen.port,
            ssl_certfile=listen.tls.cert if listen.tls else None,
            ssl_keyfile=listen.tls.key if listen.tls else None,
            server_header=False,  # the API does not say what it runs on
            log_level="info",
        )
        http = uvicorn.Server(config)
        grpc_server = None
        if listen.grpc_port:
            host = f"[{listen.host}]" if ":" in listen.host else listen.host
            grpc_server, port = await grpc_service.server(
                fleet,
                tokens,
                f"{host}:{listen.grpc_port}",
                listen.tls,
                settings.max_body_bytes,
                listen.max_watches,
            )
            await grpc_server.start()
            security = "mutual TLS" if listen.tls else "plaintext, --insecure"
            log.info("gRPC API (agentfleet.v1.ComputeAgent) on %s:%d (%s)", host, port, security)
        try:
            await http.serve()
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5)
