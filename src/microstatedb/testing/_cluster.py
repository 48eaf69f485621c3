"""A simulated cluster for tests: the deterministic simulator plus a log of every step taken.

``Cluster`` wraps ``runtime.sim.Simulation`` (real stores, the real anti-entropy protocol, one
seeded random source) and records each fault and write with its virtual time, so that a failing
test can print the seed and the schedule that reproduces it. ``Nemesis`` draws faults from its
own seeded random source; ``apply_schedule`` runs a schedule drawn by hypothesis.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from microstatedb.errors import ConfigurationError
from microstatedb.replica import Store
from microstatedb.runtime.sim import Simulation
from microstatedb.testing import _registry

Step = tuple[Any, ...]
"""One step of a schedule: ``("partition", groups)``, ``("heal",)``, ``("crash", node)``,
``("restart", node)``, ``("loss", p)``, ``("duplicate", p)``, ``("reorder", max_delay)``,
``("write", node)`` (a random write) or ``("run", seconds)``."""


class Cluster:
    """``nodes`` stores over a simulated network, replayable from ``seed``.

    Index it by node name (``cluster["n000"]``) for the store. Every fault and every write made
    through ``write`` is logged in ``schedule`` with its virtual time.
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.05),
    ) -> None:
        self.seed = seed
        self.sim = Simulation(nodes, seed=seed, loss=loss, duplicate=duplicate, delay=delay)
        self.schedule: list[tuple[float, Step]] = []
        _registry.track(self)

    # ------------------------------------------------------------------------- access

    @property
    def names(self) -> list[str]:
        """Node names, ``n000`` upward."""
        return list(self.sim.names)

    @property
    def now(self) -> float:
        """Virtual seconds since the cluster started."""
        return self.sim.now

    def __getitem__(self, name: str) -> Store:
        return self.sim.store(name)

    def stores(self) -> list[Store]:
        """The stores of the running nodes."""
        return [self.sim.store(n) for n in self.sim.up_nodes()]

    def _log(self, *step: Any) -> None:
        self.schedule.append((round(self.sim.now, 6), step))

    # ------------------------------------------------------------------------- faults

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network into ``groups`` (nodes left out form one more group)."""
        frozen = tuple(tuple(g) for g in groups)
        self.sim.partition(*frozen)
        self._log("partition", frozen)

    def heal(self) -> None:
        """Remove every partition."""
        self.sim.heal()
        self._log("heal")

    def crash(self, name: str, *, keep_disk: bool = True) -> None:
        """Stop node ``name``; messages to it are lost until ``restart``."""
        self.sim.crash(name, keep_disk=keep_disk)
        if keep_disk:
            self._log("crash", name)
        else:
            self._log("crash", name, "wipe")

    def restart(self, name: str) -> None:
        """Start a crashed node again."""
        self.sim.restart(name)
        self._log("restart", name)

    def set_loss(self, p: float) -> None:
        """Drop each message with probability ``p``."""
        self.sim.loss = _probability(p)
        self._log("loss", p)

    def set_duplicate(self, p: float) -> None:
        """Deliver each message twice with probability ``p``."""
        self.sim.duplicate = _probability(p)
        self._log("duplicate", p)

    def set_reorder(self, max_delay: float) -> None:
        """Delay messages by up to ``max_delay`` seconds, so they overtake one another."""
        if not max_delay > 0:
            raise ConfigurationError(f"max_delay must be positive seconds, got {max_delay!r}")
        self.sim.delay = (0.0, max_delay)
        self._log("reorder", max_delay)

    # ------------------------------------------------------------------ work and time

    def write(
        self, name: str, op: Callable[[Store], object] | None = None, *, label: str = ""
    ) -> None:
        """One write on node ``name``: ``op(store)``, or a random mixed-CRDT write when None."""
        self.sim.write(name, op)
        if label:
            self._log("write", name, label)
        else:
            self._log("write", name)

    def run(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass (messages flow, timers fire)."""
        self.sim.run(seconds)
        self._log("run", seconds)

    def converged(self) -> bool:
        """True when every running node holds the same events and the same state."""
        return self.sim.converged()

    def settle(self, timeout: float = 120.0) -> float:
        """Heal, restart crashed nodes, stop loss and duplication, then run until converged.

        Returns the virtual seconds convergence took; raises ``AssertionError`` with the seed and
        the schedule when the nodes do not agree within ``timeout`` virtual seconds.
        """
        self.sim.heal()
        self.sim.loss = self.sim.duplicate = 0.0
        for name in self.names:
            if not self.sim.is_up(name):
                self.sim.restart(name)
        self._log("settle")
        took = self.sim.run_until_converged(timeout=timeout)
        if took is None:
            raise AssertionError(
                f"the nodes did not converge within {timeout} virtual seconds\n"
                + self.replay_text()
            )
        return took

    def apply(self, schedule: Sequence[Step]) -> None:
        """Run a schedule (as drawn by ``strategies.schedules``), step by step."""
        for step in schedule:
            kind, args = step[0], step[1:]
            if kind == "partition":
                self.partition(*args[0])
            elif kind == "write" and not self.sim.is_up(args[0]):
                # A client's write to a crashed node is refused; the schedule goes on.
                self._log("write", args[0], "refused: node down")
            elif kind in ("heal", "crash", "restart", "run", "write"):
                getattr(self, kind)(*args)
            elif kind in ("loss", "duplicate", "reorder"):
                getattr(self, f"set_{kind}")(*args)
            else:
                raise ConfigurationError(f"unknown schedule step {step!r}")

    def replay_text(self) -> str:
        """The seed and the schedule so far, one step a line."""
        lines = [f"msdb seed={self.seed} nodes={len(self.names)}; schedule:"]
        lines += [f"  t={t:.3f} {step!r}" for t, step in self.schedule]
        return "\n".join(lines)

    def close(self) -> None:
        """Close every store."""
        self.sim.close()

    def __repr__(self) -> str:
        return f"<Cluster nodes={len(self.names)} seed={self.seed} steps={len(self.schedule)}>"


