"""An order written across four stores under one ID (uuid-forge 0.1's "order processing" pattern).

PostgreSQL holds the order (the source of truth), Redis caches it, the filesystem keeps its
invoice document and RabbitMQ announces it. Every store derives the same ID from the business key
(region + order number), so no service asks another for it. The publish is retried, as after a
timeout, and carries the same message_id, so a consumer keeps one copy.

Run: python examples/order_flow.py  (URLs from UUID_FORGE_TEST_{POSTGRES,REDIS,AMQP}_URL, with the
local defaults; MongoDB is added when UUID_FORGE_TEST_MONGODB_URL is set).
"""

from __future__ import annotations

import os
import tempfile
import uuid

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

PG = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP = os.environ.get("UUID_FORGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MONGO = os.environ.get("UUID_FORGE_TEST_MONGODB_URL")


def main() -> None:
    run = uuid.uuid4().hex[:8]
    entity = f"order_{run}"  # a fresh entity type per run keeps the shared servers clean
    exchange = f"uf_example_{run}"
    work = tempfile.mkdtemp(prefix="uf-order-flow-")
    stores = [
        StoreHandle("postgres", open_store(PG), source=True),
        StoreHandle("redis", open_store(REDIS, ttl=3600), required=False),
        StoreHandle("files", open_store(f"file://{work}/invoices")),
        StoreHandle("rabbitmq", open_store(f"{AMQP}?exchange={exchange}")),
    ]
    if MONGO:
        stores.append(StoreHandle("mongodb", open_store(MONGO)))
    forge = Forge(stores, ids=IDConfig(namespace=Namespace("orders.myshop.example"), salt="example"),
                  journal=Journal(f"{work}/journal.sqlite3"))
    key = {"region": "EUR", "number": 12345}
    order = {"customer": "john@example.com", "total": 99.5, "items": [{"sku": "SKU-1", "qty": 2}]}
    try:
        order_id = forge.id_for(entity, key)
        print(f"order {key} -> {order_id} (computed, not looked up)")
        report = forge.write(entity, key, order)
        print(report.summary())
        forge.write(entity, key, order)  # a retry after a timeout: same ID, same event ID
        fp = forge.records([(entity, key, order)])[0].fingerprint
        print(f"event message_id: {forge.event_id(order_id, 'upserted', fp)} (same on every retry)")

        for h in forge.stores:
            if "read" in h.adapter.capabilities:
                got = h.adapter.get_many(entity, [order_id])
                print(f"  {h.name:9} holds {order_id}: {order_id in got}")
        messages = list(forge.stores[3].adapter.scan(entity))
        print(f"  rabbitmq  history: {len(messages)} distinct entity in the stream, id {messages[0][0]}")
        audit = forge.audit(entity)
        print(f"audit: {'consistent' if audit.consistent else 'INCONSISTENT'}")
        assert report.complete and audit.consistent and messages[0][0] == order_id
    finally:
        for h in forge.stores:
            if "delete" in h.adapter.capabilities:
                h.adapter.delete_many(entity, [forge.id_for(entity, key)])
        drop = getattr(forge.stores[0].adapter, "drop", None)
        if drop:
            drop(entity)
        delete_exchange = getattr(forge.stores[3].adapter, "delete_topology", None)
        if delete_exchange:
            delete_exchange()
        forge.close()


if __name__ == "__main__":
    main()
