"""Schemas: compatibility, compiled validators, upcasters, the registry and its client.

Layering inside the package, from the core outward: ``_types`` (records), ``_avro`` and
``_jsonschema`` (parsing and reader/writer rules of each language), ``_compat`` (levels),
``_validate`` (compiled validators and codecs), ``_wire`` (Confluent framing), ``_upcast`` and
``_negotiate`` (evolution at run time), ``_registry`` (the embedded registry over a storage
protocol; ``_storestorage`` keeps it in a store), ``_rest`` (its REST API as a plain
function), ``_server`` (that API over aiohttp), ``_client`` (the REST client) and
``_binding`` (what the store calls on its data path) with ``_store_binding`` (its adapter
for stores whose replicas write different versions).
"""

from microstatedb.schema._binding import Decoded, SchemaBinding, SchemaSource
from microstatedb.schema._client import (
    EmbeddedTransport,
    HTTPTransport,
    MockTransport,
    RegistryClient,
    Request,
    Response,
    Transport,
    registry_retry,
)
from microstatedb.schema._compat import ParsedSchema, check_compatibility, parse_schema
from microstatedb.schema._negotiate import VersionNegotiator, decode_versions, encode_versions
from microstatedb.schema._registry import (
    EmbeddedRegistry,
    InMemoryStorage,
    RegistryStorage,
    SchemaRecord,
    VersionRecord,
)
from microstatedb.schema._rest import handle
from microstatedb.schema._server import RegistryServer, make_app
from microstatedb.schema._store_binding import StoreSchema
from microstatedb.schema._storestorage import StoreStorage
from microstatedb.schema._types import (
    CompatibilityResult,
    Incompatibility,
    Level,
    Reference,
    RegisteredSchema,
    SchemaType,
)
from microstatedb.schema._upcast import Upcasters
from microstatedb.schema._validate import compile_check, decode_value, encode_value
from microstatedb.schema._wire import frame, unframe

__all__ = [
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
