"""A plain client for the yardstick and the audit: server-side apply over one HTTP session.

The baseline must be the fastest plain way to create the objects the operator creates, so it
does not spawn kubectl processes (their start-up and discovery would flatter the operator):
it sends the same server-side applies over the same kind of HTTP session the operator uses
(kube/transport.py), under the operator's client-side rate limit (one token bucket for the
whole identity, as the operator has one for all its workers), from `clients` concurrent
coroutines, each applying its share. The same client creates and edits the AIAgents on the
operator's side, so both sides pay the same for them.

The same session checks content: a dry-run apply, under the operator's field manager, of
what the renderers produce answers with the object the API server would hold after the
operator's next apply; when its digest equals the live object's, the cluster already holds
exactly what the renderers want, judged by the API server rather than by the operator.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.api import constants as c
from agentfleet.kube import config as kube_config
from agentfleet.kube.client import RateLimiter
from agentfleet.kube.transport import Transport
from agentfleet.render.children import CHILD_KINDS
from benchmarks.kube import BenchError

BY_KIND = {row.kind: row for row in CHILD_KINDS}  # the renderers' table, by kind

APPLY = "application/apply-patch+yaml; charset=utf-8"
MANAGER = "agentfleet-bench-client"
# Fields that differ between two objects of identical content.
_VOLATILE = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid")
# The owner uid the baseline's children are rendered with before their AIAgents exist; the
# real uid replaces it once the create answered (see `owner_placeholder`).
_PLACEHOLDER = re.compile(rb'"bench-uid-of-([a-z0-9.-]+)"')


def owner_placeholder(name: str) -> str:
    return f"bench-uid-of-{name}"


def object_path(obj: dict[str, Any]) -> str:
    """The API path of an object, from its own apiVersion and kind."""
    kind = obj["kind"]
    plural = c.PLURAL if kind == c.KIND else BY_KIND[kind].plural
    base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    meta = obj["metadata"]
    return f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def content_digest(obj: dict[str, Any]) -> str:
    """What an object is, without versions, managed fields or status."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE}
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    canonical = json.dumps([meta, rest], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Prepared:
    """One apply, serialised ahead of the measured window."""

    path: str
    body: bytes

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Prepared:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(object_path(obj), body)

    def with_owners(self, uids: dict[str, str]) -> Prepared:
        """The placeholder owner uids replaced by the AIAgents' real ones."""
        return Prepared(
            self.path, _PLACEHOLDER.sub(lambda m: b'"%s"' % uids[m[1].decode()].encode(), self.body)
        )


@dataclass
class Applied:
    started: float  # the client's loop clock (time.monotonic)
    seconds: float
    requests: int
    failures: list[str] = field(default_factory=list)


# (index of the request, the API server's answer) -> None
OnAnswer = Callable[[int, dict[str, Any]], None]


class PlainClient:
    """One identity's session to the API server, used from several coroutines at once."""

    def __init__(
        self,
        kubeconfig: Path,
        qps: float,
        burst: int,
        manager: str = MANAGER,
        pool_size: int = 64,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.qps, self.burst, self.manager, self.pool_size = qps, burst, manager, pool_size

    def apply(
        self, objects: Sequence[dict[str, Any]], clients: int, on_answer: OnAnswer | None = None
    ) -> Applied:
        """Server-side apply of every object, from `clients` concurrent coroutines."""
        prepared = [Prepared.of(obj) for obj in objects]
        return self.apply_steps([(lambda: prepared, clients)], on_answer)[0]

    def apply_steps(
        self,
        steps: Sequence[tuple[Callable[[], Sequence[Prepared]], int]],
        on_answer: OnAnswer | None = None,
    ) -> list[Applied]:
        """Each step's applies (from its number of concurrent clients), one step after the
        other, in one session under one rate limit. A step's requests are made when the
        previous step has finished (the baseline's children need their AIAgents' uids);
        `on_answer` gets each answer with its index in its step."""

        async def run() -> list[Applied]:
            transport = await self._transport()
            limiter = RateLimiter(self.qps, self.burst)
            try:
                done = []
                for make, clients in steps:
                    applied = await self._send(transport, limiter, make(), clients, [], on_answer)
                    if applied.failures:
                        raise BenchError(
                            f"{len(applied.failures)} applies failed: {applied.failures[:3]}"
                        )
                    done.append(applied)
                return done
            finally:
                await transport.close()

        return asyncio.run(run())

    def dry_run(
        self, objects: Sequence[dict[str, Any]], manager: str, concurrency: int = 8
    ) -> list[dict[str, Any] | None]:
        """The object the API server would hold after `manager` applied each one (None where
        it refused), computed and thrown away by the API server (dryRun=All)."""
        answers: list[dict[str, Any] | None] = [None] * len(objects)

        def keep(index: int, answer: dict[str, Any]) -> None:
            answers[index] = answer

        async def run() -> Applied:
            transport = await self._transport()
            try:
                prepared = [Prepared.of(obj) for obj in objects]
                query = [("fieldManager", manager), ("force", "true"), ("dryRun", "All")]
                return await self._send(transport, None, prepared, concurrency, query, keep)
            finally:
                await transport.close()

        applied = asyncio.run(run())
        if applied.failures:
            raise BenchError(f"dry-run applies failed: {applied.failures[:3]}")
        return answers

    async def _transport(self) -> Transport:
        cluster = await kube_config.load(str(self.kubeconfig))
        return Transport(cluster, pool_size=self.pool_size, request_timeout=120.0)

    async def _send(
        self,
        transport: Transport,
        limiter: RateLimiter | None,
        requests: Sequence[Prepared],
        clients: int,
        query: list[tuple[str, str]],
        on_answer: OnAnswer | None,
    ) -> Applied:
        query = query or [("fieldManager", self.manager), ("force", "true")]
        failures: list[str] = []
        shares = [range(i, len(requests), clients) for i in range(max(clients, 1))]

        async def client(share: range) -> None:
            for index in share:
                request = requests[index]
                if limiter is not None:
                    await limiter.acquire()
                status, _, answer = await transport.request(
                    "PATCH", request.path, query=query, body=request.body, content_type=APPLY
                )
                if status >= 300:
                    failures.append(f"{request.path}: {status} {answer[:300]!r}")
                elif on_answer is not None:
                    on_answer(index, json.loads(answer))

        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(client(share) for share in shares if share))
        return Applied(started, loop.time() - started, len(requests), failures)
