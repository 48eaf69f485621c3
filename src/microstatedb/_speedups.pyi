from collections.abc import Callable, Iterable, Iterator
from typing import Any, SupportsIndex, overload

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

class EncodedEvents:
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    @overload
    def __getitem__(self, index: SupportsIndex, /) -> bytes: ...
    @overload
    def __getitem__(self, index: slice, /) -> list[bytes]: ...
    def __delitem__(self, index: slice, /) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def append(self, body: bytes, /) -> None: ...
    def extend(self, bodies: Iterable[bytes], /) -> None: ...
    def take(self, n: int, /) -> tuple[bytes, bytes]: ...

class Appender:
    def __call__(self, body: bytes, origin: str, seq: int, /) -> None: ...

def pack(obj: Any, /) -> bytes | None: ...
def coarse_time() -> float: ...
def key_writer(
    store: WriteState,
    key: str,
    kind: str,
    node: str,
    vv: dict[str, int],
    hlc: HLCState,
    wall: Callable[[], float],
    events: list[bytes] | EncodedEvents | None,
    put: Callable[[bytes, str, int], object] | None,
    encode: Callable[[Any], bytes],
    fmt: int,
    /,
) -> KeyWriter: ...
def state_writer(store: WriteState, key: str, node: str, vv: dict[str, int], /) -> KeyWriter: ...
def appender(
    log: object,
    bodies: list[bytes] | EncodedEvents,
    origins: list[str],
    seqs: list[int],
    limit: int,
    /,
) -> Appender: ...
