"""Issue 18 on MongoDB: a write owns only its fields, and a source ``filter`` narrows a shared collection.

Against the MongoDB wire-protocol server of the fixtures (the SecantusDB stand-in by default).
What is stored is checked around uuid-forge with a plain ``MongoClient``; each test uses a
database of its own, dropped afterwards.

* Rule 3: fields another application put in a document (declared ``ignore_fields``, fields
  outside a ``projection``, fields beside the legacy envelope) survive write, repair and replay;
  ``$unset`` (and its pipeline equivalent) removes owned fields only.
* Rule 2: with ``filter``, another application's documents in the user's own collection are not
  read, so they are never reported missing elsewhere nor copied; a write outside the filter is
  refused; bad JSON is a ConfigError naming the option and the value.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))

from bson import Binary

from uuid_forge import EntityType, IDConfig, Namespace, Record, ValidationError, open_store
from uuid_forge.errors import ConfigError
from uuid_forge.forge import StoreHandle
from uuid_forge.view import FieldView

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("mongo-owned.uuid-forge.test"), salt="mongo-owned")


@pytest.fixture
def db_url(mongo_db_url: str) -> str:
    """A database of this test's own (dropped afterwards)."""
    return mongo_db_url


@pytest.fixture
def raw(db_url: str) -> Iterator[Any]:
    client: Any = pymongo.MongoClient(db_url, serverSelectionTimeoutMS=5000, uuidRepresentation="standard")
    yield client.get_default_database()
    client.close()


def _people(n: int) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [("person", {"email": f"p{i}@example.com"},
             {"email": f"p{i}@example.com", "name": f"Person {i}", "city": f"C{i}"}) for i in range(n)]


#: store name -> (options, view, the collection, what another application adds, an owned field it edits)
SHAPES: dict[str, tuple[dict[str, Any], FieldView, str, dict[str, Any], str]] = {
    "ignored": ({"prefix": "a_"}, FieldView(ignore_fields=("cached_at",)), "a_person",
                {"cached_at": "2024-05-01"}, "name"),
    "projected": ({"prefix": "b_"}, FieldView(projection=("email", "name")), "b_person",
                  {"nick": "theirs", "city": "kept as they left it"}, "name"),
    "odd_projection": ({"prefix": "c_"}, FieldView(projection=("email", "name", "geo.lat")), "c_person",
                       {"nick": "theirs", "score": 7}, "name"),
    "envelope": ({"prefix": "d_", "layout": "envelope"}, FieldView(), "d_person", {"audited_by": "team-x"},
                 "data.name"),
    "own_collection": ({"collection": "people", "entity_type": "person"}, FieldView(projection=("email", "name")),
                       "people", {"crm_id": 42, "notes": "VIP"}, "name"),
}


