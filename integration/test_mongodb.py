"""The MongoDB adapter against a MongoDB wire-protocol server (the SecantusDB stand-in by default).

Each test writes into its own collection and drops it afterwards: the server may be shared.
Checks of the stored encoding go around the adapter with a plain ``MongoClient`` that keeps
pymongo's default ``uuidRepresentation`` ("unspecified"), so Binary comes back as Binary.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from tests.scaffold import OneTypeContract, SilentServer, driver_missing

pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))

from bson import Binary, ObjectId
from pymongo import monitoring
from uuid_forge.adapters.mongodb import MongoAdapter

from uuid_forge import (
    Partition,
    Record,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    ValidationError,
    open_store,
)
from uuid_forge.contract import Adapter
from uuid_forge.record import ForeignEntry, MalformedID
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import INJECTION_STRINGS, sample_records


@pytest.fixture(scope="module")
def raw_db(mongodb_url: str) -> Iterator[Any]:
    """The test database through a plain driver client (default uuidRepresentation)."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongodb_url, serverSelectionTimeoutMS=5000)
    yield client.get_default_database("uuid_forge")
    client.close()


class _MongoContract(AdapterContract):
    options: ClassVar[dict[str, Any]] = {}
    invalid_entity_types = (*AdapterContract.invalid_entity_types, "system.users", "system.profile")

    @pytest.fixture
    def store(self, mongodb_url: str) -> Iterator[Adapter]:
        with open_store(mongodb_url, **self.options) as s:
            yield s

    @pytest.fixture(autouse=True)
    def _raw(self, raw_db: Any) -> None:
        self.raw = raw_db

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        self.raw.drop_collection(entity_type)

    # -- ownership (issue 18): another application's top-level field in our document ------------
    def collection_of(self, entity_type: str) -> Any:
        return self.raw[entity_type]

    def id_value(self, ident: uuid.UUID) -> Any:
        return str(ident) if self.options.get("id_format") == "string" else Binary(ident.bytes, 4)

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        done = self.collection_of(entity_type).update_one({"_id": self.id_value(ident)}, {"$set": {name: value}})
        assert done.matched_count == 1
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        doc = self.collection_of(entity_type).find_one({"_id": self.id_value(ident)})
        return None if doc is None else doc.get(name)


class _FlatContract(_MongoContract):
    def test_injection_strings_are_data(self, store: Adapter, etype: str) -> None:
        """As the contract's, except a field name with a NUL: BSON cannot hold one, so the flat
        layout refuses it before any write, naming the field (layout=envelope keeps it as text)."""
        records = [Record(etype, uuid.uuid5(uuid.NAMESPACE_URL, s), {"text": s, "key": {s: s}}) for s in INJECTION_STRINGS]
        holdable = [r for r in records if "\x00" not in r.data["text"]]
        with pytest.raises(ValidationError, match=r"field 'key\.\\x00") as info:
            store.put_many(records)
        assert "_id" not in str(info.value) and store.count(etype) == 0  # refused before anything was written
        store.put_many(holdable)
        assert dict(store.scan(etype)) == {r.id: r.fingerprint for r in holdable}
        got = store.get_many(etype, [r.id for r in holdable])
        assert {i: r.json_data for i, r in got.items()} == {r.id: r.json_data for r in holdable}


class TestMongoBinaryIDs(_FlatContract):
    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "binary4"
        doc = self.raw[record.entity_type].find_one({"_id": Binary(record.id.bytes, 4)})
        assert doc is not None
        assert type(doc["_id"]) is Binary and doc["_id"].subtype == 4
        assert bytes(doc["_id"]) == record.id.bytes
        # the flat layout: the entity's fields beside _id, nothing of uuid-forge's own (no fp, no key)
        assert {k: v for k, v in doc.items() if k != "_id"} == record.json_data

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw[entity_type].insert_one({"_id": str(ident), "name": "planted"})
        return True


class TestMongoStringIDs(_FlatContract):
    options: ClassVar[dict[str, Any]] = {"id_format": "string"}

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "string"
        doc = self.raw[record.entity_type].find_one({"_id": str(record.id)})
        assert doc is not None
        assert type(doc["_id"]) is str and doc["_id"] == str(record.id)
        assert {k: v for k, v in doc.items() if k != "_id"} == record.json_data

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw[entity_type].insert_one({"_id": Binary(ident.bytes, 4), "name": "planted"})
        return True


