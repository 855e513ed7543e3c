"""Declared entity types: key fields, and a namespace or salt of their own where it differs.

One system often mints IDs for several types under different namespaces (the ancestor's seed
used ``users``, ``orders`` and ``products``) and sometimes a salt per type. Declaring them lets
one :class:`~uuid_forge.forge.Forge` serve every type: ``forge.write("order", data)`` takes the
ID from the type's key fields in ``data``, under that type's own ID configuration, and an audit
with ``verify_keys`` recomputes every record's ID from the same fields.

A type's ID is ``generate(type, **{field: data[field] for field in key})``: the key fields are
named values, exactly as ``uuid-forge generate TYPE -a field=value`` and
``UUIDGenerator.generate(type, field=value)`` give it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, ValidationError
from .ids import IDConfig, Namespace, UUIDGenerator, coerce_namespace
from .precedence import SALT_ENV

__all__ = ["DEFAULT_SALT_ENV", "FROM_DATA", "EntityType", "TypedGenerator", "as_types"]

DEFAULT_SALT_ENV = SALT_ENV
RESERVED_PREFIX = "uuid-forge."  # the same as contract.RESERVED_TYPE_PREFIX (no import cycle here)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _FromData:
    """The key of an entity given without one: take it from the type's key fields in the data."""

    _instance: _FromData | None = None

    def __new__(cls) -> _FromData:  # noqa: PYI034 - one instance, the sentinel
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "FROM_DATA"


FROM_DATA: Any = _FromData()


