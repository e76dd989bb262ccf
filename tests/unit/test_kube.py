"""The one client: error parsing and classification, paths, connecting in kubectl's order,
timeouts against a real socket that never answers, the rate limiter, reading streams."""

from __future__ import annotations

import asyncio
import inspect
import json
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp.base_protocol import BaseProtocol
from kopf._cogs.clients import api as kopf_api

from agentfleet.kube import client as kube
from agentfleet.kube.client import (
    ApiError,
    ConfigError,
    Kube,
    RateLimiter,
    Ref,
    Target,
    status_error,
)
from agentfleet.kube.config import ClusterConfig, Credentials
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.kube.transport import Transport
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
    cluster = ClusterConfig(silent_server, ssl.create_default_context(), Credentials("t"))
    async with Kube(Transport(cluster, connect_timeout=0.5, request_timeout=0.5)) as kube:
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


def test_api_server_errors_keep_their_message_reason_and_causes() -> None:
    body = (
        b'{"kind":"Status","message":"aiagents \\"x\\" not found","reason":"NotFound",'
        b'"details":{"causes":[{"reason":"FieldValueInvalid"},{"message":"no reason"}]}}'
    )
    error = status_error("AIAgent", "x", 404, body, "Not Found")
    assert (error.status, error.reason, error.message, error.causes) == (
        404,
        "NotFound",
        'aiagents "x" not found',
        frozenset({"FieldValueInvalid"}),
    )
    assert error.not_found and not error.unserved
    assert not (error.already_exists or error.invalid or error.gone or error.transient)
    assert str(error) == 'AIAgent x was rejected by the API server (404): aiagents "x" not found'
    exists = status_error("AIAgent", "x", 409, '{"message":"exists","reason":"AlreadyExists"}', "")
    assert exists.already_exists and exists.transient
    terminating = status_error(
        "Service",
        "a",
        403,
        '{"message":"m","details":{"causes":[{"reason":"NamespaceTerminating"}]}}',
        "",
    )
    assert terminating.namespace_terminating


def test_a_body_that_is_no_status_is_kept_as_text() -> None:
    page = status_error("ScaledObject", "", 404, b"404 page not found\n", "Not Found")
    assert (page.message, page.reason) == ("404 page not found", "")
    assert page.unserved
    assert status_error("X", "", 502, "<html>bad gateway</html>", "Bad").message == (
        "<html>bad gateway</html>"
    )
    assert status_error("X", "", 503, "", "Service Unavailable").message == "Service Unavailable"
    assert status_error("X", "", 500, "[1, 2]", None).message == "[1, 2]"
    assert status_error("X", "", 500, "{}", None).message == "HTTP 500"


def test_paths_of_objects_and_collections() -> None:
    assert Ref("v1", "services", "ns", "a").path == "/api/v1/namespaces/ns/services/a"
    assert Ref("apps/v1", "deployments", "ns").path == "/apis/apps/v1/namespaces/ns/deployments"
    assert Ref("apps/v1", "deployments").collection_path == "/apis/apps/v1/deployments"
    assert kube.NODES.ref("", "n1").path == "/api/v1/nodes/n1"
    assert (
        kube.AGENTS.ref("team-a").path == "/apis/agentfleet.io/v1alpha1/namespaces/team-a/aiagents"
    )
    assert kube.LEASES.ref("s", "l").path == "/apis/coordination.k8s.io/v1/namespaces/s/leases/l"
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    assert Ref.of(node, "nodes") == Ref("v1", "nodes", "", "n1", "Node")


async def test_lines_of_any_length_are_read_whole_blank_ones_included() -> None:
    protocol = BaseProtocol(asyncio.get_running_loop())
    stream = aiohttp.StreamReader(protocol, 2**22, loop=asyncio.get_running_loop())
    big = b'{"type":"ADDED","object":{"x":"' + b"y" * 300_000 + b'"}}'
    stream.feed_data(b'{"type":"BOOKMARK"}\n' + big[:1000])
    stream.feed_data(big[1000:] + b"\n\nlast line without a newline")
    stream.feed_eof()
    lines = [line async for line in kube.lines(stream)]
    assert len(lines) == 4 and len(lines[1]) > 300_000
    assert lines[2:] == [b"", b"last line without a newline"]


def kubeconfig_with_two_contexts(path: Path) -> Path:
    cluster = {"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "a",
        "clusters": [cluster],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [
            {"name": "a", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
            {"name": "b", "context": {"cluster": "c", "user": "u", "namespace": "team-b"}},
            {"name": "plain", "context": {"cluster": "c", "user": "u"}},
        ],
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("context", "namespace", "expected"),
    [(None, None, "team-a"), ("b", None, "team-b"), ("plain", None, "default"),
     ("b", "explicit", "explicit")],
)  # fmt: skip
async def test_namespace_follows_kubectl_precedence(
    tmp_path: Path, context: str | None, namespace: str | None, expected: str
) -> None:
    path = kubeconfig_with_two_contexts(tmp_path / "config")
    target = Target(kubeconfig=str(path), context=context, namespace=namespace)
    async with await kube.connect(target) as connected:
        assert connected.namespace == expected


async def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        await kube.connect(Target(kubeconfig=str(tmp_path / "absent")))


def one_context_config(path: Path, namespace: str) -> Path:
    cluster = {"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}
    context = {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "x",
        "clusters": [cluster],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [context],
    }
    path.write_text(json.dumps(config))
    return path


async def test_connect_reads_the_kubeconfig_in_kubectls_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--kubeconfig, else $KUBECONFIG (a list; missing files skipped), else ~/.kube/config."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    one_context_config(home / ".kube" / "config", "from-home")
    from_env = one_context_config(tmp_path / "env", "from-env")
    from_flag = one_context_config(tmp_path / "flag", "from-flag")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    async with await kube.connect() as found:
        assert found.namespace == "from-home"
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{from_env}")
    async with await kube.connect() as found:
        assert found.namespace == "from-env"
    async with await kube.connect(Target(kubeconfig=str(from_flag))) as found:
        assert found.namespace == "from-flag"


async def test_without_any_kubeconfig_connect_uses_the_pods_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ConfigError, match="not in a Pod"):
        await kube.connect()
