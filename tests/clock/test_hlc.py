from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.clock import (
    HLC,
    ManualClock,
    RealClock,
    hlc_logical,
    hlc_physical_ms,
    make_hlc,
    vv_dominates,
    vv_merge,
)
from microstatedb.errors import ClockSkew, ConfigurationError


def test_pack_and_unpack() -> None:
    ts = make_hlc(1234, 7)
    assert hlc_physical_ms(ts) == 1234
    assert hlc_logical(ts) == 7


def test_now_follows_wall_clock() -> None:
    clock = ManualClock(100.0)
    hlc = HLC(clock)
    first = hlc.now()
    assert hlc_physical_ms(first) == 100_000
    clock.advance(1.0)
    assert hlc_physical_ms(hlc.now()) == 101_000


def test_monotonic_when_wall_clock_jumps_back() -> None:
    clock = ManualClock(1000.0)
    hlc = HLC(clock)
    before = hlc.now()
    clock.set_wall(10.0)
    after = [hlc.now() for _ in range(5)]
    assert after[0] > before
    assert after == sorted(set(after))


@given(st.lists(st.tuples(st.floats(-5, 5), st.booleans()), max_size=60))
def test_timestamps_strictly_increase_whatever_the_wall_clock_does(
    steps: list[tuple[float, bool]],
) -> None:
    clock = ManualClock(1_000.0)
    hlc = HLC(clock, max_drift=10.0)
    last = hlc.now()
    for jump, remote in steps:
        clock.set_wall(clock.now() + jump)
        if remote:
            ts = hlc.update(make_hlc(int((clock.now() + jump) * 1000), 3))
        else:
            ts = hlc.now()
        assert ts > last
        last = ts


def test_update_adopts_remote_within_bound() -> None:
    clock = ManualClock(100.0)
    hlc = HLC(clock, max_drift=5.0)
    remote = make_hlc(103_000, 9)
    assert hlc.update(remote) > remote


def test_update_refuses_remote_too_far_ahead() -> None:
    clock = ManualClock(100.0)
    hlc = HLC(clock, max_drift=5.0)
    before = hlc.now()
    with pytest.raises(ClockSkew, match="ahead"):
        hlc.update(make_hlc(200_000))
    assert hlc.last == before  # not adopted


def test_bad_drift_bound() -> None:
    with pytest.raises(ConfigurationError):
        HLC(max_drift=0)


def test_manual_clock_refuses_negative_advance() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        ManualClock().advance(-1)


def test_real_clock_moves() -> None:
    clock = RealClock()
    assert clock.now() > 1.6e9
    assert clock.monotonic() <= clock.monotonic()


def test_version_vectors() -> None:
    a = {"x": 2, "y": 1}
    b = {"x": 1, "z": 4}
    assert vv_merge(a, b) == {"x": 2, "y": 1, "z": 4}
    assert vv_dominates(vv_merge(a, b), a)
    assert not vv_dominates(a, b)
    assert vv_dominates(a, {})


@given(
    st.lists(
        st.tuples(st.floats(-0.01, 0.01) | st.sampled_from([0.0, 0.0005, 0.001]), st.booleans()),
        max_size=80,
    )
)
def test_now_is_the_reference_rule_with_the_millisecond_shortcut(
    steps: list[tuple[float, bool]],
) -> None:
    # now() skips the int conversion while the wall stays within the last millisecond; it
    # must still give exactly max(wall in ms << 16, last + 1) after any jumps and observes.
    clock = ManualClock(1_000.0)
    hlc = HLC(clock)
    for jump, observe in steps:
        clock.set_wall(clock.now() + jump)
        if observe:
            hlc.observe(make_hlc(int(clock.now() * 1000) + 2, 5))
        expected = max(make_hlc(int(clock.now() * 1000.0)), hlc.last + 1)
        assert hlc.now() == expected


def test_the_hlc_on_the_machines_clock_reads_its_coarse_clock() -> None:
    clock = RealClock()
    assert HLC(clock).wall is clock.coarse
    manual = ManualClock()
    assert HLC(manual).wall == manual.now  # a clock without a coarse reading: its own now()
    for _ in range(1000):
        before = time.time()
        coarse = clock.coarse()
        after = time.time()
        # the last timer tick: never ahead of the precise clock, at most a tick (10 ms) behind
        assert before - 0.010 <= coarse <= after
