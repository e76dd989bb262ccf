"""/healthz and /readyz: the small HTTP server the kubelet's probes ask, for the operator
(runtime/health.py) and the node agent (nodeagent/publish.py) alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Probe = Callable[[web.Request], Awaitable[web.Response]]
LIVENESS_PATH = "/healthz"  # our own processes' (the agents' are in api/constants.py)
READINESS_PATH = "/readyz"


async def serve(address: str, port: int, healthz: Probe, readyz: Probe) -> web.AppRunner:
    """Serve both probes until the returned runner is cleaned up."""
    app = web.Application()
    app.add_routes([web.get(LIVENESS_PATH, healthz), web.get(READINESS_PATH, readyz)])
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, address, port).start()
    return runner
