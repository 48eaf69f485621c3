"""Histories built by construction, for tests and benchmarks of the checkers.

Each operation gets a call time, a return time and a linearization point strictly inside its
interval; applying the operations in the order of their points to a map of registers gives
every result, so the history is linearizable by construction. ``stale_read`` then adds a
violation that no search can explain away.
"""

from __future__ import annotations

import random

from microstatedb.errors import ConfigurationError
from microstatedb.verify._history import History, HistoryEvent


def synthetic_history(
    rng: random.Random,
    *,
    operations: int,
    clients: int,
    keys: int,
    cas: bool = True,
    info_rate: float = 0.0,
    stale_read: bool = False,
) -> History:
    """A linearizable register-map history (read, write, cas) over ``keys`` keys.

    ``info_rate`` is the share of writes whose outcome is lost (recorded as ``info``, taking
    effect anyway). With ``stale_read``, one extra client reads key 0 after everything else and
    gets a value that was overwritten for sure (by a write called after that value's write
    returned): a non-linearizable history.
    """
    if operations < 1 or clients < 1 or keys < 1:
        raise ConfigurationError("operations, clients and keys must be at least 1")
    if not 0.0 <= info_rate <= 1.0:
        raise ConfigurationError("info_rate must be between 0 and 1")
    # each client runs operations back to back; times are integer nanoseconds
    free_at = [rng.randrange(0, 1_000) for _ in range(clients)]
    planned: list[tuple[int, int, int, int, str, int, object]] = []
    next_value = 1
    for n in range(operations):
        c = n % clients
        call = free_at[c] + rng.randrange(1, 400)
        ret = call + rng.randrange(2, 4_000)
        point = rng.randrange(call + 1, ret)
        free_at[c] = ret
        key = rng.randrange(keys)
        roll = rng.random()
        f = "read" if roll < 0.5 else ("write" if roll < 0.8 or not cas else "cas")
        arg: object = None
        if f == "write":
            arg = next_value
            next_value += 1
        planned.append((point, call, ret, c, f, key, arg))
    planned.sort()
    state: dict[int, object] = {}
    events: list[HistoryEvent] = []
    key0_writes: list[tuple[int, int, object, bool]] = []  # call, ret, value, surely applied
    for _point, call, ret, c, f, key, arg in planned:
        current = state.get(key)
        status, inv_value, out_value = "ok", arg, arg
        if f == "read":
            out_value = current
        elif f == "write":
            state[key] = arg
            if rng.random() < info_rate:
                status, out_value = "info", None
            if key == 0:
                key0_writes.append((call, ret, arg, status == "ok"))
        else:
            expected = current if rng.random() < 0.5 else next_value + 1_000_000
            new = next_value
            next_value += 1
            inv_value = out_value = (expected, new)
            if current == expected:
                state[key] = new
                if key == 0:
                    key0_writes.append((call, ret, new, True))
            else:
                status = "fail"
        events.append(HistoryEvent(c, "invoke", f, key, inv_value, call))
        events.append(HistoryEvent(c, status, f, key, out_value, ret))
    if stale_read:
        # the read comes after everything and returns a value overwritten for sure: written
        # (or initial) before the last applied write to key 0 was even called
        applied = [w for w in key0_writes if w[3]]
        if not applied:
            raise ConfigurationError("stale_read needs at least one applied write to key 0")
        last_call = max(w[0] for w in applied)
        older = [w for w in applied if w[1] < last_call]  # a lost write could land late
        stale = max(older, key=lambda w: w[1])[2] if older else None
        end = max(e.time for e in events)
        events.append(HistoryEvent(clients, "invoke", "read", 0, None, end + 1))
        events.append(HistoryEvent(clients, "ok", "read", 0, stale, end + 2))
    events.sort(key=lambda e: (e.time, e.type != "invoke"))
    return History(events)
