"""The join of a "dot map": keys mapped to the set of dots (adds) that keep them alive.

Shared by the add-wins set (elements) and the map (key presence). A dot survives a join when
both sides have it, or when one side has it and the other side has not seen it yet; a dot one
side has seen but no longer holds was removed there, and stays removed.
"""

from __future__ import annotations

from typing import Any

from microstatedb.clock import Dot
from microstatedb.crdt._context import DotContext, decode_dots
from microstatedb.errors import DecodeError

_MISSING: Any = object()


def decode_entries(raw: Any, decode_key: Any) -> dict[Any, tuple[Dot, ...]]:
    """``[[key, [dot, ...]], ...]`` off the wire, checked; raises ``DecodeError``."""
    if type(raw) not in (list, tuple):
        raise DecodeError(f"entries must be a list of [key, dots], got {raw!r}")
    out: dict[Any, tuple[Dot, ...]] = {}
    seen: set[Dot] = set()
    for item in raw:
        if type(item) not in (list, tuple) or len(item) != 2:
            raise DecodeError(f"an entry must be [key, dots], got {item!r}")
        k = decode_key(item[0])
        if k in out:
            raise DecodeError(f"key {item[0]!r} appears twice in one delta")
        dots = decode_dots(item[1])
        for d in dots:
            if d in seen:
                raise DecodeError(f"dot {list(d)!r} is claimed by two keys in one delta")
            seen.add(d)
        out[k] = tuple(dots)
    return out


def join_dots(
    entries: dict[Any, tuple[Dot, ...]],
    where: dict[Dot, Any],
    ctx1: DotContext,
    theirs: dict[Any, tuple[Dot, ...]],
    ctx2: DotContext,
) -> set[Any]:
    """Join ``(theirs, ctx2)`` into ``(entries, ctx1)`` in place; returns the keys touched.

    ``where`` indexes every live dot to its key, so a small delta only visits the keys its
    context names instead of every key.
    """
    cand = set(theirs)
    for d in ctx2.cloud:
        k = where.get(d, _MISSING)
        if k is not _MISSING:
            cand.add(k)
    vv2 = ctx2.vv
    if vv2:
        for d, k in where.items():
            if vv2.get(d[0], 0) >= d[1]:
                cand.add(k)
    for k in cand:
        s1 = entries.get(k, ())
        s2 = theirs.get(k, ())
        keep = [d for d in s1 if d in s2 or not ctx2.contains(d)]
        keep.extend(d for d in s2 if d not in s1 and not ctx1.contains(d))
        for d in s1:
            if d not in keep:
                del where[d]
        for d in keep:
            where[d] = k
        if keep:
            entries[k] = tuple(keep)
        else:
            entries.pop(k, None)
    ctx1.join(ctx2)
    # A well-formed delta's context covers its own dots; make sure of it.
    for dots in theirs.values():
        for d in dots:
            ctx1.add(d)
    return cand


def encode_entries(entries: dict[Any, tuple[Dot, ...]], wire: Any, order: Any) -> list[Any]:
    """Canonical wire form: entries sorted by ``order(wire(key))``, dots sorted."""
    items = [(wire(k), dots) for k, dots in entries.items()]
    items.sort(key=lambda kv: order(kv[0]))
    return [[w, [list(d) for d in sorted(dots)]] for w, dots in items]
