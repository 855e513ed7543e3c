"""An OLD world to migrate (issue 21): users and orders under random IDs in five stores, planted
with the stores' own drivers as the application that wrote them would, beside another
application's entries that a migration must leave byte for byte as they are.

A test helper, not a test (integration/test_migration_world.py tests it)::

    world = seed(urls, new_prefix(), n_users=20_000, n_orders=50_000)
    ...  # uuid-forge migrate plan / expand / verify / contract, with world.store_urls()
    assert check_migrated(world, generator) == []
    cleanup(world)

What it plants, every name carrying the run's ``prefix`` (docs/testing.md: a test's names are
its own, so runs share servers):

* PostgreSQL, schema ``PREFIX``: ``users(id serial, email unique, name)`` and
  ``orders(id serial, order_no unique, user_id int references users(id), total_cents, status)``,
  and another application's table ``app_events`` beside them. (Another tenant's rows inside
  ``users`` are not modelled: without a tenant column nothing tells them from users, and the key
  ``email`` would merge them; the other application lives in its own table.)
* Redis (the URL's database): ``PREFIX:user:<serial>`` and ``PREFIX:order:<serial>`` JSON strings;
  another application's keys under the same pattern: ``PREFIX:user:<random v4>`` sessions (no
  ``email``: no key fields) and ``PREFIX:user:<serial>:prefs``.
* MongoDB (the URL's database, else ``uuid_forge_test``): ``PREFIX_users`` (ObjectId ``_id``,
  ``{email, name}``) and ``PREFIX_orders`` (ObjectId ``_id``, ``{order_no, user_id, total_cents,
  status}``); an order's ``user_id`` is the user's serial, the one old user ID every store shares
  (the application kept PostgreSQL's key, not the document's ObjectId); plus documents without key
  fields (a counter, a settings document with a string ``_id``, an export record).
* Elasticsearch: index ``PREFIX-users``, documents under version-4 ``_id``s, ``{email, name}``;
  another application's documents ``other-app-doc`` and one under a version-4 ``_id``.
* Files, under ``<files>/PREFIX``: ``user/<v4>.json`` ``{email, name}`` (the same v4 as the
  user's Elasticsearch ``_id``: the application's public user ID), a ``README.txt`` and another
  application's ``<v4>.json`` without key fields. The folder is named by the entity type (``user``),
  not ``users``: the file adapter keeps a type's files in the folder of its name, so this is where
  a migration through uuid-forge can find them.

Entity types ``user`` (key ``email``) and ``order`` (key ``order_no``, reference ``user_id`` to
``user``). :meth:`World.store_urls` gives the uuid-forge stores over that world (default layouts).

:func:`check_migrated` judges the END state after ``contract`` and :func:`check_unchanged` the
state after ``rollback``; each returns the problems found (empty: fine), at most a few per kind.
New entries are read through uuid-forge adapters opened on :meth:`World.store_urls` (so in each
store's native encoding for its layout, whatever that is, decoded by the code uuid-forge audits
with); old and foreign entries through the raw drivers (what the application and the other
application see, byte for byte).
"""

from __future__ import annotations

import decimal
import json
import os
import random
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg
import pymongo
import redis
from bson import ObjectId
from elasticsearch import Elasticsearch, helpers
from psycopg import sql as pgsql

from uuid_forge import IDConfig, UUIDGenerator, open_store
from uuid_forge.contract import Adapter
from uuid_forge.record import ForeignEntry, MalformedID

from .servers import elasticsearch_http_url

__all__ = ["OldOrder", "OldUser", "World", "check_migrated", "check_unchanged", "cleanup", "new_prefix", "seed"]

USER, ORDER = "user", "order"
STATUSES = ("new", "paid", "shipped", "cancelled")
_PREFIX = re.compile(r"[a-z][a-z0-9_]{2,40}")
_MONGO_DB = "uuid_forge_test"
_LIMIT = 5  # problems listed per kind: the count says the rest


def new_prefix(word: str = "mig") -> str:
    """A prefix of this run's own (docs/testing.md): a short word and 10 random hex digits."""
    return f"{word}_{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class OldUser:
    serial: int
    email: str
    name: str
    oid: str  # the MongoDB ObjectId, as its 24 hex digits
    v4: str  # the Elasticsearch _id and file name

    def data(self) -> dict[str, Any]:
        return {"email": self.email, "name": self.name}


