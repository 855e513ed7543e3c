"""Issue 10, findings 2 and 3: repair never deletes what it does not own; key grammars are unambiguous.

Beside real records, other applications' entries are planted with each store's own driver,
exactly as the issue found them (Redis keys ``user:session-abc``, ``user:42``, ``user:42:prefs``;
a file ``user/ab/cd/README.txt``; a Mongo document ``_id: "legacy-42"``; ES documents
``invoice-2024-001`` and ``other-app-doc``; a SQL row ``invoice-2024-001``), plus one truly
malformed entry per store (one of our IDs in a wrong form). ``audit --repair --apply`` (through
the API and through the CLI) must leave every foreign entry byte for byte as it was, report them
as ``foreign`` with counts, and repair the malformed ones. Before the fix, every foreign entry
was classed "malformed" and deleted by a plain repair.

Servers: PostgreSQL (the source), Redis, the MongoDB and Elasticsearch stand-ins, files and SQLite.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("redis", reason=driver_missing("redis"))
pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
import pymongo
import redis
from elasticsearch import Elasticsearch

from uuid_forge import Forge, IDConfig, Namespace, open_store

from .scaffold import make_forge, run_cli, write_forge_toml
from .servers import elasticsearch_http_url

ET = "user"  # the issue's own entity type and key names
N = 20
FOREIGN_REDIS = ("user:session-abc", "user:42", "user:42:prefs")
FOREIGN_FILE = "user/ab/cd/README.txt"
FOREIGN_MONGO = "legacy-42"
FOREIGN_ES = ("invoice-2024-001", "other-app-doc")
FOREIGN_SQL = "invoice-2024-001"
EXPECTED_FOREIGN = {"redis": 3, "files": 1, "mongodb": 1, "elasticsearch": 2, "sqlite": 1}


def _b64(ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(ident.bytes).rstrip(b"=").decode()


def _with_db(url: str, db: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@dataclass
class World:
    config: Path
    urls: dict[str, str]
    files: Path
    sqlite_path: Path
    mongo_db: str


@pytest.fixture
def world(postgres_url: str, redis_url: str, mongodb_url: str, elasticsearch_url: str,
          tmp_path: Path) -> Iterator[World]:
    mongo_db = f"uf_safety_{uuid.uuid4().hex[:8]}"
    urls = {"db": postgres_url, "redis": redis_url, "files": f"file://{tmp_path}/files?fsync=false",
            "mongodb": _with_db(mongodb_url, mongo_db), "elasticsearch": elasticsearch_url,
            "sqlite": f"sqlite:///{tmp_path}/store.sqlite3"}
    config = write_forge_toml(tmp_path / "uuid-forge.toml", urls, "db", namespace="safety-c.uuid-forge.test")
    w = World(config, urls, tmp_path / "files", tmp_path / "store.sqlite3", mongo_db)
    _cleanup(w)
    yield w
    _cleanup(w)


def _cleanup(w: World) -> None:
    with Forge.from_config(str(w.config), env={}) as forge:
        for h in forge.stores:
            h.adapter.drop(ET)
    raw = redis.Redis.from_url(w.urls["redis"])
    raw.delete(*FOREIGN_REDIS)
    raw.close()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(w.urls["mongodb"])
    client.drop_database(w.mongo_db)
    client.close()


def _forge(w: World) -> Forge:
    return Forge.from_config(str(w.config), env={})


def _plant(w: World, forge: Forge) -> dict[str, uuid.UUID]:
    """Write N records everywhere, then plant the foreign entries and one malformed entry per store.
    Returns the ID planted as malformed, per store."""
    entities = [(ET, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "n": i}) for i in range(N)]
    forge.write_many(entities)
    records = forge.records(entities)
    wrong = {name: records[k].id for k, name in enumerate(("redis", "files", "mongodb", "elasticsearch", "sqlite"))}
    by_id = {r.id: r for r in records}

    r = redis.Redis.from_url(w.urls["redis"])
    r.set("user:session-abc", b"opaque session token \x00\xff")
    r.hset("user:42", mapping={"name": "a row from another app", "fp": "not ours"})
    r.hset("user:42:prefs", mapping={"theme": "dark"})
    x = by_id[wrong["redis"]]
    r.delete(f"user:{x.id}")
    r.set(f"user:{str(x.id).upper()}", x.data_json)  # the default layout: a JSON string value
    r.close()

    readme = w.files / FOREIGN_FILE
    readme.parent.mkdir(parents=True, exist_ok=True)
    readme.write_bytes(b"Not a record: the other team's notes.\n")
    y = str(wrong["files"])
    good = w.files / ET / y[0:2] / y[2:4] / f"{y}.json"
    good.rename(good.with_name(f"{y.upper()}.json"))

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(w.urls["mongodb"], uuidRepresentation="standard")
    coll = client[w.mongo_db][ET]
    coll.insert_one({"_id": FOREIGN_MONGO, "name": "from the legacy system", "fp": "whatever"})
    z = by_id[wrong["mongodb"]]
    coll.delete_one({"_id": z.id})
    coll.insert_one({"_id": str(z.id), **z.json_data})  # the flat layout, with a string _id
    client.close()

    es = Elasticsearch(elasticsearch_http_url(w.urls["elasticsearch"]))
    es.index(index=f"uf-{ET}", id="invoice-2024-001", document={"data": {"invoice": "2024-001", "total": 99.5}})
    es.index(index=f"uf-{ET}", id="other-app-doc", document={"id": "other-app-doc", "fp": "n/a", "data": {"x": 1}})
    v = by_id[wrong["elasticsearch"]]
    es.delete(index=f"uf-{ET}", id=str(v.id))
    es.index(index=f"uf-{ET}", id=_b64(v.id), document={"id": str(v.id), "fp": v.fingerprint, "key": v.key,
                                                         "data": v.json_data}, refresh=True)
    es.close()

    with sqlite3.connect(w.sqlite_path) as conn:
        conn.execute(f"INSERT INTO uf_{ET} (id, fingerprint, data) VALUES (?, ?, ?)",
                     (FOREIGN_SQL, "0" * 32, '{"invoice": "2024-001"}'))
        s = by_id[wrong["sqlite"]]
        conn.execute(f"UPDATE uf_{ET} SET id = ? WHERE id = ?", (s.id.hex.upper(), s.id.hex))
    conn.close()
    return wrong


def _snapshot(w: World) -> dict[str, Any]:
    """Every foreign entry exactly as its store's own driver returns it."""
    r = redis.Redis.from_url(w.urls["redis"])
    snap: dict[str, Any] = {f"redis {k}": (r.type(k), r.dump(k), r.ttl(k)) for k in FOREIGN_REDIS}
    r.close()
    snap["file"] = (w.files / FOREIGN_FILE).read_bytes()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(w.urls["mongodb"])
    snap["mongo"] = client[w.mongo_db][ET].find_one({"_id": FOREIGN_MONGO})
    client.close()
    es = Elasticsearch(elasticsearch_http_url(w.urls["elasticsearch"]))
    for doc_id in FOREIGN_ES:
        got = es.get(index=f"uf-{ET}", id=doc_id)
        snap[f"es {doc_id}"] = (got["found"], got["_source"])
    es.close()
    with sqlite3.connect(w.sqlite_path) as conn:
        snap["sqlite"] = conn.execute(f"SELECT id, fingerprint, data FROM uf_{ET} WHERE id = ?", (FOREIGN_SQL,)).fetchall()
    conn.close()
    return snap


