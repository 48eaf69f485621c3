"""Bulkheads: one concurrency limit for threads and asyncio tasks."""

from __future__ import annotations

import asyncio
import threading

import pytest

from microstatedb import errors
from microstatedb.resilience import Bulkhead, BulkheadMetrics


def test_try_acquire_and_release() -> None:
    bh = Bulkhead("db", 2)
    assert bh.try_acquire()
    assert bh.try_acquire()
    assert not bh.try_acquire()
    bh.release()
    assert bh.try_acquire()
    assert bh.metrics() == BulkheadMetrics(2, 2, 0, 0)


def test_a_full_bulkhead_refuses_at_once_by_default() -> None:
    bh = Bulkhead("db", 1)
    with bh:
        with pytest.raises(errors.BulkheadFull):
            bh.acquire()
        with pytest.raises(errors.BulkheadFull):
            bh.call(lambda: 1)
    assert bh.call(lambda: 5) == 5
    assert bh.metrics().rejected_total == 2


def test_release_without_acquire_is_refused() -> None:
    with pytest.raises(errors.InvalidOperation):
        Bulkhead("db", 1).release()


def test_a_thread_waits_for_a_place() -> None:
    bh = Bulkhead("db", 1, max_wait=5.0)
    bh.acquire()
    entered = threading.Event()

    def worker() -> None:
        with bh:
            entered.set()

    t = threading.Thread(target=worker)
    t.start()
    assert not entered.wait(0.05)
    assert bh.metrics().waiting == 1
    bh.release()
    assert entered.wait(5.0)
    t.join(5.0)
    assert bh.metrics().in_use == 0


def test_a_thread_gives_up_after_its_timeout() -> None:
    bh = Bulkhead("db", 1)
    bh.acquire()
    with pytest.raises(errors.BulkheadFull):
        bh.acquire(timeout=0.02)
    assert bh.metrics() == BulkheadMetrics(1, 1, 0, 1)


def test_many_threads_never_exceed_the_limit() -> None:
    bh = Bulkhead("db", 3, max_wait=10.0)
    inside = 0
    peak = 0
    lock = threading.Lock()
    go = threading.Barrier(8)

    def worker() -> None:
        nonlocal inside, peak
        go.wait()
        for _ in range(50):
            with bh:
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10.0)
    assert 1 <= peak <= 3
    assert bh.metrics().in_use == 0


async def test_tasks_wait_and_are_woken_in_turn() -> None:
    bh = Bulkhead("db", 2, max_wait=5.0)
    inside = 0
    peak = 0

    async def task(i: int) -> int:
        nonlocal inside, peak
        async with bh:
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1
        return i

    results = await asyncio.gather(*(task(i) for i in range(10)))
    assert results == list(range(10))
    assert peak == 2
    assert bh.metrics().in_use == 0


async def test_a_task_gives_up_after_its_timeout() -> None:
    bh = Bulkhead("db", 1)
    await bh.acquire_async()
    with pytest.raises(errors.BulkheadFull):
        await bh.acquire_async()  # no wait configured
    with pytest.raises(errors.BulkheadFull):
        await bh.acquire_async(timeout=0.01)
    assert bh.metrics().waiting == 0
    bh.release()

    async def value() -> str:
        return "v"

    assert await bh.call_async(value) == "v"


async def test_a_cancelled_waiter_passes_its_wake_up_on() -> None:
    bh = Bulkhead("db", 1, max_wait=5.0)
    await bh.acquire_async()
    first = asyncio.ensure_future(bh.acquire_async())
    second = asyncio.ensure_future(bh.acquire_async())
    await asyncio.sleep(0)
    bh.release()  # wakes the first waiter...
    first.cancel()  # ...which is cancelled before it runs: the second must get the place
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 5.0)
    assert bh.metrics().in_use == 1


async def test_threads_and_tasks_share_one_limit() -> None:
    bh = Bulkhead("db", 1, max_wait=5.0)
    bh.acquire()  # taken by "a thread"
    waiter = asyncio.ensure_future(bh.acquire_async())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    threading.Thread(target=bh.release).start()  # released from another thread
    await asyncio.wait_for(waiter, 5.0)
    assert bh.metrics().in_use == 1


@pytest.mark.parametrize(
    ("name", "limit", "wait"),
    [("", 1, 0.0), ("db", 0, 0.0), ("db", True, 0.0), ("db", 1, -1.0)],
)
def test_bad_bulkheads_are_refused(name: str, limit: int, wait: float) -> None:
    with pytest.raises(errors.ConfigurationError):
        Bulkhead(name, limit, max_wait=wait)
