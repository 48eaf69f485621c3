"""The compiled write path writes what the Python one writes, byte for byte.

``microstatedb._speedups`` replaces three Python closures: a key's write path with a log, the
same without one (``log=False``) and the durable log's lock-free append. Each Python
original stays in the code behind a class attribute (``Store._native``, ``EventLog._native``);
these tests run both on the same operations under the same clock and compare everything
the write path touches.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb import _speedups
from microstatedb.clock import LOGICAL_BITS, ManualClock
from microstatedb.codec import EVENT_FORMAT, pack_trusted, packb
from microstatedb.errors import InvalidOperation, StoreClosed
from microstatedb.log import EventLog
from microstatedb.log._pending import Dots, PendingEvents


class PyStore(msdb.Store):
    _native = False


class PyLog(EventLog):
    _native = False


# --------------------------------------------------------------------------- the encoder

_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, 2**64])
    | st.sampled_from([-1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1])
    | st.sampled_from([-(2**63), -(2**63) - 1])
    | st.floats(allow_nan=True)
    | st.text()
    | st.text(min_size=30, max_size=300)
    | st.binary()
    | st.binary(min_size=250, max_size=300)
)
_values = st.recursive(
    _leaves,
    lambda inner: (
        st.lists(inner, max_size=20)
        | st.lists(inner, max_size=20).map(tuple)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=20)
    ),
    max_leaves=60,
)


def _in_core(v: Any, depth: int = 0) -> bool:
    """Whether the compiled encoder takes ``v`` itself (else it defers to the Python one)."""
    if type(v) in (list, tuple, dict) and depth >= 32:
        return False
    if type(v) is int:
        return -(2**63) <= v < 2**64
    if type(v) is str:
        try:
            v.encode()
        except UnicodeEncodeError:
            return False
        return True
    if type(v) in (list, tuple):
        return all(_in_core(x, depth + 1) for x in v)
    if type(v) is dict:
        return all(_in_core(k, depth + 1) and _in_core(x, depth + 1) for k, x in v.items())
    return v is None or type(v) in (bool, float, bytes)


@settings(max_examples=400)
@given(_values)
def test_pack_writes_msgpacks_bytes_or_defers(v: Any) -> None:
    out = _speedups.pack(v)
    if _in_core(v):
        assert out == packb(v)
    else:
        assert out is None


def _in_fast(v: Any, depth: int = 0) -> bool:
    """Whether the write path's fast encoder takes ``v`` (else the event goes to ``pack``)."""
    if type(v) in (list, tuple, dict):
        if depth >= 32 or len(v) >= 16:
            return False
        items = [x for kv in v.items() for x in kv] if type(v) is dict else list(v)
        return all(_in_fast(x, depth + 1) for x in items)
    if type(v) is int:
        return 0 <= v < 2**60  # two of CPython's 30-bit digits
    if type(v) is str:
        return v.isascii() and len(v) < 32
    return v is None or type(v) in (bool, float)


# the shapes of CRDT deltas: small containers of short ASCII strings and small ints
_fast_leaves = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=True)
    | st.integers(0, 2**60 - 1)
    | st.text(st.characters(max_codepoint=127), max_size=31)
)
_fast_values = st.recursive(
    _fast_leaves,
    lambda inner: (
        st.lists(inner, max_size=15)
        | st.lists(inner, max_size=15).map(tuple)
        | st.dictionaries(
            st.text(st.characters(max_codepoint=127), max_size=31), inner, max_size=15
        )
    ),
    max_leaves=40,
)


@settings(max_examples=400)
@given(_values | _fast_values | st.integers(-1, 2**64))
def test_the_fast_encoder_writes_msgpacks_bytes_or_stops(v: Any) -> None:
    out = _speedups.pack_fast(v)
    if _in_fast(v) and len(packb(v)) <= 900:  # its room in this test; the writer's is 256
        assert out == packb(v)
    elif out is not None:  # it stopped short of room, or at what it does not take
        assert _in_fast(v)
        assert out == packb(v)


