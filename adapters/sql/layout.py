"""Layouts: how records sit in a table, one strategy class per shape.

:class:`TypeTables` is ours (one table per entity type: ID, fingerprint, the data as one JSON
text, key), read and written on a fast path; :class:`UserTable` is the user's own table, in its
own shape, its columns mapped by a :class:`~uuid_forge.adapters.sql.columns.ColumnMap`. Each
layout object serves one table and builds its statements once.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from uuid_forge.errors import ConfigError, ValidationError
from uuid_forge.layout import Layout
from uuid_forge.record import Record, TextFingerprint, data_fingerprint, load_json
from uuid_forge.urls import mask_text

from .codec import FieldColumn, IdCodec
from .columns import (
    TYPE_TABLE_COLUMNS,
    ColumnMap,
    check_defaults,
    check_unmapped,
    id_kind,
    map_columns,
    reflect,
    row_filter,
    statement_table,
)
from .dialects import Dialect
from .errors import is_timeout
from .tables import create_table, has_table, type_table

__all__ = ["LAYOUTS", "Fingerprints", "SQLSettings", "TableLayout", "TypeTables", "UserTable"]


@dataclass(frozen=True)
class SQLSettings:
    """The adapter's options that shape its tables, parsed once."""

    prefix: str
    schema: str | None
    id_format: str
    data_type: str
    table: sa.Table | str | None
    entity_type: str | None
    columns: Mapping[str, str | None]
    fields: Mapping[str, str] | None
    zone: _dt.tzinfo | None
    nulls: str
    #: values for unmapped NOT NULL columns of the user's table, used on INSERT only
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: the user's SQL condition narrowing their table (None: every row)
    filter: str | None = None

    def type_id_kind(self, dialect: Dialect) -> str:
        """How our per-type tables keep IDs: ``id_format="uuid"`` is the backend's uuid column where
        it has one (CHAR(32) hex, what sqlalchemy.Uuid uses, elsewhere)."""
        if self.id_format != "uuid":
            return self.id_format
        return "native" if dialect.native_uuid else "hex"


class Fingerprints(Protocol):
    """Where a layout's fingerprints come from: the adapter, which sees the data through its view."""

    def fingerprint_data(self, data: Any) -> str | None: ...

    def fingerprint_text(self, text: str | bytes) -> str | None: ...


class _FullView:
    """Fingerprints of the whole data (no view)."""

    def fingerprint_data(self, data: Any) -> str | None:
        return data_fingerprint(data)

    def fingerprint_text(self, text: str | bytes) -> str | None:
        return TextFingerprint(text)


_FULL = _FullView()


@dataclass(frozen=True)
class _Upsert:
    """One compiled upsert: its driver SQL, bind names (or positional order) and the field columns it writes."""

    sql: str
    names: list[str]
    order: list[int] | None
    fields: list[FieldColumn]

    def columns(self, layout: TableLayout) -> list[Any]:
        """The columns it sets on an existing row."""
        return [layout.id, *(x for x in (layout.fp, layout.data, layout.key) if x is not None),
                *(f.column for f in self.fields)]


def _bound(column: sa.Column[Any], value: Any, sa_dialect: sa.Dialect) -> Any:
    """A declared default as the driver takes it (through the column type's bind processor);
    ConfigError naming the column for a value its type cannot take."""
    proc = column.type.dialect_impl(sa_dialect).bind_processor(sa_dialect)
    try:
        return proc(value) if proc is not None and value is not None else value
    except (TypeError, ValueError, AttributeError):
        raise ConfigError(f"defaults: column {column.name!r} ({column.type}) cannot take the value given "
                          f"({type(value).__name__})") from None


