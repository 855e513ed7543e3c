"""Issue 21 (migration): entries under names uuid-forge did not make are read by those names.

Per store, on the real server (stand-ins for MongoDB and Elasticsearch): an old application's
entry is planted with the store's own driver under a non-UUID name (Redis ``user:42``, MongoDB
ObjectId and integer ``_id``, Elasticsearch ``_id`` ``abc-42``, a file ``42.json``, a SQL text ID
``legacy-7``), beside a record of ours. ``scan(include_malformed=True)`` reports its raw name,
``read_raw`` gives its data as ``get_many`` would, an entry that cannot be read as the layout's
data comes back with ``data`` None and a reason, and an absent name is left out. ``delete_raw``
still refuses those names: they are another application's until the migration proves them
mapped; ``delete_raw_proven`` then removes one only while it holds the data the proof was made
on. A malformed entry of ours (one of our IDs in the wrong form) is read, then removed by
``delete_raw`` alone, the entries beside it left as they were.
"""

from __future__ import annotations

import decimal
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("redis", reason=driver_missing("redis"))
pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
import psycopg
import pymongo
import redis
from bson import ObjectId
from elasticsearch import Elasticsearch

from uuid_forge import IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.contract import Adapter
from uuid_forge.errors import ConfigError, StoreError, ValidationError
from uuid_forge.masking import mask_name
from uuid_forge.record import ForeignEntry, MalformedID, RawEntry, Record

from .scaffold import forget_redis_type
from .servers import elasticsearch_http_url

GEN = UUIDGenerator(IDConfig(namespace=Namespace("rawread.uuid-forge.test"), salt="rawread"))
OLD = {"email": "ann@example.com", "name": "Ann"}


def _raw_names(store: Adapter, entity_type: str) -> dict[str, str]:
    """Raw name -> kind ("foreign" or "malformed") of every entry a scan reports by its raw name."""
    return {i.raw: "foreign" if isinstance(i, ForeignEntry) else "malformed"
            for i, _ in store.scan(entity_type, include_malformed=True) if isinstance(i, (ForeignEntry, MalformedID))}


def _ours(entity_type: str) -> Record:
    return Record(entity_type, GEN.generate(entity_type, email="bob@example.com"),
                  {"email": "bob@example.com", "name": "Bob"}, {"email": "bob@example.com"})


def _check(store: Adapter, entity_type: str, readable: dict[str, dict[str, Any]], unreadable: str,
           absent: str) -> dict[str, RawEntry]:
    """The shared assertions: scan names them, read_raw reads them, the absent one is left out."""
    names = _raw_names(store, entity_type)
    assert set(readable) | {unreadable} <= set(names), names
    got = store.read_raw(entity_type, [*readable, unreadable, absent])
    assert absent not in got
    assert {raw: got[raw].data for raw in readable} == readable
    assert all(got[raw].reason == "" for raw in readable)
    bad = got[unreadable]
    assert bad.data is None and mask_name(unreadable) in bad.reason, bad  # named by its shape only
    assert unreadable not in bad.reason, bad.reason
    assert "cannot be read" in bad.reason or "holds" in bad.reason, bad.reason
    for raw in readable:  # data may be personal: neither the reason nor the repr shows it
        assert "ann@example.com" not in repr(got[raw])
    return got


def _delete_proven(store: Adapter, entity_type: str, raw: str, data: dict[str, Any], unreadable: str | None,
                   exists: Callable[[str], bool], kept: list[str]) -> None:
    """delete_raw_proven removes the entry only while it holds the proven data; the rest stays."""
    assert store.delete_raw_proven(entity_type, {raw: {**data, "name": "Someone Else"}}) == 0  # changed since
    assert exists(raw)
    if unreadable is not None:
        assert store.delete_raw_proven(entity_type, {unreadable: {}}) == 0 and exists(unreadable)
    assert store.delete_raw_proven(entity_type, {raw: data}) == 1
    assert not exists(raw)
    assert store.delete_raw_proven(entity_type, {raw: data}) == 0  # gone: nothing to delete
    assert all(exists(k) for k in kept), [k for k in kept if not exists(k)]


