"""The deploy agent's HTTP API and Hypercore's POST /spawn, as a thin front end over AIAgents.

Clients written for the per-node deploy agent (`POST /deploy` a service.yaml, `GET /services`,
`POST /stop`, `GET /gpus`) and for Hypercore (`POST /spawn`, `GET /api/v1/nodes`) keep
working; each request creates, reads or deletes AIAgents, so kubectl sees the same fleet.

Security: every request carries a Kubernetes bearer token for this API's audience. A
TokenReview says who it is, a SubjectAccessReview whether that user may do what the route needs
(e.g. `create aiagents` in the namespace for /deploy), so the API grants nobody more than
kubectl would; only then does the API act, with its own identity. 401 without a valid token,
403 when not allowed, 413 for a body over the limit, 429 when too many deploys wait at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI

from agentfleet import __version__
from agentfleet.frontends.fleet import Fleet, connect
from agentfleet.frontends.http import errors
from agentfleet.frontends.http.auth import TokenReviews
from agentfleet.frontends.http.limits import BodyLimit, RequestIds, Slots
from agentfleet.frontends.http.routes import deploy_agent, health, hypercore
from agentfleet.kube.client import Target

# What `kubectl create token <sa> --audience ...` must name; the chart's default too.
DEFAULT_AUDIENCE = "agentfleet-api"


@dataclass
class ApiSettings:
    target: Target
    max_wait_seconds: float = 600  # the longest any request waits for an agent
    token_cache_seconds: float = 10  # how long a TokenReview answer is reused
    cleanup_seconds: float = 60  # how long a refused deploy waits for its agent to be gone
    token_audience: str = DEFAULT_AUDIENCE  # "": tokens for the API server itself (weaker)
    max_body_bytes: int = 1024 * 1024
    max_deploy_waits: int = 64  # POST /deploy in progress at once; more are answered 429


def token_reviews(fleet: Fleet, settings: ApiSettings) -> TokenReviews:
    """Bearer tokens reviewed for the API's audience, answers kept a few seconds."""
    return TokenReviews(
        lambda token: fleet.review_token(token, settings.token_audience),
        settings.token_cache_seconds,
    )


def create_app(
    settings: ApiSettings, fleet: Fleet | None = None, tokens: TokenReviews | None = None
) -> FastAPI:
    """The application; with `fleet` (and `tokens`), those, shared with the gRPC server and
    closed by their owner; else its own client, connected when the app starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = fleet is None
        client = await connect(settings.target) if fleet is None else fleet
        app.state.fleet = client
        app.state.tokens = tokens or token_reviews(client, settings)
        try:
            yield
        finally:
            if own:
                await client.close()

    app = FastAPI(
        title="agentfleet API", version=__version__, description=__doc__, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.deploy_slots = Slots(settings.max_deploy_waits, "deploys")
    errors.install(app)
    app.include_router(health.router)
    app.include_router(deploy_agent.router)
    app.include_router(hypercore.router)
    # Outermost last: the id is set before the body is read, so a 413 carries one too.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestIds)
    return app
