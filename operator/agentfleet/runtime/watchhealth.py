"""Is every kopf watch alive? kopf reconnects dead watches itself (server, client, connect
and inactivity timeouts); this records in the operator's WatchLiveness, per watched resource,
when the API server last answered a watch request, so /healthz can fail when that stops (the
API server is unreachable from this Pod, or a watch is wedged in a way the timeouts do not
catch) and Kubernetes restarts us.

kopf has no hook for this, so its one request function is wrapped (kopf is pinned in the lock
file; tests/unit/test_watchhealth.py fails if the wrapped function changes shape).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from kopf._cogs.clients import api as kopf_api

from agentfleet.kube.liveness import WatchLiveness

_original: Callable[..., Any] | None = None
_liveness = WatchLiveness()


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
        _liveness.failed(resource)
        raise
    _liveness.answered(resource)
    return response


def install(liveness: WatchLiveness) -> None:
    """Report kopf's watch answers to `liveness` (once per process: kopf's function is
    module-level)."""
    global _original, _liveness
    _liveness = liveness
    if _original is None:
        _original = kopf_api.request
        kopf_api.request = _request
