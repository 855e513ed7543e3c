"""Issue 18 on Elasticsearch: a write owns only its fields, a source ``filter`` narrows a shared
index, naive date-time text compares as the text it is, ``uf_id`` must be a keyword.

Against the Elasticsearch of the fixtures (the noida-db stand-in by default); what is stored is
read around uuid-forge with the official client. Every index is this test's own, deleted after.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

elasticsearch = pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))

from uuid_forge import ConfigError, IDConfig, Namespace, Record, ValidationError, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.view import FieldView

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("es-owned.uuid-forge.test"), salt="es-owned")


@pytest.fixture(scope="module")
def raw(es_client: Any) -> Any:
    """A plain elasticsearch-py client: checks go around the adapter."""
    return es_client


@pytest.fixture
def base(raw: Any) -> Iterator[str]:
    """A fresh index name prefix; every index under it goes afterwards."""
    name = f"o{uuid.uuid4().hex[:10]}"
    yield name
    for index in raw.indices.get_mapping(index=f"{name}*").body:  # deleting by wildcard is refused
        raw.options(ignore_status=404).indices.delete(index=index)


def _people(n: int) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [("person", {"email": f"p{i}@example.com"},
             {"email": f"p{i}@example.com", "name": f"Person {i}", "city": f"C{i}"}) for i in range(n)]


def test_fields_another_application_added_survive_write_repair_and_replay(
        tmp_path: Path, elasticsearch_url: str, raw: Any, base: str) -> None:
    # store name -> (options, view, index, what another application adds)
    shapes: dict[str, tuple[dict[str, Any], FieldView, str, dict[str, Any]]] = {
        "ignored": ({"prefix": f"{base}-a-"}, FieldView(ignore_fields=("indexed_at",)), f"{base}-a-person",
                    {"indexed_at": "2024-05-01T10:00:00Z"}),
        "projected": ({"prefix": f"{base}-b-"}, FieldView(projection=("email", "name")), f"{base}-b-person",
                      {"nick": "theirs", "city": "kept as they left it"}),
        "own_index": ({"index": f"{base}-people", "entity_type": "person"}, FieldView(projection=("email", "name")),
                      f"{base}-people", {"crm_id": 42, "notes": "VIP"}),
    }
    handles = [StoreHandle(n, open_store(elasticsearch_url, view=v, **o)) for n, (o, v, *_r) in shapes.items()]
    forge = make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", *handles, ids=IDS)
    try:
        rows = _people(6)
        forge.write_many(rows)
        records = forge.records(rows)
        for _o, _v, index, theirs in shapes.values():
            for r in records:
                raw.update(index=index, id=str(r.id), doc=theirs)
        forge.write_many(rows[:3])  # write-through over the documents
        for _o, _v, index, _t in shapes.values():
            raw.update(index=index, id=str(records[4].id), doc={"name": "hand edit"}, refresh=True)
        report = forge.audit("person", repair=True)  # audit --repair --apply
        assert not report.repair_errors, report.repair_errors
        assert all(report.repaired[n]["rewritten"] == 1 for n in shapes), report.repaired
        forge.journal.record_intent(records, list(shapes))  # every store owed every record
        forge.replay()

        for n, (_o, _v, index, theirs) in shapes.items():
            for i, r in enumerate(records):
                src = raw.get(index=index, id=str(r.id))["_source"]
                assert {k: src.get(k) for k in theirs} == theirs, (n, src)
                assert src["name"] == f"Person {i}" and src["uf_id"] == str(r.id), (n, src)
        assert forge.audit("person").consistent
    finally:
        forge.close()


@pytest.mark.parametrize("view", [FieldView(ignore_fields=("indexed_at",)), FieldView(projection=("name", "phone"))],
                         ids=["ignore_fields", "projection"])
def test_owned_fields_the_record_lacks_are_removed_the_others_stay(elasticsearch_url: str, raw: Any, base: str,
                                                                   view: FieldView) -> None:
    ident = uuid.uuid5(uuid.NAMESPACE_URL, "owned")
    index = f"{base}-profiles"
    raw.index(index=index, id=str(ident), refresh=True, document={
        "name": "old", "phone": "+41 stale", "indexed_at": "x", "nick": "theirs", "uf_numbers": ["/name"]})
    record = Record("profile", ident, {"name": "Ann"})
    with open_store(elasticsearch_url, index=index, entity_type="profile", view=view) as store:
        store.put_many([record])
        assert store.layout.owned_fields(  # type: ignore[attr-defined]
            Record("profile", ident, {"name": "Ann", "indexed_at": "y"})) == {"name", "uf_id"}
    theirs = {"indexed_at": "x", "nick": "theirs"} if view.projection else {"indexed_at": "x"}
    # phone (owned) and uf_numbers (our mark, not needed any more) gone; theirs untouched
    assert raw.get(index=index, id=str(ident))["_source"] == {"name": "Ann", "uf_id": str(ident), **theirs}


# -- the source filter -----------------------------------------------------------------------------

def test_filter_narrows_a_shared_source_index(tmp_path: Path, elasticsearch_url: str, raw: Any, base: str) -> None:
    """Another application's tokens share the user's index under IDs of our exact form: with
    ``filter`` they are never read, reported missing, copied nor touched."""
    index = f"{base}-accounts"
    raw.indices.create(index=index, mappings={"properties": {"uf_id": {"type": "keyword"},
                                                             "kind": {"type": "keyword"}}})
    source = open_store(elasticsearch_url, index=index, entity_type="user", filter='{"term": {"kind": "user"}}')
    forge = make_forge(tmp_path, source, ("copy", f"sqlite:///{tmp_path}/copy.db"), ids=IDS)
    try:
        rows = [("user", {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "kind": "user"})
                for i in range(5)]
        forge.write_many(rows)
        tokens = {str(forge.id_for("token", {"t": i})): {"kind": "reset", "token": f"secret-{i}"} for i in range(3)}
        for ident, doc in tokens.items():
            raw.index(index=index, id=ident, document=doc)
        raw.indices.refresh(index=index)

        assert source.count("user") == 5
        assert source.get_many("user", [uuid.UUID(i) for i in tokens]) == {}
        report = forge.audit("user", repair=True, delete_orphans=True)
        assert report.consistent and report.stores["copy"]["missing"] == 0, report.findings
        copy = forge.stores[1].adapter
        assert copy.count("user") == 5 and copy.get_many("user", [uuid.UUID(i) for i in tokens]) == {}
        assert {i: raw.get(index=index, id=i)["_source"] for i in tokens} == tokens  # untouched

        admin = Record("user", forge.id_for("user", {"email": "a@example.com"}),
                       {"email": "a@example.com", "kind": "admin"})
        with pytest.raises(ValidationError, match="does not match this store's filter"):
            source.put_many([admin])
        assert not raw.exists(index=index, id=str(admin.id))
        with pytest.raises(ValidationError, match="drop it through Forge.drop"):
            source.drop("user")  # a shared index: no drop without the proof
        source.drop("user", prover=forge.prover)  # our documents only, the filter's: the tokens stay
        raw.indices.refresh(index=index)
        assert raw.count(index=index)["count"] == 3
    finally:
        forge.close()


def test_filter_option_errors_name_the_option_and_value(elasticsearch_url: str, base: str) -> None:
    for bad in ('{"term": ', '["term"]', "kind=user"):
        with pytest.raises(ConfigError) as info:
            open_store(elasticsearch_url, index=f"{base}-x", entity_type="user", filter=bad)
        assert "filter" in str(info.value) and bad[:6] in str(info.value)
    with (open_store(elasticsearch_url, index=f"{base}-x", entity_type="user",
                     filter='{"match": {"name": "Ann"}}') as store,
          pytest.raises(ValidationError, match="match query")):
        store.put_many([Record("user", uuid.uuid5(uuid.NAMESPACE_URL, "m"), {"name": "Ann"})])


# -- dates and the id field --------------------------------------------------------------------------

def test_naive_date_time_text_compares_as_the_text_it_is(tmp_path: Path, elasticsearch_url: str, raw: Any,
                                                         base: str) -> None:
    """A clean write-through of naive date-time text into a date-mapped field is consistent; an
    edited value is still stale."""
    index = f"{base}-events"
    raw.indices.create(index=index, mappings={"properties": {"uf_id": {"type": "keyword"}, "at": {"type": "date"}}})
    store = open_store(elasticsearch_url, index=index, entity_type="event")
    forge = make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("es", store), ids=IDS)
    try:
        rows = [("event", {"n": i}, {"n": i, "at": f"2024-05-01T10:00:0{i}"}) for i in range(3)]
        forge.write_many(rows)
        report = forge.audit("event")
        assert report.consistent and report.stores["es"]["ok"] == 3, report.findings
        edited = forge.records(rows)[1]
        raw.update(index=index, id=str(edited.id), doc={"at": "2024-05-01T11:00:01"}, refresh=True)
        stale = {(f.id, f.kind, f.fields) for f in forge.audit("event").findings}
        assert stale == {(str(edited.id), "stale", ("at",))}
    finally:
        forge.close()


def test_an_index_mapping_the_id_field_as_text_is_refused(elasticsearch_url: str, raw: Any, base: str) -> None:
    index = f"{base}-texty"
    raw.indices.create(index=index, mappings={"properties": {"uf_id": {"type": "text"}}})
    with (open_store(elasticsearch_url, index=index, entity_type="thing") as store,
          pytest.raises(ValidationError, match="maps 'uf_id' as 'text'.*keyword")):
        store.put_many([Record("thing", uuid.uuid5(uuid.NAMESPACE_URL, "t"), {"a": 1})])
    assert raw.count(index=index)["count"] == 0
