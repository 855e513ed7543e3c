"""Planted faults in real stores: one of each class in each store, found exactly, then repaired.

The source of truth is PostgreSQL. Every other store gets, through the adapters or (for wrongly
encoded IDs) through its raw driver: one missing record, one orphan, one stale record and one
malformed ID. The audit must report exactly those, with no false positives; a repair from the
source must leave the next audit clean (a RabbitMQ stream is append-only: its orphan is reported
but cannot be deleted, and its malformed message is superseded by the repaired event).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("pymysql", reason=driver_missing("pymysql"))
pytest.importorskip("redis", reason=driver_missing("redis"))
pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
import pika
import pymongo
import pymysql
import redis
from elasticsearch import Elasticsearch

from uuid_forge import Forge, IDConfig, Namespace, Record, open_store
from uuid_forge.contract import Adapter
from uuid_forge.entitytypes import EntityType
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

from .servers import elasticsearch_http_url

pytestmark = pytest.mark.slow
IDS = IDConfig(namespace=Namespace("planted.uuid-forge.test"), salt="planted")


def _b64(ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(ident.bytes).rstrip(b"=").decode()


def planters(urls: dict[str, str], files: Path) -> dict[str, Callable[[str, uuid.UUID], None]]:
    """For each store, how to write an ID in a wrong encoding with the store's own driver."""

    def mariadb(et: str, ident: uuid.UUID) -> None:
        p = urlsplit(urls["mariadb"])
        conn = pymysql.connect(host=p.hostname, port=p.port or 3306, user=p.username or "root",
                               password=p.password or "", database=p.path.lstrip("/"), autocommit=True)
        with conn.cursor() as cur:
            cur.execute(f"INSERT INTO `uf_{et}` (id, fingerprint, data) VALUES (%s, %s, %s)",
                        (ident.hex.upper(), "0" * 32, "{}"))
        conn.close()

    def mongodb(et: str, ident: uuid.UUID) -> None:
        client: pymongo.MongoClient = pymongo.MongoClient(urls["mongodb"])
        client.get_default_database()[et].insert_one({"_id": str(ident), "name": "planted"})
        client.close()

    def redis_(et: str, ident: uuid.UUID) -> None:
        client = redis.Redis.from_url(urls["redis"])
        client.set(f"{et}:{_b64(ident)}", "{}")  # the default layout: a JSON string value
        client.close()

    def elastic(et: str, ident: uuid.UUID) -> None:
        client = Elasticsearch(elasticsearch_http_url(urls["elasticsearch"]))
        client.index(index=f"uf-{et}", id=_b64(ident), document={"id": str(ident), "fp": "0" * 32, "key": None,
                                                                  "data": {}}, refresh=True)
        client.close()

    def files_(et: str, ident: uuid.UUID) -> None:
        folder = files / et / ident.hex[0:2] / ident.hex[2:4]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{str(ident).upper()}.json").write_text(json.dumps({}))  # the data as a document

    def rabbitmq(et: str, ident: uuid.UUID) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(urls["amqp"].split("?")[0]))
        channel = conn.channel()
        channel.confirm_delivery()
        exchange = urls["amqp"].split("exchange=")[1]
        channel.basic_publish(exchange, f"{et}.upserted", json.dumps({"id": ident.hex}).encode(), pika.BasicProperties(
            correlation_id=ident.hex, message_id=str(uuid.uuid4()), delivery_mode=2, content_type="application/json",
            headers={"x-entity-type": et, "x-fingerprint": "0" * 32}))
        conn.close()

    return {"mariadb": mariadb, "mongodb": mongodb, "redis": redis_, "elasticsearch": elastic, "files": files_,
            "rabbitmq": rabbitmq}