@dataclass(frozen=True)
class OldOrder:
    serial: int
    order_no: str
    user: int  # the user's serial: the old user ID an order refers to, in every store
    total_cents: int
    status: str
    oid: str

    def data(self) -> dict[str, Any]:
        return {"order_no": self.order_no, "user_id": self.user, "total_cents": self.total_cents,
                "status": self.status}


@dataclass
class World:
    """What :func:`seed` planted: the old entities with their old IDs in each store, and the
    foreign entries' names with their exact contents (``foreign``: name -> snapshot)."""

    prefix: str
    urls: dict[str, str] = field(repr=False)
    users: list[OldUser] = field(repr=False)
    orders: list[OldOrder] = field(repr=False)
    files_root: Path
    mongo_db: str
    foreign: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def schema(self) -> str:
        return self.prefix

    @property
    def users_index(self) -> str:
        return f"{self.prefix}-users"

    @property
    def collections(self) -> dict[str, str]:
        return {USER: f"{self.prefix}_users", ORDER: f"{self.prefix}_orders"}

    def store_urls(self) -> dict[str, str]:
        """uuid-forge stores over this world, with each store's default layout: name -> URL.
        ``db`` is uuid-forge's per-type tables in the world's schema (the serial tables cannot be
        opened by the SQL adapter: migrated in place, or copied into these)."""
        mongo = _with_path(self.urls["mongodb"], self.mongo_db)
        # exact_delete=false: the stand-in scans the whole collection for contract's $jsonSchema
        # filter (130 ms per document at 20,000); integration/test_read_raw.py tests the default
        docs = {"exact_delete": "false"}
        return {
            "db": _with_query(self.urls["postgres"], {"schema": self.schema}),
            "cache": _with_query(self.urls["redis"], {"prefix": self.prefix}),
            "docs_user": _with_query(mongo, {"collection": self.collections[USER], "entity_type": USER, **docs}),
            "docs_order": _with_query(mongo, {"collection": self.collections[ORDER], "entity_type": ORDER, **docs}),
            "search": _with_query(self.urls["elasticsearch"], {"index": self.users_index, "entity_type": USER}),
            "files": f"file://{self.files_root}?fsync=false",
        }

    #: the types each store of :meth:`store_urls` holds
    STORE_TYPES: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = (
        ("db", (USER, ORDER)), ("cache", (USER, ORDER)), ("docs_user", (USER,)), ("docs_order", (ORDER,)),
        ("search", (USER,)), ("files", (USER,)))

    def new_ids(self, generator: UUIDGenerator) -> tuple[dict[int, uuid.UUID], dict[int, uuid.UUID]]:
        """(user serial -> new ID, order serial -> new ID): the deterministic IDs from the key fields."""
        users = {u.serial: generator.generate(USER, email=u.email) for u in self.users}
        orders = {o.serial: generator.generate(ORDER, order_no=o.order_no) for o in self.orders}
        return users, orders


# -- seeding -----------------------------------------------------------------------------------

def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{path}"))


def _with_query(url: str, options: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(options)) if q)
    return urlunsplit(parts._replace(query=query))


