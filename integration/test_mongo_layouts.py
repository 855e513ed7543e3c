"""MongoDB layouts (issue 11): the flat default, your own collection, seed-era documents.

Against the MongoDB wire-protocol server of the fixtures (the SecantusDB stand-in by default).
Every check of what is stored goes around uuid-forge with a plain ``MongoClient``; each test uses
a database of its own, dropped afterwards, so a shared server is left as it was.

The seed's ``documents`` collection holds flat documents with the UUID text as ``_id`` and
datetimes as BSON dates (naive UTC, milliseconds): it is opened with ``collection=documents``,
``entity_type=document``, ``id_format=string`` and ``datetimes=date``, audited and repaired in
that shape.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))

from bson import Binary, Decimal128, ObjectId

from uuid_forge import Forge, IDConfig, Namespace, Record, ValidationError, open_store
from uuid_forge.canonical import canonical
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import OptionError
from uuid_forge.record import ForeignEntry, data_fingerprint, load_json
from uuid_forge.view import FieldView

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("mongo-layouts.uuid-forge.test"), salt="mongo-layouts")
UTC = dt.UTC
SEED = {"collection": "documents", "entity_type": "document", "id_format": "string", "datetimes": "date"}


@pytest.fixture
def db_url(mongo_db_url: str) -> str:
    """A database of this test's own (dropped afterwards)."""
    return mongo_db_url


@pytest.fixture
def raw(db_url: str) -> Iterator[Any]:
    """The test's database through pymongo's defaults (Binary stays Binary, dates come naive)."""
    client: Any = pymongo.MongoClient(db_url, serverSelectionTimeoutMS=5000)
    yield client.get_default_database()
    client.close()


#: the types these tests write, with the key field each record holds in its data: what proves an
#: entry of the user's collection ours (issue 18), so that its orphans may be deleted and drop removes it
TYPES = [EntityType("document", key=("slug",)), EntityType("customer", key=("email",))]


def _forge(tmp_path: Path, store: Any) -> Forge:
    return make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("mongo", store), ids=IDS, types=TYPES)


EVERY_KIND = {
    "when": dt.datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "amount": decimal.Decimal("12345678901.234567891"),  # 20 digits: no double holds them
    "price": decimal.Decimal("12.50"),
    "count": 42,
    "big": 2**63,  # one past int64
    "ratio": 0.1,
    "tiny": 1e-7,
    "ref": uuid.UUID("6f1c2a4e-8d3b-5e7f-9a0b-1c2d3e4f5a6b"),
    "address": {"city": "Zürich", "lines": ["Bahnhofstrasse 1", None], "geo": {"lat": 47.37, "lon": 8.54}},
    "tags": ["a", 1, 2.5, True, None, {"k": "v"}],
    "active": True,
    "deleted": False,
    "note": None,
    "name": "zoë ✓ 日本",
}


@pytest.mark.parametrize("id_format", ["binary", "string"])
def test_default_data_layout_round_trips_every_value_kind(db_url: str, raw: Any, id_format: str) -> None:
    record = Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "every-kind"), EVERY_KIND)
    with open_store(db_url, id_format=id_format) as store:
        assert store.layout.name == "data"  # type: ignore[attr-defined]
        store.put_many([record])
        got = store.get_many("thing", [record.id])[record.id]
        scanned = dict(store.scan("thing"))
    assert got.data_json == record.data_json and got.fingerprint == record.fingerprint
    assert got.key is None
    assert scanned == {record.id: record.fingerprint}
    assert canonical(got.data["amount"]) == "12345678901.234567891"
    # the stored shape: the fields at the top level, numbers as numbers, no fp, no key
    doc = raw["thing"].find_one()
    assert doc["_id"] == (Binary(record.id.bytes, 4) if id_format == "binary" else str(record.id))
    assert set(doc) == {"_id", *EVERY_KIND}
    assert doc["when"] == "2024-05-01T12:30:15.123456Z"  # canonical UTC text: exact
    assert doc["amount"] == Decimal128("12345678901.234567891")
    assert type(doc["price"]) is float and doc["price"] == 12.5
    assert doc["big"] == Decimal128(str(2**63)) and doc["count"] == 42
    assert doc["ref"] == str(EVERY_KIND["ref"]) and doc["address"]["city"] == "Zürich"
    assert raw["thing"].count_documents({"amount": {"$gt": 12345678901}}) == 1  # still a number to MongoDB


