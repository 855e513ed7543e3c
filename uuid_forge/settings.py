"""The ``uuid-forge.toml`` configuration file, with environment overrides.

::

    [ids]
    namespace = "users.myapp.com"      # or a UUID
    scheme = "uuid-forge/1"
    # salt and secret belong in the environment: UUID_FORGE_SALT, UUID_FORGE_SECRET

    [journal]
    path = ".uuid-forge/journal.sqlite3"

    [write]
    retries = 3          # per store, per batch, on connection errors
    backoff = 0.2        # seconds, doubled each retry, with jitter
    batch_size = 1000
    concurrent = true    # write the non-source stores in parallel
    tombstone_retention = "90d"  # how long the source remembers a deleted entity

    [stores.db]
    url = "postgresql+psycopg://app@127.0.0.1:5432/app"
    role = "source"

    [stores.cache]
    url = "redis://127.0.0.1:6379/0"
    optional = true      # a cache that is down is journaled, not fatal
    options = { ttl = 3600 }

    [types.order]        # a declared entity type (see uuid_forge.entitytypes, docs/entity-types.md)
    key = ["order_number"]            # the ID comes from these data fields
    namespace = "orders"              # its own namespace, where it differs from [ids]
    salt_env = "UUID_FORGE_SALT_ORDERS"   # its own salt, read from this variable (never in the file)

Environment variables override the file: ``UUID_FORGE_NAMESPACE``, ``UUID_FORGE_SALT``,
``UUID_FORGE_SECRET``, ``UUID_FORGE_SCHEME``, ``UUID_FORGE_JOURNAL`` and, per store,
``UUID_FORGE_STORE_<NAME>_URL`` (NAME upper-cased, '-' as '_').

Relative paths in the file (the journal, ``sqlite:///relative.db``) are relative to the file's
own folder, so a command run from another directory finds the same data instead of quietly
creating an empty database there (whose audit would call every record elsewhere an orphan).
Relative paths from the environment are relative to the working directory, as usual.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .entitytypes import EntityType
from .errors import AdapterNotFoundError, ConfigError
from .ids import SCHEMES, IDConfig, coerce_namespace
from .precedence import (
    BROKER_URL_ENV,
    JOURNAL_ENV,
    RESULT_BACKEND_ENV,
    SALT_ENV,
    SECRET_ENV,
    id_settings,
    pick,
    store_url_env,
    type_salt_env,
)
from .registry import known_schemes
from .urls import mask_text, mask_url, scheme_of
from .view import FULL, FieldView

__all__ = ["AuditSettings", "ForgeSettings", "InPlace", "MigrateSettings", "StoreSettings", "WriteSettings",
           "id_config_from", "load_settings", "parse_retention"]

_SECTIONS = {"ids", "journal", "write", "stores", "types", "executor", "audit", "migrate"}
_IDS = {"namespace", "scheme"}
_JOURNAL = {"path", "synchronous"}
_WRITE = {"retries", "backoff", "batch_size", "concurrent", "tombstone_retention"}
_STORE = {"url", "role", "required", "optional", "options", "projection", "ignore_fields", "datetime_precision"}
_TYPE = {"key", "namespace", "salt_env", "references"}
_MIGRATE = {"plan", "stores", "in_place"}
_IN_PLACE = {"store", "table", "type", "pk", "column", "key", "references"}
_MIGRATE_STORE = {"old_id"}
_AUDIT = {"hashed", "unproven"}
#: ``[audit] unproven``: "fail" (exit 1, the default) or "report" (listed and counted, exit 0)
UNPROVEN_OUTCOMES = ("fail", "report")
_EXECUTOR = {"broker", "backend", "result_expires", "queue", "report_dir", "signing_key", "signing_certificate",
             "signing_certs"}


@dataclass(frozen=True)
class StoreSettings:
    """One configured store."""

    name: str
    url: str
    source: bool = False
    required: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    view: FieldView = FULL  # what of an entity the store holds (projection, ignored fields, precision)

    def __repr__(self) -> str:
        return (f"StoreSettings(name={self.name!r}, url={mask_url(self.url)!r}, source={self.source!r}, "
                f"required={self.required!r}, options={mask_text(repr(self.options), limit=None)})")

    def describe(self) -> str:
        return f"{self.name} ({'source' if self.source else 'required' if self.required else 'optional'}) {mask_url(self.url)}"


@dataclass(frozen=True)
class WriteSettings:
    """How write-through batches and retries."""

    retries: int = 3
    backoff: float = 0.2
    batch_size: int = 1000
    concurrent: bool = True
    #: how long the source keeps a deleted entity's tombstone (uuid_forge.tombstones): "90d", "12h", seconds
    tombstone_retention: str = "90d"


@dataclass(frozen=True)
class ExecutorSettings:
    """``[executor]``: where Celery workers take partition tasks from (uuid_forge.celery).

    The URLs may hold passwords: print them through uuid_forge.urls.mask_url only.
    """

    broker: str = ""
    backend: str = ""
    result_expires: int = 86_400  # seconds a partial report waits in the backend (Celery's default)
    queue: str = "uuid_forge"  # the workers of one configuration take tasks from this queue only
    #: where a worker writes the reports of periodic audits (a task never names a path)
    report_dir: str = ""
    #: Celery message signing (docs/scaling.md): this side's private key and certificate (PEM), and
    #: the directory of the certificates whose signatures are accepted; all three, or none
    signing_key: str = ""
    signing_certificate: str = ""
    signing_certs: str = ""

    @property
    def signed(self) -> bool:
        return bool(self.signing_key)

    def __repr__(self) -> str:
        return (f"ExecutorSettings(broker={mask_url(self.broker)!r}, backend={mask_url(self.backend)!r}, "
                f"result_expires={self.result_expires}, queue={self.queue!r})")


@dataclass(frozen=True)
class AuditSettings:
    """``[audit]``: how full audits compare, and what their exit code makes of entries they cannot
    prove ours.

    ``unproven = "report"`` acknowledges them (another application's entries beside ours, known and
    accepted): still counted and listed, never acted on, but no longer exit 1, so the nightly
    alert can clear. Every other finding still fails."""

    unproven: str = "fail"
    #: compare by hashes computed in the stores where the source and a store both can (uuid_forge.rangehash);
    #: false reads and compares every record (``uuid-forge audit --no-hash`` for one run)
    hashed: bool = True


@dataclass(frozen=True)
class MigrateSettings:
    """``[migrate]`` and the ``references`` of each ``[types.NAME]``: what ``uuid-forge migrate``
    (uuid_forge.migration) needs beyond the stores and types.

    ``old_id``: per store, where an entry's old ID is read (``""``: its own name, the raw key or
    ``_id`` or UUID; ``"field:NAME"``: the data field NAME), the value other entries' reference
    fields hold. ``references``: per type, ``{field: referenced type}``."""

    plan: str = "default"
    old_id: dict[str, str] = field(default_factory=dict)
    references: dict[str, dict[str, str]] = field(default_factory=dict)
    #: ``[migrate.in_place.NAME]``: PostgreSQL tables of the user's migrated by a shadow column
    in_place: dict[str, InPlace] = field(default_factory=dict)


@dataclass(frozen=True)
class InPlace:
    """One table migrated in place (adapters/sql/migration.py): its store (a PostgreSQL store of
    ``[stores]``, whose database holds it), its entity type, old primary key ``pk``, the new-ID
    ``column`` expand adds, ``key`` (key field -> column) and ``references`` (old reference
    column -> (the referenced in-place table's name, the new column expand adds for it))."""

    name: str
    store: str
    table: str
    entity_type: str
    pk: str = "id"
    column: str = "uid"
    key: dict[str, str] = field(default_factory=dict)
    references: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ForgeSettings:
    """Everything a :class:`~uuid_forge.forge.Forge` needs, validated."""

    ids: IDConfig
    stores: tuple[StoreSettings, ...]
    journal_path: str = ".uuid-forge/journal.sqlite3"
    journal_synchronous: str = "normal"
    write: WriteSettings = WriteSettings()
    origin: str = "<code>"
    types: dict[str, EntityType] = field(default_factory=dict)  # declared entity types, salt_env read
    executor: ExecutorSettings = ExecutorSettings()
    audit: AuditSettings = AuditSettings()
    migrate: MigrateSettings = MigrateSettings()
    #: where each value came from (``uuid-forge config``): namespace, scheme, salt, secret, journal, store.NAME
    origins: dict[str, str] = field(default_factory=dict, compare=False)


def _unknown(where: str, got: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(got) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                          f"(allowed: {', '.join(sorted(allowed))})")


def _typed(where: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {what}, got {value!r}")
    return value


_env_name = store_url_env
DEFAULT_JOURNAL = ".uuid-forge/journal.sqlite3"


def _anchored(path: str, base: Path | None) -> str:
    """``path`` as given, or joined to ``base`` when it is relative and ``base`` is known."""
    return path if base is None or os.path.isabs(path) else str(base / path)


def _anchored_url(url: str, base: Path | None) -> str:
    """A ``sqlite:///relative.db`` URL made absolute against ``base``; any other URL unchanged."""
    scheme, sep, rest = url.partition(":///")
    if base is None or not sep or scheme.split("+")[0] != "sqlite" or not rest or rest.startswith(("/", ":memory:")):
        return url
    return f"{scheme}:///{base / rest}"


def parse_settings(doc: dict[str, Any], origin: str = "<config>", env: dict[str, str] | None = None,
                   base: Path | None = None, flags: dict[str, Any] | None = None) -> ForgeSettings:
    """Validate a parsed TOML document (plus environment overrides) into settings.

    ``base`` is the folder relative paths in ``doc`` are taken from (the config file's own);
    ``flags``: command-line [ids] values (namespace, scheme, salt), which win over everything.
    """
    env = dict(os.environ) if env is None else env
    _unknown(origin, doc, _SECTIONS)
    ids = _typed(f"{origin} [ids]", doc.get("ids", {}), dict, "a table")
    if "salt" in ids or "secret" in ids:
        raise ConfigError(f"{origin} [ids]: keep salt and secret out of the file; set {SALT_ENV} / {SECRET_ENV}")
    _unknown(f"{origin} [ids]", ids, _IDS)
    picked = id_settings(ids, env, origin, flags)  # flags > environment > file > default: uuid_forge.precedence
    id_config = id_config_from(picked)

    journal = _typed(f"{origin} [journal]", doc.get("journal", {}), dict, "a table")
    _unknown(f"{origin} [journal]", journal, _JOURNAL)
    journal_at = pick(env=env, env_name=JOURNAL_ENV, file_where=f"{origin} [journal]", file_value=_anchored(_typed(
        f"{origin} [journal] path", journal["path"], str, "a string"), base) if journal.get("path") else None,
        default=_anchored(DEFAULT_JOURNAL, base))
    journal_path = journal_at.value
    synchronous = _typed(f"{origin} [journal] synchronous", journal.get("synchronous", "normal"), str, "a string")

    write = _typed(f"{origin} [write]", doc.get("write", {}), dict, "a table")
    _unknown(f"{origin} [write]", write, _WRITE)
    ws = WriteSettings(
        retries=_typed(f"{origin} [write] retries", write.get("retries", 3), int, "an integer"),
        backoff=float(_typed(f"{origin} [write] backoff", write.get("backoff", 0.2), (int, float), "a number")),
        batch_size=_typed(f"{origin} [write] batch_size", write.get("batch_size", 1000), int, "an integer"),
        concurrent=_typed(f"{origin} [write] concurrent", write.get("concurrent", True), bool, "true or false"),
        tombstone_retention=str(_typed(f"{origin} [write] tombstone_retention", write.get("tombstone_retention", "90d"),
                                       (str, int), "a duration such as \"90d\"")),
    )
    if not 0 <= ws.retries <= 20 or not (math.isfinite(ws.backoff) and ws.backoff >= 0) \
            or not 1 <= ws.batch_size <= 100_000:
        raise ConfigError(f"{origin} [write]: retries 0-20, backoff >= 0, batch_size 1-100000")
    parse_retention(ws.tombstone_retention, f"{origin} [write] tombstone_retention")

    stores_doc = _typed(f"{origin} [stores]", doc.get("stores", {}), dict, "a table of [stores.NAME] tables")
    stores = tuple(_store(f"{origin} [stores.{name}]", name, spec, env, base) for name, spec in stores_doc.items())
    types_doc = _typed(f"{origin} [types]", doc.get("types", {}), dict, "a table of [types.NAME] tables")
    types = {name: _entity_type(f"{origin} [types.{name}]", name, spec, env) for name, spec in types_doc.items()}
    executor = _executor(f"{origin} [executor]", doc.get("executor", {}), env, base)
    audit_doc = _typed(f"{origin} [audit]", doc.get("audit", {}), dict, "a table")
    _unknown(f"{origin} [audit]", audit_doc, _AUDIT)
    unproven = _typed(f"{origin} [audit] unproven", audit_doc.get("unproven", "fail"), str, "a string")
    if unproven not in UNPROVEN_OUTCOMES:
        raise ConfigError(f"{origin} [audit] unproven = {unproven!r}: use 'fail' (exit 1, the default) or 'report' "
                          "(listed and counted, exit 0: other applications' entries you have acknowledged)")
    audit = AuditSettings(hashed=_typed(f"{origin} [audit] hashed", audit_doc.get("hashed", True), bool,
                                        "true or false"), unproven=unproven)
    origins = {k: v.origin for k, v in picked.items()} | {"journal": journal_at.origin} | {
        f"store.{s.name}": f"env {_env_name(s.name)}" if env.get(_env_name(s.name)) else f"file {origin} [stores.{s.name}]"
        for s in stores}
    migrate = _migrate(origin, doc.get("migrate", {}), types_doc, types, stores)
    return ForgeSettings(ids=id_config, stores=_check_stores(stores, origin), journal_path=journal_path,
                         journal_synchronous=synchronous, write=ws, origin=origin, types=types, origins=origins,
                         executor=executor, audit=audit, migrate=migrate)


_PLAN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def check_plan_name(name: str, where: str) -> str:
    """``name`` if it is a migration plan name (``[migrate] plan``, ``--plan``), else a
    ConfigError naming it and ``where`` it was given: a plan name is part of stored record keys."""
    if not _PLAN_NAME.fullmatch(name):
        raise ConfigError(f"{where} {name!r}: use 1-64 letters, digits, '_', '.', '-'")
    return name


def _migrate(origin: str, spec: Any, types_doc: dict[str, Any], types: dict[str, EntityType],
             stores: tuple[StoreSettings, ...]) -> MigrateSettings:
    """``[migrate]`` (plan name, per-store ``old_id``) and every ``[types.NAME] references``,
    validated: a referenced type is declared with key fields, a reference field is not a key field
    (the new ID would then depend on the old one it replaces)."""
    where = f"{origin} [migrate]"
    _typed(where, spec, dict, "a table")
    _unknown(where, spec, _MIGRATE)
    plan = _typed(f"{where} plan", spec.get("plan", "default"), str, "a name")
    check_plan_name(plan, f"{where} plan =")
    names = {s.name for s in stores}
    old_id: dict[str, str] = {}
    for name, table in _typed(f"{where} stores", spec.get("stores", {}), dict, "a table of [migrate.stores.NAME]").items():
        at = f"{origin} [migrate.stores.{name}]"
        _typed(at, table, dict, "a table")
        _unknown(at, table, _MIGRATE_STORE)
        if name not in names:
            raise ConfigError(f"{at}: no store {name!r} in [stores] (stores: {', '.join(sorted(names))})")
        value = _typed(f"{at} old_id", table.get("old_id", ""), str, "\"\" or \"field:NAME\"")
        if value and (not value.startswith("field:") or not value[6:]):
            raise ConfigError(f"{at} old_id = {value!r}: use \"field:NAME\" (the data field holding the old ID), or "
                              "leave it out (the entry's own name)")
        old_id[name] = value
    references: dict[str, dict[str, str]] = {}
    for name, tspec in types_doc.items():
        refs = tspec.get("references") if isinstance(tspec, dict) else None
        if refs is None:
            continue
        at = f"{origin} [types.{name}] references"
        _typed(at, refs, dict, "a table {field = \"type\"}")
        for fname, target in refs.items():
            if not isinstance(target, str) or target not in types or not types[target].key:
                raise ConfigError(f"{at} {fname} = {target!r}: the referenced type must be a [types.NAME] with key "
                                  f"fields (declared: {', '.join(sorted(types)) or 'none'})")
            if fname in types[name].key:
                raise ConfigError(f"{at} {fname}: a key field cannot be a reference (its new ID would depend on "
                                  "the old ID it replaces)")
        references[name] = dict(refs)
    in_place: dict[str, InPlace] = {}
    places = _typed(f"{where} in_place", spec.get("in_place", {}), dict, "a table of [migrate.in_place.NAME]")
    for name, table in places.items():
        at = f"{origin} [migrate.in_place.{name}]"
        _typed(at, table, dict, "a table")
        _unknown(at, table, _IN_PLACE)
        store = _typed(f"{at} store", table.get("store", ""), str, "a store name")
        if store not in names:
            raise ConfigError(f"{at} store = {store!r}: no such store in [stores] (stores: {', '.join(sorted(names))})")
        entity_type = _typed(f"{at} type", table.get("type", ""), str, "an entity type")
        if entity_type not in types or not types[entity_type].key:
            raise ConfigError(f"{at} type = {entity_type!r}: give a [types.NAME] with key fields")
        cols = {k: _typed(f"{at} {k}", table.get(k, d), str, "a column name")
                for k, d in (("table", ""), ("pk", "id"), ("column", "uid"))}
        if not all(_COLUMN.fullmatch(v) for v in cols.values()):
            raise ConfigError(f"{at}: table, pk and column must be SQL names (letters, digits, '_'), got "
                              f"{cols['table']!r}, {cols['pk']!r}, {cols['column']!r}")
        key = _typed(f"{at} key", table.get("key", {f: f for f in types[entity_type].key}), dict,
                     "a table {field = \"column\"}")
        if set(key) != set(types[entity_type].key) or not all(isinstance(c, str) and _COLUMN.fullmatch(c)
                                                               for c in key.values()):
            raise ConfigError(f"{at} key: map exactly the key fields of {entity_type!r} "
                              f"({', '.join(types[entity_type].key)}) to columns")
        links: dict[str, tuple[str, str]] = {}
        for ref, target in _typed(f"{at} references", table.get("references", {}), dict,
                                  "a table {column = { to = \"NAME\", column = \"new column\" }}").items():
            if not isinstance(target, dict) or set(target) != {"to", "column"} or not _COLUMN.fullmatch(str(ref)) \
                    or not _COLUMN.fullmatch(str(target.get("column", ""))) or target.get("to") not in places:
                raise ConfigError(f"{at} references {ref}: give {{ to = \"NAME\", column = \"new column\" }}, NAME "
                                  f"one of [migrate.in_place] ({', '.join(places)})")
            links[ref] = (target["to"], target["column"])
        in_place[name] = InPlace(name, store, cols["table"], entity_type, cols["pk"], cols["column"], dict(key), links)
    return MigrateSettings(plan=plan, old_id=old_id, references=references, in_place=in_place)


_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _executor(where: str, spec: Any, env: dict[str, str], base: Path | None = None) -> ExecutorSettings:
    """``[executor]`` broker/backend URLs (env UUID_FORGE_BROKER_URL / UUID_FORGE_RESULT_BACKEND win,
    so a password can stay out of the file), the result expiry in seconds, the workers' report
    directory and message signing files (paths relative to the file's folder)."""
    _typed(where, spec, dict, "a table (broker = ..., backend = ...)")
    _unknown(where, spec, _EXECUTOR)
    broker = env.get(BROKER_URL_ENV) or _typed(f"{where} broker", spec.get("broker", ""), str, "a URL")
    backend = env.get(RESULT_BACKEND_ENV) or _typed(f"{where} backend", spec.get("backend", ""), str, "a URL")
    expires = _typed(f"{where} result_expires", spec.get("result_expires", 86_400), int, "an integer (seconds)")
    if expires < 60:
        raise ConfigError(f"{where} result_expires must be at least 60 seconds, got {expires}")
    queue = _typed(f"{where} queue", spec.get("queue", "uuid_forge"), str, "a queue name")
    if not queue or len(queue) > 200:
        raise ConfigError(f"{where} queue must be a name of 1-200 characters")
    paths = {k: _anchored(_typed(f"{where} {k}", spec[k], str, "a path"), base) if spec.get(k) else ""
             for k in ("report_dir", "signing_key", "signing_certificate", "signing_certs")}
    signing = [k for k in ("signing_key", "signing_certificate", "signing_certs") if paths[k]]
    if signing and len(signing) != 3:
        missing = sorted({"signing_key", "signing_certificate", "signing_certs"} - set(signing))
        raise ConfigError(f"{where}: message signing needs signing_key, signing_certificate and signing_certs "
                          f"together; {', '.join(missing)} missing")
    return ExecutorSettings(broker, backend, expires, queue, **paths)


def _entity_type(where: str, name: str, spec: Any, env: dict[str, str]) -> EntityType:
    """One ``[types.NAME]`` table: key fields, and the type's own namespace and salt variable."""
    _typed(where, spec, dict, "a table (key = [...], namespace = ..., salt_env = ...)")
    if "salt" in spec or "secret" in spec:
        raise ConfigError(f"{where}: keep salts out of the file; name the variable that holds this type's salt, "
                          f"e.g. salt_env = \"{type_salt_env(name)}\"")
    _unknown(where, spec, _TYPE)
    key = spec.get("key", [])
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not all(isinstance(k, str) and k for k in key):
        raise ConfigError(f"{where} key must be a list of field names, e.g. key = [\"email\"], got {key!r}")
    namespace = spec.get("namespace")
    if namespace is not None:
        _typed(f"{where} namespace", namespace, str, "a domain (orders.myapp.com) or a UUID")
    salt_env = spec.get("salt_env")
    if salt_env is not None:
        _typed(f"{where} salt_env", salt_env, str, "the name of an environment variable")
    try:
        return EntityType(name, tuple(key), namespace=namespace, salt_env=salt_env).resolve(env)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


def _store(where: str, name: str, spec: Any, env: dict[str, str], base: Path | None = None) -> StoreSettings:
    _typed(where, spec, dict, "a table")
    _unknown(where, spec, _STORE)
    url = env.get(_env_name(name))
    if not url:
        url = spec.get("url")
        if not url:
            raise ConfigError(f"{where}: 'url' is missing (or set {_env_name(name)})")
        url = _anchored_url(_typed(f"{where} url", url, str, "a string"), base)
    if "://" not in url:
        raise ConfigError(f"{where}: url {mask_url(url)!r} has no scheme (e.g. redis://127.0.0.1:6379/0)")
    try:
        scheme = scheme_of(url)
    except ValueError:  # the parser's message may quote the netloc, password included: not shown
        raise ConfigError(f"{where}: url {mask_url(url)!r} cannot be parsed (bad host or port)") from None
    if scheme not in known_schemes():
        import difflib

        close = difflib.get_close_matches(scheme, known_schemes(), n=1, cutoff=0.5)
        raise ConfigError(f"{where}: unknown URL scheme {scheme!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    role = spec.get("role", "store")
    if role not in ("source", "store"):
        raise ConfigError(f"{where}: role must be 'source' (the source of truth) or 'store' (the default), got "
                          f"{role!r}; a store that may be down takes optional = true instead")
    if "required" in spec and "optional" in spec:
        raise ConfigError(f"{where}: give 'required' or 'optional', not both")
    if "optional" in spec:
        required = not _typed(f"{where} optional", spec["optional"], bool, "true or false")
    else:
        required = _typed(f"{where} required", spec.get("required", True), bool, "true or false")
    if role == "source" and not required:
        raise ConfigError(f"{where}: the source of truth cannot be optional")
    options = _typed(f"{where} options", spec.get("options", {}), dict, "a table")
    view = FieldView.from_settings(where, spec)
    if role == "source" and not view.full:
        raise ConfigError(f"{where}: the source of truth holds every field: projection, ignore_fields and "
                          "datetime_precision belong to the other stores")
    return StoreSettings(name=name, url=url, source=role == "source", required=required, options=dict(options),
                         view=view)


def _check_stores(stores: tuple[StoreSettings, ...], origin: str) -> tuple[StoreSettings, ...]:
    if not stores:
        raise ConfigError(f"{origin}: no [stores.NAME] section; add at least the source of truth")
    sources = [s.name for s in stores if s.source]
    if len(sources) != 1:
        raise ConfigError(f"{origin}: exactly one store needs role = \"source\" (found {len(sources)}"
                          + (f": {', '.join(sources)}" if sources else "") + ")")
    return tuple(sorted(stores, key=lambda s: not s.source))


def load_settings(path: str | os.PathLike[str], env: dict[str, str] | None = None,
                  flags: dict[str, Any] | None = None) -> ForgeSettings:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(p)!r} cannot be read: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: not valid TOML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{p}: not valid TOML: nested too deeply") from None
    try:
        return parse_settings(doc, str(p), env, base=p.resolve().parent, flags=flags)
    except AdapterNotFoundError as err:
        raise ConfigError(str(err)) from None


def id_config_from(picked: dict[str, Any]) -> IDConfig:
    """The [ids] configuration from ``precedence.id_settings``' picks, with or without a file; a
    bad value is named with the layer it came from (the file, the environment or a flag), the salt
    and secret never shown."""
    def bad(key: str, err: Exception) -> ConfigError:
        return ConfigError(f"{picked[key].origin} ({key}): {err}")

    namespace, scheme = picked["namespace"].value, picked["scheme"].value or SCHEMES[0]
    try:
        ns = coerce_namespace(namespace) if namespace else IDConfig().namespace
    except (ConfigError, TypeError) as err:
        raise bad("namespace", err) from None

    def adding(key: str, **values: Any) -> IDConfig:  # one value more each time: an error names the one refused
        try:
            return IDConfig(namespace=ns, **values)
        except (ConfigError, TypeError) as err:
            raise bad(key, err) from None

    adding("scheme", scheme=scheme)
    for key in ("salt", "secret"):
        value = picked[key].value
        if value and isinstance(value, str) and not _encodable(value):
            raise ConfigError(f"{picked[key].origin} ({key}): not valid text (it holds bytes that are not UTF-8, "
                              "such as a lone surrogate); set it again, for example with uuid-forge new-salt")
    salt, secret = picked["salt"].value or "", picked["secret"].value or None
    adding("salt", scheme=scheme, salt=salt)
    return adding("secret", scheme=scheme, salt=salt, secret=secret)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_retention(value: Any, where: str = "[write] tombstone_retention") -> float:
    """Seconds from ``"90d"``, ``"12h"``, ``"2w"``, ``"3600s"`` or a number of seconds (0: keep none)."""
    if isinstance(value, bool):
        raise ConfigError(f"{where} {value!r}: give a duration such as \"90d\", \"12h\" or \"2w\"")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", str(value))
        if m is None:
            raise ConfigError(f"{where} {value!r}: give a duration such as \"90d\", \"12h\" or \"2w\" "
                              "(units s, m, h, d, w)")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds < 0:
        raise ConfigError(f"{where} {value!r}: must be 0 or more")
    return seconds
