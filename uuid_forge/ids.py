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
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from itertools import repeat
from json.encoder import encode_basestring as _json_str
from operator import itemgetter
from typing import Any

from . import legacy
from .canonical import canonical, canonical_str
from .encodings import decode
from .errors import CanonicalTypeError, CanonicalValueError, ConfigError, DecodeError
from .precedence import NAMESPACE_ENV, SALT_ENV, SCHEME_ENV, SECRET_ENV
from .uuidints import uuid_of_int, uuids_of_ints

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
    "coerce_namespace",
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


class Namespace:
    """A namespace from a domain name: ``uuid5(NAMESPACE_DNS, domain)`` (as in 0.1.x)."""

    __slots__ = ("_uuid", "domain")

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


def coerce_namespace(value: Any) -> uuid.UUID | Namespace:
    """A namespace as configured: a UUID (or its text) as is, any other text as a domain name."""
    if isinstance(value, (uuid.UUID, Namespace)):
        return value
    if isinstance(value, str) and value:
        try:
            return uuid.UUID(value)
        except ValueError:
            return Namespace(value)
    got = "an empty string" if value == "" else type(value).__name__
    raise ConfigError(f"namespace must be a UUID, a Namespace or a non-empty domain string, got {got}")


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
            object.__setattr__(self, "namespace", coerce_namespace(self.namespace))
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
        return ns.uuid if isinstance(ns, Namespace) else ns

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
        if isinstance(entity_type, Mapping):  # the ancestor's docs: generate(doc_data), with no entity type
            raise CanonicalTypeError(
                f"generate() takes the entity type first, then the key as keywords: generate(\"user\", **key) or "
                f"generate(\"user\", email=...); got a {type(entity_type).__name__} where the entity type goes")
        raise CanonicalTypeError(f"entity_type must be a str, got {type(entity_type).__name__} (call "
                                 f"generate(\"user\", email=...): the entity type first, then the key as keywords)")
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
        self._tail = "," + canonical_str(cfg.salt) + "]"
        secret = cfg.secret
        self._key = secret.encode("utf-8") if isinstance(secret, str) else secret
        self._bits = _V5 if self._key is None else _V8
        self._legacy = cfg.scheme == SCHEME_LEGACY
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
            if len(self._heads) < 1024:
                self._heads[entity_type] = head
        return head

    def _digest_id(self, head: Any, body: str) -> uuid.UUID:
        h = head.copy()
        h.update((body + self._tail).encode("utf-8"))
        return uuid_of_int((int.from_bytes(h.digest()[:16]) & _CLEAR) | self._bits)

    # -- public API ----------------------------------------------------------------------------
    def generate(self, entity_type: str, /, *args: Any, **kwargs: Any) -> uuid.UUID:
        """The deterministic UUID for ``entity_type`` and its key values."""
        if self._legacy:
            _check_entity_type(entity_type)
            return legacy.generate(self.config.namespace_uuid, self.config.salt, entity_type, args, kwargs)
        try:
            head = self._heads.get(entity_type) or self._head(entity_type)
        except TypeError:  # an unhashable entity type (a dict): say how to call it, not "unhashable type"
            _check_entity_type(entity_type)
            raise
        body = _fast_kwargs(kwargs) if not args else _fast_args(args) if not kwargs else None
        if body is None:
            body = canonical(list(args), "args") + "," + canonical(kwargs, "kwargs")
        try:
            return self._digest_id(head, body)
        except UnicodeEncodeError:  # a lone surrogate slipped past the fast path: get the real error
            canonical(list(args), "args")
            canonical(kwargs, "kwargs")
            raise

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
        _check_entity_type(entity_type)
        if self._legacy:
            return [self.generate(entity_type, *a, **k) for a, k in map(_split_key, keys)]
        keys = keys if isinstance(keys, list) else list(keys)
        if not keys:
            return []
        self._head(entity_type)  # validates the entity type
        tail = self._tail
        bodies = _uniform_bodies(keys, tail)
        if bodies is None:
            fast = [_fast_kwargs(k) if type(k) is dict else None for k in keys]
            bodies = [(b if b is not None else _key_body(k, i)) + tail for i, (b, k) in enumerate(zip(fast, keys))]
        prefix = self._ns_bytes + ('["uuid-forge/1",' + canonical_str(entity_type) + ",").encode("utf-8")
        try:
            payloads = list(map(prefix.__add__, map(str.encode, bodies)))
        except UnicodeEncodeError:  # a lone surrogate: let the slow path name the key
            for i, k in enumerate(keys):
                _key_body(k, i)
            raise
        if self._key is None:
            digests = map(_SHA1_DIGEST, map(hashlib.sha1, payloads))
            shift = 32
        else:
            digests = map(hmac.digest, repeat(self._key), payloads, repeat("sha256"))
            shift = 128
        ints = list(map(int.__or__, map(int.__and__, map(int.__rshift__, map(int.from_bytes, digests), repeat(shift)),
                                        repeat(_CLEAR)), repeat(self._bits)))
        return uuids_of_ints(ints)


