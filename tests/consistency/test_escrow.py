"""Escrow: local spends never oversell, whatever the interleaving of nodes."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError, Indeterminate, Unavailable
from microstatedb.protocols import Escrow

from .test_async_and_storage import _cluster


def test_escrow_unit_rules() -> None:
    with pytest.raises(ConfigurationError):
        Escrow("a", chunk=0)
    e = Escrow("a", chunk=5)
    with pytest.raises(ConfigurationError):
        e.try_spend(0)
    with pytest.raises(ConfigurationError):
        Escrow.restock(0)
    value, total = Escrow.restock(12)(None)
    assert total == 12
    assert not e.try_spend(1)
    value, got = e.take(1)(value)
    assert got == 5
    e.took(got)
    assert e.try_spend(3)
    assert e.share == 2
    assert Escrow.remaining(value) == 12  # spends are reported on release
    value, unspent = e.release()(value)
    e.released(unspent)
    assert unspent == 2
    assert Escrow.remaining(value) == 9
    assert value == {"pool": 9, "shares": {}}
    assert e.stats().local_spends == 1
    assert e.stats().refills == 1


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 3), st.integers(1, 8)), max_size=80))
def test_sequential_interleavings_never_oversell(steps: list[tuple[int, int, int]]) -> None:
    """Any order of spends, takes and releases by three nodes against one register value."""
    value: Any = Escrow.restock(50)(None)[0]
    nodes = [Escrow(n, chunk=4) for n in "abc"]
    sold = 0
    for who, action, n in steps:
        e = nodes[who]
        if action == 0 and e.try_spend(n):
            sold += n
        elif action == 1:
            value, got = e.take(n)(value)
            e.took(got)
        elif action == 2:
            value, unspent = e.release()(value)
            e.released(unspent)
        assert sold + Escrow.remaining(value) - sum(x.stats().spent for x in nodes) == 50
    for e in nodes:
        value, unspent = e.release()(value)
    assert sold + Escrow.remaining(value) == 50
    assert sold <= 50


async def test_escrow_over_the_consensus_register() -> None:
    _net, nodes = await _cluster()
    rng = random.Random(5)
    escrows = {node.name: Escrow(node.name, chunk=6) for node in nodes}
    sold = [0]
    try:
        await nodes[0].change("stock", Escrow.restock(60))

        async def shopper(p: int) -> None:
            for _ in range(25):
                node = rng.choice(nodes)
                e = escrows[node.name]
                want = rng.randint(1, 4)
                if not e.try_spend(want):
                    try:
                        e.took(await node.change("stock", e.take(want)))
                    except (Unavailable, Indeterminate):
                        continue
                    if not e.try_spend(want):
                        continue  # sold out
                sold[0] += want

        await asyncio.gather(*(shopper(p) for p in range(4)))
        for node in nodes:
            e = escrows[node.name]
            e.released(await node.change("stock", e.release()))
        final = await nodes[1].read("stock")
    finally:
        for node in nodes:
            await node.stop()
    assert 40 <= sold[0] <= 60  # demand is far above the stock: nearly all of it sells
    assert sold[0] + Escrow.remaining(final) == 60
    assert sum(e.stats().local_spends for e in escrows.values()) > sum(
        e.stats().refills for e in escrows.values()
    )
