"""The exception tree of MicroStateDB.

Every error the library raises on purpose is a subclass of :class:`MicroStateError`, so a
boundary needs one ``except``. Each message says the likely cause and what to do::

    MicroStateError
    ├── ConfigurationError        a setting or argument is invalid
    ├── InvalidOperation          an operation does not fit the key's type or the store's state
    │   └── TypeMismatch          a key used as one CRDT type was asked for as another
    ├── StoreClosed               the store was closed
    ├── ClockSkew                 a remote timestamp is too far ahead of the local clock
    ├── DataError                 bad bytes or bad values
    │   ├── CorruptData           a checksum, header or frame does not verify
    │   │   └── TornWrite         an incomplete final frame (a crash during a write)
    │   ├── DecodeError           bytes that are not a valid message of the expected kind
    │   │   ├── ValidationError   a decoded value breaks its schema
    │   │   │   └── SchemaViolation   a value written to a bound key breaks its subject's schema
    │   │   └── InvalidSchema     a schema document that is not valid Avro or JSON Schema
    │   └── IncompatibleSchema    a schema breaks the compatibility level of its subject
    ├── StorageError              an event store failed
    │   ├── IntegrityError        an append conflicts with what is stored
    │   └── OperationalError      the storage backend is unreachable or failed
    ├── Unavailable               not enough replicas reachable for the asked consistency
    │   ├── CircuitOpen           a circuit breaker refuses calls for now
    │   ├── BulkheadFull          a bulkhead has no free place
    │   └── DeadlineExceeded      the time budget of the call ran out
    ├── RetriesExhausted          a retry policy gave up (the last error is chained)
    ├── AuthenticationError       a peer message failed authentication and was refused
    ├── UnknownNode               a message names a node that is not a member
    ├── Indeterminate             a request was sent but its outcome is unknown (it may apply)
    └── RegistryError             the schema registry answered with an error
        ├── SubjectNotFound
        └── SchemaNotFound
"""

from __future__ import annotations


class MicroStateError(Exception):
    """Base of every error MicroStateDB raises on purpose."""


class ConfigurationError(MicroStateError, ValueError):
    """A setting or argument is invalid; the message names it and the accepted values."""


class InvalidOperation(MicroStateError):
    """The operation does not fit the key's type or the store's state."""


class TypeMismatch(InvalidOperation, TypeError):
    """A key already holds another CRDT type than the one asked for."""


class StoreClosed(InvalidOperation):
    """The store was closed; open a new one on the same path to continue."""


class ClockSkew(MicroStateError):
    """A remote hybrid-clock timestamp is further ahead than the configured bound allows.

    The timestamp is refused rather than adopted, so that one node with a wrong wall clock
    cannot drag every clock in the fleet into the future. Fix that node's clock (NTP) or raise
    ``max_drift`` if the bound is too tight.
    """


class DataError(MicroStateError):
    """Bytes or values that cannot be used as they are."""


class CorruptData(DataError):
    """Stored or received bytes failed verification (checksum, header, framing, signature).

    ``path`` and ``offset`` name the place when the bytes come from a file.
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        where = ""
        if path is not None:
            where = f" [{path}" + (f" at offset {offset}" if offset is not None else "") + "]"
        super().__init__(message + where)
        self.path = path
        self.offset = offset


class TornWrite(CorruptData):
    """The final frame of a log segment is incomplete: a crash interrupted its write."""


class DecodeError(DataError):
    """The bytes are not a valid message of the expected kind or version."""


class ValidationError(DecodeError):
    """A value does not match the schema bound to its key or subject."""


class IncompatibleSchema(DataError):
    """A new schema breaks the compatibility level configured for its subject."""


class StorageError(MicroStateError):
    """An event store (local folder, PostgreSQL, NATS JetStream) failed."""


class IntegrityError(StorageError):
    """An append conflicts with what the store already holds (for example a reused position)."""


class OperationalError(StorageError):
    """The storage backend is unreachable or failed; the cause is chained."""


class Unavailable(MicroStateError):
    """Not enough replicas are reachable (or ready) for the asked consistency level.

    Retry later, or ask for a weaker consistency level for this operation.
    """


class CircuitOpen(Unavailable):
    """A circuit breaker refuses calls for now.

    ``name`` is the breaker's name and ``retry_after`` the seconds until it lets a probe through.
    """

    def __init__(self, name: str, retry_after: float):
        super().__init__(
            f"circuit breaker {name!r} is open; calls are refused for {retry_after:.3f}s more"
        )
        self.name = name
        self.retry_after = retry_after


class BulkheadFull(Unavailable):
    """A bulkhead has no free place for the call; shed load or retry after a pause."""


class DeadlineExceeded(Unavailable, TimeoutError):
    """The time budget of the call ran out before the work finished or started."""


class RetriesExhausted(MicroStateError):
    """A retry policy gave up; the last error is chained as ``__cause__``."""


class AuthenticationError(MicroStateError):
    """A message from a peer failed authentication and was refused (it was not applied)."""


class UnknownNode(MicroStateError):
    """A message names a node that is not a member of the fleet."""


class RegistryError(MicroStateError):
    """The schema registry answered with an error; ``code`` is its error code when known."""

    def __init__(self, message: str, *, code: int | None = None):
        super().__init__(message)
        self.code = code


class SubjectNotFound(RegistryError):
    """The subject is not registered."""


class SchemaNotFound(RegistryError):
    """No schema has that id or version."""


class SchemaViolation(ValidationError):
    """A value breaks the schema of its subject; ``path`` is the JSON pointer of the bad field.

    Nothing was written. Fix the value, or register a new schema version that accepts it.
    """

    def __init__(self, message: str, *, path: str = "/", subject: str | None = None):
        where = f" at {path}" + (f" (subject {subject!r})" if subject is not None else "")
        super().__init__(message + where)
        self.path = path
        self.subject = subject


class InvalidSchema(DecodeError):
    """A schema document is not valid Avro or JSON Schema; the message names the problem."""


class Indeterminate(MicroStateError):
    """A request was sent but its outcome is unknown: it may have taken effect, or may later.

    Unlike ``Unavailable`` (refused before sending, safe to retry), a blind retry may apply the
    change twice; read the key, or retry only an idempotent change (a compare-and-set).
    """


__all__ = [
    "AuthenticationError",
    "BulkheadFull",
    "CircuitOpen",
    "ClockSkew",
    "ConfigurationError",
    "CorruptData",
    "DataError",
    "DeadlineExceeded",
    "DecodeError",
    "IncompatibleSchema",
    "Indeterminate",
    "IntegrityError",
    "InvalidOperation",
    "InvalidSchema",
    "MicroStateError",
    "OperationalError",
    "RegistryError",
    "RetriesExhausted",
    "SchemaNotFound",
    "SchemaViolation",
    "StorageError",
    "StoreClosed",
    "SubjectNotFound",
    "TornWrite",
    "TypeMismatch",
    "Unavailable",
    "UnknownNode",
    "ValidationError",
]
