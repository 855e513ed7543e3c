"""SQL stores through SQLAlchemy 2 Core: PostgreSQL (psycopg 3) first, SQLite and MariaDB/MySQL (PyMySQL) too.

Two layouts (see :class:`SQLAdapter`): your own table in its own shape (``table=``, one entity
type, data fields in typed columns that round-trip: timestamptz, timestamp in a declared zone,
numeric, integer, double, boolean, json/jsonb, uuid, date, PostgreSQL arrays, text), or without
``table=`` one table per entity type holding the data as one JSON column. Either way a record's
fingerprint is computed from the data read, never from a stored one.

Only SQLAlchemy is imported here; it loads the DBAPI driver (psycopg, pymysql, sqlite3) when the
engine first connects, so a SQLite store needs nothing beyond SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlencode

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, make_url

from ..canonical import canonical
from ..classify import ANY_VERSIONS, classify, classify_uuid
from ..contract import BATCH_SIZE, Adapter, Option, ScanItem
from ..errors import StoreConfigError, StoreError, StoreRejectedError, UUIDForgeError, ValidationError
from ..record import ForeignEntry, MalformedID, Partition, Record, load_json

__all__ = ["SQLAdapter"]

# scheme spellings accepted by the registry -> the SQLAlchemy dialect+driver we run them with
_DRIVERS = {
    "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql", "mariadb+pymysql": "mysql+pymysql",
}
# longest identifier each backend keeps (PostgreSQL silently truncates longer ones: two types could collide)
_MAX_IDENTIFIER = {"postgresql": 63, "mysql": 64}
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,29}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_STR36 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)
_ID_FORMATS = ("uuid", "hex", "string")
_NULLS = ("value", "absent")
#: which table_prefix and entity type each of our tables was made for: ``table_prefix + type`` has
#: no separator a type could not contain (``uf_`` + ``acme_user`` is ``uf_acme_`` + ``user``)
OWNERS = "uuid_forge_owners"


def _zone(name: str | None) -> _dt.tzinfo | None:
    """The declared zone of naive timestamp columns; ValidationError for a name zoneinfo does not know."""
    if name is None:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"timezone {name!r} is not a zone name zoneinfo knows (e.g. 'UTC', "
                              "'Europe/Paris')") from None


def _is_timeout(err: BaseException) -> bool:
    """A statement or socket timeout (as opposed to a refused or dropped connection)."""
    orig = getattr(err, "orig", err)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL query_canceled (statement_timeout)
        return True
    code = orig.args[0] if getattr(orig, "args", None) else None
    if code in (1969, 3024):  # MariaDB max_statement_time, MySQL max_execution_time
        return True
    text = str(orig).lower()
    return "timed out" in text or "timeout expired" in text


# MariaDB/MySQL error numbers that are permanent: for the store (access, unknown database) or
# for the record (constraint, data, size). PyMySQL files most of them under OperationalError,
# which would otherwise read as "unreachable" and be retried forever.
_MYSQL_CONFIG = frozenset({1044, 1045, 1046, 1049, 1054, 1142, 1143, 1146, 1227, 1370, 1698})
_MYSQL_RECORD = frozenset({1048, 1062, 1153, 1264, 1265, 1292, 1301, 1366, 1367, 1406, 1451, 1452, 1690, 3140,
                           3146, 3819, 4025, 4038, 4036, 4037, 4039, 4040, 4041, 4042, 4043, 4044, 4045})
# PostgreSQL SQLSTATE classes/codes: 28 authorization, 3D unknown database, 3F unknown schema,
# 42501 insufficient privilege, 42P01 unknown table (a user's table= that is not there) -> store;
# 22 data exception, 23 integrity constraint, 54 program limit (row or index entry too big) -> record.
_PG_CONFIG = ("28", "3D", "3F", "42501", "42P01", "42703")
_PG_RECORD = ("22", "23", "54")
_CONFIG_TEXT = ("password authentication failed", "authentication failed", "does not exist", "no pg_hba.conf entry",
                "access denied", "permission denied", "attempt to write a readonly database")


def _classify_sql(err: BaseException) -> type[StoreError] | None:
    """Permanent SQL errors by the driver's own code (SQLSTATE, MariaDB error number), then text."""
    if isinstance(err, _Timeout):
        return None
    orig = getattr(err, "orig", None) or err
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    if code is not None:  # MariaDB/MySQL first: PyMySQL also sets a (coarse) sqlstate
        if code in _MYSQL_CONFIG:
            return StoreConfigError
        if code in _MYSQL_RECORD:
            return StoreRejectedError
        return None
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state:
        if state.startswith(_PG_CONFIG):
            return StoreConfigError
        if state.startswith(_PG_RECORD):
            return StoreRejectedError
        return None
    if isinstance(err, (sa_exc.IntegrityError, sa_exc.DataError)):
        return StoreRejectedError
    text = str(orig).lower()
    if any(t in text for t in _CONFIG_TEXT):
        return StoreConfigError
    return None


class _Timeout(TimeoutError):
    """A driver timeout, re-raised so the base class reports StoreTimeoutError."""