def _assert_foreign_untouched(before: dict[str, Any], w: World) -> None:
    after = _snapshot(w)
    assert after == before
    assert all(v[1] is not None for k, v in after.items() if k.startswith("redis"))  # DUMP of a live key
    assert after["mongo"] is not None and after["sqlite"] != []
    assert all(after[f"es {d}"][0] for d in FOREIGN_ES)


def _assert_malformed_repaired(w: World, forge: Forge, wrong: dict[str, uuid.UUID]) -> None:
    r = redis.Redis.from_url(w.urls["redis"])
    assert not r.exists(f"user:{str(wrong['redis']).upper()}") and r.exists(f"user:{wrong['redis']}")
    r.close()
    y = str(wrong["files"])
    assert not (w.files / ET / y[0:2] / y[2:4] / f"{y.upper()}.json").exists()
    handles = {h.name: h.adapter for h in forge.stores}
    for name, ident in wrong.items():
        assert ident in handles[name].get_many(ET, [ident]), name


def test_repair_through_the_api_keeps_every_foreign_entry(world: World) -> None:
    with _forge(world) as forge:
        wrong = _plant(world, forge)
        before = _snapshot(world)
        report = forge.audit(ET, repair=True)
        _assert_foreign_untouched(before, world)  # first: before the fix, these were deleted
        counts = report.to_dict()["stores"]
        assert {n: counts[n]["foreign"] for n in EXPECTED_FOREIGN} == EXPECTED_FOREIGN
        assert {n: counts[n]["malformed"] for n in EXPECTED_FOREIGN} == dict.fromkeys(EXPECTED_FOREIGN, 1)
        assert {f.kind for f in report.findings} == {"malformed"}  # foreign entries are not findings to repair
        assert set(report.foreign_samples["redis"]) == {f"{ET}: {k}" for k in FOREIGN_REDIS}
        assert report.foreign_samples["files"] == [f"{ET}: {FOREIGN_FILE}"]
        assert report.foreign_samples["mongodb"] == [f"{ET}: {FOREIGN_MONGO}"]
        assert set(report.foreign_samples["elasticsearch"]) == {f"{ET}: {d}" for d in FOREIGN_ES}
        assert report.repair_errors == []
        assert {n: report.repaired[n]["malformed_removed"] for n in EXPECTED_FOREIGN} == \
            dict.fromkeys(EXPECTED_FOREIGN, 1)
        _assert_foreign_untouched(before, world)
        _assert_malformed_repaired(world, forge, wrong)

        again = forge.audit(ET, repair=True)  # foreign entries are not an inconsistency
        assert again.consistent and {n: again.stores[n]["foreign"] for n in EXPECTED_FOREIGN} == EXPECTED_FOREIGN
        assert {n: again.stores[n]["ok"] for n in EXPECTED_FOREIGN} == dict.fromkeys(EXPECTED_FOREIGN, N)
        _assert_foreign_untouched(before, world)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, salt=None, columns=250)


