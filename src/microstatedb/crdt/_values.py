"""Checks for the values users put into CRDTs: register values and set elements."""

from __future__ import annotations

from typing import Any

from microstatedb.codec import packb, unpackb
from microstatedb.errors import DataError, DecodeError, InvalidOperation

_I64_MIN = -(1 << 63)
_U64_MAX = (1 << 64) - 1
_SCALARS = (str, int, float, bytes, bool, type(None))

ElemKey = Any
"""The internal dict key of a set element (see ``elem_key``)."""


def register_value(v: Any) -> Any:
    """A register value as stored: scalars as they are, containers as a private copy.

    Containers go through msgpack once: that checks they can cross the wire and copies them,
    so a later change to the caller's list does not change the register behind its back.
    Tuples come back as lists, as they would from any other replica.
    """
    if type(v) in _SCALARS:
        if type(v) is int and not _I64_MIN <= v <= _U64_MAX:
            raise InvalidOperation(f"int {v} does not fit msgpack's 64 bits")
        return v
    try:
        return unpackb(packb(v))
    except (TypeError, ValueError, OverflowError, DataError) as exc:
        raise InvalidOperation(
            f"a register value must be msgpack data (str, int, float, bytes, bool, None, and "
            f"lists or str-keyed dicts of them), got {type(v).__name__}: {exc}"
        ) from None


def elem_key(x: Any) -> ElemKey:
    """The dict key of a set element; raises ``InvalidOperation`` for what is not allowed.

    Python finds ``1 == 1.0 == True`` and ``0.0 == -0.0``, but msgpack keeps them apart; so
    bools and floats get a tagged key, and every replica keeps them as distinct elements.
    """
    t = type(x)
    if t is str or t is bytes or x is None:
        return x
    if t is int:
        if not _I64_MIN <= x <= _U64_MAX:
            raise InvalidOperation(f"set element {x} does not fit msgpack's 64-bit ints")
        return x
    if t is bool:
        return ("bool", x)
    if t is float:
        if x != x:
            raise InvalidOperation("NaN cannot be a set element: it is not equal to itself")
        return ("float", x.hex())
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, bytes):
        return bytes(x)
    if isinstance(x, int):
        return elem_key(int(x))
    raise InvalidOperation(
        "set elements must be msgpack scalars (str, int, float, bytes, bool or None), "
        f"got {type(x).__name__}"
    )


def key_elem(k: ElemKey) -> Any:
    """The element back from its dict key."""
    if type(k) is tuple:
        tag, payload = k
        return payload if tag == "bool" else float.fromhex(payload)
    return k


def decode_elem(x: Any) -> ElemKey:
    """``elem_key`` for data off the wire: raises ``DecodeError``."""
    try:
        return elem_key(x)
    except InvalidOperation as exc:
        raise DecodeError(f"bad set element in a delta: {exc}") from None


def sort_key(x: Any) -> bytes:
    """A total, replica-independent order on msgpack values."""
    return packb(x)
