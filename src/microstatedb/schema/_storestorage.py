"""Registry storage in a MicroStateDB store, so the registry's state replicates like any other.

Layout, under a key prefix (``_schemas`` by default): a counter of the last id, a map from id
to the schema record, a map from fingerprint to id, an add-wins set of subjects, a map per
subject from version to its record, and a map of settings. Ids come from a counter, so one
registry writes at a time (as with Confluent's single primary); readers may be many.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from microstatedb.schema._registry import SchemaRecord, VersionRecord
from microstatedb.schema._types import Reference, SchemaType

if TYPE_CHECKING:
    from microstatedb.replica import Store


class StoreStorage:
    """:class:`RegistryStorage` kept in a :class:`microstatedb.Store`."""

    def __init__(self, store: Store, prefix: str = "_schemas"):
        self.store = store
        self.prefix = prefix

    def _key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def next_id(self) -> int:
        counter = self.store.counter(self._key("last_id"))
        counter.increment()
        return int(counter.value)

    def put_schema(self, record: SchemaRecord) -> None:
        body = {
            "schema": record.schema,
            "schema_type": record.schema_type.value,
            "references": [r.to_json() for r in record.references],
            "fingerprint": record.fingerprint,
        }
        self.store.map(self._key("ids")).register(str(record.id)).set(json.dumps(body))
        self.store.map(self._key("fingerprints")).register(record.fingerprint).set(record.id)

    def schema(self, schema_id: int) -> SchemaRecord | None:
        raw = self.store.map(self._key("ids")).register(str(schema_id)).value
        if raw is None:
            return None
        body: dict[str, Any] = json.loads(raw)
        return SchemaRecord(
            schema_id,
            body["schema"],
            SchemaType(body["schema_type"]),
            tuple(Reference(r["name"], r["subject"], r["version"]) for r in body["references"]),
            body["fingerprint"],
        )

    def find_schema(self, fingerprint: str) -> SchemaRecord | None:
        found = self.store.map(self._key("fingerprints")).register(fingerprint).value
        return None if found is None else self.schema(int(found))

    def subjects(self) -> list[str]:
        names = self.store.set(self._key("subjects")).value
        return sorted(s for s in names if self.versions(s))

    def versions(self, subject: str) -> list[VersionRecord]:
        entries: dict[str, Any] = self.store.map(self._key(f"subject:{subject}")).value
        out = [
            VersionRecord(subject, int(v), body["id"], body["deleted"])
            for v, body in ((v, json.loads(raw)) for v, raw in entries.items())
        ]
        return sorted(out, key=lambda r: r.version)

    def put_version(self, record: VersionRecord) -> None:
        self.store.set(self._key("subjects")).add(record.subject)
        body = json.dumps({"id": record.schema_id, "deleted": record.deleted})
        self.store.map(self._key(f"subject:{record.subject}")).register(str(record.version)).set(
            body
        )

    def drop_version(self, subject: str, version: int) -> None:
        self.store.map(self._key(f"subject:{subject}")).remove(str(version))

    def setting(self, kind: str, subject: str | None) -> str | None:
        value = self.store.map(self._key("settings")).register(f"{kind}:{subject or ''}").value
        return None if value is None else str(value)

    def set_setting(self, kind: str, subject: str | None, value: str | None) -> None:
        settings = self.store.map(self._key("settings"))
        key = f"{kind}:{subject or ''}"
        if value is None:
            settings.remove(key)
        else:
            settings.register(key).set(value)