class TableLayout(Layout):
    """One table and where each part of a record goes in it, with its statements built once.

    This general form serves any column map; rows are read back column by column into the data
    model and fingerprinted from the data read, never from the ``fingerprint`` column (a
    write-time hint another program's UPDATE leaves behind).
    """

    def __init__(self, engine: sa.Engine, dialect: Dialect, table: sa.Table, codec: IdCodec, columns: ColumnMap,
                 zone: _dt.tzinfo | None = None, nulls: str = "value", defaults: Mapping[str, Any] | None = None,
                 condition: sa.TextClause | None = None) -> None:
        self.table, self.codec, self.columns, self.nulls, self.dialect = table, codec, columns, nulls, dialect
        c = table.c

        def col(name: str | None) -> Any:
            return c[name] if name else None

        self.id = c[columns.id]
        self.fp, self.data, self.key, self.updated = (
            col(n) for n in (columns.fingerprint, columns.data, columns.key, columns.updated_at))
        self.field_cols = [FieldColumn(f, c[name], dialect, zone) for f, name in columns.fields.items()]
        #: the user's ``filter``: rows outside it are not this store's (never read, counted or deleted)
        self.condition = condition
        # scans read ID text untouched (type_coerce: no SQL CAST, so the index still serves the range)
        self.scan_id = self.id if codec.native else sa.type_coerce(self.id, sa.String())
        self.read_cols = [self.id, *(x for x in (self.fp, self.data, self.key) if x is not None),
                          *(f.column for f in self.field_cols)]
        # what reads select: JSON as text (parsed here without losing digits), other columns as the
        # driver returns them (SQLAlchemy's result processors would round SQLite numerics, parse JSON
        # into floats); FieldColumn.from_db maps them back to the data model
        self.read_exprs = [self._as_read(x) for x in self.read_cols]
        match = self.where(dialect.id_match(self.id))
        self.get_stmt = sa.select(*self.read_exprs).where(match)
        self.delete_stmt = sa.delete(table).where(match)
        self._engine_dialect = sa_dialect = engine.dialect
        # JSON goes as the canonical text (the column's serializer cannot write a Decimal)
        self.field_processors = {f.field: None if f.kind == "json" else
                                 f.type.dialect_impl(sa_dialect).bind_processor(sa_dialect) for f in self.field_cols}
        #: unmapped columns with a declared value for INSERT (never part of the UPDATE)
        self.defaults = [(c[name], _bound(c[name], value, sa_dialect)) for name, value in (defaults or {}).items()]
        self._upserts: dict[tuple[str, ...], _Upsert] = {}
        full = self._upsert(tuple(f.field for f in self.field_cols))
        self.put_sql, self.put_names, self.put_order = full.sql, full.names, full.order
        n_fixed = len(self.read_cols) - len(self.field_cols)
        at = {id(c): i for i, c in enumerate(self.read_cols)}
        self.i_fp, self.i_data, self.i_key = (at[id(c)] if c is not None else None
                                              for c in (self.fp, self.data, self.key))
        self.i_fields = [(f, n_fixed + k) for k, f in enumerate(self.field_cols)]

    def where(self, clause: Any) -> Any:
        """``clause`` narrowed to the rows of the user's ``filter`` (if any)."""
        return clause if self.condition is None else sa.and_(clause, self.condition)

    def _upsert(self, fields: tuple[str, ...]) -> _Upsert:
        """The upsert writing the parts and the field columns of ``fields``, built once per set.

        Built with Core and compiled once; rows are then bound at the driver level (values already
        encoded here), which skips SQLAlchemy's per-row parameter processing: that alone cost about
        a quarter of put_many's throughput on PostgreSQL. The UPDATE sets exactly the columns
        written, so every other column of an existing row (another application's) keeps its value;
        declared defaults are in the INSERT only."""
        done = self._upserts.get(fields)
        if done is not None:
            return done
        cols = [f for f in self.field_cols if f.field in fields]
        written = [self.id, *(x for x in (self.fp, self.data, self.key) if x is not None), *(f.column for f in cols)]
        keys = [x.key for x in written] + [x.key for x, _ in self.defaults]
        compiled = self.dialect.upsert(self.table, self.id, [x.name for x in written[1:]], self.updated).compile(
            dialect=self._engine_dialect, column_keys=keys)
        escaped = compiled.escaped_bind_names or {}
        done = self._upserts[fields] = _Upsert(
            str(compiled), [escaped.get(k, k) for k in keys],
            [keys.index(n) for n in compiled.positiontup] if compiled.positional else None, cols)
        return done

    def written_fields(self) -> tuple[str, ...]:
        """The mapped fields a write sets: those the store's view owns (FieldView.owns); a column of
        a field it does not own (ignored, or outside the projection) is another application's."""
        owns = self._owns()
        return tuple(f.field for f in self.field_cols if owns is None or owns(f.field))

    def _owns(self) -> Any:
        view = getattr(getattr(self, "store", None), "view", None)
        return None if view is None or view.full else view.owns

    @classmethod
    def open(cls, engine: sa.Engine, dialect: Dialect, settings: SQLSettings, name: str,
             create: bool) -> TableLayout | None:
        """The layout of table ``name`` (created first with ``create``); None if it does not exist."""
        raise NotImplementedError

    def _as_read(self, column: Any) -> Any:
        if column is self.id:
            return column
        if isinstance(column.type, sa.JSON):
            return self.dialect.as_text(column).label(column.name)
        return sa.type_coerce(column, sa.types.NullType()).label(column.name)

    # -- writing -----------------------------------------------------------------------------
    def check_records(self, records: list[Record]) -> None:
        """Refuse, before any write, a record this table cannot hold (nothing to check by default)."""

    def prepared(self, records: list[Record], keys: list[str | None]) -> tuple[str, list[Any]]:
        """The upsert (driver SQL) of the columns this store's write owns, and its parameters."""
        up = self._upsert(self.written_fields())
        return up.sql, self._rows(up, records, keys)

    def rows(self, records: list[Record], keys: list[str | None]) -> list[Any]:
        """Driver-ready parameters for the compiled upsert: tuples (positional styles) or dicts by
        bind name. Field values are checked and converted first (ValidationError names the field)."""
        return self._rows(self._upsert(self.written_fields()), records, keys)

    def _rows(self, up: _Upsert, records: list[Record], keys: list[str | None]) -> list[Any]:
        enc = self.codec.encode
        has = (self.fp is not None, self.data is not None, self.key is not None)
        extra = [value for _, value in self.defaults]
        values: list[list[Any]] = []
        for r, key_text in zip(records, keys):
            row: list[Any] = [enc(r.id)]
            if has[0]:
                row.append(r.fingerprint)
            if has[1]:
                row.append(r.data_json)
            if has[2]:
                row.append(key_text)
            if up.fields:
                row += self._field_values(r, up.fields)
            values.append(row + extra)
        if up.order is not None:
            order = up.order
            return [tuple(v[i] for i in order) for v in values]
        names = up.names
        return [dict(zip(names, v)) for v in values]

    def _field_values(self, record: Record, cols: list[FieldColumn]) -> list[Any]:
        """The record's mapped fields as column values; a NULL stands for None (``nulls="value"``)
        or for an absent field (``nulls="absent"``), and what the other reading would lose is refused."""
        data = load_json(record.data_json)  # the canonical values: Decimals keep every digit
        out: list[Any] = []
        for f in cols:
            proc = self.field_processors[f.field]
            if f.field not in data:
                if self.nulls == "value":
                    raise ValidationError(
                        f"{record!r} has no field {f.field!r}, which column {f.column.name!r} holds: with "
                        "nulls='value' a NULL reads back as the field with value null (pass the field, even as "
                        "None, or choose nulls='absent')")
                out.append(None)
                continue
            value = data[f.field]
            if value is None and self.nulls == "absent":
                raise ValidationError(
                    f"{record!r}: field {f.field!r} is null, which nulls='absent' reads back as no field at all "
                    "(leave the field out, or choose nulls='value')")
            value = f.to_db(value)
            out.append(proc(value) if proc is not None and value is not None else value)
        return out

    def encode(self, record: Record) -> Any:
        """The upsert's parameters for one record."""
        return self.rows([record], [record.key_json])[0]

    def owned_fields(self, record: Record) -> frozenset[str]:
        """The columns a write of ``record`` sets: the ID, fingerprint, data and key columns and the
        columns of the fields the store's view owns; every other column of the row (another
        application's, or a mapped field the view ignores) keeps its value."""
        written = [c.name for c in self._upsert(self.written_fields()).columns(self)]
        return frozenset(written + ([self.updated.name] if self.updated is not None else []))

    # -- reading -----------------------------------------------------------------------------
    def fetch(self, conn: sa.Connection, keys: list[Any]) -> list[Any]:
        """The rows of the IDs stored as ``keys``, columns as in ``read_exprs``."""
        return list(conn.execute(self.get_stmt, {"ids": keys}).all())

    def remove(self, conn: sa.Connection, keys: list[Any]) -> int:
        """Delete the rows of the IDs stored as ``keys``; how many there were."""
        return int(conn.execute(self.delete_stmt, {"ids": keys}).rowcount)

    def data_of(self, row: Any) -> dict[str, Any]:
        """The data of a row read with ``read_exprs``: the data column's JSON (every digit kept),
        then each field column mapped back to the data model."""
        data: dict[str, Any] = {}
        if self.i_data is not None:
            raw = row[self.i_data]
            data = dict(load_json(raw) if isinstance(raw, (str, bytes)) else raw)
        for f, i in self.i_fields:
            value = row[i]
            if value is None and self.nulls == "absent":
                data.pop(f.field, None)
                continue
            data[f.field] = f.from_db(value)
        return data

    def key_of(self, row: Any) -> Any:
        if self.i_key is None or row[self.i_key] is None:
            return None
        raw = row[self.i_key]
        return load_json(raw) if isinstance(raw, (str, bytes)) else raw

    def decode(self, entity_type: str, ident: uuid.UUID, row: Any, by: Fingerprints = _FULL) -> Record:
        """A stored row back as a Record, fingerprinted from the data read (through ``by``)."""
        data = self.data_of(row)
        return Record(entity_type, ident, data, self.key_of(row), fingerprint=by.fingerprint_data(data))

    def fingerprint(self, row: Any, by: Fingerprints = _FULL) -> str | None:
        """The fingerprint of a row read with ``read_exprs`` (or ``scan_exprs``); None (stale, named
        by the audit's read) for a value that cannot be mapped back (a NULL in a nulls='value' JSON
        column is fine; text in a number column read through SQLite is not)."""
        try:
            return by.fingerprint_data(self.data_of(row))
        except (ValueError, TypeError, ArithmeticError):
            return None

    def scan_exprs(self) -> list[Any]:
        """What a scan selects after the ID: what :meth:`fingerprint` needs."""
        return self.read_exprs[1:]


