"""The public surface of microstatedb.schema is pinned: a change must change this on purpose."""

from __future__ import annotations

import microstatedb.schema as schema


def test_schema_all_is_pinned() -> None:
    assert sorted(schema.__all__) == sorted(
        [
            "CompatibilityResult",
            "Decoded",
            "EmbeddedRegistry",
            "EmbeddedTransport",
            "HTTPTransport",
            "InMemoryStorage",
            "Incompatibility",
            "Level",
            "MockTransport",
            "ParsedSchema",
            "Reference",
            "RegisteredSchema",
            "RegistryClient",
            "RegistryServer",
            "RegistryStorage",
            "Request",
            "Response",
            "SchemaBinding",
            "SchemaRecord",
            "SchemaSource",
            "SchemaType",
            "StoreSchema",
            "StoreStorage",
            "Transport",
            "Upcasters",
            "VersionNegotiator",
            "VersionRecord",
            "check_compatibility",
            "compile_check",
            "decode_value",
            "decode_versions",
            "encode_value",
            "encode_versions",
            "frame",
            "handle",
            "make_app",
            "parse_schema",
            "registry_retry",
            "unframe",
        ]
    )
    for name in schema.__all__:
        assert getattr(schema, name) is not None
