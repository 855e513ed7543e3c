"""Column maps: where each part of a record goes in a table, and the checks of a user's table.

A user's table (``table=``) keeps its own shape: ``columns=`` names the columns of the record's
parts, ``fields=`` the data fields kept in columns of their own. Everything that can be checked
against the table is checked when it is first opened, before any write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from uuid_forge.errors import ConfigError, ValidationError
from uuid_forge.record import Record

if TYPE_CHECKING:
    from .codec import IdCodec
    from .dialects import Dialect

__all__ = ["TYPE_TABLE_COLUMNS", "ColumnMap", "check_defaults", "check_unmapped", "id_kind", "map_columns",
           "reflect", "row_filter", "statement_table"]

#: the parts of a record a column map places
PARTS = ("id", "fingerprint", "data", "key")


@dataclass(frozen=True)
class ColumnMap:
    """The column of each part of a record (None: stored nowhere) and of each mapped data field."""

    id: str
    fingerprint: str | None
    data: str | None
    key: str | None
    updated_at: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)

    def part_columns(self) -> dict[str, str]:
        """column name -> the part it holds, for the parts stored somewhere."""
        parts = {"id": self.id, "fingerprint": self.fingerprint, "data": self.data, "key": self.key}
        return {name: part for part, name in parts.items() if name}

    def names(self) -> list[str]:
        """Every column this map reads or writes (updated_at aside)."""
        return [*self.part_columns(), *self.fields.values()]


#: our per-type tables
TYPE_TABLE_COLUMNS = ColumnMap("id", "fingerprint", "data", "key", "updated_at")


def reflect(engine: sa.Engine, table: sa.Table | str, schema: str | None) -> sa.Table:
    """The user's table: as given, or reflected from the database by name."""
    if isinstance(table, sa.Table):
        return table
    return sa.Table(str(table), sa.MetaData(), schema=schema, autoload_with=engine)


def map_columns(table: sa.Table, columns: Mapping[str, str | None], fields: Mapping[str, str] | None) -> ColumnMap:
    """The column map of the user's table: an omitted part uses the column of its name if there is
    one; ValidationError for a missing column, no ID or data column, or a field mapped onto a part."""
    names = set(table.c.keys())
    parts = {part: columns.get(part, part if part in names else None) for part in PARTS}
    fields = dict(fields or {})
    wanted = [c for c in parts.values() if c] + list(fields.values())
    missing = [c for c in wanted if c not in names]
    if parts["id"] is None or missing:
        lacking = ", ".join(repr(c) for c in missing) if missing else "for id"
        raise ValidationError(f"table {table.name!r} has no column {lacking}; its columns: "
                              f"{', '.join(sorted(names))}")
    if parts["data"] is None and not fields:
        raise ValidationError(f"table {table.name!r}: map data to a column (columns={{'data': ...}}) or its "
                              "fields to columns (fields={...})")
    mapped = ColumnMap(str(parts["id"]), parts["fingerprint"], parts["data"], parts["key"], fields=fields)
    own_parts = mapped.part_columns()
    for name_of_field, name in fields.items():  # the ID (or fp, data, key) is never also a field
        if name in own_parts:
            raise ValidationError(f"field {name_of_field!r} maps to column {name!r}, which holds the record's "
                                  f"{own_parts[name]}: refused (map the field to another column)")
    return mapped


def id_kind(column: sa.Column[Any], dialect: Dialect, id_format: str) -> str:
    """How the user's ID column keeps IDs: its type decides (a uuid column holds UUIDs, a text one
    36-char text, or CHAR(32) hex with ``id_format="hex"``)."""
    if isinstance(column.type, sa.Uuid):  # PostgreSQL's uuid reflects as a Uuid subclass
        return "native" if dialect.native_uuid else "hex"
    if isinstance(column.type, (sa.Integer, sa.Numeric)):
        # compared with UUID text, every statement would fail in the database with a type error
        raise ConfigError(f"ID column {column.name!r} is {column.type} (a serial or numeric key): uuid-forge's ID "
                          "column holds UUIDs (a uuid column) or their text; to move such a table to deterministic "
                          "IDs, add a uuid column filled in place (uuid-forge migrate, docs/migration.md) and map "
                          "that one as the ID")
    if id_format != "uuid":
        return id_format
    return "hex" if getattr(column.type, "length", None) == 32 else "string"


