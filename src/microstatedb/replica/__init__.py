"""One node's store: log plus state plus version vector plus the causal delivery buffer."""

from microstatedb.replica._batch import Batch, decode_batch, encode_batch
from microstatedb.replica._consistency import Consistency, KeyModes
from microstatedb.replica._delta import Delta, causal_stability, compact_stable, delta_since
from microstatedb.replica._fleet import StoreFleet
from microstatedb.replica._merkle import (
    BUCKETS,
    SummaryCache,
    VVSummary,
    bucket_of,
    entries_in,
    patch,
    summarize,
)
from microstatedb.replica._schema_hook import (
    BoundMap,
    BoundMVRegister,
    BoundRegister,
    BoundSet,
    ValueSchema,
)
from microstatedb.replica._session import Session, decode_token, encode_token
from microstatedb.replica._store import Store, StoreStats, sync

__all__ = [
    "BUCKETS",
    "Batch",
    "BoundMVRegister",
    "BoundMap",
    "BoundRegister",
    "BoundSet",
    "Consistency",
    "Delta",
    "KeyModes",
    "Session",
    "Store",
    "StoreFleet",
    "StoreStats",
    "SummaryCache",
    "VVSummary",
    "ValueSchema",
    "bucket_of",
    "causal_stability",
    "compact_stable",
    "decode_batch",
    "decode_token",
    "delta_since",
    "encode_batch",
    "encode_token",
    "entries_in",
    "patch",
    "summarize",
    "sync",
]
