"""The PostgreSQL extensions the ID functions call, and where a database has them installed.

Apart from adapters/sql/functions.py (which installs them) so that the in-place backfill
(adapters/sql/migration.py) can name ``uuid_generate_v5`` by its schema without importing the
installer, which imports the adapter.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["EXTENSIONS", "extension_schemas"]

#: the extensions the functions call: uuid_generate_v5 (uuid-ossp) and hmac (pgcrypto)
EXTENSIONS = ("uuid-ossp", "pgcrypto")


def extension_schemas(conn: sa.Connection) -> dict[str, str]:
    """The schema each installed extension of :data:`EXTENSIONS` is in, as SQL text (quoted
    where it must be)."""
    rows = conn.execute(sa.text("SELECT extname, extnamespace::regnamespace::text FROM pg_extension "
                                "WHERE extname = ANY(:names)"), {"names": list(EXTENSIONS)}).all()
    return {str(name): str(where) for name, where in rows}
