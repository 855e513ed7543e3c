"""Issue 11: the audit reads the data each store holds, not the fingerprint written beside it.

For every store, three records are changed with the store's own driver, behind uuid-forge's back:
(a) one field edited, (b) one field removed, (c) a number changed, and (d) a field added. The stored ``fp`` is left as it
was (as another program would leave it). The audit must report exactly those three as ``stale``,
naming the field (its values only with ``show_values``); a repair must put the source's value
back (checked with the raw driver), and the next audit must be consistent. A stream message
cannot be edited: there, a newer message with other data (and the old fingerprint header) is
the edit.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

from .scaffold import forget_redis_type, make_forge
from .servers import elasticsearch_http_url

IDS = IDConfig(namespace=Namespace("content.uuid-forge.test"), salt="content-h")
STORES = ["postgres", "mariadb", "sqlite", "mongodb", "redis", "elasticsearch", "files", "rabbitmq"]
N = 30

Edit = Callable[[dict[str, Any]], dict[str, Any]]


class Raw:
    """Read and rewrite one record's data with a store's own driver (never through uuid-forge)."""

    def __init__(self, kind: str, url: str, et: str) -> None:
        self.kind, self.url, self.et = kind, url, et

    # each store: read(ident) -> data, write(ident, data) keeping everything else (the stale fp too)
    def read(self, ident: uuid.UUID) -> dict[str, Any]:
        return getattr(self, f"_read_{self.kind}")(ident)

    def edit(self, ident: uuid.UUID, change: Edit) -> None:
        getattr(self, f"_edit_{self.kind}")(ident, change)

    # -- SQL: UPDATE of the data column (json.dumps: the text is also reformatted, which is no change)
    def _sql(self) -> Any:
        if self.kind == "postgres":
            import psycopg

            return psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
        if self.kind == "mariadb":
            import pymysql

            p = urlsplit(self.url)
            return pymysql.connect(host=p.hostname, port=p.port or 3306, user=p.username or "root",
                                   password=p.password or "", database=p.path.lstrip("/"), autocommit=True)
        conn = sqlite3.connect(urlsplit(self.url).path, isolation_level=None)
        return conn

    def _sql_id(self, ident: uuid.UUID) -> Any:
        return ident if self.kind == "postgres" else ident.hex

    def _sql_read(self, ident: uuid.UUID) -> dict[str, Any]:
        mark = "?" if self.kind == "sqlite" else "%s"
        conn = self._sql()
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT data FROM uf_{self.et} WHERE id = {mark}", (self._sql_id(ident),))
            value = cur.fetchone()[0]
        finally:
            conn.close()
        return json.loads(value) if isinstance(value, (str, bytes)) else value

    def _sql_edit(self, ident: uuid.UUID, change: Edit) -> None:
        data = change(self._sql_read(ident))
        mark = "?" if self.kind == "sqlite" else "%s"
        conn = self._sql()
        try:
            cur = conn.cursor()
            cur.execute(f"UPDATE uf_{self.et} SET data = {mark} WHERE id = {mark}", (json.dumps(data), self._sql_id(ident)))
            assert cur.rowcount == 1
        finally:
            conn.close()

    _read_postgres = _read_mariadb = _read_sqlite = _sql_read
    _edit_postgres = _edit_mariadb = _edit_sqlite = _sql_edit

    # -- MongoDB: $set / $unset of the document's top-level fields (the flat layout), as a mongo shell user would
    def _coll(self) -> Any:
        import pymongo

        client: Any = pymongo.MongoClient(self.url, uuidRepresentation="standard")
        return client, client.get_default_database()[self.et]

    def _read_mongodb(self, ident: uuid.UUID) -> dict[str, Any]:
        client, coll = self._coll()
        try:
            return {k: v for k, v in coll.find_one({"_id": ident}).items() if k != "_id"}
        finally:
            client.close()

    def _edit_mongodb(self, ident: uuid.UUID, change: Edit) -> None:
        before = self._read_mongodb(ident)
        after = change(dict(before))
        update: dict[str, Any] = {}
        sets = {k: v for k, v in after.items() if before.get(k, object()) != v}
        unsets = {k: "" for k in before if k not in after}
        if sets:
            update["$set"] = sets
        if unsets:
            update["$unset"] = unsets
        client, coll = self._coll()
        try:
            assert coll.update_one({"_id": ident}, update).modified_count == 1
        finally:
            client.close()

    # -- Redis: SET of the JSON string value (the default layout), as redis-cli would
    def _redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)

    def _read_redis(self, ident: uuid.UUID) -> dict[str, Any]:
        client = self._redis()
        try:
            return json.loads(client.get(f"{self.et}:{ident}"))
        finally:
            client.close()

    def _edit_redis(self, ident: uuid.UUID, change: Edit) -> None:
        data = change(self._read_redis(ident))
        client = self._redis()
        try:
            client.set(f"{self.et}:{ident}", json.dumps(data))
        finally:
            client.close()

    # -- Elasticsearch: the document re-indexed with other data
    def _es(self) -> Any:
        from elasticsearch import Elasticsearch

        return Elasticsearch(elasticsearch_http_url(self.url))

    def _read_elasticsearch(self, ident: uuid.UUID) -> dict[str, Any]:
        """The document's fields (the fields layout), without the uf_id keyword."""
        client = self._es()
        try:
            src = client.get(index=f"uf-{self.et}", id=str(ident))["_source"]
        finally:
            client.close()
        return {k: v for k, v in src.items() if k != "uf_id"}

    def _edit_elasticsearch(self, ident: uuid.UUID, change: Edit) -> None:
        client = self._es()
        try:
            src = client.get(index=f"uf-{self.et}", id=str(ident))["_source"]
            client.index(index=f"uf-{self.et}", id=str(ident), document=change(dict(src)), refresh=True)
        finally:
            client.close()

    # -- files: the JSON document (the data itself) edited in place (rewritten by json.dumps: reformatted too)
    def _path(self, ident: uuid.UUID) -> Path:
        s = str(ident)
        return Path(urlsplit(self.url).path) / self.et / s[0:2] / s[2:4] / f"{s}.json"

    def _read_files(self, ident: uuid.UUID) -> dict[str, Any]:
        return json.loads(self._path(ident).read_text())

    def _edit_files(self, ident: uuid.UUID, change: Edit) -> None:
        self._path(ident).write_text(json.dumps(change(self._read_files(ident))))

    # -- RabbitMQ: a stream message cannot change; a newer one with other data is the edit
    def _amqp(self) -> tuple[Any, str]:
        import pika

        exchange = self.url.split("exchange=")[1]
        return pika.BlockingConnection(pika.URLParameters(self.url.split("?")[0])), exchange

    def _read_rabbitmq(self, ident: uuid.UUID) -> dict[str, Any]:
        """The data of the latest message about ``ident`` in the stream, read with pika."""
        conn, exchange = self._amqp()
        latest: dict[str, Any] = {}
        try:
            channel = conn.channel()
            channel.basic_qos(prefetch_count=1000)
            seen = {"n": 0}

            def on_message(ch: Any, method: Any, props: Any, body: bytes) -> None:
                seen["n"] += 1
                if props.correlation_id == str(ident):
                    latest["data"] = json.loads(body)  # the default layout: the body is the data
                ch.basic_ack(method.delivery_tag)

            channel.basic_consume(f"{exchange}.history", on_message, arguments={"x-stream-offset": "first"})
            while True:
                before = seen["n"]
                conn.process_data_events(time_limit=1.0)
                if seen["n"] == before:
                    break
        finally:
            conn.close()
        return latest["data"]

    def _edit_rabbitmq(self, ident: uuid.UUID, change: Edit) -> None:
        import pika

        data = change(self._read_rabbitmq(ident))
        conn, exchange = self._amqp()
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(exchange, f"{self.et}.upserted", json.dumps(data).encode(), pika.BasicProperties(
                correlation_id=str(ident), message_id=str(uuid.uuid4()), delivery_mode=2,
                content_type="application/json", headers={"x-entity-type": self.et}))
        finally:
            conn.close()


