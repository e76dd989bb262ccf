"""A work queue with client-go's guarantees, on asyncio.

kopf calls handlers per event; a level-triggered controller wants per-object *keys*: one
queued entry per key however many events arrive, never two workers on the same key, a key
that changes while it is being reconciled is reconciled again afterwards, and failures are
retried with capped exponential backoff (backoff.py). This is that queue. It must only be
touched from the event loop's thread (asyncio objects are not thread-safe): every method checks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Hashable
from typing import Generic, TypeVar

from agentfleet.kube.backoff import Backoff
from agentfleet.telemetry import metrics

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, name: str, backoff: Backoff = Backoff()) -> None:
        self.name = name
        self.backoff = backoff
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: dict[K, float] = {}  # waiting to be processed -> since when (monotonic)
        self._processing: set[K] = set()  # held by a worker right now
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        asyncio.get_running_loop()  # raises when called from another thread
        metrics.WORKQUEUE_ADDS.labels(self.name).inc()
        if key in self._dirty:
            return
        self._dirty[key] = time.monotonic()
        if key not in self._processing:
            self._ready.put_nowait(key)
        metrics.WORKQUEUE_DEPTH.labels(self.name).set(len(self._dirty))

    def add_after(self, key: K, delay: float) -> None:
        """Add later; an earlier pending timer for the same key wins."""
        loop = asyncio.get_running_loop()
        existing = self._timers.get(key)
        if existing and existing.when() <= loop.time() + delay:
            return
        if existing:
            existing.cancel()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: K) -> float:
        """Retry a failed key after the backoff of its failures so far."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = self.backoff.delay(failures)
        metrics.WORKQUEUE_RETRIES.labels(self.name).inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts from the base delay again."""
        self._failures.pop(key, None)

    def drop(self, key: K) -> None:
        """The object is gone: no timers or failure counts survive it."""
        timer = self._timers.pop(key, None)
        if timer:
            timer.cancel()
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._ready.get()
        self._dirty.pop(key, None)
        self._processing.add(key)
        metrics.WORKQUEUE_DEPTH.labels(self.name).set(len(self._dirty))
        return key

    def done(self, key: K) -> None:
        asyncio.get_running_loop()
        self._processing.discard(key)
        if key in self._dirty:  # changed while we were busy: go round again
            self._ready.put_nowait(key)

    def oldest_wait(self) -> float:
        """Seconds the longest-waiting key has been queued (0 when empty)."""
        oldest = next(iter(self._dirty.values()), None)  # dicts keep insertion order
        return 0.0 if oldest is None else time.monotonic() - oldest

    def __len__(self) -> int:
        return len(self._dirty)

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
