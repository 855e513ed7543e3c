"""Issue 11, RabbitMQ: the user's exchange (any type), a routing-key template, the data as the body.

Against the real broker: every test has its own exchange and stream (``uf_lay_<random>``),
deleted afterwards. What the broker holds is checked with plain pika (a consumer of the stream, or
of a queue bound as the user's own consumer would bind it), never through the adapter.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
import pika
import pika.exceptions
from uuid_forge.adapters.rabbitmq import LAYOUTS, MARKER_TYPE, DataLayout, EnvelopeLayout, RabbitMQAdapter, event_id

from uuid_forge import Forge, IDConfig, Namespace, Record
from uuid_forge.audit import audit
from uuid_forge.canonical import canonical
from uuid_forge.errors import OptionError, StoreError, StoreUnavailableError, ValidationError
from uuid_forge.record import load_json

from .rabbit_raw import QUIET, connect, drop, read_stream
from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("layouts.rabbit.uuid-forge.test"), salt="rabbit-layouts")


@pytest.fixture
def names(amqp_url: str) -> Iterator[dict[str, str]]:
    """An exchange and stream of this test's own, removed afterwards with the raw driver."""
    name = f"uf_lay_{uuid.uuid4().hex[:10]}"
    yield {"exchange": name, "stream": f"{name}.history"}
    drop(amqp_url, name, f"{name}.history")


def stream_messages(amqp_url: str, stream: str) -> list[tuple[Any, Any, bytes]]:
    """Every message in the stream (markers left out), oldest first, read with plain pika."""
    return [m for m in read_stream(amqp_url, stream) if m[1].type != MARKER_TYPE]


def latest_bodies(amqp_url: str, stream: str) -> dict[str | None, Any]:
    """The parsed body of the latest message per correlation_id in the stream (raw read)."""
    return {props.correlation_id: load_json(body) for _, props, body in stream_messages(amqp_url, stream)}


def seed_publish(channel: Any, exchange: str, routing_key: str, correlation_id: str | None, data: Any) -> None:
    """A message as the seed's publisher wrote it: its exchange, routing_key = the event type, a
    json.dumps body (keys reversed, spaces: not canonical text), correlation_id = the entity ID, no
    uuid-forge header."""
    body = json.dumps(dict(reversed(list(data.items()))) if isinstance(data, dict) else data)
    channel.basic_publish(exchange, routing_key, body.encode(), pika.BasicProperties(
        correlation_id=correlation_id, content_type="application/json", delivery_mode=2), mandatory=True)


def forge_with(store: RabbitMQAdapter, tmp_path: Path) -> Forge:
    return make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("rabbitmq", store), ids=IDS)


# -- the default layout ------------------------------------------------------------------------
def test_default_layout_round_trips_every_value_kind(amqp_url: str, names: dict[str, str], tmp_path: Path) -> None:
    ref = uuid.UUID("12345678-1234-5678-1234-567812345678")
    data = {"email": "zoë@example.com", "name": "Zoë 東京 ✓",
            "when": dt.datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "price": decimal.Decimal("1234567890.1234567890"), "n": 2**70, "ratio": 0.1, "ref": ref,
            "nested": {"a": [1, {"b": None}], "c": {"d": "e"}}, "tags": ["x", "y"], "ok": True, "none": None}
    store = RabbitMQAdapter(amqp_url, exchange=names["exchange"])
    with forge_with(store, tmp_path) as forge:
        forge.write("user", {"email": data["email"]}, data)
        record = forge.records([("user", {"email": data["email"]}, data)])[0]
        assert audit(forge, "user").consistent
        assert dict(store.scan("user")) == {record.id: record.fingerprint}
    ((method, props, body),) = stream_messages(amqp_url, names["stream"])
    assert body == record.data_json.encode()  # the data, as canonical JSON, and nothing else
    got = load_json(body)
    assert canonical(got) == canonical(data)
    assert got["when"] == "2024-05-06T07:08:09.123456Z"  # UTC text
    assert got["price"] == decimal.Decimal("1234567890.1234567890") and got["n"] == 2**70  # every digit
    assert float(got["ratio"]) == 0.1 and got["ref"] == str(ref) and got["nested"] == {"a": [1, {"b": None}], "c": {"d": "e"}}
    assert (got["tags"], got["ok"], got["none"], got["name"]) == (["x", "y"], True, None, "Zoë 東京 ✓")
    assert props.correlation_id == str(record.id) and props.type == "upserted"
    assert props.message_id == str(event_id(record.id, "upserted", record.fingerprint))
    assert props.headers["x-entity-type"] == "user" and "x-fingerprint" not in props.headers
    assert method.routing_key == "user.upserted" and method.exchange == names["exchange"]


