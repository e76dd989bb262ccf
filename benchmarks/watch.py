"""List and watch collections from a background thread, timing each event on arrival.

The harness learns when things happen from watches, as a controller would, instead of
polling lists (which would load the API server it measures). One thread runs one asyncio
loop with one HTTP session (agentfleet.kube.transport, the admin's kubeconfig); each
collection is listed in pages, then watched from the list's resourceVersion with bookmarks,
and listed again when the API server says the version is gone (410). Handlers run on that
thread, get the harness's monotonic clock at the moment the event was read, and must be
cheap; they keep their own locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from agentfleet.kube import config as kube_config
from agentfleet.kube.transport import Transport
from benchmarks.kube import BenchError

log = logging.getLogger(__name__)

# (event type: ADDED, MODIFIED, DELETED; the object; monotonic time it arrived)
Handler = Callable[[str, dict[str, Any], float], None]


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


class Busy(Exception):
    """429: the API server asks to come back later, e.g. while the watch cache of a kind
    whose CRD was just created is still initializing ("storage is (re)initializing")."""

    def __init__(self, retry_after: str | None) -> None:
        super().__init__(retry_after)
        try:
            self.seconds = min(max(float(retry_after or 1), 0.1), 5.0)
        except ValueError:
            self.seconds = 1.0


BUSY_LIMIT = 120.0  # seconds of 429s in a row before a watch counts as failed


class Watches:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="watches", daemon=True)
        self._transport: Transport | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        cluster = asyncio.run_coroutine_threadsafe(
            kube_config.load(str(self.kubeconfig)), self._loop
        ).result(timeout=60)
        self._transport = Transport(cluster, pool_size=32, request_timeout=120.0)

    def add(self, path: str, handler: Handler, label_selector: str = "") -> int:
        """Start listing and watching `path`; returns when the first list was handled, with
        a handle for `remove`."""
        listed = threading.Event()

        def schedule() -> int:
            task = self._loop.create_task(self._run(path, handler, label_selector, listed))
            self._tasks[id(task)] = task
            return id(task)

        handle: int = self._call(schedule)
        if not listed.wait(timeout=300):
            raise BenchError(f"listing {path} took more than 300 s")
        self.check()
        return handle

    def remove(self, handle: int) -> None:
        def cancel() -> None:
            task = self._tasks.pop(handle, None)
            if task:
                task.cancel()

        self._call(cancel)

    def check(self) -> None:
        if self.error is not None:
            raise BenchError(f"a watch failed: {self.error!r}")

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            if self._transport:
                await self._transport.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _call(self, function: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=60)

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise BenchError("the watches have not started")
        return self._transport

    async def _run(
        self, path: str, handler: Handler, selector: str, listed: threading.Event
    ) -> None:
        base = [("labelSelector", selector)] if selector else []
        version = ""
        failures = 0
        busy = 0.0
        while True:
            try:
                if not version:
                    version = await self._list(path, base, handler)
                    listed.set()
                version = await self._watch(path, base, version, handler)
                failures, busy = 0, 0.0
            except asyncio.CancelledError:
                raise
            except Gone:
                version = ""
            except Busy as waiting:
                busy += waiting.seconds
                if busy > BUSY_LIMIT:
                    self.error = BenchError(f"{path}: 429 for {busy:.0f} s")
                    listed.set()
                    return
                await asyncio.sleep(waiting.seconds)
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                failures += 1
                if failures > 20:  # a dead watch must fail the waits, not hang them
                    self.error = error
                    listed.set()
                    return
                log.warning("watch of %s failed (%s); again", path, error)
                await asyncio.sleep(0.5)
            except BaseException as error:
                self.error = error
                listed.set()
                raise

    async def _list(self, path: str, base: list[tuple[str, str]], handler: Handler) -> str:
        token = ""
        while True:
            query = [*base, ("limit", "500"), *([("continue", token)] if token else [])]
            status, _, body = await self.transport.request("GET", path, query=query)
            if status == 410:
                token = ""  # the continue token expired: start over
                continue
            if status == 429:
                raise Busy(None)
            if status >= 300:
                raise BenchError(f"GET {path}: {status} {body[:300]!r}")
            page = json.loads(body)
            now = time.monotonic()
            for item in page.get("items") or []:
                handler("ADDED", item, now)
            token = page["metadata"].get("continue", "")
            if not token:
                return str(page["metadata"]["resourceVersion"])

    async def _watch(
        self, path: str, base: list[tuple[str, str]], version: str, handler: Handler
    ) -> str:
        query = [
            *base,
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", version),
            ("timeoutSeconds", "240"),
        ]
        async with self.transport.stream(
            path, query=query, limits=aiohttp.ClientTimeout(sock_read=300)
        ) as response:
            if response.status == 410:
                raise Gone
            if response.status == 429:
                raise Busy(response.headers.get("Retry-After"))
            if response.status >= 300:
                raise BenchError(f"watch {path}: {response.status}")
            buffer = b""
            # Objects the operator shares grow large: read chunks, not aiohttp's 64 KiB lines.
            async for chunk in response.content.iter_chunked(256 * 1024):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, body = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if body.get("code") == 410:
                            raise Gone
                        raise BenchError(f"watch {path}: {body.get('message')}")
                    with contextlib.suppress(KeyError, TypeError):
                        version = body["metadata"]["resourceVersion"]
                    if kind != "BOOKMARK":
                        handler(kind, body, time.monotonic())
        return version
