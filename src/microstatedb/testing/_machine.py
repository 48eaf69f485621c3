"""A hypothesis state machine over replicated stores, for users to state their invariants.

Subclass ``ReplicatedStoreMachine`` and add ``@rule`` methods that work on ``self.stores``;
the base adds partitions, heals, syncs between reachable stores, duplicated deliveries and
full exchanges, and at the end of every run (``settle``) checks that all stores converged
and calls ``check_converged`` for the service's own invariants. With ``consistency`` set to
``"sessions"`` or ``"causal"``, the reads and writes made through ``read``/``write`` are
recorded and their history is checked for that level as well.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from microstatedb.errors import ConfigurationError
from microstatedb.replica import Store, sync
from microstatedb.testing._checked import CheckedRecorder

_LEVELS = {"eventual": None, "sessions": "sessions", "causal": "causal"}


class ReplicatedStoreMachine(RuleBasedStateMachine):
    """``replicas`` in-memory stores under partitions and duplicated messages.

    The partition choices come from ``self.rng``, seeded by a value hypothesis draws, so a
    failing run shrinks and replays like any other example.
    """

    replicas = 3
    """How many stores."""
    consistency = "eventual"
    """``eventual``, ``sessions`` or ``causal``: what the recorded history must keep."""

    def __init__(self) -> None:
        super().__init__()
        if self.consistency not in _LEVELS:
            raise ConfigurationError(
                f"consistency must be one of {', '.join(_LEVELS)}, not {self.consistency!r}"
            )
        self.rng = random.Random(0)
        self.stores = [Store(f"r{i}") for i in range(self.replicas)]
        self.side = [0] * self.replicas
        self.recorder = CheckedRecorder(_LEVELS[self.consistency])
        self._written = 0

    # ------------------------------------------------------------------ for subclasses

    def check_converged(self, stores: list[Store]) -> None:
        """Assert the service's invariants on converged stores (override; default none)."""

    def write(self, i: int, key: str, value: Any = None) -> Any:
        """Set register ``key`` on store ``i`` (a fresh distinct value if None), recorded."""
        if value is None:
            self._written += 1
            value = self._written
        handle = self.stores[i].register(key)
        self.recorder.call(i, "write", key, value, handle.set, value)
        return value

    def read(self, i: int, key: str) -> Any:
        """Read register ``key`` on store ``i``, recorded."""
        return self.recorder.call(i, "read", key, None, self._peek, i, key)

    def _peek(self, i: int, key: str) -> Any:
        # Asking a store for a handle creates the key, and an empty key still changes the
        # store's digest: read a key the store has never seen as None without creating it.
        store = self.stores[i]
        known = store.keys()
        return store.register(key).value if key in known else None

    # --------------------------------------------------------------------- the network

    @initialize(seed=st.integers(0, 2**32 - 1))
    def seed_network(self, seed: int) -> None:
        self.rng.seed(seed)

    @rule()
    def partition(self) -> None:
        self.side = [self.rng.randrange(2) for _ in self.stores]

    @rule()
    def heal(self) -> None:
        self.side = [0] * self.replicas

    @rule(data=st.data())
    def sync_pair(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, self.replicas - 1), label="from")
        j = data.draw(st.integers(0, self.replicas - 1), label="to")
        if i != j and self.side[i] == self.side[j]:
            sync(self.stores[i], self.stores[j])

    @rule(data=st.data())
    def deliver_twice(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, self.replicas - 1), label="from")
        j = data.draw(st.integers(0, self.replicas - 1), label="to")
        if i != j and self.side[i] == self.side[j]:
            batch = self.stores[i].events_since(self.stores[j].version_vector)
            self.stores[j].apply(batch)
            self.stores[j].apply(batch)

    @rule()
    def heal_and_exchange(self) -> None:
        """Heal and let every pair of stores exchange everything (twice: relayed events)."""
        self.heal()
        for _ in range(2):
            for a in self.stores:
                for b in self.stores:
                    if a is not b:
                        sync(a, b)

    def settle(self) -> None:
        """Heal, exchange everything, and check convergence and the service's invariants.

        Runs at the end of every run; the checks run once, so a failure has one origin.
        """
        self.heal_and_exchange()
        digests = {s.digest() for s in self.stores}
        assert len(digests) == 1, "the stores did not converge after healing and syncing"
        values = [s.value() for s in self.stores]
        assert all(v == values[0] for v in values), "equal digests but different values"
        self.check_converged(self.stores)
        self.recorder.verify()

    def teardown(self) -> None:
        try:
            self.settle()
        finally:
            for s in self.stores:
                s.close()
