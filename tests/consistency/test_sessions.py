"""Causal sessions: the token, the waits, and the four session guarantees on many seeds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError, DecodeError, InvalidOperation, Unavailable
from microstatedb.replica import KeyModes, Store, decode_token, encode_token, sync
from microstatedb.verify import Recorder, Verdict, check_sessions

vectors = st.dictionaries(st.text(min_size=1, max_size=12), st.integers(1, 2**40), max_size=8)


@given(vectors)
def test_token_round_trips(vector: dict[str, int]) -> None:
    token = encode_token(vector)
    assert token.startswith("1.")
    assert decode_token(token) == vector
    assert all(c.isalnum() or c in "-_." for c in token)  # header-safe


@given(vectors, st.data())
def test_altered_token_is_refused(vector: dict[str, int], data: st.DataObject) -> None:
    token = encode_token(vector)
    i = data.draw(st.integers(2, len(token) - 1))
    c = data.draw(st.sampled_from("ABCDEFabcdef0123456789-_"))
    altered = token[:i] + c + token[i + 1 :]
    if altered != token:
        try:
            got = decode_token(altered)
        except DecodeError:
            return
        # a change in base64 padding bits only can decode to the same bytes
        assert got == vector


@pytest.mark.parametrize("bad", ["", "x", "2.gaFhAb63L88", "1.!!!", "1.", "1.AAAAAAAAAA"])
def test_malformed_tokens(bad: str) -> None:
    with pytest.raises(DecodeError):
        decode_token(bad)


def test_token_that_is_not_a_string() -> None:
    with pytest.raises(DecodeError):
        decode_token(b"1.abc")  # type: ignore[arg-type]


def test_token_with_a_wrong_shape_inside() -> None:
    from microstatedb.codec import checksum, packb

    body = packb({"a": -1})
    import base64

    bad = "1." + base64.urlsafe_b64encode(body + checksum(body, 4)).decode().rstrip("=")
    with pytest.raises(DecodeError):
        decode_token(bad)


def test_read_your_writes_across_stores_waits_then_refuses() -> None:
    a, b = Store("a"), Store("b")
    with a.session() as s:
        s.register("status").set("open")
        token = s.token
    other = b.session(token=token, timeout=0.02)
    with pytest.raises(Unavailable) as info:
        _ = other.register("status").value
    assert "a: has 0, needs 1" in str(info.value)
    assert other.missing() == {"a": (0, 1)}
    sync(a, b)
    assert other.ready()
    assert other.register("status").value == "open"


def test_wait_returns_as_soon_as_the_store_catches_up() -> None:
    a, b = Store("a"), Store("b")
    s = a.session()
    s.counter("visits").increment(3)
    clock = ManualClock()
    steps: list[float] = []

    def sleep(dt: float) -> None:
        steps.append(dt)
        clock.advance(dt)
        if len(steps) == 3:
            sync(a, b)

    other = b.session(token=s.token, timeout=1.0, clock=clock, sleep=sleep, poll=0.01)
    assert other.counter("visits").value == 3
    assert len(steps) == 3
    assert other.waits == 1


async def test_wait_async() -> None:
    a, b = Store("a"), Store("b")
    s = a.session()
    s.set("tags").add("vip")
    other = b.session(token=s.token, timeout=0.01)
    with pytest.raises(Unavailable):
        await other.wait_async()
    sync(a, b)
    await other.wait_async()
    assert "vip" in other.set("tags")
    assert sorted(other.set("tags")) == ["vip"]


async def test_wait_async_succeeds_while_waiting() -> None:
    import asyncio

    a, b = Store("a"), Store("b")
    s = a.session()
    s.register("r").set(1)
    other = b.session(token=s.token, timeout=5.0)

    async def later() -> None:
        await asyncio.sleep(0.005)
        sync(a, b)

    task = asyncio.ensure_future(later())
    await other.wait_async()
    await task
    assert other.waits == 1


def test_session_handles_cover_every_kind_and_nested_maps() -> None:
    a, b = Store("a"), Store("b")
    s = a.session()
    cart = s.map("cart:1")
    cart.counter("items").increment(2)
    s.mvregister("mv").set("x")
    s.document("doc")
    assert a.map("cart:1").value == {"items": 2}
    t = s.token
    assert decode_token(t) == {"a": 2}
    sync(a, b)
    s2 = b.session(token=t)
    assert s2.map("cart:1").counter("items").value == 2
    with pytest.raises(AttributeError):
        s2.register("r").value = 3
    assert "session handle" in repr(s2.register("r"))
    assert "Session on 'b'" in repr(s2)


def test_merge_and_vector() -> None:
    a = Store("a")
    s = a.session(token=encode_token({"x": 2}))
    s.merge(encode_token({"x": 1, "y": 4}))
    assert s.vector == {"x": 2, "y": 4}


@pytest.mark.parametrize("kwargs", [{"timeout": -1}, {"timeout": float("inf")}, {"poll": 0}])
def test_bad_session_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        Store("a").session(**kwargs)


def test_closed_store_refuses_a_session() -> None:
    a = Store("a")
    a.close()
    with pytest.raises(msdb.errors.StoreClosed):
        a.session()


def test_key_modes_refuse_mixing() -> None:
    store = Store("a", consistency={"acct:": "linearizable", "acct:cache:": "eventual"})
    assert store.consistency_of("acct:1") is msdb.Consistency.LINEARIZABLE
    assert store.consistency_of("acct:cache:1") is msdb.Consistency.EVENTUAL
    assert store.consistency_of("other") is msdb.Consistency.EVENTUAL
    with pytest.raises(InvalidOperation, match="strongly consistent"):
        store.counter("acct:1")
    store.counter("acct:cache:1").increment()
    modes = KeyModes({"x": msdb.Consistency.CAUSAL}, default="linearizable")
    with pytest.raises(InvalidOperation, match="default"):
        modes.check("y", strong=False)
    with pytest.raises(InvalidOperation, match="CRDT-replicated"):
        modes.check("x1", strong=True)
    modes.check("y", strong=True)
    assert "default=linearizable" in repr(modes)
    assert Store("b", consistency=modes).modes is modes


def test_key_modes_bad_configuration() -> None:
    with pytest.raises(ConfigurationError):
        KeyModes({"a": "strongest"})
    with pytest.raises(ConfigurationError):
        KeyModes({1: "eventual"})  # type: ignore[dict-item]
    # BOUNDED is how a register is read, not a mode a key lives in
    with pytest.raises(ConfigurationError, match="read with consistency=BOUNDED"):
        KeyModes({"a": "bounded"})
    with pytest.raises(ConfigurationError, match="not a mode of keys"):
        KeyModes(default=msdb.Consistency.BOUNDED)


# ------------------------------------------------------------------ guarantees on many seeds


def _run_workload(seed: int, *, sessions: bool, ops: int = 120) -> Recorder:
    """Clients hop between three stores that sync now and then, one direction at a time."""
    rng = random.Random(seed)
    stores = [Store(f"n{i}") for i in range(3)]
    clock = ManualClock()
    rec = Recorder(clock=clock)
    tokens: dict[int, str | None] = dict.fromkeys(range(4))
    counter = 0
    for _ in range(ops):
        clock.advance(0.001)
        if rng.random() < 0.3:
            src, dst = rng.sample(stores, 2)
            dst.apply(src.events_since(dst.version_vector))
            continue
        proc = rng.randrange(4)
        store = rng.choice(stores)
        key = f"k{rng.randrange(2)}"

        def catch_up(_dt: float, store: Store = store) -> None:
            # the store catches up while the session waits (anti-entropy from a random peer)
            peer = rng.choice(stores)
            store.apply(peer.events_since(store.version_vector))
            clock.advance(0.0005)

        target = (
            store.session(tokens[proc], timeout=0.002, clock=clock, sleep=catch_up)
            if sessions
            else store
        )
        try:
            if rng.random() < 0.5:
                counter += 1
                value = counter
                rec.call(proc, "write", key, value, target.register(key).set, value)
            else:
                rec.call(proc, "read", key, None, lambda t=target, k=key: t.register(k).value)
        except Unavailable:
            pass
        if sessions:
            tokens[proc] = target.token  # type: ignore[union-attr]
    return rec


@pytest.mark.parametrize("seed", range(40))
def test_sessions_hold_every_guarantee(seed: int) -> None:
    result = check_sessions(_run_workload(seed, sessions=True).history())
    assert result.verdict is Verdict.HOLDS, [v.text for v in result.violations]


def test_without_sessions_the_checker_finds_violations() -> None:
    broken = [
        seed
        for seed in range(40)
        if check_sessions(_run_workload(seed, sessions=False).history()).verdict is Verdict.VIOLATED
    ]
    assert len(broken) >= 10  # plain eventual reads do break session guarantees