def test_the_fast_encoder_stops_at_each_edge_of_what_it_takes() -> None:
    taken: list[Any] = [
        "a" * 31,
        2**60 - 1,
        list(range(15)),
        {str(i): i for i in range(15)},
        _nested(31),
        vars(_Slots()),  # a split table: read through PyDict_Next
        _dicts_of_every_layout(),
    ]
    for v in taken:
        assert _speedups.pack_fast(v) == packb(v)
    left: list[Any] = [
        "a" * 32,
        "é",
        2**60,
        -1,
        list(range(16)),
        {str(i): i for i in range(16)},
        b"x",
        _nested(32),
        type("Str", (str,), {})("subclass"),
    ]
    for v in left:
        assert _speedups.pack_fast(v) is None
        assert _speedups.pack_fast([1, {"k": v}]) is None


def _nested(depth: int) -> list[Any]:
    v: list[Any] = [1]
    for _ in range(depth):
        v = [v]
    return v


@pytest.mark.parametrize(
    "v",
    [
        "\ud800",  # a lone surrogate has no UTF-8
        {1, 2},  # msgspec encodes sets; packb does not
        int,  # a type object
        _nested(34),  # deeper than the compiled encoder goes
        type("Str", (str,), {})("subclass"),
    ],
)
def test_pack_defers_what_is_outside_the_core(v: Any) -> None:
    assert _speedups.pack(v) is None


class _Slots:
    def __init__(self) -> None:
        self.a, self.b = 1, "two"


def _dicts_of_every_layout() -> list[dict[Any, Any]]:
    holes = {str(i): i for i in range(20)}
    for i in range(0, 20, 3):  # deleted entries stay as holes in a combined table
        del holes[str(i)]
    general = {1: "a", "b": 2, None: [3]}  # a non-str key: entries carry their hash
    del general[1]
    emptied = {"x": 1}
    del emptied["x"]
    return [holes, general, emptied, vars(_Slots()), {**vars(_Slots())}]


@pytest.mark.parametrize("d", _dicts_of_every_layout(), ids=repr)
def test_pack_reads_dicts_of_every_table_layout(d: dict[Any, Any]) -> None:
    # the compiled encoder walks a combined table's entries itself; split tables (an
    # instance's attributes) and holes left by deletions must give msgpack's bytes too
    assert _speedups.pack(d) == packb(d)
    assert _speedups.pack([d, {"k": d}]) == packb([d, {"k": d}])


def test_pack_takes_long_strings_and_big_containers() -> None:
    for v in ["é" * 40_000, b"x" * 70_000, list(range(70_000)), {str(i): i for i in range(20)}]:
        assert _speedups.pack(v) == packb(v)


# ------------------------------------------------------------------- the store write path

_ops = st.lists(
    st.tuples(
        st.sampled_from(["inc", "dec", "reg", "mv", "add", "rm", "map", "unmap", "remote", "tick"]),
        st.integers(0, 3),
        st.integers(0, 300),
    ),
    max_size=40,
)