def _delete_races(store: Adapter, entity_type: str, raw: str, data: dict[str, Any], change: Callable[[], None],
                  exists: Callable[[str], bool], hook: str = "_read_raw") -> None:
    """Another writer changes the entry just after delete_raw_proven has re-read it (the entry
    proven, the data still equal when read): the store's compare and delete is atomic, so the
    changed entry stays. A read-then-delete would remove the new data: this test fails on it.
    ``hook``: the adapter's method that reads the entries (patched on this instance only)."""
    read = getattr(store, hook)
    calls = 0

    def read_then_change(*args: Any) -> Any:
        nonlocal calls
        found = read(*args)
        found = found if isinstance(found, (list, dict)) else list(found)  # read now, before the change
        calls += 1
        if calls == 1:
            change()
        return found

    setattr(store, hook, read_then_change)
    try:
        assert store.delete_raw_proven(entity_type, {raw: data}) == 0
    finally:
        delattr(store, hook)
    assert calls >= 1 and exists(raw)


# -- Redis -------------------------------------------------------------------------------------

@pytest.fixture
def redis_type(redis_url: str) -> Iterator[str]:
    name = f"rr{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()
    forget_redis_type(redis_url, name)


@pytest.mark.parametrize("layout", ["data", "hash", "envelope"])
def test_redis_reads_keys_by_their_raw_name(redis_url: str, redis_type: str, layout: str) -> None:
    et = redis_type
    client = redis.Redis.from_url(redis_url)
    with open_store(redis_url, layout=layout) as store:
        mine = _ours(et)
        store.put_many([mine])
        serial, text = f"{et}:42", f"{et}:legacy-ann"
        if layout == "data":
            client.set(serial, json.dumps(OLD))
            client.set(text, json.dumps(OLD))
        elif layout == "hash":
            client.hset(serial, mapping={k: json.dumps(v) for k, v in OLD.items()})
            client.hset(text, mapping={k: json.dumps(v) for k, v in OLD.items()})
        else:
            client.hset(serial, mapping={"fp": "0" * 32, "data": json.dumps(OLD), "key": "null"})
            client.hset(text, mapping={"fp": "0" * 32, "data": json.dumps(OLD), "key": "null"})
        bad = f"{et}:43"
        if layout == "data":
            client.set(bad, b"{not json")
        else:
            client.rpush(bad, b"a list, not a hash")
        wrong = GEN.generate(et, email="cid@example.com")  # one of ours, its key in upper case
        moved = Record(et, wrong, {"email": "cid@example.com"})
        store.put_many([moved])
        client.rename(f"{et}:{wrong}", f"{et}:{str(wrong).upper()}")
        malformed = f"{et}:{str(wrong).upper()}"

        _check(store, et, {serial: OLD, text: OLD}, bad, f"{et}:44")
        assert _raw_names(store, et)[malformed] == "malformed"
        assert store.read_raw(et, [malformed])[malformed].data == moved.json_data
        assert store.read_raw(et, ["another-type:42", f"{et}:nothing-here"]) == {}  # not this type's keys: absent
        with pytest.raises(ValidationError, match="foreign keys are never deleted"):
            store.delete_raw(et, [serial])  # another application's until a migration proves it mapped
        before = {k: client.dump(k) for k in (serial, text, bad, f"{et}:{mine.id}")}
        assert store.delete_raw(et, [malformed]) == 1
        assert not client.exists(malformed)
        assert {k: client.dump(k) for k in before} == before  # only it went
        if layout == "data":
            _delete_races(store, et, text, OLD, lambda: client.set(text, json.dumps({**OLD, "name": "Edited"})),
                          lambda k: bool(client.exists(k)))
            assert json.loads(client.get(text) or b"{}")["name"] == "Edited"
            client.set(text, json.dumps(OLD))
        else:
            _delete_races(store, et, text, OLD, lambda: client.hset(text, "name", json.dumps("Edited"))
                          if layout == "hash" else client.hset(text, "data", json.dumps({**OLD, "name": "Edited"})),
                          lambda k: bool(client.exists(k)))
        _delete_proven(store, et, serial, OLD, bad, lambda k: bool(client.exists(k)), [text, bad, f"{et}:{mine.id}"])
    client.close()


