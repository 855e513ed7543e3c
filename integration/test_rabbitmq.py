"""The adapter contract against a real RabbitMQ, plus what is particular to a message log.

Every test gets its own exchange and stream queue (``uf_test_<random>``), deleted afterwards, so
runs in parallel on the shared server do not see each other's messages. The raw checks read the
stream with pika itself, never through the adapter.
"""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from tests.scaffold import SilentServer, driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
import pika
from uuid_forge.adapters.rabbitmq import MARKER_TYPE, RabbitMQAdapter, event_id

from uuid_forge import Record, open_store
from uuid_forge.contract import Adapter
from uuid_forge.errors import ConfigError, StoreError, StoreTimeoutError, StoreUnavailableError, ValidationError
from uuid_forge.record import ForeignEntry, MalformedID
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import sample_records

from . import servers
from .rabbit_raw import connect, drop, exists, publish, read_stream

RAW_WAIT = 10.0  # seconds a raw stream read waits for an expected message before failing


def _url(base: str, **query: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def raw_messages(url: str, stream: str, correlation_id: str | None, count: int = 1) -> list[tuple[Any, Any, bytes]]:
    """The first ``count`` messages carrying ``correlation_id`` in the stream, read with plain pika;
    fail if the stream goes quiet first."""
    found = []
    for method, props, body in read_stream(url, stream, quiet=RAW_WAIT, prefetch=100):
        if props.correlation_id == correlation_id:
            found.append((method, props, body))
            if len(found) == count:
                return found
    pytest.fail(f"stream {stream} went quiet with {len(found)}/{count} messages for {correlation_id}")


def raw_publish(store: RabbitMQAdapter, url: str, routing_key: str, props: pika.BasicProperties,
                body: bytes = b"{}") -> None:
    publish(url, store.exchange, routing_key, body, props)


@pytest.fixture
def exchange() -> str:
    return f"uf_test_{uuid.uuid4().hex[:12]}"


class TestRabbitMQAdapter(AdapterContract):
    @pytest.fixture
    def store(self, amqp_url: str, exchange: str) -> Iterator[Adapter]:
        self.amqp_url = amqp_url
        with open_store(_url(amqp_url, exchange=exchange)) as s:
            yield s
        drop(amqp_url, exchange, f"{exchange}.history")

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        """A log cannot delete messages: drop this test's whole exchange and stream instead."""
        assert isinstance(store, RabbitMQAdapter)
        drop(self.amqp_url, store.exchange, store.stream)

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        """The default layout: the body is the record's data as canonical JSON, nothing else."""
        assert isinstance(store, RabbitMQAdapter)
        ((method, props, body),) = raw_messages(self.amqp_url, store.stream, str(record.id))
        assert isinstance(props.correlation_id, str) and props.correlation_id == str(record.id)
        rebuilt = uuid.uuid5(record.id, f'["uuid-forge-event/1","upserted","{record.fingerprint}"]')
        assert props.message_id == str(rebuilt) == str(event_id(record.id, "upserted", record.fingerprint))
        assert props.type == "upserted"
        assert method.exchange == store.exchange and method.routing_key == f"{record.entity_type}.upserted"
        headers = dict(props.headers)
        assert isinstance(headers.pop("x-stream-offset"), int)  # added by the stream on delivery
        assert headers == {"x-entity-type": record.entity_type}  # no fingerprint, no key: only the data
        assert props.delivery_mode == 2
        assert props.content_type == "application/json"
        assert isinstance(props.timestamp, int) and props.timestamp > 0
        assert body == record.data_json.encode()

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        pytest.skip("a message log: a published message is never rewritten, so no write of ours can drop a field "
                    "another application added (and none can be added to a message)")

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        assert isinstance(store, RabbitMQAdapter)
        raw_publish(store, self.amqp_url, f"{entity_type}.upserted", pika.BasicProperties(
            correlation_id=ident.hex, message_id=str(uuid.uuid4()), delivery_mode=2,
            headers={"x-entity-type": entity_type, "x-fingerprint": "0" * 32}))
        return True

    def test_url_is_masked(self, store: Adapter) -> None:
        """Replaces the contract's check, which fails when the user name equals the password
        (guest:guest): the password must not appear *as the password*."""
        raw, shown = store.url(masked=False), store.url()
        user, password = urlsplit(raw).username, urlsplit(raw).password
        assert password and f":{password}@" not in shown and f"{user}:***@" in shown
        assert shown in repr(store)

    # -- what is particular to RabbitMQ ----------------------------------------------------------
    def test_capabilities_are_write_scan_and_delete_events(self, store: Adapter) -> None:
        assert store.capabilities == {"write", "scan", "delete"} and store.append_only
        assert store.id_encoding == "string"
        with pytest.raises(StoreError, match="does not support read"):
            store.get_many("t", [uuid.uuid4()])
        with pytest.raises(ValidationError, match="needs token="):  # a delete event's message_id is made from it
            store.delete_many("t", [uuid.uuid4()])

    def test_retries_carry_the_same_message_id(self, store: Adapter, etype: str) -> None:
        assert isinstance(store, RabbitMQAdapter)
        record = sample_records(etype, 1)[0]
        for _ in range(3):
            store.put_many([record])
        messages = raw_messages(self.amqp_url, store.stream, str(record.id), count=3)
        assert {props.message_id for _, props, _ in messages} == {
            str(event_id(record.id, "upserted", record.fingerprint))}
        changed = sample_records(etype, 1, version=2)[0]
        assert event_id(changed.id, "upserted", changed.fingerprint) != event_id(record.id, "upserted",
                                                                                  record.fingerprint)
        assert event_id(record.id, "deleted", record.fingerprint) != event_id(record.id, "upserted",
                                                                              record.fingerprint)
        assert dict(store.scan(etype)) == {record.id: record.fingerprint}  # one entity, however many events

    def test_event_option_sets_routing_key_and_event_id(self, store: Adapter, etype: str, amqp_url: str) -> None:
        assert isinstance(store, RabbitMQAdapter)
        record = sample_records(etype, 1)[0]
        with open_store(_url(amqp_url, exchange=store.exchange, event="created")) as created:
            assert isinstance(created, RabbitMQAdapter) and created.event == "created"
            created.put_many([record])
        ((method, props, body),) = raw_messages(amqp_url, store.stream, str(record.id))
        assert method.routing_key == f"{etype}.created" and props.type == "created"
        assert props.message_id == str(event_id(record.id, "created", record.fingerprint))
        assert json.loads(body) == record.json_data

    def test_overlong_routing_key_rejected_before_publish(self, store: Adapter, etype: str,
                                                           amqp_url: str) -> None:
        assert isinstance(store, RabbitMQAdapter)
        with pytest.raises(ValidationError, match="event"):
            RabbitMQAdapter(_url(amqp_url, exchange=store.exchange), event="e" * 300)
        with pytest.raises(ValidationError):
            store.check_entity_type("x" * 300)
        # each part fits, but the routing key {entity_type}.{event} would be 261 bytes > 255
        long_type = "t" * 60
        with open_store(_url(amqp_url, exchange=store.exchange), event="e" * 200) as long_event:
            with pytest.raises(ValidationError, match="routing key") as info:
                long_event.put_many([*sample_records(etype, 2), *sample_records(long_type, 1)])
            assert long_type in str(info.value)
        assert store.entity_types() == []  # not even the valid records were published

    @pytest.mark.parametrize("bad", ["amq.mine", "has space", "", "x" * 256, "é"])
    def test_invalid_exchange_names(self, amqp_url: str, bad: str) -> None:
        with pytest.raises(ValidationError):
            RabbitMQAdapter(amqp_url, exchange=bad)

    def test_url_options_and_overrides(self, amqp_url: str) -> None:
        url = _url(amqp_url, exchange="uf_x", stream="uf_x.log", event="synced", timeout="2.5",
                   pipeline="false", batch_size="50", heartbeat="30")
        store = RabbitMQAdapter(url)
        assert (store.exchange, store.stream, store.event, store.timeout, store.pipeline, store.batch_size) == (
            "uf_x", "uf_x.log", "synced", 2.5, False, 50)
        assert store._params.heartbeat == 30 and store._params.stack_timeout == 2.5
        assert store._params.connection_attempts == 1
        other = RabbitMQAdapter(url, exchange="uf_y", stream=None, timeout=1)
        assert (other.exchange, other.stream, other.timeout) == ("uf_y", "uf_x.log", 1.0)
        assert RabbitMQAdapter(amqp_url, exchange="uf_z").stream == "uf_z.history"
        with pytest.raises(ConfigError):
            RabbitMQAdapter(_url(amqp_url, no_such_setting="1"))
        assert "guest:guest" not in repr(store)  # nothing was connected to: all of this is local

    def test_malformed_correlation_ids(self, store: Adapter, etype: str) -> None:
        assert isinstance(store, RabbitMQAdapter)
        good = sample_records(etype, 1)[0]
        store.put_many([good])
        upper, missing = uuid.uuid5(uuid.NAMESPACE_DNS, etype), uuid.uuid4()  # upper: a version this scheme makes
        for raw in (str(upper).upper(), "order-42", None):
            raw_publish(store, self.amqp_url, f"{etype}.upserted", pika.BasicProperties(
                correlation_id=raw, headers={"x-entity-type": etype, "x-fingerprint": "f" * 32}))
        items = list(store.scan(etype, include_malformed=True))
        malformed = {i.raw: i for i, _ in items if isinstance(i, MalformedID)}
        assert set(malformed) == {str(upper).upper()}
        assert malformed[str(upper).upper()].id == upper and "upper-case" in malformed[str(upper).upper()].reason
        # issue 10: no correlation_id, or one that is no UUID of ours, is another application's message
        assert sorted(i.raw for i, _ in items if isinstance(i, ForeignEntry)) == ["", "order-42"]
        assert [i for i, _ in items if not isinstance(i, (MalformedID, ForeignEntry))] == [good.id]
        assert missing not in [i for i, _ in items]

    def test_foreign_messages_and_markers_are_ignored(self, store: Adapter, etype: str) -> None:
        assert isinstance(store, RabbitMQAdapter)
        record = sample_records(etype, 1)[0]
        store.put_many([record])
        raw_publish(store, self.amqp_url, "someone.else", pika.BasicProperties(correlation_id=str(uuid.uuid4())))
        assert dict(store.scan(etype)) == {record.id: record.fingerprint}
        assert store.entity_types() == [etype]  # a second scan: the first scan's marker is skipped too
        markers = raw_messages(self.amqp_url, store.stream, None, count=2)
        assert {props.type for _, props, _ in markers} == {MARKER_TYPE}

    def test_scan_is_a_snapshot_while_others_publish(self, store: Adapter, etype: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
        """Messages published after the scan's end marker are in flight when it stops: closing
        the consumer must not reject them (a stream would close the connection) and they are
        not part of this scan."""
        assert isinstance(store, RabbitMQAdapter)
        before, after = sample_records(etype, 50), sample_records(etype, 3000, start=50)
        store.put_many(before)
        original = store._publish_confirmed

        def marker_then_more(messages):  # type: ignore[no-untyped-def]
            counts = original(messages)
            if not getattr(marker_then_more, "done", False):
                marker_then_more.done = True  # type: ignore[attr-defined]
                with RabbitMQAdapter(self.amqp_url, exchange=store.exchange) as other:
                    other.put_many(after)
            return counts

        monkeypatch.setattr(store, "_publish_confirmed", marker_then_more)
        conn = store._conn
        assert dict(store.scan(etype)) == {r.id: r.fingerprint for r in before}
        assert store._conn is conn and conn is not None and conn.is_open
        monkeypatch.undo()
        assert len(dict(store.scan(etype))) == 3050

    def test_scan_does_not_consume(self, store: Adapter, etype: str) -> None:
        records = sample_records(etype, 20)
        store.put_many(records)
        expected = {r.id: r.fingerprint for r in records}
        assert dict(store.scan(etype)) == expected
        assert dict(store.scan(etype)) == expected

    @pytest.mark.parametrize("pipeline", [True, False])
    def test_public_api_and_pipelined_confirms_agree(self, amqp_url: str, exchange: str, etype: str,
                                                     pipeline: bool) -> None:
        records = sample_records(etype, 120)
        try:
            with RabbitMQAdapter(amqp_url, exchange=exchange, pipeline=pipeline, batch_size=50) as s:
                assert s.put_many(records) == 120
                assert dict(s.scan(etype)) == {r.id: r.fingerprint for r in records}
        finally:
            drop(amqp_url, exchange, f"{exchange}.history")

    @pytest.mark.parametrize("pipeline", [True, False])
    def test_unroutable_message_is_an_error(self, amqp_url: str, exchange: str, pipeline: bool) -> None:
        conn = connect(amqp_url)
        try:
            conn.channel().exchange_declare(exchange, "topic", durable=True)  # no queue at all: nothing routes
            with RabbitMQAdapter(amqp_url, exchange=exchange, declare=False, pipeline=pipeline) as s:
                with pytest.raises(StoreError, match="unroutable.*does not exist") as info:
                    s.put_many(sample_records("order", 3))
                assert not isinstance(info.value, StoreUnavailableError)  # no retry brings a queue into being
                with pytest.raises(StoreError, match="unroutable"):  # the adapter stays usable
                    s.put_many(sample_records("order", 1))
        finally:
            conn.channel().exchange_delete(exchange)
            conn.close()

    def test_unroutable_while_the_stream_exists_is_retryable(self, amqp_url: str, exchange: str, etype: str) -> None:
        """As just after a broker restart, when the stream exists but does not take messages yet;
        here it is simply not bound. Retrying is right: once it routes, the same batch goes through."""
        stream = f"{exchange}.history"
        conn = connect(amqp_url)
        try:
            channel = conn.channel()
            channel.exchange_declare(exchange, "topic", durable=True)
            channel.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
            records = sample_records(etype, 3)
            with RabbitMQAdapter(amqp_url, exchange=exchange, declare=False, marker=True) as s:
                with pytest.raises(StoreUnavailableError, match="unroutable.*exists"):
                    s.put_many(records)
                channel.queue_bind(stream, exchange, "#")
                assert s.put_many(records) == 3
                assert sorted(i for i, _ in s.scan(etype)) == sorted(r.id for r in records)
        finally:
            drop(amqp_url, exchange, stream)
            conn.close()

    def test_missing_exchange_without_declare_is_a_store_error(self, amqp_url: str, exchange: str) -> None:
        with RabbitMQAdapter(amqp_url, exchange=exchange, declare=False) as s:
            with pytest.raises(StoreError, match="NOT_FOUND") as info:
                s.put_many(sample_records("order", 1))
            assert not isinstance(info.value, StoreUnavailableError)

    def test_reconnects_after_the_connection_closed(self, store: Adapter, etype: str) -> None:
        assert isinstance(store, RabbitMQAdapter)
        first, second = sample_records(etype, 2)
        store.put_many([first])
        assert store._conn is not None
        store._conn.close()
        store.put_many([second])
        assert dict(store.scan(etype)) == {first.id: first.fingerprint, second.id: second.fingerprint}


class TestRabbitMQEnvelope(TestRabbitMQAdapter):
    """``layout=envelope``: uuid-forge's earlier body {id, entity_type, event, fp, data, key}."""

    @pytest.fixture
    def store(self, amqp_url: str, exchange: str) -> Iterator[Adapter]:
        self.amqp_url = amqp_url
        with open_store(_url(amqp_url, exchange=exchange, layout="envelope")) as s:
            yield s
        drop(amqp_url, exchange, f"{exchange}.history")

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert isinstance(store, RabbitMQAdapter)
        ((method, props, body),) = raw_messages(self.amqp_url, store.stream, str(record.id))
        assert props.correlation_id == str(record.id)
        assert method.routing_key == f"{record.entity_type}.upserted"
        assert json.loads(body) == {"id": str(record.id), "entity_type": record.entity_type, "event": "upserted",
                                    "fp": record.fingerprint, "data": record.json_data,
                                    "key": json.loads(record.key_json or "null")}


def test_silent_server_times_out(silent_server: SilentServer) -> None:
    """A server that accepts TCP and never speaks AMQP: an error within the timeout, not a hang."""
    url = f"amqp://guest:secret-pw@127.0.0.1:{silent_server.port}/%2F"
    with RabbitMQAdapter(url, timeout=1) as store:
        with pytest.raises(StoreTimeoutError) as info:
            store.put_many(sample_records("order", 1))
        assert "secret-pw" not in str(info.value)
        with pytest.raises(StoreTimeoutError):
            store.ping()
    assert silent_server.accepted  # it really connected, then waited for an answer


def test_refused_connection_is_unavailable() -> None:
    port = servers.free_port()
    with RabbitMQAdapter(f"amqp://guest:guest@127.0.0.1:{port}/%2F", timeout=1) as store:
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
        assert not isinstance(info.value, StoreTimeoutError)


@pytest.mark.fault
@pytest.mark.slow
def test_survives_a_broker_crash() -> None:
    """Stop a private node mid-use: writes fail as unavailable, then succeed once it is back, and
    the stream still holds every confirmed message. (A clean stop: after SIGKILL, RabbitMQ 3.10
    leaves a single-node stream "down" after restart, which the adapter reports as unavailable.)"""
    try:
        node = servers.PrivateRabbitMQ()
        node.start()
    except servers.ServerStartError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"cannot start a private RabbitMQ node: {err}")
    try:
        with RabbitMQAdapter(node.url, exchange="uf_crash", timeout=3) as store:
            before, after = sample_records("order", 20), sample_records("order", 20, start=20)
            store.put_many(before)
            # the broker drops the connection while the adapter is idle: the next call reconnects
            subprocess.run(["rabbitmqctl", "-n", node.node, "close_all_connections", "idle test"],
                           env=node._env(), capture_output=True, timeout=60, check=True)
            store.put_many(before[:1])
            node.stop()
            with pytest.raises(StoreUnavailableError):
                store.put_many(after)
            node.start()
            # the port opens before the stream queue has recovered: that is "unavailable", retried
            # here as write-through would, never a different error
            for attempt in range(60):
                try:
                    store.put_many(after)
                    break
                except StoreUnavailableError as err:
                    unavailable = err
                    threading.Event().wait(0.5)
            else:
                pytest.fail(f"still unavailable 30 s after the restart: {unavailable}")
            assert dict(store.scan("order")) == {r.id: r.fingerprint for r in before + after}
    finally:
        node.cleanup()


def test_probe_validate_and_stores_create_nothing_on_the_broker(amqp_url: str, tmp_path: Any) -> None:
    """A mistyped exchange name in a configuration being checked must not leave an exchange and a
    stream behind: only a write (or a ping, which sets up the stream a user's publisher fills) declares them."""
    from tests.scaffold import run_cli, write_forge_toml

    name = f"uf_test_probe_{uuid.uuid4().hex[:8]}"
    url = f"{amqp_url}?exchange={name}"
    try:
        with RabbitMQAdapter(url) as store:
            store.probe()
        config = write_forge_toml(tmp_path / "uf.toml", {"db": f"sqlite:///{tmp_path / 'a.db'}", "bus": url}, "db",
                                  namespace="probe.example")
        for command in (["validate", "-c", str(config)], ["stores", "-c", str(config)]):
            code, out, err = run_cli(command, {"UUID_FORGE_SALT": "a-salt-of-twenty-chars"})
            assert code in (0, 1) and "bus" in out, out + err
        assert not exists(amqp_url, "exchange", name) and not exists(amqp_url, "queue", f"{name}.history")
        with RabbitMQAdapter(url) as store:  # a write does declare them (the check above can fail)
            store.put_many(sample_records("order", 1))
        assert exists(amqp_url, "exchange", name) and exists(amqp_url, "queue", f"{name}.history")
    finally:
        drop(amqp_url, name, f"{name}.history")
