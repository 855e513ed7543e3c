"""The seed's ConsistencyValidator, beside the uuid-forge audit that does its job for every entity.

What the seed (uuid-forge 0.1) did: a ``ConsistencyValidator`` held one generator per namespace
(``users``, ``orders``, ``products``: three namespaces in one system) and, asked about one entity
at a time, computed the ID its key gives and looked it up in each store: does each store hold the
record under the ID its key fields give? One lookup per entity per store, and only for the
entities someone thought to ask about; a record holding other data under the right ID passed.

What uuid-forge adds: the three entity types declared once (``EntityType(key=..., namespace=...)``,
one ``Forge`` for all of them, ``forge.write_many([(type, data), ...])``), and one audit with
``verify_keys=True`` that streams every store per ID range: each record in the source is checked
against the ID its key fields give (a hand-edited email is reported as ``malformed`` with the ID it
should have), every other store against the source by ID and content (``missing``, ``orphan``,
``stale`` with the fields named, and ``unproven`` for an entry whose own key fields give another
ID). Repair rewrites the stores from the source; a wrong ID in the source, and an entry uuid-forge
cannot prove it wrote, are reported, never repaired: a person decides, here by putting the email
back and removing the stray product.

PostgreSQL is the source (uuid-forge's per-type tables, a per-run table prefix), Redis the cache
(``user:<id>``, ``order:<id>``, ``product:<id>`` JSON strings under a per-run key prefix). The
seed's validator below reads both with the raw drivers. Everything is removed at the end.

Run: python examples/consistency_validator.py  (PostgreSQL and Redis URLs from
UUID_FORGE_TEST_POSTGRES_URL / UUID_FORGE_TEST_REDIS_URL, with the local defaults).
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
import uuid
from typing import Any

import psycopg
import redis
import sqlalchemy as sa

from uuid_forge import EntityType, Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.masking import mask_name

PG = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
OWNERS = "uuid_forge_owners"  # the SQL adapter's record of which prefix and type own each table
KEYS = {"user": "email", "order": "order_number", "product": "sku"}
NAMESPACES = {"user": "users", "order": "orders", "product": "products"}


class ConsistencyValidator:
    """The seed's validator: one generator per namespace, one lookup per entity per store (raw drivers)."""

    def __init__(self, conn: Any, cache: redis.Redis, table_prefix: str, key_prefix: str) -> None:
        self.generators = {t: UUIDGenerator(IDConfig(namespace=Namespace(ns), salt="v1"))
                           for t, ns in NAMESPACES.items()}
        self.conn, self.cache, self.table_prefix, self.key_prefix = conn, cache, table_prefix, key_prefix

    def validate_storage_consistency(self, entity_type: str, identifier: str) -> dict[str, Any]:
        expected = self.generators[entity_type].generate(entity_type, **{KEYS[entity_type]: identifier})
        results = {
            "postgres": self.conn.execute(f'SELECT id FROM "{self.table_prefix}{entity_type}" WHERE id = %s',
                                          (expected,)).fetchone() is not None,
            "redis": bool(self.cache.exists(f"{self.key_prefix}:{entity_type}:{expected}")),
        }
        missing = [system for system, found in results.items() if not found]
        return {"consistent": not missing, "expected_uuid": expected, "inconsistencies": missing}


