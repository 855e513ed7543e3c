"""The seed's PostgreSQL user repository, on its own ``users`` table, beside uuid-forge.

What the seed (uuid-forge 0.1) did: a ``UserRepository`` computed ``generate("user", email=...)``
and wrote ``INSERT INTO users (id, email, name, ...)`` with raw SQL into its own table (``id uuid``
primary key, one column per field, ``created_at timestamptz``). Nothing said whether the rows
still matched the account records they were copied from.

What uuid-forge adds: it maps that table as it is (SQL store options ``table=``, ``entity_type=``,
``columns=``, ``fields=``; no uuid-forge column: no fingerprint, no JSON, no key), writes users
through to it in the seed's shape, reads the seed's rows, and audits the table against the
system of record by content: a column updated by hand is ``stale`` with the field named, and
repair writes the record's values back. A row another program inserted (a random version-4 ID)
is reported as foreign and left alone. Typed columns compare as values: a datetime at +02:00 in
the record and the ``timestamptz`` the seed inserted (read back in UTC) are the same instant.

Below, the seed's class is the seed's code (raw psycopg) and runs beside uuid-forge; each reads
what the other wrote. The system of record is a SQLite file in a temporary directory here.

Run: ``python examples/postgres_user_repository.py``. The server comes from
``UUID_FORGE_TEST_POSTGRES_URL`` (default: the local test server); the table lives in a schema of
the run's own, dropped at the end.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import tempfile
import uuid
from typing import Any

import psycopg
import sqlalchemy as sa

from uuid_forge import EntityType, Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

URL = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class UserRepository:
    """The seed's repository, with raw SQL (its schema given, so runs do not collide)."""

    def __init__(self, conninfo: str, schema: str) -> None:
        self.generator = UUIDGenerator(IDConfig(namespace=Namespace("users.myapp.com"), salt="v1"))
        self.conn = psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}")

    def create_table(self) -> None:
        self.conn.execute("CREATE TABLE users (id uuid PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, "
                          "created_at timestamptz NOT NULL)")

    def create_user(self, email: str, name: str, created_at: dt.datetime) -> uuid.UUID:
        user_id = self.generator.generate("user", email=email)
        self.conn.execute("INSERT INTO users (id, email, name, created_at) VALUES (%s, %s, %s, %s)",
                          (user_id, email, name, created_at))
        return user_id

    def get_user_by_email(self, email: str) -> dict[str, Any] | None:
        """No index on email needed: the ID is computed from it."""
        row = self.conn.execute("SELECT id, email, name, created_at FROM users WHERE id = %s",
                                (self.generator.generate("user", email=email),)).fetchone()
        return None if row is None else dict(zip(("id", "email", "name", "created_at"), row))


