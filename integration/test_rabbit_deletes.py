"""Delete events on a real RabbitMQ, and the audit of a stream that holds them (issue 19).

A delete publishes one event per ID to the exchange (so into the history stream too): a
deterministic message_id from the deletion's token, the ID as correlation_id, the delete event as
type and routing key, the header x-deleted, no entity data. A deleted entity's history ends with its
delete event, so the nightly audit after a delete is consistent; a stream that still holds an
entity the source lacks, with no delete event, keeps it and says why and what to do. The audit
writes nothing into a stream the user names. Every test has its own exchange and streams.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing, run_cli, write_forge_toml

pytest.importorskip("pika", reason=driver_missing("pika"))
import pika
from uuid_forge.adapters.rabbitmq import DELETED_HEADER, RabbitMQAdapter

from uuid_forge import Forge, IDConfig, Namespace, Record, open_store
from uuid_forge.errors import StoreConfigError
from uuid_forge.events import event_id
from uuid_forge.forge import StoreHandle
from uuid_forge.testing.contract import sample_records

from .rabbit_raw import connect, drop, read_stream
from .test_rabbitmq import _url, raw_messages

IDS = IDConfig(namespace=Namespace("rabbit-deletes.uuid-forge.test"), salt="rabbit-deletes")
TOKEN = "2026-12-06T20:00:00.000000Z"  # as write-through passes it: the tombstone's time


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:10]
    yield {"exchange": f"uf_test_del_{tag}", "type": f"del{tag}"}


@pytest.fixture
def exchange(amqp_url: str, names: dict[str, str]) -> Iterator[str]:
    yield names["exchange"]
    drop(amqp_url, names["exchange"], f"{names['exchange']}.history")


def _watch(amqp_url: str, exchange: str) -> tuple[pika.BlockingConnection, Any, str]:
    """A consumer's own classic queue bound to the exchange for every routing key (topic)."""
    conn = connect(amqp_url)
    channel = conn.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, exchange, "#")
    return conn, channel, queue


def _got(channel: Any, queue: str) -> list[tuple[Any, Any, bytes]]:
    out = []
    while True:
        method, props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((method, props, body))


def last_offset(amqp_url: str, stream: str) -> int | None:
    """The stream's last offset as a reader at "last" sees it once the stream is quiet (a test's
    probe: the adapter never guesses the end by waiting)."""
    offsets = [props.headers["x-stream-offset"] for _, props, _ in read_stream(amqp_url, stream, offset="last")]
    return max(offsets, default=None)


@pytest.mark.parametrize("layout", ["data", "envelope"])
def test_delete_event_on_the_exchange_and_in_the_stream(amqp_url: str, exchange: str, names: dict[str, str],
                                                        layout: str) -> None:
    et = names["type"]
    with RabbitMQAdapter(amqp_url, exchange=exchange, layout=layout) as store:
        record = _records(et, 1)[0]
        store.put_many([record])
        conn, channel, queue = _watch(amqp_url, exchange)
        try:
            assert store.delete_many(et, [record.id], token=TOKEN) == 1
            ((method, props, body),) = _got(channel, queue)
        finally:
            conn.close()
        _assert_delete_event(method, props, body, et, record.id, layout)
        assert method.exchange == exchange and method.routing_key == f"{et}.deleted"
        # the stream got it too, after the write
        (_, (s_method, s_props, s_body)) = raw_messages(amqp_url, store.stream, str(record.id), count=2)
        _assert_delete_event(s_method, s_props, s_body, et, record.id, layout)
        assert dict(store.scan(et)) == {}  # its history ends with the delete event: not held


def _assert_delete_event(method: Any, props: Any, body: bytes, et: str, ident: uuid.UUID, layout: str) -> None:
    rebuilt = uuid.uuid5(ident, json.dumps(["uuid-forge-event/1", "deleted", TOKEN], separators=(",", ":")))
    assert props.message_id == str(rebuilt) == str(event_id(ident, "deleted", TOKEN))
    assert props.correlation_id == str(ident)
    assert props.type == ("deleted" if layout == "data" else f"{et}.deleted")
    assert props.delivery_mode == 2
    headers = {k: v for k, v in props.headers.items() if k != "x-stream-offset"}
    assert headers.pop(DELETED_HEADER) is True and headers.pop("x-entity-type") == et
    if layout == "data":
        assert body == b"" and headers == {}  # no entity data in a delete event
    else:
        assert json.loads(body) == {"id": str(ident), "entity_type": et, "event": "deleted"}
        assert headers == {"x-id-scheme": "uuid-forge/1"}


