"""Recording histories: wrap any client call and log its invocation and completion."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from microstatedb.clock import Clock, RealClock
from microstatedb.errors import ConfigurationError, DeadlineExceeded, Unavailable
from microstatedb.verify._history import History, HistoryEvent, _event_json, _hashable

T = TypeVar("T")

_READS = frozenset({"read", "get"})


def default_classify(exc: BaseException) -> str:
    """``fail`` for a refusal before anything was sent (``Unavailable``), else ``info``.

    ``DeadlineExceeded`` is an ``Unavailable`` whose request may have gone out: ``info``.
    """
    if isinstance(exc, Unavailable) and not isinstance(exc, DeadlineExceeded):
        return "fail"
    return "info"


@dataclass(frozen=True, slots=True)
class Pending:
    """An invocation waiting for its completion (returned by ``Recorder.invoke``)."""

    process: Hashable
    """The client that invoked."""
    f: str
    """The function."""
    key: Hashable
    """The key."""
    value: Any
    """The argument."""
    session: str | None
    """The session, if any."""


class Recorder:
    """Records a history of calls made by any client, in the JSON Lines form.

    Use ``call`` (or ``acall`` for coroutines) around each client call::

        rec = Recorder()
        rec.call(1, "write", "k", 5, client.put, "k", 5)
        value = rec.call(1, "read", "k", None, client.get, "k")
        rec.history().dump("history.jsonl")

    A returned value completes the operation as ``ok`` (a read records the result, a cas that
    returns False records ``fail``); an exception completes it as ``classify(exc)`` and is
    raised again. Timestamps are monotonic nanoseconds from ``clock``; ``sink`` receives each
    event as a JSON line as soon as it happens. Safe to share between threads.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        sink: TextIO | None = None,
        classify: Callable[[BaseException], str] = default_classify,
    ) -> None:
        self._clock: Clock = clock if clock is not None else RealClock()
        self._sink = sink
        self._classify = classify
        self._events: list[HistoryEvent] = []
        self._lock = threading.Lock()

    def _now(self) -> int:
        return int(self._clock.monotonic() * 1_000_000_000)

    def _emit(self, event: HistoryEvent) -> None:
        with self._lock:
            self._events.append(event)
            if self._sink is not None:
                self._sink.write(_event_json(event) + "\n")

    def invoke(
        self,
        process: Hashable,
        f: str,
        key: Hashable = None,
        value: Any = None,
        *,
        session: str | None = None,
        node: str | None = None,
    ) -> Pending:
        """Record an invocation now; complete it later with ``complete``."""
        value = _hashable(value)
        self._emit(HistoryEvent(process, "invoke", f, key, value, self._now(), session, node))
        return Pending(process, f, key, value, session)

    def complete(
        self, pending: Pending, type: str, value: Any = None, *, node: str | None = None
    ) -> None:
        """Record the completion (``ok``, ``fail`` or ``info``) of ``pending`` now."""
        if type not in ("ok", "fail", "info"):
            raise ConfigurationError(f"a completion is ok, fail or info, not {type!r}")
        self._emit(
            HistoryEvent(
                pending.process,
                type,
                pending.f,
                pending.key,
                _hashable(value),
                self._now(),
                pending.session,
                node,
            )
        )

    def _finish(self, pending: Pending, result: Any) -> None:
        if pending.f in _READS:
            self.complete(pending, "ok", result)
        elif pending.f == "cas" and result is False:
            self.complete(pending, "fail", pending.value)
        else:
            self.complete(pending, "ok", pending.value)

    def call(
        self,
        process: Hashable,
        f: str,
        key: Hashable,
        value: Any,
        fn: Callable[..., T],
        *args: Any,
        session: str | None = None,
        **kwargs: Any,
    ) -> T:
        """Record ``fn(*args, **kwargs)`` as one operation and return its result."""
        pending = self.invoke(process, f, key, value, session=session)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.complete(pending, self._classify(exc))
            raise
        self._finish(pending, result)
        return result

    async def acall(
        self,
        process: Hashable,
        f: str,
        key: Hashable,
        value: Any,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        session: str | None = None,
        **kwargs: Any,
    ) -> T:
        """``call`` for a coroutine function."""
        pending = self.invoke(process, f, key, value, session=session)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self.complete(pending, self._classify(exc))
            raise
        self._finish(pending, result)
        return result

    def history(self) -> History:
        """The events recorded so far."""
        with self._lock:
            return History(list(self._events))
