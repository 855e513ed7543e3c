"""A consistency validator across stores (uuid-forge 0.1's "ConsistencyValidator" pattern), for real.

The ancestor's docs looked every entity up in every store one at a time. Here the audit streams
(id, fingerprint) pairs per ID range from each store, compares them with the source of truth,
names every missing, orphan, stale and malformed record, and repairs them from the source.

Run: python examples/consistency_validator.py  (PostgreSQL and Redis URLs from
UUID_FORGE_TEST_POSTGRES_URL / UUID_FORGE_TEST_REDIS_URL, with the local defaults).
"""

from __future__ import annotations

import os
import tempfile
import uuid

from uuid_forge import Forge, IDConfig, Namespace, Record, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

PG = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def main() -> None:
    entity = f"customer_{uuid.uuid4().hex[:8]}"
    work = tempfile.mkdtemp(prefix="uf-validator-")
    forge = Forge([StoreHandle("postgres", open_store(PG), source=True), StoreHandle("redis", open_store(REDIS)),
                   StoreHandle("files", open_store(f"file://{work}/files"))],
                  ids=IDConfig(namespace=Namespace("crm.example"), salt="example"),
                  journal=Journal(f"{work}/journal.sqlite3"))
    try:
        people = [(entity, {"email": f"c{i}@example.com"}, {"name": f"Customer {i}", "vip": i % 10 == 0})
                  for i in range(2000)]
        forge.write_many(people)
        print(f"wrote {len(people)} customers to {', '.join(h.name for h in forge.stores)}")

        redis_store = forge.stores[1].adapter
        ids = [forge.id_for(entity, k) for _, k, _ in people[:2]]
        redis_store.delete_many(entity, [ids[0]])                                          # missing
        redis_store.put_many([Record(entity, ids[1], {"name": "edited in the cache"})])    # stale
        redis_store.put_many([Record(entity, uuid.uuid4(), {"name": "nobody"})])           # orphan
        print("drifted: one record deleted, one edited and one invented in Redis")

        report = forge.audit(entity)
        for f in report.findings:
            print(f"  {f.kind:8} {f.store}: {f.id}  ({f.detail})")
        print(f"consistent: {report.consistent}")

        forge.audit(entity, repair=True, delete_orphans=True)
        final = forge.audit(entity)
        print(f"after repair: consistent: {final.consistent}")
        assert not report.consistent and final.consistent
        assert sorted(f.kind for f in report.findings) == ["missing", "orphan", "stale"]
    finally:
        for h in forge.stores:
            h.adapter.delete_many(entity, [i for i, _ in h.adapter.scan(entity) if isinstance(i, uuid.UUID)])
        forge.close()


if __name__ == "__main__":
    main()