@pytest.fixture(params=STORES)
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Forge, Raw, str]]:
    kind: str = request.param
    et = f"content{uuid.uuid4().hex[:8]}"
    url = {
        "postgres": lambda: request.getfixturevalue("postgres_url"),
        "mariadb": lambda: request.getfixturevalue("mariadb_url"),
        "sqlite": lambda: f"sqlite:///{tmp_path}/target.db",
        "mongodb": lambda: request.getfixturevalue("mongodb_url"),
        "redis": lambda: request.getfixturevalue("redis_url"),
        "elasticsearch": lambda: request.getfixturevalue("elasticsearch_url"),
        "files": lambda: f"file://{tmp_path}/files?fsync=false",
        "rabbitmq": lambda: f"{request.getfixturevalue('amqp_url')}?exchange=uf_content_{et}",
    }[kind]()
    forge = make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", (kind, url), ids=IDS)
    target = forge.stores[1]
    yield forge, Raw(kind, url, et), et
    for h in forge.stores:
        if "delete" in h.adapter.capabilities and not h.adapter.append_only:
            h.adapter.drop(et, prover=forge.prover)
    if kind == "redis":
        forget_redis_type(url, et)
    if kind == "rabbitmq":
        target.adapter.delete_topology()  # type: ignore[attr-defined]
    forge.close()


