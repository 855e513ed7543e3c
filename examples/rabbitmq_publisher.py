"""The seed's RabbitMQ publisher, in its own layout, beside uuid-forge.

What the seed (uuid-forge 0.1) did: a ``MessagePublisher`` published each event with pika's
``basic_publish`` on its own exchange, ``routing_key`` = the event type (``order.created``), the
event as a ``json.dumps`` body and a ``correlation_id`` property. Its consumers bind a queue to
the event type. A publish retried after a timeout was a second, indistinguishable message.

What uuid-forge adds, in that same layout (RabbitMQ store options ``exchange=`` the seed's
existing exchange, declared passively; ``routing_key={event}``; ``event=order.created``; the
order's data as the body): ``correlation_id`` = the order's deterministic ID and ``message_id``
= a deterministic event ID, so a retried publish carries the same message_id and a consumer
drops the duplicates. A history stream bound to the exchange keeps every message, the seed's
too, so an audit compares what was last announced per order with the database of record: an
order announced with other data is ``stale`` with the field named, and repair announces the
database's order again.

Below, the seed's publisher (raw pika) and a raw pika consumer run beside uuid-forge; the consumer
gets the seed's message and uuid-forge's in one shape. The exchange, queue and stream are per run
and deleted at the end; the database of record is a SQLite file in a temporary directory.

    pip install "uuid-forge[rabbitmq]"
    UUID_FORGE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F python examples/rabbitmq_publisher.py
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import uuid
from typing import Any

import pika
from uuid_forge.adapters.rabbitmq import event_id

from uuid_forge import EntityType, Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

URL = os.environ.get("UUID_FORGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
EVENT = "order.created"


class MessagePublisher:
    """The seed's publisher, with pika: its exchange, routing_key = the event type, a JSON body."""

    def __init__(self, channel: Any, exchange: str) -> None:
        self.order_generator = UUIDGenerator(IDConfig(namespace=Namespace("orders"), salt="v1"))
        self.channel = channel
        self.exchange = exchange

    def publish_order_event(self, order: dict[str, Any], event_type: str) -> str:
        correlation_id = str(self.order_generator.generate("order", order_number=order["order_number"]))
        self.channel.basic_publish(exchange=self.exchange, routing_key=event_type, body=json.dumps(order),
                                   properties=pika.BasicProperties(correlation_id=correlation_id,
                                                                   content_type="application/json"))
        return correlation_id


def main() -> None:
    run = uuid.uuid4().hex[:8]
    exchange = f"uf_example_orders_{run}"
    work = tempfile.mkdtemp(prefix="uf-publisher-")
    atexit.register(shutil.rmtree, work, True)  # the database of record and the journal: gone on any exit
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    channel = conn.channel()
    channel.confirm_delivery()
    channel.exchange_declare(exchange, "direct", durable=True)  # the shop's exchange, as it exists
    queue = channel.queue_declare("", exclusive=True).method.queue  # the shop's consumer
    channel.queue_bind(queue, exchange, EVENT)
    seed = MessagePublisher(channel, exchange)

    store = open_store(f"{URL}{'&' if '?' in URL else '?'}exchange={exchange}", routing_key="{event}", event=EVENT)
    forge = Forge([StoreHandle("db", open_store(f"sqlite:///{work}/orders.db"), source=True),
                   StoreHandle("rabbitmq", store)],
                  types=[EntityType("order", key=("order_number",), namespace=Namespace("orders"), salt="v1")],
                  journal=Journal(f"{work}/journal.sqlite3"))
    older = {"order_number": "ORD-2024-0041", "total_cents": 1250, "status": "paid"}
    order = {"order_number": "ORD-2024-0042", "total_cents": 9990, "status": "paid"}
    try:
        store.ping()  # connects: the exchange is found (passively) and the history stream bound to it
        # 1. the seed publishes an order it created before uuid-forge (the database holds it too)
        forge.source.adapter.put_many(forge.records([("order", older)]))
        seed_id = seed.publish_order_event(older, EVENT)
        print(f"seed:       basic_publish {exchange} routing_key={EVENT} correlation_id={seed_id}")

        # 2. uuid-forge writes a new order through; the publish is retried twice (timeouts)
        order_id = forge.id_for("order", data=order)
        assert str(forge.id_for("order", data=older)) == seed_id  # one ID scheme on both sides
        fp = forge.records([("order", order)])[0].fingerprint
        for attempt in range(1, 4):
            forge.write("order", order)
            print(f"uuid-forge: publish attempt {attempt}: correlation_id={order_id} "
                  f"message_id={event_id(order_id, EVENT, fp)}")

        # 3. the shop's consumer (raw pika) drops what it has already processed, by message_id
        processed: set[str] = set()
        handled: list[dict[str, Any]] = []
        received = 0
        for method, props, body in channel.consume(queue, inactivity_timeout=10):
            if method is None:
                raise SystemExit("the queue went quiet before all 4 messages arrived")
            channel.basic_ack(method.delivery_tag)
            received += 1
            if props.message_id is not None and props.message_id in processed:
                print(f"consumer:   message {props.message_id} already processed, dropped")
            else:
                if props.message_id is not None:
                    processed.add(props.message_id)
                data = json.loads(body)  # the body is the order itself, from either publisher
                handled.append(data)
                print(f"consumer:   processing {method.routing_key} for {data['order_number']} "
                      f"(correlation_id {props.correlation_id}, message_id {props.message_id})")
            if received == 4:
                break
        channel.cancel()
        assert received == 4 and handled == [older, order], (received, handled)
        print(f"{received} deliveries, {len(handled)} orders processed: the seed's and uuid-forge's in one shape")

        # 4. the audit reads the history stream, the seed's message too, and compares it with the database
        report = forge.audit("order")
        print(f"audit:      {report.stores['rabbitmq']['ok']} orders announced as the database holds them, "
              f"consistent: {report.consistent}")
        assert report.consistent and report.stores["rabbitmq"]["ok"] == 2

        # 5. the seed announces the older order again with a status the database does not hold
        seed.publish_order_event({**older, "status": "refunded"}, EVENT)
        report = forge.audit("order")
        found = [(f.kind, f.id, f.fields) for f in report.findings]
        print(f"seed:       re-published {older['order_number']} as refunded -> audit: {found[0][0]}, "
              f"fields {found[0][2]}")
        assert found == [("stale", seed_id, ("status",))]
        repaired = forge.audit("order", repair=True)
        final = forge.audit("order")
        print(f"repair:     re-announced {repaired.repaired['rabbitmq']['rewritten']} from the database; "
              f"after repair: consistent: {final.consistent}")
        # a message log cannot be read by ID, so the repair's own re-check keeps the finding; audit again
        assert not repaired.repair_errors and repaired.repaired["rabbitmq"]["rewritten"] == 1
        assert final.consistent
    finally:
        try:
            forge.close()
        finally:
            channel.queue_delete(store.stream)
            channel.exchange_delete(exchange)
            conn.close()


if __name__ == "__main__":
    main()