def _libpq(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def _mongo_db(url: str) -> str:
    return urlsplit(url).path.strip("/") or _MONGO_DB


def _files_dir(url: str) -> Path:
    return Path(urlsplit(url).path if url.startswith("file://") else url)


def _v4(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _oid(rng: random.Random, n: int) -> str:
    """An ObjectId's 24 hex digits, unique per ``n`` in a run (time, random, counter)."""
    return f"{0x6700_0000 + n:08x}{rng.getrandbits(40):010x}{n & 0xFFFFFF:06x}"


def _people(prefix: str, n_users: int, n_orders: int) -> tuple[list[OldUser], list[OldOrder]]:
    """Deterministic per prefix: the same world for the same prefix and counts."""
    rng = random.Random(prefix)
    users = [OldUser(i, f"user{i}@{prefix.replace('_', '-')}.example.com", f"User {i}", _oid(rng, i), _v4(rng))
             for i in range(1, n_users + 1)]
    orders = [OldOrder(j, f"ORD-{prefix}-{j:07d}", 1 + (j * 7919) % n_users, (j * 3779) % 100_000,
                       STATUSES[j % len(STATUSES)], _oid(rng, n_users + j)) for j in range(1, n_orders + 1)]
    return users, orders


def _dumps(data: Mapping[str, Any]) -> bytes:
    """How the old application wrote JSON (not canonical: spaces after separators)."""
    return json.dumps(data).encode()


def seed(urls: Mapping[str, str], prefix: str, n_users: int = 20_000, n_orders: int = 50_000) -> World:
    """Plant the old world. ``urls``: ``postgres``, ``redis``, ``mongodb``, ``elasticsearch``
    (the test fixtures' URLs) and ``files`` (a directory; the world's files go in ``<files>/PREFIX``).
    Bulk calls throughout: COPY, pipelined MSET, insert_many, the bulk API."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r}: 3-41 lowercase letters, digits, '_', a letter first")
    users, orders = _people(prefix, n_users, n_orders)
    world = World(prefix, dict(urls), users, orders, _files_dir(urls["files"]) / prefix, _mongo_db(urls["mongodb"]))
    rng = random.Random(f"{prefix}/foreign")
    _seed_postgres(world)
    _seed_redis(world, rng)
    _seed_mongodb(world)
    _seed_elasticsearch(world, rng)
    _seed_files(world, rng)
    world.foreign = _foreign_snapshot(world)
    return world


def _seed_postgres(w: World) -> None:
    s = pgsql.Identifier(w.schema)
    with psycopg.connect(_libpq(w.urls["postgres"]), autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE SCHEMA {}").format(s))
        conn.execute(pgsql.SQL(
            "CREATE TABLE {s}.users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text);"
            "CREATE TABLE {s}.orders (id serial PRIMARY KEY, order_no text UNIQUE NOT NULL,"
            " user_id int NOT NULL REFERENCES {s}.users(id), total_cents int, status text);"
            "CREATE TABLE {s}.app_events (id serial PRIMARY KEY, kind text NOT NULL, payload jsonb)").format(s=s))
        with conn.cursor() as cur:
            with cur.copy(pgsql.SQL("COPY {}.users (id, email, name) FROM STDIN").format(s)) as copy:
                for u in w.users:
                    copy.write_row((u.serial, u.email, u.name))
            with cur.copy(pgsql.SQL("COPY {}.orders (id, order_no, user_id, total_cents, status) FROM STDIN")
                          .format(s)) as copy:
                for o in w.orders:
                    copy.write_row((o.serial, o.order_no, o.user, o.total_cents, o.status))
            for table in ("users", "orders"):  # the next serial after the copied ones, as the application's
                cur.execute(pgsql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                                      "(SELECT coalesce(max(id), 0) + 1 FROM {}.{}), false)").format(
                    s, pgsql.Identifier(table)), (f"{w.schema}.{table}",))
            cur.executemany(pgsql.SQL("INSERT INTO {}.app_events (kind, payload) VALUES (%s, %s)").format(s),
                            [("login", json.dumps({"user_id": 1, "ip": "192.0.2.1"})),
                             ("export", json.dumps({"rows": 3})), ("login", None)])


def _redis_keys(w: World) -> Iterator[tuple[str, bytes]]:
    """The old application's keys and values (JSON strings)."""
    for u in w.users:
        yield f"{w.prefix}:{USER}:{u.serial}", _dumps(u.data())
    for o in w.orders:
        yield f"{w.prefix}:{ORDER}:{o.serial}", _dumps(o.data())


def _foreign_redis_names(w: World, rng: random.Random) -> dict[str, bytes]:
    names = {f"{w.prefix}:{USER}:{_v4(rng)}": _dumps({"session": f"s-{rng.getrandbits(64):016x}"})
             for _ in range(5)}
    names[f"{w.prefix}:{USER}:1:prefs"] = _dumps({"theme": "dark"})
    return names


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _seed_redis(w: World, rng: random.Random) -> None:
    client = redis.Redis.from_url(w.urls["redis"])
    try:
        pipe = client.pipeline(transaction=False)
        for batch in _chunks(_redis_keys(w), 1000):
            pipe.mset(dict(batch))
        foreign = _foreign_redis_names(w, rng)
        pipe.mset(foreign)
        pipe.execute()
        w.foreign["redis keys"] = sorted(foreign)
    finally:
        client.close()


def _mongo(w: World) -> pymongo.MongoClient[dict[str, Any]]:
    return pymongo.MongoClient(w.urls["mongodb"], uuidRepresentation="standard")


def _seed_mongodb(w: World) -> None:
    client = _mongo(w)
    try:
        db = client[w.mongo_db]
        users, orders = db[w.collections[USER]], db[w.collections[ORDER]]
        for batch in _chunks(({"_id": ObjectId(u.oid), **u.data()} for u in w.users), 5000):
            users.insert_many(batch, ordered=False)
        for batch in _chunks(({"_id": ObjectId(o.oid), **o.data()} for o in w.orders), 5000):
            orders.insert_many(batch, ordered=False)
        theirs: dict[str, list[dict[str, Any]]] = {
                  USER: [{"_id": ObjectId(), "kind": "counter", "next": len(w.users) + 1},
                         {"_id": "settings", "theme": "dark", "locale": "fr"}],
                  ORDER: [{"_id": ObjectId(), "kind": "export", "at": "2026-01-01T00:00:00Z", "rows": 3}]}
        for et, docs in theirs.items():
            db[w.collections[et]].insert_many(docs)
        w.foreign["mongo ids"] = {et: [d["_id"] for d in docs] for et, docs in theirs.items()}
    finally:
        client.close()


def _es(w: World) -> Elasticsearch:
    return Elasticsearch(elasticsearch_http_url(w.urls["elasticsearch"]), request_timeout=60)


def _seed_elasticsearch(w: World, rng: random.Random) -> None:
    es = _es(w)
    try:
        es.indices.create(index=w.users_index)
        theirs = {"other-app-doc": {"note": "the search team's pinned result", "weight": 3},
                  _v4(rng): {"kind": "synonyms", "terms": ["buyer", "customer"]}}
        actions = ({"_index": w.users_index, "_id": u.v4, "_source": u.data()} for u in w.users)
        helpers.bulk(es, actions, chunk_size=2000, refresh=False)
        helpers.bulk(es, ({"_index": w.users_index, "_id": k, "_source": v} for k, v in theirs.items()))
        es.indices.refresh(index=w.users_index)
        w.foreign["es ids"] = sorted(theirs)
    finally:
        es.close()


def _seed_files(w: World, rng: random.Random) -> None:
    top = w.files_root / USER
    top.mkdir(parents=True)
    for u in w.users:
        (top / f"{u.v4}.json").write_bytes(_dumps(u.data()))
    theirs = {"README.txt": b"Exported user profiles, one JSON file per user.\n",
              f"{_v4(rng)}.json": _dumps({"note": "a draft profile of the design team", "fields": 2})}
    for name, body in theirs.items():
        (top / name).write_bytes(body)
    w.foreign["files"] = sorted(theirs)


# -- snapshots of what is not the migration's ----------------------------------------------------

def _foreign_snapshot(w: World) -> dict[str, Any]:
    """Every foreign entry exactly as its store's own driver returns it (for an ES document: its
    source, version and sequence number, so a rewrite with the same content still shows)."""
    snap: dict[str, Any] = {"redis keys": w.foreign["redis keys"], "mongo ids": w.foreign["mongo ids"],
                            "es ids": w.foreign["es ids"], "files": w.foreign["files"]}
    with psycopg.connect(_libpq(w.urls["postgres"])) as conn:
        snap["pg app_events"] = conn.execute(pgsql.SQL("SELECT id, kind, payload::text FROM {}.app_events ORDER BY id")
                                             .format(pgsql.Identifier(w.schema))).fetchall()
    client = redis.Redis.from_url(w.urls["redis"])
    try:
        snap["redis"] = {k: (client.type(k), client.get(k), client.ttl(k)) for k in w.foreign["redis keys"]}
    finally:
        client.close()
    mongo = _mongo(w)
    try:
        snap["mongo"] = {et: [mongo[w.mongo_db][w.collections[et]].find_one({"_id": i}) for i in ids]
                         for et, ids in w.foreign["mongo ids"].items()}
    finally:
        mongo.close()
    es = _es(w)
    try:
        snap["es"] = {}
        for doc_id in w.foreign["es ids"]:
            got = es.get(index=w.users_index, id=doc_id)
            snap["es"][doc_id] = (got["_source"], got["_version"], got.get("_seq_no"))
    finally:
        es.close()
    snap["file bytes"] = {n: (w.files_root / USER / n).read_bytes() for n in w.foreign["files"]}
    return snap


def _foreign_problems(w: World) -> list[str]:
    try:
        now = _foreign_snapshot(w)
    except Exception as err:  # noqa: BLE001 - a foreign entry gone is a finding, named
        return [f"foreign entries: cannot be read back as seeded: {type(err).__name__}: {err}"]
    before = w.foreign
    return [f"foreign entries changed in {part}" for part in
            ("pg app_events", "redis", "mongo", "es", "file bytes") if now[part] != before[part]]


# -- checks --------------------------------------------------------------------------------------

class _Problems:
    """Problems by kind, at most :data:`_LIMIT` listed per kind with the count of the rest."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self._counts: dict[str, int] = {}

    def add(self, kind: str, detail: str) -> None:
        n = self._counts[kind] = self._counts.get(kind, 0) + 1
        if n <= _LIMIT:
            self.items.append(f"{kind}: {detail}")

    def extend(self, kind: str, details: Iterable[str]) -> None:
        for d in details:
            self.add(kind, d)

    def result(self) -> list[str]:
        more = [f"{kind}: {n - _LIMIT} more" for kind, n in self._counts.items() if n > _LIMIT]
        return self.items + more


def _pg_rows(w: World, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(_libpq(w.urls["postgres"])) as conn:
        return conn.execute(pgsql.SQL(query).format(s=pgsql.Identifier(w.schema))).fetchall()


def _pg_tables(w: World) -> dict[str, int]:
    """Table name -> row count, for every table of the world's schema."""
    with psycopg.connect(_libpq(w.urls["postgres"])) as conn:
        names = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                                            (w.schema,))]
        return {n: conn.execute(pgsql.SQL("SELECT count(*) FROM {}.{}").format(
            pgsql.Identifier(w.schema), pgsql.Identifier(n))).fetchone()[0] for n in names}  # type: ignore[index]