class TypeTables(TableLayout):
    """Our own table per entity type; rows and records take a fast path (positional tuples bound
    at the driver level, the data read as the exact text its fingerprint is computed from)."""

    name = "tables"
    doc = ("one table per entity type, prefix + type, created on first write: id, fingerprint, data (the "
           "canonical JSON text), key, updated_at")

    def __init__(self, engine: sa.Engine, dialect: Dialect, table: sa.Table, codec: IdCodec) -> None:
        super().__init__(engine, dialect, table, codec, TYPE_TABLE_COLUMNS)
        self._read_sql: dict[int, str] = {}
        self._delete_sql: dict[int, str] = {}
        # the upsert binds id, fingerprint, data, key in that order (a positional paramstyle)
        self.fast = self.put_order == [0, 1, 2, 3]

    @classmethod
    def open(cls, engine: sa.Engine, dialect: Dialect, settings: SQLSettings, name: str,
             create: bool) -> TypeTables | None:
        """The layout of our table ``name``, created first with ``create``; None if it does not exist."""
        codec = IdCodec(settings.type_id_kind(dialect))
        table = type_table(name, settings.schema, codec.column_type(), settings.data_type)
        if create:
            create_table(engine, table)
        elif not has_table(engine, name, settings.schema):
            return None
        return cls(engine, dialect, table, codec)

    def prepared(self, records: list[Record], keys: list[str | None]) -> tuple[str, list[Any]]:
        """Our own table: every column is ours, one statement for every write."""
        return self.put_sql, self.rows(records, keys)

    def rows(self, records: list[Record], keys: list[str | None]) -> list[Any]:
        if not self.fast:
            return super().rows(records, keys)
        codec = self.codec
        if codec.native:
            return [(r.id, r.fingerprint, r.data_json, k) for r, k in zip(records, keys)]
        if codec.kind == "hex":
            return [(r.id.hex, r.fingerprint, r.data_json, k) for r, k in zip(records, keys)]
        enc = codec.encode
        return [(enc(r.id), r.fingerprint, r.data_json, k) for r, k in zip(records, keys)]

    def read_sql(self, n: int) -> tuple[str, int]:
        """The SELECT for ``n`` IDs compiled to driver SQL, and how many IDs it takes."""
        size = self.dialect.read_size(n)
        sql = self._read_sql.get(size)
        if sql is None:  # data and key as text: the data's exact text is what its fingerprint is computed from
            as_text = self.dialect.as_text
            stmt = sa.select(self.id, self.fp, as_text(self.data), as_text(self.key)).where(
                self.dialect.read_match(self.id, size))
            sql = self._read_sql[size] = str(stmt.compile(dialect=self._engine_dialect,
                                                          compile_kwargs={"render_postcompile": True}))
        return sql, size

    def fetch(self, conn: sa.Connection, keys: list[Any]) -> list[Any]:
        """Our own table: the SELECT compiled once, bound and read at the driver level."""
        if not self.fast:
            return super().fetch(conn, keys)
        sql, size = self.read_sql(len(keys))
        return list(conn.exec_driver_sql(sql, self.dialect.read_params(keys, size)).all())

    def remove(self, conn: sa.Connection, keys: list[Any]) -> int:
        """Our own table: the DELETE compiled once per IN size (as the SELECT is), bound at the driver
        level: SQLAlchemy's per-call compile and bind processing cost a quarter of a 1,000-ID delete
        against the driver's own call (bench/write.py --deletes)."""
        size = self.dialect.read_size(len(keys))
        sql = self._delete_sql.get(size)
        if sql is None:
            sql = self._delete_sql[size] = str(sa.delete(self.table).where(self.dialect.read_match(self.id, size))
                                               .compile(dialect=self._engine_dialect,
                                                        compile_kwargs={"render_postcompile": True}))
        return int(conn.exec_driver_sql(sql, self.dialect.read_params(keys, size)).rowcount)

    def decode(self, entity_type: str, ident: uuid.UUID, row: Any, by: Fingerprints = _FULL) -> Record:
        """JSON comes as text (cast on PostgreSQL; PyMySQL and sqlite3 return it so), parsed here with
        every digit; the fingerprint is the hash of the data text read, which the audit
        re-canonicalises only where it differs."""
        return Record(entity_type, ident, load_json(row[2]), None if row[3] is None else load_json(row[3]),
                      fingerprint=by.fingerprint_text(row[2]))

    def scan_exprs(self) -> list[Any]:
        return [self.dialect.as_text(self.data)]

    def fingerprint(self, row: Any, by: Fingerprints = _FULL) -> str | None:
        """The canonical text as stored, hashed as read."""
        return by.fingerprint_text(row[1]) if isinstance(row[1], str) else None