def test_a_retry_carries_the_same_message_id_and_a_later_deletion_a_new_one(
        amqp_url: str, exchange: str, names: dict[str, str]) -> None:
    et = names["type"]
    with RabbitMQAdapter(amqp_url, exchange=exchange) as store:
        record = _records(et, 1)[0]
        store.ping()  # connects: the exchange is declared
        conn, channel, queue = _watch(amqp_url, exchange)
        try:
            store.delete_many(et, [record.id], token=TOKEN)
            store.delete_many(et, [record.id], token=TOKEN)  # the same deletion retried (replay)
            store.put_many([record])  # re-created
            store.delete_many(et, [record.id], token="2026-12-07T08:00:00.000000Z")  # and deleted again
            ids = [props.message_id for _, props, _ in _got(channel, queue) if props.type == "deleted"]
        finally:
            conn.close()
        first = str(event_id(record.id, "deleted", TOKEN))
        assert ids[:2] == [first, first] and len(ids) == 3 and ids[2] != first


def test_delete_events_route_on_a_direct_exchange_by_event(amqp_url: str, exchange: str,
                                                           names: dict[str, str]) -> None:
    """A publisher that routes by event type: the delete event gets its own routing key, which the
    stream is bound with before the first one goes out."""
    et = names["type"]
    with RabbitMQAdapter(amqp_url, exchange=exchange, exchange_type="direct", routing_key="{event}",
                         event="order.created", delete_event="order.deleted") as store:
        records = _records(et, 2)
        store.put_many(records)
        store.delete_many(et, [records[0].id], token=TOKEN)
        ((_, props, _), (method, deleted, _)) = raw_messages(amqp_url, store.stream, str(records[0].id), count=2)
        assert props.type == "order.created" and deleted.type == "order.deleted"
        assert method.routing_key == "order.deleted"
        assert [i for i, _ in store.scan(et)] == [records[1].id]


@pytest.fixture
def forge(postgres_url: str, amqp_url: str, names: dict[str, str], exchange: str) -> Iterator[Forge]:
    f = Forge([StoreHandle("postgres", open_store(postgres_url), source=True),
               StoreHandle("rabbitmq", open_store(_url(amqp_url, exchange=exchange)))], ids=IDS, journal=None)
    yield f
    f.source.adapter.drop(names["type"])
    f.close()


def _delete(f: Forge, et: str, ids: list[uuid.UUID], token: str = TOKEN) -> None:
    """What write-through's delete does to these two stores (source first), until Forge.delete lands."""
    f.source.adapter.delete_many(et, ids, token=token)
    f.stores[1].adapter.delete_many(et, ids, token=token)


def test_the_nightly_audit_after_a_delete_is_consistent_and_a_later_write_is_held_again(
        forge: Forge, names: dict[str, str]) -> None:
    et = names["type"]
    items = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}"}) for i in range(3)]
    assert forge.write_many(items).complete
    gone = forge.records(items)[0]
    _delete(forge, et, [gone.id])
    report = forge.audit(et)
    assert report.consistent and not report.findings, report.findings
    assert report.stores["rabbitmq"]["ok"] == 2
    assert forge.write_many(items[:1]).complete  # re-created after the delete: held again
    report = forge.audit(et)
    assert report.consistent and report.stores["rabbitmq"]["ok"] == 3


def test_an_orphan_without_a_delete_event_is_kept_with_the_reason_and_no_event_is_published(
        forge: Forge, names: dict[str, str], amqp_url: str) -> None:
    et = names["type"]
    items = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}"}) for i in range(3)]
    assert forge.write_many(items).complete
    gone = forge.records(items)[0]
    forge.source.adapter.delete_many(et, [gone.id])  # the row deleted in the source by hand
    report = forge.audit(et, repair=True, delete_orphans=True)
    (finding,) = report.findings
    assert finding.kind == "orphan" and finding.store == "rabbitmq"
    assert "append-only" in finding.detail and f"uuid-forge delete --entity {et} --id {gone.id} --force" in finding.detail
    (row,) = [r for r in report.plan.rows if r.store == "rabbitmq"]
    assert row.delete == 0 and row.keep == 1 and "publishes no delete event" in (row.keep_reason or "")
    stream = forge.stores[1].adapter.stream  # type: ignore[attr-defined]
    assert [p.type for _, p, _ in _messages_of(amqp_url, stream, str(gone.id))] == ["upserted"]  # no delete event
    assert not forge.audit(et).consistent  # exit 1 until the delete event is published ...
    forge.stores[1].adapter.delete_many(et, [gone.id], token=TOKEN)  # ... as the finding says
    assert forge.audit(et).consistent


