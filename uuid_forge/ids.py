"""The ID scheme ``uuid-forge/1`` (SPEC-ids.md), its keyed mode, and the 0.1.x-compatible API.

Same input + same configuration = same UUID in every process and language. The name hashed is
``["uuid-forge/1",C(entity_type),C(args),C(kwargs),C(salt)]``; without a secret the UUID is
``uuid5(namespace, name)``, with one it is a UUIDv8 from HMAC-SHA256, so nobody without the key
can compute an ID from business data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import legacy
from .canonical import canonical, canonical_str
from .errors import CanonicalTypeError, CanonicalValueError, ConfigError, DecodeError

SCHEME_V1 = "uuid-forge/1"
SCHEME_LEGACY = "uuid-forge-0.1"
SCHEMES = (SCHEME_V1, SCHEME_LEGACY)

__all__ = [
    "SCHEMES",
    "SCHEME_LEGACY",
    "SCHEME_V1",
    "IDConfig",
    "Namespace",
    "UUIDGenerator",
    "canonical_name",
    "extract_uuid_from_prefixed",
    "generate_salt",
    "generate_uuid_only",
    "generate_uuid_with_prefix",
    "load_config_from_env",
]

# Bit surgery shared by v5 and v8: clear version and variant, then set them (RFC 9562).
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_V5 = (5 << 76) | (0x8000 << 48)
_V8 = (8 << 76) | (0x8000 << 48)
_new = object.__new__
_set = object.__setattr__
_SAFE = uuid.SafeUUID.unknown


def _uuid_from_int(value: int) -> uuid.UUID:
    """Build a UUID without the constructor's checks: the value is already 128 bits."""
    u = _new(uuid.UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _SAFE)
    return u


class Namespace:
    """A namespace from a domain name: ``uuid5(NAMESPACE_DNS, domain)`` (as in 0.1.x)."""

    __slots__ = ("domain", "_uuid")

    def __init__(self, domain: str) -> None:
        if not isinstance(domain, str) or not domain:
            raise ConfigError(f"namespace domain must be a non-empty string, got {domain!r}")
        self.domain = domain
        self._uuid = uuid.uuid5(uuid.NAMESPACE_DNS, domain)

    @property
    def uuid(self) -> uuid.UUID:
        """The namespace UUID."""
        return self._uuid

    def __str__(self) -> str:
        return f"Namespace({self.domain})"

    def __repr__(self) -> str:
        return f"Namespace(domain={self.domain!r}, uuid='{self._uuid}')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Namespace) and other.domain == self.domain

    def __hash__(self) -> int:
        return hash(self.domain)


def _coerce_namespace(value: Any) -> uuid.UUID | Namespace:
    if isinstance(value, (uuid.UUID, Namespace)):
        return value
    if isinstance(value, str) and value:
        try:
            return uuid.UUID(value)
        except ValueError:
            return Namespace(value)
    raise ConfigError(f"namespace must be a UUID, a Namespace or a domain string, got {type(value).__name__}")


@dataclass(frozen=True)
class IDConfig:
    """Everything that, with the key values, decides an ID. Frozen so it cannot drift.

    ``salt`` and ``secret`` never appear in ``repr()``; a string namespace is read as a UUID
    when it parses as one, otherwise as a domain for :class:`Namespace`.
    """

    namespace: uuid.UUID | Namespace = uuid.NAMESPACE_DNS
    salt: str = field(default="", repr=False)
    scheme: str = SCHEME_V1
    secret: str | bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.namespace, (uuid.UUID, Namespace)):
            if not isinstance(self.namespace, str):
                raise CanonicalTypeError(
                    f"namespace must be a UUID or Namespace, got {type(self.namespace).__name__}"
                )
            object.__setattr__(self, "namespace", _coerce_namespace(self.namespace))
        if not isinstance(self.salt, str):
            raise ConfigError(f"salt must be a str, got {type(self.salt).__name__}")
        if self.scheme not in SCHEMES:
            raise ConfigError(f"unknown scheme {self.scheme!r}; known schemes: {', '.join(SCHEMES)}")
        if self.secret is not None:
            if not isinstance(self.secret, (str, bytes)) or not self.secret:
                raise ConfigError("secret must be a non-empty str or bytes")
            if self.scheme == SCHEME_LEGACY:
                raise ConfigError("the legacy scheme uuid-forge-0.1 cannot be combined with a secret")

    @property
    def namespace_uuid(self) -> uuid.UUID:
        """The namespace as a UUID."""
        ns = self.namespace
        return ns.uuid if isinstance(ns, Namespace) else ns  # type: ignore[return-value]

    @property
    def keyed(self) -> bool:
        """True when a secret switches IDs to HMAC-SHA256 UUIDv8."""
        return self.secret is not None

    def describe(self) -> dict[str, str]:
        """A printable summary with the salt and secret masked."""
        ns = self.namespace
        return {
            "namespace": f"{ns.domain} ({ns.uuid})" if isinstance(ns, Namespace) else str(ns),
            "scheme": self.scheme,
            "salt": "set (hidden)" if self.salt else "not set",
            "secret": "set (hidden): keyed UUIDv8" if self.secret else "not set: UUIDv5",
        }