class UserTable(TableLayout):
    """The user's own table: its columns mapped, field values converted both ways per column type."""

    name = "table"
    doc = ("your own table (table=, one entity type), in its own shape: the record's parts in the columns "
           "of columns=, data fields in typed columns (fields=) or one JSON column")

    @classmethod
    def open(cls, engine: sa.Engine, dialect: Dialect, settings: SQLSettings, name: str,
             create: bool) -> UserTable:
        """The user's table (reflected if named) with the column map resolved and checked."""
        assert settings.table is not None
        table = reflect(engine, settings.table, settings.schema)
        columns = map_columns(table, settings.columns, settings.fields)
        check_defaults(table, columns, settings.defaults)
        codec = IdCodec(id_kind(table.c[columns.id], dialect, settings.id_format), shared=True)
        opened = cls(engine, dialect, statement_table(table, columns, codec, list(settings.defaults)), codec, columns,
                     zone=settings.zone, nulls=settings.nulls, defaults=settings.defaults,
                     condition=row_filter(settings.filter))
        opened.check_filter(engine, settings.filter)
        return opened

    def check_filter(self, engine: sa.Engine, text: str | None) -> None:
        """Run the ``filter`` once when the table is opened, so a condition the database refuses
        (an unknown column, a syntax error) is a ConfigError naming it, not a failed audit later."""
        if self.condition is None:
            return
        try:
            with engine.connect() as conn:
                conn.execute(sa.select(self.id).where(self.condition).limit(1)).all()
        except sa_exc.DBAPIError as err:
            if err.connection_invalidated or is_timeout(err):
                raise
            raise ConfigError(f"filter {text!r} on table "
                              f"{self.table.name!r} is refused by the database: {type(err.orig).__name__}: "
                              f"{mask_text(str(err.orig).splitlines()[0] if str(err.orig) else '')}") from None

    def check_records(self, records: list[Record]) -> None:
        """With field columns: every data field has a column when there is no data column, and each
        field's value fits its column's type (converted here and again when written: a refused
        record must not leave half a batch behind)."""
        if not self.field_cols:
            return
        if self.data is None:
            check_unmapped(records, self.columns.fields, self._owns())
        for r in records:
            self.rows([r], [None])


#: the layouts by name: ours (a table per type) or the user's own table (``table=``)
LAYOUTS: dict[str, type[TableLayout]] = {TypeTables.name: TypeTables, UserTable.name: UserTable}
