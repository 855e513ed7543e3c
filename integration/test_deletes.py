"""Issue 19, write-through deletes on the real servers.

* A delete across every adapter and layout (SQL: PostgreSQL, MariaDB and SQLite, a table per type
  and the user's own table; Redis: each layout, with a prefix of ours and without; MongoDB and
  Elasticsearch: a container per type and the user's own; files: each layout), checked absent
  with each store's own driver, while another application's entries in a shared container (one
  named by a version-4 UUID, and one squatting under the very ID being deleted, without our key
  fields) are untouched, and the squatter is reported unproven.
* A source on the user's own table keeps its tombstones in its side table.
* A delete while an optional store is down: journaled, then finished by ``replay`` (CLI).
* A replay of an older write after a delete does not bring the entity back.
* A store restored from an old backup after a delete: reported ``deleted``, then repaired.
* The nightly audit (CLI, every type) after a delete exits 0.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing

psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pymysql = pytest.importorskip("pymysql", reason=driver_missing("pymysql"))
redis = pytest.importorskip("redis", reason=driver_missing("redis"))
pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
from bson.binary import Binary, UuidRepresentation
from elasticsearch import Elasticsearch

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.entitytypes import EntityType
from uuid_forge.forge import StoreHandle
from uuid_forge.idmarker import META_TYPE, marker_id
from uuid_forge.tombstones import TOMBSTONE_TYPE, flag_id, tombstone_id

from .scaffold import DEFAULT_SALT, FAST_WRITE, forget_redis_type, make_forge, run_cli, write_forge_toml
from .servers import elasticsearch_http_url
from .test_sql import _maria, _pg

IDS = IDConfig(namespace=Namespace("deletes.uuid-forge.test"), salt="deletes")
THEIRS = {"theirs": "another application's entry", "owner": "someone@example.org"}


@dataclass
class Target:
    """One store layout under test: its adapter, whether its container is shared with another
    application, and raw access through the store's own driver."""

    name: str
    adapter: Any
    shared: bool
    holds: Callable[[uuid.UUID], bool]  # raw: an entry named by this ID is there
    plant: Callable[[uuid.UUID, uuid.UUID], None] | None = None  # raw: theirs under (a v4 name, our ID)
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # data a layout needs (raw files: the content)


def _ids_of(values: list[Any]) -> set[uuid.UUID]:
    out = set()
    for v in values:
        if isinstance(v, uuid.UUID):
            out.add(v)
        elif isinstance(v, (bytes, bytearray)) and len(v) == 16:
            out.add(uuid.UUID(bytes=bytes(v)))
        else:
            try:
                out.add(uuid.UUID(str(v)))
            except ValueError:
                pass
    return out


