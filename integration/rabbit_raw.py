"""RabbitMQ read and written with plain pika, as another program sees it: the tests' probe of
what the adapter really published, and their way of planting messages the adapter did not write.

Test code only (a stream has no end, so a read stops when the stream has been quiet for
``quiet`` seconds; the adapter itself never guesses an end by waiting).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions

__all__ = ["QUIET", "connect", "drop", "exists", "publish", "read_stream"]

QUIET = 2.0  # seconds without a delivery after which a raw read of a stream is complete

Message = tuple[Any, Any, bytes]  # (method, properties, body) as pika delivers them


def connect(url: str) -> pika.BlockingConnection:
    """A plain pika connection (adapter options in the URL's query are left out)."""
    return pika.BlockingConnection(pika.URLParameters(url.split("?")[0]))


def drop(url: str, exchange: str, stream: str) -> None:
    """Delete a test's own exchange and stream queue (both deletes are idempotent)."""
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.queue_delete(stream)
        channel.exchange_delete(exchange)
    finally:
        conn.close()


def exists(url: str, kind: str, name: str) -> bool:
    """Whether the broker has the exchange or queue ``name`` (``kind``: "exchange" or "queue"),
    asked by a passive declare, which creates nothing."""
    conn = connect(url)
    try:
        channel = conn.channel()
        try:
            if kind == "exchange":
                channel.exchange_declare(name, passive=True)
            else:
                channel.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code == 404:
                return False
            raise
        return True
    finally:
        conn.close()


def read_stream(url: str, stream: str, *, offset: str = "first", quiet: float = QUIET,
                prefetch: int = 500) -> Iterator[Message]:
    """Every message of ``stream`` from ``offset`` ("first", "last"...), acknowledged as read,
    until the stream has been quiet for ``quiet`` seconds (or the caller stops iterating)."""
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=prefetch)
        for method, props, body in channel.consume(stream, arguments={"x-stream-offset": offset},
                                                   inactivity_timeout=quiet):
            if method is None:
                return
            channel.basic_ack(method.delivery_tag)
            yield method, props, body
    finally:
        conn.close()


def publish(url: str, exchange: str, routing_key: str, body: bytes, props: pika.BasicProperties) -> None:
    """One confirmed, mandatory publish, as another program (or a bug) would send it."""
    conn = connect(url)
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        channel.basic_publish(exchange, routing_key, body, props, mandatory=True)
    finally:
        conn.close()
