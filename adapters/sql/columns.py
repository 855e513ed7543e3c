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

from uuid_forge.errors import ValidationError
from uuid_forge.record import Record

if TYPE_CHECKING:
    from .codec import IdCodec
    from .dialects import Dialect

__all__ = ["TYPE_TABLE_COLUMNS", "ColumnMap", "check_unmapped", "id_kind", "map_columns", "reflect",
           "statement_table"]

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
        raise ValidationError(f"table {table.name!r} has no column {missing or ['for id']}; it has {sorted(names)}")
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
    if id_format != "uuid":
        return id_format
    return "hex" if getattr(column.type, "length", None) == 32 else "string"


def statement_table(table: sa.Table, columns: ColumnMap, codec: IdCodec) -> sa.Table:
    """A copy of the user's table with only the mapped columns, whose ID column type matches the
    codec: statements run against it (no Uuid processing of text)."""
    wanted = columns.names()
    id_col = table.c[columns.id]
    return sa.Table(table.name, sa.MetaData(), *[
        sa.Column(c.name, codec.column_type() if c is id_col else c.type, primary_key=c is id_col)
        for c in table.c if c.name in wanted], schema=table.schema)


def check_unmapped(records: list[Record], fields: Mapping[str, str]) -> None:
    """Without a data column every data field needs a column: refuse a record with one that has none."""
    for r in records:
        extra = sorted(set(r.data) - set(fields))
        if extra:
            raise ValidationError(f"{r!r} has data fields {extra} that no column holds: map them "
                                  f"in fields= or give the table a data column")
