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
from collections.abc import Callable
from typing import Any

import aiohttp

from agentfleet.kube.backoff import Backoff
from agentfleet.kube.client import ApiError, Kube, Ref
from agentfleet.kube.liveness import WatchLiveness

log = logging.getLogger(__name__)

# (event type, object) -> None. Types: ADDED, MODIFIED, DELETED. Must be cheap and
# synchronous: it runs on the event loop between two lines of the stream.
Handler = Callable[[str, dict[str, Any]], None]


class Informer:
    def __init__(
        self,
        kube: Kube,
        api_version: str,
        kind: str,
        plural: str,
        label_selector: str,
        handler: Handler,
        namespaces: tuple[str, ...] = (),
        page_size: int = 500,
        server_timeout: int = 300,
        inactivity_seconds: float = 70.0,
        retry_seconds: float = 30.0,
        backoff: Backoff = Backoff(),
        liveness: WatchLiveness | None = None,
    ) -> None:
        self.kube = kube
        self.api_version, self.kind, self.plural = api_version, kind, plural
        self.label_selector = label_selector
        self.handler = handler
        self.namespaces = namespaces
        self.page_size = page_size
        self.server_timeout = server_timeout
        self.inactivity = inactivity_seconds
        self.retry_seconds = retry_seconds  # how often an unserved resource is tried again
        self.backoff = backoff
        self.liveness = liveness or WatchLiveness()
        self.synced = asyncio.Event()
        self._listed: set[str] = set()  # paths whose first list finished (or is unserved)
        self._wakeup = asyncio.Event()
        # What a DELETED callback needs of each object seen, by "namespace/name", as compact
        # JSON (thousands of them).
        self.known: dict[str, bytes] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _refs(self) -> list[Ref]:
        """The collections watched: every namespace at once, or each one named."""
        namespaces = self.namespaces or ("",)
        return [Ref(self.api_version, self.plural, ns, "", self.kind) for ns in namespaces]

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(ref), name=f"informer {ref.collection_path}")
            for ref in self._refs()
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
        if len(self._listed) == len(self._refs()):
            self.synced.set()

    async def _run(self, ref: Ref) -> None:
        """List, then watch from where the list left off, again and again; list anew only
        when the watch's version expired (410) or the resource stopped being served. Failures
        in a row wait longer and longer (backoff.py)."""
        path = ref.collection_path
        failures = 0
        while True:
            try:
                version = await self._list(ref)
            except asyncio.CancelledError:
                raise
            except ApiError as error:
                if error.not_found:  # not served: its CRD is not installed (yet)
                    self.liveness.forget(path)
                    self._mark_listed(path)
                    await self._pause(self.retry_seconds)
                    continue
                failures = await self._failed(path, f"listing failed ({error})", failures)
                continue
            except Exception:  # an informer must never die: the operator would go blind
                log.exception("listing %s failed unexpectedly", path)
                failures = await self._failed(path, "listing failed", failures)
                continue
            self._mark_listed(path)
            failures = 0
            while True:
                try:
                    version = await self._watch(ref, version)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except ApiError as error:
                    if error.not_found or error.gone:  # not served any more, or a version
                        break  # too old to watch from (compacted): list again
                    failures = await self._failed(path, f"watch failed ({error})", failures)
                except (TimeoutError, aiohttp.ClientError, ValueError) as error:
                    # A broken connection: watch again from the same version.
                    failures = await self._failed(path, f"watch ended ({error!r})", failures)
                except Exception:  # an informer must never die: the operator would go blind
                    log.exception("watching %s failed unexpectedly; listing again", path)
                    await self._pause(self.backoff.delay(failures))
                    break

    async def _failed(self, path: str, what: str, failures: int) -> int:
        """Log and count a failure, wait its backoff; the count of failures in a row."""
        delay = self.backoff.delay(failures)
        log.warning("%s %s; retrying in %.1fs", path, what, delay)
        self.liveness.failed(path)
        await self._pause(delay)
        return failures + 1

    async def _pause(self, seconds: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    async def _list(self, ref: Ref) -> str:
        """Every object, a page at a time; those we knew that are gone become DELETED."""
        path = ref.collection_path
        timeout = aiohttp.ClientTimeout(
            total=self.server_timeout, sock_connect=self.kube.connect_timeout
        )
        seen: set[str] = set()
        cont = ""
        while True:
            query = [("labelSelector", self.label_selector), ("limit", str(self.page_size))]
            if cont:
                query.append(("continue", cont))
            page = await self.kube.request("GET", ref, query=query, limits=timeout)
            self._answered(path)
            for item in page.get("items") or []:
                item.setdefault("apiVersion", self.api_version)
                item.setdefault("kind", self.kind)
                seen.add(self._remember(item))
                self.handler("ADDED", item)
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                break
        prefix = f"{ref.namespace}/" if ref.namespace else ""
        for key in [k for k in self.known if k.startswith(prefix) and k not in seen]:
            self.handler("DELETED", json.loads(self.known.pop(key)))
        return str(meta.get("resourceVersion") or "")

    async def _watch(self, ref: Ref, version: str) -> str:
        """One watch request, until the server ends it; returns the last resourceVersion."""
        path = ref.collection_path
        query = [
            ("allowWatchBookmarks", "true"),
            ("labelSelector", self.label_selector),
            ("timeoutSeconds", str(self.server_timeout)),
        ]
        if version:
            query.append(("resourceVersion", version))
        timeout = aiohttp.ClientTimeout(
            total=self.server_timeout + 30,
            sock_connect=self.kube.connect_timeout,
            sock_read=self.inactivity,  # no event or bookmark this long: a dead watch
        )
        events = self.kube.watch(ref, query, limits=timeout, opened=lambda: self._answered(path))
        try:
            async with contextlib.aclosing(events):
                async for kind, obj in events:
                    self._answered(path)
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