# -- seed-era messages: the user's own publisher, its exchange and routing keys ------------------
def test_seed_publisher_messages_are_audited_and_repaired_in_their_shape(
        amqp_url: str, names: dict[str, str], tmp_path: Path) -> None:
    exchange, event = names["exchange"], "order.created"
    seed = connect(amqp_url)
    try:
        channel = seed.channel()
        channel.confirm_delivery()
        # the seed's exchange: direct and not durable (declaring it durable again would close the channel)
        channel.exchange_declare(exchange, "direct", durable=False)
        consumer = channel.queue_declare("", exclusive=True).method.queue  # the seed's own consumer
        channel.queue_bind(consumer, exchange, event)
        store = RabbitMQAdapter(amqp_url, exchange=exchange, routing_key="{event}", event=event)
        with forge_with(store, tmp_path) as forge:
            store.ping()  # connects: the stream is declared and bound to the seed's key
            rows = [("order", {"number": f"ORD-{i}"}, {"number": f"ORD-{i}", "email": f"c{i}@example.com",
                                                       "total": decimal.Decimal(f"{i}.50"), "status": "paid"})
                    for i in range(12)]
            records = forge.records(rows)
            forge.source.adapter.put_many(records)
            edited, removed, renumbered, absent = records[2], records[5], records[7], records[9]
            for r in records:
                if r is absent:
                    continue
                data = r.json_data
                if r is edited:
                    data["status"] = "cancelled by hand"
                elif r is removed:
                    del data["email"]
                elif r is renumbered:
                    data["total"] = 1007.5
                seed_publish(channel, exchange, event, str(r.id), data)
            seed_publish(channel, exchange, event, "order-17", {"number": "ORD-17"})  # another application's
            seed_publish(channel, exchange, event, None, {"ping": True})

            report = audit(forge, "order")
            found = {f.id: f for f in report.findings if f.store == "rabbitmq"}
            assert {i: (f.kind, f.fields) for i, f in found.items()} == {
                str(edited.id): ("stale", ("status",)), str(removed.id): ("stale", ("email",)),
                str(renumbered.id): ("stale", ("total",)), str(absent.id): ("missing", ())}
            assert report.stores["rabbitmq"]["ok"] == 8 and report.stores["rabbitmq"]["foreign"] == 2
            assert "missing in the store: email" in found[str(removed.id)].detail

            repaired = audit(forge, "order", repair=True)
            assert repaired.repaired["rabbitmq"]["rewritten"] == 4, repaired.repair_errors
            after = audit(forge, "order")
            assert after.consistent and after.stores["rabbitmq"]["foreign"] == 2, after.findings

        latest = latest_bodies(amqp_url, names["stream"])
        for r in (edited, removed, renumbered, absent):  # the source's values, in the seed's flat shape
            assert latest[str(r.id)] == load_json(r.data_json)
        assert latest["order-17"] == {"number": "ORD-17"} and latest[None] == {"ping": True}  # left as they were

        # the seed's consumer got uuid-forge's messages in the seed's shape
        ours = []
        for method, props, body in channel.consume(consumer, inactivity_timeout=QUIET):
            if method is None:
                break
            channel.basic_ack(method.delivery_tag)
            if (props.headers or {}).get("x-entity-type") == "order":
                ours.append((method, props, body))
        channel.cancel()
        assert {props.correlation_id for _, props, _ in ours} == {str(r.id) for r in (edited, removed, renumbered,
                                                                                      absent)}
        by_id = {r.id: r for r in records}
        for method, props, body in ours:
            assert (method.exchange, method.routing_key, props.content_type) == (exchange, event, "application/json")
            assert json.loads(body) == by_id[uuid.UUID(props.correlation_id)].json_data
        channel.exchange_declare(exchange, "direct", durable=False)  # still the seed's: same type, not durable
    finally:
        seed.close()


# -- the user's exchange, of any type ----------------------------------------------------------
@pytest.mark.parametrize("kind", ["direct", "topic", "fanout", "headers"])
def test_existing_exchange_of_any_type_is_used_as_it_is(amqp_url: str, names: dict[str, str], kind: str) -> None:
    exchange = names["exchange"]
    conn = connect(amqp_url)
    try:
        conn.channel().exchange_declare(exchange, kind, durable=False)
        records = [Record("invoice", uuid.uuid5(uuid.NAMESPACE_URL, f"inv{i}"), {"n": i}) for i in range(3)]
        with RabbitMQAdapter(amqp_url, exchange=exchange) as store:  # exchange_type says topic: not used
            assert store.put_many(records) == 3
            assert dict(store.scan("invoice")) == {r.id: r.fingerprint for r in records}
            store.delete_topology()  # the stream goes; the exchange is the user's: it stays
        channel = conn.channel()
        channel.exchange_declare(exchange, kind, durable=False)  # same type and durability, or this closes
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            channel.queue_declare(names["stream"], passive=True)
    finally:
        conn.close()


