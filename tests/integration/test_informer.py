"""The informers (kube/informer.py) against the real API server, through a recording proxy that
shows what went over the wire: the list comes in pages of 500 (continue tokens followed), the
watch asks for bookmarks and resumes from them, and a watch whose resourceVersion etcd has
compacted meanwhile gets 410 Gone, after which the informer lists again and its cache holds
exactly what the cluster holds, deletions included.

The 410 is real: PodTemplates bypass the local API server's watch cache
(`--watch-cache-sizes=podtemplates#0`, dev/agentfleet_dev/cluster.py), so a watch from a
compacted revision is answered by etcd itself, and the test compacts etcd (its v3 JSON gateway)
while the proxy holds the informer's connection back.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import tempfile
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from agentfleet.kube.client import Kind, Kube
from agentfleet.kube.config import ClusterConfig, Credentials
from agentfleet.kube.informer import Informer
from agentfleet.kube.transport import Transport
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

LABEL = "agentfleet-test/informer"
POD_TEMPLATES = Kind("v1", "podtemplates", "PodTemplate")


@dataclass
class Wire:
    """What went through the proxy, in order: ("request", query) and ("event", type, rv)."""

    log: list[tuple[Any, ...]] = field(default_factory=list)

    def requests(self, watch: bool) -> list[dict[str, str]]:
        return [
            entry[1]
            for entry in self.log
            if entry[0] == "request" and (entry[1].get("watch") == "true") == watch
        ]

    def events(self, kind: str) -> list[str]:
        return [entry[2] for entry in self.log if entry[0] == "event" and entry[1] == kind]


class RecordingProxy:
    """Plain HTTP on loopback in front of the API server (TLS, as the admin). `hold()` ends
    the watches in flight and keeps new requests waiting until `release()`: an outage the
    informer cannot see past."""

    def __init__(self, upstream: str, tls: ssl.SSLContext) -> None:
        self.upstream = upstream
        self.tls = tls
        self.wire = Wire()
        self.open = asyncio.Event()
        self.open.set()
        self.streams: set[aiohttp.ClientResponse] = set()

    async def start(self) -> str:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.tls))
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self.forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for stream in list(self.streams):  # or cleanup() waits for the watches to time out
            stream.close()
        self.release()
        await self.runner.cleanup()
        await self.session.close()

    def hold(self) -> None:
        self.open.clear()
        for stream in list(self.streams):
            stream.close()

    def release(self) -> None:
        self.open.set()

    async def forward(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.wire.log.append(("request", query))
        await self.open.wait()
        body = await request.read()
        upstream = await self.session.request(
            request.method, self.upstream + request.path_qs, data=body or None,
            headers={"Accept": request.headers.get("Accept", "application/json"),
                     "Content-Type": request.headers.get("Content-Type", "application/json")},
            timeout=aiohttp.ClientTimeout(total=None),
        )  # fmt: skip
        self.streams.add(upstream)
        response = web.StreamResponse(
            status=upstream.status,
            headers={"Content-Type": upstream.headers.get("Content-Type", "application/json")},
        )
        await response.prepare(request)
        buffer = b""
        try:
            async for chunk in upstream.content.iter_any():
                if query.get("watch") == "true":
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in filter(None, lines):
                        event = json.loads(line)
                        meta = (event.get("object") or {}).get("metadata") or {}
                        code = (event.get("object") or {}).get("code")
                        self.wire.log.append(
                            ("event", event["type"], meta.get("resourceVersion"), code)
                        )
                await response.write(chunk)
        except (aiohttp.ClientError, ConnectionError):
            pass  # held: the watch ends here, as a dropped connection would
        finally:
            self.streams.discard(upstream)
            upstream.release()
        await response.write_eof()
        return response


def admin_tls(cluster: Cluster, directory: Path) -> tuple[str, ssl.SSLContext]:
    config = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    entry, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    files = {}
    for name, key in (("ca", entry), ("cert", user), ("key", user)):
        data_key = {"ca": "certificate-authority-data", "cert": "client-certificate-data",
                    "key": "client-key-data"}[name]  # fmt: skip
        path = directory / f"{name}.pem"
        path.write_bytes(base64.b64decode(key[data_key]))
        files[name] = str(path)
    context = ssl.create_default_context(cafile=files["ca"])
    context.load_cert_chain(files["cert"], files["key"])
    return entry["server"], context


@pytest_asyncio.fixture(loop_scope="function")
async def proxy(cluster: Cluster) -> AsyncIterator[tuple[RecordingProxy, Kube]]:
    """The recording proxy, and the operator's client pointed at it (plain HTTP, no
    credentials: the proxy adds the admin's)."""
    with tempfile.TemporaryDirectory() as directory:
        server, tls = admin_tls(cluster, Path(directory))
        handle = RecordingProxy(server, tls)
        url = await handle.start()
        kube = Kube(Transport(ClusterConfig(url, ssl.create_default_context(), Credentials())))
        try:
            yield handle, kube
        finally:
            await kube.close()
            await handle.stop()


def etcd_url(cluster: Cluster) -> str:
    state = Path(cluster.kubeconfig).parent / "state.json"
    if not state.exists():
        pytest.skip("compacts the etcd of the local control plane")
    return f"http://127.0.0.1:{json.loads(state.read_text())['ports']['etcd']}"


