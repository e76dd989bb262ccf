"""An HTTP proxy in front of the real API server that can make watches go quiet.

A TCP proxy cannot tell a watch from any other request (TLS hides the URL), so this one
terminates TLS with a serving certificate from the local control plane's own CA (which the
operator's kubeconfig trusts) and forwards each request to the API server, streaming the
answers. Its modes:

- `forward`: everything passes.
- `silent-watches`: every watch, open or new, gets its answer's headers and then nothing:
  no event, no bookmark, no error (a path that drops a long-lived flow, a stuck
  intermediary). A watch silenced once stays silent after `forward` again, as a half-open
  connection would; only new watches flow.
- `hang-watches`: watch requests get no answer at all while other requests are answered: a
  watch wedged while the API server answers.
- `hang-all`: nothing is answered (the API server is away from this client's point of view).
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from pathlib import Path
from typing import Literal

import aiohttp
from aiohttp import web

Mode = Literal["forward", "silent-watches", "hang-watches", "hang-all"]
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "host",
    "upgrade",
    "proxy-connection",
}


class ApiProxy:
    def __init__(self, target: str, ca: Path, cert_dir: Path) -> None:
        self.target = target.rstrip("/")
        self.ca = ca
        self.cert_dir = cert_dir
        self.mode: Mode = "forward"
        self.loop = asyncio.new_event_loop()
        self.restored = asyncio.Event()
        self.watch_requests = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("the API proxy did not start")

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        started.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        upstream_tls = ssl.create_default_context(cafile=str(self.ca))
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=upstream_tls, limit=0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        )
        serving = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        serving.load_cert_chain(self.cert_dir / "tls.crt", self.cert_dir / "tls.key")
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=serving)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def set_mode(self, mode: Mode) -> None:
        def switch() -> None:
            self.mode = mode
            if mode == "forward":
                self.restored.set()  # hung requests end (their connections close)
            else:
                self.restored = asyncio.Event()

        self.loop.call_soon_threadsafe(switch)

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        await self.restored.wait()
        if request.transport is not None:
            request.transport.close()
        raise ConnectionResetError("the proxy dropped a request it held")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch") in ("true", "1")
        self.watch_requests += watch
        if self.mode == "hang-all" or (watch and self.mode == "hang-watches"):
            return await self._hang(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with self.session.request(
            request.method, self.target + request.path_qs, headers=headers, data=body or None
        ) as upstream:
            answer = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
            )
            await answer.prepare(request)
            silenced = False
            async for chunk in upstream.content.iter_any():
                silenced = silenced or (watch and self.mode != "forward")
                if self.mode == "hang-all":
                    return await self._hang(request)
                if not silenced:
                    await answer.write(chunk)
            await answer.write_eof()
            return answer

    def close(self) -> None:
        async def stop() -> None:
            self.restored.set()
            await self.runner.cleanup()
            await self.session.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def for_cluster(kubeconfig: str, server: str, scratch: Path) -> ApiProxy | None:
    """A proxy to `server` whose certificate the local control plane's CA signed, or None
    when the cluster is not ours (no CA key to sign with)."""
    from agentfleet_dev.certs import PKI

    pki = PKI(Path(kubeconfig).parent / "pki")
    if not pki.path("ca.key").exists():
        return None
    cert_dir = pki.serving_cert_dir(scratch / "api-proxy-tls", "agentfleet-test-api-proxy")
    return ApiProxy(server, pki.path("ca.crt"), cert_dir)