@dataclass(frozen=True)
class EntityType:
    """One declared entity type.

    ``key``: the data fields the ID comes from (named values, in any order). ``namespace``: this
    type's own namespace (a UUID, a :class:`~uuid_forge.ids.Namespace` or a domain), None for the
    ``[ids]`` one. ``salt``: this type's own salt, or ``salt_env``: the environment variable that
    holds it (read when the Forge is built; never printed). Neither: the ``[ids]`` salt.
    """

    name: str
    key: tuple[str, ...] = ()
    namespace: uuid.UUID | Namespace | str | None = None
    salt: str | None = field(default=None, repr=False)
    salt_env: str | None = None
    resolved: bool = field(default=False, repr=False, compare=False)  # salt_env already read

    def __post_init__(self) -> None:
        where = f"entity type {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"an entity type's name must be a non-empty string, got {self.name!r}")
        if self.name.startswith(RESERVED_PREFIX):
            raise ConfigError(f"{where} is reserved: names starting with {RESERVED_PREFIX!r} hold uuid-forge's "
                              "own records")
        key = (self.key,) if isinstance(self.key, str) else self.key
        if not isinstance(key, (tuple, list)) or not all(isinstance(k, str) and k for k in key):
            raise ConfigError(f"{where}: key must be a list of field names, e.g. key = [\"email\"], got {self.key!r}")
        if len(set(key)) != len(key):
            raise ConfigError(f"{where}: key names a field twice: {list(key)!r}")
        object.__setattr__(self, "key", tuple(key))
        if self.namespace is not None:
            try:
                object.__setattr__(self, "namespace", coerce_namespace(self.namespace))
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
        if self.salt is not None and not isinstance(self.salt, str):
            raise ConfigError(f"{where}: salt must be a str, got {type(self.salt).__name__}")
        if self.salt_env is not None:
            if not isinstance(self.salt_env, str) or not _ENV_NAME.fullmatch(self.salt_env):
                raise ConfigError(f"{where}: salt_env must name an environment variable (letters, digits, _), "
                                  f"got {self.salt_env!r}")
            if self.salt is not None and not self.resolved:
                raise ConfigError(f"{where}: give salt or salt_env, not both")

    # -- configuration -----------------------------------------------------------------------
    def resolve(self, env: Mapping[str, str] | None = None) -> EntityType:
        """This type with ``salt_env`` read from ``env`` (default: the process environment)."""
        if self.resolved or self.salt_env is None:
            return self if self.resolved else dataclasses.replace(self, resolved=True)
        value = (os.environ if env is None else env).get(self.salt_env) or None
        return dataclasses.replace(self, salt=value, resolved=True)

    @property
    def own_config(self) -> bool:
        """Whether this type's IDs differ in configuration from the ``[ids]`` ones."""
        return self.namespace is not None or self.salt is not None or self.salt_env is not None

    @property
    def salt_missing(self) -> bool:
        """``salt_env`` is declared but was not set (cron without the env file)."""
        return self.salt_env is not None and self.resolved and self.salt is None

    def id_config(self, base: IDConfig) -> IDConfig:
        """``base`` (the ``[ids]`` configuration) with this type's namespace and salt."""
        if not self.own_config:
            return base
        changes: dict[str, Any] = {}
        if self.namespace is not None:
            changes["namespace"] = self.namespace
        if self.salt_env is not None or self.salt is not None:
            changes["salt"] = self.salt or ""
        return dataclasses.replace(base, **changes)

    def key_of(self, data: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The named key values from ``data``; a missing or null key field is a ValidationError."""
        if not self.key:
            raise ValidationError(f"{where}: no key given, and entity type {self.name!r} declares no key fields "
                                  f"(declare them, e.g. [types.{self.name}] key = [\"email\"], or pass the key)")
        if not isinstance(data, Mapping):
            raise ValidationError(f"{where}: data must be a mapping, got {type(data).__name__}")
        out = {}
        for name in self.key:
            if name not in data:
                raise ValidationError(f"{where}: key field {name!r} of entity type {self.name!r} is missing from "
                                      f"the data (key = {list(self.key)!r})")
            value = data[name]
            if value is None:  # every such entity would share one ID and overwrite the others
                raise ValidationError(f"{where}: key field {name!r} of entity type {self.name!r} is null")
            out[name] = value
        return out

    def check_key(self, key: Any, data: Mapping[str, Any], where: str) -> None:
        """An explicit key of a declared type must name the key fields and agree with the data."""
        if not self.key:
            return
        if not isinstance(key, Mapping) or set(key) != set(self.key):
            raise ValidationError(f"{where}: entity type {self.name!r} declares key = {list(self.key)!r}; pass the "
                                  "key with exactly those names, or leave it out to take it from the data")
        if isinstance(data, Mapping):
            differ = sorted(n for n in self.key if n in data and data[n] != key[n])
            if differ:
                raise ValidationError(f"{where}: the key and the data disagree on key field(s) {', '.join(differ)} "
                                      f"of entity type {self.name!r} (the ID would not match the data)")


def as_types(types: Iterable[EntityType] | Mapping[str, EntityType] | None) -> dict[str, EntityType]:
    """A name -> EntityType table from a list or a mapping; every ``salt_env`` read now."""
    if types is None:
        return {}
    items = list(types.values()) if isinstance(types, Mapping) else list(types)
    out: dict[str, EntityType] = {}
    for t in items:
        if not isinstance(t, EntityType):
            raise ConfigError(f"types must be EntityType objects, got {type(t).__name__}")
        if t.name in out:
            raise ConfigError(f"entity type {t.name!r} is declared twice")
        out[t.name] = t.resolve()
    return out


class TypedGenerator:
    """IDs under each declared type's own configuration, the ``[ids]`` one for the others.

    It has the :class:`~uuid_forge.ids.UUIDGenerator` calls (``generate``, ``generate_many``,
    ``generate_with_prefix``, ``config``: the ``[ids]`` configuration), dispatched by type.
    """

    def __init__(self, config: IDConfig, types: Mapping[str, EntityType] | None = None) -> None:
        self.config = config
        self.default = UUIDGenerator(config)
        self.by_type: dict[str, UUIDGenerator] = {
            name: UUIDGenerator(t.id_config(config)) for name, t in (types or {}).items() if t.own_config}

    def __repr__(self) -> str:
        return f"TypedGenerator({self.config!r}, own configuration for {sorted(self.by_type)!r})"

    def for_type(self, entity_type: Any) -> UUIDGenerator:
        """The generator of ``entity_type`` (its own, or the ``[ids]`` one)."""
        if self.by_type and isinstance(entity_type, str):
            return self.by_type.get(entity_type, self.default)
        return self.default

    def generate(self, entity_type: str, /, *args: Any, **kwargs: Any) -> uuid.UUID:
        return self.for_type(entity_type).generate(entity_type, *args, **kwargs)

    def generate_many(self, entity_type: str, keys: Iterable[Any]) -> list[uuid.UUID]:
        return self.for_type(entity_type).generate_many(entity_type, keys)

    def generate_with_prefix(self, entity_type: str, *args: Any, prefix: str | None = None, separator: str = "-",
                             **kwargs: Any) -> str:
        return self.for_type(entity_type).generate_with_prefix(entity_type, *args, prefix=prefix,
                                                               separator=separator, **kwargs)
