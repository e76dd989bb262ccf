"""When did the API server last answer each watch?

Every watch of the operator reports here: the child informers (kube/informer.py) and kopf's
own watches (runtime/watchhealth.py wraps kopf's request function). /healthz reads it to fail
when a watch has gone unanswered for too long, so Kubernetes restarts a wedged operator.
"""

from __future__ import annotations

import time

from agentfleet.telemetry import metrics


class WatchLiveness:
    """Resource path (e.g. /apis/apps/v1/deployments) -> monotonic time of the last answer."""

    def __init__(self) -> None:
        self.last_answer: dict[str, float] = {}

    def answered(self, resource: str) -> None:
        self.last_answer[resource] = time.monotonic()
        metrics.WATCH_CONNECTED.labels(resource).set_to_current_time()

    def failed(self, resource: str) -> None:
        metrics.WATCH_FAILURES.labels(resource).inc()

    def forget(self, resource: str) -> None:
        """Not watched any more (its CRD went away): nothing to wait for."""
        self.last_answer.pop(resource, None)

    def stale(self, after_seconds: float, now: float | None = None) -> list[str]:
        """Resources whose watch has not been answered for longer than `after_seconds`."""
        now = time.monotonic() if now is None else now
        return sorted(r for r, t in self.last_answer.items() if now - t > after_seconds)