def test_missing_exchange_is_created_with_exchange_type(amqp_url: str, names: dict[str, str]) -> None:
    exchange = names["exchange"]
    with RabbitMQAdapter(amqp_url, exchange=exchange, exchange_type="fanout") as store:
        store.put_many([Record("t", uuid.uuid5(uuid.NAMESPACE_URL, "x"), {"a": 1})])
        conn = connect(amqp_url)
        try:
            conn.channel().exchange_declare(exchange, "fanout", durable=True)  # equivalent: no error
            channel = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="inequivalent"):
                channel.exchange_declare(exchange, "topic", durable=True)
            store.delete_topology()  # it created the exchange: it deletes it
            with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="NOT_FOUND"):
                conn.channel().exchange_declare(exchange, passive=True)
        finally:
            conn.close()


# -- routing-key templates ---------------------------------------------------------------------
def test_routing_key_template_with_the_id(amqp_url: str, names: dict[str, str]) -> None:
    records = [Record("user", uuid.uuid5(uuid.NAMESPACE_URL, f"u{i}"), {"i": i}) for i in range(3)]
    with RabbitMQAdapter(amqp_url, exchange=names["exchange"], routing_key="crm.{entity_type}.{id}",
                         event="changed") as store:
        store.put_many(records)
        assert dict(store.scan("user")) == {r.id: r.fingerprint for r in records}
    got = stream_messages(amqp_url, names["stream"])
    assert sorted(m.routing_key for m, _, _ in got) == sorted(f"crm.user.{r.id}" for r in records)
    assert {p.type for _, p, _ in got} == {"changed"}


@pytest.mark.parametrize("template,fragment", [
    ("{entity}.{event}", "unknown placeholder {entity}"),
    ("{id!r}", "no format spec"),
    ("{event:>9}", "no format spec"),
    ("{}", "unknown placeholder {}"),
    ("orders.{", "literal brace"),
])
def test_bad_routing_key_templates_are_refused(amqp_url: str, template: str, fragment: str) -> None:
    with pytest.raises(ValidationError, match="routing_key") as info:
        RabbitMQAdapter(amqp_url, exchange="uf_never", routing_key=template)
    assert fragment in str(info.value)


def test_overlong_routing_key_refused_before_any_publish(amqp_url: str, names: dict[str, str]) -> None:
    with RabbitMQAdapter(amqp_url, exchange=names["exchange"], routing_key="x" * 215 + ".{entity_type}.{id}") as store:
        with pytest.raises(ValidationError, match="routing key"):  # 215 + 2 + 4 ("item") + 36 > 255 bytes
            store.put_many([Record("item", uuid.uuid5(uuid.NAMESPACE_URL, "i"), {"a": 1})])
        assert store.check_entity_type("it") == "it"  # 215 + 2 + 2 + 36 = 255: fits
        assert store.entity_types() == []  # nothing was published
    with pytest.raises(ValidationError, match="direct exchange"):
        RabbitMQAdapter(amqp_url, exchange="uf_never", exchange_type="direct", routing_key="{id}")


def test_bad_option_values_name_the_valid_ones(amqp_url: str) -> None:
    with pytest.raises(OptionError, match="exchange_type.*'direct'"):
        RabbitMQAdapter(amqp_url, exchange_type="x-delayed")
    with pytest.raises(OptionError, match="layout.*'data', 'envelope'"):
        RabbitMQAdapter(amqp_url, layout="flat")


def test_layout_options_are_declared_with_teaching_docs() -> None:
    options = {o.name: o for o in RabbitMQAdapter.options}
    for name in ("exchange", "exchange_type", "routing_key", "event", "layout", "stream"):
        assert name in options and len(options[name].doc) > 60, name
        assert "xample" in options[name].doc or "e.g." in options[name].doc, name
    assert options["layout"].default == "data" and options["routing_key"].default == "{entity_type}.{event}"


# -- without a history stream ------------------------------------------------------------------
def test_without_a_stream_it_only_publishes(amqp_url: str, names: dict[str, str]) -> None:
    exchange = names["exchange"]
    record = Record("t", uuid.uuid5(uuid.NAMESPACE_URL, "nostream"), {"a": 1})
    with RabbitMQAdapter(amqp_url, exchange=exchange, stream="none") as store:
        assert store.capabilities == {"write", "delete"} and store.stream is None  # delete: publishes events
        with pytest.raises(StoreError, match="does not support scan"):
            list(store.scan("t"))
        with pytest.raises(StoreUnavailableError, match="no queue is bound"):
            store.put_many([record])  # nobody to receive it yet: retried and journaled by write-through
        conn = connect(amqp_url)
        try:
            channel = conn.channel()
            queue = channel.queue_declare("", exclusive=True).method.queue
            channel.queue_bind(queue, exchange, "#")
            store.put_many([record])
            method, props, body = channel.basic_get(queue, auto_ack=True)
            assert method is not None and body == record.data_json.encode()
            assert props.correlation_id == str(record.id)
            with pytest.raises(pika.exceptions.ChannelClosedByBroker):
                conn.channel().queue_declare(names["stream"], passive=True)  # no stream was made
        finally:
            conn.close()


