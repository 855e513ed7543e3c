"""The tables uuid-forge makes itself: one per entity type, and the owners record.

The owners record says which prefix and entity type each of our tables was made for:
``prefix + type`` has no separator a type could not contain (``uf_`` + ``acme_user`` is
``uf_acme_`` + ``user``), so a table is only ours for the pair it was made for. Its columns
keep the names earlier versions wrote (``table_prefix``): their records are still read.
"""

from __future__ import annotations

import contextlib
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql

__all__ = ["META", "OWNERS", "OwnersTable", "create_table", "has_table", "type_table"]

#: the table of owners: table_name -> (table_prefix, entity_type)
OWNERS = "uuid_forge_owners"
#: beside your own table (table=): uuid-forge's own records (the ID-configuration marker), one of our tables
META = "uuid_forge_meta"


def type_table(name: str, schema: str | None, id_type: sa.types.TypeEngine[Any], data_type: str) -> sa.Table:
    """Our table for one entity type: ``id``, ``fingerprint``, ``data`` (the canonical JSON text),
    ``key`` and ``updated_at``; ``data_type="jsonb"`` makes data and key jsonb on PostgreSQL."""
    json_type: Any = sa.JSON(none_as_null=True)
    if data_type == "jsonb":
        json_type = json_type.with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
    return sa.Table(
        name, sa.MetaData(schema=schema),
        sa.Column("id", id_type, primary_key=True),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("data", json_type, nullable=False),
        sa.Column("key", json_type, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.current_timestamp()),
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin",
    )


def has_table(engine: sa.Engine, name: str, schema: str | None) -> bool:
    with engine.connect() as conn:
        return sa.inspect(conn).has_table(name, schema=schema)


def create_table(engine: sa.Engine, table: sa.Table) -> None:
    """CREATE TABLE IF NOT EXISTS (one statement); a concurrent creator winning the race is fine."""
    try:
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
    except (sa_exc.ProgrammingError, sa_exc.IntegrityError, sa_exc.OperationalError):
        if not has_table(engine, table.name, table.schema):
            raise


class OwnersTable:
    """The owners record kept in the database: which (prefix, entity type) each table belongs to."""

    def __init__(self, engine: sa.Engine, schema: str | None) -> None:
        self.engine = engine
        self.table = sa.Table(
            OWNERS, sa.MetaData(schema=schema),
            sa.Column("table_name", sa.String(200), primary_key=True),
            sa.Column("table_prefix", sa.String(64), nullable=False),
            sa.Column("entity_type", sa.String(200), nullable=False),
            mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin")

    def _exists(self) -> bool:
        return has_table(self.engine, OWNERS, self.table.schema)

    def get(self, name: str) -> tuple[str, str] | None:
        """(prefix, entity_type) the table ``name`` was made for, if recorded."""
        if not self._exists():
            return None
        c = self.table.c
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(c.table_prefix, c.entity_type).where(c.table_name == name)).first()
        return None if row is None else (row[0], row[1])

    def claim(self, name: str, prefix: str, entity_type: str) -> None:
        """Record ``name`` as (prefix, entity_type)'s unless someone has already (insert if absent)."""
        create_table(self.engine, self.table)
        with contextlib.suppress(sa_exc.IntegrityError), self.engine.begin() as conn:
            conn.execute(self.table.insert().values(table_name=name, table_prefix=prefix, entity_type=entity_type))

    def remove(self, name: str) -> None:
        if not self._exists():
            return
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.table_name == name))

    def all(self) -> dict[str, tuple[str, str]]:
        """Every recorded table: name -> (prefix, entity_type)."""
        if not self._exists():
            return {}
        c = self.table.c
        with self.engine.connect() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(sa.select(c.table_name, c.table_prefix, c.entity_type))}