# -- MongoDB -----------------------------------------------------------------------------------

@pytest.fixture
def mongo(mongodb_url: str) -> Iterator[tuple[str, str]]:
    """(URL naming a database of this test, collection of the type) over the stand-in or server."""
    db = f"uf_rawread_{uuid.uuid4().hex[:8]}"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_url)
    yield urlunsplit(urlsplit(mongodb_url)._replace(path=f"/{db}")), db
    client.drop_database(db)
    client.close()


@pytest.mark.parametrize("layout", ["data", "envelope"])
def test_mongodb_reads_objectid_int_and_string_ids(mongo: tuple[str, str], mongodb_url: str, layout: str) -> None:
    url, db = mongo
    et = "user"
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_url, uuidRepresentation="standard")
    coll = client[db][f"legacy_{layout}"]
    with open_store(url, collection=coll.name, entity_type=et, layout=layout) as store:
        mine = _ours(et)
        store.put_many([mine])
        oid = ObjectId()

        def doc(**extra: Any) -> dict[str, Any]:
            return {**extra, **OLD} if layout == "data" else {**extra, "data": OLD, "key": None}

        coll.insert_many([doc(_id=oid), doc(_id=42), doc(_id="legacy-ann"),
                          {"_id": 43, **({"data": "{not json"} if layout == "envelope" else {"name": ObjectId()})},
                          doc(_id=7.0)])  # a double _id: never read as the integer 7
        wanted = {str(oid): OLD, "42": OLD, "legacy-ann": OLD}
        if layout == "envelope":
            _check(store, et, wanted, "43", "44")
        else:  # every BSON document is data to the flat layout: an ObjectId value is read as its text
            got = store.read_raw(et, [*wanted, "44"])
            assert {r: e.data for r, e in got.items()} == wanted
        assert store.read_raw(et, ["7"]) == {}  # the double 7.0 matches {_id: 7}, but is not named "7"
        assert store.read_raw(et, ["7.0"]) == {}  # a double _id has no exact round trip (documented)
        assert str(ObjectId()) not in store.read_raw(et, [str(ObjectId())])
        coll.insert_one(doc(_id="42") | ({"name": "the string one"} if layout == "data" else
                                         {"data": {**OLD, "name": "the string one"}}))
        assert store.read_raw(et, ["42"])["42"].data == {**OLD, "name": "the string one"}  # the string _id wins
        with pytest.raises(ValidationError, match="never deleted"):
            store.delete_raw(et, [str(oid)])
        wrong = GEN.generate(et, email="cid@example.com")
        coll.insert_one(doc(_id=str(wrong)))  # one of ours as a string where binary is expected
        assert _raw_names(store, et)[str(wrong)] == "malformed"
        assert store.read_raw(et, [str(wrong)])[str(wrong)].data == OLD
        count = coll.count_documents({})
        assert store.delete_raw(et, [str(wrong)]) == 1
        assert coll.count_documents({}) == count - 1 and coll.find_one({"_id": oid}) is not None

        def held(raw: str) -> bool:
            return raw in store.read_raw(et, [raw])

        string_42 = {**OLD, "name": "the string one"}
        _delete_proven(store, et, "42", string_42, None, lambda raw: coll.find_one({"_id": raw}) is not None, [])
        assert store.delete_raw_proven(et, {"43": {}}) == 0 and coll.find_one({"_id": 43}) is not None
        # the string "42" went; the integer 42 (now what "42" names, with other data) and the rest stayed
        assert coll.find_one({"_id": 42}) is not None and coll.find_one({"_id": oid}) is not None
        edited = {"name": "Edited"} if layout == "data" else {"data": {**OLD, "name": "Edited"}}
        _delete_races(store, et, "legacy-ann", OLD, lambda: coll.update_one({"_id": "legacy-ann"}, {"$set": edited}),
                      lambda raw: coll.find_one({"_id": raw}) is not None, "_resolved")
        assert {k: v for k, v in (coll.find_one({"_id": "legacy-ann"}) or {}).items() if k in edited} == edited
        # a field added in the instant between contract's read and its delete: the document stays
        # (exact_delete, the default); without it, the documented gap: the document goes with the field
        for exact in (True, False):
            name = f"legacy-dee-{exact}"
            coll.insert_one(doc(_id=name))
            with open_store(url, collection=coll.name, entity_type=et, layout=layout, exact_delete=exact) as racing:
                read = racing._resolved  # type: ignore[attr-defined]

                def read_then_add(*args: Any, read: Any = read, name: str = name) -> Any:
                    found = read(*args)
                    coll.update_one({"_id": name}, {"$set": {"added_meanwhile": 1}})
                    return found

                racing._resolved = read_then_add  # type: ignore[attr-defined]
                deleted = racing.delete_raw_proven(et, {name: OLD})
            left = coll.find_one({"_id": name})
            assert (deleted, left is not None) == ((0, True) if exact else (1, False)), (exact, deleted, left)
            assert not exact or (left or {}).get("added_meanwhile") == 1
        # a field added *before* contract reads the document (after verify): not the store's, never deleted
        coll.insert_one({**doc(_id="legacy-bea"), "added_by_them": 1})
        assert store.delete_raw_proven(et, {"legacy-bea": OLD}) == 0
        assert (coll.find_one({"_id": "legacy-bea"}) or {}).get("added_by_them") == 1
        if layout == "envelope":  # a field beside the envelope's members is not the store's: never deleted
            coll.insert_one({**doc(_id="legacy-cy"), "theirs": True})
            assert store.delete_raw_proven(et, {"legacy-cy": OLD}) == 0 and coll.find_one({"_id": "legacy-cy"})
        _delete_proven(store, et, str(oid), OLD, None, held, ["42", "legacy-ann"])
        assert coll.find_one({"_id": mine.id}) is not None
    client.close()


