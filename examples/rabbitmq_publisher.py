"""RabbitMQ publisher with correlation IDs: a retried publish carries the same message_id.

In the publisher's own layout: its existing exchange (here a direct one), routing key = the event
type (``routing_key={event}``, ``event=order.created``), the order's data as the JSON body. The
order's deterministic UUID is the message's ``correlation_id``; its ``message_id`` is the event ID,
derived from the order ID, the event name and the fingerprint of the order's data. A publisher
that retries (a timeout, a crash before the confirm) sends the very same message_id, so a
consumer that remembers the message_ids it has processed handles the event once.

    pip install "uuid-forge[rabbitmq]"
    UUID_FORGE_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F python examples/rabbitmq_publisher.py
"""

from __future__ import annotations

import json
import os
import uuid

import pika
from uuid_forge.adapters.rabbitmq import event_id

from uuid_forge import IDConfig, Namespace, Record, UUIDGenerator, open_store

URL = os.environ.get("UUID_FORGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def main() -> None:
    ids = UUIDGenerator(IDConfig(namespace=Namespace("orders.example.com"), salt="example-v1"))
    order_id = ids.generate("order", order_number="ORD-2024-0042")
    order = Record("order", order_id, {"order_number": "ORD-2024-0042", "total": "99.90", "status": "paid"},
                   {"order_number": "ORD-2024-0042"})

    exchange = f"uf_example_{uuid.uuid4().hex[:8]}"  # the shop's exchange and its consumer's queue
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    channel = conn.channel()
    channel.exchange_declare(exchange, "direct", durable=True)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, "order.created")
    store = open_store(f"{URL}{'&' if '?' in URL else '?'}exchange={exchange}", routing_key="{event}",
                       event="order.created")
    try:
        print(f"order ORD-2024-0042 -> id {order_id}")
        for attempt in range(1, 4):  # the publisher retries twice, e.g. after timeouts
            store.put_many([order])
            print(f"publish attempt {attempt}: correlation_id={order_id} "
                  f"message_id={event_id(order_id, 'order.created', order.fingerprint)}")

        # The shop's consumer, bound to order.created, drops what it has already processed.
        processed: set[str] = set()
        received = 0
        for method, props, body in channel.consume(queue, inactivity_timeout=10):
            if method is None:
                raise SystemExit("the queue went quiet before all 3 messages arrived")
            channel.basic_ack(method.delivery_tag)
            received += 1
            if props.message_id in processed:
                print(f"consumer: message {props.message_id} already processed, dropped")
            else:
                processed.add(props.message_id)
                data = json.loads(body)  # the body is the order itself
                print(f"consumer: processing {method.routing_key} for order {data['order_number']} "
                      f"(correlation_id {props.correlation_id})")
            if received == 3:
                break
        channel.cancel()
        assert received == 3 and len(processed) == 1, (received, processed)
        print(f"3 deliveries, 1 distinct message_id, processed once; the history stream holds "
              f"{store.count('order')} order")
    finally:
        try:
            store.close()
        finally:
            channel.queue_delete(store.stream)
            channel.exchange_delete(exchange)
            conn.close()


if __name__ == "__main__":
    main()