class _IdCodec:
    """How one table keeps IDs: ``native`` uuid column, ``hex`` CHAR(32) or ``string`` 36-char text."""

    def __init__(self, kind: str, shared: bool = False) -> None:
        self.kind = kind
        self.native = kind == "native"
        #: a table of yours, which other programs write too: a UUID of a version this ID scheme does
        #: not make (gen_random_uuid()'s v4) is theirs, never an orphan of ours
        self.shared = shared

    def column_type(self) -> sa.types.TypeEngine[Any]:
        if self.kind == "native":
            return sa.Uuid()
        if self.kind == "hex":  # exactly what sqlalchemy.Uuid emits where no native type exists
            return sa.CHAR(32)
        return sa.String(36).with_variant(sa.String(36, collation="C"), "postgresql")

    def encode(self, ident: uuid.UUID, upper: bool = False, dashed: bool | None = None) -> Any:
        if self.native:
            return ident
        text = str(ident) if (self.kind == "string" if dashed is None else dashed) else ident.hex
        return text.upper() if upper else text

    def decode(self, raw: Any, versions: frozenset[int] = ANY_VERSIONS) -> uuid.UUID | MalformedID | ForeignEntry:
        """The UUID behind a stored value; a MalformedID for an ID of ours in the wrong form; a
        ForeignEntry for other text (``42``, ``invoice-2024-001``): never ours, never deleted."""
        if self.native:
            ident = raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
        else:
            raw = str(raw)
            good = _HEX32 if self.kind == "hex" else _STR36
            if not good.fullmatch(raw):
                return classify(raw, self.kind, versions=versions, where=f"ID text in a {self.kind} column")
            ident = uuid.UUID(raw)
        if self.shared and not (ident.variant == uuid.RFC_4122 and ident.version in versions):
            return classify_uuid(ident, raw=str(raw), versions=versions, where="ID column")
        return ident

    def range_filter(self, col: Any, part: Partition) -> tuple[Any, Any]:
        """(WHERE clause, primary text range) for the IDs of ``part``.

        Text columns also match the ranges where the usual wrong encodings of the partition's IDs
        sort (uppercase, with or without dashes), so a partitioned audit still finds them there.
        """
        lo, hi = part.lo_uuid, part.hi_uuid
        if self.native:
            return (col >= lo if hi is None else sa.and_(col >= lo, col < hi)), None
        ranges = []
        for dashed in (self.kind == "string", self.kind != "string"):
            for upper in (False, True):
                low = self.encode(lo, upper, dashed)
                if hi is not None:
                    ranges.append(sa.and_(col >= low, col < self.encode(hi, upper, dashed)))
                elif not upper and dashed == (self.kind == "string"):
                    ranges.append(col >= low)  # the open end also catches text in no UUID form
                else:
                    ranges.append(sa.and_(col >= low, col <= self.encode(_MAX_UUID, upper, dashed)))
        return sa.or_(*ranges), (self.encode(lo), None if hi is None else self.encode(hi))


# -- typed columns: one entity field per column ---------------------------------------------------
# What each column kind accepts on write (values as canonical JSON gives them back: datetimes and
# UUIDs as text, fractions as Decimal or float) and what it reads back as, so that a value read
# from the column has the canonical form of the one written (uuid_forge.canonical).
_UTC = _dt.UTC


def _column_kind(col_type: sa.types.TypeEngine[Any], backend: str) -> str:
    """The kind of a (reflected or declared) column type: how values go in and come back."""
    if isinstance(col_type, sa.ARRAY):
        return "array"
    if isinstance(col_type, sa.JSON):
        return "json"
    if isinstance(col_type, sa.Uuid):
        return "uuid"
    if isinstance(col_type, sa.Boolean) or (isinstance(col_type, mysql.TINYINT)
                                            and getattr(col_type, "display_width", None) == 1):
        return "bool"  # MariaDB's BOOLEAN is TINYINT(1)
    if isinstance(col_type, sa.DateTime):
        # only PostgreSQL keeps the instant (timestamptz); MariaDB and SQLite keep wall-clock time
        return "aware" if backend == "postgresql" and col_type.timezone else "naive"
    if isinstance(col_type, sa.Date):
        return "date"
    if isinstance(col_type, sa.Float) or (isinstance(col_type, sa.Numeric) and backend == "sqlite"):
        return "float"  # SQLite has no exact decimal type: NUMERIC keeps a double
    if isinstance(col_type, sa.Numeric):
        return "numeric"
    if isinstance(col_type, sa.Integer):
        return "int"
    if isinstance(col_type, sa.String):
        return "text"
    return "other"


