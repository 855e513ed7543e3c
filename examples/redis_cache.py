"""The seed's Redis cache manager, in its own layout, beside uuid-forge.

What the seed (uuid-forge 0.1) did: a ``CacheManager`` computed a user's ID from the email with
``UUIDGenerator(IDConfig(namespace=Namespace("users"), salt="v1")).generate("user", email=...)``
and cached the profile as ``SETEX user:<id> 3600 <json.dumps(profile)>``, read back with ``GET``.
Nothing checked that the cache still said what the database said.

What uuid-forge adds: the same keys and values (Redis store options ``layout=data``, key pattern
``{type}:{id}``, ``ttl=3600``), written through from the database, and an audit that reads every
cached JSON string and compares it with the database: a value edited by hand is ``stale`` with the
field named, and repair puts the database's profile back as a JSON string, with its TTL.

Below, the seed's class is the seed's code (raw redis-py calls) and runs beside uuid-forge; each
reads what the other wrote. A per-run key prefix (``prefix=``, joined by ':') keeps the run apart
on a shared server; its keys are deleted at the end.

Run: python examples/redis_cache.py  (URL from UUID_FORGE_TEST_REDIS_URL, default
redis://127.0.0.1:6379/15; the database of record is a SQLite file in a temporary directory).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import uuid
from typing import Any

import redis

from uuid_forge import EntityType, Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

URL = os.environ.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class CacheManager:
    """The seed's cache manager, as it was written (a key prefix added so runs do not collide)."""

    def __init__(self, client: redis.Redis, prefix: str = "") -> None:
        self.user_generator = UUIDGenerator(IDConfig(namespace=Namespace("users"), salt="v1"))
        self.redis = client
        self.prefix = prefix

    def cache_user_data(self, email: str, user_data: dict[str, Any]) -> str:
        user_id = self.user_generator.generate("user", email=email)
        cache_key = f"{self.prefix}user:{user_id}"
        self.redis.execute_command("SETEX", cache_key, 3600, json.dumps(user_data))  # redis-py's setex() is deprecated
        return cache_key

    def get_cached_user(self, email: str) -> dict[str, Any] | None:
        user_id = self.user_generator.generate("user", email=email)
        cached_data = self.redis.get(f"{self.prefix}user:{user_id}")
        return json.loads(cached_data) if cached_data else None


def main() -> None:
    run = f"uf-example-{uuid.uuid4().hex[:8]}"
    work = tempfile.mkdtemp(prefix="uf-redis-cache-")
    atexit.register(shutil.rmtree, work, True)  # the database of record and the journal: gone on any exit
    client = redis.Redis.from_url(URL)
    seed = CacheManager(client, prefix=f"{run}:")
    forge = Forge([StoreHandle("db", open_store(f"sqlite:///{work}/users.db"), source=True),
                   StoreHandle("cache", open_store(URL, layout="data", ttl=3600, prefix=run))],
                  types=[EntityType("user", key=("email",), namespace=Namespace("users"), salt="v1")],
                  journal=Journal(f"{work}/journal.sqlite3"))
    cache = forge.stores[1].adapter
    alice = {"email": "alice@example.com", "name": "Alice", "plan": "pro", "logins": 12}
    bob = {"email": "bob@example.com", "name": "Bob", "plan": "free", "logins": 3}
    carol = {"email": "carol@example.com", "name": "Carol", "plan": "team", "logins": 40}
    try:
        # 1. seed era: the database holds Alice and Bob, and the seed's cache manager cached them
        forge.source.adapter.put_many(forge.records([("user", alice), ("user", bob)]))
        for user in (alice, bob):
            key = seed.cache_user_data(user["email"], user)
            print(f"seed:       SETEX {key} 3600 <json>")
        alice_id = forge.id_for("user", data=alice)
        assert alice_id == seed.user_generator.generate("user", email="alice@example.com")  # the same ID

        # 2. uuid-forge reads the seed's keys in their shape: the audit finds them equal to the database
        got = cache.get_many("user", [alice_id])[alice_id]
        print(f"uuid-forge: reads the seed's {cache.key_of('user', alice_id)} -> {dict(got.data)}")
        assert dict(got.data) == alice
        report = forge.audit("user")
        print(f"audit of the seed's cache: {report.stores['cache']['ok']} ok, consistent: {report.consistent}")
        assert report.consistent and report.stores["cache"]["ok"] == 2

        # 3. uuid-forge writes Carol through (database, then cache); the seed's GET reads her
        forge.write("user", carol)
        key = f"{run}:user:{forge.id_for('user', data=carol)}"
        print(f"uuid-forge: wrote {key}: type {client.type(key).decode()}, TTL {client.ttl(key)}s")
        print(f"seed:       get_cached_user(carol@example.com) -> {seed.get_cached_user('carol@example.com')}")
        assert seed.get_cached_user("carol@example.com") == carol
        assert client.type(key) == b"string" and 0 < client.ttl(key) <= 3600

        # 4. someone edits Alice's cached value by hand: the audit reads the value, not a stored hash
        alice_key = f"{run}:user:{alice_id}"
        client.set(alice_key, json.dumps({**alice, "plan": "enterprise"}), keepttl=True)
        client.persist(alice_key)  # ... and the TTL is lost on the way
        print(f"by hand:    SET {alice_key} with plan=enterprise (and no TTL left: {client.ttl(alice_key)})")
        report = forge.audit("user")
        stale = [(f.kind, f.id, f.fields) for f in report.findings]
        print(f"audit:      {report.findings[0].kind} {report.findings[0].id}, fields {report.findings[0].fields}")
        assert stale == [("stale", str(alice_id), ("plan",))]

        # 5. repair writes the database's profile back, in the seed's shape, with its TTL
        repaired = forge.audit("user", repair=True)
        print(f"repair:     rewritten {repaired.repaired['cache']['rewritten']}; "
              f"seed reads plan={seed.get_cached_user('alice@example.com')['plan']!r}, TTL {client.ttl(alice_key)}s")
        assert repaired.consistent and seed.get_cached_user("alice@example.com") == alice
        assert 0 < client.ttl(alice_key) <= 3600
        final = forge.audit("user")
        print(f"after repair: consistent: {final.consistent}")
        assert final.consistent and final.stores["cache"]["ok"] == 3
    finally:
        keys = list(client.scan_iter(match=f"{run}:*"))
        if keys:
            client.delete(*keys)
        client.close()
        forge.close()


if __name__ == "__main__":
    main()