# -- SQL -------------------------------------------------------------------------------------------------
def _sql_run(kind: str, url: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if kind == "postgresql":
        with _pg(url) as raw:
            cur = raw.execute(statement, params)
            return cur.fetchall() if cur.description else []
    if kind == "mariadb":
        with _maria(url) as raw, raw.cursor() as cur:
            cur.execute(statement, params)
            return list(cur.fetchall()) if cur.description else []
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        with db:
            return db.execute(statement.replace("%s", "?"), params).fetchall()
    finally:
        db.close()


def _sql_target(request: pytest.FixtureRequest, tmp_path: Path, kind: str, own: bool, et: str, tag: str) -> Target:
    url = {"postgresql": lambda: request.getfixturevalue("postgres_url"),
           "mariadb": lambda: request.getfixturevalue("mariadb_url"),
           "sqlite": lambda: f"sqlite:///{tmp_path}/store.db"}[kind]()
    quote = "`" if kind == "mariadb" else '"'
    if own:
        table = f"their_users_{tag}"
        id_type = "uuid" if kind == "postgresql" else "CHAR(36)"
        text = "VARCHAR(200)" if kind == "mariadb" else "TEXT"
        _sql_run(kind, url, f"CREATE TABLE {quote}{table}{quote} (id {id_type} PRIMARY KEY, email {text}, "
                            f"name {text}, note {text})")
        adapter = open_store(url, table=table, entity_type=et, fields={"email": "email", "name": "name"})
    else:
        table = f"d{tag}_{et}"
        adapter = open_store(f"{url}{'&' if '?' in url else '?'}prefix=d{tag}_")

    def holds(ident: uuid.UUID) -> bool:
        return ident in _ids_of([r[0] for r in _sql_run(kind, url, f"SELECT id FROM {quote}{table}{quote}")])

    def plant(v4: uuid.UUID, squat: uuid.UUID) -> None:
        for ident in (v4, squat):
            _sql_run(kind, url, f"INSERT INTO {quote}{table}{quote} (id, email, name, note) VALUES (%s, NULL, NULL, "
                                "%s)", (str(ident), json.dumps(THEIRS)))

    t = Target(f"sql-{kind}-{'own' if own else 'per-type'}", adapter, own, holds, plant if own else None)
    t.cleanup.append(lambda: _sql_run(kind, url, f"DROP TABLE IF EXISTS {quote}{table}{quote}"))
    return t


# -- Redis -----------------------------------------------------------------------------------------------
def _redis_target(redis_url: str, layout: str, prefixed: bool, et: str, tag: str) -> Target:
    prefix = f"dl{tag}" if prefixed else ""
    adapter = open_store(f"{redis_url}?layout={layout}" + (f"&prefix={prefix}" if prefix else ""))
    client = redis.Redis.from_url(redis_url)

    def keys(ident: uuid.UUID) -> list[bytes]:
        return list(client.scan_iter(match=f"*{ident}*", count=1000))

    def plant(v4: uuid.UUID, squat: uuid.UUID) -> None:
        for ident in (v4, squat):
            key = f"{et}:{ident}"
            if layout == "hash":
                client.hset(key, mapping={"theirs": THEIRS["theirs"]})
            else:
                client.set(key, json.dumps(THEIRS))

    def cleanup() -> None:
        if prefix:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
        forget_redis_type(redis_url, et)
        client.close()

    t = Target(f"redis-{layout}-{'prefix' if prefixed else 'shared'}", adapter, not prefixed,
               lambda i: bool(keys(i)), None if prefixed else plant)
    t.cleanup.append(cleanup)
    return t


# -- MongoDB ---------------------------------------------------------------------------------------------
def _mongo_target(mongodb_url: str, layout: str, own: bool, et: str, tag: str) -> Target:
    db_name = f"uf_del_{tag}"
    base = urlunsplit(urlsplit(mongodb_url)._replace(path=f"/{db_name}", query=""))
    collection = f"their_users_{tag}"
    adapter = open_store(f"{base}?layout={layout}" + (f"&collection={collection}&entity_type={et}" if own else ""))
    client: Any = pymongo.MongoClient(mongodb_url.split("?")[0])
    db = client[db_name]

    def holds(ident: uuid.UUID) -> bool:
        wanted = {"_id": {"$in": [Binary.from_uuid(ident, UuidRepresentation.STANDARD), str(ident)]}}
        return any(db[c].count_documents(wanted) for c in db.list_collection_names())

    def plant(v4: uuid.UUID, squat: uuid.UUID) -> None:
        for ident in (v4, squat):
            db[collection].insert_one({"_id": Binary.from_uuid(ident, UuidRepresentation.STANDARD), **THEIRS})

    def cleanup() -> None:
        client.drop_database(db_name)
        client.close()

    t = Target(f"mongodb-{layout}-{'own' if own else 'per-type'}", adapter, own, holds, plant if own else None)
    t.cleanup.append(cleanup)
    return t


# -- Elasticsearch ---------------------------------------------------------------------------------------
def _es_target(elasticsearch_url: str, own: bool, et: str, tag: str) -> Target:
    index = f"their-users-{tag}"
    prefix = f"ufdel{tag}-"
    options = f"index={index}&entity_type={et}" if own else f"prefix={prefix}"
    adapter = open_store(f"{elasticsearch_url}?{options}&refresh=true")
    es = Elasticsearch(elasticsearch_http_url(elasticsearch_url.split("?")[0]))
    pattern = index if own else f"{prefix}*"

    def holds(ident: uuid.UUID) -> bool:
        es.indices.refresh(index=pattern, ignore_unavailable=True)
        found = es.search(index=pattern, query={"ids": {"values": [str(ident)]}}, ignore_unavailable=True)
        return bool(found["hits"]["hits"])

    def plant(v4: uuid.UUID, squat: uuid.UUID) -> None:
        for ident in (v4, squat):
            es.index(index=index, id=str(ident), document=THEIRS, refresh=True)

    def cleanup() -> None:
        es.indices.delete(index=index if own else f"{prefix}{et}", ignore_unavailable=True)
        es.close()

    t = Target(f"elasticsearch-{'own' if own else 'per-type'}", adapter, own, holds, plant if own else None)
    t.cleanup.append(cleanup)
    return t


# -- files -----------------------------------------------------------------------------------------------
def _files_target(tmp_path: Path, layout: str, et: str) -> Target:
    root = tmp_path / f"files-{layout}"
    adapter = open_store(f"file://{root}?layout={layout}&fsync=false")

    def holds(ident: uuid.UUID) -> bool:
        return any(root.rglob(f"{ident}*"))

    def plant(v4: uuid.UUID, squat: uuid.UUID) -> None:
        for ident in (v4, squat):
            s = str(ident)
            folder = root / et / s[0:2] / s[2:4]
            folder.mkdir(parents=True, exist_ok=True)
            if layout == "raw":  # another application's bytes and sidecar, holding no key of ours
                (folder / f"{s}.bin").write_bytes(b"their bytes")
                (folder / f"{s}.meta.json").write_text(json.dumps(THEIRS))
            else:
                (folder / f"{s}.json").write_text(json.dumps(THEIRS))

    extra = {"content": base64.b64encode(b"member's file").decode()} if layout == "raw" else {}
    return Target(f"files-{layout}", adapter, True, holds, plant, extra=extra)


MATRIX = [
    *(f"sql-{k}-{o}" for k in ("postgresql", "mariadb", "sqlite") for o in ("per-type", "own")),
    *(f"redis-{layout}-{p}" for layout in ("data", "hash", "envelope") for p in ("prefix", "shared")),
    *(f"mongodb-{layout}-{o}" for layout in ("data", "envelope") for o in ("per-type", "own")),
    "elasticsearch-per-type", "elasticsearch-own", "files-data", "files-envelope", "files-raw",
]


@pytest.fixture(params=MATRIX)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Target, str]]:
    tag = uuid.uuid4().hex[:8]
    et = f"member{tag}"
    kind, *rest = request.param.split("-")
    if kind == "sql":
        t = _sql_target(request, tmp_path, rest[0], rest[1] == "own", et, tag)
    elif kind == "redis":
        t = _redis_target(request.getfixturevalue("redis_url"), rest[0], rest[1] == "prefix", et, tag)
    elif kind == "mongodb":
        t = _mongo_target(request.getfixturevalue("mongodb_url"), rest[0], rest[1] == "own", et, tag)
    elif kind == "elasticsearch":
        t = _es_target(request.getfixturevalue("elasticsearch_url"), rest[0] == "own", et, tag)
    else:
        t = _files_target(tmp_path, rest[0], et)
    try:
        yield t, et
    finally:
        t.adapter.close()
        for step in t.cleanup:
            step()


