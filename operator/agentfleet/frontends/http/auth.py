"""Who is asking, and may they: the dependencies every HTTP route declares.

A Kubernetes bearer token is reviewed by the API server (TokenReview, for this API's audience);
what the user may do is asked of it too (SubjectAccessReview), so the API grants nobody more
than kubectl would. Only then does a route act, with the API's own identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agentfleet.api import constants as c
from agentfleet.frontends.fleet import Access, Fleet
from agentfleet.frontends.http.schemas import NAMESPACE_PATTERN

# Longer than any ServiceAccount or OIDC token; a longer one is refused without a review.
MAX_TOKEN_BYTES = 16 * 1024

User = dict[str, Any]  # TokenReview's status.user: username, uid, groups, extra


class TokenReviews:
    """TokenReview answers, kept `seconds` so that a burst of requests with one token costs one
    review. Bounded: at most `size` answers (least recently used go first), keyed by a SHA-256
    of the token, so neither a flood of made-up tokens nor long tokens grow memory; a token
    that is refused costs one review each time it is tried after its answer expired."""

    def __init__(
        self,
        review: Callable[[str], Awaitable[User | None]],
        seconds: float = 10,
        size: int = 4096,
    ) -> None:
        self.review = review
        self.seconds = seconds
        self.size = size
        self.answers: OrderedDict[bytes, tuple[float, User | None]] = OrderedDict()

    async def user(self, token: str) -> User | None:
        if not token or len(token) > MAX_TOKEN_BYTES:
            return None
        key = hashlib.sha256(token.encode(errors="surrogateescape")).digest()
        now = time.monotonic()
        cached = self.answers.get(key)
        if cached is not None and now - cached[0] < self.seconds:
            self.answers.move_to_end(key)
            return cached[1]
        user = await self.review(token)
        self.answers[key] = (now, user)
        self.answers.move_to_end(key)
        while len(self.answers) > self.size:
            self.answers.popitem(last=False)
        return user


bearer = HTTPBearer(
    auto_error=False,
    description="A Kubernetes bearer token for this API's audience, e.g. "
    "`kubectl create token <serviceaccount> --audience agentfleet-api`.",
)


def fleet_of(request: Request) -> Fleet:
    fleet: Fleet = request.app.state.fleet
    return fleet


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> User:
    """The Kubernetes user behind the bearer token; 401 if there is none."""
    unauthorized = HTTPException(
        401, "a valid Kubernetes bearer token is required", {"WWW-Authenticate": "Bearer"}
    )
    if credentials is None or not credentials.credentials:
        raise unauthorized
    tokens: TokenReviews = request.app.state.tokens
    user = await tokens.user(credentials.credentials)
    if user is None:
        raise unauthorized
    return user


FleetDep = Annotated[Fleet, Depends(fleet_of)]
Caller = Annotated[User, Depends(caller)]
NamespaceQuery = Annotated[
    str | None,
    Query(
        max_length=63,
        pattern=NAMESPACE_PATTERN,
        description="Namespace of the agents (default: the API's).",
    ),
]


def agents(verb: str, namespace: str, name: str | None = None) -> Access:
    return Access(verb, c.PLURAL, c.GROUP, namespace, name)


@dataclass(frozen=True)
class Guard:
    """One request's caller and namespace: what a route needs to ask the API server."""

    fleet: Fleet
    user: User
    namespace: str

    async def require(self, *needs: Access) -> None:
        """403 unless the caller may do every one of `needs` (asked at once)."""
        allowed = await asyncio.gather(*(self.fleet.may(self.user, need) for need in needs))
        for need, ok in zip(needs, allowed, strict=True):
            if not ok:
                raise HTTPException(403, f"{self.user.get('username')} may not {need}")

    def agents(self, verb: str, name: str | None = None) -> Access:
        """An AIAgent permission in this request's namespace."""
        return agents(verb, self.namespace, name)


async def guard(fleet: FleetDep, user: Caller, namespace: NamespaceQuery = None) -> Guard:
    return Guard(fleet, user, namespace or fleet.namespace)


GuardDep = Annotated[Guard, Depends(guard)]


def may_agents(verb: str) -> Any:
    """A route dependency: the caller may `verb` AIAgents in the request's namespace."""

    async def check(request_guard: GuardDep) -> None:
        await request_guard.require(request_guard.agents(verb))

    return Depends(check)


def may_cluster(*resources: str) -> Any:
    """A route dependency: the caller may list these core resources cluster-wide."""

    async def check(fleet: FleetDep, user: Caller) -> None:
        await Guard(fleet, user, "").require(*(Access("list", r) for r in resources))

    return Depends(check)