class _FieldColumn:
    """One data field kept in its own column: checks and converts its values both ways."""

    def __init__(self, field: str, column: sa.Column[Any], backend: str, zone: _dt.tzinfo | None,
                 zone_name: str | None, col_type: sa.types.TypeEngine[Any] | None = None) -> None:
        self.field, self.column = field, column
        self.type = column.type if col_type is None else col_type
        self.kind = _column_kind(self.type, backend)
        self.zone = zone
        self.item = (_FieldColumn(field, column, backend, zone, zone_name, self.type.item_type)  # type: ignore[attr-defined]
                     if self.kind == "array" else None)
        if self.kind == "naive" and zone is None:
            raise ValidationError(
                f"column {column.name!r} (field {field!r}) is a timestamp without time zone: declare the zone its "
                "values are in with the option timezone (e.g. timezone='UTC' or timezone='Europe/Paris')")
        self.scale = getattr(self.type, "scale", None) if self.kind == "numeric" else None
        self.precision = getattr(self.type, "precision", None) if self.kind == "numeric" else None

    def _refuse(self, value: Any, want: str) -> ValidationError:
        return ValidationError(f"field {self.field!r}: column {self.column.name!r} holds {want}, not "
                               f"{type(value).__name__} (values not shown)")

    def to_db(self, value: Any) -> Any:
        """``value`` (as canonical JSON reads back) in the Python type the column's driver takes."""
        if value is None:
            return None
        kind = self.kind
        if kind == "json":
            return canonical(value)  # exact text; the column's own serializer would lose Decimals
        if kind == "text":
            if not isinstance(value, str):
                raise self._refuse(value, "text (declare it json/jsonb for objects and lists)")
            return value
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)) or value != int(value):
                raise self._refuse(value, "whole numbers")
            return int(value)
        if kind in ("numeric", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
                raise self._refuse(value, "numbers")
            return self._number(value)
        if kind == "bool":
            if not isinstance(value, bool):
                raise self._refuse(value, "booleans")
            return value
        if kind in ("aware", "naive"):
            return self._datetime(value)
        if kind == "date":
            if not isinstance(value, str) or not _DATE.fullmatch(value):
                raise self._refuse(value, "dates as YYYY-MM-DD text")
            return _dt.date.fromisoformat(value)
        if kind == "uuid":
            if not isinstance(value, str) or not _STR36.fullmatch(value):
                raise self._refuse(value, "UUIDs (lowercase 36-char text, as a UUID reads back)")
            return uuid.UUID(value)
        if kind == "array":
            assert self.item is not None
            if not isinstance(value, list):
                raise self._refuse(value, "arrays")
            return [self.item.to_db(v) for v in value]
        return value

    def _number(self, value: float | decimal.Decimal) -> Any:
        """A number the column keeps exactly, else a ValidationError (a silent rounding would be
        reported stale on every audit)."""
        if self.kind == "float":
            number = float(value)
            if canonical(number) != canonical(value):
                raise ValidationError(f"field {self.field!r}: column {self.column.name!r} is a double; the value "
                                      "has more digits than a double keeps (use numeric, or a json column)")
            return number
        exact = value if isinstance(value, decimal.Decimal) else decimal.Decimal(repr(value) if isinstance(
            value, float) else value)
        if self.scale is not None and exact != exact.quantize(decimal.Decimal(1).scaleb(-self.scale),
                                                              context=decimal.Context(prec=1000)):
            raise ValidationError(f"field {self.field!r}: column {self.column.name!r} keeps {self.scale} "
                                  "digits after the point; the value has more")
        if self.precision is not None and exact and exact.adjusted() + 1 > self.precision - (self.scale or 0):
            raise ValidationError(f"field {self.field!r}: the value is too large for column "
                                  f"{self.column.name!r} (precision {self.precision})")
        return exact

    def _datetime(self, value: Any) -> _dt.datetime:
        """ISO text with an offset (or Z) -> an aware datetime; in the declared zone, naive, for a
        timestamp without time zone."""
        moment = None
        if isinstance(value, str) and _ISO_MOMENT.fullmatch(value):  # not fromisoformat's other forms
            with contextlib.suppress(ValueError):
                moment = _dt.datetime.fromisoformat(value)
        if moment is None or moment.tzinfo is None:
            raise ValidationError(f"field {self.field!r}: column {self.column.name!r} holds timestamps; the value "
                                  "must be an aware datetime or ISO text with an offset (2024-05-01T10:00:00+02:00 "
                                  "or ...Z)")
        if self.kind == "naive":
            assert self.zone is not None
            return moment.astimezone(self.zone).replace(tzinfo=None)
        return moment

    def from_db(self, raw: Any) -> Any:
        """A value as the driver returned it, back in the data model (aware UTC datetimes,
        Decimals, UUIDs, parsed JSON with every digit)."""
        if raw is None:
            return None
        kind = self.kind
        if kind == "json":
            return load_json(raw) if isinstance(raw, (str, bytes)) else raw
        if kind in ("aware", "naive"):
            moment = raw if isinstance(raw, _dt.datetime) else _dt.datetime.fromisoformat(str(raw))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=self.zone)
            return moment.astimezone(_UTC)
        if kind == "date":
            return raw if isinstance(raw, _dt.date) else _dt.date.fromisoformat(str(raw))
        if kind == "bool":
            return bool(raw) if raw in (0, 1) else raw
        if kind == "uuid":
            if isinstance(raw, uuid.UUID):
                return raw
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            return uuid.UUID(text)
        if kind == "array":
            assert self.item is not None
            return [self.item.from_db(v) for v in raw]
        return raw


_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d)")


