"""The seed's order flow: one order across four stores, in the seed's own layouts, with uuid-forge.

What the seed (uuid-forge 0.1) did: an ``OrderProcessingSystem`` computed the order's ID, then
wrote it by hand to each store: PostgreSQL (the order itself), Redis
(``SETEX order:<id> 3600 <json>``), Elasticsearch (index ``orders``, ``_id`` = the order ID, the
order's fields at the top level plus a ``searchable_text`` field, so a search by text finds it)
and, in its publisher, a RabbitMQ event on its own exchange with ``routing_key`` = the event type.
Four hand-written writes, and nothing to say whether the four stores still agree.

What uuid-forge adds: one ``forge.write("order", data)`` writes the order through to every store in
those layouts (Redis ``layout=data``, ``ttl=3600``; Elasticsearch ``index=`` + ``entity_type=``,
top-level indexed fields; RabbitMQ the shop's exchange, ``routing_key={event}``), from the order
number alone (a declared entity type: ``key = ["order_number"]``, namespace ``orders``); a retry
carries the same event ``message_id``; and one audit reads every store and compares it with the
source. A status edited by hand in the search index is ``stale`` with the field named, and repair
writes the source's order back. The seed's own reads (``GET order:<id>``, a ``match`` query on
``searchable_text``, a queue bound to ``order.created``) run beside it, with the raw drivers.

PostgreSQL is the source of truth (uuid-forge's per-type table). MongoDB is added, optional,
when ``UUID_FORGE_TEST_MONGODB_URL`` is set.

Run: python examples/order_flow.py  (URLs from UUID_FORGE_TEST_{POSTGRES,REDIS,AMQP}_URL, with the
local defaults; Elasticsearch from UUID_FORGE_TEST_ELASTICSEARCH_URL, else the noida-db stand-in
(``pip install noida-db``) is started the way the integration tests start it). Every name is per
run (table prefix, key prefix, index, exchange) and removed at the end.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pika
import redis
import sqlalchemy as sa
from elasticsearch import Elasticsearch
from uuid_forge.adapters.rabbitmq import event_id

from uuid_forge import EntityType, Forge, Namespace, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # integration.servers: the stand-ins

PG = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
AMQP = os.environ.get("UUID_FORGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
MONGO = os.environ.get("UUID_FORGE_TEST_MONGODB_URL")
EVENT = "order.created"
OWNERS = "uuid_forge_owners"  # the SQL adapter's record of which prefix and type own each table


@contextmanager
def elasticsearch_url() -> Iterator[str]:
    """The test server's URL, or the noida-db stand-in for the length of the block."""
    url = os.environ.get("UUID_FORGE_TEST_ELASTICSEARCH_URL")
    if url:
        yield url
        return
    from integration import servers

    data_dir = tempfile.mkdtemp(prefix="uf-order-flow-es-")
    atexit.register(shutil.rmtree, data_dir, True)  # also when it fails before its try
    url, proc = servers.start_elasticsearch_standin(data_dir)
    print(f"started the noida-db Elasticsearch stand-in at {url}")
    try:
        yield url
    finally:
        servers.stop_process(proc)
        shutil.rmtree(data_dir, ignore_errors=True)


def plain_http(url: str) -> str:
    """``elasticsearch+http://h:p`` -> ``http://h:p``, for the official client."""
    return url.split("+", 1)[1] if url.startswith("elasticsearch+") else url


def owners_table_exists(url: str) -> bool:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        exists = sa.inspect(conn).has_table(OWNERS)
    engine.dispose()
    return exists


