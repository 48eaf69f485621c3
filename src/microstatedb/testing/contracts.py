"""Contract suites: abstract test classes whose only hook builds the thing under test.

A backend's own test file is a few lines (``CRDTContract`` and ``TransportContract``, loaded
on use, are the suites for CRDT types and transports)::

    from microstatedb.testing.contracts import EventStoreContract

    class TestMyStore(EventStoreContract):
        def make_store(self):
            return MyStore(...)

pytest and hypothesis are imported inside the tests, so importing this module needs neither.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from microstatedb.codec import Event, decode_event, encode_event
from microstatedb.errors import DataError, IntegrityError, StoreClosed
from microstatedb.log import EventStore


def _event(origin: str, seq: int, op: Any = None) -> Event:
    return Event(
        origin,
        seq,
        1000 + seq,
        {"z": seq - 1} if seq > 1 else {},
        f"key{seq % 4}",
        "counter",
        op if op is not None else seq,
    )


def _norm(events: Sequence[Event]) -> list[Event]:
    """Events as a store gives them back (msgpack turns tuples into lists)."""
    return [decode_event(encode_event(ev)) for ev in events]


def _raises(exc: type[BaseException]) -> Any:
    import pytest

    return pytest.raises(exc)


class EventStoreContract:
    """What every ``EventStore`` must do: ordered, idempotent, atomic, safe under threads."""

    def make_store(self) -> EventStore:
        """Return a new, empty store. Each call must give an independent store."""
        raise NotImplementedError

    def _fresh(self) -> EventStore:
        store = self.make_store()
        stores: list[EventStore] = self.__dict__.setdefault("_contract_stores", [])
        stores.append(store)
        return store

    def teardown_method(self, method: Callable[..., Any]) -> None:
        for store in self.__dict__.pop("_contract_stores", []):
            store.close()

    def test_appends_read_back_in_order(self) -> None:
        store = self._fresh()
        first = [_event("a", i) for i in range(1, 6)]
        second = [_event("b", 1, ["x", {"y": 2}]), _event("a", 6)]
        store.append(first)
        store.append(second)
        assert list(store.read()) == _norm(first + second)

    def test_empty_store_reads_nothing(self) -> None:
        store = self._fresh()
        assert list(store.read()) == []
        assert list(store.read_origin("a")) == []
        store.append([])
        assert list(store.read()) == []

    def test_reappending_identical_events_is_a_no_op(self) -> None:
        store = self._fresh()
        events = [_event("a", i) for i in range(1, 4)]
        store.append(events)
        store.append(events)
        store.append(events[1:2])
        store.append([*events, _event("a", 4)])
        assert list(store.read()) == _norm([*events, _event("a", 4)])

    def test_same_dot_with_other_content_is_refused(self) -> None:
        store = self._fresh()
        store.append([_event("a", 1)])
        with _raises(IntegrityError):
            store.append([_event("a", 2), _event("a", 1, op="other")])
        assert list(store.read()) == _norm([_event("a", 1)])

    def test_conflict_inside_one_batch_writes_nothing(self) -> None:
        store = self._fresh()
        with _raises(IntegrityError):
            store.append([_event("a", 1), _event("a", 2), _event("a", 1, op="other")])
        assert list(store.read()) == []

    def test_bad_event_writes_nothing(self) -> None:
        store = self._fresh()
        bad: Any = ("a", 1)
        with _raises(DataError):
            store.append([_event("a", 1), bad])
        with _raises(DataError):
            store.append([_event("a", 1), Event("a", 0, 0, {}, "k", "counter", 1)])
        with _raises(DataError):
            store.append([Event("a", 2, 0, {}, "k", "counter", object())])
        assert list(store.read()) == []

    def test_read_from_a_position_with_a_limit(self) -> None:
        store = self._fresh()
        events = [_event("a", i) for i in range(1, 21)]
        for i in range(0, 20, 6):
            store.append(events[i : i + 6])
        assert list(store.read(7)) == _norm(events[7:])
        assert list(store.read(7, limit=5)) == _norm(events[7:12])
        assert list(store.read(0, limit=0)) == []
        assert list(store.read(25)) == []

    def test_read_by_origin(self) -> None:
        store = self._fresh()
        events = [_event("ab"[i % 2], i // 2 + 1) for i in range(30)]
        store.append(events[:10])
        store.append(events[10:])
        want = [e for e in events if e.origin == "b" and e.seq > 4]
        assert list(store.read_origin("b", 4)) == _norm(want)
        assert list(store.read_origin("c")) == []

    def test_concurrent_writers_lose_nothing(self) -> None:
        store = self._fresh()
        errors: list[BaseException] = []

        def writer(origin: str) -> None:
            try:
                for seq in range(1, 41, 4):
                    store.append([_event(origin, s) for s in range(seq, seq + 4)])
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        got = list(store.read())
        assert len(got) == 160
        for i in range(4):
            mine = [e.seq for e in got if e.origin == f"w{i}"]
            assert mine == list(range(1, 41))

    def test_closed_store_refuses_work(self) -> None:
        store = self.make_store()
        store.close()
        with _raises(StoreClosed):
            store.append([_event("a", 1)])
        with _raises(StoreClosed):
            list(store.read())

    def test_random_batches_behave_like_a_list_of_unique_dots(self) -> None:
        from hypothesis import given, settings
        from hypothesis import strategies as st

        batch = st.lists(
            st.tuples(st.sampled_from("abc"), st.integers(1, 6), st.integers(0, 1)), max_size=6
        )

        @settings(max_examples=50)
        @given(st.lists(batch, max_size=6))
        def run(batches: list[list[tuple[str, int, int]]]) -> None:
            store = self._fresh()
            model: dict[tuple[str, int], Event] = {}
            order: list[Event] = []
            for spec in batches:
                events = [_event(o, s, op=v) for o, s, v in spec]
                staged = dict(model)
                ok = True
                fresh: list[Event] = []
                for e in _norm(events):
                    if e.dot in staged and staged[e.dot] != e:
                        ok = False
                        break
                    if e.dot not in staged:
                        staged[e.dot] = e
                        fresh.append(e)
                if ok:
                    store.append(events)
                    model = staged
                    order += fresh
                else:
                    with _raises(IntegrityError):
                        store.append(events)
                assert list(store.read()) == order
            for origin in "abc":
                assert list(store.read_origin(origin, 2)) == [
                    e for e in order if e.origin == origin and e.seq > 2
                ]

        run()


def __getattr__(name: str) -> Any:
    # The suites for CRDT types and transports need hypothesis at import: load them on use.
    if name == "CRDTContract":
        from microstatedb.testing._crdt_contract import CRDTContract

        return CRDTContract
    if name == "TransportContract":
        from microstatedb.testing._transport_contract import TransportContract

        return TransportContract
    raise AttributeError(f"module 'microstatedb.testing.contracts' has no attribute {name!r}")