# -- Elasticsearch -----------------------------------------------------------------------------

def test_elasticsearch_reads_documents_by_raw_id(elasticsearch_url: str) -> None:
    index = f"rr-{uuid.uuid4().hex[:10]}"
    es = Elasticsearch(elasticsearch_http_url(elasticsearch_url))
    try:
        with open_store(elasticsearch_url, index=index, entity_type="user") as store:
            mine = _ours("user")
            store.put_many([mine])
            es.index(index=index, id="abc-42", document=OLD)
            es.index(index=index, id="43", document={**OLD, "total": "12.50", "uf_numbers": ["/total"]}, refresh=True)
            got = store.read_raw("user", ["abc-42", "43", "abc-44"])
            assert set(_raw_names(store, "user")) >= {"abc-42", "43"}
            assert got["abc-42"].data == OLD and "abc-44" not in got
            # decoded as get_many decodes: the numbers field restores the exact number, and is no data field.
            # Every _source is a JSON object, which the data layout reads: no entry here is unreadable.
            assert got["43"].data == {**OLD, "total": decimal.Decimal("12.50")} and got["43"].reason == ""
            with pytest.raises(ValidationError, match="never deleted"):
                store.delete_raw("user", ["abc-42"])
            assert es.get(index=index, id="abc-42")["_source"] == OLD
            es.index(index=index, id="abc-45", document=OLD, refresh=True)
            _delete_races(store, "user", "abc-45", OLD, lambda: es.index(index=index, id="abc-45", document={
                **OLD, "name": "Edited"}, refresh=True), lambda i: bool(es.exists(index=index, id=i)), "_mget_raw")
            assert es.get(index=index, id="abc-45")["_source"]["name"] == "Edited"
            _delete_proven(store, "user", "abc-42", OLD, None, lambda i: bool(es.exists(index=index, id=i)),
                           ["43", "abc-45", str(mine.id)])
    finally:
        es.indices.delete(index=index, ignore_unavailable=True)
        es.close()


