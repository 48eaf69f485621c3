"""A private asyncio loop on its own thread, so async clients can sit behind a sync API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from microstatedb.errors import InvalidOperation, OperationalError

T = TypeVar("T")


class LoopThread:
    """Runs coroutines on a daemon thread's event loop and waits for their results."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coro`` on the loop; ``OperationalError`` after ``timeout`` seconds."""
        if threading.current_thread() is self._thread:  # pragma: no cover - misuse guard
            coro.close()
            raise InvalidOperation("LoopThread.call from its own thread would deadlock")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise OperationalError(
                f"no answer within {timeout}s; the server may be down or overloaded"
            ) from None

    def stop(self) -> None:
        """Cancel what still runs on the loop, stop it and join the thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop).result()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()

    @staticmethod
    async def _cancel_all() -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