# -- the earlier envelope ----------------------------------------------------------------------
def test_envelope_layout_and_mixed_streams_are_read(amqp_url: str, names: dict[str, str], tmp_path: Path) -> None:
    old = RabbitMQAdapter(amqp_url, exchange=names["exchange"], layout="envelope")
    with forge_with(old, tmp_path) as forge:
        rows = [("user", {"email": f"e{i}@example.com"}, {"email": f"e{i}@example.com", "n": i}) for i in range(4)]
        forge.write_many(rows)
        records = forge.records(rows)
        assert audit(forge, "user").consistent
        ((_, _, body),) = [m for m in stream_messages(amqp_url, names["stream"])
                           if m[1].correlation_id == str(records[0].id)]
        assert json.loads(body) == {"id": str(records[0].id), "entity_type": "user", "event": "upserted",
                                    "fp": records[0].fingerprint, "data": records[0].json_data,
                                    "key": {"email": "e0@example.com"}}
        # now the default layout on the same exchange: one newer event per layout, read alike
        new = RabbitMQAdapter(amqp_url, exchange=names["exchange"])
        changed = Record("user", records[1].id, {**records[1].data, "n": 100})
        new.put_many([changed])
        scanned = dict(new.scan("user"))
        assert scanned == {**{r.id: r.fingerprint for r in records}, changed.id: changed.fingerprint}
        report = audit(forge, "user")
        assert [(f.id, f.kind, f.fields) for f in report.findings] == [(str(changed.id), "stale", ("n",))]
        new.close()


# -- the layouts as strategy objects -----------------------------------------------------------
def test_layouts_are_chosen_from_one_table(amqp_url: str) -> None:
    assert tuple(LAYOUTS) == ("data", "envelope")
    option = {o.name: o for o in RabbitMQAdapter.options}["layout"]
    assert option.choices == tuple(LAYOUTS) and option.default == "data"
    assert isinstance(RabbitMQAdapter(amqp_url).layout, DataLayout)  # no connection is opened
    assert isinstance(RabbitMQAdapter(amqp_url, layout="envelope").layout, EnvelopeLayout)


@pytest.mark.parametrize("name", ["data", "envelope"])
def test_each_layout_encodes_fingerprints_and_owns_its_fields(amqp_url: str, name: str) -> None:
    store = RabbitMQAdapter(amqp_url, layout=name, event="created")
    record = Record("user", uuid.uuid5(uuid.NAMESPACE_URL, "strategy"), {"b": 1, "a": "x"}, {"email": "e"})
    message = store.layout.encode(record)
    assert message.headers["x-entity-type"] == "user"
    if name == "data":
        assert message.body == b'{"a":"x","b":1}' and message.type == "created"
        assert store.layout.owned_fields(record) == {"a", "b"}
    else:
        assert json.loads(message.body) == {"id": str(record.id), "entity_type": "user", "event": "created",
                                            "fp": record.fingerprint, "data": {"a": "x", "b": 1},
                                            "key": {"email": "e"}}
        assert message.type == "user.created" and message.headers["x-id-scheme"] == "uuid-forge/1"
        assert store.layout.owned_fields(record) == {"id", "entity_type", "event", "fp", "data", "key"}
    delivered = (message.headers, message.body)
    assert store.layout.fingerprint(delivered) == record.fingerprint
    assert store.layout.decode("user", record.id, delivered).data == record.data
    # a scan reads either layout's message whatever the option says, by the header it carries
    for other in LAYOUTS:
        assert RabbitMQAdapter(amqp_url, layout=other)._body_fp(message.headers, message.body) == record.fingerprint


def test_a_viewed_twin_fingerprints_through_its_own_view(amqp_url: str) -> None:
    from uuid_forge.record import data_fingerprint
    from uuid_forge.view import FieldView

    store = RabbitMQAdapter(amqp_url)
    record = Record("user", uuid.uuid5(uuid.NAMESPACE_URL, "viewed"), {"b": 1, "a": "x"})
    twin = store.viewed(FieldView(projection=("a",)))
    assert isinstance(twin, RabbitMQAdapter) and twin is not store
    for writer in (DataLayout(store), EnvelopeLayout(store)):
        message = writer.encode(record)
        assert twin._body_fp(message.headers, message.body) == data_fingerprint({"a": "x"})
        assert store._body_fp(message.headers, message.body) == record.fingerprint