def _check_entity_type(entity_type: Any) -> str:
    if not isinstance(entity_type, str):
        raise CanonicalTypeError(f"entity_type must be a str, got {type(entity_type).__name__}")
    if not entity_type:
        raise CanonicalValueError("entity_type must not be empty")
    return entity_type


def canonical_name(entity_type: str, args: Iterable[Any] = (), kwargs: Mapping[str, Any] | None = None,
                   salt: str = "") -> str:
    """The exact name text hashed by ``uuid-forge/1`` (it contains the salt: do not log it)."""
    _check_entity_type(entity_type)
    return (
        '["uuid-forge/1",' + canonical_str(entity_type) + "," + canonical(list(args), "args") + ","
        + canonical(dict(kwargs or {}), "kwargs") + "," + canonical_str(salt) + "]"
    )


class UUIDGenerator:
    """Generates IDs under one configuration; precomputes what every ID shares, for speed."""

    def __init__(self, config: IDConfig | None = None) -> None:
        if config is not None and not isinstance(config, IDConfig):
            raise CanonicalTypeError(f"config must be IDConfig, got {type(config).__name__}")
        self.config = config or IDConfig()
        cfg = self.config
        self._ns_bytes = cfg.namespace_uuid.bytes
        self._salt_tail = ("," + canonical_str(cfg.salt) + "]").encode("utf-8")
        secret = cfg.secret
        self._key = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._heads: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"UUIDGenerator({self.config!r})"

    # -- hashing -------------------------------------------------------------------------------
    def _head(self, entity_type: str) -> Any:
        """A hash object already fed with namespace and entity type; copied per ID."""
        head = self._heads.get(entity_type)
        if head is None:
            _check_entity_type(entity_type)
            prefix = self._ns_bytes + ('["uuid-forge/1",' + canonical_str(entity_type) + ",").encode("utf-8")
            if self._key is None:
                head = hashlib.sha1(prefix)
            else:
                head = hmac.new(self._key, prefix, hashlib.sha256)
            self._heads[entity_type] = head
        return head

    def _finish(self, head: Any, body: bytes) -> uuid.UUID:
        h = head.copy()
        h.update(body)
        h.update(self._salt_tail)
        bits = _V5 if self._key is None else _V8
        return _uuid_from_int((int.from_bytes(h.digest()[:16], "big") & _CLEAR) | bits)

    # -- public API ----------------------------------------------------------------------------
    def generate(self, entity_type: str, *args: Any, **kwargs: Any) -> uuid.UUID:
        """The deterministic UUID for ``entity_type`` and its key values."""
        if self.config.scheme == SCHEME_LEGACY:
            return legacy.generate(self.config.namespace_uuid, self.config.salt, entity_type, args, kwargs)
        head = self._head(entity_type)
        body = canonical(list(args), "args") + "," + canonical(kwargs, "kwargs")
        return self._finish(head, body.encode("utf-8"))

    def generate_with_prefix(self, entity_type: str, *args: Any, prefix: str | None = None,
                             separator: str = "-", **kwargs: Any) -> str:
        """``{prefix}{separator}{uuid}``, or the bare UUID text when no prefix is given."""
        text = str(self.generate(entity_type, *args, **kwargs))
        return f"{prefix}{separator}{text}" if prefix else text

    def generate_many(self, entity_type: str, keys: Iterable[Any]) -> list[uuid.UUID]:
        """IDs for many keys of one entity type, in order.

        Each key is a Mapping (named key values, like ``**kwargs``), a tuple (positional values,
        like ``*args``) or a single value (one positional value). Shared work is done once.
        """
        if self.config.scheme == SCHEME_LEGACY:
            return [self.generate(entity_type, *a, **k) for a, k in map(_split_key, keys)]
        head = self._head(entity_type)
        finish = self._finish
        out: list[uuid.UUID] = []
        append = out.append
        for i, key in enumerate(keys):
            try:
                body = _key_body(key)
            except (CanonicalTypeError, CanonicalValueError) as err:
                err.args = (f"{err.args[0]} (keys[{i}])",)
                raise
            append(finish(head, body))
        return out