def compact(etcd: str, revision: int) -> None:
    body = json.dumps({"revision": str(revision), "physical": True}).encode()
    request = urllib.request.Request(f"{etcd}/v3/kv/compaction", body, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200


def podtemplate(name: str, namespace: str, label: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": name, "namespace": namespace, "labels": {LABEL: label}},
        "template": {"spec": {"containers": [{"name": "c", "image": "example.com/c:1"}]}},
    }


class Mirror:
    """The cache a handler keeps: name -> resourceVersion."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}
        self.kinds: list[str] = []

    def __call__(self, kind: str, obj: dict[str, Any]) -> None:
        self.kinds.append(kind)
        meta = obj["metadata"]
        if kind == "DELETED":
            self.items.pop(meta["name"], None)
        else:
            self.items[meta["name"]] = meta["resourceVersion"]


def live(cluster: Cluster, resource: str, namespace: str, label: str) -> dict[str, str]:
    listed = json.loads(cluster.kubectl("get", resource, "-n", namespace, "-l",
                        f"{LABEL}={label}", "-o", "json").stdout)  # fmt: skip
    return {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed["items"]}


async def wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


@pytest.mark.asyncio(loop_scope="function")
async def test_pages_of_500_then_a_410_after_compaction_lists_again_and_the_cache_is_right(
    cluster: Cluster, namespace: str, proxy: tuple[RecordingProxy, Kube]
) -> None:
    etcd = etcd_url(cluster)
    recorder, kube = proxy
    names = [f"pt-{i:04d}" for i in range(501)]
    for start in range(0, len(names), 50):
        await asyncio.gather(*(
            kube.request("POST", POD_TEMPLATES.ref(namespace),
                         body=podtemplate(n, namespace, namespace))
            for n in names[start : start + 50]
        ))  # fmt: skip
    recorder.wire.log.clear()

    mirror = Mirror()
    informer = Informer(kube, "v1", "PodTemplate", "podtemplates", f"{LABEL}={namespace}",
                        mirror, namespaces=(namespace,))  # fmt: skip
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 60)
        pages = recorder.wire.requests(watch=False)
        assert [p.get("limit") for p in pages] == ["500", "500"], pages
        assert "continue" not in pages[0] and pages[1].get("continue"), pages
        assert mirror.items == live(cluster, "podtemplates", namespace, namespace)
        await wait_for(lambda: recorder.wire.requests(watch=True), 10, "the watch")
        (watch,) = recorder.wire.requests(watch=True)
        assert watch.get("allowWatchBookmarks") == "true"

        # While the informer cannot reach the API server: one object deleted, two created,
        # one changed, one relabelled out of its selector; then etcd forgets that history.
        recorder.hold()
        cluster.kubectl("delete", "podtemplate", "pt-0000", "-n", namespace)
        for name in ("pt-new", "pt-newer"):  # 501 again: the relist takes two pages too
            cluster.kubectl(
                "create", "-f", "-", input=json.dumps(podtemplate(name, namespace, namespace))
            )
        cluster.kubectl("annotate", "podtemplate", "pt-0001", "-n", namespace, "example.com/x=1")
        cluster.kubectl(
            "label", "--overwrite", "podtemplate", "pt-0002", "-n", namespace, f"{LABEL}=elsewhere"
        )
        created = cluster.kubectl("get", "podtemplate", "pt-newer", "-n", namespace,
                                  "-o", "jsonpath={.metadata.resourceVersion}")  # fmt: skip
        revision = int(created.stdout)
        compact(etcd, revision)
        recorder.release()

        truth = live(cluster, "podtemplates", namespace, namespace)
        assert "pt-0000" not in truth and "pt-0002" not in truth and "pt-new" in truth
        await wait_for(lambda: mirror.items == truth, 60, "the informer's cache to match")
        gone = [e for e in recorder.wire.log if e[0] == "event" and e[1] == "ERROR" and e[3] == 410]
        assert gone, "the watch from the compacted revision got no 410 Gone"
        assert len(truth) == 501
        assert len(recorder.wire.requests(watch=False)) == 4, "listed again, in two pages"
        assert set(informer.known) == {f"{namespace}/{name}" for name in truth}
        assert "BOOKMARK" not in mirror.kinds and "ERROR" not in mirror.kinds
    finally:
        await informer.stop()


@pytest.mark.asyncio(loop_scope="function")
async def test_a_watch_resumes_from_the_bookmark_the_api_server_sent(
    cluster: Cluster, namespace: str, proxy: tuple[RecordingProxy, Kube]
) -> None:
    """ConfigMaps are served from the watch cache, which sends bookmarks (at the latest just
    before a watch times out: 5 s here instead of 300)."""
    recorder, kube = proxy
    cluster.kubectl("create", "configmap", "watched", "-n", namespace)
    cluster.kubectl("label", "configmap", "watched", "-n", namespace, f"{LABEL}={namespace}")
    mirror = Mirror()
    informer = Informer(kube, "v1", "ConfigMap", "configmaps", f"{LABEL}={namespace}", mirror,
                        namespaces=(namespace,), server_timeout=5)  # fmt: skip
    informer.start()
    try:
        await asyncio.wait_for(informer.synced.wait(), 30)
        await wait_for(lambda: recorder.wire.events("BOOKMARK"), 30, "a bookmark")
        bookmark_at = next(
            i for i, e in enumerate(recorder.wire.log) if e[:2] == ("event", "BOOKMARK")
        )
        bookmark = recorder.wire.log[bookmark_at][2]

        def resumed() -> list[dict[str, str]]:
            return [e[1] for e in recorder.wire.log[bookmark_at:]
                    if e[0] == "request" and e[1].get("watch") == "true"]  # fmt: skip

        await wait_for(resumed, 30, "the next watch")
        # It resumes from the bookmark, unless an event came after it on that stream.
        log = recorder.wire.log[bookmark_at + 1 :]
        stream = log[: next(i for i, e in enumerate(log) if e[0] == "request")]
        expected = stream[-1][2] if stream else bookmark
        assert resumed()[0]["resourceVersion"] == expected
        assert mirror.kinds == ["ADDED"], "bookmarks are not events for the handler"
    finally:
        await informer.stop()