def _bookkeeping(name: str) -> bool:
    """uuid-forge's own tables, keys and files (the ID-configuration marker, the migration map,
    Redis's set of types)."""
    return "uuid" in name.lower() or name.endswith(":uf:types")


def _old_pg(w: World, p: _Problems) -> None:
    """The serial tables exactly as seeded."""
    users = _pg_rows(w, "SELECT id, email, name FROM {s}.users ORDER BY id")
    if users != [(u.serial, u.email, u.name) for u in w.users]:
        p.add("postgres users", f"{len(users)} rows, not the {len(w.users)} seeded ones")
    orders = _pg_rows(w, "SELECT id, order_no, user_id, total_cents, status FROM {s}.orders ORDER BY id")
    if orders != [(o.serial, o.order_no, o.user, o.total_cents, o.status) for o in w.orders]:
        p.add("postgres orders", f"{len(orders)} rows, not the {len(w.orders)} seeded ones")


def _redis_scan(w: World, client: redis.Redis) -> set[str]:
    return {k.decode() for k in client.scan_iter(match=f"{w.prefix}:*", count=1000)}


def _mget(client: redis.Redis, keys: list[str]) -> list[Any]:
    out: list[Any] = []
    for batch in _chunks(keys, 1000):
        out.extend(client.mget(batch))
    return out


