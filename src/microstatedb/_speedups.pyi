from collections.abc import Callable
from typing import Any

class HLCState:
    last: int
    edge: float

class WriteState:
    _blocked: str | None
    _deps: dict[str, int]
    _touched: dict[str, dict[str, int]]
    _since_snapshot: int
    _snapshot_every: int

class KeyWriter:
    def __call__(self, op: Any, /) -> None: ...

class Appender:
    def __call__(self, body: bytes, origin: str, seq: int, /) -> None: ...

def pack(obj: Any, /) -> bytes | None: ...
def key_writer(
    store: WriteState,
    key: str,
    kind: str,
    node: str,
    vv: dict[str, int],
    hlc: HLCState,
    wall: Callable[[], float],
    events: list[bytes] | None,
    put: Callable[[bytes, str, int], object] | None,
    encode: Callable[[Any], bytes],
    fmt: int,
    /,
) -> KeyWriter: ...
def state_writer(store: WriteState, key: str, node: str, vv: dict[str, int], /) -> KeyWriter: ...
def appender(
    log: object, bodies: list[bytes], origins: list[str], seqs: list[int], limit: int, /
) -> Appender: ...
