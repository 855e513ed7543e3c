"""Correlation IDs end to end: a retry storm through real RabbitMQ, deduplicated in real Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
import pika
from uuid_forge.adapters.rabbitmq import MARKER_TYPE

from uuid_forge import Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.messaging import IdempotentConsumer


def read_stream(amqp_url: str, stream: str, count: int) -> list[tuple[pika.BasicProperties, bytes]]:
    """The first ``count`` event messages of a stream queue, read with the raw driver."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=100)
        got: list[tuple[pika.BasicProperties, bytes]] = []
        for method, props, body in channel.consume(stream, arguments={"x-stream-offset": "first"},
                                                   inactivity_timeout=10):
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            if props.type != MARKER_TYPE:
                got.append((props, body))
            if len(got) == count:
                break
        return got
    finally:
        conn.close()


@pytest.fixture
def exchange(amqp_url: str) -> Iterator[str]:
    name = f"uf_test_msg_{uuid.uuid4().hex[:8]}"
    yield name
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = conn.channel()
    channel.queue_delete(f"{name}.history")
    channel.exchange_delete(name)
    conn.close()


def test_retry_storm_is_processed_exactly_once(amqp_url: str, redis_url: str, exchange: str, tmp_path: Path) -> None:
    forge = Forge([StoreHandle("db", open_store(f"sqlite:///{tmp_path}/db.sqlite3"), source=True),
                   StoreHandle("events", open_store(f"{amqp_url}?exchange={exchange}"))],
                  ids=IDConfig(namespace=Namespace("orders.test"), salt="storm"),
                  journal=Journal(tmp_path / "journal.sqlite3"))
    key, data = {"region": "EUR", "number": 7}, {"total": 12.5}
    try:
        for _ in range(3):  # the same event, published three times (client retries after timeouts)
            forge.write("order", key, data)
        forge.write("order", key, {"total": 13.0})  # a real change: a new event
    finally:
        forge.close()
    messages = read_stream(amqp_url, f"{exchange}.history", 4)
    assert len(messages) == 4
    order_id = UUIDGenerator(IDConfig(namespace=Namespace("orders.test"), salt="storm")).generate("order", **key)
    assert {p.correlation_id for p, _ in messages} == {str(order_id)}
    assert len({p.message_id for p, _ in messages[:3]}) == 1
    assert messages[3][0].message_id != messages[0][0].message_id

    consumer = IdempotentConsumer(redis_url, ttl=300, namespace=f"uf:test:{exchange}")
    handled: list[str] = []
    try:
        for props, body in messages:
            consumer.handle(props.message_id, lambda body=body: handled.append(body.decode()))
        assert len(handled) == 2  # the first copy of the stormed event, and the changed one
        assert consumer.processed == 2 and consumer.duplicates == 2
        # a consumer restart re-reads the stream: nothing is processed twice within the TTL
        again = IdempotentConsumer(redis_url, ttl=300, namespace=f"uf:test:{exchange}")
        for props, _ in messages:
            again.handle(props.message_id, lambda: handled.append("again"))
        assert len(handled) == 2 and again.duplicates == 4
        again.close()
    finally:
        for props, _ in messages:
            consumer.forget(props.message_id)
        consumer.close()


def test_failed_handler_releases_its_claim(redis_url: str) -> None:
    consumer = IdempotentConsumer(redis_url, ttl=60, namespace=f"uf:test:{uuid.uuid4().hex[:8]}")
    message_id = str(uuid.uuid4())

    def boom() -> None:
        raise RuntimeError("handler failed")

    try:
        with pytest.raises(RuntimeError):
            consumer.handle(message_id, boom)
        assert consumer.handle(message_id, lambda: "done") == "done"  # the redelivery is processed
        assert consumer.handle(message_id, lambda: "twice") is None
    finally:
        consumer.forget(message_id)
        consumer.close()