def _es_ids(w: World, es: Elasticsearch) -> dict[str, dict[str, Any]]:
    """Every document of the users index: _id -> _source (a scroll)."""
    es.indices.refresh(index=w.users_index)
    return {h["_id"]: h["_source"] for h in helpers.scan(es, index=w.users_index, query={"query": {"match_all": {}}},
                                                         size=2000)}


def check_unchanged(world: World) -> list[str]:
    """Problems with the OLD world after ``rollback`` (or before anything ran): every store holds
    exactly what :func:`seed` planted, byte for byte, and nothing new; uuid-forge's own
    bookkeeping (names containing ``uuid``: the ID-configuration marker, the migration's map) and
    tables left empty are allowed."""
    w, p = world, _Problems()
    _old_pg(w, p)
    for table, rows in _pg_tables(w).items():
        if table not in ("users", "orders", "app_events") and rows and not _bookkeeping(table):
            p.add("postgres new rows", f"table {table} holds {rows} rows")
    client = redis.Redis.from_url(w.urls["redis"])
    try:
        expected = dict(_redis_keys(w))
        held = _redis_scan(w, client) - set(w.foreign["redis keys"])
        p.extend("redis new keys", sorted(k for k in held - set(expected) if not _bookkeeping(k)))
        names = sorted(expected)
        for key, value in zip(names, _mget(client, names)):
            if value != expected[key]:
                p.add("redis old keys", f"{key} {'missing' if value is None else 'changed'}")
    finally:
        client.close()
    mongo = _mongo(w)
    try:
        for et, entities in ((USER, w.users), (ORDER, w.orders)):
            coll = mongo[w.mongo_db][w.collections[et]]
            foreign_ids = w.foreign["mongo ids"][et]
            wanted: dict[Any, dict[str, Any]] = {ObjectId(e.oid): e.data() for e in entities}
            for doc in coll.find({"_id": {"$nin": foreign_ids}}):
                ident = doc.pop("_id")
                if ident not in wanted:
                    p.add(f"mongodb {coll.name} new documents", str(ident))
                elif doc != wanted.pop(ident):
                    p.add(f"mongodb {coll.name} old documents", f"{ident} changed")
            p.extend(f"mongodb {coll.name} old documents", (f"{i} missing" for i in wanted))
    finally:
        mongo.close()
    es = _es(w)
    try:
        docs = _es_ids(w, es)
        for u in w.users:
            got = docs.pop(u.v4, None)
            if got != u.data():
                p.add("elasticsearch old documents", f"{u.v4} {'missing' if got is None else 'changed'}")
        p.extend("elasticsearch new documents", sorted(set(docs) - set(w.foreign["es ids"])))
    finally:
        es.close()
    top = w.files_root / USER
    files = _listing(top)
    for u in w.users:
        path = top / f"{u.v4}.json"
        if f"{u.v4}.json" not in files or path.read_bytes() != _dumps(u.data()):
            p.add("files old", f"{USER}/{u.v4}.json {'missing' if not path.exists() else 'changed'}")
    old = {f"{u.v4}.json" for u in w.users} | set(w.foreign["files"])
    p.extend("files new", sorted(f for f in files if f not in old and not _bookkeeping(f)))
    p.extend("foreign", _foreign_problems(w))
    return p.result()


