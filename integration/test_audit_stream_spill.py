"""A RabbitMQ history stream in an audit, on the real servers: PostgreSQL the source of truth.

The audit reads the stream once (not once per partition), spills its latest state to a private
temporary file (uuid_forge.logspill) instead of holding it in memory, compares it partition by
partition, and finds exactly what the old in-memory comparison found: planted missing, orphan,
stale, malformed and foreign entries, with the latest event per entity winning.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
import pika
from uuid_forge.adapters.rabbitmq import RabbitMQAdapter

from uuid_forge import Forge, IDConfig, Namespace, Record, open_store
from uuid_forge import audit as audit_module
from uuid_forge import compare as compare_module
from uuid_forge.forge import StoreHandle

from .rabbit_raw import publish

IDS = IDConfig(namespace=Namespace("audit-log.uuid-forge.test"), salt="audit-log")
N = 1200


@pytest.fixture
def forge(postgres_url: str, amqp_url: str) -> Iterator[tuple[Forge, str, str]]:
    et = f"alog{uuid.uuid4().hex[:8]}"
    exchange = f"uf_test_{et}"
    url = f"{amqp_url}{'&' if '?' in amqp_url else '?'}exchange={exchange}"
    f = Forge([StoreHandle("postgres", open_store(postgres_url), source=True),
               StoreHandle("rabbitmq", open_store(url))], ids=IDS, journal=None)
    yield f, et, exchange
    f.source.adapter.drop(et)
    f.stores[1].adapter.delete_topology()  # type: ignore[attr-defined]
    f.close()


def _publish_raw(amqp_url: str, exchange: str, et: str, correlation_id: str | None, fp: str) -> None:
    """A message written with pika itself, as another program (or a bug) would."""
    publish(amqp_url, exchange, f"{et}.upserted", json.dumps({"x": 1}).encode(), pika.BasicProperties(
        correlation_id=correlation_id, message_id=str(uuid.uuid4()), delivery_mode=2,
        headers={"x-entity-type": et, "x-fingerprint": fp}))


def _old_way(f: Forge, et: str) -> tuple[set[tuple[str, str, str]], dict[str, int]]:
    """The removed in-memory comparison: the stream's latest state and the source's IDs in dicts."""
    h = f.stores[1]
    latest = dict(h.adapter.scan(et, include_malformed=True))
    expected = dict(f.source.adapter.scan(et))
    sink = compare_module.Sink(h.name)
    compare_module.compare(h, et, expected, iter(latest.items()), sink)
    report = audit_module.AuditReport(stores={h.name: Counter({k: 0 for k in audit_module.CLASSES})})
    sink.merge_into(report)
    audit_module.describe_stale(f, report)  # stale findings name their fields, as a full audit does
    return {(x.kind, x.id, x.detail) for x in report.findings}, dict(report.stores[h.name])


def test_audit_reads_the_stream_once_into_a_spill_with_the_same_findings(
        forge: tuple[Forge, str, str], amqp_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    f, et, exchange = forge
    items = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "n": i}) for i in range(N)]
    assert f.write_many(items).complete
    records = f.records(items)
    source, log = f.source.adapter, f.stores[1].adapter
    want: dict[str, set[str]] = {k: set() for k in ("missing", "orphan", "stale", "malformed")}
    extra = f.records([(et, {"email": f"missing{i}@example.com"}, {"n": -i}) for i in range(5)])
    source.put_many(extra)
    want["missing"] = {str(r.id) for r in extra}
    orphans = [Record(et, uuid.uuid4(), {"ghost": i}) for i in range(5)]
    log.put_many(orphans)
    want["orphan"] = {str(r.id) for r in orphans}
    log.put_many([Record(et, r.id, {**r.data, "name": "edited"}, r.key) for r in records[:5]])
    want["stale"] = {str(r.id) for r in records[:5]}
    # updated twice, the latest event is the source's version: ok
    log.put_many([Record(et, r.id, {"older": True}, r.key) for r in records[10:15]])
    log.put_many(records[10:15])
    for r in records[20:23]:  # the latest event names the entity in the wrong form
        _publish_raw(amqp_url, exchange, et, r.id.hex, r.fingerprint)
    want["malformed"] = {str(r.id) for r in records[20:23]}
    _publish_raw(amqp_url, exchange, et, "order-17", "0" * 32)  # another application's message, twice
    _publish_raw(amqp_url, exchange, et, "order-17", "0" * 32)
    _publish_raw(amqp_url, exchange, et, None, "0" * 32)

    old = _old_way(f, et)
    reads: list[str] = []
    read_history = RabbitMQAdapter._read_history

    def counted(self: RabbitMQAdapter, handle: Any) -> None:
        reads.append("read")
        read_history(self, handle)

    def in_memory(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the audit held the stream's latest state in memory (RabbitMQAdapter._scan)")

    monkeypatch.setattr(RabbitMQAdapter, "_read_history", counted)
    monkeypatch.setattr(RabbitMQAdapter, "_scan", in_memory)
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 200)  # 1205 source records: 8 partitions
    report = f.audit(et)

    assert report.partitions == 8
    assert reads == ["read"]  # once per audit, not once per partition
    found = {k: {x.id for x in report.findings if x.store == "rabbitmq" and x.kind == k} for k in want}
    assert found == want
    counts = report.stores["rabbitmq"]
    assert counts["foreign"] == 2 and counts["ok"] == N - 5 - 3
    assert ({(x.kind, x.id, x.detail) for x in report.findings if x.store == "rabbitmq"}, dict(counts)) == old
