"""Elasticsearch layouts (issue 11): the user's own index and fields, seed-era data, one data model.

Against the noida-db stand-in unless ``UUID_FORGE_TEST_ELASTICSEARCH_URL`` names a server. The
source is SQLite; what Elasticsearch holds is checked and edited with a plain ``Elasticsearch``
client, never through uuid-forge. Each test works in its own indices and deletes them afterwards.
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

elasticsearch = pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))

from uuid_forge.adapters.elasticsearch import ElasticsearchAdapter

from uuid_forge import ConfigError, Forge, IDConfig, Namespace, Record, UUIDGenerator, ValidationError, open_store
from uuid_forge.ownership import Prover

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("es-layouts.uuid-forge.test"), salt="es-layouts")
UTC = dt.UTC
#: these tests' records carry no key fields: what proves a document ours here is uuid-forge's mark
#: (the uf_id field naming it), which every document it writes carries (issue 18)
BY_MARK = Prover(UUIDGenerator(IDS))
#: every value kind of the one data model
EVERY_KIND: dict[str, Any] = {
    "created_at": dt.datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "total": decimal.Decimal("12345678901234567890.12"),  # 22 digits: no double holds it
    "big": 2**70, "count": 42, "ratio": 0.1, "ref": uuid.UUID("9f0c5b8e-2d4c-4f6e-9a3b-1c2d3e4f5a6b"),
    "address": {"city": "Zürich", "lines": ["Bahnhofstrasse 1", "8001"]}, "tags": ["a", "b"], "paid": True,
    "note": None, "name": "Zoë 東京 Ünïcode", "day": dt.date(2024, 1, 2),
}


@pytest.fixture(scope="module")
def raw(es_client: Any) -> Any:
    """A plain elasticsearch-py client: checks go around the adapter."""
    return es_client


@pytest.fixture
def name(raw: Any) -> Iterator[str]:
    """A fresh name for an entity type and the user's index; both indices go afterwards."""
    base = f"l{uuid.uuid4().hex[:10]}"
    yield base
    raw.options(ignore_status=404).indices.delete(index=f"{base}-orders,uf-{base}")


def _forge(tmp_path: Path, store: ElasticsearchAdapter) -> Forge:
    return make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("es", store), ids=IDS)


def _source_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "uf_id"}


# -- the default layout --------------------------------------------------------------------------

def test_default_layout_round_trips_every_value_kind(elasticsearch_url: str, raw: Any, name: str) -> None:
    record = Record(name, uuid.uuid5(uuid.NAMESPACE_URL, name), EVERY_KIND)
    with open_store(elasticsearch_url) as store:
        store.put_many([record])
        back = store.get_many(name, [record.id])[record.id]
        assert back.data_json == record.data_json and back.fingerprint == record.fingerprint
        assert back.key is None
        assert back.data["created_at"] == "2024-05-06T07:08:09.123456Z"  # the text sent, in a date field too
        assert back.data["total"] == EVERY_KIND["total"] and back.data["big"] == 2**70  # every digit
        assert dict(store.scan(name)) == {record.id: record.fingerprint}
    src = raw.get(index=f"uf-{name}", id=str(record.id))["_source"]
    assert src["uf_id"] == str(record.id) and src["created_at"] == "2024-05-06T07:08:09.123456Z"
    assert src["address"] == {"city": "Zürich", "lines": ["Bahnhofstrasse 1", "8001"]}  # top level, as is
    assert not {"fp", "key", "data"} & set(src)
    raw.indices.refresh(index=f"uf-{name}")
    for query in ({"match": {"name": "zoë"}}, {"match": {"address.city": "zürich"}},
                  {"range": {"created_at": {"gte": "2024-05-06T07:00:00Z"}}}, {"term": {"paid": True}}):
        hits = raw.search(index=f"uf-{name}", query=query)["hits"]["hits"]
        assert [h["_id"] for h in hits] == [str(record.id)], query


