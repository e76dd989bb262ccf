"""A plain client for the yardstick and the audit: server-side apply over one HTTP session.

The baseline must be the fastest plain way to create the objects the operator creates, so it
does not spawn kubectl processes (their start-up and discovery would flatter the operator):
it sends the same server-side applies over the same kind of HTTP session the operator uses
(kube/transport.py), under the same client-side rate limit, from `clients` concurrent
coroutines, each applying its share. The same session checks convergence: a dry-run apply of
what the renderers produce, compared with the live object, says whether the cluster already
holds exactly that, judged by the API server itself rather than by the operator's status.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.kube import config as kube_config
from agentfleet.kube.client import RateLimiter
from agentfleet.kube.transport import Transport
from benchmarks.kube import BenchError

APPLY = "application/apply-patch+yaml; charset=utf-8"
MANAGER = "agentfleet-bench-baseline"
# Fields that differ between two objects of identical content.
_VOLATILE = ("resourceVersion", "managedFields", "generation", "creationTimestamp", "uid")


def object_path(obj: dict[str, Any]) -> str:
    """The API path of an object (core v1 or a group), from its own apiVersion and kind."""
    plural = {
        "ServiceAccount": "serviceaccounts",
        "Service": "services",
        "Deployment": "deployments",
        "AIAgent": "aiagents",
        "ScaledObject": "scaledobjects",
        "PeerAuthentication": "peerauthentications",
        "AuthorizationPolicy": "authorizationpolicies",
        "DestinationRule": "destinationrules",
        "HTTPRoute": "httproutes",
        "GRPCRoute": "grpcroutes",
        "VirtualService": "virtualservices",
        "Gateway": "gateways",
    }[obj["kind"]]
    base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    meta = obj["metadata"]
    return f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"


def content_digest(obj: dict[str, Any]) -> str:
    """What an object is, without versions, managed fields or status."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE}
    rest = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    canonical = json.dumps([meta, rest], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(canonical.encode(), digest_size=12).hexdigest()


@dataclass
class Applied:
    seconds: float
    requests: int
    failures: list[str] = field(default_factory=list)


class PlainClient:
    """One identity's session to the API server, used from several coroutines at once."""

    def __init__(self, kubeconfig: Path, qps: float, burst: int, pool_size: int = 64) -> None:
        self.kubeconfig = kubeconfig
        self.qps, self.burst, self.pool_size = qps, burst, pool_size

    async def _transport(self) -> Transport:
        cluster = await kube_config.load(str(self.kubeconfig))
        return Transport(cluster, pool_size=self.pool_size, request_timeout=60.0)

    async def _apply_shares(
        self, objects: Sequence[dict[str, Any]], clients: int, query: list[tuple[str, str]]
    ) -> tuple[Applied, list[dict[str, Any]]]:
        transport = await self._transport()
        limiter = RateLimiter(self.qps, self.burst)
        answers: list[dict[str, Any]] = [{} for _ in objects]
        failures: list[str] = []
        shares = [range(i, len(objects), clients) for i in range(clients)]

        async def client(share: range) -> None:
            for index in share:
                obj = objects[index]
                await limiter.acquire()
                body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
                status, _, answer = await transport.request(
                    "PATCH", object_path(obj), query=query, body=body, content_type=APPLY
                )
                if status >= 300:
                    failures.append(f"{obj['kind']} {obj['metadata']['name']}: {status} "
                                    f"{answer[:300]!r}")  # fmt: skip
                else:
                    answers[index] = json.loads(answer)

        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.gather(*(client(share) for share in shares if share))
        finally:
            await transport.close()
        return Applied(loop.time() - started, len(objects), failures), answers

    def apply(self, objects: Sequence[dict[str, Any]], clients: int) -> Applied:
        """Server-side apply of every object, from `clients` concurrent coroutines."""
        query = [("fieldManager", MANAGER), ("force", "true")]
        applied, _ = asyncio.run(self._apply_shares(objects, clients, query))
        if applied.failures:
            raise BenchError(f"{len(applied.failures)} applies failed: {applied.failures[:3]}")
        return applied

    def differing(
        self, desired: Sequence[dict[str, Any]], live: dict[str, dict[str, Any]], manager: str
    ) -> list[str]:
        """Which desired objects the cluster does not hold exactly: a dry-run apply of each
        under `manager` (the operator's field manager) must leave the live object as it is.
        `live`: object path -> the object as listed."""
        query = [("fieldManager", manager), ("force", "true"), ("dryRun", "All")]
        applied, answers = asyncio.run(self._apply_shares(desired, 8, query))
        if applied.failures:
            raise BenchError(f"dry-run applies failed: {applied.failures[:3]}")
        wrong = []
        for obj, answer in zip(desired, answers, strict=True):
            path = object_path(obj)
            current = live.get(path)
            if current is None or content_digest(current) != content_digest(answer):
                wrong.append(path)
        return wrong
