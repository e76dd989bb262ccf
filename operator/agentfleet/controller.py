"""Workers that drain the work queue into the reconciler, with controller-runtime's metrics."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from agentfleet import metrics
from agentfleet.reconciler import Key, Reconciler
from agentfleet.workqueue import WorkQueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OperatorConfig:
    """Knobs of one operator process (set from the command line)."""

    workers: int = 4
    metrics_address: str = "0.0.0.0"
    metrics_port: int = 8080  # 0 disables the metrics endpoint
    cluster_domain: str = "cluster.local"


class Controller:
    def __init__(self, reconciler: Reconciler, workers: int) -> None:
        self.reconciler = reconciler
        self.queue: WorkQueue[Key] = WorkQueue(metrics.CONTROLLER)
        self.workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        metrics.MAX_CONCURRENT.labels(metrics.CONTROLLER).set(self.workers)
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
            for i in range(self.workers)
        ]

    async def stop(self) -> None:
        self.queue.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.reconcile_once(key)
            finally:
                self.queue.done(key)

    async def reconcile_once(self, key: Key) -> None:
        """Reconcile a key; on failure count it, log it with its traceback and retry later.
        Catching everything here is the controller contract, not a way to hide errors: one
        agent's failure must never stop the workers that serve the other thousands."""
        active = metrics.ACTIVE_WORKERS.labels(metrics.CONTROLLER)
        active.inc()
        started = time.perf_counter()
        try:
            requeue_after = await self.reconciler.reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.RECONCILE_ERRORS.labels(metrics.CONTROLLER).inc()
            metrics.RECONCILE_TOTAL.labels(metrics.CONTROLLER, "error").inc()
            delay = self.queue.add_rate_limited(key)
            log.exception("reconcile of %s/%s failed; retrying in %.2fs", *key, delay)
        else:
            self.queue.forget(key)
            if requeue_after:
                self.queue.add_after(key, requeue_after)
            result = "requeue_after" if requeue_after else "success"
            metrics.RECONCILE_TOTAL.labels(metrics.CONTROLLER, result).inc()
        finally:
            active.dec()
            metrics.RECONCILE_TIME.labels(metrics.CONTROLLER).observe(time.perf_counter() - started)
