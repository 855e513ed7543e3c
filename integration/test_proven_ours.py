"""Issue 18, rule 1 and the core of rule 2: an entry is ours only when uuid-forge can prove it.

Another application's entries are planted with each store's own driver in containers shared with
it (a Redis database without a prefix, the user's own MongoDB collection and Elasticsearch index, a
directory of files), named exactly as the issue found them: version-4 UUIDs, version-5 UUIDs of
its own namespace, and 32-hex session tokens that read as a version-5 UUID. Beside them, our own
entities of a declared type (key field ``email``). Before the fix, ``audit --repair --apply
--delete-orphans`` deleted every look-alike and then reported "consistent"; ``drop()`` and a point
audit with repair deleted them too; foreign source rows were copied everywhere.

Servers: PostgreSQL (the source), Redis, the MongoDB and Elasticsearch stand-ins, files.
"""

from __future__ import annotations

import json
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
from bson.binary import Binary, UuidRepresentation
from elasticsearch import Elasticsearch

from tests.scaffold import make_forge
from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import ValidationError
from uuid_forge.record import Record

from .scaffold import run_cli, write_forge_toml
from .servers import elasticsearch_http_url

THEIRS = uuid.UUID("9a5e5b2c-1f4e-4c1a-8d7e-2b3c4d5e6f70")  # another application's namespace
SHARED = ("redis", "mongodb", "elasticsearch", "files")


@dataclass
class World:
    config: Path
    urls: dict[str, str]
    et: str
    mongo_db: str
    collection: str
    index: str
    files: Path
    foreign: list[uuid.UUID]  # their look-alike names (the hex token's UUID included)
    token: str  # the 32-hex token, stored as it is


def _look_alikes(et: str) -> tuple[list[uuid.UUID], str]:
    v4 = uuid.uuid4()
    v5 = uuid.uuid5(THEIRS, f"session-{et}")
    hexed = uuid.uuid5(THEIRS, f"token-{et}")  # a random-looking 32-hex token that reads as version 5
    return [v4, v5, hexed], hexed.hex


@pytest.fixture
def world(postgres_url: str, redis_url: str, mongodb_url: str, elasticsearch_url: str,
          tmp_path: Path) -> Iterator[World]:
    tag = uuid.uuid4().hex[:8]
    et, mongo_db = f"member{tag}", f"uf_proven_{tag}"
    collection, index = f"their_members_{tag}", f"their-members-{tag}"
    mongo = urlunsplit(urlsplit(mongodb_url)._replace(path=f"/{mongo_db}", query=""))
    urls: dict[str, Any] = {
        "db": postgres_url, "redis": redis_url,
        "mongodb": f"{mongo}?collection={collection}&entity_type={et}",
        "elasticsearch": f"{elasticsearch_url}?index={index}&entity_type={et}&refresh=true",
        "files": f"file://{tmp_path}/shared?fsync=false",
    }
    extra = f'[types.{et}]\nkey = ["email"]\n'
    config = write_forge_toml(tmp_path / "uuid-forge.toml", urls, "db", namespace="proven.uuid-forge.test",
                              extra=extra)
    foreign, token = _look_alikes(et)
    w = World(config, urls, et, mongo_db, collection, index, tmp_path / "shared", foreign, token)
    yield w
    with Forge.from_config(str(config), env={}) as forge:
        forge.drop(et)
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter(match=f"{et}:*"):
        r.delete(key)
    r.close()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_url)
    client.drop_database(mongo_db)
    client.close()
    es = Elasticsearch(elasticsearch_http_url(elasticsearch_url))
    es.indices.delete(index=index, ignore_unavailable=True)
    es.close()


def _plant(w: World, forge: Forge) -> None:
    """Ours everywhere (written by uuid-forge), then theirs with each store's own driver."""
    forge.write_many([(w.et, {"email": f"m{i}@example.com", "name": f"Member {i}"}) for i in range(10)])
    v4, v5, _ = w.foreign
    names = [str(v4), str(v5), w.token]  # the token is 32 hex: our ID "in the wrong form" to a name parser
    body = {"token": "opaque session data", "owner": "someone@example.org"}
    r = redis.Redis.from_url(w.urls["redis"])
    for name in names:
        r.set(f"{w.et}:{name}", json.dumps(body))
    r.close()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(w.urls["mongodb"].split("?")[0])
    coll = client[w.mongo_db][w.collection]
    for ident in (v4, v5):
        coll.insert_one({"_id": Binary.from_uuid(ident, UuidRepresentation.STANDARD), **body})
    coll.insert_one({"_id": w.token, **body})
    client.close()
    es = Elasticsearch(elasticsearch_http_url(w.urls["elasticsearch"].split("?")[0]))
    for name in names:
        es.index(index=w.index, id=name, document=body, refresh=True)
    es.close()
    for name in names:
        folder = w.files / w.et / name[0:2] / name[2:4]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(body))