def _run(cls: type[msdb.Store], ops: list[tuple[str, int, int]], **options: Any) -> msdb.Store:
    clock = ManualClock(1_700_000_000.0)
    store = cls("a", clock=clock, snapshot_every=7, **options)
    other = cls("b", clock=clock)
    for what, k, n in ops:
        key = f"k{k}"
        if what == "inc":
            store.counter(f"c-{key}").increment(n)
        elif what == "dec":
            store.counter(f"c-{key}").decrement(n)
        elif what == "reg":
            store.register(f"r-{key}").set({"n": n, "tags": ["x"] * (n % 3), "f": n / 7})
        elif what == "mv":
            store.mvregister(f"m-{key}").set(n)
        elif what == "add":
            store.set(f"s-{key}").add(n % 5)
        elif what == "rm" and n % 5 in store.set(f"s-{key}"):
            store.set(f"s-{key}").remove(n % 5)
        elif what == "map":
            store.map(f"p-{key}").counter(str(n % 4)).increment(1)
        elif what == "unmap" and str(n % 4) in store.map(f"p-{key}"):
            store.map(f"p-{key}").remove(str(n % 4))
        elif what == "remote":  # gives the next local event deps
            other.counter("c-remote").increment(n + 1)
            store.apply(other.events_since(dict(store._vv)))
        elif what == "tick":
            if k:  # within a millisecond or to a later one
                clock.advance(n / 100_000 * k)
            else:  # the wall clock jumps back
                clock.set_wall(clock.now() - n / 10)  # within the 60 s drift bound
    other.close()
    return store


def _compare(a: msdb.Store, b: msdb.Store) -> None:
    assert a._vv == b._vv
    assert a._deps == b._deps
    assert a._touched == b._touched
    assert a._since_snapshot == b._since_snapshot
    assert a._hlc.last == b._hlc.last
    assert {k: o.value for k, o in a._objs.items()} == {k: o.value for k, o in b._objs.items()}
    assert list(a._log.read(a._log.first_position)) == list(b._log.read(b._log.first_position))


@contextlib.contextmanager
def _log_switch(name: str, native: bool) -> Iterator[None]:
    """``EventLog.<name>`` set to ``native`` inside: ``_native`` picks the logs' buffers
    (EncodedEvents or lists), ``_native_frames`` their commit (commit_to or Python)."""
    before = getattr(EventLog, name)
    setattr(EventLog, name, native)
    try:
        yield
    finally:
        setattr(EventLog, name, before)


def _log_buffers(native: bool) -> contextlib.AbstractContextManager[None]:
    return _log_switch("_native", native)


def _commits(native: bool) -> contextlib.AbstractContextManager[None]:
    return _log_switch("_native_frames", native)


@settings(max_examples=60, deadline=None)
@given(_ops, st.booleans())
def test_in_memory_writes_match_the_python_path_byte_for_byte(
    ops: list[Any], native_buffer: bool
) -> None:
    with _log_buffers(native_buffer):
        native, python = _run(msdb.Store, ops), _run(PyStore, ops)
    assert (type(native._log.encoded_events()) is list) != native_buffer
    _compare(native, python)
    assert native._log.encoded_events()[:] == python._log.encoded_events()[:]


@settings(max_examples=30, deadline=None)
@given(_ops)
def test_state_only_writes_match_the_python_path(ops: list[Any]) -> None:
    _compare(_run(msdb.Store, ops, log=False), _run(PyStore, ops, log=False))


@settings(max_examples=15, deadline=None)
@given(ops=_ops, native_buffer=st.booleans())
def test_durable_writes_match_the_python_path(
    tmp_path_factory: pytest.TempPathFactory, ops: list[Any], native_buffer: bool
) -> None:
    # the compiled write path and commit against the Python write path and commit
    stores, folders = [], []
    with _log_buffers(native_buffer):
        for cls in (msdb.Store, PyStore):
            folders.append(tmp_path_factory.mktemp("s"))
            with _commits(cls is msdb.Store):
                stores.append(_run(cls, ops, path=folders[-1], durability="batch"))
                stores[-1].flush()
    _compare(*stores)
    for store in stores:
        store.close()
    native, python = ({p.name: p.read_bytes() for p in f.glob("*.seg*")} for f in folders)
    assert native == python  # the segment files too