@pytest.fixture
def forge(postgres_url: str, mariadb_url: str, mongodb_url: str, redis_url: str, elasticsearch_url: str,
          amqp_url: str, tmp_path: Path) -> Iterator[tuple[Forge, dict[str, str], str]]:
    et = f"plant{uuid.uuid4().hex[:8]}"
    urls = {"mariadb": mariadb_url, "mongodb": mongodb_url, "redis": redis_url, "elasticsearch": elasticsearch_url,
            "files": f"file://{tmp_path}/files", "rabbitmq": f"{amqp_url}?exchange=uf_test_{et}"}
    handles = [StoreHandle("postgres", open_store(postgres_url), source=True)]
    handles += [StoreHandle(name, open_store(url)) for name, url in urls.items()]
    # the type's key field is declared and held in every record's data: each entry is provably ours (issue 18)
    f = Forge(handles, ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"), types=[EntityType(et, key=("email",))])
    yield f, {**urls, "amqp": urls["rabbitmq"]}, et
    for h in f.stores:
        if "delete" in h.adapter.capabilities and not h.adapter.append_only:
            h.adapter.drop(et, prover=f.prover)
    f.stores[-1].adapter.delete_topology()  # type: ignore[attr-defined]
    f.close()


def test_each_planted_class_in_each_store_is_found_exactly_then_repaired(
        forge: tuple[Forge, dict[str, str], str], tmp_path: Path) -> None:
    f, urls, et = forge
    base = [(et, {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "name": f"User {i}", "n": i})
            for i in range(200)]
    f.write_many(base)
    records = f.records(base)
    plant = planters(urls, tmp_path / "files")
    others: list[tuple[str, Adapter]] = [(h.name, h.adapter) for h in f.stores[1:]]
    expected: set[tuple[str, str, str]] = set()

    def everywhere_but(record: Record, skip: str) -> None:
        f.source.adapter.put_many([record])
        for name, adapter in others:
            if name != skip:
                adapter.put_many([record])

    for n, (name, adapter) in enumerate(others):
        missing = f.records([(et, {"email": f"missing-{name}@example.com"}, {"email": f"missing-{name}@example.com",
                                                                              "n": -1})])[0]
        everywhere_but(missing, skip=name)
        expected.add((name, "missing", str(missing.id)))

        ghost = f"ghost-{name}@example.com"  # ours (its key field rebuilds its ID), absent from the source
        orphan = f.records([(et, {"email": ghost}, {"email": ghost, "ghost": name})])[0]
        adapter.put_many([orphan])
        expected.add((name, "orphan", str(orphan.id)))

        stale = records[n]
        adapter.put_many([Record(et, stale.id, {**stale.data, "name": "edited behind our back"}, stale.key)])
        expected.add((name, "stale", str(stale.id)))

        wrong = f.records([(et, {"email": f"wrong-{name}@example.com"}, {"email": f"wrong-{name}@example.com",
                                                                          "n": -2})])[0]
        everywhere_but(wrong, skip=name)
        plant[name](et, wrong.id)
        expected.add((name, "malformed", str(wrong.id)))

    report = f.audit(et)
    found = {(x.store, x.kind, x.id) for x in report.findings}
    assert found == expected  # every planted fault, and nothing else
    for name, _ in others:
        assert {k: report.stores[name][k] for k in ("missing", "orphan", "stale", "malformed")} == \
            {"missing": 1, "orphan": 1, "stale": 1, "malformed": 1}, name

    repaired = f.audit(et, repair=True, delete_orphans=True)
    assert [e for e in repaired.repair_errors if not e.startswith("rabbitmq/")] == []
    after = f.audit(et)
    leftover = {(x.store, x.kind) for x in after.findings}
    # An append-only log keeps its orphan; its malformed message is superseded by the repaired event.
    assert leftover == {("rabbitmq", "orphan")}
    in_source = sum(1 for _ in f.source.adapter.scan(et))
    assert in_source == 200 + 2 * len(others)
    assert {name: after.stores[name]["ok"] for name, _ in others} == {name: in_source for name, _ in others}