def _probability(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ConfigurationError(f"a probability is between 0 and 1, got {p!r}")
    return p


class Nemesis:
    """Faults for a ``Cluster``, chosen by a seeded random source (the cluster's seed if none)."""

    FAULTS = ("partition", "heal", "drop", "duplicate", "reorder", "crash", "restart")
    """What ``chaos`` picks from."""

    def __init__(self, cluster: Cluster, rng: random.Random | None = None) -> None:
        self.cluster = cluster
        self.rng = rng if rng is not None else random.Random(cluster.seed)

    def partition(self) -> tuple[list[str], list[str]]:
        """Split the nodes into two non-empty random sides; returns them."""
        names = self.cluster.names
        if len(names) < 2:
            raise ConfigurationError("a partition needs at least 2 nodes")
        shuffled = self.rng.sample(names, len(names))
        cut = self.rng.randint(1, len(names) - 1)
        sides = (sorted(shuffled[:cut]), sorted(shuffled[cut:]))
        self.cluster.partition(*sides)
        return sides

    def heal(self) -> None:
        """Remove every partition."""
        self.cluster.heal()

    def drop(self, p: float = 0.2) -> None:
        """Lose messages with probability ``p``."""
        self.cluster.set_loss(p)

    def duplicate(self, p: float = 0.2) -> None:
        """Deliver messages twice with probability ``p``."""
        self.cluster.set_duplicate(p)

    def reorder(self, max_delay: float = 0.5) -> None:
        """Spread delivery delays up to ``max_delay`` seconds, so messages overtake."""
        self.cluster.set_reorder(max_delay)

    def crash(self, name: str | None = None) -> str | None:
        """Crash ``name`` (a random running node if None; never the last one); returns it."""
        up = self.cluster.sim.up_nodes()
        if name is None:
            if len(up) < 2:
                return None
            name = self.rng.choice(up)
        self.cluster.crash(name)
        return name

    def restart(self) -> None:
        """Restart every crashed node."""
        for name in self.cluster.names:
            if not self.cluster.sim.is_up(name):
                self.cluster.restart(name)

    def chaos(self, steps: int = 10, seconds: float = 0.5, writes: int = 2) -> None:
        """``steps`` rounds of: a random fault, ``writes`` random writes, ``seconds`` of time."""
        for _ in range(steps):
            fault = self.rng.choice(self.FAULTS)
            getattr(self, fault)()
            for _ in range(writes):
                up = self.cluster.sim.up_nodes()
                self.cluster.write(self.rng.choice(up))
            self.cluster.run(seconds)
