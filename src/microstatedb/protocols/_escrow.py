"""Escrow: a bounded counter (stock, balance) spent from local shares, refilled by consensus.

The counter's linearizable register holds ``{"pool": units not yet handed out, "shares":
{node: units handed to it and not yet returned}}``. A node spends from its own share with no
network at all; when the share runs short it takes more from the pool with one consensus
change (``take``), and it gives back what it did not spend with another (``release``). A unit
is in the pool or in exactly one share, and a node spends only what its share holds, so the
counter never goes below zero, whatever the partitions: a node cut off from the majority can
still spend its share, and then refuses.

This object is sans-I/O: it keeps the local share and builds the changes; the caller runs them
on the register (``AsyncQuorum.change``) and hands the result back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microstatedb.errors import ConfigurationError

_EMPTY: dict[str, Any] = {"pool": 0, "shares": {}}


def _state(value: Any) -> tuple[int, dict[str, int]]:
    if value is None:
        return 0, {}
    return int(value["pool"]), {str(k): int(v) for k, v in value["shares"].items()}


@dataclass(frozen=True, slots=True)
class EscrowStats:
    """What one node's escrow did."""

    share: int
    """Units this node holds and may spend without the network."""
    spent: int
    """Units this node spent since it last reported to the register."""
    local_spends: int
    """Spends served from the share alone."""
    refills: int
    """Consensus changes that took units from the pool (empty ones not counted)."""


class Escrow:
    """One node's view of an escrow counter; see the module docstring."""

    def __init__(self, node: str, *, chunk: int = 10) -> None:
        if chunk < 1:
            raise ConfigurationError(f"chunk must be at least 1 unit, not {chunk!r}")
        self.node = node
        self.chunk = chunk
        self._share = 0
        self._spent = 0
        self._local = 0
        self._refills = 0

    @property
    def share(self) -> int:
        """Units this node may spend now without asking anyone."""
        return self._share

    def try_spend(self, n: int) -> bool:
        """Spend ``n`` units from the local share; False when the share is too small (take
        more with ``take``, or refuse)."""
        if n < 1:
            raise ConfigurationError(f"spend a positive number of units, not {n!r}")
        if self._share < n:
            return False
        self._share -= n
        self._spent += n
        self._local += 1
        return True

    def take(self, want: int) -> Any:
        """The change that moves up to ``max(want, chunk)`` units from the pool to this node's
        share; its result is the number moved (hand it to ``took``)."""
        amount = max(want, self.chunk)
        node = self.node

        def change(value: Any) -> tuple[Any, Any]:
            pool, shares = _state(value)
            got = min(pool, amount)
            shares[node] = shares.get(node, 0) + got
            return {"pool": pool - got, "shares": shares}, got

        return change

    def took(self, got: int) -> None:
        """Record the result of a ``take`` change that was applied."""
        self._share += got
        if got:
            self._refills += 1

    def release(self) -> Any:
        """The change that reports what this node spent and returns its unspent share to the
        pool. Until its result comes back (``released``) the node spends nothing more."""
        node, unspent, spent = self.node, self._share, self._spent
        self._share = 0
        self._spent = 0

        def change(value: Any) -> tuple[Any, Any]:
            pool, shares = _state(value)
            shares[node] = shares.get(node, 0) - unspent - spent
            if shares[node] <= 0:
                del shares[node]
            return {"pool": pool + unspent, "shares": shares}, unspent

        return change

    def released(self, _unspent: int) -> None:
        """Record that a ``release`` change was applied."""

    @staticmethod
    def restock(n: int) -> Any:
        """The change that adds ``n`` units to the pool."""
        if n < 1:
            raise ConfigurationError(f"restock a positive number of units, not {n!r}")

        def change(value: Any) -> tuple[Any, Any]:
            pool, shares = _state(value)
            return {"pool": pool + n, "shares": shares}, pool + n

        return change

    @staticmethod
    def remaining(value: Any) -> int:
        """Units not yet spent as far as the register knows (exact after every release)."""
        pool, shares = _state(value)
        return pool + sum(shares.values())

    def stats(self) -> EscrowStats:
        """Counts so far."""
        return EscrowStats(self._share, self._spent, self._local, self._refills)