_SHA1_DIGEST = type(hashlib.sha1()).digest


def _uniform_bodies(keys: list[Any], tail: str) -> list[str] | None:
    """Bodies for a batch whose keys share one flat shape, built column by column; else None.

    Every key the same type: all text, all ints, or all dicts with the same ASCII names and
    text/int values. Column-wise C-level passes replace a Python-level walk per key.
    """
    first = keys[0]
    kind = type(first)
    if set(map(type, keys)) != {kind}:
        return None
    if kind is str or kind is int:
        col = _column_json(keys)
        end = "],{}" + tail
        return None if col is None else ["[" + x + end for x in col]
    if kind is not dict or not first:
        return None
    names = sorted(first)
    if not all(map(str.isascii, names)) or set(map(len, keys)) != {len(names)}:
        return None
    try:
        columns = ([list(map(itemgetter(names[0]), keys))] if len(names) == 1
                   else [list(c) for c in zip(*map(itemgetter(*names), keys))])
    except KeyError:
        return None
    texts = []
    for col in columns:
        text = _column_json(col)
        if text is None:
            return None
        texts.append(text)
    labels = [_json_str(n) + ":" for n in names]
    end = "}" + tail
    if len(names) == 1:
        head = "[],{" + labels[0]
        return [head + x + end for x in texts[0]]
    return ["[],{" + ",".join(map(str.__add__, labels, row)) + end for row in zip(*texts)]


_is_nfc = partial(unicodedata.is_normalized, "NFC")


def _column_json(col: list[Any]) -> list[str] | None:
    """JSON texts of a column of all-text (ASCII or NFC) or all-int values; else None."""
    kinds = set(map(type, col))
    if kinds == {str}:
        if not all(map(str.isascii, col)) and not all(map(_is_nfc, col)):
            return None
        return list(map(_json_str, col))
    if kinds == {int}:
        try:
            return list(map(int.__repr__, col))
        except ValueError:  # past the int-to-text limit: the slow path keeps every digit
            return None
    return None


