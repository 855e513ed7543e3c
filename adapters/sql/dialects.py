"""What differs between SQL backends, one small object per backend chosen by name.

As SQLAlchemy's own dialect classes do, each backend's differences live in its class (how IDs
and instants are kept, the upsert, how a batch of IDs is bound, the drivers' timeouts), so the
layouts and the adapter ask the dialect instead of testing its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from uuid_forge.errors import StoreRejectedError, ValidationError
from uuid_forge.record import Record

__all__ = ["DIALECTS", "DRIVERS", "Dialect", "MySQL", "PostgreSQL", "SQLite", "dialect_for"]

#: scheme spellings accepted by the registry -> the SQLAlchemy dialect+driver we run them with
DRIVERS = {
    "postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql", "mariadb": "mysql+pymysql", "mariadb+pymysql": "mysql+pymysql",
}


class Dialect:
    """A backend's differences; this base class is what an unsupported backend gets (it can
    connect and read, and says it is not supported where a write needs the upsert)."""

    #: longest identifier the backend keeps (PostgreSQL silently truncates longer ones: two types could collide)
    max_identifier: ClassVar[int | None] = None
    #: a ``uuid`` column keeps UUIDs natively (elsewhere sqlalchemy.Uuid is CHAR(32) hex)
    native_uuid: ClassVar[bool] = False
    #: a timestamp column *with* time zone keeps the instant (elsewhere: wall-clock time)
    keeps_instants: ClassVar[bool] = False
    #: NUMERIC keeps exact decimals (SQLite's keeps a double)
    exact_numeric: ClassVar[bool] = True
    #: the DBAPI parameter style the engine is created with (positional: the compiled upsert takes
    #: plain tuples, cheaper than dicts per row); None: the driver's own
    paramstyle: ClassVar[str | None] = None

    def __init__(self, name: str) -> None:
        self.name = name

    def connect_args(self, connect_timeout: float, read_timeout: float,
                     statement_timeout: float | None) -> dict[str, Any]:
        """Timeouts in the driver's own words, so a silent server gives an error, not a hang."""
        return {}

    def as_text(self, column: Any) -> Any:
        """A JSON column read as its text (parsed by us, every digit kept)."""
        return sa.type_coerce(column, sa.Text)

    def upsert(self, table: sa.Table, id_column: Any, columns: Sequence[str], updated: Any) -> Any:
        """INSERT of a row that replaces ``columns`` (and stamps ``updated``) when the ID exists."""
        raise ValidationError(f"SQL dialect {self.name!r} is not supported: use PostgreSQL, SQLite or MariaDB/MySQL")

    def id_match(self, id_column: Any) -> Any:
        """WHERE clause for the IDs bound as ``ids``."""
        return id_column.in_(sa.bindparam("ids", expanding=True))

    def read_size(self, n: int) -> int:
        """How many IDs the compiled read for ``n`` IDs takes: IN lists are compiled for a few sizes
        only (powers of two) and the last ID is repeated."""
        return max(8, 1 << (n - 1).bit_length())

    def read_match(self, id_column: Any, size: int) -> Any:
        """WHERE clause of the compiled read of ``size`` IDs."""
        return id_column.in_(sa.bindparam("ids", value=[""] * size, expanding=True))

    def read_params(self, keys: list[Any], size: int) -> tuple[Any, ...]:
        """The driver-level parameters of the compiled read of ``size`` IDs."""
        return tuple(keys + keys[-1:] * (size - len(keys)))

    def check_batch(self, engine: sa.Engine, store: str, entity_type: str, records: list[Record]) -> None:
        """Refuse, before writing, a record the server would take for an outage."""


class _OnConflict(Dialect):
    """``INSERT ... ON CONFLICT DO UPDATE`` (PostgreSQL, SQLite)."""

    def insert(self, table: sa.Table) -> Any:
        raise NotImplementedError

    def upsert(self, table: sa.Table, id_column: Any, columns: Sequence[str], updated: Any) -> Any:
        ins = self.insert(table)
        update = {n: ins.excluded[n] for n in columns}
        if updated is not None:
            update[updated.name] = sa.func.now()
        if not update:
            return ins.on_conflict_do_nothing(index_elements=[id_column])
        return ins.on_conflict_do_update(index_elements=[id_column], set_=update)