class TestMongoEnvelope(_MongoContract):
    """The older {_id, fp, data, key} shape, still written with layout=envelope."""

    options: ClassVar[dict[str, Any]] = {"layout": "envelope"}

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        doc = self.raw[record.entity_type].find_one({"_id": Binary(record.id.bytes, 4)})
        assert doc is not None and set(doc) == {"_id", "fp", "data", "key"}
        assert doc["fp"] == record.fingerprint
        assert doc["data"] == record.json_data  # an embedded document, not text: queryable
        assert doc["key"] == record.key

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw[entity_type].insert_one({"_id": str(ident), "fp": "0" * 32, "data": {}, "key": None})
        return True


class TestMongoEnvelopeStringIDs(TestMongoEnvelope):
    """layout=envelope with id_format=string: the envelope under a 36-char string _id."""

    options: ClassVar[dict[str, Any]] = {"layout": "envelope", "id_format": "string"}

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "string"
        doc = self.raw[record.entity_type].find_one({"_id": str(record.id)})
        assert doc is not None and set(doc) == {"_id", "fp", "data", "key"}
        assert doc["fp"] == record.fingerprint and doc["data"] == record.json_data and doc["key"] == record.key

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw[entity_type].insert_one({"_id": Binary(ident.bytes, 4), "fp": "0" * 32, "data": {}, "key": None})
        return True


class TestMongoOwnCollection(OneTypeContract, _FlatContract):
    """Your own collection (``collection=``, ``entity_type=user``), fresh for each test: drop keeps it."""

    @pytest.fixture
    def store(self, mongodb_url: str, raw_db: Any) -> Iterator[Adapter]:
        self.collection = f"own_{uuid.uuid4().hex[:10]}"
        try:
            with open_store(mongodb_url, collection=self.collection, entity_type=self.entity_type) as s:
                yield s
        finally:
            raw_db.drop_collection(self.collection)

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        pass  # the store fixture drops the whole collection

    def collection_of(self, entity_type: str) -> Any:
        return self.raw[self.collection]

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        doc = self.raw[self.collection].find_one({"_id": Binary(record.id.bytes, 4)})
        assert doc is not None and {k: v for k, v in doc.items() if k != "_id"} == record.json_data
        assert record.entity_type not in self.raw.list_collection_names()  # no per-type collection beside it

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw[self.collection].insert_one({"_id": str(ident), "name": "planted"})
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        """The user's application's document: a UUID name as a binary UUID, a token as its text."""
        ident: Any = Binary(uuid.UUID(name).bytes, 4) if len(name) == 36 else name
        self.raw[self.collection].insert_one({"_id": ident, **data})
        return True

    def assert_container_kept(self, store: Adapter) -> None:
        assert self.collection in self.raw.list_collection_names()


# -- MongoDB-specific behaviour ----------------------------------------------------------------

@pytest.fixture
def etype(raw_db: Any) -> Iterator[str]:
    name = f"m{uuid.uuid4().hex[:12]}"
    yield name
    raw_db.drop_collection(name)


def test_id_format_from_url_query(mongodb_url: str, raw_db: Any, etype: str) -> None:
    sep = "&" if "?" in mongodb_url else "?"
    record = sample_records(etype, 1)[0]
    with open_store(f"{mongodb_url}{sep}id_format=string&in_batch_size=7&appname=uf-test") as store:
        assert store.id_encoding == "string"
        assert store.in_batch_size == 7  # type: ignore[attr-defined]
        store.put_many([record])
        assert list(store.get_many(etype, [record.id])) == [record.id]
    assert raw_db[etype].find_one({"_id": str(record.id)}) is not None


def test_bad_options_rejected(mongodb_url: str) -> None:
    with pytest.raises(ValidationError, match="id_format"):
        MongoAdapter(mongodb_url, id_format="base64")
    with pytest.raises(ValidationError, match="uuidRepresentation"):
        MongoAdapter(mongodb_url, uuidRepresentation="pythonLegacy")
    with pytest.raises(ValidationError, match="collection_prefix"):
        MongoAdapter(mongodb_url, collection_prefix="a$b")
    with pytest.raises(ValidationError, match="in_batch_size"):
        MongoAdapter(mongodb_url, in_batch_size=0)
    with pytest.raises(StoreError, match="unknownOption") as info:
        MongoAdapter("mongodb://u:pw123@127.0.0.1:1/db", unknownOption=1)
    assert "pw123" not in str(info.value)
    with pytest.raises(ValidationError, match="in_batch_size"):
        MongoAdapter(f"{mongodb_url}{'&' if '?' in mongodb_url else '?'}in_batch_size=many")