class _Layout:
    """One table and where each part of a record goes in it, with its statements built once."""

    def __init__(self, engine: sa.Engine, table: sa.Table, codec: _IdCodec, columns: Mapping[str, str | None],
                 fields: Mapping[str, str] | None, own: bool = False, zone: _dt.tzinfo | None = None,
                 zone_name: str | None = None, nulls: str = "value") -> None:
        self.table, self.codec, self.fields, self.nulls = table, codec, dict(fields) if fields else None, nulls
        c = table.c
        dialect = self.dialect = engine.dialect

        def col(part: str) -> Any:
            name = columns.get(part)
            return c[name] if name else None

        self.id = c[str(columns["id"])]
        self.fp, self.data, self.key, self.updated = (col(p) for p in ("fingerprint", "data", "key", "updated_at"))
        self.field_cols = [_FieldColumn(f, c[name], dialect.name, zone, zone_name)
                           for f, name in (self.fields or {}).items()]
        # scans read ID text untouched (type_coerce: no SQL CAST, so the index still serves the range)
        self.scan_id = self.id if codec.native else sa.type_coerce(self.id, sa.String())
        self.read_cols = [self.id, *(x for x in (self.fp, self.data, self.key) if x is not None),
                          *(f.column for f in self.field_cols)]
        # what reads select: JSON as text (parsed here without losing digits), other columns as the
        # driver returns them (SQLAlchemy's result processors would round SQLite numerics, parse JSON
        # into floats); _FieldColumn.from_db maps them back to the data model
        self.read_exprs = [self._as_read(x) for x in self.read_cols]
        self.array = dialect.name == "postgresql"
        if self.array:  # one array parameter: a constant statement to parse and plan
            match = self.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(self.id.type)))
        else:
            match = self.id.in_(sa.bindparam("ids", expanding=True))
        self._read_sql: dict[int, str] = {}
        self.get_stmt = sa.select(*self.read_exprs).where(match)
        self.delete_stmt = sa.delete(table).where(match)
        # The upsert is built with Core and compiled once; rows are then bound at the driver level
        # (values already encoded here), which skips SQLAlchemy's per-row parameter processing:
        # that alone cost about a quarter of put_many's throughput on PostgreSQL.
        self.write_cols = self.read_cols
        keys = [c.key for c in self.write_cols]
        compiled = self._upsert(dialect.name).compile(dialect=dialect, column_keys=keys)
        self.put_sql = str(compiled)
        escaped = compiled.escaped_bind_names or {}
        self.put_names = [escaped.get(k, k) for k in keys]
        self.put_order = [keys.index(n) for n in compiled.positiontup] if compiled.positional else None
        # JSON goes as the canonical text (the column's serializer cannot write a Decimal)
        self.field_processors = [None if f.kind == "json" else f.type.dialect_impl(dialect).bind_processor(dialect)
                                 for f in self.field_cols]
        n_fixed = len(self.read_cols) - len(self.field_cols)
        at = {id(c): i for i, c in enumerate(self.read_cols)}
        self.i_fp, self.i_data, self.i_key = (at[id(c)] if c is not None else None
                                              for c in (self.fp, self.data, self.key))
        self.i_fields = [(f, n_fixed + k) for k, f in enumerate(self.field_cols)]
        # our own table (id, fingerprint, data, key; types known): rows and records take a fast path
        self.simple = own and self.put_order == [0, 1, 2, 3] and (self.i_fp, self.i_data, self.i_key) == (1, 2, 3)

    def _as_read(self, column: Any) -> Any:
        if column is self.id:
            return column
        if isinstance(column.type, sa.JSON):
            return (sa.cast(column, sa.Text) if self.dialect.name == "postgresql"
                    else sa.type_coerce(column, sa.Text)).label(column.name)
        return sa.type_coerce(column, sa.types.NullType()).label(column.name)

    def _upsert(self, dialect: str) -> Any:
        """INSERT ... ON CONFLICT DO UPDATE (PostgreSQL, SQLite) or ON DUPLICATE KEY UPDATE (MariaDB)."""
        cols = [x.name for x in (self.fp, self.data, self.key) if x is not None] + \
               [f.column.name for f in self.field_cols]
        update: dict[str, Any]
        if dialect == "mysql":
            ins = mysql.insert(self.table)
            update = {n: ins.inserted[n] for n in cols}
            if self.updated is not None:
                update[self.updated.name] = sa.func.now()
            return ins.on_duplicate_key_update(update or {self.id.name: ins.inserted[self.id.name]})
        module = {"postgresql": postgresql, "sqlite": sqlite}.get(dialect)
        if module is None:
            raise ValidationError(f"SQL dialect {dialect!r} is not supported: use PostgreSQL, SQLite or MariaDB/MySQL")
        ins = module.insert(self.table)  # type: ignore[attr-defined]
        update = {n: ins.excluded[n] for n in cols}
        if self.updated is not None:
            update[self.updated.name] = sa.func.now()
        if not update:
            return ins.on_conflict_do_nothing(index_elements=[self.id])
        return ins.on_conflict_do_update(index_elements=[self.id], set_=update)

    def rows(self, records: list[Record], keys: list[str | None]) -> list[Any]:
        """Driver-ready parameters for the compiled upsert: tuples (positional styles) or dicts by
        bind name. Field values are checked and converted first (ValidationError names the field)."""
        enc = self.codec.encode
        if self.simple:  # the default layout: one tuple per record, nothing else to do
            if self.codec.native:
                return [(r.id, r.fingerprint, r.data_json, k) for r, k in zip(records, keys)]
            if self.codec.kind == "hex":
                return [(r.id.hex, r.fingerprint, r.data_json, k) for r, k in zip(records, keys)]
            return [(enc(r.id), r.fingerprint, r.data_json, k) for r, k in zip(records, keys)]
        has = (self.fp is not None, self.data is not None, self.key is not None)
        values: list[list[Any]] = []
        for r, key_text in zip(records, keys):
            row: list[Any] = [enc(r.id)]
            if has[0]:
                row.append(r.fingerprint)
            if has[1]:
                row.append(r.data_json)
            if has[2]:
                row.append(key_text)
            if self.field_cols:
                row += self._field_values(r)
            values.append(row)
        if self.put_order is not None:
            order = self.put_order
            return [tuple(v[i] for i in order) for v in values]
        names = self.put_names
        return [dict(zip(names, v)) for v in values]

    def _field_values(self, record: Record) -> list[Any]:
        """The record's mapped fields as column values; a NULL stands for None (``nulls="value"``)
        or for an absent field (``nulls="absent"``), and what the other reading would lose is refused."""
        data = load_json(record.data_json)  # the canonical values: Decimals keep every digit
        out = []
        for f, proc in zip(self.field_cols, self.field_processors):
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

    def read_sql(self, n: int) -> tuple[str, int]:
        """The SELECT for ``n`` IDs compiled to driver SQL, and how many parameters it takes.

        IN lists are compiled for a few sizes only (powers of two); callers repeat the last ID.
        """
        size = 1 if self.array else max(8, 1 << (n - 1).bit_length())
        sql = self._read_sql.get(size)
        if sql is None:
            if self.array:  # data and key as text (psycopg would parse json into floats): the data's
                # exact text is what its fingerprint is computed from
                stmt = sa.select(self.id, self.fp, sa.cast(self.data, sa.Text), sa.cast(self.key, sa.Text)).where(
                    self.get_stmt.whereclause)
            else:
                stmt = sa.select(*self.read_cols).where(
                    self.id.in_(sa.bindparam("ids", value=[""] * size, expanding=True)))
            sql = self._read_sql[size] = str(stmt.compile(dialect=self.dialect,
                                                          compile_kwargs={"render_postcompile": True}))
        return sql, size

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

    def record(self, entity_type: str, ident: uuid.UUID, row: Any, fingerprint: Any) -> Record:
        """A stored row back as a Record; its fingerprint comes from the data read (through the
        adapter's hook), never the ``fingerprint`` column (a write-time hint another program's
        UPDATE leaves behind)."""
        data = self.data_of(row)
        return Record(entity_type, ident, data, self.key_of(row), fingerprint=fingerprint(data))