def test_native_bson_values_written_by_others_read_as_the_data_model(db_url: str, raw: Any) -> None:
    """Dates, Decimal128, Binary-4 UUIDs and int64 written by another program compare equal to the
    source's values."""
    ident = uuid.uuid5(uuid.NAMESPACE_URL, "native")
    ref = uuid.uuid4()
    client: Any = pymongo.MongoClient(db_url, uuidRepresentation="standard")
    client.get_default_database()["thing"].insert_one({
        "_id": ident, "at": dt.datetime(2024, 1, 2, 3, 4, 5, 678000), "n": Decimal128("0.1"),
        "d": Decimal128("1234567890.1234567890"), "ref": ref, "list": [dt.datetime(2020, 1, 1)]})
    client.close()
    source = Record("thing", ident, {"at": dt.datetime(2024, 1, 2, 4, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=1))),
                                     "n": decimal.Decimal("0.1"), "d": decimal.Decimal("1234567890.123456789"),
                                     "ref": str(ref), "list": ["2020-01-01T00:00:00Z"]})
    with open_store(db_url) as store:
        got = store.get_many("thing", [ident])[ident]
        assert got.data["at"] == dt.datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        assert got.data["d"] == decimal.Decimal("1234567890.1234567890") and got.data["ref"] == ref
        assert got.data_json == source.data_json and got.fingerprint == source.fingerprint
        assert dict(store.scan("thing")) == {ident: source.fingerprint}


def test_bson_dates_hold_milliseconds_compare_at_that_precision(db_url: str, raw: Any) -> None:
    """datetimes=date writes BSON dates (milliseconds): a microsecond differs unless the store's
    view compares at datetime_precision "ms"; the default text form keeps every digit."""
    record = Record("event", uuid.uuid5(uuid.NAMESPACE_URL, "ms"),
                    {"at": dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC), "n": 1})
    with open_store(db_url, datetimes="date") as store:
        store.put_many([record])
        assert raw["event"].find_one()["at"] == dt.datetime(2024, 5, 1, 12, 0, 0, 123000)  # a BSON date
        assert dict(store.scan("event"))[record.id] != record.fingerprint  # the microseconds are gone
        view = FieldView(datetime_precision="ms")
        store.view = view
        expected = data_fingerprint(view.apply(load_json(record.data_json)))
        assert dict(store.scan("event")) == {record.id: expected}
        assert store.get_many("event", [record.id])[record.id].fingerprint == expected
    with open_store(db_url) as exact:
        exact.put_many([record])
        assert dict(exact.scan("event")) == {record.id: record.fingerprint}


def test_id_field_and_unstorable_values_refused_before_any_write(db_url: str, raw: Any) -> None:
    good = Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "good"), {"name": "fine"})
    with_id = Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "with-id"), {"_id": "mine", "name": "x"})
    too_precise = Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "digits"),
                         {"deep": {"x": decimal.Decimal("1." + "1" * 40)}})
    dollar = Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "dollar"), {"$where": "1"})
    with open_store(db_url) as store:
        for bad, field in ((with_id, "'_id'"), (too_precise, "'deep.x'"), (dollar, "'$where'")):
            with pytest.raises(ValidationError) as info:
                store.put_many([good, bad])
            assert field in str(info.value) and str(bad.id) in str(info.value)
        assert raw.list_collection_names() == [] or raw["thing"].count_documents({}) == 0
    with open_store(db_url, layout="envelope") as envelope:  # the envelope keeps them (data as text)
        envelope.put_many([with_id, too_precise, dollar])
        got = envelope.get_many("thing", [with_id.id, too_precise.id, dollar.id])
        assert {i: r.data_json for i, r in got.items()} == {r.id: r.data_json for r in (with_id, too_precise, dollar)}


def test_own_collection_options(db_url: str, raw: Any) -> None:
    with pytest.raises(ValidationError, match="entity_type"):
        open_store(db_url, collection="documents")
    with pytest.raises(ValidationError, match="collection="):
        open_store(db_url, entity_type="document")
    with pytest.raises(ValidationError, match="system"):
        open_store(db_url, collection="system.users", entity_type="user")
    with pytest.raises(OptionError, match="layout"):
        open_store(db_url, layout="nested")
    sep = "&" if "?" in db_url else "?"
    with open_store(f"{db_url}{sep}collection=documents&entity_type=document&id_format=string") as store:
        with pytest.raises(ValidationError, match="holds only 'document'"):
            store.put_many([Record("user", uuid.uuid4(), {"a": 1})])
        record = Record("document", uuid.uuid5(uuid.NAMESPACE_URL, "d"), {"title": "T"})
        store.put_many([record])
        assert raw["documents"].find_one() == {"_id": str(record.id), "title": "T"}
        assert store.entity_types() == ["document"]
        assert "uuid_forge.owners" not in raw.list_collection_names()  # nothing of ours beside your collection


# -- the seed's documents collection ------------------------------------------------------------