def test_default_database_when_url_names_none(mongodb_url: str) -> None:
    host = mongodb_url.split("://", 1)[1].split("/", 1)[0]
    entity_type = f"m{uuid.uuid4().hex[:12]}"
    record = sample_records(entity_type, 1)[0]
    with MongoAdapter(f"mongodb://{host}") as store:
        store.put_many([record])
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(f"mongodb://{host}")
    try:
        assert client["uuid_forge"][entity_type].count_documents({}) == 1
    finally:
        client["uuid_forge"].drop_collection(entity_type)
        client.close()


def test_collection_prefix(mongodb_url: str, raw_db: Any, etype: str) -> None:
    with open_store(mongodb_url, collection_prefix="uf_") as store:
        store.put_many(sample_records(etype, 2))
        assert raw_db[f"uf_{etype}"].count_documents({}) == 2
        assert raw_db[etype].count_documents({}) == 0
        assert etype in store.entity_types()
        assert all(not t.startswith("uf_") for t in store.entity_types())
    raw_db.drop_collection(f"uf_{etype}")



@pytest.mark.filterwarnings("ignore::uuid_forge.options.OptionDeprecationWarning")
def test_prefix_and_collection_prefix_share_the_collections_and_the_owners_record(mongodb_url: str, raw_db: Any,
                                                                                  etype: str) -> None:
    """``uuid_forge.owners`` keeps the field name earlier versions wrote (``collection_prefix``), so a
    collection claimed under either option name belongs to both spellings of the same prefix."""
    try:
        with open_store(mongodb_url, prefix="new_") as store:
            store.put_many(sample_records(etype, 2))
        assert raw_db["uuid_forge.owners"].find_one({"_id": f"new_{etype}"}) == {
            "_id": f"new_{etype}", "collection_prefix": "new_", "entity_type": etype}
        with open_store(mongodb_url, collection_prefix="new_") as old:
            assert etype in old.entity_types() and old.count(etype) == 2
            old.put_many(sample_records(etype, 3))
        with open_store(mongodb_url, prefix="ne") as other:  # "ne" + "w_<type>" names the same collection
            with pytest.raises(ValidationError, match=f"belongs to entity type '{etype}' with prefix 'new_'"):
                list(other.scan("w_" + etype))
            assert "w_" + etype not in other.entity_types()
    finally:
        raw_db.drop_collection(f"new_{etype}")
        raw_db["uuid_forge.owners"].delete_one({"_id": f"new_{etype}"})

def test_namespace_length_limit(mongodb_url: str) -> None:
    with open_store(mongodb_url, collection_prefix="p" * 150) as store:
        assert store.check_entity_type("x" * 10)
        with pytest.raises(ValidationError, match="longer than 255 bytes") as info:
            store.check_entity_type("x" * 100)
        assert repr("x" * 100)[:20] in str(info.value)


def test_entity_types_skips_empty_and_foreign_collections(mongodb_url: str, raw_db: Any, etype: str) -> None:
    foreign = f"m{uuid.uuid4().hex[:12]} with spaces"
    raw_db[foreign].insert_one({"_id": 1})
    try:
        with open_store(mongodb_url) as store:
            records = sample_records(etype, 2)
            store.put_many(records)
            assert etype in store.entity_types()
            store.delete_many(etype, [r.id for r in records])
            assert etype not in store.entity_types()
            assert foreign not in store.entity_types()
    finally:
        raw_db.drop_collection(foreign)


def test_envelope_keeps_what_bson_cannot_hold_exactly_as_text(mongodb_url: str, raw_db: Any, etype: str) -> None:
    plain = Record(etype, uuid.uuid4(), {"n": 2**62, "a": {"b": [1, "x"]}}, {"sku": "A-1"})
    wide = Record(etype, uuid.uuid4(), {"n": 2**64}, {"a.b": 1})
    odd_keys = Record(etype, uuid.uuid4(), {"$where": 1, "k\x00": 2})
    with open_store(mongodb_url, layout="envelope") as store:
        store.put_many([plain, wide, odd_keys])
        got = store.get_many(etype, [plain.id, wide.id, odd_keys.id])
    assert {i: r.data_json for i, r in got.items()} == {r.id: r.data_json for r in (plain, wide, odd_keys)}
    assert got[wide.id].key == {"a.b": 1}
    docs = {bytes(d["_id"]): d for d in raw_db[etype].find()}
    assert docs[plain.id.bytes]["data"] == {"n": 2**62, "a": {"b": [1, "x"]}}
    assert docs[plain.id.bytes]["key"] == {"sku": "A-1"}
    assert docs[wide.id.bytes]["data"] == wide.data_json and docs[wide.id.bytes]["key"] == '{"a.b":1}'
    assert docs[odd_keys.id.bytes]["data"] == odd_keys.data_json