class SQLAdapter(Adapter):
    """Records in SQL tables; the ID in a native ``uuid`` column on PostgreSQL.

    **Default layout** - one table per entity type, ``{table_prefix}{entity_type}`` (prefix
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

    * ``timestamptz``: an aware datetime or ISO text with an offset (``...+02:00``, ``...Z``);
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
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (_Timeout, TimeoutError)

    options: ClassVar[tuple[Option, ...]] = (
        Option("table_prefix", str, "uf_", "prefix of the per-type tables (1-30 letters, digits or '_')"),
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
               "table_prefix + type holds the data as one JSON column)"),
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
        Option("engine_options", dict, None, "keyword arguments for sqlalchemy.create_engine (pool size, echo, ...)"),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "the database driver through SQLAlchemy (e.g. `sslmode`, `application_name`)"

    def __init__(self, url: str, **options: Any) -> None:
        sa_url = make_url(url)
        # the query as SQLAlchemy reads it (an unencoded '#' in a password would fool urlsplit)
        opts = self.parse_options("?" + urlencode(dict(sa_url.query), doseq=True), options)
        super().__init__(url, batch_size=opts["batch_size"])
        table, entity_type = opts["table"], opts["entity_type"]
        columns, fields = opts["columns"], opts["fields"]
        connect_timeout, read_timeout = opts["connect_timeout"], opts["read_timeout"]
        engine_options = opts["engine_options"]
        sa_url = sa_url.set(drivername=_DRIVERS.get(sa_url.drivername, sa_url.drivername))
        query = dict(sa_url.query)
        for name in opts.url_names:  # ours, not the driver's
            query.pop(name, None)
        sa_url = sa_url.set(query=query)
        self._prefix = opts["table_prefix"]
        self._schema: str | None = opts["schema"]
        self._id_format = opts["id_format"]
        self._data_type = opts["data_type"]
        timeout = opts["statement_timeout"]
        if not _PREFIX.fullmatch(self._prefix):
            raise ValidationError(f"table_prefix {self._prefix!r} must be 1-30 letters, digits or '_'")
        if self._id_format not in _ID_FORMATS:
            raise ValidationError(f"id_format {self._id_format!r} is not one of {', '.join(_ID_FORMATS)}")
        if self._data_type not in ("json", "jsonb"):
            raise ValidationError(f"data_type {self._data_type!r} must be 'json' or 'jsonb'")
        if table is not None and not entity_type:
            raise ValidationError("table= needs entity_type=: the one entity type that table holds")
        if (columns is not None or fields is not None) and table is None:
            raise ValidationError("columns= and fields= map a table of your own: pass table= too")
        self._backend = sa_url.get_backend_name()
        # positional parameters: the compiled upsert takes plain tuples, cheaper than dicts per row
        style = {"paramstyle": "format"} if self._backend in ("postgresql", "mysql", "mariadb") else {}
        self._engine = sa.create_engine(
            sa_url, pool_pre_ping=True, future=True,
            connect_args=self._connect_args(sa_url, connect_timeout, read_timeout,
                                             None if timeout is None else float(timeout)),
            # bound parameters are entity data (emails, SSNs): never in an error text or a log line
            **{**style, **dict(engine_options or {}), "hide_parameters": True})
        self._user_table, self._entity_type = table, entity_type
        self._zone_name: str | None = opts["timezone"]
        self._zone = _zone(self._zone_name)
        self._nulls: str = opts["nulls"]
        self._columns, self._fields = dict(columns or {}), fields
        self._layouts: dict[str, _Layout] = {}
        self._max_packet: int | None = None
        self._owners: sa.Table | None = None

    def _connect_args(self, url: URL, connect_timeout: float, read_timeout: float,
                      statement_timeout: float | None) -> dict[str, Any]:
        """Timeouts in each driver's own words, so a silent server gives an error, not a hang."""
        args: dict[str, Any] = {}
        if self._backend == "postgresql":
            args = {"connect_timeout": max(1, round(connect_timeout))}  # libpq counts whole seconds (at least 2)
            if statement_timeout:
                args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
        elif self._backend in ("mysql", "mariadb"):  # PyMySQL waits for the server's greeting up to read_timeout
            args = {"connect_timeout": connect_timeout, "read_timeout": read_timeout,
                    "write_timeout": read_timeout, "charset": "utf8mb4"}
        elif self._backend == "sqlite":
            args = {"timeout": connect_timeout}  # how long to wait for a lock held by another writer
        return {k: v for k, v in args.items() if k not in url.query}  # the URL's own settings win

    @property
    def id_encoding(self) -> str:
        """``uuid`` (native column), ``hex`` (CHAR(32), what sqlalchemy.Uuid uses off PostgreSQL) or ``string``."""
        layout = self._layouts.get(self._entity_type or "") if self._user_table is not None else None
        kind = layout.codec.kind if layout is not None else self._codec_kind()
        return "uuid" if kind == "native" else kind

    def _codec_kind(self) -> str:
        if self._id_format == "uuid":
            return "native" if self._backend == "postgresql" else "hex"
        return self._id_format

    # -- validation ----------------------------------------------------------------------------
    def check_entity_type(self, entity_type: str) -> str:
        super().check_entity_type(entity_type)
        if self._user_table is not None:
            if entity_type != self._entity_type:
                raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: its table "
                                      f"{self._table_name()!r} holds only {self._entity_type!r}")
            return entity_type
        if self._prefix + entity_type == OWNERS:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: table {OWNERS!r} "
                                  "records which prefix and type each table belongs to")
        limit = _MAX_IDENTIFIER.get(self._backend)
        if limit is not None and len(self._prefix) + len(entity_type.encode()) > limit:
            raise ValidationError(
                f"entity type {entity_type!r} is too long for {self._backend}: table name "
                f"{self._prefix + entity_type!r} must fit {limit} bytes (at most {limit - len(self._prefix)} "
                f"chars after the prefix {self._prefix!r})")
        return entity_type

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        """Before any write: with field columns and no data column, every data field must have a
        column, and each field's value must fit its column's type (converted once here and again
        when written: a refused record must not leave half a batch behind)."""
        self._check_fields(records)

    def _check_fields(self, records: list[Record]) -> None:
        if self._user_table is None or self._fields is None:
            return
        with self._errors("reflect table"):
            layout = self._layout(self._entity_type or "", create=False)
        if layout is not None and layout.data is None:
            for r in records:
                extra = sorted(set(r.data) - set(self._fields))
                if extra:
                    raise ValidationError(f"{r!r} has data fields {extra} that no column holds: map them "
                                          f"in fields= or give the table a data column")
        if layout is not None:
            for r in records:
                layout.rows([r], [None])

    # -- tables --------------------------------------------------------------------------------
    def _table_name(self) -> str:
        t = self._user_table
        return t.name if isinstance(t, sa.Table) else str(t)

    def _layout(self, entity_type: str, create: bool) -> _Layout | None:
        """The layout for ``entity_type``; None if its table does not exist (and create is False)."""
        layout = self._layouts.get(entity_type)
        if layout is not None:
            return layout
        if self._user_table is not None:
            layout = self._user_layout()
        else:
            name = self._prefix + entity_type
            table = self._default_table(name)
            if create:
                self._create(table)
            else:
                with self._engine.connect() as conn:
                    if not sa.inspect(conn).has_table(name, schema=self._schema):
                        return None
            self._check_owner(entity_type, claim=create)
            layout = _Layout(self._engine, table, _IdCodec(self._codec_kind()),
                             {"id": "id", "fingerprint": "fingerprint", "data": "data", "key": "key",
                              "updated_at": "updated_at"}, None, own=True)
        self._layouts[entity_type] = layout
        return layout

    def _owners_table(self) -> sa.Table:
        if self._owners is None:
            self._owners = sa.Table(
                OWNERS, sa.MetaData(schema=self._schema),
                sa.Column("table_name", sa.String(200), primary_key=True),
                sa.Column("table_prefix", sa.String(64), nullable=False),
                sa.Column("entity_type", sa.String(200), nullable=False),
                mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin")
        return self._owners

    def _owner_of(self, name: str) -> tuple[str, str] | None:
        """(table_prefix, entity_type) the table ``name`` was made for, if recorded."""
        owners = self._owners_table()
        with self._engine.connect() as conn:
            if not sa.inspect(conn).has_table(OWNERS, schema=self._schema):
                return None
            row = conn.execute(sa.select(owners.c.table_prefix, owners.c.entity_type)
                               .where(owners.c.table_name == name)).first()
        return None if row is None else (row[0], row[1])

    def _check_owner(self, entity_type: str, claim: bool) -> None:
        """Raise ValidationError when our table for ``entity_type`` was made for another prefix or
        type; with ``claim`` (a write), record it as this prefix's and type's if nobody has yet.
        Tables made before the record existed are claimed by their next write."""
        name = self._prefix + entity_type
        owner = self._owner_of(name)
        if owner is None and claim:
            owners = self._owners_table()
            self._create(owners)
            with contextlib.suppress(sa_exc.IntegrityError), self._engine.begin() as conn:
                conn.execute(owners.insert().values(table_name=name, table_prefix=self._prefix, entity_type=entity_type))
            owner = self._owner_of(name)
        if owner is not None and owner != (self._prefix, entity_type):
            raise ValidationError(
                f"table {name!r} belongs to entity type {owner[1]!r} with table_prefix {owner[0]!r}, not to "
                f"{entity_type!r} with {self._prefix!r}: refused (choose a table_prefix whose names cannot "
                "overlap another's)")

    def _default_table(self, name: str) -> sa.Table:
        json_type: Any = sa.JSON(none_as_null=True)
        if self._data_type == "jsonb":
            json_type = json_type.with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
        return sa.Table(
            name, sa.MetaData(schema=self._schema),
            sa.Column("id", _IdCodec(self._codec_kind()).column_type(), primary_key=True),
            sa.Column("fingerprint", sa.String(32), nullable=False),
            sa.Column("data", json_type, nullable=False),
            sa.Column("key", json_type, nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                      server_default=sa.func.current_timestamp()),
            mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin",
        )

    def _create(self, table: sa.Table) -> None:
        """CREATE TABLE IF NOT EXISTS (one statement); a concurrent creator winning the race is fine."""
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
        except (sa_exc.ProgrammingError, sa_exc.IntegrityError, sa_exc.OperationalError):
            with self._engine.connect() as conn:
                if not sa.inspect(conn).has_table(table.name, schema=self._schema):
                    raise

    def _user_layout(self) -> _Layout:
        """The user's table (reflected if named) with the column map resolved and checked."""
        t = self._user_table
        if not isinstance(t, sa.Table):
            t = sa.Table(str(t), sa.MetaData(), schema=self._schema, autoload_with=self._engine)
        names = set(t.c.keys())
        columns: dict[str, str | None] = {}
        for part in ("id", "fingerprint", "data", "key"):
            columns[part] = self._columns.get(part, part if part in names else None)
        wanted = [c for c in columns.values() if c] + list((self._fields or {}).values())
        missing = [c for c in wanted if c not in names]
        if columns["id"] is None or missing:
            raise ValidationError(f"table {t.name!r} has no column {missing or ['for id']}; it has {sorted(names)}")
        if columns["data"] is None and not self._fields:
            raise ValidationError(f"table {t.name!r}: map data to a column (columns={{'data': ...}}) or its "
                                  "fields to columns (fields={...})")
        own_parts = {name: part for part, name in columns.items() if name}
        for field, name in (self._fields or {}).items():  # the ID (or fp, data, key) is never also a field
            if name in own_parts:
                raise ValidationError(f"field {field!r} maps to column {name!r}, which holds the record's "
                                      f"{own_parts[name]}: refused (map the field to another column)")
        id_col = t.c[columns["id"]]
        if isinstance(id_col.type, sa.Uuid):  # PostgreSQL's uuid reflects as a Uuid subclass
            kind = "native" if self._backend == "postgresql" else "hex"
        else:
            kind = self._id_format if self._id_format != "uuid" else (
                "hex" if getattr(id_col.type, "length", None) == 32 else "string")
        codec = _IdCodec(kind, shared=True)
        # statements run against a copy whose ID column type matches the codec (no Uuid processing of text)
        copy = sa.Table(t.name, sa.MetaData(), *[
            sa.Column(c.name, codec.column_type() if c is id_col else c.type, primary_key=c is id_col)
            for c in t.c if c.name in wanted], schema=t.schema)
        return _Layout(self._engine, copy, codec, columns, self._fields, zone=self._zone, zone_name=self._zone_name,
                       nulls=self._nulls)

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
                if _is_timeout(err):
                    raise _Timeout(str(err.orig)) from err
                raise

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        return _classify_sql(err) or super()._classify(err)

    def _put(self, entity_type: str, records: list[Record]) -> None:
        if self._backend in ("mysql", "mariadb"):
            self._check_packet(entity_type, records)
        self._write(entity_type, records, [r.key_json for r in records])

    def _check_packet(self, entity_type: str, records: list[Record]) -> None:
        """Refuse a record MariaDB cannot take in one packet: the server answers it by dropping the
        connection (2006 "gone away"), which would read as an outage and be retried forever."""
        if self._max_packet is None:
            with self._engine.connect() as conn:
                self._max_packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar() or 0)
        limit = self._max_packet
        if not limit:
            return
        for r in records:
            texts = (r.data_json, r.key_json or "")
            if sum(len(t) for t in texts) * 8 + 4096 < limit:  # at most 4 bytes a char, doubled by escaping
                continue
            size = sum(len(t.encode()) + sum(t.count(c) for c in "\"\\'\n\r\0\x1a") for t in texts) + 4096
            if size > limit:
                raise StoreRejectedError(f"{self.url()}: put_many({entity_type}): record {r.id} needs about {size} "
                                         f"bytes as SQL, over the server's max_allowed_packet ({limit} bytes)",
                                         store=self.url())

    def _write(self, entity_type: str, records: list[Record], keys: list[str | None]) -> None:
        """Upsert one batch; ``keys`` are the records' canonical key texts, already computed."""
        layout = self._layout(entity_type, create=True)
        assert layout is not None
        rows = layout.rows(records, keys)
        with self._engine.begin() as conn:  # one transaction per batch
            # executemany: psycopg pipelines it, PyMySQL folds it into multi-row INSERTs
            conn.exec_driver_sql(layout.put_sql, rows)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        layout = self._layout(entity_type, create=False)
        if layout is None:
            return []
        codec = layout.codec
        keys: list[Any] = ids if codec.native else [i.hex for i in ids] if codec.kind == "hex" else [str(i) for i in ids]
        if not layout.simple:  # your own table: each column's value mapped back to the data model
            with self._engine.connect() as conn:
                rows = conn.execute(layout.get_stmt, {"ids": keys}).all()
            read, fp = self._read_record, self.fingerprint_data
            if codec.native:
                return [read(entity_type, row[0], lambda r=row: layout.record(entity_type, r[0], r, fp))
                        for row in rows]
            get = dict(zip(keys, ids)).get
            return [read(entity_type, ident, lambda r=row, i=ident: layout.record(entity_type, i, r, fp))
                    for row in rows if (ident := get(row[0])) is not None]
        # our own table: the SELECT compiled once, bound and read at the driver level
        sql, size = layout.read_sql(len(keys))
        params = (keys,) if layout.array else tuple(keys + keys[-1:] * (size - len(keys)))
        with self._engine.connect() as conn:
            rows = conn.exec_driver_sql(sql, params).all()
        # JSON comes as text (cast on PostgreSQL; PyMySQL and sqlite3 return it so), parsed here; each
        # record's fingerprint is the hash of the data text read (never the fingerprint column), which
        # the audit re-canonicalises only where it differs. Only IDs asked for count (a case-blind
        # collation may match more).
        # (load_json: fractions as Decimals, every digit kept)
        read, fp = self._read_record, self.fingerprint_text

        def make(ident: uuid.UUID, row: Any) -> Record:
            return Record(entity_type, ident, load_json(row[2]), None if row[3] is None else load_json(row[3]),
                          fingerprint=fp(row[2]))

        if layout.array and codec.native:  # psycopg returns uuid.UUID
            return [read(entity_type, row[0], lambda r=row: make(r[0], r)) for row in rows]
        get = dict(zip(keys, ids)).get
        return [read(entity_type, ident, lambda r=row, i=ident: make(i, r))
                for row in rows if (ident := get(row[0])) is not None]

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        layout = self._layout(entity_type, create=False)
        if layout is None:
            return 0
        with self._engine.begin() as conn:
            return conn.execute(layout.delete_stmt, {"ids": [layout.codec.encode(i) for i in ids]}).rowcount

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        layout = self._layout(entity_type, create=False)
        if layout is None:
            return
        codec = layout.codec
        where, primary = codec.range_filter(layout.scan_id, partition)
        # The data itself, never the fingerprint column: our own table keeps the canonical text, hashed
        # as read (fingerprint_text); a table of your own is rebuilt from its columns (fingerprint_data).
        text = layout.simple and layout.data is not None
        if text:
            extra = [sa.cast(layout.data, sa.Text) if self._backend == "postgresql"
                     else sa.type_coerce(layout.data, sa.Text)]
        else:
            extra = layout.read_exprs[1:]
        stmt = sa.select(layout.scan_id, *extra).where(where).order_by(layout.scan_id)
        # stream_results: a server-side cursor on PostgreSQL, an unbuffered one on MariaDB
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=self.batch_size).execute(stmt)
            for row in result:
                ident = codec.decode(row[0], self.id_versions)
                if isinstance(ident, ForeignEntry) and primary is not None \
                        and not (primary[0] <= row[0] and (primary[1] is None or row[0] < primary[1])):
                    continue  # foreign text outside this partition's own range: another partition reports it
                if text:
                    yield ident, (self.fingerprint_text(row[1]) if isinstance(row[1], str) else None)
                else:
                    yield ident, self._row_fingerprint(layout, row)

    def _row_fingerprint(self, layout: _Layout, row: Any) -> str | None:
        """The fingerprint of a row of your table; None (stale, named by the audit's read) for a value
        that cannot be mapped back (a NULL in a nulls='value' JSON column is fine; text in a number
        column read through SQLite is not)."""
        try:
            return self.fingerprint_data(layout.data_of(row))
        except (ValueError, TypeError, ArithmeticError):
            return None

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete rows by their ID column's raw text (a wrongly encoded ID, as ``MalformedID.raw``)."""
        layout = self._layout(entity_type, create=False)
        if layout is None:
            return 0
        if layout.codec.native:  # a uuid column holds no wrong encoding: nothing by that text can exist
            return super()._delete_raw(entity_type, raws)
        foreign = [raw for raw in raws if isinstance(layout.codec.decode(raw, self.id_versions), ForeignEntry)]
        if foreign:
            raise ValidationError(f"IDs {foreign[:3]} are not IDs written by uuid-forge: refused, foreign rows "
                                  "are never deleted")
        stmt = sa.delete(layout.table).where(layout.scan_id.in_(sa.bindparam("raws", expanding=True)))
        with self._engine.begin() as conn:
            return conn.execute(stmt, {"raws": list(raws)}).rowcount

    def _drop(self, entity_type: str) -> None:
        """DROP TABLE for our own per-type table; on your own table only its rows go, never the table."""
        if self._user_table is not None:
            super()._drop(entity_type)
            return
        self._check_owner(entity_type, claim=False)  # never another prefix's table
        layout = self._layouts.pop(entity_type, None)
        table = layout.table if layout is not None else self._default_table(self._prefix + entity_type)
        with self._engine.begin() as conn:
            conn.execute(sa.schema.DropTable(table, if_exists=True))
        if self._owner_of(table.name) is not None:
            with self._engine.begin() as conn:
                owners = self._owners_table()
                conn.execute(owners.delete().where(owners.c.table_name == table.name))

    def _entity_types(self) -> Iterable[str]:
        if self._user_table is not None:
            layout = self._layout(self._entity_type or "", create=False)
            return [self._entity_type] if layout is not None else []  # type: ignore[list-item]
        with self._engine.connect() as conn:
            names = sa.inspect(conn).get_table_names(schema=self._schema)
        owners: dict[str, tuple[str, str]] = {}
        if OWNERS in names:
            table = self._owners_table()
            with self._engine.connect() as conn:
                owners = {r[0]: (r[1], r[2]) for r in conn.execute(
                    sa.select(table.c.table_name, table.c.table_prefix, table.c.entity_type))}
        found = []
        for name in names:
            if name.startswith(self._prefix) and len(name) > len(self._prefix) and name != OWNERS:
                entity_type = name[len(self._prefix):]
                if name in owners and owners[name] != (self._prefix, entity_type):
                    continue  # made for another prefix and type
                with contextlib.suppress(ValidationError):
                    found.append(self.check_entity_type(entity_type))
        return found

    def _ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def _close(self) -> None:
        self._engine.dispose()
        self._layouts.clear()

