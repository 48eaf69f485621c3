"""Histories: events as recorded, the three file forms, and operations paired from events.

The native form is JSON Lines, one event per line (see docs/verification.md)::

    {"process": 0, "type": "invoke", "f": "cas", "key": "k", "value": [1, 2], "time": 1200}
    {"process": 0, "type": "ok", "f": "cas", "key": "k", "value": [1, 2], "time": 1850}

Jepsen's conventions hold: ``ok`` means applied, ``fail`` certainly not applied, ``info``
unknown (it may take effect at any time after its call, or never).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.verify._edn import Keyword, read_edn_forms, read_edn_items, write_edn

EVENT_TYPES = frozenset({"invoke", "ok", "fail", "info"})
"""The ``type`` values an event may have."""

Format = Literal["jsonl", "edn", "jepsen-log"]
FORMATS: tuple[str, ...] = ("jsonl", "edn", "jepsen-log")
"""The history file forms, as the CLI names them."""


class HistoryEvent(NamedTuple):
    """One line of a history: an invocation or a completion."""

    process: Hashable
    type: str
    f: str
    key: Hashable
    value: Any
    time: int
    session: str | None = None
    node: str | None = None


@dataclass(frozen=True, slots=True)
class Operation:
    """An invocation paired with its completion (``ret`` is None when none is known)."""

    index: int
    """Position among the history's operations, in order of invocation."""
    process: Hashable
    """The client (Jepsen's logical process) that ran it."""
    f: str
    """The function: ``read``, ``write``, ``cas``, ``get``, ``put``, ``append``..."""
    key: Hashable
    """The key it touched, or None for a single-object history."""
    value: Any
    """The invocation's argument (for a cas, the tuple ``(expected, new)``)."""
    output: Any
    """The completion's value when ``status`` is ``ok`` (what a read returned), else None."""
    status: str
    """``ok``, ``fail`` (certainly not applied) or ``info`` (unknown, maybe applied)."""
    call: int
    """Invocation time (ns, or line position for untimed forms)."""
    ret: int | None
    """Completion time; None for ``info`` and for calls that never completed."""
    session: str | None = None
    """Session the operation belongs to (defaults to the process in session checks)."""
    node: str | None = None
    """Replica that served it, when the recorder knew."""
    line: int = 0
    """Line of the invocation in the source file (0 if built in memory)."""


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted(((_hashable(k), _hashable(v)) for k, v in value.items()), key=repr))
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted((_jsonable(v) for v in value), key=repr)
    return value


