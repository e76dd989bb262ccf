import asyncio

from agentfleet.controller import Controller
from agentfleet.reconciler import Key


class ScriptedReconciler:
    """Answers each reconcile with the next scripted outcome; `done` is set after the last."""

    def __init__(self, *outcomes: float | Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[Key] = []
        self.done = asyncio.Event()

    async def reconcile(self, key: Key) -> float | None:
        self.calls.append(key)
        outcome = self.outcomes.pop(0)
        if not self.outcomes:
            self.done.set()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


async def run(controller: Controller, reconciler: ScriptedReconciler) -> None:
    controller.start()
    try:
        await asyncio.wait_for(reconciler.done.wait(), 2)
    finally:
        await controller.stop()


async def test_a_failing_reconcile_is_retried_and_the_worker_survives() -> None:
    reconciler = ScriptedReconciler(RuntimeError("boom"), None)
    controller = Controller(reconciler, workers=1)  # type: ignore[arg-type]
    controller.queue.base_delay = 0.01
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert reconciler.calls == [("ns", "a"), ("ns", "a")]


async def test_a_deferred_reconcile_runs_again_after_its_delay() -> None:
    reconciler = ScriptedReconciler(0.02, None)
    controller = Controller(reconciler, workers=2)  # type: ignore[arg-type]
    controller.queue.add(("ns", "a"))
    await run(controller, reconciler)
    assert reconciler.calls == [("ns", "a"), ("ns", "a")]