def drop_run_tables(url: str, prefix: str, owners_existed: bool) -> None:
    """Drop this run's tables (the order table and uuid-forge's ID-configuration marker) and their
    rows in the SQL adapter's owners table; that table too if this run created it."""
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
    owners_existed = owners_table_exists(PG)
    work = tempfile.mkdtemp(prefix="uf-order-flow-")
    atexit.register(shutil.rmtree, work, True)  # also when it fails before its try
    index, exchange, prefix = f"orders-{run}", f"uf_example_shop_{run}", f"uf-example-{run}"
    with elasticsearch_url() as es_url:
        es = Elasticsearch(plain_http(es_url))
        cache = redis.Redis.from_url(REDIS)
        amqp = pika.BlockingConnection(pika.URLParameters(AMQP))
        channel = amqp.channel()
        channel.exchange_declare(exchange, "direct", durable=True)  # the shop's exchange and its consumer
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, exchange, EVENT)
        stores = [
            StoreHandle("postgres", open_store(PG, prefix=f"ex{run}_"), source=True),
            StoreHandle("redis", open_store(REDIS, layout="data", ttl=3600, prefix=prefix)),
            StoreHandle("elasticsearch", open_store(es_url, index=index, entity_type="order", refresh="wait_for")),
            StoreHandle("rabbitmq", open_store(f"{AMQP}{'&' if '?' in AMQP else '?'}exchange={exchange}",
                                               routing_key="{event}", event=EVENT)),
        ]
        if MONGO:
            stores.append(StoreHandle("mongodb", open_store(MONGO, collection=f"orders_{run}", entity_type="order"),
                                      required=False))
        forge = Forge(stores, types=[EntityType("order", key=("order_number",), namespace=Namespace("orders"),
                                                salt="v1")],
                      journal=Journal(f"{work}/journal.sqlite3"))
        order = {"order_number": "EUR-12345", "customer": "john@example.com", "status": "pending",
                 "total_cents": 9950, "items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-2", "qty": 1}],
                 "searchable_text": "john@example.com SKU-1 SKU-2"}
        try:
            order_id = forge.id_for("order", data=order)
            print(f"order {order['order_number']} -> {order_id} (computed from the order number, not looked up)")
            report = forge.write("order", order)
            print(report.summary())
            forge.write("order", order)  # a retry after a timeout: same ID, same event ID
            fp = forge.records([("order", order)])[0].fingerprint
            print(f"event message_id: {event_id(order_id, EVENT, fp)} (the same on the retry)")
            assert report.complete

            # the seed's own reads, with the raw drivers
            cached = cache.get(f"{prefix}:order:{order_id}")
            print(f"seed's GET order:{order_id} -> {json.loads(cached) == order}, TTL "
                  f"{cache.ttl(f'{prefix}:order:{order_id}')}s")
            assert cached is not None and json.loads(cached) == order
            es.indices.refresh(index=index)
            hits = es.search(index=index, query={"match": {"searchable_text": "SKU-2"}})["hits"]["hits"]
            print(f"seed's search match searchable_text=SKU-2 -> {[h['_id'] for h in hits]}")
            assert [h["_id"] for h in hits] == [str(order_id)]
            assert {k: v for k, v in hits[0]["_source"].items() if k != "uf_id"} == order
            ids = set()
            for method, props, body in channel.consume(queue, inactivity_timeout=10):
                if method is None:
                    break
                channel.basic_ack(method.delivery_tag)
                ids.add(props.message_id)
                assert json.loads(body) == order and props.correlation_id == str(order_id)
            channel.cancel()
            print(f"the shop's consumer: {EVENT} messages with {len(ids)} distinct message_id, body = the order")
            assert ids == {str(event_id(order_id, EVENT, fp))}

            if MONGO:  # the seed's insert_one({"_id": order_id, **order}) shape: flat, _id a Binary-4 UUID
                from pymongo import MongoClient

                client: MongoClient[dict[str, Any]] = MongoClient(MONGO, uuidRepresentation="standard")
                doc = client.get_default_database()[f"orders_{run}"].find_one({"_id": order_id})
                client.close()
                print(f"seed's find_one in MongoDB -> _id {doc['_id'] if doc else None}, the order's fields beside it")
                assert doc == {"_id": order_id, **order}

            audit = forge.audit("order")
            oks = ", ".join(f"{name} ok={counts['ok']}" for name, counts in audit.stores.items())
            print(f"audit: {'consistent' if audit.consistent else 'INCONSISTENT'} ({oks})")
            assert audit.consistent and all(c["ok"] == 1 for c in audit.stores.values())

            # drift in the search index, found by content and repaired from PostgreSQL
            es.update(index=index, id=str(order_id), doc={"status": "shipped"}, refresh=True)
            drift = forge.audit("order")
            found = [(f.store, f.kind, f.fields) for f in drift.findings]
            print(f"by hand: the index says status=shipped -> {found}")
            assert found == [("elasticsearch", "stale", ("status",))]
            forge.audit("order", repair=True)
            es.indices.refresh(index=index)
            hits = es.search(index=index, query={"match": {"searchable_text": "SKU-2"}})["hits"]["hits"]
            final = forge.audit("order")
            print(f"after repair: the index says status={hits[0]['_source']['status']}; "
                  f"audit: {'consistent' if final.consistent else 'INCONSISTENT'}")
            assert final.consistent and hits[0]["_source"]["status"] == "pending"
        finally:
            for h in forge.stores:
                if "delete" in h.adapter.capabilities and not h.adapter.append_only:
                    h.adapter.delete_many("order", [forge.id_for("order", data=order)])
            forge.stores[0].adapter.drop("order")  # type: ignore[attr-defined]
            forge.close()
            if MONGO:
                from pymongo import MongoClient

                client = MongoClient(MONGO)
                client.get_default_database().drop_collection(f"orders_{run}")
                client.close()
            drop_run_tables(PG, f"ex{run}_", owners_existed)
            es.indices.delete(index=index, ignore_unavailable=True)
            leftover = list(cache.scan_iter(match=f"{prefix}:*"))
            if leftover:
                cache.delete(*leftover)
            cache.close()
            channel.queue_delete(f"{exchange}.history")
            channel.exchange_delete(exchange)
            amqp.close()
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
