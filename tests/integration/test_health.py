"""/healthz tells Kubernetes when restarting the operator would help, and only then.

Through a TCP proxy that stops forwarding (a half-open path: sockets stay open, nothing
arrives) the API server is away: a restart would not help, /healthz stays 200 and says why,
and the operator converges what changed meanwhile once the path is back. Through an HTTP
proxy that leaves only the watches unanswered while the API server answers everything else,
the watches are wedged in the operator: /healthz fails, naming them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.conftest import (
    SHARD_LABEL,
    Cluster,
    Operator,
    eventually,
    operator_kubeconfig,
    start_operator,
)
from tests.integration import apiproxy
from tests.integration.test_operator import agent_yaml, apply, get_agent, wait_ready

pytestmark = pytest.mark.cluster


def sharded(text: str, shard: str) -> str:
    """The agent YAML with the shard label that routes it to one test's own operator."""
    body = yaml.safe_load(text)
    body["metadata"].setdefault("labels", {})[SHARD_LABEL] = shard
    return yaml.safe_dump(body)


class BlackholeProxy:
    """A TCP proxy on loopback. `cut()` makes it swallow every byte in both directions and
    answer new connections never; `restore()` drops the poisoned connections and forwards
    again."""

    def __init__(self, target: str) -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 443)
        self.loop = asyncio.new_event_loop()
        self.cutting = False
        self.writers: set[asyncio.StreamWriter] = set()
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.writers.add(upstream_writer)
        await asyncio.gather(
            self._pump(reader, upstream_writer), self._pump(upstream_reader, writer)
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.cutting:
                    continue  # swallowed: the socket stays open, nothing arrives
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def cut(self) -> None:
        self.cutting = True

    def restore(self) -> None:
        def drop_all() -> None:
            for writer in list(self.writers):
                writer.close()
            self.writers.clear()
            self.cutting = False

        self.loop.call_soon_threadsafe(drop_all)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def proxied_operator(cluster: Cluster, crd: None) -> Iterator[tuple[Operator, BlackholeProxy]]:
    server = cluster.kubectl(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    ).stdout
    proxy = BlackholeProxy(server)
    kubeconfig = operator_kubeconfig(cluster, server=proxy.url, name="proxied-operator")
    operator = start_operator(
        kubeconfig,
        "--agent-selector", f"{SHARD_LABEL}=health",
        "--request-timeout", "3",
        "--connect-timeout", "2",
        "--watch-server-timeout", "10",
        "--watch-inactivity-seconds", "4",
        "--unhealthy-after-seconds", "8",
        "--max-retry-seconds", "2",
        name="proxied-operator",
    )  # fmt: skip
    try:
        yield operator, proxy
    finally:
        operator.stop()
        proxy.close()


def test_healthz_stays_ok_while_the_api_server_cannot_be_reached_then_converges(
    cluster: Cluster, namespace: str, proxied_operator: tuple[Operator, BlackholeProxy]
) -> None:
    operator, proxy = proxied_operator
    apply(cluster, sharded(agent_yaml("cut", namespace), "health"))
    wait_ready(cluster, namespace, "cut")
    time.sleep(10)
    assert operator.health()[0] == 200, "an idle, connected operator is healthy"

    proxy.cut()
    cut_at = time.monotonic()

    def explained() -> str:
        status, body = operator.health()
        assert status == 200, (status, body)
        assert "a restart would not help" in body, body
        return body

    # Watches silent for longer than --unhealthy-after-seconds (8 s), yet healthy: the API
    # server does not answer even a new connection, so a restart would only crash-loop.
    body = eventually(explained, timeout=40, what="/healthz to note the silent API server")
    print(f"noted {time.monotonic() - cut_at:.1f}s after the cut: {body}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert operator.health()[0] == 200
        time.sleep(1)
    assert operator.process.poll() is None
    # Meanwhile the agent changes; the operator cannot see it yet.
    apply(cluster, sharded(agent_yaml("cut", namespace, image="example.com/coding:2"), "health"))

    proxy.restore()

    def rolled_out() -> None:
        agent = wait_ready(cluster, namespace, "cut", timeout=5)
        assert agent["status"]["observedGeneration"] == agent["metadata"]["generation"] == 2

    eventually(rolled_out, timeout=60, what="the change made during the cut to roll out")
    assert get_agent(cluster, namespace, "cut")["status"]["readyReplicas"] == 2


def test_healthz_fails_when_the_watches_are_wedged_while_the_api_server_answers(
    cluster: Cluster, crd: None, namespace: str, tmp_path: Path
) -> None:
    server = cluster.kubectl(
        "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    ).stdout
    proxy = apiproxy.for_cluster(cluster.kubeconfig, server, tmp_path)
    if proxy is None:
        pytest.skip("the HTTP proxy needs the local control plane's CA")
    kubeconfig = operator_kubeconfig(cluster, server=proxy.url, name="wedged-operator")
    operator = start_operator(
        kubeconfig,
        "--agent-selector", f"{SHARD_LABEL}=wedged",
        "--request-timeout", "3",
        "--connect-timeout", "2",
        "--watch-server-timeout", "10",
        "--watch-inactivity-seconds", "4",
        "--unhealthy-after-seconds", "8",
        name="wedged-operator",
    )  # fmt: skip
    try:
        apply(cluster, sharded(agent_yaml("wedge", namespace), "wedged"))
        wait_ready(cluster, namespace, "wedge")
        proxy.set_mode("hang-watches")

        def unhealthy() -> str:
            status, body = operator.health()
            assert status == 500, (status, body)
            return body

        body = eventually(unhealthy, timeout=40, what="/healthz to fail")
        assert "not answered for more than 8s while the API server answers" in body, body
        assert operator.process.poll() is None, "it keeps running; Kubernetes decides to restart"
        proxy.set_mode("forward")
        eventually(operator.healthy, timeout=40, what="/healthz to recover")
    finally:
        operator.stop()
        proxy.close()
