"""SQL stores through SQLAlchemy 2 Core: PostgreSQL (psycopg 3) first, SQLite and MariaDB/MySQL (PyMySQL) too.

Two layouts (see :class:`SQLAdapter`): your own table in its own shape (``table=``, one entity
type, data fields in typed columns that round-trip: timestamptz, timestamp in a declared zone,
numeric, integer, double, boolean, json/jsonb, uuid, date, PostgreSQL arrays, text), or without
``table=`` one table per entity type holding the data as one JSON column. Either way a record's
fingerprint is computed from the data read, never from a stored one.

Only SQLAlchemy is imported here; it loads the DBAPI driver (psycopg, pymysql, sqlite3) when the
engine first connects, so a SQLite store needs nothing beyond SQLAlchemy.

Modules: :mod:`.adapter` (the adapter), :mod:`.layout` (our per-type tables or your table),
:mod:`.columns` (column maps, checks of your table), :mod:`.codec` (IDs and field values
between the data model and columns), :mod:`.dialects` (what differs per backend),
:mod:`.tables` (the tables we create, the owners record), :mod:`.errors` (driver errors).
"""

from .adapter import SQLAdapter
from .errors import classify_error
from .layout import LAYOUTS
from .tables import OWNERS

__all__ = ["LAYOUTS", "OWNERS", "SQLAdapter", "classify_error"]

#: the name this function had when the adapter was one module (kept for existing callers)
_classify_sql = classify_error
