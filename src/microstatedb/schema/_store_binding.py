"""A SchemaBinding as the store sees it: frame on write, read every version back on read.

``SchemaBinding.read`` upcasts to the version the binding writes, so a service pinned to an
old version (by negotiation, during a rolling upgrade) cannot read what upgraded peers wrote.
:class:`StoreSchema` reads at the newest version the service knows: the one it writes or, if
higher, the one its upcaster chain reaches. Older values are upcast to it; newer values (a
peer that upgraded first) are resolved into it by Avro schema resolution, the way a Confluent
consumer reads with its own reader schema, which works whenever the subject's level is
FORWARD or FULL. Two services with the same migrations therefore show the same values,
whichever version each of them writes.
"""

from __future__ import annotations

from typing import Any

from microstatedb.errors import ConfigurationError
from microstatedb.schema._binding import SchemaBinding
from microstatedb.schema._validate import decode_value
from microstatedb.schema._wire import unframe


class StoreSchema:
    """The store's ``ValueSchema`` over a :class:`SchemaBinding` (``store.bind_schema``)."""

    def __init__(self, binding: SchemaBinding, *, read_version: int | None = None) -> None:
        if read_version is not None and read_version < 1:
            raise ConfigurationError(f"versions start at 1, got read_version={read_version}")
        self.binding = binding
        """Validation, framing, upcasters and negotiation."""
        self._read_version = read_version

    def validate_and_frame(self, subject: str, value: Any) -> bytes:
        """Validate ``value``, check the readers can read the version, frame it with its id."""
        return self.binding.validate_and_frame(subject, value)

    def read_version(self, subject: str) -> int:
        """The version values of ``subject`` are read in."""
        if self._read_version is not None:
            return self._read_version
        written = self.binding.writer(subject).version or 1
        return max(written, self.binding.upcasters.latest(subject) or 1)

    def read(self, subject: str, data: bytes) -> Any:
        """Decode ``data``, then upcast it (older) or resolve it (newer) to the read version."""
        binding = self.binding
        schema_id, payload = unframe(data)
        version = binding.version_of(subject, schema_id)
        target = self.read_version(subject)
        if version <= target:
            value = decode_value(binding.parsed(schema_id), payload)
            return binding.upcasters.upcast(subject, version, value, target)
        reader = binding.parsed(binding.source.get_version(subject, target).id)
        return decode_value(binding.parsed(schema_id), payload, reader)
