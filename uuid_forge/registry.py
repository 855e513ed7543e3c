"""Which adapter serves which URL scheme: registered at run time, built in, or from entry points.

Modelled on kombu's transport table (``scheme -> "module:Class"``, imported on first use),
fsspec's ``register_implementation`` (install hint per backend) and SQLAlchemy's plugin loader
(registered, then built-in, then the ``uuid_forge.adapters`` entry-point group, then an error).
Nothing here imports a store driver until a store of that kind is opened.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .errors import AdapterNotFoundError, ConfigError, DriverMissingError, UUIDForgeError, ValidationError
from .urls import hide_password, mask_text, mask_url, password_of, scheme_of

if TYPE_CHECKING:
    from .contract import Adapter

ENTRY_POINT_GROUP = "uuid_forge.adapters"

__all__ = ["BUILTIN", "AdapterSpec", "adapter_class", "available", "known_schemes", "open_store",
           "register_adapter", "registered"]


@dataclass(frozen=True)
class AdapterSpec:
    """A built-in adapter: its schemes, where it lives, what it needs installed."""

    name: str
    schemes: tuple[str, ...]
    target: str
    extra: str | None
    drivers: tuple[str, ...]
    stores_id_as: str

    @property
    def install_hint(self) -> str:
        return f'pip install "uuid-forge[{self.extra}]"' if self.extra else "built in"

    def installed(self) -> bool:
        return all(importlib.util.find_spec(d) is not None for d in self.drivers)


_SQL = "uuid_forge.adapters.sql:SQLAdapter"
BUILTIN: tuple[AdapterSpec, ...] = (
    AdapterSpec("memory", ("memory",), "uuid_forge.adapters.memory:MemoryAdapter", None, (),
                "UUID objects in a dict (tests, demos)"),
    AdapterSpec("file", ("file",), "uuid_forge.adapters.filesystem:FileAdapter", None, (),
                "lowercase sharded path root/{type}/{hex[0:2]}/{hex[2:4]}/{uuid}.json"),
    AdapterSpec("postgresql", ("postgresql", "postgresql+psycopg", "postgres"), _SQL, "postgres",
                ("sqlalchemy", "psycopg"), "native uuid column (sqlalchemy.Uuid)"),
    AdapterSpec("sqlite", ("sqlite", "sqlite+pysqlite"), _SQL, None, ("sqlalchemy",),  # a core dependency
                "CHAR(32) hex column (sqlalchemy.Uuid)"),
    AdapterSpec("mariadb", ("mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql"), _SQL, "mariadb",
                ("sqlalchemy", "pymysql"), "CHAR(32) hex column (sqlalchemy.Uuid)"),
    AdapterSpec("mongodb", ("mongodb", "mongodb+srv"), "uuid_forge.adapters.mongodb:MongoAdapter", "mongodb",
                ("pymongo",), "_id as BSON Binary subtype 4"),
    AdapterSpec("redis", ("redis", "rediss"), "uuid_forge.adapters.redis:RedisAdapter", "redis", ("redis",),
                "key {type}:{uuid}"),
    AdapterSpec("elasticsearch", ("elasticsearch+http", "elasticsearch+https", "elasticsearch"),
                "uuid_forge.adapters.elasticsearch:ElasticsearchAdapter", "elasticsearch", ("elasticsearch",),
                "_id string plus a keyword field"),
    AdapterSpec("rabbitmq", ("amqp", "amqps"), "uuid_forge.adapters.rabbitmq:RabbitMQAdapter", "rabbitmq",
                ("pika",), "correlation_id = entity ID, message_id = event ID"),
)
_BUILTIN_BY_SCHEME = {s: spec for spec in BUILTIN for s in spec.schemes}
_registered: dict[str, str | type[Adapter]] = {}

registered: Mapping[str, str | type[Adapter]] = MappingProxyType(_registered)
"""A read-only view of the adapters registered at run time."""


def register_adapter(scheme: str, target: str | type[Adapter], clobber: bool = False) -> None:
    """Serve ``scheme`` with ``target`` (a class, or ``"module:Class"`` imported on first use)."""
    scheme = scheme.lower()
    if not scheme or not scheme.replace("+", "").replace("-", "").replace(".", "").isalnum():
        raise ValidationError(f"invalid URL scheme {scheme!r}")
    if not clobber and (scheme in _registered or scheme in _BUILTIN_BY_SCHEME):
        raise ValidationError(f"scheme {scheme!r} is already served; pass clobber=True to replace it")
    _registered[scheme] = target


@functools.lru_cache(maxsize=1)
def _entry_point_targets() -> dict[str, Any]:
    """Installed plugins, read once per process (call ``.cache_clear()`` after installing one)."""
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_schemes() -> list[str]:
    """Every scheme that can be opened: registered, built in, and from entry points."""
    return sorted(set(_registered) | set(_BUILTIN_BY_SCHEME) | set(_entry_point_targets()))


def _load(target: str, spec: AdapterSpec | None, scheme: str) -> type[Adapter]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        missing = getattr(err, "name", None) or str(err)
        hint = spec.install_hint if spec else f"install the package that provides {module_name}"
        raise DriverMissingError(
            f"the {scheme!r} adapter needs {missing!r}, which is not installed: {hint}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AdapterNotFoundError(f"{target!r} for scheme {scheme!r} names no class in {module_name}") from None


def adapter_class(scheme: str) -> type[Adapter]:
    """The adapter class for ``scheme``: registered, then built in, then entry points."""
    scheme = scheme.lower()
    if scheme in _registered:
        target = _registered[scheme]
        return target if isinstance(target, type) else _load(target, None, scheme)
    if scheme in _BUILTIN_BY_SCHEME:
        spec = _BUILTIN_BY_SCHEME[scheme]
        return _load(spec.target, spec, scheme)
    eps = _entry_point_targets()
    if scheme in eps:
        try:
            return eps[scheme].load()
        except ImportError as err:
            raise DriverMissingError(f"the {scheme!r} adapter from entry point {eps[scheme].value!r} "
                                     f"could not be imported: {err}") from None
    close = difflib.get_close_matches(scheme, known_schemes(), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise AdapterNotFoundError(f"no adapter for URL scheme {scheme!r}.{hint} Known: {', '.join(known_schemes())}")


def open_store(url: str, **options: Any) -> Adapter:
    """Open the store at ``url`` with the adapter its scheme names."""
    if not isinstance(url, str) or "://" not in url and not url.startswith("memory:"):
        raise ValidationError(f"store URL {mask_url(str(url))!r} has no scheme (expected e.g. redis://host:6379/0)")
    cls = adapter_class(scheme_of(url))
    try:
        return cls.from_url(url, **options)
    except ValueError as err:  # the driver's URL parser: name the URL; it may quote part of an unencoded password
        shown = hide_password(str(err), url)
        where = "" if mask_url(url) in shown else f"store URL {mask_url(url)!r}: "
        if not password_of(url) or shown == str(err):
            if isinstance(err, UUIDForgeError):
                raise  # ours: it names what it needs already
            raise ConfigError(f"{where}{mask_text(str(err))}") from None
        raise ConfigError(f"{where}{shown} (a '/', '@', ':', '?', '#' or space in a password must be percent-encoded, "
                          "e.g. %2F for '/')") from None


def available() -> list[dict[str, Any]]:
    """One row per built-in adapter plus entry-point and registered ones, for ``uuid-forge adapters``."""
    rows = [{"name": s.name, "schemes": list(s.schemes), "installed": s.installed(), "install": s.install_hint,
             "stores_id_as": s.stores_id_as, "source": "built-in"} for s in BUILTIN]
    for name, ep in sorted(_entry_point_targets().items()):
        rows.append({"name": name, "schemes": [name], "installed": True, "install": ep.value,
                     "stores_id_as": "", "source": "entry point"})
    for name, target in sorted(_registered.items()):
        rows.append({"name": name, "schemes": [name], "installed": True,
                     "install": target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}",
                     "stores_id_as": "", "source": "registered"})
    return rows