def test_other_wrong_encodings_reported_once(mongodb_url: str, raw_db: Any, etype: str) -> None:
    good = sample_records(etype, 20)
    legacy = uuid.uuid5(uuid.NAMESPACE_DNS, etype)  # a version this scheme makes: ours in a wrong subtype
    with open_store(mongodb_url) as store:
        store.put_many(good)
        raw_db[etype].insert_many([{"_id": ObjectId(), "fp": "0" * 32}, {"_id": 42, "fp": "0" * 32},
                                   {"_id": Binary(legacy.bytes, 3), "fp": "0" * 32},
                                   {"_id": "not-a-uuid", "fp": "0" * 32}])
        found: list[MalformedID] = []
        foreign: list[ForeignEntry] = []
        ids: list[uuid.UUID] = []
        for part in Partition().split(4):
            for ident, _ in store.scan(etype, part, include_malformed=True):
                if isinstance(ident, ForeignEntry):
                    foreign.append(ident)
                else:
                    (found if isinstance(ident, MalformedID) else ids).append(ident)
    assert sorted(ids) == sorted(r.id for r in good)
    assert [m.id for m in found] == [legacy] and found[0].reason
    # issue 10: an ObjectId, an int and "not-a-uuid" are no IDs of ours: foreign, each reported once
    assert sorted(f.raw for f in foreign) == sorted(["42", "not-a-uuid", next(f.raw for f in foreign if len(f.raw) == 24)])
    assert all(f.reason for f in foreign)


class _Commands(monitoring.CommandListener):
    """Records the commands the adapter sends (to check what is pushed down to the server)."""

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def named(self, name: str) -> list[dict[str, Any]]:
        return [c for c in self.commands if name in c]


def test_reads_are_pushed_down_and_chunked(mongodb_url: str, etype: str) -> None:
    listener = _Commands()
    records = sample_records(etype, 250)
    with open_store(mongodb_url, in_batch_size=100, event_listeners=[listener]) as store:
        store.put_many(records)
        assert [len(c["updates"]) for c in listener.named("update")] == [250]
        listener.commands.clear()
        assert len(store.get_many(etype, [r.id for r in records])) == 250
        finds = listener.named("find")
        assert [len(c["filter"]["_id"]["$in"]) for c in finds] == [100, 100, 50]
        listener.commands.clear()
        part = Partition(1, 4)
        assert all(part.contains(i) for i, _ in store.scan(etype, part))
        ranged = listener.named("find")[0]
        assert ranged["filter"] == {"_id": {"$gte": Binary(part.lo_uuid.bytes, 4),
                                            "$lt": Binary(part.hi_uuid.bytes, 4)}}  # type: ignore[union-attr]
        assert "projection" not in ranged  # flat: the whole document is the data, fingerprinted as read
        assert "sort" not in ranged  # the audit compares by ID; a sort only costs the server
        listener.commands.clear()
        assert len(list(store.scan(etype))) == 250  # the whole ID space: one unfiltered pass
        assert [c["filter"] for c in listener.named("find")] == [{}]
        listener.commands.clear()
        assert store.delete_many(etype, [r.id for r in records]) == 250
        assert [len(d["q"]["_id"]["$in"]) for c in listener.named("delete") for d in c["deletes"]] == [100, 100, 50]


# -- failures ----------------------------------------------------------------------------------

def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread; the exception it raised, or fail if it is still running (a hang)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the test
            outcome.append(err)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"still blocked after {seconds} s: the adapter's timeouts did not apply")
    return outcome[0]


def test_server_that_never_answers_times_out(silent_server: SilentServer) -> None:
    # the adapter's default timeouts (5 s to select a server) must turn a silent server into an error
    store = MongoAdapter(f"mongodb://127.0.0.1:{silent_server.port}/db")
    try:
        err = _within(60, lambda: store.put_many(sample_records("silent", 3)))
        assert isinstance(err, StoreTimeoutError), err
        assert "timed out" in str(err)
    finally:
        store.close()


def test_refused_connection_is_unavailable_not_timeout() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    store = MongoAdapter(f"mongodb://user:s3cret@127.0.0.1:{port}/db", serverSelectionTimeoutMS=500)
    try:
        err = _within(60, store.ping)
        assert isinstance(err, StoreUnavailableError) and not isinstance(err, StoreTimeoutError), err
        assert "s3cret" not in str(err) and "s3cret" not in repr(store)
    finally:
        store.close()