def _theirs_left(w: World) -> dict[str, int]:
    """How many of their entries each store still holds, read with its own driver."""
    names = [str(w.foreign[0]), str(w.foreign[1]), w.token]
    r = redis.Redis.from_url(w.urls["redis"])
    left = {"redis": sum(bool(r.exists(f"{w.et}:{n}")) for n in names)}
    r.close()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(w.urls["mongodb"].split("?")[0])
    left["mongodb"] = client[w.mongo_db][w.collection].count_documents({"owner": "someone@example.org"})
    client.close()
    es = Elasticsearch(elasticsearch_http_url(w.urls["elasticsearch"].split("?")[0]))
    left["elasticsearch"] = sum(bool(es.exists(index=w.index, id=n)) for n in names)
    es.close()
    left["files"] = sum((w.files / w.et / n[0:2] / n[2:4] / f"{n}.json").exists() for n in names)
    return left


ALL_THERE = dict.fromkeys(SHARED, 3)


def test_delete_orphans_through_the_api_deletes_no_look_alike(world: World) -> None:
    with Forge.from_config(str(world.config), env={}) as forge:
        _plant(world, forge)
        report = forge.audit(world.et, repair=True, delete_orphans=True, max_delete=100)
        assert _theirs_left(world) == ALL_THERE  # before the fix: all 12 deleted
        counts = report.to_dict()["stores"]
        assert {n: counts[n]["unproven"] for n in SHARED} == ALL_THERE
        assert not report.consistent and "unproven" in str(report)
        shown = json.dumps(report.to_dict())
        assert "someone@example.org" not in shown and str(world.foreign[0]) not in shown and world.token not in shown
        details = [f.detail for f in report.findings if f.kind == "unproven"]
        assert details and all("store the type's key fields" in d for d in details)


def test_delete_orphans_through_the_cli_deletes_no_look_alike(world: World) -> None:
    with Forge.from_config(str(world.config), env={}) as forge:
        _plant(world, forge)
    done = run_cli("audit", "-c", str(world.config), "-e", world.et, "--repair", "--apply", "--delete-orphans",
                   "--max-delete", "100", "--json", salt=None)
    assert _theirs_left(world) == ALL_THERE, done.stdout + done.stderr
    assert done.stdout.strip(), done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["consistent"] is False
    assert {n: out["stores"][n]["unproven"] for n in SHARED} == ALL_THERE
    assert str(world.foreign[1]) not in done.stdout and world.token not in done.stdout


def test_drop_and_point_audit_repair_delete_no_look_alike(world: World) -> None:
    with Forge.from_config(str(world.config), env={}) as forge:
        _plant(world, forge)
        point = forge.audit(world.et, ids=world.foreign, repair=True, delete_orphans=True, max_delete=100)
        assert _theirs_left(world) == ALL_THERE
        assert not point.consistent
        handles = {h.name: h.adapter for h in forge.stores}
        for name in SHARED:  # a shared container: a drop without the proof is refused, naming the store
            with pytest.raises(ValidationError, match="shared with others"):
                handles[name].drop(world.et)
        forge.drop(world.et, stores=SHARED)
        assert _theirs_left(world) == ALL_THERE
        ours = [forge.id_for(world.et, data={"email": f"m{i}@example.com"}) for i in range(10)]
        for name in SHARED:
            assert handles[name].get_many(world.et, ours) == {}, name  # ours went


def test_foreign_source_rows_are_never_copied(world: World) -> None:
    with Forge.from_config(str(world.config), env={}) as forge:
        _plant(world, forge)
        stray = [uuid.uuid4() for _ in range(3)]  # rows of another application in the source: no email
        forge.source.adapter.put_many([Record(world.et, i, {"token": "reset-me", "owner": "x@example.org"})
                                       for i in stray])
        report = forge.audit(world.et, repair=True)
        assert report.to_dict()["stores"]["db"]["unproven"] == 3
        assert not report.consistent
        for h in forge.stores[1:]:
            assert h.adapter.get_many(world.et, stray) == {}, h.name  # before the fix: copied everywhere


def test_our_mark_never_overrides_key_fields_that_give_another_id(world: World) -> None:
    """An Elasticsearch document planted with our mark (``uf_id`` equal to ``_id``) but another
    application's e-mail: its key fields rebuild another ID, so it is unproven and survives
    ``--repair --apply --delete-orphans`` (before the fix: classed orphan and deleted). A marked
    document without key fields stays provable by its mark (the existing rule)."""
    with Forge.from_config(str(world.config), env={}) as forge:
        _plant(world, forge)
    planted = uuid.uuid4()
    es = Elasticsearch(elasticsearch_http_url(world.urls["elasticsearch"].split("?")[0]))
    es.index(index=world.index, id=str(planted), refresh=True,
             document={"uf_id": str(planted), "email": "someone.else@example.org", "name": "Theirs"})
    try:
        done = run_cli("audit", "-c", str(world.config), "-e", world.et, "--repair", "--apply", "--delete-orphans",
                       "--max-delete", "100", "--json", salt=None)
        assert es.exists(index=world.index, id=str(planted)), done.stdout[-2000:] + done.stderr[-2000:]
        out = json.loads(done.stdout)
        assert out["stores"]["elasticsearch"]["unproven"] == 4 and out["stores"]["elasticsearch"]["orphan"] == 0
        found = [f for f in out["findings"] if f["class"] == "unproven" and f["store"] == "elasticsearch"
                 and "another ID" in f["detail"]]
        assert len(found) == 1 and str(planted) not in done.stdout and "someone.else" not in done.stdout
    finally:
        es.close()


