"""A work queue with client-go's guarantees, on asyncio.

kopf calls handlers per event; a level-triggered controller wants per-object *keys*: one
queued entry per key however many events arrive, never two workers on the same key, a key
that changes while it is being reconciled is reconciled again afterwards, and failures are
retried with exponential backoff. This is that queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

from agentfleet import metrics

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, name: str, base_delay: float = 0.05, max_delay: float = 300.0) -> None:
        self.name = name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: set[K] = set()  # waiting to be processed
        self._processing: set[K] = set()  # held by a worker right now
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def add(self, key: K) -> None:
        metrics.WORKQUEUE_ADDS.labels(self.name).inc()
        if key in self._dirty:
            return
        self._dirty.add(key)
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
        """Retry a failed key after base*2^n seconds (n = failures so far), capped."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = float(min(self.base_delay * 2.0**failures, self.max_delay))
        metrics.WORKQUEUE_RETRIES.labels(self.name).inc()
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts from the base delay again."""
        self._failures.pop(key, None)

    async def get(self) -> K:
        key = await self._ready.get()
        self._dirty.discard(key)
        self._processing.add(key)
        metrics.WORKQUEUE_DEPTH.labels(self.name).set(len(self._dirty))
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:  # changed while we were busy: go round again
            self._ready.put_nowait(key)

    def __len__(self) -> int:
        return len(self._dirty)

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