def _at(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc[part]
    return doc


def test_fields_another_application_added_survive_write_repair_and_replay(tmp_path: Path, db_url: str,
                                                                           raw: Any) -> None:
    handles = [StoreHandle(name, open_store(db_url, view=view, **options))
               for name, (options, view, *_rest) in SHAPES.items()]
    forge = make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", *handles, ids=IDS)
    try:
        rows = _people(6)
        forge.write_many(rows)
        records = forge.records(rows)
        keys = [Binary(r.id.bytes, 4) for r in records]
        for (_options, _view, coll, theirs, edited) in SHAPES.values():
            raw[coll].update_many({"_id": {"$in": keys}}, {"$set": theirs})  # another application's fields
        forge.write_many(rows[:3])  # write-through over the documents
        for (_options, _view, coll, theirs, edited) in SHAPES.values():
            raw[coll].update_one({"_id": keys[4]}, {"$set": {edited: "hand edit"}})  # a stale entity
        report = forge.audit("person", repair=True)  # audit --repair --apply
        assert not report.repair_errors, report.repair_errors
        assert all(report.repaired[name]["rewritten"] == 1 for name in SHAPES), report.repaired
        forge.journal.record_intent(records, list(SHAPES))  # every store owed every record
        forge.replay()

        for name, (_options, _view, coll, theirs, edited) in SHAPES.items():
            for key in keys:
                doc = raw[coll].find_one({"_id": key})
                assert {k: doc.get(k) for k in theirs} == theirs, (name, doc)
                assert _at(doc, edited) == f"Person {keys.index(key)}", (name, doc)
        assert forge.audit("person").consistent
    finally:
        forge.close()


def test_unset_removes_owned_fields_only(db_url: str, raw: Any) -> None:
    """An owned field the record no longer has goes (``phone``, in the projection); the other
    application's fields stay, also when the projection names a field MongoDB cannot ``$set``
    as a plain name (``geo.lat``: the update pipeline keeps every field outside the projection)."""
    ident = uuid.uuid5(uuid.NAMESPACE_URL, "unset")
    key = Binary(ident.bytes, 4)
    raw["profile"].insert_one({"_id": key, "name": "old", "phone": "+41 stale", "cached_at": "x", "nick": "theirs"})
    with open_store(db_url, view=FieldView(projection=("name", "phone", "geo.lat"))) as store:
        record = Record("profile", ident, {"name": "Ann"})
        store.put_many([record])
        assert store.layout.owned_fields(record) == {"_id", "name"}  # type: ignore[attr-defined]
    assert raw["profile"].find_one({"_id": key}) == {"_id": ident, "name": "Ann", "cached_at": "x", "nick": "theirs"}


# -- the source filter -----------------------------------------------------------------------------

def test_filter_narrows_a_shared_source_collection(tmp_path: Path, db_url: str, raw: Any) -> None:
    """Password-reset tokens of another application share the user's collection, under IDs of our
    exact form: with ``filter`` they are never read, reported missing, copied nor touched."""
    source = open_store(db_url, collection="accounts", entity_type="user", filter='{"kind": "user"}')
    forge = make_forge(tmp_path, source, ("copy", f"sqlite:///{tmp_path}/copy.db"), ids=IDS,
                       types=[EntityType("user", key=("email",))])  # each document holds its key: provable
    try:
        rows = [("user", {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "kind": "user"})
                for i in range(5)]
        forge.write_many(rows)
        tokens = [{"_id": forge.id_for("token", {"t": i}), "kind": "reset", "token": f"secret-{i}"} for i in range(3)]
        raw["accounts"].insert_many([dict(t) for t in tokens])

        assert source.count("user") == 5
        assert source.get_many("user", [t["_id"] for t in tokens]) == {}
        report = forge.audit("user", repair=True, delete_orphans=True)
        assert report.consistent and report.stores["copy"]["missing"] == 0, report.findings
        copy = forge.stores[1].adapter
        assert copy.count("user") == 5 and copy.get_many("user", [t["_id"] for t in tokens]) == {}
        assert [raw["accounts"].find_one({"_id": t["_id"]}) for t in tokens] == tokens  # untouched

        admin = Record("user", forge.id_for("user", {"email": "a@example.com"}), {"email": "a@example.com",
                                                                                   "kind": "admin"})
        with pytest.raises(ValidationError, match="does not match this store's filter"):
            source.put_many([admin])
        assert raw["accounts"].count_documents({"kind": "admin"}) == 0
        with pytest.raises(ValidationError, match="drop it through Forge.drop"):
            source.drop("user")  # a shared collection: no drop without the proof
        source.drop("user", prover=forge.prover)  # our documents only, the filter's: the tokens stay
        assert raw["accounts"].count_documents({}) == 3
    finally:
        forge.close()


def test_filter_option_errors_name_the_option_and_value(db_url: str) -> None:
    for bad in ('{"kind": ', '["kind"]', "kind=user"):
        with pytest.raises(ConfigError) as info:
            open_store(db_url, collection="accounts", entity_type="user", filter=bad)
        assert "filter" in str(info.value) and bad[:6] in str(info.value)
    with (open_store(db_url, collection="accounts", entity_type="user", filter='{"name": {"$regex": "^A"}}') as store,
          pytest.raises(ValidationError, match=r"\$regex")):
        store.put_many([Record("user", uuid.uuid5(uuid.NAMESPACE_URL, "r"), {"name": "Ann"})])