# -- files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["data", "envelope"])
def test_files_read_by_relative_path(tmp_path: Path, layout: str) -> None:
    with open_store(f"file://{tmp_path}?fsync=false", layout=layout) as store:
        mine = _ours("user")
        store.put_many([mine])
        top = tmp_path / "user"
        body = OLD if layout == "data" else {"fp": "0" * 32, "id": "42", "key": None, "data": OLD}
        (top / "42.json").write_text(json.dumps(body), encoding="utf-8")
        (top / "43.json").write_text("{not json", encoding="utf-8")
        (top / "notes.txt").write_text("the other team's notes", encoding="utf-8")
        got = _check(store, "user", {"user/42.json": OLD}, "user/43.json", "user/44.json")
        assert got["user/43.json"].data is None
        notes = store.read_raw("user", ["user/notes.txt"])["user/notes.txt"]
        assert notes.data is None and "does not end in .json" in notes.reason
        with pytest.raises(ValidationError):
            store.read_raw("user", ["../outside.json"])
        with pytest.raises(ValidationError, match="never deleted"):
            store.delete_raw("user", ["user/42.json"])
        wrong = GEN.generate("user", email="cid@example.com")
        store.put_many([Record("user", wrong, {"email": "cid@example.com"})])
        s = str(wrong)
        good = top / s[0:2] / s[2:4] / f"{s}.json"
        good.rename(good.with_name(f"{s.upper()}.json"))
        raw = f"user/{s[0:2]}/{s[2:4]}/{s.upper()}.json"
        assert _raw_names(store, "user")[raw] == "malformed"
        assert store.read_raw("user", [raw])[raw].data == {"email": "cid@example.com"}
        assert store.delete_raw("user", [raw]) == 1
        assert not (top / s[0:2] / s[2:4] / f"{s.upper()}.json").exists()
        assert (top / "42.json").exists() and (top / "43.json").exists() and store.get_many("user", [mine.id])
        _delete_proven(store, "user", "user/42.json", OLD, "user/43.json", lambda r: (tmp_path / r).exists(),
                       ["user/notes.txt"])
        # a writer replaces the file (by rename, as writers do) just after the proof's read: the file
        # is moved aside and read again before the unlink, differs, and goes back under its name
        edited = {**OLD, "name": "Edited"} if layout == "data" else {**body, "data": {**OLD, "name": "Edited"}}
        (top / "45.json").write_text(json.dumps(body), encoding="utf-8")

        def rewrite() -> None:
            (top / ".45.json.writer.tmp").write_text(json.dumps(edited), encoding="utf-8")
            (top / ".45.json.writer.tmp").replace(top / "45.json")

        _delete_races(store, "user", "user/45.json", OLD, rewrite, lambda r: (tmp_path / r).exists())
        assert json.loads((top / "45.json").read_text(encoding="utf-8")) == edited
        assert not [p.name for p in top.iterdir() if ".uf-delete-" in p.name]  # nothing left aside
        with pytest.raises(ValidationError):
            store.delete_raw_proven("user", {"../outside.json": OLD})
        assert store.get_many("user", [mine.id])


# -- PostgreSQL --------------------------------------------------------------------------------

