"""/healthz and /readyz of the operator process.

Liveness fails (HTTP 500 with the reasons) when restarting would help: a watch has not been
answered by the API server for longer than the threshold, or an agent has waited in the work
queue that long while no reconcile finished (the workers are wedged). Readiness additionally
is the same check: an operator serves no traffic, so "ready" only matters for rollouts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiohttp import web

from agentfleet.controllers.workers import Controller
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.telemetry import probes


@dataclass
class Health:
    controller: Controller
    unhealthy_after: float
    watches: WatchLiveness

    def problems(self) -> list[str]:
        found = [
            f"watch of {resource} not answered for more than {self.unhealthy_after:.0f}s"
            for resource in self.watches.stale(self.unhealthy_after)
        ]
        waiting = self.controller.queue.oldest_wait()
        idle = time.monotonic() - self.controller.last_progress
        if waiting > self.unhealthy_after and idle > self.unhealthy_after:
            found.append(
                f"an agent has waited {waiting:.0f}s in the work queue and no reconcile"
                f" finished for {idle:.0f}s"
            )
        return found

    async def healthz(self, _: web.Request) -> web.Response:
        found = self.problems()
        if found:
            return web.json_response({"status": "unhealthy", "problems": found}, status=500)
        return web.json_response({"status": "ok"})

    async def serve(self, address: str, port: int) -> web.AppRunner:
        return await probes.serve(address, port, self.healthz, self.healthz)