@pytest.mark.parametrize("options", [{}, {"durability": "batch"}])
@pytest.mark.parametrize("native_buffer", [True, False])
def test_events_longer_than_the_room_reserved_in_place_and_values_for_the_python_encoder(
    tmp_path: Path, options: dict[str, Any], native_buffer: bool
) -> None:
    nested: Any = "bottom"
    for _ in range(40):  # deeper than the C encoder goes: the Python encoder takes it
        nested = [nested]
    values = ["x" * 300, {"deep": ["y" * 120] * 20}, nested, "z", [b"ab"], -(2**63)]
    logs = []
    with _log_buffers(native_buffer):
        for cls in (msdb.Store, PyStore):
            path = tmp_path / cls.__name__ if options else None
            store = cls("a", clock=ManualClock(), path=path, **options)
            for v in values:
                store.register("r").set(v)
                store.counter("c").increment(1)
            logs.append([(e.seq, e.op) for e in store._log.read()])
            assert store.register("r").value == -(2**63)
            store.close()
    assert logs[0] == logs[1]
    assert len(logs[0]) == 2 * len(values)


def test_the_real_clock_gives_increasing_timestamps_near_the_wall() -> None:
    store = msdb.Store("a")
    assert type(store.counter("c").on_change) is _speedups.KeyWriter
    # the HLC reads the kernel's coarse clock, up to one timer tick (at most 10 ms) behind
    before = int(time.time() * 1000) - 10
    for _ in range(5000):
        store.counter("c").increment(1)
    after = int(time.time() * 1000)
    stamps = [e.hlc for e in store._log.read()]
    assert stamps == sorted(set(stamps))
    assert before <= stamps[0] >> LOGICAL_BITS <= stamps[-1] >> LOGICAL_BITS <= after
    assert store._hlc.last == stamps[-1]


def test_a_wall_clock_that_returns_ints_and_jumps_back() -> None:
    clock = ManualClock(1_700_000_000.0)
    store = msdb.Store("a", clock=clock)
    reads = iter([1_700_000_000, 1_700_000_000, 1_600_000_000, 1_700_000_001])
    store._hlc.wall = lambda: next(reads)
    counter = store.counter("c")  # the writer binds the clock's read when the key is made
    for _ in range(4):
        counter.increment(1)
    stamps = [e.hlc for e in store._log.read()]
    assert stamps == [
        1_700_000_000_000 << LOGICAL_BITS,
        (1_700_000_000_000 << LOGICAL_BITS) + 1,
        (1_700_000_000_000 << LOGICAL_BITS) + 2,  # the wall went back: the HLC did not
        1_700_000_001_000 << LOGICAL_BITS,
    ]


def test_a_failing_clock_or_encoding_leaves_the_state_as_it_was() -> None:
    store = msdb.Store("a")
    counter = store.counter("c")
    counter.increment(1)
    store._hlc.wall = lambda: math.inf
    counter2 = store.counter("c2")
    with pytest.raises(OverflowError):
        counter2.increment(1)
    store._hlc.wall = lambda: "not a time"
    counter3 = store.counter("c3")
    with pytest.raises(TypeError):
        counter3.increment(1)
    assert store._vv == {"a": 1}
    assert [e.key for e in store._log.read()] == ["c"]
    writer = store.counter("c").on_change
    with pytest.raises(TypeError, match="unsupported"):
        writer(object())  # not a CRDT op: the Python encoder says why, nothing is logged
    assert store._vv == {"a": 1}


def test_a_key_the_encoder_cannot_take_fails_on_write_like_the_python_path() -> None:
    for cls in (msdb.Store, PyStore):
        store = cls("a")
        counter = store.counter("bad-\ud800")
        with pytest.raises(UnicodeEncodeError, match="surrogates"):
            counter.increment(1)
        assert store._vv == {}


def test_writes_to_a_closed_store_are_refused_by_both_paths(tmp_path: Path) -> None:
    for cls in (msdb.Store, PyStore):
        for options in ({}, {"log": False}, {"path": tmp_path / cls.__name__}):
            store = cls("a", **options)  # type: ignore[arg-type]
            counter = store.counter("c")
            counter.increment(1)
            store.close()
            with pytest.raises(StoreClosed):
                counter.increment(1)


