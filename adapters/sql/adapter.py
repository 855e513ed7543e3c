"""The SQL adapter: records in SQL tables through SQLAlchemy 2 Core.

It parses its options, opens the engine with the dialect's timeouts, and hands each table to its
layout (:mod:`.layout`): our table per entity type, or the user's own table.
"""

from __future__ import annotations

import contextlib
import functools
import re
import uuid
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from uuid_forge.containers import Containers
from uuid_forge.contract import BATCH_SIZE, SCAN, Adapter, Check, Option, ScanItem
from uuid_forge.errors import ConfigError, DriverMissingError, StoreError, UUIDForgeError, ValidationError
from uuid_forge.record import ForeignEntry, Partition, RawEntry, Record

from . import digests
from .codec import IdCodec, parse_zone
from .columns import row_filter
from .dialects import DRIVERS, dialect_for
from .errors import DriverTimeout, classify_error, is_timeout
from .layout import SQLSettings, TableLayout, TypeTables, UserTable
from .tables import META, OWNERS, OwnersTable, type_table

__all__ = ["SQLAdapter"]

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,29}")
_ID_FORMATS = ("uuid", "hex", "string")
_NULLS = ("value", "absent")


def _driver_hint(backend: str, module: str | None) -> str:
    """How to install a SQL backend's driver: the extra that brings the one we default to."""
    extra = {"postgresql": "postgres", "mysql": "mariadb", "mariadb": "mariadb"}.get(backend)
    if extra is not None and module in ("psycopg", "pymysql"):
        return f'pip install "uuid-forge[{extra}]"'
    return f"pip install the package that provides {module!r} (or name another driver in the URL)"