def test_repair_through_the_cli_keeps_every_foreign_entry(world: World) -> None:
    with _forge(world) as forge:
        wrong = _plant(world, forge)
    before = _snapshot(world)
    plan = _cli("audit", "-c", str(world.config), "-e", ET, "--repair")
    assert plan.returncode == 1, plan.stdout + plan.stderr
    assert f"redis/{ET}: rewrite 1 record(s)" in plan.stdout  # it said 3: the foreign keys were counted as ours
    assert "redis: leave 3 foreign entries alone" in plan.stdout
    assert "elasticsearch: leave 2 foreign entries alone" in plan.stdout
    assert f"redis/{ET}: rewrite 1 record(s) from db (0 missing, 0 stale, 1 malformed)" in plan.stdout
    _assert_foreign_untouched(before, world)

    done = _cli("audit", "-c", str(world.config), "-e", ET, "--repair", "--apply", "--json")
    _assert_foreign_untouched(before, world)  # first: before the fix, these were deleted
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert {n: payload["stores"][n]["foreign"] for n in EXPECTED_FOREIGN} == EXPECTED_FOREIGN
    assert {n: payload["after_repair"]["stores"][n]["foreign"] for n in EXPECTED_FOREIGN} == EXPECTED_FOREIGN
    assert payload["after_repair"]["consistent"] is True
    assert "mongodb" in payload["foreign_samples"] and not any(f["class"] == "foreign" for f in payload["findings"])
    _assert_foreign_untouched(before, world)
    with _forge(world) as forge:
        _assert_malformed_repaired(world, forge, wrong)

    table = _cli("audit", "-c", str(world.config), "-e", ET)
    assert table.returncode == 0 and "left alone" in table.stdout and "u•••:s••••••-a••" in table.stdout  # masked


# -- finding 3: prefixes ---------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["acme:", "acme"])
def test_two_tenants_on_one_redis_db_never_touch_each_other(redis_url: str, tmp_path: Path, prefix: str) -> None:
    """Tenant A: entity type ``acme``, no prefix. Tenant B: prefix ``acme``/``acme:``, entity type
    ``user``. A's audit, repair and orphan deletion must leave every key of B as it is."""
    raw = redis.Redis.from_url(redis_url)
    ids = IDConfig(namespace=Namespace("tenants.uuid-forge.test"))
    a = make_forge(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", ("redis", open_store(redis_url)),
                   ids=ids, journal="a.journal")
    b = make_forge(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", ("redis", open_store(redis_url, prefix=prefix)),
                   ids=ids, journal="b.journal")
    try:
        a.write_many([("acme", {"n": i}, {"tenant": "A", "n": i}) for i in range(10)])
        b.write_many([("user", {"n": i}, {"tenant": "B", "n": i}) for i in range(25)])
        b_keys = sorted(raw.scan_iter(match="acme:*"))
        b_keys = [k for k in b_keys if k.startswith(b"acme:user:") or k == b"acme:uf:types"]
        assert len(b_keys) == 26  # B's 25 records and its type set, all under "acme:"
        before = {k: raw.dump(k) for k in b_keys}

        for _ in range(2):
            # A's own type: the shared test DB also holds other tests' unprefixed types
            report = a.audit("acme", repair=True, delete_orphans=True)
            assert {k: raw.dump(k) for k in b_keys} == before  # first: before the fix, all of B's keys went
            assert report.stores["redis"]["foreign"] == 26 and report.stores["redis"]["ok"] == 10
            assert report.stores["redis"]["malformed"] == 0 and report.stores["redis"]["orphan"] == 0
            assert report.consistent and report.repair_errors == []
        assert "acme" in a.entity_types() and "user" not in a.entity_types()  # B's type is not A's
        assert {k: raw.dump(k) for k in b_keys} == before
        after_b = b.audit()
        assert after_b.consistent and after_b.stores["redis"]["ok"] == 25 and after_b.stores["redis"]["foreign"] == 0
        a.stores[1].adapter.drop("acme")  # dropping A's type leaves B's keys too
        assert {k: raw.dump(k) for k in b_keys} == before
        assert b.audit().stores["redis"]["ok"] == 25
    finally:
        a.stores[1].adapter.drop("acme")
        b.stores[1].adapter.drop("user")
        raw.delete("acme:uf:types")
        a.close()
        b.close()
        raw.close()