def _split_key(key: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(key, Mapping):
        return (), dict(key)
    if isinstance(key, tuple):
        return key, {}
    return (key,), {}


def _key_body(key: Any, index: int) -> str:
    """``C(args) "," C(kwargs)`` for one key of :meth:`UUIDGenerator.generate_many`."""
    args, kwargs = _split_key(key)
    try:
        return canonical(list(args), "args") + "," + canonical(kwargs, "kwargs")
    except (CanonicalTypeError, CanonicalValueError) as err:
        err.args = (f"{err.args[0]} (keys[{index}])",)
        raise


_is_normalized = unicodedata.is_normalized


def _fast_kwargs(kwargs: dict[str, Any]) -> str | None:
    """``[],C(kwargs)`` for the common flat case (text/int/bool/None values); None otherwise.

    ASCII keys sort the same by code point and by UTF-16 code unit, and ASCII or already-NFC
    text needs no normalising, so the result is exactly the canonical form without its walk.
    """
    if not kwargs:
        return "[],{}"
    parts = []
    for k in sorted(kwargs) if len(kwargs) > 1 else kwargs:
        if not k.isascii():
            return None
        v = kwargs[k]
        t = type(v)
        if t is str:
            if not v.isascii() and not _is_normalized("NFC", v):
                return None
            parts.append(_json_str(k) + ":" + _json_str(v))
        elif t is int:
            if v.bit_length() > 10_000:  # past the int-to-text limit: the slow path keeps every digit
                return None
            parts.append(_json_str(k) + ":" + str(v))
        elif t is bool:
            parts.append(_json_str(k) + (":true" if v else ":false"))
        elif v is None:
            parts.append(_json_str(k) + ":null")
        else:
            return None
    return "[],{" + ",".join(parts) + "}"


def _fast_args(args: tuple[Any, ...]) -> str | None:
    """``C(args),{}`` for flat text/int positional values; None otherwise."""
    parts = []
    for v in args:
        t = type(v)
        if t is str:
            if not v.isascii() and not _is_normalized("NFC", v):
                return None
            parts.append(_json_str(v))
        elif t is int:
            if v.bit_length() > 10_000:
                return None
            parts.append(str(v))
        else:
            return None
    return "[" + ",".join(parts) + "],{}"


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
    """The UUID at the end of ``PREFIX{separator}UUID`` (or a bare UUID), in the forms
    ``generate --prefix --form`` writes: string, hex, urn, then base64url (22) and base32 (26)."""
    if not isinstance(prefixed_id, str):
        raise DecodeError(f"expected a str, got {type(prefixed_id).__name__}")
    parts = prefixed_id.split(separator) if separator else [prefixed_id]
    suffixes = [separator.join(parts[i:]) for i in range(len(parts))]
    for candidate in suffixes:
        if len(candidate) in (32, 36, 38, 45):
            try:
                return uuid.UUID(candidate)
            except ValueError:
                continue
    for form, length in (("base64url", 22), ("base32", 26)):  # a base64url may hold the separator
        for candidate in suffixes:
            if len(candidate) == length:
                try:
                    return decode(candidate, form)
                except DecodeError:
                    continue
    shown = prefixed_id if len(prefixed_id) <= 80 else prefixed_id[:77] + "..."
    raise DecodeError(f"no UUID found at the end of {shown!r} after the separator {separator!r} (looked for "
                      "string 36, hex 32, urn 45, base64url 22 and base32 26 characters)")


def generate_salt(length: int = 32) -> str:
    """A random URL-safe salt of ``length`` random bytes (at least 16)."""
    if not isinstance(length, int) or length < 16:
        raise ConfigError(f"Salt length must be at least 16 bytes for security, got {length}")
    return secrets.token_urlsafe(length)


def load_config_from_env(namespace_env: str = NAMESPACE_ENV, salt_env: str = SALT_ENV,
                         secret_env: str = SECRET_ENV, scheme_env: str = SCHEME_ENV) -> IDConfig:
    """An IDConfig from the environment: namespace (domain or UUID), salt, secret and scheme."""
    ns_value = os.environ.get(namespace_env)
    try:
        namespace = coerce_namespace(ns_value) if ns_value else uuid.NAMESPACE_DNS
    except ConfigError as err:
        raise ConfigError(f"invalid namespace in ${namespace_env}: {err}") from None
    scheme = os.environ.get(scheme_env) or SCHEME_V1
    try:
        return IDConfig(namespace=namespace, salt=os.environ.get(salt_env, ""), scheme=scheme,
                        secret=os.environ.get(secret_env) or None)
    except ConfigError as err:
        raise ConfigError(f"{err} (from the environment: ${scheme_env}/${secret_env})") from None