def _members(et: str, n: int, suffix: str = "", extra: dict[str, Any] | None = None
             ) -> list[tuple[str, dict[str, Any]]]:
    return [(et, {"email": f"m{i}@example.com", "name": f"Member {i}{suffix}", **(extra or {})}) for i in range(n)]


def test_a_delete_removes_only_what_is_proven_ours_in_every_store(target: tuple[Target, str], tmp_path: Path) -> None:
    t, et = target
    source = open_store(f"sqlite:///{tmp_path}/source.db")
    forge = make_forge(tmp_path, ("source", source), StoreHandle(t.name, t.adapter), ids=IDS,
                       types=[EntityType(et, key=("email",))])
    try:
        forge.write_many(_members(et, 5, extra=t.extra))
        ours = [forge.id_for(et, data={"email": f"m{i}@example.com"}) for i in range(5)]
        squat = forge.id_for(et, data={"email": "m9@example.com"})  # never written by us
        v4 = uuid.uuid4()
        assert all(t.holds(i) for i in ours), "the write did not land where the raw check looks"
        if t.plant is not None:
            t.plant(v4, squat)
            assert t.holds(v4) and t.holds(squat)
        # forced: the source never held m9, and the point is what each store does with an entry it cannot prove
        report = forge.delete_many([(et, {"email": "m0@example.com"}), (et, {"email": "m9@example.com"})], force=True)
        res = report.stores[t.name]
        assert not t.holds(ours[0]), f"{t.name}: the deleted entity is still there"
        assert all(t.holds(i) for i in ours[1:]), f"{t.name}: another entity of ours went"
        assert report.ok and res.status == "ok" and res.deleted == 1, report
        if t.plant is not None:
            assert t.holds(v4), f"{t.name}: another application's entry was deleted"
            assert t.holds(squat), f"{t.name}: an unproven entry under our ID was deleted"
            assert res.unproven == 1 and res.unproven_ids == [f"{et} {squat}"]
            assert "someone@example.org" not in json.dumps(report.to_dict())
        else:
            assert res.unproven == 0
        assert source.get_many(et, [ours[0]]) == {}
        assert set(source.get_many(TOMBSTONE_TYPE, [tombstone_id(et, ours[0]), tombstone_id(et, squat)])) == {
            tombstone_id(et, ours[0]), tombstone_id(et, squat)}
        assert forge.pending() == {}
    finally:
        forge.drop(et)
        forge.close()