# -- a SQL table of the user's, shared with the user's application -----------------------------------
def _pg_raw(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)


@pytest.fixture
def their_table(postgres_url: str) -> Iterator[str]:
    table = f"their_members_{uuid.uuid4().hex[:8]}"
    with _pg_raw(postgres_url) as raw:
        raw.execute(f'CREATE TABLE "{table}" (id uuid PRIMARY KEY, fingerprint text, data json, key text)')
    yield table
    with _pg_raw(postgres_url) as raw:
        raw.execute(f'DROP TABLE IF EXISTS "{table}"')


def _typed_forge(tmp_path: Path, source: Any, *others: Any, et: str) -> Forge:
    return make_forge(tmp_path, source, *others, ids=IDConfig(namespace=Namespace("proven.uuid-forge.test"), salt="s"),
                      types=[EntityType(et, key=("email",))])


def test_sql_user_table_look_alike_rows_are_never_deleted(postgres_url: str, their_table: str, tmp_path: Path) -> None:
    """The user's own table, which the user's application writes too: its rows named by UUIDs
    (version 4, version 5 of its namespace, a 32-hex token PostgreSQL reads as a uuid) survive
    repair with --delete-orphans, a point audit with repair, and drop; ours go."""
    et = f"member{uuid.uuid4().hex[:8]}"
    users = open_store(postgres_url, table=their_table, entity_type=et)
    forge = _typed_forge(tmp_path, postgres_url, ("users", users), et=et)
    try:
        forge.write_many([(et, {"email": f"m{i}@example.com", "name": f"Member {i}"}) for i in range(10)])
        foreign, token = _look_alikes(et)
        rows = [(foreign[0], {"token": "opaque session data", "owner": "someone@example.org"}),
                (foreign[1], {"email": "someone@example.org"}),  # a key field, giving another ID
                (token, {"email": None, "owner": "someone@example.org"})]
        with _pg_raw(postgres_url) as raw:
            for ident, data in rows:
                raw.execute(f'INSERT INTO "{their_table}" (id, data) VALUES (%s, %s)', (str(ident), json.dumps(data)))

        def theirs_left() -> int:
            with _pg_raw(postgres_url) as raw:
                return raw.execute(f'SELECT count(*) FROM "{their_table}" WHERE id = ANY(%s)', (foreign,)).fetchone()[0]

        report = forge.audit(et, repair=True, delete_orphans=True, max_delete=100)
        assert theirs_left() == 3  # before the fix: all 3 deleted, and the audit said consistent
        counts = report.to_dict()["stores"]["users"]
        # the version-4 name is not even in our form here (foreign); the other two look like ours: unproven
        assert (counts["unproven"], counts["foreign"]) == (2, 1) and not report.consistent
        point = forge.audit(et, ids=foreign, repair=True, delete_orphans=True, max_delete=100)
        assert theirs_left() == 3 and not point.consistent
        forge.drop(et)
        assert theirs_left() == 3
        with _pg_raw(postgres_url) as raw:
            assert raw.execute(f'SELECT count(*) FROM "{their_table}"').fetchone()[0] == 3  # ours went
    finally:
        forge.close()


# -- rule 2: a source ID in another text form is never a reason to delete -------------------------------
def test_source_ids_in_another_form_delete_nothing_elsewhere(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    """Five source rows hold their IDs in upper case (a 36-char text column): a full audit and a
    point audit with repair and --delete-orphans keep those five entities in the other store
    (before the fix: deleted from every store), and report the source's wrong form."""
    et = f"member{uuid.uuid4().hex[:8]}"
    forge = _typed_forge(tmp_path, postgres_url + "?id_format=string&prefix=pvs_", ("cache", f"{redis_url}?prefix=pv{et}"), et=et)
    try:
        forge.write_many([(et, {"email": f"m{i}@example.com", "name": f"Member {i}"}) for i in range(10)])
        ids = [forge.id_for(et, data={"email": f"m{i}@example.com"}) for i in range(10)]
        wrong = ids[:5]
        with _pg_raw(postgres_url) as raw:
            raw.execute(f'UPDATE "pvs_{et}" SET id = upper(id) WHERE id = ANY(%s)', ([str(i) for i in wrong],))
        cache = forge.stores[1].adapter
        point = forge.audit(et, ids=wrong, repair=True, delete_orphans=True, max_delete=100)
        assert set(cache.get_many(et, ids)) == set(ids)  # before: the five deleted from the cache
        assert sorted(f.id for f in point.findings if f.store == "source" and f.kind == "malformed") == sorted(
            str(i) for i in wrong)
        report = forge.audit(et, repair=True, delete_orphans=True, max_delete=100)
        assert set(cache.get_many(et, ids)) == set(ids)
        assert report.to_dict()["stores"]["source"]["malformed"] == 5
    finally:
        forge.drop(et)
        forge.close()