def _pg(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _sql_delete_serialises_with_a_writer(store: Adapter, url: str, table: str, raw: str) -> None:
    """Another session edits the row just after delete_raw_proven has read it: the row was read
    FOR UPDATE, so the edit waits for the delete and then finds no row; a read-then-delete would
    let the edit land first and delete the edited row (this fails on it). The row is put back."""
    read = store._read_raw_rows  # type: ignore[attr-defined]
    updated: list[int] = []

    def edit() -> None:
        with _pg(url) as conn:
            updated.append(conn.execute(f"UPDATE {table} SET data = %s WHERE id = %s",
                                        (json.dumps({**OLD, "name": "Edited"}), raw)).rowcount)

    writer = threading.Thread(target=edit)

    def read_then_edit(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        if not writer.is_alive() and not updated:
            writer.start()
            writer.join(timeout=1.0)  # blocked by the row lock, or done (a read-then-delete)
        return found

    setattr(store, "_read_raw_rows", read_then_edit)  # noqa: B010  the instance's hook, this test only
    try:
        deleted = store.delete_raw_proven("user", {raw: OLD})
    finally:
        delattr(store, "_read_raw_rows")
    writer.join(timeout=10)
    assert deleted == 1 and updated == [0], (deleted, updated)
    with _pg(url) as conn:
        conn.execute(f"INSERT INTO {table} (id, data) VALUES (%s, %s)", (raw, json.dumps(OLD)))


def test_sql_reads_text_ids_that_are_not_uuids(postgres_url: str) -> None:
    table = f"legacy_{uuid.uuid4().hex[:10]}"
    with _pg(postgres_url) as raw:
        raw.execute(f"CREATE TABLE {table} (id text PRIMARY KEY, data json)")
    try:
        with open_store(postgres_url, table=table, entity_type="user", columns={"id": "id", "data": "data"}) as store:
            mine = _ours("user")
            store.put_many([mine])
            with _pg(postgres_url) as raw:
                raw.execute(f"INSERT INTO {table} (id, data) VALUES ('legacy-7', %s), ('legacy-8', '[1, 2]')",
                            (json.dumps(OLD),))
            got = store.read_raw("user", ["legacy-7", "legacy-8", "legacy-9"])
            assert set(_raw_names(store, "user")) >= {"legacy-7", "legacy-8"}
            assert got["legacy-7"].data == OLD and "legacy-9" not in got
            assert got["legacy-8"].data is None and mask_name("legacy-8") in got["legacy-8"].reason
            assert store.read_raw("user", ["LEGACY-7"]) == {}  # exact text only
            with pytest.raises(ValidationError, match="never deleted"):
                store.delete_raw("user", ["legacy-7"])
            v4 = uuid.uuid4()  # another application's row in a text column: a version-4 UUID
            with _pg(postgres_url) as raw:
                raw.execute(f"INSERT INTO {table} (id, data) VALUES (%s, %s)", (str(v4), json.dumps(OLD)))
            assert store.read_raw("user", [str(v4)])[str(v4)].data == OLD
            wrong = GEN.generate("user", email="cid@example.com")
            with _pg(postgres_url) as raw:
                raw.execute(f"INSERT INTO {table} (id, data) VALUES (%s, %s)", (str(wrong).upper(), '{"n": 1}'))
            assert _raw_names(store, "user")[str(wrong).upper()] == "malformed"
            assert store.read_raw("user", [str(wrong).upper()])[str(wrong).upper()].data == {"n": 1}
            assert store.delete_raw("user", [str(wrong).upper()]) == 1
            with _pg(postgres_url) as raw:
                left = sorted(r[0] for r in raw.execute(f"SELECT id FROM {table}"))
            assert left == sorted(["legacy-7", "legacy-8", str(v4), str(mine.id)])

            def held(raw: str) -> bool:
                with _pg(postgres_url) as raw_conn:
                    return raw_conn.execute(f"SELECT 1 FROM {table} WHERE id = %s", (raw,)).fetchone() is not None

            _sql_delete_serialises_with_a_writer(store, postgres_url, table, str(v4))
            _delete_proven(store, "user", "legacy-7", OLD, "legacy-8", held, [str(v4), str(mine.id)])
    finally:
        with _pg(postgres_url) as raw:
            raw.execute(f"DROP TABLE IF EXISTS {table}")


def test_sql_reads_version_4_rows_of_a_uuid_column(postgres_url: str) -> None:
    """Your own table with a uuid column filled by gen_random_uuid(): each row is another
    application's (no ID of this scheme), read by its UUID text."""
    table = f"legacy_{uuid.uuid4().hex[:10]}"
    with _pg(postgres_url) as raw:
        raw.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), data json)")
        v4 = raw.execute(f"INSERT INTO {table} (data) VALUES (%s) RETURNING id", (json.dumps(OLD),)).fetchone()[0]
    try:
        with open_store(postgres_url, table=table, entity_type="user", columns={"id": "id", "data": "data"}) as store:
            assert _raw_names(store, "user") == {str(v4): "foreign"}
            got = store.read_raw("user", [str(v4), str(uuid.uuid4()), "legacy-7"])
            assert {r: e.data for r, e in got.items()} == {str(v4): OLD}
    finally:
        with _pg(postgres_url) as raw:
            raw.execute(f"DROP TABLE IF EXISTS {table}")