def _set(field: str, value: Any) -> Edit:
    return lambda d: {**d, field: value}


def _drop(field: str) -> Edit:
    return lambda d: {k: v for k, v in d.items() if k != field}


def test_content_edits_in_each_store_are_stale_with_fields_named_then_repaired(
        setup: tuple[Forge, Raw, str]) -> None:
    forge, raw, et = setup
    rows = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "email": f"u{i}@example.com", "n": i,
                                                   "price": "12.50", "tags": ["a", "b"]}) for i in range(N)]
    forge.write_many(rows)
    records = forge.records(rows)
    assert forge.audit(et).consistent
    edited, removed, renumbered, added = records[3], records[7], records[11], records[13]
    raw.edit(edited.id, _set("name", "Edited Behind Our Back"))
    raw.edit(removed.id, _drop("email"))
    raw.edit(renumbered.id, _set("n", 1000 + renumbered.data["n"]))
    raw.edit(added.id, _set("nick", "by hand"))
    name = raw.kind

    report = forge.audit(et)
    findings = {f.id: f for f in report.findings}
    assert set(findings) == {str(edited.id), str(removed.id), str(renumbered.id), str(added.id)}, report.findings
    assert {f.kind for f in findings.values()} == {"stale"} and {f.store for f in findings.values()} == {name}
    assert report.stores[name]["ok"] == N - 4 and report.stores[name]["stale"] == 4
    assert findings[str(added.id)].fields == ("nick",)
    assert "not in the source: nick" in findings[str(added.id)].detail
    assert findings[str(edited.id)].fields == ("name",)
    assert findings[str(removed.id)].fields == ("email",)
    assert "missing in the store: email" in findings[str(removed.id)].detail
    assert findings[str(renumbered.id)].fields == ("n",)
    for f in findings.values():  # values hidden by default, in the text and the JSON
        assert "Edited" not in f.detail and "1011" not in f.detail and f.values is None
        assert "values" not in f.to_dict()

    shown = {f.id: f for f in forge.audit(et, show_values=True).findings}
    assert shown[str(edited.id)].values == {"name": {"store": "Edited Behind Our Back", "source": "User 3"}}
    assert "Edited Behind Our Back" in shown[str(edited.id)].detail
    assert shown[str(removed.id)].values == {"email": {"source": removed.data["email"]}}
    assert shown[str(renumbered.id)].to_dict()["values"] == {"n": {"store": 1011, "source": 11}}

    repaired = forge.audit(et, repair=True)
    assert repaired.repaired[name]["rewritten"] == 4, repaired.repair_errors
    assert repaired.consistent, repaired.rechecked  # re-checked after the repair (a log: confirmed republishes)
    for r in (edited, removed, renumbered, added):  # the hand-added field is gone too
        assert raw.read(r.id) == r.json_data, f"{name}: {r.id} not restored"
    again = forge.audit(et)
    assert again.consistent, again.findings


def test_content_edit_in_the_source_is_found_too(tmp_path: Path) -> None:
    """The source's scan fingerprints its data too: a hand edit there makes the store stale."""
    et = "sourceedit"
    source = StoreHandle("source", open_store(f"sqlite:///{tmp_path}/source.db"), source=True)
    target = StoreHandle("files", open_store(f"file://{tmp_path}/files?fsync=false"))
    with Forge([source, target], ids=IDS, journal=Journal(tmp_path / "journal.sqlite3")) as forge:
        rows = [(et, {"email": f"s{i}@example.com"}, {"name": f"S {i}", "n": i}) for i in range(5)]
        forge.write_many(rows)
        changed = forge.records(rows)[2]
        conn = sqlite3.connect(tmp_path / "source.db", isolation_level=None)
        conn.execute(f"UPDATE uf_{et} SET data = ? WHERE id = ?", (json.dumps({"name": "changed", "n": 2}),
                                                                     changed.id.hex))
        conn.close()
        report = forge.audit(et)
        assert [(f.id, f.kind, f.fields) for f in report.findings] == [(str(changed.id), "stale", ("name",))]