class History(Sequence[HistoryEvent]):
    """An immutable sequence of events, with the source line of each for error messages."""

    __slots__ = ("_events", "_lines")

    def __init__(self, events: Iterable[HistoryEvent], lines: Iterable[int] | None = None):
        self._events = tuple(events)
        self._lines = tuple(lines) if lines is not None else tuple(range(1, len(self._events) + 1))
        if len(self._lines) != len(self._events):
            raise ConfigurationError("History needs one line number per event")

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[HistoryEvent]:
        return iter(self._events)

    def __getitem__(self, i: int) -> HistoryEvent:  # type: ignore[override]
        return self._events[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self._events == other._events

    def __hash__(self) -> int:
        return hash(self._events)

    def __repr__(self) -> str:
        return f"History({len(self._events)} events)"

    @property
    def lines(self) -> tuple[int, ...]:
        """The source line of each event."""
        return self._lines

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str, format: str = "jsonl") -> History:
        """Parse ``text`` in one of ``FORMATS``; raises ``DecodeError`` naming the line."""
        if format == "jsonl":
            return _parse_jsonl(text)
        if format == "edn":
            return _parse_edn(text)
        if format == "jepsen-log":
            return _parse_jepsen_log(text)
        raise ConfigurationError(f"unknown history format {format!r}; use one of {FORMATS}")

    @classmethod
    def load(cls, path: str | Path, format: str | None = None) -> History:
        """Read a history file; ``format`` defaults from the suffix (.edn, .log, else jsonl)."""
        p = Path(path)
        if format is None:
            format = {".edn": "edn", ".log": "jepsen-log"}.get(p.suffix, "jsonl")
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"{p}: not UTF-8 text ({exc.reason})") from exc
        return cls.parse(text, format)

    # -- writing ------------------------------------------------------------------------------

    def dumps(self, format: str = "jsonl") -> str:
        """The history as text in one of ``FORMATS`` (one event per line)."""
        if format == "jsonl":
            return "".join(_event_json(e) + "\n" for e in self._events)
        if format == "edn":
            return "".join(_event_edn(e) + "\n" for e in self._events)
        if format == "jepsen-log":
            return "".join(_event_log(e) + "\n" for e in self._events)
        raise ConfigurationError(f"unknown history format {format!r}; use one of {FORMATS}")

    def dump(self, path: str | Path, format: str = "jsonl") -> None:
        """Write the history to a file."""
        Path(path).write_text(self.dumps(format), encoding="utf-8")

    # -- pairing ------------------------------------------------------------------------------

    def operations(self) -> list[Operation]:
        """Pair every invocation with its process's next completion.

        Raises ``DecodeError`` (with the line) when a process invokes twice without completing,
        completes what it never invoked, completes another function, or goes back in time.
        """
        open_ops: dict[Hashable, tuple[HistoryEvent, int]] = {}
        order: list[tuple[HistoryEvent, int, HistoryEvent | None]] = []
        slot: dict[Hashable, int] = {}
        for ev, line in zip(self._events, self._lines, strict=True):
            if ev.type == "invoke":
                if ev.process in open_ops:
                    prev_line = open_ops[ev.process][1]
                    raise DecodeError(
                        f"line {line}: process {ev.process!r} invokes again while its operation"
                        f" of line {prev_line} has not completed"
                    )
                open_ops[ev.process] = (ev, line)
                slot[ev.process] = len(order)
                order.append((ev, line, None))
                continue
            if ev.process not in open_ops:
                raise DecodeError(
                    f"line {line}: process {ev.process!r} completes an operation it never invoked"
                )
            inv, inv_line = open_ops.pop(ev.process)
            if inv.f != ev.f:
                raise DecodeError(
                    f"line {line}: process {ev.process!r} completes {ev.f!r} but invoked"
                    f" {inv.f!r} on line {inv_line}"
                )
            if ev.time < inv.time:
                raise DecodeError(
                    f"line {line}: completion time {ev.time} is before its invocation's"
                    f" ({inv.time}, line {inv_line})"
                )
            order[slot.pop(ev.process)] = (inv, inv_line, ev)
        ops: list[Operation] = []
        for i, (inv, line, done) in enumerate(order):
            status = "info" if done is None else done.type
            ops.append(
                Operation(
                    index=i,
                    process=inv.process,
                    f=inv.f,
                    key=inv.key,
                    value=inv.value,
                    output=done.value if done is not None and status == "ok" else None,
                    status=status,
                    call=inv.time,
                    ret=done.time if done is not None and status != "info" else None,
                    session=inv.session,
                    node=done.node if done is not None and done.node is not None else inv.node,
                    line=line,
                )
            )
        return ops


# -- JSON Lines -------------------------------------------------------------------------------


def _event_from_fields(fields: dict[str, Any], line: int, where: str) -> HistoryEvent:
    process = fields.get("process")
    if process is None or isinstance(process, bool) or not isinstance(process, int | str):
        raise DecodeError(f"line {line}: {where} needs a 'process' (an int or a string)")
    etype = fields.get("type")
    if etype not in EVENT_TYPES:
        raise DecodeError(
            f"line {line}: 'type' is {etype!r}; it must be one of invoke, ok, fail, info"
        )
    f = fields.get("f")
    if not isinstance(f, str) or not f:
        raise DecodeError(f"line {line}: 'f' must be a non-empty string (read, write, cas...)")
    t = fields.get("time")
    if isinstance(t, bool) or not isinstance(t, int):
        raise DecodeError(f"line {line}: 'time' must be an integer (monotonic nanoseconds)")
    session = fields.get("session")
    node = fields.get("node")
    if session is not None and not isinstance(session, str):
        raise DecodeError(f"line {line}: 'session' must be a string")
    if node is not None and not isinstance(node, str):
        raise DecodeError(f"line {line}: 'node' must be a string")
    return HistoryEvent(
        process=process,
        type=str(etype),
        f=str(f),
        key=_hashable(fields.get("key")),
        value=_hashable(fields.get("value")),
        time=t,
        session=session,
        node=node,
    )


def _parse_jsonl(text: str) -> History:
    events: list[HistoryEvent] = []
    lines: list[int] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DecodeError(f"line {n}: not valid JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise DecodeError(f"line {n}: each line must be one JSON object")
        events.append(_event_from_fields(obj, n, "an event"))
        lines.append(n)
    return History(events, lines)


def _event_json(ev: HistoryEvent) -> str:
    obj: dict[str, Any] = {
        "process": ev.process,
        "type": ev.type,
        "f": ev.f,
        "key": _jsonable(ev.key),
        "value": _jsonable(ev.value),
        "time": ev.time,
    }
    if ev.session is not None:
        obj["session"] = ev.session
    if ev.node is not None:
        obj["node"] = ev.node
    return json.dumps(obj, separators=(", ", ": "))


# -- EDN ----------------------------------------------------------------------------------


def _parse_edn(text: str) -> History:
    forms = read_edn_items(text)
    events: list[HistoryEvent] = []
    lines: list[int] = []
    for position, (form, line) in enumerate(forms):
        if not isinstance(form, dict):
            raise DecodeError(f"line {line}: each history form must be an EDN map")
        fields = {str(k): v for k, v in form.items() if isinstance(k, Keyword)}
        process = fields.get("process")
        if isinstance(process, Keyword):
            continue  # the nemesis and other non-client processes
        fields = {
            k: (str(v) if isinstance(v, Keyword) and k in ("type", "f") else v)
            for k, v in fields.items()
        }
        fields.setdefault("time", position)
        events.append(_event_from_fields(fields, line, "an event map"))
        lines.append(line)
    return History(events, lines)


def _event_edn(ev: HistoryEvent) -> str:
    fields: dict[Any, Any] = {
        Keyword("process"): ev.process,
        Keyword("type"): Keyword(ev.type),
        Keyword("f"): Keyword(ev.f),
        Keyword("key"): ev.key,
        Keyword("value"): ev.value,
        Keyword("time"): ev.time,
    }
    if ev.session is not None:
        fields[Keyword("session")] = ev.session
    if ev.node is not None:
        fields[Keyword("node")] = ev.node
    return write_edn(fields)


# -- Jepsen text logs ---------------------------------------------------------------------------

_LOG_LINE = re.compile(
    r"^INFO\s+jepsen\.util\s+-\s+(?P<proc>\S+)\s+(?P<type>:\S+)\s+(?P<f>:\S+)(?:\s+(?P<value>.*?))?\s*$"
)


def _parse_jepsen_log(text: str) -> History:
    events: list[HistoryEvent] = []
    lines: list[int] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        if "jepsen.util" not in raw:
            continue  # setup, nemesis and checker output in full Jepsen logs
        m = _LOG_LINE.match(raw)
        if m is None:
            raise DecodeError(f"line {n}: not a Jepsen operation line: {raw.strip()[:80]!r}")
        proc_text = m["proc"]
        if not proc_text.isdigit():
            if proc_text.startswith(":"):
                continue  # :nemesis
            raise DecodeError(f"line {n}: process {proc_text!r} is not a number")
        value_text = m["value"] or "nil"
        try:
            forms = read_edn_forms(value_text)
        except DecodeError as exc:
            raise DecodeError(f"line {n}: bad value {value_text!r} ({exc})") from exc
        if len(forms) != 1:
            raise DecodeError(f"line {n}: expected one value, found {value_text!r}")
        fields = {
            "process": int(proc_text),
            "type": m["type"][1:],
            "f": m["f"][1:],
            "value": forms[0][0],
            "time": n,
        }
        events.append(_event_from_fields(fields, n, "an operation line"))
        lines.append(n)
    return History(events, lines)


def _event_log(ev: HistoryEvent) -> str:
    if ev.key is not None:
        raise ConfigurationError(
            "the Jepsen log form has no keys; export a keyed history as jsonl or edn"
        )
    value = ev.value
    if value is None and ev.type == "info":
        value = Keyword("timed-out")
    return f"INFO  jepsen.util - {ev.process}\t:{ev.type}\t:{ev.f}\t{write_edn(value)}"