def statement_table(table: sa.Table, columns: ColumnMap, codec: IdCodec, also: list[str] | None = None) -> sa.Table:
    """A copy of the user's table with only the mapped columns (and ``also``: the columns with a
    declared default), whose ID column type matches the codec: statements run against it (no Uuid
    processing of text), so no statement can name another column."""
    wanted = columns.names() + list(also or ())
    id_col = table.c[columns.id]
    return sa.Table(table.name, sa.MetaData(), *[
        sa.Column(c.name, codec.column_type() if c is id_col else c.type, primary_key=c is id_col)
        for c in table.c if c.name in wanted], schema=table.schema)


def _has_default(table: sa.Table, column: sa.Column[Any]) -> bool:
    """Whether the database fills ``column`` when an INSERT leaves it out: a server default, an
    identity or generated column, an auto-increment key, or NULL."""
    return (column.nullable is not False or column.server_default is not None or column.identity is not None
            or column.computed is not None or column.autoincrement is True
            or column is table.autoincrement_column)


def check_defaults(table: sa.Table, columns: ColumnMap, defaults: Mapping[str, Any]) -> None:
    """Refuse, when the table is opened, a table an INSERT of ours would fail on: an unmapped
    column that is NOT NULL without a default (the other application's own column) and has no
    declared default; and a declared default for a column that does not exist or is mapped (a
    mapped column's value is the record's, every time)."""
    names = set(table.c.keys())
    mapped = set(columns.names())
    unknown = sorted(set(defaults) - names)
    if unknown:
        raise ConfigError(f"table {table.name!r}: defaults= names columns {unknown} it does not have; it has "
                          f"{sorted(names)}")
    clash = sorted(set(defaults) & mapped)
    if clash:
        raise ConfigError(f"table {table.name!r}: defaults= names mapped columns {clash}, whose values come from "
                          "each record: declare defaults only for columns uuid-forge does not write")
    required = [c.name for c in table.c
                if c.name not in mapped and c.name not in defaults and not _has_default(table, c)]
    if required:
        raise ConfigError(
            f"table {table.name!r}: columns {required} are NOT NULL without a default and not mapped, so every "
            "row uuid-forge inserts would be refused: map them to data fields (fields={...}), give them a default "
            "in the database (ALTER TABLE ... SET DEFAULT ...), or declare the values uuid-forge inserts with "
            f"the store option defaults (e.g. defaults={{{required[0]!r}: ...}}; used on INSERT only, an "
            "existing row's value is never changed)")


#: text a filter may not contain: a second statement or a comment that would cut off the rest
_FILTER_REFUSED = (";", "--", "/*", "*/", "#")


def row_filter(condition: str | None) -> sa.TextClause | None:
    """The user's ``filter``, a SQL condition narrowing their table, as a parenthesised text
    clause; ConfigError for text that could end the statement or comment out the rest. Colons
    are escaped: ``'10:00'`` is text, not a bound parameter."""
    if condition is None:
        return None
    text = condition.strip()
    if not text:
        raise ConfigError("filter '': give a SQL condition (e.g. filter=\"kind = 'user'\"), or leave the option out")
    refused = [t for t in _FILTER_REFUSED if t in text]
    if refused:
        raise ConfigError(f"filter {condition!r} contains {' '.join(refused)}: a filter is one SQL condition, "
                          "without ';' or comments ('--', '/* */', '#')")
    return sa.text("(" + text.replace(":", "\\:") + ")")


def check_unmapped(records: list[Record], fields: Mapping[str, str], owns: Any = None) -> None:
    """Without a data column every data field that the write owns (``owns``: the store's view)
    needs a column: refuse a record with one that has none."""
    for r in records:
        extra = sorted(f for f in set(r.data) - set(fields) if owns is None or owns(f))
        if extra:
            raise ValidationError(f"{r!r} has data fields {extra} that no column holds: map them "
                                  f"in fields= or give the table a data column")