def _listing(top: Path) -> set[str]:
    """Every file under ``top``, as a path relative to it (sharded ones as ``ab/cd/NAME``)."""
    if not top.is_dir():
        return set()
    return {str(Path(d, f).relative_to(top)) for d, _, names in os.walk(top) for f in names}


def check_migrated(world: World, generator: UUIDGenerator | IDConfig, *, store_urls: Mapping[str, str] | None = None,
                   postgres: str = "tables", allow_fields: Iterable[str] = ()) -> list[str]:
    """Problems with the END state after ``contract`` (empty: fine).

    Every entity is in each store of :meth:`World.store_urls` (or ``store_urls``: the same names,
    other layouts) exactly once, under the deterministic ID of its key fields (``generator``: the
    test's ID configuration, or a generator made from it), read back through that store's adapter with its data as seeded,
    except that an order's ``user_id`` is its user's new ID (as text or a UUID); data fields beyond
    the seeded ones are problems unless named in ``allow_fields``. No old entry is left (read with
    the raw drivers: serial keys, ObjectIds, version-4 ``_id``s and files), and every foreign entry
    is byte for byte as seeded.

    ``postgres``: ``"tables"`` (the default) expects the entities in uuid-forge's tables of store
    ``db`` and the serial ``users``/``orders`` tables emptied or dropped; ``"in_place"`` expects
    the serial tables converted in place: ``id`` (and ``orders.user_id``) uuid columns holding the
    new IDs, every other column as seeded.
    """
    if postgres not in ("tables", "in_place"):
        raise ValueError(f"postgres={postgres!r}: 'tables' or 'in_place'")
    if isinstance(generator, IDConfig):
        generator = UUIDGenerator(generator)
    w, p = world, _Problems()
    urls = dict(store_urls or w.store_urls())
    user_ids, order_ids = w.new_ids(generator)
    expected: dict[str, dict[uuid.UUID, dict[str, Any]]] = {
        USER: {user_ids[u.serial]: u.data() for u in w.users},
        ORDER: {order_ids[o.serial]: {**o.data(), "user_id": user_ids[o.user]} for o in w.orders}}
    foreign = _foreign_names(w)
    allowed = set(allow_fields)
    for store, types in World.STORE_TYPES:
        if store == "db" and postgres == "in_place":
            continue
        with open_store(urls[store]) as adapter:
            for et in types:
                _check_new(adapter, f"{store} {et}", et, expected[et], foreign, allowed, p)
    if postgres == "in_place":
        _check_pg_in_place(w, user_ids, order_ids, p)
    else:
        tables = _pg_tables(w)
        for table in ("users", "orders"):
            if tables.get(table):
                p.add("postgres old rows left", f"{table}: {tables[table]} rows")
    _check_old_gone(w, p)
    p.extend("foreign", _foreign_problems(w))
    return p.result()


