import asyncio

from agentfleet.kube.backoff import Backoff
from agentfleet.kube.workqueue import WorkQueue


async def test_a_key_is_queued_once_however_often_it_is_added() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    for _ in range(5):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]


async def test_a_key_added_while_processing_comes_back_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # changed while a worker holds it
    assert queue._ready.empty(), "must not be handed to a second worker"
    queue.done(key)
    assert await asyncio.wait_for(queue.get(), 1) == "a"


async def test_a_key_not_re_added_is_not_processed_again() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    queue.add("a")
    queue.done(await queue.get())
    assert len(queue) == 0 and queue._ready.empty()


async def test_rate_limited_retries_back_off_exponentially_and_reset_on_forget() -> None:
    queue: WorkQueue[str] = WorkQueue("t", Backoff(0.01, 0.04))
    assert [queue.add_rate_limited("a") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    queue.forget("a")
    assert queue.add_rate_limited("a") == 0.01
    assert await asyncio.wait_for(queue.get(), 1) == "a"
    queue.shutdown()


async def test_add_after_keeps_the_earliest_timer() -> None:
    queue: WorkQueue[str] = WorkQueue("t")
    queue.add_after("a", 0.01)
    queue.add_after("a", 30)
    assert await asyncio.wait_for(queue.get(), 1) == "a"