def test_data_colliding_with_our_fields_is_refused_before_any_write(elasticsearch_url: str, raw: Any,
                                                                    name: str) -> None:
    good = Record(name, uuid.uuid4(), {"x": 1})
    with open_store(elasticsearch_url) as store:
        for field in ("uf_id", "_id", "uf_numbers"):
            with pytest.raises(ValidationError, match=f"data field '{field}' collides"):
                store.put_many([good, Record(name, uuid.uuid4(), {field: "x"})])
        assert not raw.indices.exists(index=f"uf-{name}")
    with open_store(elasticsearch_url, id_field="order_uuid") as store:
        with pytest.raises(ValidationError, match="'order_uuid' collides with this store's id_field"):
            store.put_many([Record(name, uuid.uuid4(), {"order_uuid": "x"})])
        store.put_many([Record(name, good.id, {"uf_id": "fine here"})])  # not reserved under another id_field
    assert raw.get(index=f"uf-{name}", id=str(good.id))["_source"] == {"uf_id": "fine here",
                                                                       "order_uuid": str(good.id)}


def test_layout_options_are_checked(elasticsearch_url: str) -> None:
    with pytest.raises(ConfigError, match="index= and entity_type= go together"):
        open_store(elasticsearch_url, index="orders")
    with pytest.raises(ConfigError, match="index"):
        open_store(elasticsearch_url + "?index=Orders&entity_type=order")
    with pytest.raises(ConfigError, match="id_field='_id' cannot be a document field"):
        open_store(elasticsearch_url, id_field="_id")
    with pytest.raises(ConfigError, match="both 'x'"):
        open_store(elasticsearch_url, id_field="x", numbers_field="x")
    with open_store(elasticsearch_url + "?index=orders&entity_type=order&id_field=") as s:
        assert (s.index_name("order"), s.layout.id_field) == ("orders", "")
        with pytest.raises(ValidationError, match="holds only 'order'"):
            s.check_entity_type("user")


def test_old_envelope_index_is_refused_with_a_clear_error(elasticsearch_url: str, raw: Any, name: str) -> None:
    raw.indices.create(index=f"uf-{name}", mappings={"dynamic": "strict", "properties": {
        "id": {"type": "keyword"}, "fp": {"type": "keyword"}, "key": {"type": "object", "enabled": False},
        "data": {"type": "object", "enabled": False}}})
    with open_store(elasticsearch_url) as store, pytest.raises(ValidationError, match="former envelope layout"):
        store.put_many([Record(name, uuid.uuid4(), {"x": 1})])


# -- the user's own index ------------------------------------------------------------------------

def test_own_index_is_created_with_only_the_id_field_mapped(elasticsearch_url: str, raw: Any, name: str) -> None:
    index = f"{name}-orders"
    with open_store(elasticsearch_url, index=index, entity_type="order") as store:
        store.put_many([Record("order", uuid.uuid4(), {"status": "paid"})])
        mapping = raw.indices.get_mapping(index=index)[index]["mappings"]
        assert mapping["properties"]["uf_id"] == {"type": "keyword"}
        assert mapping["properties"]["status"]["type"] == "text"  # dynamic, as for any document
        assert "_meta" not in mapping and mapping.get("dynamic") in (None, True, "true")
        assert store.entity_types() == ["order"]
        with pytest.raises(ValidationError, match="shared with others"):
            store.drop("order")  # the user's index: not without the proof
        store.drop("order", prover=BY_MARK)  # the user's index stays; only our documents go
        assert raw.indices.exists(index=index) and raw.count(index=index)["count"] == 0


def test_own_index_mapping_is_respected_and_drop_leaves_other_documents(elasticsearch_url: str, raw: Any,
                                                                       name: str) -> None:
    index = f"{name}-orders"
    user_mapping = {"properties": {"status": {"type": "keyword"}, "total": {"type": "double"},
                                   "notes": {"type": "text", "analyzer": "english"}}}
    raw.indices.create(index=index, mappings=user_mapping)
    raw.index(index=index, id="report-2024", document={"status": "summary", "total": 1.0}, refresh=True)
    records = [Record("order", uuid.uuid5(uuid.NAMESPACE_URL, f"{name}{i}"), {"status": "paid", "total": i,
                                                                           "notes": "shipped quickly"})
               for i in range(3)]
    with open_store(elasticsearch_url, index=index, entity_type="order") as store:
        store.put_many(records)
        mapping = raw.indices.get_mapping(index=index)[index]["mappings"]["properties"]
        assert {k: mapping[k] for k in user_mapping["properties"]} == user_mapping["properties"]  # untouched
        raw.indices.refresh(index=index)
        hits = raw.search(index=index, query={"match": {"notes": "ship"}})["hits"]["hits"]  # english stemming
        assert sorted(h["_id"] for h in hits) == sorted(str(r.id) for r in records)
        assert [m.raw for m, _ in store.scan("order", include_malformed=True) if not isinstance(m, uuid.UUID)] \
            == ["report-2024"]
        store.drop("order", prover=BY_MARK)
    assert raw.indices.exists(index=index)
    raw.indices.refresh(index=index)
    assert [h["_id"] for h in raw.search(index=index)["hits"]["hits"]] == ["report-2024"]


