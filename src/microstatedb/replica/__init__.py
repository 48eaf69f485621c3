"""One node's store: log plus state plus version vector plus the causal delivery buffer."""

from microstatedb.replica._batch import Batch, decode_batch, encode_batch
from microstatedb.replica._consistency import Consistency
from microstatedb.replica._store import Store, StoreStats, sync

__all__ = [
    "Batch",
    "Consistency",
    "Store",
    "StoreStats",
    "decode_batch",
    "encode_batch",
    "sync",
]