def test_writes_after_lost_own_events_are_refused() -> None:
    store = msdb.Store("a")
    counter = store.counter("c")
    store._blocked = "own events were lost; resync from peers first"
    with pytest.raises(InvalidOperation, match="resync"):
        counter.increment(1)
    assert store._vv == {}


def test_a_writer_takes_exactly_one_positional_operation() -> None:
    store = msdb.Store("a")
    writer = store.counter("c").on_change
    with pytest.raises(TypeError, match="one operation"):
        writer()
    with pytest.raises(TypeError, match="one operation"):
        writer([{}, {}, {}, {}], extra=1)
    state_writer = msdb.Store("b", log=False).counter("c").on_change
    with pytest.raises(TypeError, match="one operation"):
        state_writer(1, 2)


def test_key_writer_checks_its_sinks() -> None:
    store = msdb.Store("a")
    args = (store, "k", "counter", "a", {}, store._hlc, time.time)
    with pytest.raises(ValueError, match="either"):
        _speedups.key_writer(*args, None, None, pack_trusted, EVENT_FORMAT)
    with pytest.raises(ValueError, match="either"):
        _speedups.key_writer(*args, [], print, pack_trusted, EVENT_FORMAT)
    with pytest.raises(TypeError, match="list"):
        _speedups.key_writer(*args, (), None, pack_trusted, EVENT_FORMAT)
    with pytest.raises(TypeError):
        _speedups.key_writer(object(), *args[1:], [], None, pack_trusted, EVENT_FORMAT)


def test_a_python_sink_is_called_with_body_origin_and_seq() -> None:
    store = msdb.Store("a")
    seen: list[tuple[bytes, str, int]] = []
    writer = _speedups.key_writer(
        store, "k", "counter", "a", store._vv, store._hlc, time.time, None,
        lambda *a: seen.append(a), pack_trusted, EVENT_FORMAT,
    )  # fmt: skip
    writer([{"a": 1}, {}, {}, {}])
    writer([{"a": 2}, {}, {}, {}])
    assert [(o, s) for _, o, s in seen] == [("a", 1), ("a", 2)]
    assert seen[0][0][:1] == b"\x98"


def test_snapshots_are_taken_by_the_compiled_path_too() -> None:
    store = msdb.Store("a", snapshot_every=10)
    for _ in range(25):
        store.counter("c").increment(1)
    assert store._snapshots == 2
    assert store._since_snapshot == 5


# --------------------------------------------------------------- the durable log's append


@pytest.mark.parametrize("cls", [EventLog, PyLog])
def test_both_appenders_refuse_after_close(cls: type[EventLog], tmp_path: Path) -> None:
    log = cls(tmp_path, durability="none")
    put = log.single_writer()
    assert (type(put) is _speedups.Appender) == (cls is EventLog)
    body = pack_trusted((EVENT_FORMAT, "a", 1, 1, {}, "k", "counter", [1]))
    put(body, "a", 1)
    log.close()
    with pytest.raises(StoreClosed):
        put(body, "a", 2)
    with EventLog(tmp_path) as again:
        assert [e.dot for e in again.read()] == [("a", 1)]


def test_the_compiled_appender_commits_when_its_buffer_fills(tmp_path: Path) -> None:
    with EventLog(tmp_path, durability="none") as log:
        put = log.single_writer()
        with pytest.raises(TypeError, match="body, origin, seq"):
            put(b"")
        for seq in range(1, 3000):
            put(pack_trusted((EVENT_FORMAT, "a", seq, seq, {}, "k", "counter", [seq])), "a", seq)
        assert len(log._pending) < 1024  # a full 'none' buffer is handed to the writer thread
    with EventLog(tmp_path) as log:
        assert log.next_position == 2999


def test_the_write_path_holds_no_reference_cycles_it_cannot_free() -> None:
    import gc
    import weakref

    store = msdb.Store("a")
    store.counter("c").increment(1)
    ref = weakref.ref(store)
    del store
    gc.collect()
    assert ref() is None


