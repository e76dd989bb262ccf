"""Kube's timeouts and error classification, against a real socket that never answers."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator

import pytest
from kopf._cogs.clients import api as kopf_api
from kubernetes_asyncio import client

from agentfleet.kube.client import ApiError, Kube, RateLimiter, Ref
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.runtime import watchhealth


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Accepts connections and never says a word: a half-open API server."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


async def test_a_request_to_a_silent_server_times_out(silent_server: str) -> None:
    configuration = client.Configuration(host=silent_server)
    async with client.ApiClient(configuration) as api:
        kube = Kube(api, connect_timeout=0.5, request_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ApiError) as refused:
            await kube.get(Ref("v1", "services", "ns", "x", "Service"))
        assert time.monotonic() - started < 3
        assert refused.value.status == 0 and refused.value.transient


async def test_the_rate_limiter_spaces_requests_beyond_the_burst() -> None:
    limiter = RateLimiter(qps=50, burst=5)
    started = time.monotonic()
    for _ in range(15):
        await limiter.acquire()
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 0.6  # 10 requests beyond the burst at 50/s take ~0.2 s


def test_unserved_resource_is_told_apart_from_a_missing_object() -> None:
    assert ApiError("X", "a", 404, "404 page not found").unserved
    assert not ApiError("X", "a", 404, 'x "a" not found', "NotFound").unserved


def test_watch_health_wraps_kopfs_request_function_as_it_is_today() -> None:
    """If kopf renames or reshapes `request`, this fails instead of health going blind."""
    parameters = inspect.signature(kopf_api.request).parameters
    assert list(parameters)[:2] == ["method", "url"]
    watchhealth.install(WatchLiveness())
    assert kopf_api.request is watchhealth._request
    assert watchhealth.resource_of("/apis/apps/v1/deployments?watch=true&x=1") == (
        "/apis/apps/v1/deployments"
    )
    assert watchhealth.resource_of("/apis/apps/v1/deployments?limit=500") is None


def test_stale_watches_are_reported_after_the_threshold() -> None:
    watches = WatchLiveness()
    watches.last_answer["/api/v1/services"] = 100.0
    watches.last_answer["/apis/apps/v1/deployments"] = 190.0
    assert watches.stale(60, now=200.0) == ["/api/v1/services"]
    watches.forget("/api/v1/services")
    assert watches.stale(60, now=200.0) == []