def test_per_type_index_holding_foreign_documents_is_not_deleted(elasticsearch_url: str, raw: Any,
                                                                 name: str) -> None:
    with open_store(elasticsearch_url) as store:
        store.put_many([Record(name, uuid.uuid4(), {"x": 1})])
        raw.index(index=f"uf-{name}", id="someone-elses", document={"x": 2}, refresh=True)
        store.drop(name)
        assert [i for i, _ in store.scan(name)] == []
    assert raw.get(index=f"uf-{name}", id="someone-elses")["_source"] == {"x": 2}


# -- seed-era data: the seed's order index, read, audited and repaired in its own shape ----------

def _seed_orders(forge: Forge, n: int) -> list[Record]:
    """``n`` orders in the source (the truth), as the seed's order flow made them."""
    rows = [("order", {"order_id": f"ORD-{i:04d}"}, {
        "order_id": f"ORD-{i:04d}", "customer_email": f"customer{i}@example.com", "status": "paid",
        "total": decimal.Decimal(f"{10 + i}.90"),
        "created_at": dt.datetime(2024, 1, 15, 10, 30, i, 123000, tzinfo=UTC)})
        for i in range(n)]
    records = forge.records(rows)
    forge.source.adapter.put_many(records)
    return records


def _seed_document(record: Record, i: int) -> dict[str, Any]:
    """The seed's document: top-level fields, its own datetime texts and floats, no uf_id."""
    data = dict(record.data)
    when: dt.datetime = data["created_at"]
    # (naive text names no instant: it compares as text, see test_es_owned_fields_filter_and_dates.py)
    data["created_at"] = (when.isoformat() if i % 3 == 0  # "+00:00"
                          else when.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat() if i % 3 == 1
                          else when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")  # milliseconds
    data["total"] = float(data["total"])
    return data


@pytest.fixture
def seeded(elasticsearch_url: str, raw: Any, name: str, tmp_path: Path) -> Iterator[tuple[Forge, list[Record], str]]:
    index = f"{name}-orders"
    raw.indices.create(index=index, mappings={"properties": {
        "order_id": {"type": "keyword"}, "customer_email": {"type": "text"}, "status": {"type": "keyword"},
        "total": {"type": "double"}, "created_at": {"type": "date"}}})
    store = open_store(elasticsearch_url, index=index, entity_type="order", id_field="")
    assert isinstance(store, ElasticsearchAdapter)
    forge = _forge(tmp_path, store)
    records = _seed_orders(forge, 12)
    for i, r in enumerate(records):
        raw.index(index=index, id=str(r.id), document=_seed_document(r, i))
    raw.index(index=index, id="legacy-order-7", document={"order_id": "LEGACY-7", "status": "archived"})
    raw.indices.refresh(index=index)
    yield forge, records, index
    forge.close()


def test_seed_index_is_read_as_its_text_and_its_other_datetime_spellings_are_stale(
        seeded: tuple[Forge, list[Record], str], raw: Any) -> None:
    """Text is text (docs/data-model.md), as in key fields: the seed's naive, offset and millisecond
    texts are other values than the source's datetime (its UTC text), even in a date-mapped field.
    Everything else reads as the source's; repair writes the source's text, and nothing else."""
    forge, records, index = seeded
    report = forge.audit("order")
    assert report.stores["es"]["foreign"] == 1
    assert {(f.id, f.kind, f.fields) for f in report.findings} == {(str(r.id), "stale", ("created_at",))
                                                                  for r in records}
    store = next(h.adapter for h in forge.stores if h.name == "es")
    got = store.get_many("order", [r.id for r in records])
    assert [got[r.id].data["created_at"] for r in records] == [_seed_document(r, i)["created_at"]
                                                               for i, r in enumerate(records)]
    repaired = forge.audit("order", repair=True)
    assert repaired.repaired["es"]["rewritten"] == len(records), repaired.repair_errors
    assert forge.audit("order").consistent
    assert raw.get(index=index, id=str(records[1].id))["_source"]["created_at"] == "2024-01-15T10:30:01.123000Z"


def test_seed_index_edits_are_stale_with_the_field_named_and_repaired_in_place(
        seeded: tuple[Forge, list[Record], str], raw: Any) -> None:
    forge, records, index = seeded
    edited, removed, renumbered = records[1], records[4], records[8]
    raw.update(index=index, id=str(edited.id), doc={"status": "refunded"})
    doc = raw.get(index=index, id=str(removed.id))["_source"]
    del doc["customer_email"]
    raw.index(index=index, id=str(removed.id), document=doc)
    raw.update(index=index, id=str(renumbered.id), doc={"total": 999.5}, refresh=True)

    report = forge.audit("order")
    found = {f.id: (f.kind, f.fields) for f in report.findings}
    other_spelling = {str(r.id): ("stale", ("created_at",)) for r in records}  # the seed's datetime texts
    assert found == {**other_spelling, str(edited.id): ("stale", ("created_at", "status")),
                     str(removed.id): ("stale", ("created_at", "customer_email")),
                     str(renumbered.id): ("stale", ("created_at", "total"))}
    repaired = forge.audit("order", repair=True)
    assert repaired.repaired["es"]["rewritten"] == len(records), repaired.repair_errors
    for r in (edited, removed, renumbered):  # in its own shape: the entity's fields, no uf_id
        src = raw.get(index=index, id=str(r.id))["_source"]
        assert src == r.json_data, src
    assert raw.get(index=index, id="legacy-order-7")["_source"] == {"order_id": "LEGACY-7", "status": "archived"}
    assert forge.audit("order").consistent
    mapping = raw.indices.get_mapping(index=index)[index]["mappings"]["properties"]
    assert set(mapping) == {"order_id", "customer_email", "status", "total", "created_at"}  # nothing added


def test_match_query_finds_a_document_uuid_forge_wrote(seeded: tuple[Forge, list[Record], str], raw: Any) -> None:
    forge, _, index = seeded
    forge.write("order", {"order_id": "ORD-9001"}, {
        "order_id": "ORD-9001", "customer_email": "alice@wonderland.test", "status": "paid",
        "total": decimal.Decimal("42.00"), "created_at": dt.datetime(2024, 2, 1, tzinfo=UTC)})
    ident = forge.id_for("order", {"order_id": "ORD-9001"})
    raw.indices.refresh(index=index)
    hits = raw.search(index=index, query={"match": {"customer_email": "Alice"}})["hits"]["hits"]
    assert [h["_id"] for h in hits] == [str(ident)]
    assert _source_of(hits[0]["_source"]) == hits[0]["_source"]  # id_field="" keeps the seed's shape
    report = forge.audit("order")  # the seed's own datetime spellings are stale; what we wrote is not
    assert report.stores["es"]["ok"] == 1 and str(ident) not in {f.id for f in report.findings}


# -- the default index: edits, foreign documents, repair -----------------------------------------

def test_default_layout_edits_are_stale_and_repaired_and_foreign_documents_survive(
        elasticsearch_url: str, raw: Any, name: str, tmp_path: Path) -> None:
    store = open_store(elasticsearch_url)
    assert isinstance(store, ElasticsearchAdapter)
    with _forge(tmp_path, store) as forge:
        rows = [(name, {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "name": f"User {i}", "n": i,
                                                       "joined": dt.datetime(2023, 1, 1, i, tzinfo=UTC)})
                for i in range(10)]
        forge.write_many(rows)
        records = forge.records(rows)
        index = f"uf-{name}"
        raw.index(index=index, id="session-abc", document={"name": "another app", "n": 1})
        raw.update(index=index, id=str(records[2].id), doc={"name": "Hand Edited"})
        doc = raw.get(index=index, id=str(records[5].id))["_source"]
        del doc["email"]
        raw.index(index=index, id=str(records[5].id), document=doc)
        raw.update(index=index, id=str(records[7].id), doc={"n": 70}, refresh=True)

        report = forge.audit(name)
        assert {f.id: f.fields for f in report.findings if f.kind == "stale"} == {
            str(records[2].id): ("name",), str(records[5].id): ("email",), str(records[7].id): ("n",)}
        assert report.stores["es"]["foreign"] == 1 and report.stores["es"]["ok"] == 7
        forge.audit(name, repair=True)
        for r in (records[2], records[5], records[7]):
            assert _source_of(raw.get(index=index, id=str(r.id))["_source"]) == r.json_data
        assert raw.get(index=index, id="session-abc")["_source"] == {"name": "another app", "n": 1}
        assert forge.audit(name).consistent
