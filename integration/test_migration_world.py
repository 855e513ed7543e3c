"""The migration test's old world (integration/migration_world.py) judged by its own checks.

Seeded small (200 users, 500 orders) on the real servers: untouched, it is unchanged and not
migrated (so ``check_migrated`` can fail); migrated by hand through uuid-forge's adapters (new
entries written, old ones removed with the raw drivers), ``check_migrated`` passes and
``check_unchanged`` fails; a foreign entry touched, a stale order reference or a duplicate is
reported; ``cleanup`` leaves nothing of the world's prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("redis", reason=driver_missing("redis"))
pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
import psycopg
import pymongo
import redis
from bson import ObjectId
from elasticsearch import Elasticsearch

from uuid_forge import IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.record import Record

from .migration_world import ORDER, USER, World, check_migrated, check_unchanged, cleanup, leftovers, new_prefix, seed
from .servers import elasticsearch_http_url

GEN = UUIDGenerator(IDConfig(namespace=Namespace("migration-world.uuid-forge.test"), salt="migration-world"))


@pytest.fixture
def world(postgres_url: str, redis_url: str, mongodb_url: str, elasticsearch_url: str,
          tmp_path: Path) -> Iterator[World]:
    urls = {"postgres": postgres_url, "redis": redis_url, "mongodb": mongodb_url,
            "elasticsearch": elasticsearch_url, "files": str(tmp_path)}
    w = seed(urls, new_prefix("mw"), n_users=200, n_orders=500)
    try:
        yield w
    finally:
        cleanup(w)
        assert leftovers(w) == []


def _pg(w: World) -> psycopg.Connection[Any]:
    return psycopg.connect(w.urls["postgres"].replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _convert_in_place(w: World) -> None:
    """The serial tables converted in place, as an in-database backfill and swap would leave them."""
    users, orders = w.new_ids(GEN)
    s = f'"{w.schema}"'
    with _pg(w) as c:
        c.execute(f"ALTER TABLE {s}.orders DROP CONSTRAINT orders_user_id_fkey;"
                  f"ALTER TABLE {s}.users ADD COLUMN new_id uuid;"
                  f"ALTER TABLE {s}.orders ADD COLUMN new_id uuid, ADD COLUMN new_user_id uuid")
        with c.cursor() as cur:
            cur.executemany(f"UPDATE {s}.users SET new_id = %s WHERE id = %s", [(i, n) for n, i in users.items()])
            cur.executemany(f"UPDATE {s}.orders SET new_id = %s WHERE id = %s", [(i, n) for n, i in orders.items()])
        c.execute(f"UPDATE {s}.orders o SET new_user_id = u.new_id FROM {s}.users u WHERE o.user_id = u.id;"
                  f"ALTER TABLE {s}.orders DROP COLUMN user_id; ALTER TABLE {s}.orders DROP COLUMN id;"
                  f"ALTER TABLE {s}.users DROP COLUMN id;"
                  f"ALTER TABLE {s}.users RENAME COLUMN new_id TO id; ALTER TABLE {s}.users ADD PRIMARY KEY (id);"
                  f"ALTER TABLE {s}.orders RENAME COLUMN new_id TO id; ALTER TABLE {s}.orders ADD PRIMARY KEY (id);"
                  f"ALTER TABLE {s}.orders RENAME COLUMN new_user_id TO user_id;"
                  f"ALTER TABLE {s}.orders ADD FOREIGN KEY (user_id) REFERENCES {s}.users (id)")


def _migrate_by_hand(w: World, postgres: str = "tables") -> None:
    """What a correct migration leaves: every entity under its new ID in each store (written by
    uuid-forge's adapters), orders pointing at their users' new IDs, old entries gone; PostgreSQL's
    serial rows moved into uuid-forge's tables, or the tables converted in place."""
    users, orders = w.new_ids(GEN)
    records = {USER: [Record(USER, users[u.serial], u.data(), {"email": u.email}) for u in w.users],
               ORDER: [Record(ORDER, orders[o.serial], {**o.data(), "user_id": str(users[o.user])},
                              {"order_no": o.order_no}) for o in w.orders]}
    urls = w.store_urls()
    for store, types in World.STORE_TYPES:
        if store == "db" and postgres == "in_place":
            continue
        with open_store(urls[store]) as adapter:
            for et in types:
                adapter.put_many(records[et])
    if postgres == "in_place":
        _convert_in_place(w)
    else:
        with _pg(w) as c:
            c.execute(f'DELETE FROM "{w.schema}".orders; DELETE FROM "{w.schema}".users')
    client = redis.Redis.from_url(w.urls["redis"])
    client.delete(*[f"{w.prefix}:{USER}:{u.serial}" for u in w.users], *[f"{w.prefix}:{ORDER}:{o.serial}"
                                                                          for o in w.orders])
    client.close()
    mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(w.urls["mongodb"])
    db = mongo[w.mongo_db]
    db[w.collections[USER]].delete_many({"_id": {"$in": [ObjectId(u.oid) for u in w.users]}})
    db[w.collections[ORDER]].delete_many({"_id": {"$in": [ObjectId(o.oid) for o in w.orders]}})
    mongo.close()
    es = Elasticsearch(elasticsearch_http_url(w.urls["elasticsearch"]))
    for u in w.users:
        es.delete(index=w.users_index, id=u.v4)
    es.indices.refresh(index=w.users_index)
    es.close()
    for u in w.users:
        (w.files_root / USER / f"{u.v4}.json").unlink()


def test_the_old_world_is_unchanged_and_not_migrated(world: World) -> None:
    assert len(world.users) == 200 and len(world.orders) == 500
    assert check_unchanged(world) == []
    problems = check_migrated(world, GEN)
    kinds = {p.split(":")[0] for p in problems}
    # every store misses the new entries and still holds the old ones
    assert {"db user missing", "cache order missing", "docs_user user missing", "docs_order order missing", "search user missing",
            "files user missing", "redis old keys left", "elasticsearch old documents left",
            "files old left", "postgres old rows left"} <= kinds, problems
    assert any(k.startswith("mongodb") and k.endswith("old documents left") for k in kinds), problems
    assert not any(k == "foreign" for k in kinds), problems


@pytest.mark.parametrize("postgres", ["in_place", "tables"])
def test_a_migrated_world_passes_and_each_fault_is_named(world: World, postgres: str) -> None:
    _migrate_by_hand(world, postgres)
    assert check_migrated(world, GEN, postgres=postgres) == []
    other_mode = "tables" if postgres == "in_place" else "in_place"
    assert check_migrated(world, GEN, postgres=other_mode) != []  # the other end state is not this one
    assert check_unchanged(world) != []
    # a wrong ID configuration: nothing is where it should be
    other = IDConfig(namespace=Namespace("another.uuid-forge.test"), salt="other")  # a config works as well
    assert any("missing" in p for p in check_migrated(world, other, postgres=postgres))
    assert check_migrated(world, GEN.config, postgres=postgres) == []
    # an order still pointing at its user's old serial, in one store
    users, orders = world.new_ids(GEN)
    first = world.orders[0]
    with open_store(world.store_urls()["cache"]) as cache:
        cache.put_many([Record(ORDER, orders[first.serial], first.data(), {"order_no": first.order_no})])
        problems = check_migrated(world, GEN, postgres=postgres)
        assert problems == [f"cache order data: {orders[first.serial]}: fields ['user_id'] differ, [] not seeded"]
        cache.put_many([Record(ORDER, orders[first.serial], {**first.data(), "user_id": str(users[first.user])},
                               {"order_no": first.order_no})])
    # another application's entry touched (same content, written again): named, by store
    client = redis.Redis.from_url(world.urls["redis"])
    key = world.foreign["redis keys"][0]
    client.set(key, client.get(key) + b" ")  # type: ignore[operator]
    client.close()
    assert check_migrated(world, GEN, postgres=postgres) == ["foreign: foreign entries changed in redis"]


def test_a_touched_foreign_file_and_an_extra_entry_fail_the_unchanged_check(world: World) -> None:
    readme = world.files_root / USER / "README.txt"
    readme.write_bytes(readme.read_bytes() + b"edited\n")
    with open_store(world.store_urls()["docs_user"]) as docs:
        docs.put_many([Record(USER, GEN.generate(USER, email="new@example.com"), {"email": "new@example.com"})])
    problems = check_unchanged(world)
    assert "foreign: foreign entries changed in file bytes" in problems
    assert any(p.startswith(f"mongodb {world.collections[USER]} new documents") for p in problems), problems