def drop_run_tables(url: str, prefix: str, owners_existed: bool) -> None:
    """Drop this run's tables and their rows in the SQL adapter's owners table (and that table if
    this run created it)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith(prefix):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
        if sa.inspect(conn).has_table(OWNERS):
            conn.execute(sa.text(f"DELETE FROM {OWNERS} WHERE table_prefix = :p"), {"p": prefix})
            if not owners_existed and not conn.execute(sa.text(f"SELECT count(*) FROM {OWNERS}")).scalar():
                conn.execute(sa.text(f"DROP TABLE {OWNERS}"))
    engine.dispose()


def main() -> None:
    run = uuid.uuid4().hex[:8]
    table_prefix, key_prefix = f"ex{run}_", f"uf-example-{run}"
    work = tempfile.mkdtemp(prefix="uf-validator-")
    atexit.register(shutil.rmtree, work, True)  # the database of record and the journal: gone on any exit
    engine = sa.create_engine(PG)
    with engine.connect() as conn:
        owners_existed = sa.inspect(conn).has_table(OWNERS)
    engine.dispose()
    types = [EntityType(t, key=(KEYS[t],), namespace=Namespace(ns), salt="v1") for t, ns in NAMESPACES.items()]
    forge = Forge([StoreHandle("postgres", open_store(PG, prefix=table_prefix), source=True),
                   StoreHandle("redis", open_store(REDIS, layout="data", prefix=key_prefix))],
                  types=types, journal=Journal(f"{work}/journal.sqlite3"))
    cache = redis.Redis.from_url(REDIS)
    conn = psycopg.connect(PG.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)
    seed = ConsistencyValidator(conn, cache, table_prefix, key_prefix)
    users = [{"email": f"c{i}@example.com", "name": f"Customer {i}", "vip": i % 10 == 0} for i in range(1500)]
    orders = [{"order_number": f"ORD-{i:05}", "customer": f"c{i % 1500}@example.com", "total_cents": 100 + i}
              for i in range(1000)]
    products = [{"sku": f"SKU-{i:04}", "name": f"Product {i}", "price_cents": 250 + i} for i in range(500)]
    try:
        forge.write_many([("user", u) for u in users] + [("order", o) for o in orders]
                         + [("product", p) for p in products])
        print(f"wrote {len(users)} users, {len(orders)} orders, {len(products)} products, each type in its own "
              f"namespace, to {', '.join(h.name for h in forge.stores)}")

        # drift, as it happens: by hand, by a bug, by another program
        edited_user = forge.id_for("user", data=users[7])
        table = f'"{table_prefix}user"'
        original = conn.execute(f"SELECT data::text FROM {table} WHERE id = %s", (edited_user,)).fetchone()[0]
        conn.execute(f"UPDATE {table} SET data = jsonb_set(data::jsonb, '{{email}}', "
                     "'\"c7@example.org\"')::json WHERE id = %s", (edited_user,))
        lost_order = forge.id_for("order", data=orders[42])
        cache.delete(f"{key_prefix}:order:{lost_order}")
        edited_product = forge.id_for("product", data=products[3])
        cache.set(f"{key_prefix}:product:{edited_product}", json.dumps({**products[3], "price_cents": 1}))
        wrong_ns = seed.generators["user"].generate("product", sku="SKU-9999")  # the users namespace, by mistake
        cache.set(f"{key_prefix}:product:{wrong_ns}", json.dumps({"sku": "SKU-9999", "name": "?", "price_cents": 0}))
        print("drifted: a user's email edited in PostgreSQL; in Redis an order deleted, a product's price edited, "
              "and a product cached under an ID from the users namespace")

        # the seed's validator, asked about every entity it knows, one lookup per entity per store
        started = time.perf_counter()
        asked = [("user", u["email"]) for u in users] + [("order", o["order_number"]) for o in orders] + \
                [("product", p["sku"]) for p in products]
        results = [(t, k, seed.validate_storage_consistency(t, k)) for t, k in asked]
        bad = [(t, k, r["inconsistencies"]) for t, k, r in results if not r["consistent"]]
        seed_seconds = time.perf_counter() - started
        print(f"seed's validator: {len(asked)} entities x 2 stores in {seed_seconds:.2f}s, found {len(bad)}: {bad}")
        assert bad == [("order", "ORD-00042", ["redis"])]  # blind to the edited email, price and stray ID

        # the uuid-forge audit: every store streamed per ID range, the source's IDs checked against their keys
        report = forge.audit(["user", "order", "product"], verify_keys=True)
        print(f"uuid-forge audit (verify_keys): every record of both stores in {report.seconds:.2f}s, "
              f"found {len(report.findings)}:")
        for f in report.findings:
            print(f"  {f.kind:9} {f.store}/{f.entity_type} {f.id}  ({f.detail})")
        found = sorted((f.kind, f.store, f.entity_type, f.id) for f in report.findings)
        # the edited user is no entity of its type until its key is right again: reported on the source,
        # never copied to the cache; the stray product's key fields give another ID, so it is not
        # proven ours: reported (name masked), never deleted by uuid-forge
        assert found == sorted([("malformed", "postgres", "user", str(edited_user)),
                                ("missing", "redis", "order", str(lost_order)),
                                ("stale", "redis", "product", str(edited_product)),
                                ("unproven", "redis", "product", mask_name(str(wrong_ns)))])
        assert {f.entity_type: f.fields for f in report.findings if f.kind == "stale"} == {"product": ("price_cents",)}
        print(f"consistent: {report.consistent}")

        # a wrong ID in the source is a person's call (never repaired): here the email goes back by hand;
        # and the stray product, which uuid-forge cannot prove it wrote, goes by hand too; then repair
        # rewrites the cache from the source
        conn.execute(f"UPDATE {table} SET data = %s::json WHERE id = %s", (original, edited_user))
        cache.delete(f"{key_prefix}:product:{wrong_ns}")
        repaired = forge.audit(["user", "order", "product"], repair=True, delete_orphans=True, max_delete=1)
        print(f"repair: {({n: dict(c) for n, c in repaired.repaired.items()})}")
        final = forge.audit(["user", "order", "product"], verify_keys=True)
        print(f"after repair: consistent: {final.consistent}")
        assert not report.consistent and final.consistent
        assert cache.get(f"{key_prefix}:order:{lost_order}") is not None
        assert not cache.exists(f"{key_prefix}:product:{wrong_ns}")
    finally:
        conn.close()
        forge.close()
        leftover = list(cache.scan_iter(match=f"{key_prefix}:*"))
        if leftover:
            cache.delete(*leftover)
        cache.close()
        drop_run_tables(PG, table_prefix, owners_existed)


if __name__ == "__main__":
    main()