class PostgreSQL(_OnConflict):
    """Native uuid and timestamptz; reads bind all IDs as one array (one statement to plan)."""

    max_identifier = 63
    native_uuid = True
    keeps_instants = True
    paramstyle = "format"

    def insert(self, table: sa.Table) -> Any:
        return postgresql.insert(table)

    def connect_args(self, connect_timeout: float, read_timeout: float,
                     statement_timeout: float | None) -> dict[str, Any]:
        args: dict[str, Any] = {"connect_timeout": max(1, round(connect_timeout))}  # libpq: whole seconds
        if statement_timeout:
            args["options"] = f"-c statement_timeout={int(statement_timeout * 1000)}"
        return args

    def as_text(self, column: Any) -> Any:
        return sa.cast(column, sa.Text)  # psycopg would parse json into floats

    def id_match(self, id_column: Any) -> Any:
        return id_column == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(id_column.type)))

    def read_size(self, n: int) -> int:
        return 1

    def read_match(self, id_column: Any, size: int) -> Any:
        return self.id_match(id_column)

    def read_params(self, keys: list[Any], size: int) -> tuple[Any, ...]:
        return (keys,)


class SQLite(_OnConflict):
    """No exact decimals; the connect timeout is how long to wait for another writer's lock."""

    exact_numeric = False

    def insert(self, table: sa.Table) -> Any:
        return sqlite.insert(table)

    def connect_args(self, connect_timeout: float, read_timeout: float,
                     statement_timeout: float | None) -> dict[str, Any]:
        return {"timeout": connect_timeout}


class MySQL(Dialect):
    """MariaDB/MySQL: ``ON DUPLICATE KEY UPDATE``; a record over ``max_allowed_packet`` is refused
    before writing (the server would drop the connection: read as an outage, retried forever)."""

    max_identifier = 64
    paramstyle = "format"

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.max_packet: int | None = None

    def connect_args(self, connect_timeout: float, read_timeout: float,
                     statement_timeout: float | None) -> dict[str, Any]:
        # PyMySQL waits for the server's greeting up to read_timeout
        return {"connect_timeout": connect_timeout, "read_timeout": read_timeout,
                "write_timeout": read_timeout, "charset": "utf8mb4"}

    def upsert(self, table: sa.Table, id_column: Any, columns: Sequence[str], updated: Any) -> Any:
        ins = mysql.insert(table)
        update: dict[str, Any] = {n: ins.inserted[n] for n in columns}
        if updated is not None:
            update[updated.name] = sa.func.now()
        return ins.on_duplicate_key_update(update or {id_column.name: ins.inserted[id_column.name]})

    def check_batch(self, engine: sa.Engine, store: str, entity_type: str, records: list[Record]) -> None:
        if self.max_packet is None:
            with engine.connect() as conn:
                self.max_packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar() or 0)
        limit = self.max_packet
        if not limit:
            return
        for r in records:
            texts = (r.data_json, r.key_json or "")
            if sum(len(t) for t in texts) * 8 + 4096 < limit:  # at most 4 bytes a char, doubled by escaping
                continue
            size = sum(len(t.encode()) + sum(t.count(c) for c in "\"\\'\n\r\0\x1a") for t in texts) + 4096
            if size > limit:
                raise StoreRejectedError(f"{store}: put_many({entity_type}): record {r.id} needs about {size} "
                                         f"bytes as SQL, over the server's max_allowed_packet ({limit} bytes)",
                                         store=store)


#: backend name (``URL.get_backend_name()``) -> its dialect class
DIALECTS: dict[str, type[Dialect]] = {"postgresql": PostgreSQL, "sqlite": SQLite, "mysql": MySQL, "mariadb": MySQL}


def dialect_for(backend: str) -> Dialect:
    """The dialect object of ``backend``; the base class for one not in :data:`DIALECTS`."""
    return DIALECTS.get(backend, Dialect)(backend)