def _seed_docs(n: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(type, key, data) rows as the seed's document store kept them: millisecond datetimes."""
    return [("document", {"slug": f"doc-{i}"},
             {"slug": f"doc-{i}", "title": f"Document {i}", "views": i * 10, "price": 9.5 + i,
              "created_at": dt.datetime(2023, 6, 1, 8, 0, i, 250000, tzinfo=UTC), "tags": ["seed", f"t{i % 3}"]})
            for i in range(n)]


def _as_seed_wrote(record: Record) -> dict[str, Any]:
    """The seed's document: string _id, fields at the top level, a naive UTC BSON date."""
    data = dict(record.data)
    data["created_at"] = data["created_at"].astimezone(UTC).replace(tzinfo=None)
    return {"_id": str(record.id), **data}


@pytest.fixture
def seeded(tmp_path: Path, db_url: str, raw: Any) -> Iterator[tuple[Forge, list[Record]]]:
    """A source holding 20 documents and the seed's collection holding the same, in its shape,
    beside two documents of another application."""
    forge = _forge(tmp_path, open_store(db_url, **SEED))
    records = forge.records(_seed_docs(20))
    forge.source.adapter.put_many(records)
    raw["documents"].insert_many([_as_seed_wrote(r) for r in records])
    raw["documents"].insert_many([{"_id": "legacy-42", "title": "from the old CMS"},
                                  {"_id": ObjectId(), "title": "a draft"}])
    yield forge, records
    forge.close()


def test_seed_documents_are_read_and_audited_in_their_shape(seeded: tuple[Forge, list[Record]]) -> None:
    forge, records = seeded
    report = forge.audit("document")
    assert report.consistent, report.findings
    assert report.stores["mongo"]["ok"] == 20
    assert report.stores["mongo"]["foreign"] == 2
    assert "document: legacy-42" in report.foreign_samples["mongo"]
    got = forge.stores[1].adapter.get_many("document", [records[0].id])[records[0].id]
    assert got.data["created_at"] == records[0].data["created_at"] and got.key is None


def test_seed_documents_edited_are_stale_with_fields_named_then_repaired_in_place(
        seeded: tuple[Forge, list[Record]], raw: Any) -> None:
    forge, records = seeded
    docs = raw["documents"]
    edited, removed, renumbered, dated, gone = records[2], records[5], records[8], records[11], records[14]
    docs.update_one({"_id": str(edited.id)}, {"$set": {"title": "Edited by hand"}})
    docs.update_one({"_id": str(removed.id)}, {"$unset": {"price": ""}})
    docs.update_one({"_id": str(renumbered.id)}, {"$inc": {"views": 1}})
    docs.update_one({"_id": str(dated.id)}, {"$set": {"created_at": dt.datetime(2023, 6, 1, 8, 0, 11, 251000)}})
    docs.delete_one({"_id": str(gone.id)})
    orphan = forge.records([("document", {"slug": "never-in-the-source"}, {"slug": "never-in-the-source"})])[0]
    docs.insert_one({"_id": str(orphan.id), "slug": "never-in-the-source"})

    report = forge.audit("document")
    found = {(f.id, f.kind): f for f in report.findings if f.kind != "foreign"}
    assert set(found) == {(str(edited.id), "stale"), (str(removed.id), "stale"), (str(renumbered.id), "stale"),
                          (str(dated.id), "stale"), (str(gone.id), "missing"), (str(orphan.id), "orphan")}
    assert found[str(edited.id), "stale"].fields == ("title",)
    assert found[str(removed.id), "stale"].fields == ("price",)
    assert "missing in the store: price" in found[str(removed.id), "stale"].detail
    assert found[str(renumbered.id), "stale"].fields == ("views",)
    assert found[str(dated.id), "stale"].fields == ("created_at",)

    repaired = forge.audit("document", repair=True, delete_orphans=True)
    assert not repaired.repair_errors, repaired.repair_errors
    for r in (edited, removed, renumbered, dated, gone):  # back, in the seed's own shape
        assert docs.find_one({"_id": str(r.id)}) == _as_seed_wrote(r)
    assert docs.find_one({"_id": str(orphan.id)}) is None
    assert docs.count_documents({"_id": {"$type": "binData"}}) == 0  # no Binary _id crept in
    assert docs.find_one({"_id": "legacy-42"}) == {"_id": "legacy-42", "title": "from the old CMS"}
    assert docs.count_documents({"title": "a draft"}) == 1
    assert forge.audit("document").stores["mongo"]["ok"] == 20


def test_drop_of_own_collection_leaves_other_documents(seeded: tuple[Forge, list[Record]], raw: Any) -> None:
    forge, _ = seeded
    with pytest.raises(ValidationError, match="shared with others"):
        forge.stores[1].adapter.drop("document")  # the user's collection: not without the proof
    forge.drop("document")
    left = list(raw["documents"].find({}, {"_id": 1}))
    assert len(left) == 2 and {"_id": "legacy-42"} in left


# -- the default layout, audited ------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"id_format": "string"}, {"layout": "envelope"}], ids=["binary", "string", "envelope"])
def test_flat_edits_are_stale_with_fields_named_and_repaired(tmp_path: Path, db_url: str, raw: Any,
                                                             options: dict[str, Any]) -> None:
    forge = _forge(tmp_path, open_store(db_url, **options))
    et = "customer"
    envelope = options.get("layout") == "envelope"
    # a balance a double holds: the 20-digit Decimal128 case is the round-trip test's (the SQLite
    # source's get_many parsed its JSON with json.loads at the time of writing: digits lost on repair)
    base = decimal.Decimal("10.25")
    rows = [(et, {"email": f"c{i}@example.com"}, {"email": f"c{i}@example.com", "name": f"C {i}", "n": i,
                                                   "balance": base + i}) for i in range(12)]
    try:
        forge.write_many(rows)
        records = forge.records(rows)
        raw[et].insert_one({"_id": "not-an-id", "name": "someone else's"})
        assert forge.audit(et).stores["mongo"]["ok"] == 12
        prefix = "data." if envelope else ""
        key = (lambda r: str(r.id)) if options.get("id_format") == "string" else (lambda r: Binary(r.id.bytes, 4))
        edited, removed, renumbered = records[1], records[4], records[7]
        raw[et].update_one({"_id": key(edited)}, {"$set": {f"{prefix}name": "Hand edit"}})
        raw[et].update_one({"_id": key(removed)}, {"$unset": {f"{prefix}email": ""}})
        raw[et].update_one({"_id": key(renumbered)}, {"$set": {f"{prefix}balance": Decimal128("1.5")}})
        report = forge.audit(et)
        stale = {f.id: f.fields for f in report.findings if f.kind == "stale"}
        assert stale == {str(edited.id): ("name",), str(removed.id): ("email",), str(renumbered.id): ("balance",)}
        assert report.foreign_samples["mongo"] == [f"{et}: not-an-id"]
        assert forge.audit(et, repair=True).repaired["mongo"]["rewritten"] == 3
        for r in (edited, removed, renumbered):
            doc = raw[et].find_one({"_id": key(r)})
            if envelope:
                assert doc["data"] == r.json_data and doc["fp"] == r.fingerprint
            else:  # the fields back at the top level, nothing else
                assert doc == {"_id": key(r), **r.json_data}
        assert raw[et].find_one({"_id": "not-an-id"}) == {"_id": "not-an-id", "name": "someone else's"}
        assert forge.audit(et).stores["mongo"]["ok"] == 12
    finally:
        forge.drop(et)
        forge.close()


def test_foreign_entry_is_reported_by_its_id(db_url: str, raw: Any) -> None:
    with open_store(db_url) as store:
        store.put_many([Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "ours"), {"a": 1})])
        raw["thing"].insert_one({"_id": "legacy-7", "a": 2})
        items = list(store.scan("thing", include_malformed=True))
    foreign = [i for i, _ in items if isinstance(i, ForeignEntry)]
    assert [f.raw for f in foreign] == ["legacy-7"]


