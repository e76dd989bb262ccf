"""Workers that drain the work queue into the reconciler, with controller-runtime's metrics."""

from __future__ import annotations

import asyncio
import logging
import random
import time

from agentfleet.api.config import OperatorConfig
from agentfleet.controllers.cache import Key
from agentfleet.controllers.reconciler import Reconciler
from agentfleet.kube.backoff import Backoff
from agentfleet.kube.workqueue import WorkQueue
from agentfleet.telemetry import logs, metrics, tracing

log = logging.getLogger(__name__)


class Controller:
    def __init__(self, reconciler: Reconciler, config: OperatorConfig) -> None:
        self.reconciler = reconciler
        self.config = config
        self.queue: WorkQueue[Key] = WorkQueue(
            metrics.CONTROLLER, Backoff(config.retry_base_seconds, config.max_retry_seconds)
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._ready: list[asyncio.Event] = []
        # New agents to acknowledge while a burst keeps the workers busy (see acknowledge),
        # each with the loop time from which it is due.
        self.acks: asyncio.Queue[tuple[Key, float]] = asyncio.Queue()
        self.last_progress = time.monotonic()  # when a reconcile last finished

    def start(self, ready: list[asyncio.Event] | None = None) -> None:
        """Start the workers; they take keys once every `ready` event is set (the caches are
        filled), and keys queued meanwhile wait."""
        metrics.MAX_CONCURRENT.labels(metrics.CONTROLLER).set(self.config.workers)
        self._ready = ready or []
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
            for i in range(self.config.workers)
        ]
        # As many as the workers: under a burst of 10,000, two could not keep up with the
        # arrivals and a new agent waited 25 s for its Queued status.
        self._tasks += [
            asyncio.create_task(self._acknowledge(), name=f"acknowledge-worker-{i}")
            for i in range(self.config.workers)
        ]

    async def stop(self) -> None:
        self.queue.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self) -> None:
        for event in self._ready:
            await event.wait()
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile_once(key)
            finally:
                self.queue.done(key)
                self.last_progress = time.monotonic()

    def acknowledge(self, key: Key) -> None:
        """A new agent arrived behind a backlog: if no worker has reached it after
        `queued_status_after_seconds`, show it was seen. One status write more, paid only
        by agents that would otherwise show nothing for that long."""
        delay = self.config.queued_status_after_seconds
        if delay > 0 and len(self.queue) > 2 * self.config.workers:
            self.acks.put_nowait((key, asyncio.get_running_loop().time() + delay))

    async def _acknowledge(self) -> None:
        for event in self._ready:
            await event.wait()
        loop = asyncio.get_running_loop()
        while True:
            key, due = await self.acks.get()
            await asyncio.sleep(max(0.0, due - loop.time()))  # in order: dues only grow
            try:
                await self.reconciler.acknowledge(key, len(self.queue))
            except asyncio.CancelledError:
                raise
            except Exception:  # a courtesy: the reconcile writes the real status anyway
                log.warning("could not acknowledge %s/%s", *key, exc_info=True)

    def resync_delay(self) -> float:
        """About `resync_seconds`, jittered by ±10% so a fleet's resyncs spread out."""
        return self.config.resync_seconds * random.uniform(0.9, 1.1)

    async def reconcile_once(self, key: Key) -> None:
        """Reconcile a key; on failure count it, log it with its traceback and retry later.
        Catching everything here is the controller contract, not a way to hide errors: one
        agent's failure must never stop the workers that serve the other thousands. Each
        reconcile is one span (when tracing), and every line it logs names the agent."""
        with logs.about_agent(*key), tracing.agent_span("reconcile", *key) as span:
            outcome = await self._reconcile_once(key)
            tracing.annotate(span, **{"agentfleet.reconcile.result": outcome})

    async def _reconcile_once(self, key: Key) -> str:
        active = metrics.ACTIVE_WORKERS.labels(metrics.CONTROLLER)
        active.inc()
        started = time.perf_counter()
        outcome, gone = "error", False
        try:
            result = await self.reconciler.reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            tracing.record_error(error)
            metrics.RECONCILE_ERRORS.labels(metrics.CONTROLLER).inc()
            metrics.RECONCILE_TOTAL.labels(metrics.CONTROLLER, "error").inc()
            delay = self.queue.add_rate_limited(key)
            log.exception("reconcile of %s/%s failed; retrying in %.2fs", *key, delay)
        else:
            if result.gone:
                self.queue.drop(key)
                outcome, gone = "success", True
            elif result.retry:
                delay = self.queue.add_rate_limited(key)
                log.info("%s/%s is waiting for the cluster; retrying in %.2fs", *key, delay)
                outcome = "requeue"
            else:
                self.queue.forget(key)
                if result.requeue_after:
                    self.queue.add_after(key, result.requeue_after)
                outcome = "requeue_after" if result.requeue_after else "success"
            if not result.gone and self.config.resync_seconds > 0:
                self.queue.add_after(key, self.resync_delay())
            metrics.RECONCILE_TOTAL.labels(metrics.CONTROLLER, outcome).inc()
        finally:
            active.dec()
            elapsed = time.perf_counter() - started
            metrics.RECONCILE_TIME.labels(metrics.CONTROLLER).observe(elapsed)
        if gone:  # not (or no longer) one of ours: nothing was reconciled
            return "gone"
        log.debug("reconciled %s/%s: %s in %.1f ms", *key, outcome, elapsed * 1000)
        return outcome