class SQLAdapter(Adapter):
    """Records in SQL tables; the ID in a native ``uuid`` column on PostgreSQL.

    **Default layout** - one table per entity type, ``{prefix}{entity_type}`` (prefix
    ``uf_``), created on first write::

        id          sqlalchemy.Uuid   primary key: native uuid on PostgreSQL, CHAR(32) lowercase hex elsewhere
        fingerprint VARCHAR(32)       record.fingerprint as written: a hint; audits hash the data itself
        data        JSON              the canonical JSON text, byte for byte (PostgreSQL: ``json``)
        key         JSON NULL         the business key, when known
        updated_at  timestamp         set by the server on insert and update

    On PostgreSQL ``data`` is ``json``, not ``jsonb``: jsonb rejects ``\\u0000`` in strings and
    rewrites numbers (``1e+21`` reads back as an integer), while ``json`` keeps the exact text the
    fingerprint was computed from. ``data_type="jsonb"`` chooses jsonb when you want GIN indexes.
    ``id_format="string"`` (also ``?id_format=string`` in the URL) keeps IDs as 36-char text
    instead (``"hex"``: 32-char text, what ``Uuid`` uses off PostgreSQL). MariaDB tables are
    ``utf8mb4`` with the binary collation, so ID text compares exactly (case matters).

    **Entity types**: the base rule (letters, digits, ``_ . -``), and ``prefix + type`` must fit
    the identifier limit (63 bytes on PostgreSQL, 64 on MariaDB): PostgreSQL would silently cut a
    longer name and two types could share a table. Dots and dashes are accepted: SQLAlchemy
    quotes every identifier that needs it (raw SQL must quote ``"uf_order-items"`` too). Case
    matters, except on a MariaDB server with ``lower_case_table_names=1``.

    **Your own table** - ``table=`` (a ``sqlalchemy.Table`` or the name of a table to reflect),
    ``entity_type=`` (the one type it holds), ``columns=`` and ``fields=``::

        open_store("postgresql://.../app", table="users", entity_type="user",
                   columns={"id": "user_id", "fingerprint": "fp"},
                   fields={"email": "email", "name": "name"})

    ``columns`` maps ``id`` (required), ``fingerprint``, ``data`` and ``key`` to column names
    (``None``: not stored; an omitted key defaults to the column of the same name if the table has
    one). ``fields`` maps data fields to their own columns; without a ``data`` column, data is
    rebuilt from them on read and a record with a field not in ``fields`` is rejected before any
    write. The ID column must be the primary key (or unique). Its kind follows its type: a
    ``uuid``/``Uuid`` column holds UUIDs, a text column 36-char text (``id_format="hex"`` for
    CHAR(32) text). A field mapped onto the ID (or fingerprint, data, key) column is refused.

    **Typed columns** - each field's value is checked against its column type before anything is
    written (a ValidationError names the field and the column), and read back in the data model,
    so a clean write audits clean:

    * ``timestamptz``: an aware datetime, or its UTC text ``...Z`` (other spellings such as
      ``...+02:00`` are refused: text is text, and the column would give back another one);
      read back as an aware datetime in UTC (the same instant);
    * ``timestamp`` without time zone (also MariaDB DATETIME/TIMESTAMP and SQLite datetimes): the
      same values, written as the wall time in the zone of the option ``timezone``
      (``timezone="Europe/Paris"``), read back as aware datetimes in UTC;
    * ``numeric``/``DECIMAL``: int, float or Decimal (refused when the column's scale or precision
      would round it); read back as an exact Decimal;
    * ``double precision``/``DOUBLE``/SQLite ``REAL``: numbers a double keeps exactly; float;
    * ``integer``/``bigint``: whole numbers; int. ``boolean`` (MariaDB TINYINT(1)): bool;
    * ``json``/``jsonb``: any value, written as its canonical text, parsed back with every digit;
    * ``uuid``: lowercase UUID text or a UUID; a UUID. ``date``: ``YYYY-MM-DD`` text or a date;
    * PostgreSQL arrays (``text[]``, ``numeric[]``, ...): a list of values of the element type;
    * text types: str.

    A timestamp column without time zone and no ``timezone`` option is an error naming the column
    and the option (its values are wall times in an unknown zone). In the hour a zone repeats (the
    autumn change) a wall time reads back as its first occurrence. SQLite has no exact decimal
    type (its NUMERIC keeps a double): keep exact decimals in a JSON column there. Single-precision
    columns (PostgreSQL ``real``, MariaDB ``FLOAT``) do not round-trip: use double precision.
    MariaDB ``DATETIME`` without ``(6)`` rounds to whole seconds: use ``DATETIME(6)`` for
    datetimes with fractions.

    **NULL** - ``nulls="value"`` (default): a NULL column is the field with value null; every
    mapped field must then be in the data (a missing one would read back as null and be stale on
    every audit), so a field set to NULL by hand is reported as differing. ``nulls="absent"``: a
    NULL column is a field the entity does not have; a None value is refused, and a field set to
    NULL by hand is reported as missing in the store.

    **Other programs' rows** in your table: an ID that is no UUID, or a UUID of a version this ID
    scheme does not make (``gen_random_uuid()``'s version 4), is a :class:`ForeignEntry`: counted
    by the audit, never rewritten or deleted.

    **What a write owns** in your table: the mapped ID, fingerprint, data and key columns and the
    columns of the fields the store's view owns (:meth:`uuid_forge.view.FieldView.owns`); the upsert
    sets only those, so other columns (another application's, or a mapped field the view ignores)
    keep their values. An unmapped column that is NOT NULL without a default refuses the table when
    it is first opened (a ConfigError naming the columns) unless ``defaults={column: value}``
    declares what to insert (INSERT only). ``filter="kind = 'user'"`` narrows the table: rows
    outside the condition are never read, counted or deleted.

    **Malformed IDs**: text ID columns (SQLite, MariaDB, ``id_format="string"``) can hold a wrong
    encoding (36-char text in a hex column, uppercase); scans read the raw text and report it as
    :class:`MalformedID` (also in partitioned scans: the ranges where uppercase and dashed forms
    sort are searched too), and ``delete_raw`` removes it. A native PostgreSQL ``uuid`` column
    cannot hold a wrong encoding. ``drop`` drops our per-type table; on your own table it deletes
    the rows and keeps the table.

    **Statements**: upserts are ``INSERT ... ON CONFLICT DO UPDATE`` (PostgreSQL, SQLite) or
    ``ON DUPLICATE KEY UPDATE`` (MariaDB), one ``executemany`` and one transaction per batch;
    reads use ``id = ANY(:array)`` on PostgreSQL and ``IN (...)`` elsewhere; scans stream
    (server-side cursor on PostgreSQL) ordered by ID within the partition's range. Statements are
    built with SQLAlchemy Core and compiled once per table; every value travels as a bound
    parameter and identifiers are quoted by SQLAlchemy.
    """

    name: ClassVar[str] = "sql"
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (
        sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, ConnectionError, TimeoutError)
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (DriverTimeout, TimeoutError)

    options: ClassVar[tuple[Option, ...]] = (
        Option("prefix", str, "uf_", "prefix of the per-type tables (1-30 letters, digits or '_')",
               deprecated=("table_prefix",)),
        Option("schema", str, None, "database schema of the tables (none: the connection's default)"),
        Option("id_format", str, "uuid", "ID column type: native uuid on PostgreSQL (CHAR(32) hex elsewhere), hex "
               "(CHAR(32) text) or string (36-char text)", choices=_ID_FORMATS),
        Option("data_type", str, "json", "type of the data column on PostgreSQL: json keeps the exact text, jsonb "
               "allows GIN indexes", choices=("json", "jsonb")),
        Option("statement_timeout", float, None, "seconds a statement may run on PostgreSQL (none: the server's "
               "setting)", minimum=0),
        Option("connect_timeout", float, 5.0, "seconds to connect (SQLite: to wait for a lock); in the URL query "
               "the driver's own parameter of this name applies", minimum=0, url=False),
        Option("read_timeout", float, 30.0, "seconds to wait for a reply on MariaDB/MySQL (also the write timeout)",
               minimum=0, url=False),
        Option("table", object, None, "your own table, in its own shape: a sqlalchemy.Table or the name of a "
               "table to reflect, e.g. table='users' (needs entity_type; without it, one table per type named "
               "prefix + type holds the data as one JSON column)"),
        Option("entity_type", str, None, "the one entity type your own table holds, e.g. entity_type='user'",
               url=False),
        Option("columns", dict, None, "where the record's parts go in your table: {'id': 'user_id'} (required "
               "unless the table has a column named id), plus 'fingerprint', 'data' (a JSON column for fields "
               "not mapped in fields=) and 'key'; None stores a part nowhere, an omitted one uses the column "
               "of the same name if the table has it"),
        Option("fields", dict, None, "data fields kept in typed columns of your table: {field: column}, e.g. "
               "{'email': 'email', 'created_at': 'created_at'}; values are checked against the column type "
               "before any write (timestamptz, timestamp with timezone=, numeric, integer, double, boolean, "
               "json/jsonb, uuid, date, text, PostgreSQL arrays) and read back in the data model"),
        Option("timezone", str, None, "the zone the values of timestamp columns without time zone are in "
               "(IANA name, e.g. timezone='UTC' or timezone='Europe/Paris'): written as that zone's wall "
               "time, read back as aware datetimes; required when a mapped field has such a column (MariaDB "
               "DATETIME/TIMESTAMP and SQLite datetimes are always such columns)"),
        Option("nulls", str, "value", "what a NULL in a field column means: value (the field is there with "
               "value null: every mapped field must be in the data, None included) or absent (the entity "
               "has no such field: a None value is refused). A field set to NULL by hand is then reported "
               "as differing (value) or missing (absent)", choices=_NULLS),
        Option("defaults", dict, None, "values uuid-forge inserts into unmapped columns of your table that are "
               "NOT NULL without a default (another application's columns), on INSERT only: an existing row "
               "keeps its value, e.g. defaults={'kind': 'user', 'source_app': 'uuid-forge'}. Without them such a "
               "table is refused when opened, naming the columns"),
        Option("filter", str, None, "a SQL condition narrowing your table to the rows of this entity type (e.g. "
               "filter=\"kind = 'user'\"): rows outside it are never read, counted, audited, copied or "
               "deleted; rows written must match it (declare the column in defaults= or fields=). One "
               "condition: ';' and comments are refused"),
        Option("engine_options", dict, None, "keyword arguments for sqlalchemy.create_engine (pool size, echo, ...)"),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "the database driver through SQLAlchemy (e.g. `sslmode`, `application_name`)"

    def __init__(self, url: str, **options: Any) -> None:
        sa_url = make_url(url)
        # the query as SQLAlchemy reads it (an unencoded '#' in a password would fool urlsplit)
        opts = self.parse_options("?" + urlencode(dict(sa_url.query), doseq=True), options)
        super().__init__(url, batch_size=opts["batch_size"])
        sa_url = sa_url.set(drivername=DRIVERS.get(sa_url.drivername, sa_url.drivername))
        query = dict(sa_url.query)
        for name in opts.url_names:  # ours, not the driver's
            query.pop(name, None)
        sa_url = sa_url.set(query=query)
        prefix, table = opts["prefix"], opts["table"]
        if not _PREFIX.fullmatch(prefix):
            raise ValidationError(f"prefix {prefix!r} must be 1-30 letters, digits or '_'")
        if opts["id_format"] not in _ID_FORMATS:
            raise ValidationError(f"id_format {opts['id_format']!r} is not one of {', '.join(_ID_FORMATS)}")
        if opts["data_type"] not in ("json", "jsonb"):
            raise ValidationError(f"data_type {opts['data_type']!r} must be 'json' or 'jsonb'")
        if table is not None and not opts["entity_type"]:
            raise ValidationError("table= needs entity_type=: the one entity type that table holds")
        if (opts["columns"] is not None or opts["fields"] is not None) and table is None:
            raise ValidationError("columns= and fields= map a table of your own: pass table= too")
        if (opts["defaults"] is not None or opts["filter"] is not None) and table is None:
            raise ValidationError("defaults= and filter= apply to a table of your own: pass table= too")
        row_filter(opts["filter"])  # refused text fails here, before any connection
        self._dialect = dialect_for(sa_url.get_backend_name())
        self.process_local = self._dialect.in_process(sa_url)
        timeout = opts["statement_timeout"]
        args = self._dialect.connect_args(opts["connect_timeout"], opts["read_timeout"],
                                          None if timeout is None else float(timeout))
        style = {"paramstyle": self._dialect.paramstyle} if self._dialect.paramstyle else {}
        try:
            with warnings.catch_warnings():  # SQLite drops a query argument it does not know with a warning
                warnings.filterwarnings("error", message="Query string argument", category=sa_exc.SAWarning)
                self._engine = sa.create_engine(
                    sa_url, pool_pre_ping=True, future=True,
                    connect_args={k: v for k, v in args.items() if k not in sa_url.query},  # the URL's own win
                    # bound parameters are entity data (emails, SSNs): never in an error text or a log line
                    **{**style, **dict(opts["engine_options"] or {}), "hide_parameters": True})
        except sa_exc.SAWarning as warning:  # a typo in the URL must not be ignored in silence
            names = re.findall(r"'([^']+)'", str(warning).partition(" are not accepted")[0])
            raise ValidationError(
                f"{self.url()}: URL argument(s) {', '.join(names)}: not an option of the sql adapter (docs/stores.md "
                "lists them) nor one the SQLite driver takes") from None
        except ModuleNotFoundError as err:  # SQLAlchemy is here, the backend's driver is not
            raise DriverMissingError(f"the {sa_url.drivername!r} store needs the driver {err.name!r}, which is not "
                                     f"installed: {_driver_hint(sa_url.get_backend_name(), err.name)}") from None
        self._settings = SQLSettings(
            prefix=prefix, schema=opts["schema"], id_format=opts["id_format"], data_type=opts["data_type"],
            table=table, entity_type=opts["entity_type"], columns=dict(opts["columns"] or {}),
            fields=opts["fields"], zone=parse_zone(opts["timezone"]), nulls=opts["nulls"],
            defaults=dict(opts["defaults"] or {}), filter=opts["filter"])
        # your own table holds one type; otherwise one table per type, with an owners record
        self._containers = Containers("table", own=None if table is None else self._table_name(),
                                      own_type=opts["entity_type"], prefix=prefix,
                                      owners=OwnersTable(self._engine, opts["schema"]), side=META)
        self._layout_class: type[TableLayout] = UserTable if self._containers.is_own else TypeTables
        self._tables: dict[str, TableLayout] = {}
        self._checked = False  # your table was opened once by check_entity_type
        self._utf8: bool | None = None  # PostgreSQL's server encoding is UTF-8 (range digests hash its bytes)
        self._pgcrypto: bool | None = None  # PostgreSQL: pgcrypto's digest() is callable (sha1 range digests)

    @property
    def id_encoding(self) -> str:
        """``uuid`` (native column), ``hex`` (CHAR(32), what sqlalchemy.Uuid uses off PostgreSQL) or ``string``."""
        opened = self._tables.get(self._settings.entity_type or "") if self._containers.is_own else None
        kind = opened.codec.kind if opened is not None else self._settings.type_id_kind(self._dialect)
        return "uuid" if kind == "native" else kind

    # -- validation ----------------------------------------------------------------------------
    def check_entity_type(self, entity_type: str) -> str:
        super().check_entity_type(entity_type)
        if self._containers.is_own:
            refused = self._containers.accepts(entity_type)
            if refused:
                raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: {refused}")
            self._check_table_once(entity_type)
            return entity_type
        prefix = self._settings.prefix
        if prefix + entity_type in (OWNERS, META):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: table "
                                  f"{prefix + entity_type!r} holds uuid-forge's own records")
        limit = self._dialect.max_identifier
        if limit is not None and len(prefix) + len(entity_type.encode()) > limit:
            raise ValidationError(
                f"entity type {entity_type!r} is too long for {self._dialect.name}: table name "
                f"{prefix + entity_type!r} must fit {limit} bytes (at most {limit - len(prefix)} "
                f"chars after the prefix {prefix!r})")
        return entity_type

    def check(self, entity_types: Iterable[str]) -> list[Check]:
        """The checks of every type and, for your own table, of its one type whether named or not."""
        types = list(entity_types)
        own = self._settings.entity_type if self._containers.is_own else None
        checked, self._checked = self._checked, True  # the table is opened (and named) by _check_type
        try:
            return super().check(types + [own] if own and own not in types else types)
        finally:
            self._checked = checked

    def _check_type(self, entity_type: str) -> list[Check]:
        """The table as a write opens it (reflected, never created): your table's mapped columns
        exist, no unmapped NOT NULL column without a default, defaults= and filter= accepted; a
        per-type table, if it exists, is this prefix's and type's."""
        name = self._containers.name_for(entity_type)
        where = f"table {name!r}"
        try:
            opened = self._table(entity_type, create=False)
        except ValidationError as err:
            return [Check(where, "failed", str(err))]
        if opened is None:
            if self._containers.is_own:
                return [Check(where, "failed", f"table {name!r} does not exist: uuid-forge never creates your own "
                              "table; create it, or name the right one with table= (and schema=)")]
            return [Check(where, "ok", "does not exist yet: created on the first write")]
        return [Check(where, "ok", "exists; its columns fit the mapping" if self._containers.is_own else "exists")]

    def _check_table_once(self, entity_type: str) -> None:
        """Open (reflect and check) your table the first time a type is checked, which a Forge does
        for every store before any store is written: a table every INSERT would fail on (unmapped
        NOT NULL columns, a mapped column that does not exist), bad defaults= or a filter the
        database refuses are refused then (ConfigError, ValidationError), not a half-done write:
        the same opening :meth:`_check_type` runs for ``uuid-forge validate``. Any other error
        (the server is down, no such table yet) is left for the operation itself to report,
        classified."""
        if self._checked or entity_type in self._tables:
            return
        self._checked = True
        try:
            with self._errors("open table"):
                self._table(entity_type, create=False)
        except (ConfigError, ValidationError):
            raise
        except Exception:  # noqa: BLE001, S110 - reported, classified, by the operation that needs the table
            pass

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        """Before any write: with field columns, each record must fit your table (see
        :meth:`UserTable.check_records`)."""
        if not self._settings.fields or self._containers.is_side(entity_type):
            return
        with self._errors("reflect table"):
            opened = self._table(self._settings.entity_type or "", create=False)
        if opened is not None:
            opened.check_records(records)

    # -- tables --------------------------------------------------------------------------------
    def _table_name(self) -> str:
        t = self._settings.table
        return t.name if isinstance(t, sa.Table) else str(t)

    def _table(self, entity_type: str, create: bool) -> TableLayout | None:
        """The layout of ``entity_type``'s table; None if the table does not exist (and create is False).
        Our per-type table must be this prefix's and type's (a write claims it)."""
        opened = self._tables.get(entity_type)
        if opened is not None:
            return opened
        # uuid-forge's own records beside your table sit in a table of ours (uuid_forge_meta)
        shape = TypeTables if self._containers.is_side(entity_type) else self._layout_class
        opened = shape.open(self._engine, self._dialect, self._settings, self._containers.name_for(entity_type),
                            create)
        if opened is None:
            return None
        self._containers.check(entity_type, claim=create)
        opened.store = self  # writes own what this adapter's view owns
        self._tables[entity_type] = opened
        return opened

    def _twin(self) -> Adapter:
        """A copy whose layouts serve it (its view decides which field columns its writes own)."""
        twin = super()._twin()
        assert isinstance(twin, SQLAdapter)
        twin._tables = {t: opened.bound(twin) for t, opened in self._tables.items()}
        return twin

    # -- hooks ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """The base wrapping, with driver timeouts told apart from lost connections."""
        with super()._errors(operation):
            try:
                yield
            except UUIDForgeError:
                raise
            except sa_exc.DBAPIError as err:
                if is_timeout(err):
                    raise DriverTimeout(str(err.orig)) from err
                raise

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        return classify_error(err) or super()._classify(err)

    def _put(self, entity_type: str, records: list[Record]) -> None:
        self._dialect.check_batch(self._engine, self.url(), entity_type, records)
        self._write(entity_type, records, [r.key_json for r in records])

    def _write(self, entity_type: str, records: list[Record], keys: list[str | None]) -> None:
        """Upsert one batch; ``keys`` are the records' canonical key texts, already computed."""
        opened = self._table(entity_type, create=True)
        assert opened is not None
        sql, rows = opened.prepared(records, keys)
        with self._engine.begin() as conn:  # one transaction per batch
            # executemany: psycopg pipelines it, PyMySQL folds it into multi-row INSERTs
            conn.exec_driver_sql(sql, rows)

    def _put_new(self, entity_type: str, records: list[Record]) -> None:
        """``INSERT ... ON CONFLICT DO NOTHING`` (MariaDB: a no-op ``ON DUPLICATE KEY UPDATE``): an
        existing row is never replaced, whoever inserted it first."""
        opened = self._table(entity_type, create=True)
        assert opened is not None
        if opened.field_cols:  # your own table's typed columns: the base's read-then-write
            super()._put_new(entity_type, records)
            return
        parts = [(opened.id, lambda r: opened.codec.encode(r.id))] + [
            (c, v) for c, v in ((opened.fp, lambda r: r.fingerprint), (opened.data, lambda r: r.data_json),
                                (opened.key, lambda r: r.key_json)) if c is not None]
        stmt = self._dialect.upsert(opened.table, opened.id, [], None).values(
            {c.name: sa.bindparam(f"p_{i}", type_=c.type) for i, (c, _) in enumerate(parts)})
        # bound at the driver level as the upsert is: JSON as its canonical text, not serialised again
        compiled = stmt.compile(dialect=self._engine.dialect)
        rows: list[Any] = [{f"p_{i}": v(r) for i, (_, v) in enumerate(parts)} for r in records]
        if compiled.positional:
            rows = [tuple(row[n] for n in compiled.positiontup or ()) for row in rows]
        with self._engine.begin() as conn:
            conn.exec_driver_sql(str(compiled), rows)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        opened = self._table(entity_type, create=False)
        if opened is None:
            return []
        keys = opened.codec.encode_many(ids)
        with self._engine.connect() as conn:
            rows = opened.fetch(conn, keys)
        # each record's fingerprint is computed from the data read (never the fingerprint column),
        # through this adapter's view
        read, decode = self._read_record, opened.decode
        return [read(entity_type, ident, functools.partial(decode, entity_type, ident, row, self))
                for ident, row in opened.codec.matched(rows, keys, ids)]

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Rows by their ID column's text exactly as a scan shows it (``legacy-7`` in a text
        column, a version-4 UUID in your own uuid column), decoded as :meth:`_get` does, within
        the store's ``filter``. A case-blind collation may match more rows: only exact text counts.

        An integer (serial) ID column is not an ID column this adapter opens as one (its ID column
        holds UUIDs or their text); moving such a table is done in place, by a new uuid column
        filled in the database (``uuid-forge migrate``), not through read_raw."""
        opened = self._table(entity_type, create=False)
        if opened is None:
            return []
        keys = _sql_keys(opened, raws, skip_invalid=True)
        if not keys:
            return []
        with self._engine.connect() as conn:
            return self._read_raw_rows(conn, entity_type, opened, raws, keys, lock=False)

    def _read_raw_rows(self, conn: sa.Connection, entity_type: str, opened: Any, raws: list[str], keys: list[Any],
                       lock: bool) -> list[RawEntry]:
        """The rows of ``keys`` read on ``conn`` (``lock``: ``FOR UPDATE``, held to the end of its
        transaction), decoded; only rows whose ID text is exactly one of ``raws``."""
        stmt = sa.select(*opened.read_exprs).where(opened.where(opened.scan_id.in_(
            sa.bindparam("raws", expanding=True))))
        if lock:
            stmt = stmt.with_for_update()
        rows = list(conn.execute(stmt, {"raws": keys}).all())
        names = set(raws)
        decode = functools.partial(opened.decode, by=self)
        return [self._raw_entry(entity_type, str(row[0]), decode, row, f"row {row[0]}")
                for row in rows if str(row[0]) in names]

    def _delete_raw_if_unchanged(self, entity_type: str, wanted: dict[str, str]) -> int:
        """Compare and delete in one transaction: the rows are read ``FOR UPDATE`` (no other writer
        can change them until commit; SQLite, which has no row locks, serialises writers and fails
        a transaction whose read went stale), compared, and those still equal deleted by exact ID
        text. A case-blind collation's look-alike rows are left (as :meth:`_delete_raw_names`)."""
        opened = self._table(entity_type, create=False)
        if opened is None:
            return 0
        raws = list(wanted)
        keys = _sql_keys(opened, raws, skip_invalid=True)
        if not keys:
            return 0
        with self._engine.begin() as conn:
            held = {e.raw: e for e in self._read_raw_rows(conn, entity_type, opened, raws, keys, lock=True)}
            same = [raw for raw in raws if self._still_proven(held.get(raw), wanted[raw])]
            if not same:
                return 0
            matched = [str(r[0]) for r in conn.execute(sa.select(opened.scan_id).where(opened.where(
                opened.scan_id.in_(sa.bindparam("raws", expanding=True)))), {"raws": _sql_keys(opened, same)})]
            blurred = {m.lower() for m in matched if m not in set(same)}
            same = [raw for raw in same if raw.lower() not in blurred]
            if not same:
                return 0
            where = opened.where(opened.scan_id.in_(sa.bindparam("raws", expanding=True)))
            return int(conn.execute(sa.delete(opened.table).where(where), {"raws": _sql_keys(opened, same)}).rowcount)

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        """Delete rows by their ID column's exact text (delete_raw_proven re-read each first), within
        the ``filter``. Where the database's comparison would match a row of other text too (a
        case-blind collation: ``LEGACY-7`` for ``legacy-7``), those names are left alone."""
        opened = self._table(entity_type, create=False)
        if opened is None:
            return 0
        keys = _sql_keys(opened, raws, skip_invalid=True)
        if not keys:
            return 0
        where = opened.where(opened.scan_id.in_(sa.bindparam("raws", expanding=True)))
        with self._engine.begin() as conn:
            matched = [str(r[0]) for r in conn.execute(sa.select(opened.scan_id).where(where), {"raws": keys})]
            names = set(raws)
            blurred = {m.lower() for m in matched if m not in names}
            keys = [k for k in keys if str(k).lower() not in blurred]
            if not keys:
                return 0
            return int(conn.execute(sa.delete(opened.table).where(where), {"raws": keys}).rowcount)

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        opened = self._table(entity_type, create=False)
        if opened is None:
            return 0
        with self._engine.begin() as conn:
            return opened.remove(conn, opened.codec.encode_many(ids))

    def shadow_columns(self) -> Any:
        """The in-place backfill of ``uuid-forge migrate`` over this database (adapters/sql/migration.py):
        what the engine calls for a table of the user's whose serial key cannot hold a second row."""
        from .migration import ShadowColumns

        return ShadowColumns(self._engine, self._settings.schema)

    def erasure_limits(self, entity_type: str) -> list[str]:
        """Deleted rows outlive the DELETE in each database's own way (named per dialect)."""
        name = self._engine.dialect.name
        if name == "postgresql":
            limits = [("PostgreSQL keeps a deleted row as a dead tuple in the table's pages until VACUUM reclaims "
                      "them (autovacuum does it in time; 'VACUUM <table>' does it now; the space is then reused, not "
                      "zeroed), and in the write-ahead log, its archives and on streaming replicas until those "
                      "segments are recycled")]
        elif name in ("mysql", "mariadb"):
            limits = [("MariaDB/MySQL (InnoDB) keeps the old row in its undo log until purge runs, in freed pages until "
                      "they are reused ('OPTIMIZE TABLE <table>' rebuilds the table), and in the binary log until "
                      "binlog_expire_logs_seconds (expire_logs_days) passes")]
        elif name == "sqlite":
            limits = [("SQLite leaves a deleted row's bytes in free pages unless 'PRAGMA secure_delete' is on; "
                      "'VACUUM' rewrites the file without them")]
        else:
            limits = [f"{name}: deleted rows may stay in the database's pages and logs until it reclaims them"]
        return [*limits, *super().erasure_limits(entity_type)]

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        opened = self._table(entity_type, create=False)
        if opened is None:
            return
        codec = opened.codec
        where, primary = codec.range_filter(opened.scan_id, partition)
        # The data itself, never the fingerprint column: our own table keeps the canonical text, hashed
        # as read; a table of your own is rebuilt from its columns.
        stmt = sa.select(opened.scan_id, *opened.scan_exprs()).where(opened.where(where)).order_by(opened.scan_id)
        # stream_results: a server-side cursor on PostgreSQL, an unbuffered one on MariaDB
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=self.batch_size).execute(stmt)
            for row in result:
                ident = codec.decode(row[0], self.id_versions)
                if isinstance(ident, ForeignEntry) and primary is not None \
                        and not (primary[0] <= row[0] and (primary[1] is None or row[0] < primary[1])):
                    continue  # foreign text outside this partition's own range: another partition reports it
                yield ident, opened.fingerprint(row, self)

    # -- range digests (uuid_forge.rangehash) ----------------------------------------------------
    def _hashable(self, entity_type: str) -> tuple[TypeTables | None, digests.HexId] | None:
        """Our own table (or none yet) and its ID/data SQL, when its stored text is what fingerprints
        hash: the full view, a json (not jsonb) data column, a UTF-8 PostgreSQL database."""
        if not self.view.full or self._containers.is_own or self._containers.is_side(entity_type):
            return None
        backend = self._engine.dialect.name
        if backend not in ("postgresql", "sqlite", "mysql", "mariadb"):
            return None
        if backend == "postgresql":
            if self._settings.data_type != "json":
                return None
            if self._utf8 is None:
                with self._engine.connect() as conn:
                    self._utf8 = str(conn.exec_driver_sql("SHOW server_encoding").scalar()).upper() in ("UTF8",
                                                                                                       "UTF-8")
            if not self._utf8:
                return None
        opened = self._table(entity_type, create=False)
        if opened is not None and not isinstance(opened, TypeTables):
            return None
        kind = opened.codec.kind if opened is not None else self._settings.type_id_kind(self._dialect)
        quote = self._engine.dialect.identifier_preparer.quote
        data = f"CAST({quote('data')} AS text)" if backend == "postgresql" else quote("data")
        return (opened if isinstance(opened, TypeTables) else None), digests.HexId(backend, kind, quote("id"), data)

    def digest_algorithms(self, entity_type: str) -> tuple[str, ...]:
        """md5 first (SQL to SQL, as before); sha1 too (what a Redis script hashes by), on PostgreSQL
        only where pgcrypto's ``digest(text, text)`` is callable: never installed from here."""
        with self._errors(f"digest_algorithms({entity_type})"):
            if self._hashable(entity_type) is None:
                return ()
            if self._engine.dialect.name == "postgresql":
                if self._pgcrypto is None:
                    with self._engine.connect() as conn:
                        self._pgcrypto = bool(conn.exec_driver_sql(
                            "SELECT to_regprocedure('digest(text, text)') IS NOT NULL").scalar())
                if not self._pgcrypto:
                    return ("md5",)
            return ("md5", "sha1")

    def range_digests(self, entity_type: str, ranges: list[Partition], algorithm: str
                      ) -> list[tuple[int, int] | None] | None:
        self.check_entity_type(entity_type)
        with self._errors(f"range_digests({entity_type}, {len(ranges)} ranges)"):
            found = self._hashable(entity_type)
            if found is None or not ranges:
                return None
            opened, ids = found
            if opened is None:  # no table: nothing held in any range
                return [(0, 0)] * len(ranges)
            query = digests.digest_query(ids, digests.table_sql(self._engine, opened.table), ranges, algorithm)
            if query is None:
                return None
            sql, params = query
            with self._engine.connect() as conn:
                if ids.backend == "sqlite":
                    digests.register_sqlite(conn.connection.dbapi_connection)
                rows = list(conn.execute(sa.text(sql), params).all())
            return digests.sum_ranges(rows, ranges, ids.backend)

    def digest_outsiders(self, entity_type: str) -> int | None:
        self.check_entity_type(entity_type)
        with self._errors(f"digest_outsiders({entity_type})"):
            found = self._hashable(entity_type)
            if found is None:
                return None
            opened, ids = found
            if opened is None:
                return 0
            sql = digests.outsiders_query(ids, digests.table_sql(self._engine, opened.table))
            if sql is None:
                return 0  # a native uuid column holds no other form
            with self._engine.connect() as conn:
                if ids.backend == "sqlite":
                    digests.register_sqlite(conn.connection.dbapi_connection)
                return int(conn.execute(sa.text(sql)).scalar() or 0)

    def count(self, entity_type: str) -> int:
        """``count(*)`` where every row of our table is a well-encoded record (no outsiders);
        otherwise the base count of the scan."""
        if self.digest_outsiders(entity_type) == 0:
            found = self._hashable(entity_type)
            if found is not None:
                opened, _ = found
                if opened is None:
                    return 0
                with self._errors(f"count({entity_type})"), self._engine.connect() as conn:
                    return int(conn.execute(sa.select(sa.func.count()).select_from(opened.table)).scalar() or 0)
        return super().count(entity_type)

    def _scan_ranges(self, entity_type: str, ranges: list[Partition]) -> Iterator[ScanItem]:
        """The rows of several ranges in one SELECT (not streamed: an audit by hashes reads few)."""
        opened = self._table(entity_type, create=False)
        if opened is None:
            return
        codec = opened.codec
        filters = [codec.range_filter(opened.scan_id, p) for p in ranges]
        primaries = [f[1] for f in filters if f[1] is not None]
        stmt = sa.select(opened.scan_id, *opened.scan_exprs()).where(
            opened.where(sa.or_(*(f[0] for f in filters)))).order_by(opened.scan_id)
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        for row in rows:
            ident = codec.decode(row[0], self.id_versions)
            if isinstance(ident, ForeignEntry) and primaries \
                    and not any(lo <= row[0] and (hi is None or row[0] < hi) for lo, hi in primaries):
                continue  # foreign text outside these ranges' own text ranges: another range reports it
            yield ident, opened.fingerprint(row, self)

    def estimate(self, entity_type: str) -> int:
        """``count(*)`` of the type's rows (malformed IDs included): partitions sized without
        reading and hashing every row, as :meth:`count` would."""
        self._require(SCAN)
        self.check_entity_type(entity_type)
        with self._errors(f"estimate({entity_type})"):
            opened = self._table(entity_type, create=False)
            if opened is None:
                return 0
            stmt = sa.select(sa.func.count()).select_from(opened.table).where(opened.where(sa.true()))
            with self._engine.connect() as conn:
                return int(conn.execute(stmt).scalar_one())

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete rows by their ID column's raw text (a wrongly encoded ID, as ``MalformedID.raw``)."""
        opened = self._table(entity_type, create=False)
        if opened is None:
            return 0
        codec = opened.codec
        if codec.native:  # a uuid column holds no wrong encoding: nothing by that text can exist
            return super()._delete_raw(entity_type, raws)
        foreign = [raw for raw in raws if isinstance(codec.decode(raw, self.id_versions), ForeignEntry)]
        if foreign:
            raise ValidationError(f"IDs {foreign[:3]} are not IDs written by uuid-forge: refused, foreign rows "
                                  "are never deleted")
        stmt = sa.delete(opened.table).where(opened.where(opened.scan_id.in_(sa.bindparam("raws", expanding=True))))
        with self._engine.begin() as conn:
            return conn.execute(stmt, {"raws": list(raws)}).rowcount

    def shared(self, entity_type: str) -> bool:
        return self._containers.is_own  # the user's own table

    def _drop(self, entity_type: str) -> None:
        """DROP TABLE for our own per-type table; on your own table only its rows go, never the table."""
        if self._containers.is_own:
            super()._drop(entity_type)
            return
        self._containers.check(entity_type, claim=False)  # never another prefix's table
        opened = self._tables.pop(entity_type, None)
        settings = self._settings
        table = opened.table if opened is not None else type_table(
            self._containers.name_for(entity_type), settings.schema,
            IdCodec(settings.type_id_kind(self._dialect)).column_type(), settings.data_type)
        with self._engine.begin() as conn:
            conn.execute(sa.schema.DropTable(table, if_exists=True))
        self._containers.release(entity_type)

    def _entity_types(self) -> Iterable[str]:
        settings = self._settings
        if self._containers.is_own:
            opened = self._table(settings.entity_type or "", create=False)
            return [settings.entity_type] if opened is not None else []  # type: ignore[list-item]
        with self._engine.connect() as conn:
            names = sa.inspect(conn).get_table_names(schema=settings.schema)
        found = []
        for entity_type in self._containers.ours(n for n in names if n not in (OWNERS, META)):
            with contextlib.suppress(ValidationError):
                found.append(self.check_entity_type(entity_type))
        return found

    def _ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def _close(self) -> None:
        self._engine.dispose()
        self._tables.clear()


def _sql_keys(opened: Any, raws: list[str], skip_invalid: bool = False) -> list[Any]:
    """Raw names as the ID column's values: UUIDs for a native uuid column, the text otherwise.

    ``skip_invalid``: a name that is no UUID is left out for a uuid column (no row can have it,
    and the database would reject the value) instead of raising ``ValueError``."""
    if not opened.codec.native:
        return list(raws)
    if not skip_invalid:
        return [uuid.UUID(r) for r in raws]
    keys: list[Any] = []
    for raw in raws:
        with contextlib.suppress(ValueError):
            keys.append(uuid.UUID(raw))
    return keys