def test_a_redis_prefix_is_joined_with_a_separator(redis_url: str) -> None:
    """``?prefix=app`` gives ``app:user:<id>`` (it gave ``appuser:<id>``, the key of entity type
    ``appuser``); a prefix ending in ``:`` is not doubled."""
    raw = redis.Redis.from_url(redis_url)
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, "prefix.uuid-forge.test")
    from uuid_forge import Record

    record = Record("user", ident, {"n": 1})
    try:
        for url in (f"{redis_url}?prefix=app", f"{redis_url}?prefix=app:"):
            with open_store(url) as store, open_store(redis_url) as bare:
                store.put_many([record])
                assert raw.exists(f"app:user:{ident}") and not raw.exists(f"appuser:{ident}")
                assert not raw.exists(f"app::user:{ident}")
                assert raw.sismember("app:uf:types", "user")
                assert store.key_of("user", ident) == f"app:user:{ident}"  # type: ignore[attr-defined]
                assert list(bare.scan("appuser", include_malformed=True)) == []  # not another type's key
                assert dict(store.scan("user")) == {ident: record.fingerprint}
                store.drop("user")
                assert not raw.exists(f"app:user:{ident}")
    finally:
        raw.delete(f"app:user:{ident}", f"appuser:{ident}", "app:uf:types", "appuf:types")
        raw.close()


def test_overlapping_elasticsearch_prefixes_never_share_an_index(elasticsearch_url: str, tmp_path: Path) -> None:
    """Prefix ``P-`` with entity type ``a-b`` and prefix ``P-a-`` with type ``b`` both name index
    ``P-a-b``. The index's marker says whose it is: the other tenant neither lists, reads, writes
    nor deletes it, and its audit with orphan deletion leaves every document."""
    head = f"t{uuid.uuid4().hex[:8]}-"
    ids = IDConfig(namespace=Namespace("tenants.uuid-forge.test"))
    b = make_forge(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", ("es", open_store(elasticsearch_url, index_prefix=head + "a-")),
                   ids=ids, journal="b.journal")
    a = make_forge(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", ("es", open_store(elasticsearch_url, index_prefix=head)),
                   ids=ids, journal="a.journal")
    es = Elasticsearch(elasticsearch_http_url(elasticsearch_url))
    try:
        b.write_many([("b", {"n": i}, {"tenant": "B", "n": i}) for i in range(15)])
        a.write_many([("c", {"n": 1}, {"tenant": "A"})])
        es.indices.refresh(index=f"{head}a-b")
        assert es.count(index=f"{head}a-b")["count"] == 15
        report = a.audit(repair=True, delete_orphans=True)
        es.indices.refresh(index=f"{head}a-b")
        assert es.count(index=f"{head}a-b")["count"] == 15  # first: before the fix, A deleted them as orphans
        assert report.entity_types == ["c"] and report.consistent
        store = a.stores[1].adapter
        assert store.entity_types() == ["c"]
        from uuid_forge import Record, ValidationError

        for call in (lambda: store.put_many([Record("a-b", uuid.uuid5(uuid.NAMESPACE_DNS, "x"), {"n": 1})]),
                     lambda: list(store.scan("a-b")), lambda: store.drop("a-b")):
            with pytest.raises(ValidationError, match="belongs to entity type 'b' with prefix"):
                call()
        es.indices.refresh(index=f"{head}a-b")
        assert es.count(index=f"{head}a-b")["count"] == 15
        assert b.audit().consistent and b.audit().stores["es"]["ok"] == 15
    finally:
        for index in (f"{head}a-b", f"{head}c"):
            es.indices.delete(index=index, ignore_unavailable=True)
        es.close()
        a.close()
        b.close()


