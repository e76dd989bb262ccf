"""/healthz: a queue that stopped draining makes the operator unhealthy, a busy one does not."""

import time
from types import SimpleNamespace
from typing import Any

import pytest

from agentfleet.kube.liveness import WatchLiveness
from agentfleet.kube.workqueue import WorkQueue
from agentfleet.runtime import health


def checker(queue: WorkQueue[Any], last_progress: float) -> health.Health:
    controller: Any = SimpleNamespace(queue=queue, last_progress=last_progress)
    return health.Health(controller, unhealthy_after=60, watches=WatchLiveness())


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


async def test_a_queue_that_waits_while_no_reconcile_finishes_is_unhealthy(
    clock: list[float],
) -> None:
    queue: WorkQueue[Any] = WorkQueue("test")
    queue.add(("ns", "coding"))
    check = checker(queue, last_progress=clock[0])
    assert check.problems() == []
    clock[0] += 61
    assert check.problems() == [
        "an agent has waited 61s in the work queue and no reconcile finished for 61s"
    ]
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 500


async def test_a_long_queue_that_still_drains_is_healthy(clock: list[float]) -> None:
    queue: WorkQueue[Any] = WorkQueue("test")
    queue.add(("ns", "coding"))
    clock[0] += 300  # waited long: a burst of thousands of agents
    check = checker(queue, last_progress=clock[0] - 1)  # but reconciles keep finishing
    assert check.problems() == []
    assert (await check.healthz(None)).status == 200  # type: ignore[arg-type]
