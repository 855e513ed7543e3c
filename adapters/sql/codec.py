"""Values between the data model and SQL columns: IDs in their column, data fields in typed columns.

Each conversion is written so that a value read back has the canonical form of the one written
(uuid_forge.canonical): a clean write audits clean, and what a column would round is refused
before anything is written.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import re
import uuid
import zoneinfo
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from uuid_forge.canonical import canonical
from uuid_forge.classify import ANY_VERSIONS, classify, classify_uuid
from uuid_forge.errors import ValidationError
from uuid_forge.record import ForeignEntry, MalformedID, Partition, load_json

if TYPE_CHECKING:
    from .dialects import Dialect

__all__ = ["FieldColumn", "IdCodec", "column_kind", "parse_zone"]

_HEX32 = re.compile(r"[0-9a-f]{32}")
_STR36 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_ISO_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,6})?)?(Z|[+-]\d\d:\d\d)")
_MAX_UUID = uuid.UUID(int=(1 << 128) - 1)
_UTC = _dt.UTC


def parse_zone(name: str | None) -> _dt.tzinfo | None:
    """The declared zone of naive timestamp columns; ValidationError for a name zoneinfo does not know."""
    if name is None:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"timezone {name!r} is not a zone name zoneinfo knows (e.g. 'UTC', "
                              "'Europe/Paris')") from None


class IdCodec:
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

    def encode_many(self, ids: list[uuid.UUID]) -> list[Any]:
        """The stored form of each ID, in order (reads bind these)."""
        if self.native:
            return ids
        if self.kind == "hex":
            return [i.hex for i in ids]
        return [str(i) for i in ids]

    def matched(self, rows: list[Any], keys: list[Any], ids: list[uuid.UUID]) -> Iterator[tuple[uuid.UUID, Any]]:
        """(ID, row) for each row read by the stored IDs ``keys`` of ``ids``; only IDs asked for count
        (a case-blind collation may match more). A native column gives the UUIDs back as they are."""
        if self.native:
            for row in rows:
                yield row[0], row
            return
        get = dict(zip(keys, ids)).get
        for row in rows:
            ident = get(row[0])
            if ident is not None:
                yield ident, row

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


def column_kind(col_type: sa.types.TypeEngine[Any], dialect: Dialect) -> str:
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
        return "aware" if dialect.keeps_instants and col_type.timezone else "naive"
    if isinstance(col_type, sa.Date):
        return "date"
    if isinstance(col_type, sa.Float) or (isinstance(col_type, sa.Numeric) and not dialect.exact_numeric):
        return "float"  # SQLite has no exact decimal type: NUMERIC keeps a double
    if isinstance(col_type, sa.Numeric):
        return "numeric"
    if isinstance(col_type, sa.Integer):
        return "int"
    if isinstance(col_type, sa.String):
        return "text"
    return "other"


class FieldColumn:
    """One data field kept in its own column: checks and converts its values both ways."""

    def __init__(self, field: str, column: sa.Column[Any], dialect: Dialect, zone: _dt.tzinfo | None,
                 col_type: sa.types.TypeEngine[Any] | None = None) -> None:
        self.field, self.column = field, column
        self.type = column.type if col_type is None else col_type
        self.kind = column_kind(self.type, dialect)
        self.zone = zone
        self.item = (FieldColumn(field, column, dialect, zone, self.type.item_type)  # type: ignore[attr-defined]
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
                                  "must be an aware datetime or UTC text ending in Z (2024-05-01T08:00:00Z)")
        if isinstance(value, str) and canonical(moment) != canonical(value):
            # Text is text (docs/data-model.md): the column keeps the instant, not this spelling of it,
            # so it would read back as another value, and a key field as another ID.
            raise ValidationError(f"field {self.field!r}: column {self.column.name!r} keeps the instant, not the "
                                  f"text {value!r}: it would read back as {canonical(moment)}, another value (and "
                                  "in a key field another ID); write the instant as an aware datetime or as that "
                                  "UTC text")
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