_EMPTY_ARGS = "[],"


def _split_key(key: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(key, Mapping):
        return (), dict(key)
    if isinstance(key, tuple):
        return key, {}
    return (key,), {}


def _key_body(key: Any) -> bytes:
    """``C(args) "," C(kwargs)`` for one key of :meth:`UUIDGenerator.generate_many`."""
    if type(key) is dict:
        return (_EMPTY_ARGS + canonical(key, "kwargs")).encode("utf-8")
    args, kwargs = _split_key(key)
    return (canonical(list(args), "args") + "," + canonical(kwargs, "kwargs")).encode("utf-8")


# -- the 0.1.x functional API -------------------------------------------------------------------
_default_generators: dict[IDConfig, UUIDGenerator] = {}


def _generator(config: IDConfig | None) -> UUIDGenerator:
    if config is None:
        config = IDConfig()
    elif not isinstance(config, IDConfig):
        raise CanonicalTypeError(f"config must be IDConfig, got {type(config).__name__}")
    gen = _default_generators.get(config)
    if gen is None:
        if len(_default_generators) > 64:
            _default_generators.clear()
        gen = _default_generators[config] = UUIDGenerator(config)
    return gen


def generate_uuid_only(entity_type: str, *args: Any, config: IDConfig | None = None, **kwargs: Any) -> uuid.UUID:
    """The deterministic UUID for an entity type and its key values (0.1.x name)."""
    return _generator(config).generate(entity_type, *args, **kwargs)


def generate_uuid_with_prefix(entity_type: str, *args: Any, prefix: str | None = None, separator: str = "-",
                              config: IDConfig | None = None, **kwargs: Any) -> str:
    """The UUID text behind an optional human-readable prefix; the prefix does not change the ID."""
    return _generator(config).generate_with_prefix(entity_type, *args, prefix=prefix, separator=separator,
                                                   **kwargs)


def extract_uuid_from_prefixed(prefixed_id: str, separator: str = "-") -> uuid.UUID:
    """The UUID at the end of ``PREFIX{separator}UUID`` (or a bare UUID)."""
    if not isinstance(prefixed_id, str):
        raise DecodeError(f"expected a str, got {type(prefixed_id).__name__}")
    parts = prefixed_id.split(separator) if separator else [prefixed_id]
    for i in range(len(parts)):
        candidate = separator.join(parts[i:])
        if len(candidate) in (32, 36, 38, 45):
            try:
                return uuid.UUID(candidate)
            except ValueError:
                continue
    raise DecodeError(f"No valid UUID found in {prefixed_id!r}")


def generate_salt(length: int = 32) -> str:
    """A random URL-safe salt of ``length`` random bytes (at least 16)."""
    if not isinstance(length, int) or length < 16:
        raise ConfigError(f"Salt length must be at least 16 bytes for security, got {length}")
    return secrets.token_urlsafe(length)


def load_config_from_env(namespace_env: str = "UUID_FORGE_NAMESPACE", salt_env: str = "UUID_FORGE_SALT",
                         secret_env: str = "UUID_FORGE_SECRET", scheme_env: str = "UUID_FORGE_SCHEME") -> IDConfig:
    """An IDConfig from the environment: namespace (domain or UUID), salt, secret and scheme."""
    ns_value = os.environ.get(namespace_env)
    try:
        namespace = _coerce_namespace(ns_value) if ns_value else uuid.NAMESPACE_DNS
    except ConfigError as err:
        raise ConfigError(f"invalid namespace in ${namespace_env}: {err}") from None
    scheme = os.environ.get(scheme_env) or SCHEME_V1
    try:
        return IDConfig(namespace=namespace, salt=os.environ.get(salt_env, ""), scheme=scheme,
                        secret=os.environ.get(secret_env) or None)
    except ConfigError as err:
        raise ConfigError(f"{err} (from the environment: ${scheme_env}/${secret_env})") from None
