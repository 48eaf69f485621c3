"""The checks every external store runs before writing, and the private loop thread."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.codec import Event, decode_event, encode_event
from microstatedb.errors import (
    ConfigurationError,
    DataError,
    DecodeError,
    IntegrityError,
    OperationalError,
)
from microstatedb.stores._checks import check_batch, check_name, check_read_args, normalized
from microstatedb.stores._jetstream import origin_token
from microstatedb.stores._loop import LoopThread


def ev(origin: str, seq: int, op: object = 1) -> Event:
    return Event(origin, seq, 5, {"x": 1}, "k", "counter", op)


@given(
    st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(1, 4), st.sampled_from([1, (1, 2), [1, 2]]))
    )
)
def test_a_checked_batch_is_the_first_of_each_dot(spec: list[tuple[str, int, object]]) -> None:
    events = [ev(o, s, op) for o, s, op in spec]
    norms = [decode_event(encode_event(e)) for e in events]
    first: dict[tuple[str, int], Event] = {}
    conflict = False
    for n in norms:
        if n.dot in first and first[n.dot] != n:
            conflict = True
        first.setdefault(n.dot, n)
    if conflict:
        with pytest.raises(IntegrityError):
            check_batch(events)
        return
    out = check_batch(events)
    assert [e for e, _ in out] == list(first.values())
    assert all(body == encode_event(e) for e, body in out)


def test_bad_events_are_data_errors() -> None:
    with pytest.raises(DataError):
        normalized(("a", 1))
    with pytest.raises(DecodeError):
        normalized(Event("a", 0, 1, {}, "k", "counter", 1))
    with pytest.raises(DecodeError):
        normalized(Event("a", True, 1, {}, "k", "counter", 1))
    with pytest.raises(DataError):
        normalized(Event("a", 1, 1, {}, "k", "counter", object()))
    with pytest.raises(DataError):
        normalized(Event("a", 1, 1, {}, "k", "counter", 2**70))
    with pytest.raises(ConfigurationError):
        check_batch(ev("a", 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        check_batch(iter([ev("a", 1)]))  # type: ignore[arg-type]


def test_names_and_read_arguments() -> None:
    assert check_name("table", "events_1") == "events_1"
    for bad in ("", "1x", "a-b", "a.b", "x" * 64, None):
        with pytest.raises(ConfigurationError):
            check_name("table", bad)
    check_read_args(0, None)
    for start, limit in ((-1, None), (0, -1), (1.0, None), (0, 2.0)):
        with pytest.raises(ConfigurationError):
            check_read_args(start, limit)  # type: ignore[arg-type]


@given(st.text())
def test_origin_tokens_are_subject_safe_and_distinct(origin: str) -> None:
    token = origin_token(origin)
    assert token[0] == "o"
    assert all(c in "0123456789abcdef" for c in token[1:])
    assert bytes.fromhex(token[1:]).decode() == origin


def test_the_loop_thread_runs_times_out_and_stops() -> None:
    loop = LoopThread("test-loop")

    async def answer() -> int:
        return 42

    async def forever() -> None:
        await asyncio.sleep(3600)

    assert loop.call(answer(), 1.0) == 42
    with pytest.raises(OperationalError, match="no answer"):
        loop.call(forever(), 0.05)
    pending = asyncio.run_coroutine_threadsafe(forever(), loop.loop)
    loop.stop()
    assert pending.cancelled()
    assert loop.loop.is_closed()