def test_the_audit_writes_nothing_into_a_users_stream(forge: Forge, names: dict[str, str], amqp_url: str,
                                                     exchange: str) -> None:
    et = names["type"]
    theirs = f"{exchange}.theirs"
    forge.stores[1].adapter.ping()  # connects: the exchange is declared
    conn = connect(amqp_url)
    try:
        channel = conn.channel()
        channel.queue_declare(theirs, durable=True, arguments={"x-queue-type": "stream"})
        channel.queue_bind(theirs, exchange, "#")  # the user's own history of the same exchange
        items = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}"}) for i in range(3)]
        assert forge.write_many(items).complete
        _delete(forge, et, [forge.records(items)[0].id])
        before = last_offset(amqp_url, theirs)
        assert before is not None
        assert forge.audit(et).consistent  # uuid-forge's own stream: its end marker goes there alone
        store = RabbitMQAdapter(_url(amqp_url, exchange=exchange, stream=theirs))
        with store, pytest.raises(StoreConfigError, match="without writing to it.*marker=true"):
            list(store.scan(et))  # AMQP 0-9-1 cannot find a stream's end without a write: refused
        assert last_offset(amqp_url, theirs) == before  # not one message more
    finally:
        conn.channel().queue_delete(theirs)
        conn.close()


def _messages_of(amqp_url: str, stream: str, correlation_id: str) -> list[tuple[Any, Any, bytes]]:
    """Every message of ``correlation_id`` in the stream (read until it is quiet: test code only)."""
    return [m for m in read_stream(amqp_url, stream) if m[1].correlation_id == correlation_id]


def _records(et: str, n: int) -> list[Record]:
    return sample_records(et, n)


def test_the_nightly_audit_command_exits_0_after_a_delete_and_1_with_the_reason_without_one(
        tmp_path: Path, postgres_url: str, amqp_url: str, names: dict[str, str], exchange: str) -> None:
    et, tag = names["type"], names["type"]
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": {"url": postgres_url, "options": {"prefix": f"{tag}_"}},
        "log": _url(amqp_url, exchange=exchange)}, "db", namespace="rabbit-deletes-cli.uuid-forge.test")
    forge = Forge.from_config(str(config))
    try:
        items = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}"}) for i in range(3)]
        assert forge.write_many(items).complete
        first, second = (r.id for r in forge.records(items)[:2])
        _delete(forge, et, [first])
        code, out, err = run_cli(["audit", "-c", str(config), "--entity", et])
        assert code == 0, out + err
        forge.source.adapter.delete_many(et, [second])  # by hand in the source: the stream still holds it
        code, out, err = run_cli(["audit", "-c", str(config), "--entity", et, "--json"])
        assert code == 1, out + err
        (finding,) = json.loads(out)["findings"]
        assert finding["class"] == "orphan" and f"uuid-forge delete --entity {et} --id {second} --force" in finding["detail"]
        code, out, err = run_cli(["audit", "-c", str(config), "--entity", et, "--repair", "--delete-orphans"])
        assert code == 1 and "publishes no delete event" in out + err, out + err
    finally:
        forge.source.adapter.drop(et)
        forge.close()


def test_a_delete_event_of_the_users_own_publisher_counts(amqp_url: str, exchange: str, names: dict[str, str]) -> None:
    """No x-entity-type header: the routing key says whose it is, its type that it is a delete."""
    et = names["type"]
    with RabbitMQAdapter(amqp_url, exchange=exchange) as store:
        kept, gone = _records(et, 2)
        store.put_many([kept, gone])
        conn = connect(amqp_url)
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            for routing_key, kind in ((f"{et}.upserted", "deleted"), (f"{et}.deleted", "deleted")):
                channel.basic_publish(exchange, routing_key, b"", pika.BasicProperties(
                    correlation_id=str(gone.id if routing_key.endswith("deleted") else kept.id), type=kind,
                    message_id=str(uuid.uuid4()), delivery_mode=2), mandatory=True)
        finally:
            conn.close()
        # the first, a delete type under the write's routing key, is not this type's message at all
        assert dict(store.scan(et)) == {kept.id: kept.fingerprint}
