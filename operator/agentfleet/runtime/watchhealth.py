"""Is every watch alive? kopf reconnects dead watches itself (server, client, connect and
inactivity timeouts); this records, per watched resource, when the API server last answered a
watch request, so /healthz can fail when that stops (the API server is unreachable from this
Pod, or a watch is wedged in a way the timeouts do not catch) and Kubernetes restarts us.

kopf has no hook for this, so its one request function is wrapped (kopf is pinned in the lock
file; tests/unit/test_watchhealth.py fails if the wrapped function changes shape).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from kopf._cogs.clients import api as kopf_api

from agentfleet.telemetry import metrics

# Resource path (e.g. /apis/apps/v1/deployments) -> monotonic time of the last answer.
last_answer: dict[str, float] = {}
_original: Callable[..., Any] | None = None


def resource_of(url: str) -> str | None:
    """The resource a watch URL is for, or None if the URL is not a watch."""
    parts = urllib.parse.urlsplit(url)
    if "watch=true" not in parts.query:
        return None
    return parts.path


async def _request(method: str, url: str, **kwargs: Any) -> Any:
    assert _original is not None
    resource = resource_of(url)
    if resource is None:
        return await _original(method, url, **kwargs)
    try:
        response = await _original(method, url, **kwargs)
    except BaseException:
        metrics.WATCH_FAILURES.labels(resource).inc()
        raise
    last_answer[resource] = time.monotonic()
    metrics.WATCH_CONNECTED.labels(resource).set_to_current_time()
    return response


def install() -> None:
    global _original
    if _original is None:
        _original = kopf_api.request
        kopf_api.request = _request


def stale(after_seconds: float, now: float | None = None) -> list[str]:
    """Resources whose watch has not been answered for longer than `after_seconds`."""
    now = time.monotonic() if now is None else now
    return sorted(r for r, t in last_answer.items() if now - t > after_seconds)
