"""Hand-written pika baseline for the RabbitMQ adapter: the same exchange, stream and messages, in
the adapter's default layout (``layout=data``: the body is the entity's data as JSON,
``correlation_id`` = the entity ID, ``type`` = the event, header ``x-entity-type`` = the type,
routing key ``{entity_type}.{event}``).

put_many is what pika documents for reliable publishing: a BlockingChannel in confirm mode,
``basic_publish(mandatory=True)`` per message (each call waits for its confirm). get_many reads
the history stream from the first offset (basic_consume, prefetch 1000, acks every 250) and
counts the wanted entity IDs, stopping when all are found or the stream stays quiet for a second.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pika.exceptions

from uuid_forge.record import Record

EVENT = "upserted"


def setup(url: str) -> dict[str, Any]:
    exchange = f"uf_bench_hand_{uuid.uuid4().hex[:10]}"
    stream = f"{exchange}.history"
    params = pika.URLParameters(urlunsplit(urlsplit(url)._replace(query="")))
    conn = pika.BlockingConnection(params)
    channel = conn.channel()
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
    channel.queue_bind(stream, exchange, "#")
    channel.confirm_delivery()
    return {"conn": conn, "params": params, "channel": channel, "exchange": exchange, "stream": stream}


def put_many(ctx: dict[str, Any], entity_type: str, records: list[Record]) -> None:
    channel, exchange = ctx["channel"], ctx["exchange"]
    routing_key = f"{entity_type}.{EVENT}"
    now = int(time.time())
    for r in records:
        ident = str(r.id)
        message_id = uuid.uuid5(r.id, json.dumps(["uuid-forge-event/1", EVENT, r.fingerprint], separators=(",", ":")))
        channel.basic_publish(exchange, routing_key, r.data_json.encode(), pika.BasicProperties(
            content_type="application/json", delivery_mode=2, correlation_id=ident,
            message_id=str(message_id), type=EVENT, timestamp=now, headers={"x-entity-type": entity_type}),
            mandatory=True)  # raises UnroutableError / NackError


def get_many(ctx: dict[str, Any], entity_type: str, ids: list[uuid.UUID]) -> int:
    wanted, found = set(ids), set()
    conn = pika.BlockingConnection(ctx["params"])  # its own: stopping a stream consumer early can close it
    channel = conn.channel()
    channel.basic_qos(prefetch_count=1000)
    state = {"seen": 0, "unacked": 0}

    def on_message(ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        state["seen"] += 1
        state["unacked"] += 1
        if state["unacked"] >= 250:
            ch.basic_ack(method.delivery_tag, multiple=True)
            state["unacked"] = 0
        if (props.headers or {}).get("x-entity-type") == entity_type and props.correlation_id:
            ident = uuid.UUID(props.correlation_id)
            if ident in wanted:
                found.add(ident)

    channel.basic_consume(ctx["stream"], on_message, arguments={"x-stream-offset": "first"})
    try:
        quiet_since = time.monotonic()
        while len(found) < len(wanted):
            before = state["seen"]
            conn.process_data_events(time_limit=1.0)
            if state["seen"] != before:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 1.0:
                break  # quiet for a second: the end of the stream
    finally:
        try:
            conn.close()
        except pika.exceptions.AMQPError:
            pass  # cancelling rejects in-flight deliveries, which a stream answers with 540
    return len(found)


def teardown(ctx: dict[str, Any], entity_type: str) -> None:
    channel = ctx["conn"].channel()
    channel.queue_delete(ctx["stream"])
    channel.exchange_delete(ctx["exchange"])
    ctx["conn"].close()
