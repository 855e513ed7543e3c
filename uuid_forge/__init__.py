"""uuid-forge: one deterministic ID for one entity, in every store, service and language.

``import uuid_forge`` imports no store driver: adapters load on first use of their URL scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_DNS, UUID, uuid5

from .canonical import canonical
from .encodings import FORMS, all_forms, check_target, decode, detect_form, encode
from .entitytypes import EntityType
from .errors import (
    AdapterNotFoundError,
    CanonicalTypeError,
    CanonicalValueError,
    ConfigError,
    DecodeError,
    DriverMissingError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    TargetError,
    UUIDForgeError,
    ValidationError,
    WriteError,
)
from .ids import (
    SCHEME_LEGACY,
    SCHEME_V1,
    IDConfig,
    Namespace,
    UUIDGenerator,
    canonical_name,
    extract_uuid_from_prefixed,
    generate_salt,
    generate_uuid_only,
    generate_uuid_with_prefix,
    load_config_from_env,
)
from .record import ForeignEntry, MalformedID, Partition, Record
from .registry import open_store, register_adapter

__version__ = "1.0.0"

if TYPE_CHECKING:
    from .forge import Forge

# Heavier parts load on first use, so `import uuid_forge` stays light.
_LAZY = {"Forge": ".forge", "WriteReport": ".forge", "AuditReport": ".audit"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'uuid_forge' has no attribute {name!r}")


def get_default_config() -> IDConfig:
    """The configuration from the environment (0.1.x name)."""
    return load_config_from_env()


__all__ = [
    "FORMS", "NAMESPACE_DNS", "SCHEME_LEGACY", "SCHEME_V1", "UUID",
    "AdapterNotFoundError", "CanonicalTypeError", "CanonicalValueError", "ConfigError", "DecodeError",
    "DriverMissingError", "EntityType", "ForeignEntry", "Forge", "IDConfig", "MalformedID", "Namespace", "Partition", "Record",
    "StoreError", "StoreTimeoutError", "StoreUnavailableError", "TargetError", "UUIDForgeError",
    "UUIDGenerator", "ValidationError", "WriteError",
    "all_forms", "canonical", "canonical_name", "check_target", "decode", "detect_form", "encode",
    "extract_uuid_from_prefixed", "generate_salt", "generate_uuid_only", "generate_uuid_with_prefix",
    "get_default_config", "load_config_from_env", "open_store", "register_adapter", "uuid5",
]
