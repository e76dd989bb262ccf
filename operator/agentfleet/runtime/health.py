"""/healthz and /readyz of the operator process.

Liveness fails (HTTP 500 with the reasons) only when restarting would help:
- a watch has not been answered for longer than the threshold *while the API server answers*
  (a fresh request to its /readyz succeeds): the watch is wedged in this process. When the
  API server does not answer, or says it is not ready (etcd down), a restart would only
  start an operator that cannot list anything either, so liveness stays 200 and says so:
  an outage must not crash-loop the operator through it. Once the API server is back, the
  watches get `reconnect_grace` to reconnect (informers back off up to 30 s between tries,
  as client-go's reflectors do) before a silent one counts as wedged.
- the leader's work queue has an agent waiting that long while no reconcile finished (the
  workers are wedged). A follower's queue does not drain by design, and is not judged.

Readiness is 200 once the child informers have listed (a new replica of a rolling update
is ready when its caches are warm, so it can take over at once), and while liveness is.
Both answer JSON that says whether this replica leads, so leader and follower can be told
apart without failing the follower's readiness (the `agentfleet_leader` metric says it too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from agentfleet.controllers.workers import Controller
from agentfleet.kube.liveness import WatchLiveness
from agentfleet.runtime.leader import Leadership
from agentfleet.telemetry import probes


@dataclass
class Health:
    controller: Controller
    unhealthy_after: float
    watches: WatchLiveness
    leadership: Leadership
    # Does the API server answer and say it is ready? (kube.client.Kube.server_ready)
    api_answers: Callable[[], Awaitable[bool]] | None = None
    synced: Sequence[asyncio.Event] = ()
    probe_every: float = 5.0  # one probe serves the answers of this many seconds
    reconnect_grace: float = 35.0
    _probed: tuple[float, bool] | None = field(default=None, repr=False)
    _back_at: float | None = field(default=None, repr=False)  # the API server answered again

    async def _api_answers(self) -> bool:
        if self.api_answers is None:
            return True
        now = time.monotonic()
        if self._probed is None or now - self._probed[0] > self.probe_every:
            answers = await self.api_answers()
            if answers and self._probed is not None and not self._probed[1]:
                self._back_at = now
            self._probed = (now, answers)
        return self._probed[1]

    async def check(self) -> tuple[list[str], list[str]]:
        """(problems a restart would fix, notes that explain why something is slow)."""
        problems: list[str] = []
        notes: list[str] = []
        stale = self.watches.stale(self.unhealthy_after)
        if stale:
            silent = ", ".join(stale)
            answers = await self._api_answers()
            back = time.monotonic() - self._back_at if self._back_at is not None else None
            if answers and back is not None and back < self.reconnect_grace:
                notes.append(
                    f"the API server answers again since {back:.0f}s; the watch of {silent}"
                    " is reconnecting"
                )
            elif answers:
                problems.append(
                    f"watch of {silent} not answered for more than {self.unhealthy_after:.0f}s"
                    " while the API server answers"
                )
            else:
                notes.append(
                    f"the API server does not answer or is not ready (watch of {silent} silent"
                    f" for more than {self.unhealthy_after:.0f}s): a restart would not help"
                )
        if self.leadership.leading_for() > self.unhealthy_after:
            waiting = self.controller.queue.oldest_wait()
            idle = time.monotonic() - self.controller.last_progress
            if waiting > self.unhealthy_after and idle > self.unhealthy_after:
                problems.append(
                    f"an agent has waited {waiting:.0f}s in the work queue and no reconcile"
                    f" finished for {idle:.0f}s"
                )
        return problems, notes

    def _body(self, status: str, **extra: Any) -> dict[str, Any]:
        return {"status": status, **self.leadership.describe(), **extra}

    async def healthz(self, _: web.Request) -> web.Response:
        problems, notes = await self.check()
        if problems:
            body = self._body("unhealthy", problems=problems, notes=notes)
            return web.json_response(body, status=500)
        return web.json_response(self._body("ok", **({"notes": notes} if notes else {})))

    async def readyz(self, request: web.Request) -> web.Response:
        if not all(event.is_set() for event in self.synced):
            return web.json_response(self._body("caches not listed yet"), status=503)
        return await self.healthz(request)

    async def serve(self, address: str, port: int) -> web.AppRunner:
        return await probes.serve(address, port, self.healthz, self.readyz)