def main() -> None:
    schema = f"uf_example_{uuid.uuid4().hex[:8]}"
    work = tempfile.mkdtemp(prefix="uf-user-repo-")
    atexit.register(shutil.rmtree, work, True)  # the database of record and the journal: gone on any exit
    engine = sa.create_engine(URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    seed = UserRepository(URL.replace("postgresql+psycopg://", "postgresql://", 1), schema)
    # the system of record: account records, created_at in the office's zone (+02:00) or as UTC text
    office = dt.timezone(dt.timedelta(hours=2))
    alice = {"email": "alice@example.com", "name": "Alice", "created_at": dt.datetime(2024, 5, 1, 10, 0, tzinfo=office)}
    bob = {"email": "bob@example.com", "name": "Bob",
           "created_at": dt.datetime(2024, 5, 2, 9, 30, 15, 250000, tzinfo=office)}
    carol = {"email": "carol@example.com", "name": "Carol", "created_at": "2024-05-03T18:45:00Z"}
    forge = None
    try:
        seed.create_table()
        print(f"seed:       CREATE TABLE {schema}.users (id uuid PRIMARY KEY, email, name, created_at timestamptz)")
        users = sa.Table("users", sa.MetaData(), schema=schema, autoload_with=engine)
        table = open_store(URL, table=users, entity_type="user", columns={"id": "id"},
                           fields={"email": "email", "name": "name", "created_at": "created_at"})
        forge = Forge([StoreHandle("accounts", open_store(f"sqlite:///{work}/accounts.db"), source=True),
                       StoreHandle("postgres", table)],
                      types=[EntityType("user", key=("email",), namespace=Namespace("users.myapp.com"), salt="v1")],
                      journal=Journal(f"{work}/journal.sqlite3"))

        # 1. seed era: the records hold Alice and Bob, and the seed's repository inserted them by hand
        forge.source.adapter.put_many(forge.records([("user", alice), ("user", bob)]))
        for user in (alice, bob):
            user_id = seed.create_user(user["email"], user["name"], user["created_at"])
            print(f"seed:       INSERT INTO users (id, email, name, created_at) -> {user_id}")
            assert user_id == forge.id_for("user", data=user)  # one ID scheme on both sides
        seed.conn.execute("INSERT INTO users VALUES (gen_random_uuid(), 'ops@example.com', 'Ops', now())")
        print("other app:  INSERT INTO users VALUES (gen_random_uuid(), 'ops@example.com', ...)")

        # 2. uuid-forge reads the seed's rows in their shape; the audit finds them equal to the records
        alice_id = forge.id_for("user", data=alice)
        got = table.get_many("user", [alice_id])[alice_id]
        print(f"uuid-forge: reads the seed's row {alice_id}: {dict(got.data)}")
        report = forge.audit("user")
        print(f"audit of the seed's table: {report.stores['postgres']['ok']} ok, "
              f"{report.stores['postgres']['foreign']} foreign, consistent: {report.consistent}")
        assert report.consistent and report.stores["postgres"]["ok"] == 2
        assert report.stores["postgres"]["foreign"] == 1

        # 3. uuid-forge writes Carol through; the seed's SELECT reads her row
        forge.write("user", carol)
        row = seed.get_user_by_email("carol@example.com")
        print(f"uuid-forge: wrote Carol; the seed's SELECT -> {row}")
        assert row == {"id": forge.id_for("user", data=carol), "email": carol["email"], "name": "Carol",
                       "created_at": dt.datetime(2024, 5, 3, 18, 45, tzinfo=dt.UTC)}

        # 4. an UPDATE by hand, found by reading the columns (there is no fingerprint column to trust)
        seed.conn.execute("UPDATE users SET name = 'Alice (edited)' WHERE email = 'alice@example.com'")
        seed.conn.execute("UPDATE users SET created_at = created_at + interval '1 second' "
                          "WHERE email = 'bob@example.com'")
        print("by hand:    UPDATE users SET name = ... (Alice); SET created_at = created_at + 1 s (Bob)")
        report = forge.audit("user")
        found = sorted((f.kind, f.id, f.fields) for f in report.findings)
        for kind, ident, fields in found:
            print(f"audit:      {kind} {ident}, fields {fields}")
        bob_id = forge.id_for("user", data=bob)
        assert found == sorted([("stale", str(alice_id), ("name",)), ("stale", str(bob_id), ("created_at",))])

        # 5. repair writes the records' values back; the other app's row is untouched
        repaired = forge.audit("user", repair=True)
        assert repaired.consistent, repaired.repair_errors
        print(f"repair:     rewritten {repaired.repaired['postgres']['rewritten']}; the seed reads "
              f"{seed.get_user_by_email('alice@example.com')['name']!r}, "  # type: ignore[index]
              f"{seed.get_user_by_email('bob@example.com')['created_at'].isoformat()}")  # type: ignore[index]
        assert seed.get_user_by_email("alice@example.com")["name"] == "Alice"  # type: ignore[index]
        assert seed.conn.execute("SELECT count(*) FROM users WHERE email = 'ops@example.com'").fetchone() == (1,)
        final = forge.audit("user")
        print(f"after repair: consistent: {final.consistent}; rows in users: "
              f"{seed.conn.execute('SELECT count(*) FROM users').fetchone()[0]}")  # type: ignore[index]
        assert final.consistent and final.stores["postgres"]["ok"] == 3
    finally:
        if forge is not None:
            forge.close()
        seed.conn.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
        print(f"dropped schema {schema}")


if __name__ == "__main__":
    main()