def test_writes_leave_fields_outside_the_store_view_alone(db_url: str, raw: Any) -> None:
    """A projection is written with $set/$unset of its fields only; ignore_fields (the store's
    own) survive a rewrite from the source, while other hand-added fields go."""
    ident = uuid.uuid5(uuid.NAMESPACE_URL, "view")
    full = Record("profile", ident, {"name": "Ann", "email": "ann@example.com", "age": 40})
    raw["profile"].insert_one({"_id": Binary(ident.bytes, 4), "name": "old", "nick": "theirs", "seen_at": "x"})
    with open_store(db_url) as store:
        store.view = FieldView(projection=("name", "email", "phone"))
        raw["profile"].update_one({"_id": Binary(ident.bytes, 4)}, {"$set": {"phone": "stale"}})
        store.put_many([full])
        assert raw["profile"].find_one() == {"_id": Binary(ident.bytes, 4), "name": "Ann", "email": "ann@example.com",
                                             "nick": "theirs", "seen_at": "x"}  # age not sent, phone unset
        assert dict(store.scan("profile")) == {ident: data_fingerprint({"name": "Ann", "email": "ann@example.com"})}
        store.view = FieldView(ignore_fields=("seen_at",))
        store.put_many([full])
        assert raw["profile"].find_one() == {"_id": Binary(ident.bytes, 4), "name": "Ann", "email": "ann@example.com",
                                             "age": 40, "seen_at": "x"}  # nick (hand-added) gone, seen_at kept
        assert dict(store.scan("profile")) == {ident: full.fingerprint}