def _foreign_names(w: World) -> set[str]:
    """Every name a scan may give a foreign entry: raw names (keys, ``_id``s, paths) and the UUID
    text of those named like our IDs (a store that reads such a name as an ID of ours)."""
    names = set(w.foreign["redis keys"]) | set(w.foreign["es ids"])
    names |= {str(i) for ids in w.foreign["mongo ids"].values() for i in ids}
    names |= {f"{USER}/{n}" for n in w.foreign["files"]}
    tails = [k.rsplit(":", 1)[1] for k in w.foreign["redis keys"]] + list(w.foreign["es ids"])
    tails += [n.removesuffix(".json") for n in w.foreign["files"]]
    for tail in tails:
        try:
            names.add(str(uuid.UUID(tail)))
        except ValueError:
            pass
    return names


def _same_value(got: Any, want: Any) -> bool:
    """A new ID as text or a UUID; a number as any exact number type (a Decimal from a JSON
    column); anything else equal and of the same type."""
    if isinstance(want, uuid.UUID):
        return str(got) == str(want)
    if isinstance(want, int):
        return not isinstance(got, (bool, float)) and isinstance(got, (int, decimal.Decimal)) and got == want
    return type(got) is type(want) and bool(got == want)


def _check_new(adapter: Adapter, where: str, et: str, expected: Mapping[uuid.UUID, dict[str, Any]],
               foreign: set[str], allowed: set[str], p: _Problems) -> None:
    """Each expected ID once in the scan, its data as expected; nothing else but foreign entries."""
    seen: dict[uuid.UUID, int] = {}
    for ident, _ in adapter.scan(et, include_malformed=True):
        if isinstance(ident, (ForeignEntry, MalformedID)):
            if isinstance(ident, MalformedID) or ident.raw not in foreign:
                p.add(f"{where} entries not under a new ID", ident.raw)
            continue
        seen[ident] = seen.get(ident, 0) + 1
    p.extend(f"{where} held more than once", (str(i) for i, n in seen.items() if n > 1))
    p.extend(f"{where} missing", (str(i) for i in expected if i not in seen))
    p.extend(f"{where} not a migrated entity",
             (str(i) for i in seen if i not in expected and str(i) not in foreign))
    got = adapter.get_many(et, [i for i in expected if i in seen])
    for ident, record in got.items():
        want = expected[ident]
        data = dict(record.data)
        extra = set(data) - set(want) - allowed
        wrong = [k for k, v in want.items() if k not in data or not _same_value(data[k], v)]
        if extra or wrong:
            p.add(f"{where} data", f"{ident}: fields {sorted(wrong)} differ, {sorted(extra)} not seeded")