def test_overlapping_mongodb_prefixes_never_share_a_collection(mongodb_url: str, tmp_path: Path) -> None:
    """No prefix with entity type ``P_user`` and prefix ``P_`` with type ``user`` both name
    collection ``P_user``. Whoever wrote it first owns it: the other is refused, and its audit
    with orphan deletion stops with that error instead of deleting the first one's documents."""
    from uuid_forge import ValidationError

    head = f"t{uuid.uuid4().hex[:8]}_"
    db = f"uf_safety_{uuid.uuid4().hex[:8]}"
    url = _with_db(mongodb_url, db)
    ids = IDConfig(namespace=Namespace("tenants.uuid-forge.test"))
    b = make_forge(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", ("mongo", open_store(url, collection_prefix=head)),
                   ids=ids, journal="b.journal")
    a = make_forge(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", ("mongo", open_store(url)),
                   ids=ids, journal="a.journal")
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(url)
    try:
        b.write_many([("user", {"n": i}, {"tenant": "B", "n": i}) for i in range(10)])
        before = sorted(map(str, client[db][f"{head}user"].find()))
        assert len(before) == 10
        mine = a.records([(f"{head}user", {"n": i}, {"tenant": "A", "n": i}) for i in range(5)])
        a.source.adapter.put_many(mine)  # A's source holds its own type of that name
        refused: ValidationError | None = None
        try:
            a.audit(f"{head}user", repair=True, delete_orphans=True)
        except ValidationError as err:
            refused = err
        assert sorted(map(str, client[db][f"{head}user"].find())) == before  # first: the old code deleted them
        assert refused is not None and "belongs to entity type 'user'" in str(refused)
        with pytest.raises(ValidationError, match="belongs to entity type 'user' with prefix"):
            a.stores[1].adapter.put_many(mine)
        assert f"{head}user" not in a.stores[1].adapter.entity_types()
        assert sorted(map(str, client[db][f"{head}user"].find())) == before
        assert b.audit().consistent and b.audit().stores["mongo"]["ok"] == 10
    finally:
        client.drop_database(db)
        client.close()
        a.close()
        b.close()


def test_overlapping_sql_table_prefixes_never_share_a_table(postgres_url: str, tmp_path: Path) -> None:
    """table_prefix ``P_`` with entity type ``a_b`` and table_prefix ``P_a_`` with type ``b`` both
    name table ``P_a_b``: whoever wrote it first owns it, the other is refused."""
    import sqlalchemy as sa

    from uuid_forge import ValidationError

    head = f"t{uuid.uuid4().hex[:8]}_"
    ids = IDConfig(namespace=Namespace("tenants.uuid-forge.test"))
    b = make_forge(tmp_path, f"sqlite:///{tmp_path / 'b.db'}", ("pg", open_store(postgres_url, table_prefix=head + "a_")),
                   ids=ids, journal="b.journal")
    a = make_forge(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", ("pg", open_store(postgres_url, table_prefix=head)),
                   ids=ids, journal="a.journal")
    engine = sa.create_engine(postgres_url)

    def rows() -> list[Any]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(f'SELECT id, fingerprint, data::text FROM "{head}a_b" ORDER BY id'))]

    try:
        b.write_many([("b", {"n": i}, {"tenant": "B", "n": i}) for i in range(10)])
        before = rows()
        assert len(before) == 10
        mine = a.records([("a_b", {"n": i}, {"tenant": "A", "n": i}) for i in range(5)])
        a.source.adapter.put_many(mine)
        refused: ValidationError | None = None
        try:
            a.audit("a_b", repair=True, delete_orphans=True)
        except ValidationError as err:
            refused = err
        assert rows() == before  # first: the old code deleted B's rows and wrote A's into B's table
        assert refused is not None and "belongs to entity type 'b'" in str(refused)
        with pytest.raises(ValidationError, match="with prefix"):
            a.stores[1].adapter.put_many(mine)
        assert "a_b" not in a.stores[1].adapter.entity_types()
        assert b.audit().consistent and b.audit().stores["pg"]["ok"] == 10
    finally:
        b.stores[1].adapter.drop("b")
        engine.dispose()
        a.close()
        b.close()
