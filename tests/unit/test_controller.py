import asyncio
import threading

import pytest

from agentfleet.api.config import OperatorConfig
from agentfleet.controllers.reconciler import Key, Result
from agentfleet.controllers.workers import Controller
from agentfleet.kube.backoff import Backoff
from agentfleet.kube.workqueue import WorkQueue


class ScriptedReconciler:
    """Answers each reconcile with the next scripted outcome; `done` is set after the last."""

    def __init__(self, *outcomes: Result | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[Key] = []
        self.done = asyncio.Event()

    async def reconcile(self, key: Key) -> Result:
        self.calls.append(key)
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def controller_for(reconciler: ScriptedReconciler, **knobs: float) -> Controller:
    config = OperatorConfig(workers=2, retry_base_seconds=0.01, **knobs)  # type: ignore[arg-type]
    return Controller(reconciler, config)  # type: ignore[arg-type]


async def run(controller: Controller, reconciler: ScriptedReconciler) -> None:
    controller.start()
    try:
        await asyncio.wait_for(reconciler.done.wait(), 2)
    finally:
        await controller.stop()


async def test_a_failing_reconcile_is_retried_and_the_worker_survives() -> None:
    reconciler = ScriptedReconciler(RuntimeError("boom"), Result())
    controller = controller_for(reconciler)
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert reconciler.calls == [("ns", "a"), ("ns", "a")]


async def test_a_deferred_reconcile_runs_again_after_its_delay() -> None:
    reconciler = ScriptedReconciler(Result(requeue_after=0.02), Result())
    controller = controller_for(reconciler)
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert reconciler.calls == [("ns", "a"), ("ns", "a")]


async def test_a_retry_backs_off_exponentially_and_success_resets_it() -> None:
    reconciler = ScriptedReconciler(Result(retry=True), Result(retry=True), Result())
    controller = controller_for(reconciler)
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert len(reconciler.calls) == 3
    assert controller.queue._failures == {}


async def test_every_agent_is_resynced_about_once_a_period() -> None:
    reconciler = ScriptedReconciler(Result(), Result())
    controller = controller_for(reconciler, resync_seconds=0.05)
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert reconciler.calls == [("ns", "a"), ("ns", "a")]


async def test_a_gone_agent_leaves_no_timer_behind() -> None:
    reconciler = ScriptedReconciler(Result(gone=True))
    controller = controller_for(reconciler, resync_seconds=0.05)
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert controller.queue._timers == {}


def test_resync_delays_are_jittered_around_the_period() -> None:
    controller = controller_for(ScriptedReconciler(), resync_seconds=600)
    delays = {round(controller.resync_delay()) for _ in range(50)}
    assert len(delays) > 1 and all(540 <= d <= 660 for d in delays)


async def test_the_queue_refuses_a_call_from_another_thread() -> None:
    """kopf runs sync handlers in worker threads; asyncio queues are not thread-safe."""
    queue: WorkQueue[Key] = WorkQueue("test")
    errors: list[BaseException] = []

    def from_thread() -> None:
        try:
            queue.add(("ns", "a"))
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=from_thread)
    thread.start()
    thread.join()
    assert errors and len(queue) == 0


def test_every_kopf_handler_is_async() -> None:
    """A sync handler would run in a thread and touch the work queue from there."""
    import inspect

    import kopf

    import agentfleet.runtime.handlers  # noqa: F401  (registers the handlers)

    registry = kopf.get_default_registry()
    handlers = [
        handler
        for resource_registry in (registry._indexing, registry._watching)
        for handler in resource_registry.get_all_handlers()
    ]
    assert len(handlers) >= 5
    sync = [h.id for h in handlers if not inspect.iscoroutinefunction(h.fn)]
    assert sync == []


@pytest.mark.parametrize("failures", [1, 5, 40])
def test_backoff_is_capped(failures: int) -> None:
    async def main() -> float:
        queue: WorkQueue[Key] = WorkQueue("test", Backoff(0.5, 30))
        delay = 0.0
        for _ in range(failures):
            delay = queue.add_rate_limited(("ns", "a"))
        queue.shutdown()
        return delay

    assert asyncio.run(main()) == min(0.5 * 2 ** (failures - 1), 30)


class AcknowledgingReconciler:
    """Records acknowledgements; its reconciles never finish (the workers stay busy)."""

    def __init__(self) -> None:
        self.acked: list[tuple[Key, float]] = []

    async def reconcile(self, key: Key) -> Result:
        await asyncio.Event().wait()
        return Result()

    async def acknowledge(self, key: Key, ahead: int) -> None:
        self.acked.append((key, asyncio.get_running_loop().time()))


async def test_a_new_agent_is_acknowledged_only_behind_a_backlog_and_after_the_delay() -> None:
    reconciler = AcknowledgingReconciler()
    controller = Controller(
        reconciler,  # type: ignore[arg-type]
        OperatorConfig(workers=1, queued_status_after_seconds=0.2),
    )
    controller.start()
    try:
        controller.queue.add(("ns", "first"))
        controller.acknowledge(("ns", "first"))  # no backlog: a worker will be there soon
        for i in range(3):
            controller.queue.add(("ns", f"burst-{i}"))
        asked = asyncio.get_running_loop().time()
        controller.acknowledge(("ns", "burst-2"))
        await asyncio.sleep(0.1)
        assert reconciler.acked == [], "not before the delay"
        await asyncio.sleep(0.2)
        assert [key for key, _ in reconciler.acked] == [("ns", "burst-2")]
        assert reconciler.acked[0][1] - asked >= 0.2
    finally:
        await controller.stop()


async def test_queued_status_can_be_turned_off() -> None:
    reconciler = AcknowledgingReconciler()
    config = OperatorConfig(workers=1, queued_status_after_seconds=0)
    controller = Controller(reconciler, config)  # type: ignore[arg-type]
    controller.start()
    try:
        for i in range(3):
            controller.queue.add(("ns", f"burst-{i}"))
        controller.acknowledge(("ns", "burst-2"))
        await asyncio.sleep(0.05)
        assert reconciler.acked == [] and controller.acks.empty()
    finally:
        await controller.stop()
