"""Sequential specifications for the linearizability checker.

A model says, for one operation applied to one state, whether the operation's observed result
is legal and what the next state is. States must be hashable: the checker memoizes on
``(linearized set, state)``. ``partition`` returns the independent object an operation
touches, so that a history splits into parts checked alone (P-compositionality).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.verify._history import Operation

_READS = frozenset({"read", "get"})
_WRITES = frozenset({"write", "put"})


class SequentialModel:
    """Base class for user-defined models: override ``init`` and ``step``.

    ``step`` sees the whole ``Operation``: ``op.status`` is ``ok`` (``op.output`` holds the
    result), ``info`` (result unknown: accept any result) or ``fail`` (only when ``f`` is in
    ``keeps_failed``; otherwise the checker drops failed operations, which were not applied).
    """

    name = "custom"
    keeps_failed: frozenset[str] = frozenset()
    """Functions whose ``fail`` still says something about the state (see RegisterModel)."""

    def init(self) -> Hashable:
        """The state before any operation."""
        raise NotImplementedError

    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        """``(legal, next_state)`` for ``op`` applied to ``state``."""
        raise NotImplementedError

    def partition(self, op: Operation) -> Hashable:
        """The independent object ``op`` belongs to; one partition by default."""
        return None

    def check_operation(self, op: Operation) -> None:
        """Raise ``DecodeError`` (naming ``op.line``) for an operation the model cannot read."""

    def is_read_only(self, op: Operation) -> bool:
        """True when ``op`` never changes the state (lets explanations drop it)."""
        return False

    def describe(self, state: Any) -> str:
        """A short text for a state, used in explanations."""
        return repr(state)


class RegisterModel(SequentialModel):
    """Registers with read, write and compare-and-set, one independent register per key.

    A history without keys is a single register. ``read``/``get`` return the value,
    ``write``/``put`` set it, ``cas`` takes ``(expected, new)``. ``initial`` is the value before
    any write (None: absent). A failed cas means the comparison failed when
    ``fail_observes=True`` (Porcupine's reading of etcd histories); with False, a failed
    operation simply did not happen (Knossos's reading).
    """

    name = "register"

    def __init__(self, initial: Hashable = None, *, fail_observes: bool = False) -> None:
        self.initial = initial
        self.keeps_failed = frozenset({"cas"}) if fail_observes else frozenset()

    def init(self) -> Hashable:
        return self.initial

    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        f = op.f
        if f in _READS:
            return (op.status != "ok" or op.output == state), state
        if f in _WRITES:
            return True, op.value
        expected, new = op.value
        if op.status == "ok":
            return state == expected, new
        if op.status == "fail":
            return state != expected, state
        return True, (new if state == expected else state)

    def partition(self, op: Operation) -> Hashable:
        return op.key

    def is_read_only(self, op: Operation) -> bool:
        return op.f in _READS

    def check_operation(self, op: Operation) -> None:
        if op.f in _READS or op.f in _WRITES:
            return
        if op.f == "cas":
            if not (isinstance(op.value, tuple) and len(op.value) == 2):
                raise DecodeError(
                    f"line {op.line}: a cas value must be [expected, new], not {op.value!r}"
                )
            return
        raise DecodeError(
            f"line {op.line}: the {self.name} model knows read, write and cas, not {op.f!r}"
        )


class KVModel(RegisterModel):
    """A key-value map (get/read, put/write, cas), checked key by key."""

    name = "kv"


class KVAppendModel(SequentialModel):
    """A map of strings with get, put and append (6.824 style); every key starts as ``""``."""

    name = "kv-append"

    def init(self) -> Hashable:
        return ""

    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        f = op.f
        if f == "append":
            return True, state + op.value
        if f in _READS:
            if op.status != "ok":
                return True, state
            return (op.output or "") == state, state
        return True, op.value

    def partition(self, op: Operation) -> Hashable:
        return op.key

    def is_read_only(self, op: Operation) -> bool:
        return op.f in _READS

    def check_operation(self, op: Operation) -> None:
        if op.f in _READS:
            return
        if op.f in ("append", "put", "write") and isinstance(op.value, str):
            return
        raise DecodeError(
            f"line {op.line}: the kv-append model knows get, put and append of strings,"
            f" not {op.f!r} of {op.value!r}"
        )


MODELS: dict[str, type[SequentialModel]] = {
    "register": RegisterModel,
    "kv": KVModel,
    "kv-append": KVAppendModel,
}
"""The built-in models by the names the CLI uses."""


def model_named(name: str) -> SequentialModel:
    """A built-in model by name; raises ``ConfigurationError`` for an unknown one."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ConfigurationError(
            f"unknown model {name!r}; use one of {', '.join(MODELS)} or pass a SequentialModel"
        ) from None
