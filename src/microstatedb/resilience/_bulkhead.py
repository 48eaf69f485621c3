"""Bulkheads: a limit on concurrent calls, for threads and for asyncio tasks alike.

Both kinds of caller share one counter, so a service that mixes threads and tasks still has
one limit. Waiting is built on the non-blocking :meth:`Bulkhead.try_acquire`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import ParamSpec, TypeVar

from microstatedb.errors import BulkheadFull, ConfigurationError, InvalidOperation

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BulkheadMetrics:
    """A snapshot of a bulkhead."""

    max_concurrent: int
    """The limit."""
    in_use: int
    """Places taken now."""
    waiting: int
    """Callers waiting for a place now."""
    rejected_total: int
    """Callers refused since the bulkhead was made."""


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Bulkhead:
    """At most ``max_concurrent`` calls at once; a caller waits up to ``max_wait`` seconds."""

    def __init__(self, name: str, max_concurrent: int, *, max_wait: float = 0.0) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a bulkhead needs a non-empty name, got {name!r}")
        if (
            isinstance(max_concurrent, bool)
            or not isinstance(max_concurrent, int)
            or max_concurrent < 1
        ):
            raise ConfigurationError(
                f"max_concurrent must be an integer >= 1, got {max_concurrent!r}"
            )
        if not max_wait >= 0:
            raise ConfigurationError(f"max_wait must be >= 0 seconds, got {max_wait!r}")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_wait = float(max_wait)
        self._cond = threading.Condition(threading.Lock())
        self._in_use = 0
        self._sync_waiting = 0
        self._async_waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._rejected = 0

    def metrics(self) -> BulkheadMetrics:
        """A snapshot of the counters."""
        with self._cond:
            return BulkheadMetrics(
                self.max_concurrent,
                self._in_use,
                self._sync_waiting + len(self._async_waiters),
                self._rejected,
            )

    def try_acquire(self) -> bool:
        """Take a place if one is free; never blocks."""
        with self._cond:
            if self._in_use < self.max_concurrent:
                self._in_use += 1
                return True
            return False

    def _full(self) -> BulkheadFull:
        with self._cond:
            self._rejected += 1
        return BulkheadFull(
            f"bulkhead {self.name!r} has all {self.max_concurrent} places taken; "
            "shed load or retry after a pause"
        )

    def release(self) -> None:
        """Give a place back and wake one waiter."""
        with self._cond:
            if self._in_use == 0:
                raise InvalidOperation(f"bulkhead {self.name!r}: release() without an acquire")
            self._in_use -= 1
            self._wake_one_locked()

    def _wake_one_locked(self) -> None:
        if self._sync_waiting:
            self._cond.notify()
        while self._async_waiters:
            loop, fut = self._async_waiters.popleft()
            if not fut.done():
                loop.call_soon_threadsafe(_wake, fut)
                return

    def acquire(self, timeout: float | None = None) -> None:
        """Take a place, waiting up to ``timeout`` (default ``max_wait``); else BulkheadFull."""
        if self.try_acquire():
            return
        wait = self.max_wait if timeout is None else timeout
        end = time.monotonic() + wait
        with self._cond:
            self._sync_waiting += 1
            try:
                while self._in_use >= self.max_concurrent:
                    left = end - time.monotonic()
                    if left <= 0 or not self._cond.wait(left):
                        if self._in_use < self.max_concurrent:
                            break
                        self._rejected += 1
                        raise BulkheadFull(
                            f"bulkhead {self.name!r} had no free place within {wait:.3f}s; "
                            "shed load or raise max_concurrent"
                        )
                self._in_use += 1
            finally:
                self._sync_waiting -= 1

    async def acquire_async(self, timeout: float | None = None) -> None:
        """Take a place, awaiting up to ``timeout`` (default ``max_wait``); else BulkheadFull."""
        if self.try_acquire():
            return
        wait = self.max_wait if timeout is None else timeout
        if wait <= 0:
            raise self._full()
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with self._cond:
                if self._in_use < self.max_concurrent:
                    self._in_use += 1
                    return
                self._async_waiters.append((loop, fut))
            try:
                async with asyncio.timeout_at(end):
                    await fut
            except BaseException as exc:
                with self._cond:
                    woken = fut.done()
                    fut.cancel()
                    if woken:  # we were woken but leave: pass the wake-up on
                        self._wake_one_locked()
                if isinstance(exc, TimeoutError):
                    raise self._full() from None
                raise  # cancellation of the waiting task goes on as it is
            if self.try_acquire():
                return

    def __enter__(self) -> Bulkhead:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> Bulkhead:
        await self.acquire_async()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` inside the bulkhead."""
        with self:
            return fn(*args, **kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn`` inside the bulkhead."""
        async with self:
            return await fn(*args, **kwargs)