# -- a source on the user's own table ----------------------------------------------------------------------
def test_a_source_on_the_users_own_table_keeps_tombstones_aside_and_leaves_unproven_rows(
        postgres_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    et, table = f"member{tag}", f"their_users_{tag}"
    _sql_run("postgresql", postgres_url, f'CREATE TABLE "{table}" (id uuid PRIMARY KEY, email text, name text)')
    source = open_store(postgres_url, table=table, entity_type=et, fields={"email": "email", "name": "name"})
    files = tmp_path / "files"
    forge = make_forge(tmp_path, ("db", source), ("files", f"file://{files}?fsync=false"), ids=IDS,
                       types=[EntityType(et, key=("email",))])
    try:
        forge.write_many(_members(et, 3))
        squat = forge.id_for(et, data={"email": "m9@example.com"})
        _sql_run("postgresql", postgres_url, f'INSERT INTO "{table}" (id, email, name) VALUES (%s, NULL, %s)',
                 (squat, "theirs"))
        report = forge.delete_many([(et, {"email": "m0@example.com"}), (et, {"email": "m9@example.com"})])
        rows = {r[0] for r in _sql_run("postgresql", postgres_url, f'SELECT id FROM "{table}"')}
        gone = forge.id_for(et, data={"email": "m0@example.com"})
        assert gone not in rows and squat in rows and len(rows) == 3
        assert report.stores["db"].unproven == 1 and report.stores["db"].deleted == 1
        assert not any(files.rglob(f"{gone}*"))
        stones = [tombstone_id(et, gone), tombstone_id(et, squat)]
        side = _sql_run("postgresql", postgres_url, 'SELECT id FROM "uuid_forge_meta" WHERE id = ANY(%s)', (stones,))
        assert {r[0] for r in side} == {stones[0]}, "the tombstone is not in the side table, or a row left was"
    finally:
        source.delete_many(TOMBSTONE_TYPE, [tombstone_id(et, forge.id_for(et, data={"email": "m0@example.com"})),
                                            flag_id(et)])
        source.delete_many(META_TYPE, [marker_id(et)])
        forge.close()
        _sql_run("postgresql", postgres_url, f'DROP TABLE IF EXISTS "{table}"')


# -- the journal, replay and audit, through the CLI as cron runs it ----------------------------------------
@pytest.fixture
def deployment(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A PostgreSQL source (a table per type), a Redis cache (optional, with a prefix of ours) and
    files, configured in a uuid-forge.toml; the type is declared with its key field."""
    tag = uuid.uuid4().hex[:8]
    et = f"member{tag}"
    urls = {"db": f"{postgres_url}?prefix=dd{tag}_", "cache": f"{redis_url}?prefix=dc{tag}",
            "files": f"file://{tmp_path}/files?fsync=false"}
    stores: dict[str, Any] = {**urls, "cache": {"url": urls["cache"], "optional": True}}
    config = write_forge_toml(tmp_path / "uuid-forge.toml", stores, "db", namespace="deletes.cli.uuid-forge.test",
                              write=FAST_WRITE, extra=f'[types.{et}]\nkey = ["email"]\n')
    yield {"config": config, "et": et, "urls": urls, "tag": tag, "files": tmp_path / "files"}
    with Forge.from_config(str(config), env={"UUID_FORGE_SALT": DEFAULT_SALT}) as forge:
        forge.drop(et)
        for reserved in (TOMBSTONE_TYPE, META_TYPE):  # the per-prefix tables of uuid-forge's own records
            forge.source.adapter.drop(reserved)
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"dc{tag}*", count=1000):
        client.delete(key)
    client.close()


def _forge(d: dict[str, Any], **urls: str) -> Forge:
    from uuid_forge.settings import load_settings

    env = {"UUID_FORGE_SALT": DEFAULT_SALT, **{f"UUID_FORGE_STORE_{n.upper()}_URL": u for n, u in urls.items()}}
    return Forge.from_settings(load_settings(str(d["config"]), env))


def _cli(d: dict[str, Any], *args: str, **urls: str) -> subprocess.CompletedProcess[str]:
    env = {f"UUID_FORGE_STORE_{n.upper()}_URL": u for n, u in urls.items()}
    return run_cli(*args[:1], "-c", str(d["config"]), *args[1:], env=env)


def test_a_delete_while_an_optional_store_is_down_is_finished_by_replay(deployment: dict[str, Any]) -> None:
    d, et = deployment, deployment["et"]
    with _forge(d) as forge:
        forge.write_many(_members(et, 4))
        gone = forge.id_for(et, data={"email": "m1@example.com"})
    down = "redis://127.0.0.1:1/0?prefix=dc" + d["tag"] + "&socket_connect_timeout=0.2"
    done = _cli(d, "delete", "--entity", et, "--key", "email=m1@example.com", cache=down)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "journaled" in done.stdout and "m1@example.com" not in done.stdout + done.stderr
    client = redis.Redis.from_url(d["urls"]["cache"].split("?")[0])
    try:
        assert any(client.scan_iter(match=f"dc{d['tag']}*{gone}*")), "the cache was not down"
        assert not any(d["files"].rglob(f"{gone}*"))
        done = _cli(d, "replay")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "of which deletes: cache: 1" in done.stdout
        assert not any(client.scan_iter(match=f"dc{d['tag']}*{gone}*")), "replay did not finish the delete"
    finally:
        client.close()
    done = _cli(d, "audit")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_replay_of_an_older_write_does_not_bring_it_back(deployment: dict[str, Any], tmp_path: Path) -> None:
    d, et = deployment, deployment["et"]
    with _forge(d) as forge:
        forge.write_many(_members(et, 3))
        gone = forge.id_for(et, data={"email": "m0@example.com"})
        # a writer crashed between its intent and the source write: the old version waits in the journal
        assert forge.journal is not None
        forge.journal.record_intent(forge.records(_members(et, 1, " old")), [h.name for h in forge.stores])
    done = _cli(d, "delete", "--entity", et, "--key", "email=m0@example.com")
    assert done.returncode == 0, done.stdout + done.stderr
    done = _cli(d, "replay")
    assert done.returncode == 0, done.stdout + done.stderr
    with _forge(d) as forge:
        for h in forge.stores:
            assert h.adapter.get_many(et, [gone]) == {}, f"{h.name}: replay brought a deleted entity back"
        # a live write of an older version (a stale task) is refused too, named, never its data
        done = _cli(d, "write", et, "-d", "email=m0@example.com", "-d", "name=stale")
        assert done.returncode == 2 and f"{et} {gone}" in done.stderr and "stale" not in done.stderr
        assert forge.source.adapter.get_many(et, [gone]) == {}
    done = _cli(d, "audit")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_store_restored_from_an_old_backup_is_reported_deleted_and_repaired(deployment: dict[str, Any]) -> None:
    d, et = deployment, deployment["et"]
    with _forge(d) as forge:
        forge.write_many(_members(et, 20))
        gone = forge.id_for(et, data={"email": "m3@example.com"})
    backup = {p: p.read_bytes() for p in d["files"].rglob(f"{gone}*")}
    assert backup
    done = _cli(d, "delete", "--entity", et, "--key", "email=m3@example.com", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["stores"]["files"]["deleted"] == 1, done.stderr
    nightly = _cli(d, "audit")  # the nightly line: every type, exit 0 after a delete
    assert nightly.returncode == 0, nightly.stdout + nightly.stderr
    for path, content in backup.items():  # the files restored from last week's backup
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    done = _cli(d, "audit", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["stores"]["files"]["deleted"] == 1 and report["stores"]["files"]["orphan"] == 0
    assert [(f["class"], f["id"]) for f in report["findings"]] == [("deleted", str(gone))]
    done = _cli(d, "audit", "--repair", "--apply")  # no --delete-orphans: the user asked for this deletion
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(d["files"].rglob(f"{gone}*"))
    nightly = _cli(d, "audit")
    assert nightly.returncode == 0, nightly.stdout + nightly.stderr
