"""HTTP to one API server: one aiohttp session, its TLS context and its credentials.

The layer under kube/client.py: it knows nothing of Kubernetes objects, only how to send a
request with the right Authorization header and TLS, and how to open a stream (watches,
followed logs). Everything is plain bytes and dicts; errors are the client's to interpret.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from agentfleet.kube.config import ClusterConfig

_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")
Query = list[tuple[str, str]]


class Transport:
    def __init__(
        self,
        cluster: ClusterConfig,
        pool_size: int = 64,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.cluster = cluster
        self.timeout = aiohttp.ClientTimeout(
            total=request_timeout, connect=connect_timeout, sock_connect=connect_timeout
        )
        self.connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the event loop that uses it."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                ssl=self.cluster.ssl_context, limit=self._pool_size, enable_cleanup_closed=True
            )
            # Proxies only when configured: reading ~/.netrc and the proxy variables on every
            # request cost 5% of the operator's CPU in a burst.
            trust_env = any(os.environ.get(v) for v in _PROXY_VARIABLES)
            self._session = aiohttp.ClientSession(
                base_url=self.cluster.server, connector=connector, trust_env=trust_env
            )
        return self._session

    async def _headers(self, content_type: str | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        authorization = await self.cluster.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
        limits: aiohttp.ClientTimeout | None = None,
    ) -> tuple[int, str, bytes]:
        """(status, HTTP reason, body) of one request. `body`: bytes as they are, anything
        else as JSON; `limits`: other timeouts than the usual ones. Connection failures and
        timeouts raise aiohttp.ClientError / TimeoutError."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = await self._headers(content_type if data is not None else None, accept)
        async with self.session.request(
            method,
            path,
            params=query or None,
            data=data,
            headers=headers,
            timeout=limits or self.timeout,
        ) as response:
            return response.status, response.reason or "", await response.read()

    @asynccontextmanager
    async def stream(
        self,
        path: str,
        *,
        query: Query | None = None,
        accept: str = "application/json",
        limits: aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An open GET response to read as it arrives (watches, followed logs): without
        `limits` only connecting is limited (a followed log may stay open for days)."""
        timeout = limits or aiohttp.ClientTimeout(
            connect=self.connect_timeout, sock_connect=self.connect_timeout
        )
        headers = await self._headers(None, accept)
        async with self.session.get(
            path, params=query or None, headers=headers, timeout=timeout
        ) as response:
            yield response

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