def test_sql_refuses_a_serial_id_column_naming_it(postgres_url: str) -> None:
    """A serial key cannot be an ID column of uuid-forge: refused when the table is opened, naming
    the column (before: a type error from the database on the first scan). Such a table moves in
    place (a uuid column filled in the database), not through read_raw."""
    table = f"legacy_{uuid.uuid4().hex[:10]}"
    with _pg(postgres_url) as raw:
        raw.execute(f"CREATE TABLE {table} (id serial PRIMARY KEY, data json)")
        raw.execute(f"INSERT INTO {table} (data) VALUES (%s)", (json.dumps(OLD),))
    try:
        with open_store(postgres_url, table=table, entity_type="user", columns={"id": "id", "data": "data"}) as store:
            with pytest.raises(ConfigError, match="ID column 'id' is INTEGER"):
                list(store.scan("user", include_malformed=True))
            with pytest.raises(ConfigError, match="serial"):
                store.read_raw("user", ["1"])
    finally:
        with _pg(postgres_url) as raw:
            raw.execute(f"DROP TABLE IF EXISTS {table}")


# -- RabbitMQ ----------------------------------------------------------------------------------

def test_rabbitmq_does_not_support_read_raw(amqp_url: str) -> None:
    """A message log: it reads nothing by name (no READ capability), old entries are messages."""
    with open_store(amqp_url) as store, pytest.raises(StoreError, match="does not support read"):
        store.read_raw("user", ["42"])


def test_mariadb_reads_text_ids_exactly_under_a_case_blind_collation(mariadb_url: str) -> None:
    """MariaDB compares text case-blind: ``LEGACY-7`` matches the row ``legacy-7`` in SQL, but is
    not its name, so read_raw leaves it out and delete_raw_proven deletes nothing by it."""
    pymysql = pytest.importorskip("pymysql", reason=driver_missing("pymysql"))
    parts = urlsplit(mariadb_url)
    table = f"legacy_{uuid.uuid4().hex[:10]}"

    def raw() -> Any:
        return pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                               password=parts.password or "", database=parts.path.strip("/"), autocommit=True)

    conn = raw()
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE {table} (id varchar(64) PRIMARY KEY, data json)")
            cur.execute(f"INSERT INTO {table} (id, data) VALUES ('legacy-7', %s)", (json.dumps(OLD),))
        with open_store(mariadb_url, table=table, entity_type="user", columns={"id": "id", "data": "data"}) as store:
            assert _raw_names(store, "user") == {"legacy-7": "foreign"}
            assert {r: e.data for r, e in store.read_raw("user", ["legacy-7", "LEGACY-7"]).items()} == {"legacy-7": OLD}
            assert store.delete_raw_proven("user", {"LEGACY-7": OLD}) == 0
            assert store.delete_raw_proven("user", {"legacy-7": OLD}) == 1
            assert store.read_raw("user", ["legacy-7"]) == {}
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()
