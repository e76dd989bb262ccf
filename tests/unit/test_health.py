"""/healthz and /readyz: restart only when it would help.

A queue that stopped draining makes the leader unhealthy, a busy one does not; a silent watch
makes the operator unhealthy only while the API server answers (a wedged watch), not while
the API server is away (a restart would not help, and would crash-loop the operator through
an outage); a follower's queue is not judged; readiness waits for the caches and tells
leader from follower without failing the follower."""

import asyncio
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from agentfleet.kube.liveness import WatchLiveness
from agentfleet.kube.workqueue import WorkQueue
from agentfleet.runtime import health
from agentfleet.runtime.leader import SoleReplica


class Follower:
    identity = "pod-b"
    leading = asyncio.Event()

    def leading_for(self) -> float:
        return 0.0

    def describe(self) -> dict[str, Any]:
        return {"identity": self.identity, "leader": False, "holder": "pod-a", "lease": "x/y"}


def checker(
    queue: WorkQueue[Any],
    last_progress: float,
    leadership: Any = None,
    watches: WatchLiveness | None = None,
    api_answers: bool = True,
    synced: tuple[asyncio.Event, ...] = (),
) -> health.Health:
    controller: Any = SimpleNamespace(queue=queue, last_progress=last_progress)
    if leadership is None:
        leadership = SoleReplica("pod-a")
        leadership.started = time.monotonic() - 3600  # leading for long
    probes: list[float] = []

    async def probe() -> bool:
        probes.append(time.monotonic())
        return api_answers

    check = health.Health(
        controller,
        unhealthy_after=60,
        watches=watches or WatchLiveness(),
        leadership=leadership,
        api_answers=probe,
        synced=synced,
    )
    check.probes = probes  # type: ignore[attr-defined]
    return check


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


def body(response: Any) -> dict[str, Any]:
    return dict(json.loads(response.body))


async def test_a_queue_that_waits_while_no_reconcile_finishes_is_unhealthy(
    clock: list[float],
) -> None:
    queue: WorkQueue[Any] = WorkQueue("test")
    queue.add(("ns", "coding"))
    check = checker(queue, last_progress=clock[0])
    assert await check.check() == ([], [])
    clock[0] += 61
    assert (await check.check())[0] == [
        "an agent has waited 61s in the work queue and no reconcile finished for 61s"
    ]
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 500


async def test_a_long_queue_that_still_drains_is_healthy(clock: list[float]) -> None:
    queue: WorkQueue[Any] = WorkQueue("test")
    queue.add(("ns", "coding"))
    clock[0] += 300  # waited long: a burst of thousands of agents
    check = checker(queue, last_progress=clock[0] - 1)  # but reconciles keep finishing
    assert await check.check() == ([], [])
    assert (await check.healthz(None)).status == 200  # type: ignore[arg-type]


async def test_a_followers_queue_does_not_drain_and_that_is_healthy(clock: list[float]) -> None:
    queue: WorkQueue[Any] = WorkQueue("test")
    queue.add(("ns", "coding"))
    check = checker(queue, last_progress=clock[0], leadership=Follower())
    clock[0] += 3600
    assert await check.check() == ([], [])
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 200
    assert body(response)["leader"] is False and body(response)["holder"] == "pod-a"


async def test_a_silent_watch_while_the_api_server_answers_is_a_wedge(clock: list[float]) -> None:
    watches = WatchLiveness()
    watches.answered("/apis/apps/v1/deployments")
    check = checker(WorkQueue("test"), clock[0], watches=watches, api_answers=True)
    clock[0] += 61
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 500
    assert body(response)["problems"] == [
        "watch of /apis/apps/v1/deployments not answered for more than 60s while the API"
        " server answers"
    ]


async def test_a_silent_watch_while_the_api_server_is_away_is_no_reason_to_restart(
    clock: list[float],
) -> None:
    watches = WatchLiveness()
    watches.answered("/apis/apps/v1/deployments")
    check = checker(WorkQueue("test"), clock[0], watches=watches, api_answers=False)
    clock[0] += 600
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 200
    assert "a restart would not help" in body(response)["notes"][0]
    # One probe of the API server answers every request of the next few seconds.
    for _ in range(5):
        await check.healthz(None)  # type: ignore[arg-type]
    assert len(check.probes) == 1  # type: ignore[attr-defined]
    clock[0] += 6
    await check.healthz(None)  # type: ignore[arg-type]
    assert len(check.probes) == 2  # type: ignore[attr-defined]


async def test_no_probe_of_the_api_server_while_every_watch_answers(clock: list[float]) -> None:
    watches = WatchLiveness()
    watches.answered("/apis/apps/v1/deployments")
    check = checker(WorkQueue("test"), clock[0], watches=watches)
    clock[0] += 30
    assert (await check.healthz(None)).status == 200  # type: ignore[arg-type]
    assert check.probes == []  # type: ignore[attr-defined]


async def test_readiness_waits_for_the_caches_then_tells_leader_from_follower(
    clock: list[float],
) -> None:
    listed = asyncio.Event()
    follower = checker(WorkQueue("test"), clock[0], leadership=Follower(), synced=(listed,))
    response = await follower.readyz(None)  # type: ignore[arg-type]
    assert response.status == 503 and body(response)["status"] == "caches not listed yet"
    listed.set()
    response = await follower.readyz(None)  # type: ignore[arg-type]
    assert response.status == 200 and body(response)["leader"] is False
    leader = checker(WorkQueue("test"), clock[0], synced=(listed,))
    response = await leader.readyz(None)  # type: ignore[arg-type]
    assert response.status == 200 and body(response)["leader"] is True


async def test_watches_get_time_to_reconnect_once_the_api_server_is_back(
    clock: list[float],
) -> None:
    watches = WatchLiveness()
    watches.answered("/apis/apps/v1/deployments")
    check = checker(WorkQueue("test"), clock[0], watches=watches, api_answers=False)
    clock[0] += 61
    assert (await check.healthz(None)).status == 200  # type: ignore[arg-type]
    check.api_answers = answering = _answers(True)
    clock[0] += 6  # the next probe finds it back
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 200
    assert "is reconnecting" in body(response)["notes"][0]
    clock[0] += 36  # past the grace: an informer backs off 30 s at most
    response = await check.healthz(None)  # type: ignore[arg-type]
    assert response.status == 500, body(response)
    assert answering.calls >= 2  # type: ignore[attr-defined]


def _answers(value: bool) -> Any:
    async def probe() -> bool:
        probe.calls += 1  # type: ignore[attr-defined]
        return value

    probe.calls = 0  # type: ignore[attr-defined]
    return probe