def _check_pg_in_place(w: World, user_ids: Mapping[int, uuid.UUID], order_ids: Mapping[int, uuid.UUID],
                       p: _Problems) -> None:
    users = _pg_rows(w, "SELECT id::text, email, name FROM {s}.users")
    want_users = {(str(user_ids[u.serial]), u.email, u.name) for u in w.users}
    if len(users) != len(w.users) or set(users) != want_users:
        p.add("postgres users", f"{len(set(users) - want_users)} rows not as expected of {len(users)}")
    orders = _pg_rows(w, "SELECT id::text, order_no, user_id::text, total_cents, status FROM {s}.orders")
    want_orders = {(str(order_ids[o.serial]), o.order_no, str(user_ids[o.user]), o.total_cents, o.status)
                   for o in w.orders}
    if len(orders) != len(w.orders) or set(orders) != want_orders:
        p.add("postgres orders", f"{len(set(orders) - want_orders)} rows not as expected of {len(orders)}")
    with psycopg.connect(_libpq(w.urls["postgres"])) as conn:
        types: dict[str, str] = dict(conn.execute("SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                                  "WHERE table_schema = %s AND table_name IN ('users', 'orders') "
                                  "AND column_name IN ('id', 'user_id')", (w.schema,)).fetchall())
    p.extend("postgres column types", (f"{c} is {t}" for c, t in sorted(types.items()) if t != "uuid"))


def _check_old_gone(w: World, p: _Problems) -> None:
    client = redis.Redis.from_url(w.urls["redis"])
    try:
        old = [k for k, _ in _redis_keys(w)]
        p.extend("redis old keys left", (k for k, v in zip(old, _mget(client, old)) if v is not None))
    finally:
        client.close()
    mongo = _mongo(w)
    try:
        for et, entities in ((USER, w.users), (ORDER, w.orders)):
            coll = mongo[w.mongo_db][w.collections[et]]
            # every _id in one pass: long $in lists cost the stand-in a scan each
            held = {d["_id"] for d in coll.find({}, {"_id": 1}).batch_size(10_000)}
            p.extend(f"mongodb {coll.name} old documents left", (e.oid for e in entities if ObjectId(e.oid) in held))
    finally:
        mongo.close()
    es = _es(w)
    try:
        docs = _es_ids(w, es)
        p.extend("elasticsearch old documents left", (u.v4 for u in w.users if u.v4 in docs))
    finally:
        es.close()
    top = w.files_root / USER
    p.extend("files old left", (f"{USER}/{u.v4}.json" for u in w.users if (top / f"{u.v4}.json").exists()))


# -- cleanup ---------------------------------------------------------------------------------------

def cleanup(world: World) -> None:
    """Remove everything of the world's prefix from every store: the schema, the Redis keys under
    the prefix, the two collections, the index, the files (what the migration wrote there too)."""
    w = world
    with psycopg.connect(_libpq(w.urls["postgres"]), autocommit=True) as conn:
        conn.execute(pgsql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(pgsql.Identifier(w.schema)))
    client = redis.Redis.from_url(w.urls["redis"])
    try:
        for batch in _chunks(client.scan_iter(match=f"{w.prefix}:*", count=1000), 1000):
            client.unlink(*batch)
    finally:
        client.close()
    mongo = _mongo(w)
    try:
        for name in w.collections.values():
            mongo[w.mongo_db].drop_collection(name)
    finally:
        mongo.close()
    es = _es(w)
    try:
        es.indices.delete(index=w.users_index, ignore_unavailable=True)
    finally:
        es.close()
    shutil.rmtree(w.files_root, ignore_errors=True)


def leftovers(world: World) -> list[str]:
    """What of the world's prefix is still in any store (empty after :func:`cleanup`)."""
    w, found = world, []
    with psycopg.connect(_libpq(w.urls["postgres"])) as conn:
        if conn.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (w.schema,)).fetchone():
            found.append(f"postgres schema {w.schema}")
    client = redis.Redis.from_url(w.urls["redis"])
    try:
        found += [f"redis key {k.decode()}" for k in client.scan_iter(match=f"{w.prefix}:*", count=1000)][:_LIMIT]
    finally:
        client.close()
    mongo = _mongo(w)
    try:
        names = set(mongo[w.mongo_db].list_collection_names())
        found += [f"mongodb collection {n}" for n in w.collections.values() if n in names]
    finally:
        mongo.close()
    es = _es(w)
    try:
        if es.indices.exists(index=w.users_index):
            found.append(f"elasticsearch index {w.users_index}")
    finally:
        es.close()
    if w.files_root.exists():
        found.append(f"directory {w.files_root}")
    return found

