"""List and watch one kind of child, the way client-go's informers do, without kopf.

kopf gives every watched object a worker that holds the object's body until every index of
the operator is filled; with tens of thousands of children that is most of the operator's
memory at start-up, and kopf's per-event machinery was about 40% of its CPU in a 300-agent
burst (py-spy). The children need none of it: an informer lists them in pages (server-side
filtered by our label), then watches from the list's resourceVersion with bookmarks, hands
each event to a callback that keeps a small record, and relists when the watch expires
(410). Connect, read and inactivity timeouts end a dead watch; each answer is recorded for
/healthz. A resource the API server does not serve (an optional CRD not installed) counts as
listed and empty until `wake()` (its CRD appeared) or the next retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from agentfleet.kube.liveness import WatchLiveness
from agentfleet.telemetry import metrics

log = logging.getLogger(__name__)

# (event type, object) -> None. Types: ADDED, MODIFIED, DELETED. Must be cheap and
# synchronous: it runs on the event loop between two lines of the stream.
Handler = Callable[[str, dict[str, Any]], None]


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Informer:
    def __init__(
        self,
        api: client.ApiClient,
        api_version: str,
        kind: str,
        plural: str,
        label_selector: str,
        handler: Handler,
        namespaces: tuple[str, ...] = (),
        page_size: int = 500,
        server_timeout: int = 300,
        inactivity_seconds: float = 70.0,
        connect_timeout: float = 10.0,
        retry_seconds: float = 30.0,
        liveness: WatchLiveness | None = None,
    ) -> None:
        self.api = api
        self.api_version, self.kind, self.plural = api_version, kind, plural
        self.label_selector = label_selector
        self.handler = handler
        self.namespaces = namespaces
        self.page_size = page_size
        self.server_timeout = server_timeout
        self.inactivity = inactivity_seconds
        self.connect_timeout = connect_timeout
        self.retry_seconds = retry_seconds
        self.liveness = liveness or WatchLiveness()
        self.synced = asyncio.Event()
        self._listed: set[str] = set()  # paths whose first list finished (or is unserved)
        self._wakeup = asyncio.Event()
        # Every object seen, by "namespace/name", with what a DELETED callback needs.
        # What a DELETED callback needs of each object, as compact JSON (thousands of them).
        self.known: dict[str, bytes] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _paths(self) -> list[str]:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if not self.namespaces:
            return [f"{base}/{self.plural}"]
        return [f"{base}/namespaces/{ns}/{self.plural}" for ns in self.namespaces]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(path), name=f"informer {path}") for path in self._paths()
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self) -> None:
        """The resource may be served now (its CRD appeared): try listing it at once."""
        self._wakeup.set()

    def _mark_listed(self, path: str) -> None:
        self._listed.add(path)
        if len(self._listed) == len(self._paths()):
            self.synced.set()

    async def _run(self, path: str) -> None:
        """List, then watch from where the list left off, again and again; list anew only
        when the watch's version expired (410) or the resource stopped being served."""
        while True:
            try:
                version = await self._list(path)
            except asyncio.CancelledError:
                raise
            except ApiException as error:
                if error.status == 404:  # not served: its CRD is not installed (yet)
                    self.liveness.forget(path)
                    self._mark_listed(path)
                    await self._pause(self.retry_seconds)
                    continue
                await self._failed(path, f"listing failed ({error.status})", 1.0)
                continue
            except (TimeoutError, aiohttp.ClientError, ValueError) as error:
                await self._failed(path, f"listing failed ({error!r})", 1.0)
                continue
            except Exception:  # an informer must never die: the operator would go blind
                log.exception("listing %s failed unexpectedly", path)
                await self._failed(path, "listing failed", 5.0)
                continue
            self._mark_listed(path)
            delay = 0.5
            while True:
                try:
                    version = await self._watch(path, version)
                    delay = 0.5
                except asyncio.CancelledError:
                    raise
                except Gone:
                    break
                except ApiException as error:
                    if error.status in (404, 410):  # not served any more, or a version too
                        break  # old to watch from (compacted): list again
                    await self._failed(path, f"watch failed ({error.status})", delay)
                    delay = min(delay * 2, 30.0)
                except (TimeoutError, aiohttp.ClientError, ValueError) as error:
                    # A broken connection: watch again from the same version.
                    await self._failed(path, f"watch ended ({error!r})", delay)
                    delay = min(delay * 2, 30.0)
                except Exception:  # an informer must never die: the operator would go blind
                    log.exception("watching %s failed unexpectedly; listing again", path)
                    await self._pause(delay)
                    break

    async def _failed(self, path: str, what: str, delay: float) -> None:
        log.warning("%s %s; retrying in %.1fs", path, what, delay)
        metrics.WATCH_FAILURES.labels(path).inc()
        await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _open(
        self, path: str, query: list[tuple[str, str]], limits: aiohttp.ClientTimeout
    ) -> Any:
        """A GET whose body the caller reads (a page, or a watch's stream of lines). Without
        preloading, the client checks no status: a refusal is raised here, so that a resource
        the API server does not serve (404: an optional CRD not installed) is told apart from
        a broken connection instead of failing to parse "404 page not found" for ever."""
        response = await self.api.call_api(
            path,
            "GET",
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _preload_content=False,
            _request_timeout=limits,
        )
        if not 200 <= response.status <= 299:
            async with response:
                body = await response.read()
            error = ApiException(status=response.status, reason=response.reason)
            error.body = body[:1024].decode(errors="replace")
            raise error
        return response

    async def _get(self, path: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(
            total=self.server_timeout, sock_connect=self.connect_timeout
        )
        response = await self._open(path, query, timeout)
        async with response:
            page: dict[str, Any] = json.loads(await response.read())
        self._answered(path)
        return page

    async def _list(self, path: str) -> str:
        """Every object, a page at a time; those we knew that are gone become DELETED."""
        seen: set[str] = set()
        cont = ""
        while True:
            query = [("labelSelector", self.label_selector), ("limit", str(self.page_size))]
            if cont:
                query.append(("continue", cont))
            page = await self._get(path, query)
            for item in page.get("items") or []:
                item.setdefault("apiVersion", self.api_version)
                item.setdefault("kind", self.kind)
                seen.add(self._remember(item))
                self.handler("ADDED", item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                break
        prefix = path_namespace_prefix(path)
        for key in [k for k in self.known if k.startswith(prefix) and k not in seen]:
            self.handler("DELETED", json.loads(self.known.pop(key)))
        return str(meta.get("resourceVersion") or "")

    async def _watch(self, path: str, version: str) -> str:
        """One watch request, until the server ends it; returns the last resourceVersion."""
        query = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("labelSelector", self.label_selector),
            ("timeoutSeconds", str(self.server_timeout)),
        ]
        if version:
            query.append(("resourceVersion", version))
        timeout = aiohttp.ClientTimeout(
            total=self.server_timeout + 30,
            sock_connect=self.connect_timeout,
            sock_read=self.inactivity,  # no event or bookmark this long: a dead watch
        )
        response = await self._open(path, query, timeout)
        async with response:
            self._answered(path)
            try:
                async for event in self._events(path, response):
                    kind, obj = event
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        self.known.pop(key_of(obj), None)
                    else:
                        self._remember(obj)
                    self.handler(kind, obj)
            except aiohttp.SocketTimeoutError:
                # No event and no bookmark for a while (the API server sends no bookmarks on
                # some empty watches): watch again from here; a dead server fails the next
                # request, which /healthz sees.
                log.debug("watch of %s was silent for %.0fs; watching again", path, self.inactivity)
        return version

    async def _events(
        self, path: str, response: aiohttp.ClientResponse
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        async for line in json_lines(response.content):
            event = json.loads(line)
            kind, obj = str(event.get("type")), event.get("object") or {}
            self._answered(path)
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise ValueError(f"watch error: {obj.get('message')}")
            yield kind, obj

    def _remember(self, obj: dict[str, Any]) -> str:
        """Keep just what a DELETED callback needs (found missing on a relist)."""
        meta = obj.get("metadata") or {}
        key = key_of(obj)
        stub = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "ownerReferences": meta.get("ownerReferences") or [],
            },
        }
        self.known[key] = json.dumps(stub, separators=(",", ":")).encode()
        return key

    def _answered(self, path: str) -> None:
        self.liveness.answered(path)


def key_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def path_namespace_prefix(path: str) -> str:
    """The key prefix of the objects a path lists: 'ns/' for a namespaced path, '' else."""
    parts = path.split("/")
    return f"{parts[parts.index('namespaces') + 1]}/" if "namespaces" in parts else ""


async def json_lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The stream's lines, however long (aiohttp's own line reader stops at 64 KiB)."""
    buffer = b""
    async for chunk in content.iter_chunked(256 * 1024):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer
