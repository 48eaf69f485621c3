"""A small EDN reader and writer: the subset that Jepsen histories use.

Maps, vectors, lists, sets, strings, integers, floats, ``nil``, booleans, keywords and symbols.
Tagged literals (``#inst "..."``) keep their value and drop the tag. Comments (``;``) and
commas are whitespace, as EDN says.
"""

from __future__ import annotations

import re
from typing import Any

from microstatedb.errors import DecodeError


class Keyword(str):
    """An EDN keyword such as ``:invoke``; the string holds the name without the colon."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Keyword({str(self)!r})"


_TOKEN = re.compile(
    r"""
    (?P<ws>[\s,]+|;[^\n]*)
  | (?P<open>\#\{|[\[({])
  | (?P<close>[\])}])
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<tag>\#[A-Za-z][^\s,\[\](){}"]*)
  | (?P<atom>[^\s,\[\](){}"]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_INT = re.compile(r"[+-]?\d+N?")
_FLOAT = re.compile(r"[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?M?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}
_CLOSERS = {"[": "]", "(": ")", "{": "}", "#{": "}"}


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u":
                digits = body[i + 2 : i + 6]
                if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise DecodeError(f"bad unicode escape \\u{digits}")
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _atom(text: str, line: int) -> Any:
    if text == "nil":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith(":") and len(text) > 1:
        return Keyword(text[1:])
    if _INT.fullmatch(text):
        return int(text.rstrip("N"))
    if _FLOAT.fullmatch(text):
        return float(text.rstrip("M"))
    if text.startswith("\\"):
        return text[1:]  # a character literal: keep it as a one-character string
    return Keyword(text)  # a symbol: Jepsen does not use them, keep the name


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str, int]] = []
        line = 1
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() != pos:
                raise DecodeError(f"line {line}: unexpected character {text[pos]!r} in EDN")
            kind = m.lastgroup or "ws"
            value = m.group()
            if kind != "ws":
                self.tokens.append((kind, value, line))
            line += value.count("\n")
            pos = m.end()
        if pos != len(text):
            raise DecodeError(f"line {line}: unexpected character {text[pos]!r} in EDN")
        self.i = 0

    def form(self) -> tuple[Any, int]:
        kind, value, line = self.tokens[self.i]
        self.i += 1
        if kind == "open":
            items: list[Any] = []
            closer = _CLOSERS[value]
            while True:
                if self.i >= len(self.tokens):
                    raise DecodeError(f"line {line}: {value!r} is never closed")
                k2, v2, l2 = self.tokens[self.i]
                if k2 == "close":
                    if v2 != closer:
                        raise DecodeError(f"line {l2}: {v2!r} closes {value!r}")
                    self.i += 1
                    break
                items.append(self.form()[0])
            if value == "{":
                if len(items) % 2:
                    raise DecodeError(f"line {line}: a map needs an even number of forms")
                try:
                    return {items[j]: items[j + 1] for j in range(0, len(items), 2)}, line
                except TypeError as exc:
                    raise DecodeError(f"line {line}: a map key is not hashable") from exc
            if value == "#{":
                try:
                    return frozenset(items), line
                except TypeError as exc:
                    raise DecodeError(f"line {line}: a set element is not hashable") from exc
            return items, line
        if kind == "close":
            raise DecodeError(f"line {line}: unexpected {value!r}")
        if kind == "string":
            try:
                return _unescape(value[1:-1]), line
            except DecodeError as exc:
                raise DecodeError(f"line {line}: {exc}") from exc
        if kind == "tag":
            if self.i >= len(self.tokens):
                raise DecodeError(f"line {line}: tag {value} has no value")
            return self.form()[0], line
        return _atom(value, line), line


def read_edn_forms(text: str) -> list[tuple[Any, int]]:
    """Every top-level form of ``text`` with the line it starts on. Raises ``DecodeError``."""
    reader = _Reader(text)
    forms: list[tuple[Any, int]] = []
    while reader.i < len(reader.tokens):
        forms.append(reader.form())
    return forms


_NAMED = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}
# every character that str.splitlines() treats as a line break must be escaped
_LINE_BREAKS = frozenset("\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


def _escape_char(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    if ch < " " or ch in _LINE_BREAKS:
        return f"\\u{ord(ch):04x}"
    return ch


def read_edn_items(text: str) -> list[tuple[Any, int]]:
    """Like ``read_edn_forms``, but a text that is one vector or list gives its elements.

    Jepsen writes a history either as one map per line or as one vector of maps; either way
    each item comes with the line it starts on, for error messages.
    """
    reader = _Reader(text)
    tokens = reader.tokens
    if tokens and tokens[0][0] == "open" and tokens[0][1] in ("[", "("):
        closer = _CLOSERS[tokens[0][1]]
        reader.i = 1
        items: list[tuple[Any, int]] = []
        while reader.i < len(tokens) and tokens[reader.i][:2] != ("close", closer):
            items.append(reader.form())
        if reader.i == len(tokens) - 1:
            return items
    reader.i = 0
    forms: list[tuple[Any, int]] = []
    while reader.i < len(tokens):
        forms.append(reader.form())
    return forms


def _escape(text: str) -> str:
    return "".join(_escape_char(ch) for ch in text)


def write_edn(value: Any) -> str:
    """One value as EDN text (Keyword as ``:name``, tuples and lists as vectors)."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Keyword):
        return ":" + str(value)
    if isinstance(value, str):
        return '"' + _escape(value) + '"'
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{write_edn(k)} {write_edn(v)}" for k, v in value.items()) + "}"
    if isinstance(value, set | frozenset):
        return "#{" + " ".join(write_edn(v) for v in value) + "}"
    if isinstance(value, list | tuple):
        return "[" + " ".join(write_edn(v) for v in value) + "]"
    raise DecodeError(f"cannot write a {type(value).__name__} as EDN")