def test_the_extension_is_built() -> None:
    # The packaged library ships it; a build without a compiler falls back to Python.
    assert msdb.Store._native
    assert EventLog._native
    assert EventLog._native_frames
    assert sys.modules["microstatedb._speedups"] is _speedups


def test_the_library_works_without_the_extension(tmp_path: Path) -> None:
    # What a source install without a C compiler gets: the import fails, the Python path runs.
    import subprocess

    script = f"""
import sys
sys.modules["microstatedb._speedups"] = None  # makes the import fail
import microstatedb as msdb
from microstatedb.log import EventLog
from microstatedb.log._pending import Dots, PendingEvents
assert not msdb.Store._native and not EventLog._native and not EventLog._native_frames
for options in ({{}}, {{"log": False}}, {{"path": {str(tmp_path / "d")!r}}}):
    with msdb.Store("a", **options) as s:
        s.counter("c").increment(2)
        s.register("r").set("x")
        assert s.counter("c").value == 2
with msdb.Store("a", path={str(tmp_path / "d")!r}) as s:
    assert s.counter("c").value == 2 and s.register("r").value == "x"
print("ok")
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_a_sequence_number_past_msgpacks_range_is_refused_by_both_paths() -> None:
    for cls in (msdb.Store, PyStore):
        store = cls("a")
        counter = store.counter("c")
        store._vv["a"] = 2**64 - 1
        with pytest.raises(OverflowError):
            counter.increment(1)
        assert store._vv["a"] == 2**64 - 1
        assert list(store._log.read()) == []


# ------------------------------------------------------------------- the events' buffer

_buffer_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=300)),
        st.tuples(st.just("extend"), st.lists(st.binary(max_size=40), max_size=30)),
        st.tuples(st.just("drop"), st.integers(0, 40)),
        st.tuples(st.just("take"), st.integers(0, 40)),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(_buffer_ops, st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 4))
def test_encoded_events_behave_like_a_list_of_bytes(
    ops: list[Any], lo: int, hi: int, step: int
) -> None:
    buffer, model = _speedups.EncodedEvents(), []
    for what, arg in ops:
        if what == "append":
            buffer.append(arg)
            model.append(arg)
        elif what == "extend":
            buffer.extend(arg)
            model.extend(arg)
        elif what == "drop":
            del buffer[:arg]
            del model[:arg]
        else:
            n = min(arg, len(model))
            events, ends, dots = buffer.take(n)
            assert dots is None
            assert events == b"".join(model[:n])
            assert list(memoryview(ends).cast("q")) == list(accumulate(map(len, model[:n])))
            del model[:n]
        assert len(buffer) == len(model)
        assert buffer[:] == model
    assert list(buffer) == model
    assert buffer[lo:hi:step] == model[lo:hi:step]
    for i in (lo, hi):
        if -len(model) <= i < len(model):
            assert buffer[i] == model[i]
        else:
            with pytest.raises(IndexError):
                buffer[i]


def test_encoded_events_refuse_what_a_log_never_does() -> None:
    buffer = _speedups.EncodedEvents()
    buffer.extend([b"a", b"b", b"c"])
    with pytest.raises(TypeError, match="bytes"):
        buffer.append("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        buffer.extend([b"d", "e"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="iterable"):
        buffer.extend(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="front"):
        del buffer[1:]
    with pytest.raises(TypeError, match="front"):
        del buffer[0]  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="front"):
        buffer[:1] = [b"x"]  # type: ignore[index]
    with pytest.raises(ValueError, match="take"):
        buffer.take(4)
    with pytest.raises(ValueError, match="take"):
        buffer.take(-1)
    with pytest.raises(TypeError, match="positional"):
        _speedups.EncodedEvents([b"a"])  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="keeps no dots"):
        buffer.add(b"d", "a", 1)
    with pytest.raises(TypeError, match="keeps no dots"):
        buffer.add_many([b"d"], ["a"], [1])
    del buffer[5:]  # an empty range, as for a list
    assert buffer[:] == [b"a", b"b", b"c"]  # nothing changed


def test_encoded_events_across_chunks_and_larger_than_one() -> None:
    # events of up to 200 KB, the buffer growing and compacting under them
    rng = random.Random(7)
    buffer, model = _speedups.EncodedEvents(), []
    for step in range(3000):
        n = (
            rng.choice([0, 1, 7, 300, 4000, 65535, 65536, 65537, 200_000])
            if step % 50 == 0
            else rng.randrange(0, 3000)
        )
        event = rng.randbytes(n)
        buffer.append(event)
        model.append(event)
        if rng.random() < 0.05:
            k = rng.randrange(0, len(model) + 1)
            if rng.random() < 0.5:
                del buffer[:k]
            else:
                events, ends, _ = buffer.take(k)
                assert events == b"".join(model[:k])
                assert list(memoryview(ends).cast("q")) == list(accumulate(map(len, model[:k])))
            del model[:k]
        if step % 100 == 0:
            assert buffer[:] == model
    assert list(buffer) == model


def test_encoded_events_keep_the_room_they_use_and_give_back_a_bursts() -> None:
    buffer = _speedups.EncodedEvents()
    assert sys.getsizeof(buffer) < 4096  # a small log starts small
    buffer.append(b"e" * 40)
    assert sys.getsizeof(buffer) < 4096
    buffer.extend([b"e" * 40] * 1_000_000)
    full = sys.getsizeof(buffer)
    assert full >= 1_000_000 * 48  # the bytes and one offset per event
    assert full < 1_000_000 * 48 * 1.5  # and no object per event
    del buffer[:1_000_000]
    # the next events will need as much room as these did: it stays
    assert sys.getsizeof(buffer) == full
    assert buffer[:] == [b"e" * 40]
    for _ in range(_speedups.QUIET_DROPS - 1):  # quiet, but not yet for long
        buffer.extend([b"f" * 40] * 10)
        buffer.take(len(buffer))
    assert sys.getsizeof(buffer) == full
    for _ in range(2):  # quiet for long after the burst: what it took goes back
        buffer.extend([b"f" * 40] * 10)
        buffer.take(len(buffer))
    assert sys.getsizeof(buffer) < 65536
    buffer.extend([b"f" * 40] * 10_000)
    assert sys.getsizeof(buffer) < 10_000 * 48 * 2.5
    assert buffer[-1] == b"f" * 40
    assert len(buffer) == 10_000


def test_a_commit_at_a_time_keeps_its_room() -> None:
    # a durable log's pending events: filled and taken whole, again and again, with no
    # shrinking and regrowing in between
    buffer = _speedups.EncodedEvents(dots=True)
    sizes = []
    for _ in range(5):
        buffer.add_many([b"e" * 40] * 5000, ["a"] * 5000, list(range(1, 5001)))
        sizes.append(sys.getsizeof(buffer))
        buffer.take(len(buffer))
    assert sizes == [sizes[0]] * 5


def test_uneven_commits_keep_their_room() -> None:
    # A commit thread's takes vary with how long it waited for the GIL: a small one among
    # large ones gives nothing back, or the next large one would grow into fresh pages.
    buffer = _speedups.EncodedEvents(dots=True)
    buffer.add_many([b"e" * 40] * 20_000, ["a"] * 20_000, list(range(1, 20_001)))
    buffer.take(len(buffer))
    full = sys.getsizeof(buffer)
    seq = 20_000
    for k in range(4 * _speedups.QUIET_DROPS):
        n = 20_000 if k % _speedups.QUIET_DROPS == 0 else 500
        buffer.add_many([b"e" * 40] * n, ["a"] * n, list(range(seq + 1, seq + n + 1)))
        seq += n
        buffer.take(len(buffer))
        assert sys.getsizeof(buffer) == full


# ------------------------------------------------ a durable log's pending events, with dots

_dot_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("add"),
            st.binary(max_size=60),
            st.sampled_from("abcdefghij"),
            st.integers(1, 2**64 - 1),
        ),
        st.tuples(
            st.just("many"),
            st.lists(
                st.tuples(
                    st.binary(max_size=20),
                    st.sampled_from("ab") | st.text(min_size=1, max_size=3),
                    st.integers(1, 40),
                ),
                max_size=30,
            ),
        ),
        st.tuples(st.just("take"), st.integers(0, 40)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_dot_ops, st.data())
def test_pending_events_with_dots_match_the_python_twin(
    ops: list[Any], data: st.DataObject
) -> None:
    native, python = _speedups.EncodedEvents(dots=True), PendingEvents()
    for op in ops:
        if op[0] == "add":
            for buffer in (native, python):
                buffer.add(*op[1:])
        elif op[0] == "many":
            bodies, origins, seqs = (
                (list(x) for x in zip(*op[1], strict=True)) if op[1] else ([], [], [])
            )
            for buffer in (native, python):
                buffer.add_many(bodies, origins, seqs)
        else:
            n = min(op[1], len(python))
            blob, ends, dots = native.take(n)
            twin_blob, twin_ends, twin_dots = python.take(n)
            assert blob == twin_blob
            assert list(memoryview(ends).cast("q")) == twin_ends
            assert dots is not None
            assert len(dots) == len(twin_dots) == n
            lo = data.draw(st.integers(0, n))
            hi = data.draw(st.integers(lo, n))
            assert dots.maxima(lo, hi) == twin_dots.maxima(lo, hi)
            assert dots.maxima(0, n) == twin_dots.maxima(0, n)
        assert len(native) == len(python)
    assert native[:] == python.bodies


def test_pending_events_refuse_bad_dots_and_change_nothing() -> None:
    buffer = _speedups.EncodedEvents(dots=True)
    buffer.add(b"x", "a", 1)
    with pytest.raises(TypeError, match="keeps dots"):
        buffer.append(b"y")
    with pytest.raises(TypeError, match="keeps dots"):
        buffer.extend([b"y"])
    with pytest.raises(TypeError, match="add takes"):
        buffer.add(b"y", "a")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="origin is a str"):
        buffer.add(b"y", 7, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="seq is an int"):
        buffer.add(b"y", "a", "2")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        buffer.add(b"y", "a", -1)
    with pytest.raises(OverflowError):
        buffer.add(b"y", "a", 2**64)
    with pytest.raises(ValueError, match="as many"):
        buffer.add_many([b"y", b"z"], ["a"], [2, 3])
    with pytest.raises(TypeError, match="add_many takes"):
        buffer.add_many([b"y"], ["a"])  # type: ignore[call-arg]
    with pytest.raises(OverflowError):  # the second one is bad: the first does not stay either
        buffer.add_many([b"y", b"z"], ["a", "b"], [2, -3])
    with pytest.raises(TypeError, match="iterable"):
        buffer.add_many([b"y"], 5, [2])  # type: ignore[arg-type]
    assert buffer[:] == [b"x"]
    blob, _, dots = buffer.take(1)
    assert dots is not None
    assert (blob, dots.maxima(0, 1), dots.maxima(1, 1)) == (b"x", {"a": 1}, {})
    with pytest.raises(ValueError, match="maxima"):
        dots.maxima(0, 2)
    with pytest.raises(ValueError, match="maxima"):
        dots.maxima(1, 0)
    with pytest.raises(TypeError, match="maxima takes"):
        dots.maxima(0)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="maxima"):
        Dots(["a"], [1]).maxima(0, 2)
    with pytest.raises(TypeError, match="keep dots"):
        _speedups.appender(object(), _speedups.EncodedEvents(), 10)
