"""Postgres user repository: users created and fetched by email through their deterministic ID.

The uuid-forge 0.1 docs showed a ``UserRepository`` that computed ``generate("user", email=...)``
and wrote ``INSERT INTO users (id, email, name)`` by hand. Here the same pattern goes through the
SQL adapter and an existing ``users`` table of your own (``user_id uuid`` primary key, one column
per field, plus ``fp`` for the fingerprint audits compare), mapped with ``columns=`` and
``fields=``. Looking a user up by email needs no index on email and no query by email: the ID is
computed from it. Creating a user twice is an idempotent upsert.

Run: ``python examples/postgres_user_repository.py``. The server comes from
``UUID_FORGE_TEST_POSTGRES_URL`` (default: the local test server); the demo table is dropped at the end.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import sqlalchemy as sa

from uuid_forge import IDConfig, Namespace, Record, UUIDGenerator, open_store
from uuid_forge.contract import Adapter

URL = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class UserRepository:
    """Users keyed by ``generate("user", email=...)``: every service computes the same ID."""

    def __init__(self, store: Adapter, generator: UUIDGenerator) -> None:
        self.store = store
        self.generator = generator

    def user_id(self, email: str) -> uuid.UUID:
        return self.generator.generate("user", email=email)

    def create_user(self, email: str, name: str) -> uuid.UUID:
        user_id = self.user_id(email)
        self.store.put_many([Record("user", user_id, {"email": email, "name": name}, {"email": email})])
        return user_id

    def get_user_by_email(self, email: str) -> dict[str, Any] | None:
        user_id = self.user_id(email)
        record = self.store.get_many("user", [user_id]).get(user_id)
        return None if record is None else {"id": record.id, **record.data}


def main() -> None:
    engine = sa.create_engine(URL.replace("postgresql://", "postgresql+psycopg://", 1))
    # your existing table; a unique name here so parallel runs of the demo do not collide
    users = sa.Table(f"users_demo_{uuid.uuid4().hex[:8]}", sa.MetaData(),
                     sa.Column("user_id", sa.Uuid, primary_key=True),
                     sa.Column("email", sa.Text, nullable=False, unique=True),
                     sa.Column("name", sa.Text),
                     sa.Column("fp", sa.String(32)))
    users.create(engine)
    print(f"created table {users.name}(user_id uuid primary key, email, name, fp)")
    try:
        generator = UUIDGenerator(IDConfig(namespace=Namespace("users.myapp.com"), salt="v1"))
        with open_store(URL, table=users, entity_type="user", columns={"id": "user_id", "fingerprint": "fp"},
                        fields={"email": "email", "name": "name"}) as store:
            repo = UserRepository(store, generator)
            john = repo.create_user("john@example.com", "John Doe")
            print(f"create_user(john@example.com) -> {john}")
            again = repo.create_user("john@example.com", "John Doe")
            print(f"create_user again           -> {again} (same ID, still one row)")
            repo.create_user("zoe@example.com", "Zoë")
            print(f"get_user_by_email(zoe@example.com) -> {repo.get_user_by_email('zoe@example.com')}")
            repo.create_user("john@example.com", "John Q. Doe")  # an upsert updates in place
            print(f"after rename: {repo.get_user_by_email('john@example.com')}")
            print(f"get_user_by_email(nobody@example.com) -> {repo.get_user_by_email('nobody@example.com')}")
            with engine.connect() as conn:
                rows = conn.execute(sa.select(users.c.user_id, users.c.email, users.c.name)
                                    .order_by(users.c.email)).all()
            print(f"rows in {users.name}: {len(rows)}")
            for row in rows:
                print(f"  {row.user_id}  {row.email:<18} {row.name}")
            assert len(rows) == 2 and again == john
    finally:
        users.drop(engine)
        engine.dispose()
        print(f"dropped table {users.name}")


if __name__ == "__main__":
    main()
