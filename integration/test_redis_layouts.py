"""Redis layouts against the real server (issue 11): the user's shape, read, audited and repaired in place.

* the default layout (``layout=data``: a JSON string per key, read with a plain GET) and
  ``layout=hash`` round-trip every value kind of the one data model;
* the seed's cache (``SETEX user:<id> 3600 <json.dumps(profile)>``, read with GET), written here
  with redis-py, is audited (ok, stale with the field named, missing, orphan) and repaired in its
  own shape, keeping a TTL;
* a raw edit of one field, a removed field and a changed number are stale with the field named in
  both layouts, and repair restores the source's values (checked with redis-py);
* other applications' keys beside ours are foreign, reported, and survive repair and drop;
* a key of ours holding the wrong Redis type does not crash a scan: stale, then rewritten;
* key patterns: the user's pattern and prefix give the keys, and ambiguous patterns are refused;
* the layouts are strategy objects (issue 17): each says which fields it owns, fingerprints through
  the view of the adapter it serves, and the old option spellings (``value=json``, ``key_format``)
  keep working with one warning each.

Every test works under its own entity type and deletes only its own keys (shared server).
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

redis = pytest.importorskip("redis", reason=driver_missing("redis"))

from uuid_forge import Forge, IDConfig, Namespace, Record, open_store
from uuid_forge.canonical import canonical
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import OptionError, ValidationError
from uuid_forge.options import OptionDeprecationWarning
from uuid_forge.record import same_fingerprint
from uuid_forge.view import FieldView

from .scaffold import forget_redis_type, make_forge

IDS = IDConfig(namespace=Namespace("redis-layouts.uuid-forge.test"), salt="redis-layouts")
LAYOUTS = ["data", "hash"]


@pytest.fixture(scope="module")
def raw(redis_client: Any) -> Any:
    """A plain redis-py client: checks go around the adapter."""
    return redis_client


@pytest.fixture
def et(redis_url: str) -> Iterator[str]:
    """A fresh entity type; every key under ``<type>:`` (ours and planted) is removed afterwards."""
    name = f"lay{uuid.uuid4().hex[:10]}"
    yield name
    forget_redis_type(redis_url, name)


def _forge(tmp_path: Path, redis_url: str, *, et: str | None = None, **options: Any) -> Forge:
    """``et`` declares that type with its key field ``email`` (in every profile's data): the cache's
    entries of it are then provably ours, so its orphans can be deleted and drop removes them (issue 18)."""
    types = [EntityType(et, key=("email",))] if et else None
    return make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("cache", open_store(redis_url, **options)), ids=IDS,
                      types=types)


def _profiles(et: str, n: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(et, {"email": f"u{i}@example.com"},
             {"email": f"u{i}@example.com", "name": f"User {i}", "age": 20 + i, "score": i / 4,
              "tags": ["a", "b"], "address": {"city": "Zürich", "zip": f"80{i:02d}"}, "active": i % 2 == 0,
              "nick": None}) for i in range(n)]


# -- round trip ----------------------------------------------------------------------------------
EVERY_KIND = {
    "when": dt.datetime(2024, 5, 17, 14, 3, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "price": decimal.Decimal("12345678901234567.891"),  # 20 digits: more than a float holds
    "count": 42,
    "big": 2**70,
    "ratio": 0.1,
    "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "nested": {"a": {"b": [1, "two", {"c": None}]}},
    "list": [1, 2.5, "x", True, None],
    "flag": False,
    "none": None,
    "text": "Grüße, 東京 \U0001f600 \"quoted\" \\ back",
    "empty": "",
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_value_kind_round_trips(redis_url: str, raw: redis.Redis, et: str, layout: str) -> None:
    record = Record(et, uuid.uuid5(uuid.NAMESPACE_URL, et), EVERY_KIND)
    with open_store(redis_url, layout=layout) as store:
        store.put_many([record])
        back = store.get_many(et, [record.id])[record.id]
        scanned = dict(store.scan(et))
    assert back.key is None and not back.unreadable  # flat layouts store only the data
    assert canonical(back.data) == canonical(EVERY_KIND)  # equal in the one data model
    assert back.data["when"] == "2024-05-17T12:03:09.123456Z"  # an aware datetime: UTC text
    assert back.data["price"] == decimal.Decimal("12345678901234567.891")  # every digit
    assert back.data["big"] == 2**70 and back.data["ref"] == str(EVERY_KIND["ref"])
    assert canonical(back.data["ratio"]) == canonical(0.1)  # a number by value (load_json keeps digits)
    assert back.fingerprint == record.fingerprint and scanned == {record.id: record.fingerprint}
    key = f"{et}:{record.id}"
    if layout == "data":  # the user's own GET gives the JSON document
        assert json.loads(raw.get(key))["text"] == EVERY_KIND["text"]
        assert raw.get(key).decode() == record.data_json
    else:  # one hash field per data field, each its JSON
        assert raw.hget(key, "count") == b"42" and raw.hget(key, "flag") == b"false"
        assert json.loads(raw.hget(key, "nested")) == EVERY_KIND["nested"]


def test_hash_field_set_by_hand_as_plain_text_reads_as_text(redis_url: str, raw: redis.Redis, et: str,
                                                            tmp_path: Path) -> None:
    """``HSET user:<id> name Ann`` from redis-cli (no JSON quotes) is the text Ann: no difference."""
    with _forge(tmp_path, redis_url, layout="hash") as forge:
        rows = [(et, {"email": "ann@example.com"}, {"name": "Ann", "email": "ann@example.com"})]
        forge.write_many(rows)
        ident = forge.records(rows)[0].id
        raw.hset(f"{et}:{ident}", "name", "Ann")
        assert forge.audit(et).consistent
        raw.hset(f"{et}:{ident}", "name", "Bob")
        assert [(f.kind, f.fields) for f in forge.audit(et).findings] == [("stale", ("name",))]


# -- seed-era data -------------------------------------------------------------------------------
def test_seed_cache_is_read_audited_and_repaired_in_its_own_shape(redis_url: str, raw: redis.Redis, et: str,
                                                                   tmp_path: Path) -> None:
    """The seed's cache manager: ``SETEX <type>:<id> 3600 json.dumps(profile)``, read with GET."""
    rows = _profiles(et, 12)
    with _forge(tmp_path, redis_url, et=et, ttl=3600) as forge:
        records = forge.records(rows)
        forge.source.adapter.put_many(records)  # the source of truth holds them already
        for r in records[:-1]:  # the seed's code, verbatim in shape (the last one was never cached)
            raw.execute_command("SETEX", f"{et}:{r.id}", 3600, json.dumps(dict(r.data)))
        gone = forge.records([(et, {"email": "gone@example.com"}, {"email": "gone@example.com", "name": "gone"})])[0]
        stray = gone.id  # a cached user the source no longer has (its email proves it one of ours)
        raw.execute_command("SETEX", f"{et}:{stray}", 3600, json.dumps(dict(gone.data)))

        report = forge.audit(et)
        assert report.stores["cache"]["ok"] == 11, report.findings  # json.dumps' spacing is no difference
        assert {(f.kind, f.id) for f in report.findings} == {("missing", str(records[-1].id)),
                                                             ("orphan", str(stray))}

        edited, removed, renumbered = records[1], records[4], records[7]
        raw.set(f"{et}:{edited.id}", json.dumps({**edited.data, "name": "Edited"}), keepttl=True)
        raw.set(f"{et}:{removed.id}", json.dumps({k: v for k, v in removed.data.items() if k != "email"}),
                keepttl=True)
        raw.set(f"{et}:{renumbered.id}", json.dumps({**renumbered.data, "age": 99}), keepttl=True)
        stale = {f.id: f.fields for f in forge.audit(et).findings if f.kind == "stale"}
        assert stale == {str(edited.id): ("name",), str(removed.id): ("email",), str(renumbered.id): ("age",)}

        repaired = forge.audit(et, repair=True, delete_orphans=True, max_delete=1)
        assert repaired.repaired["cache"]["rewritten"] == 4, repaired.repair_errors  # 3 stale + 1 missing
        for r in records:  # back in the seed's shape: a string the seed's GET reads, with a TTL again
            key = f"{et}:{r.id}"
            assert raw.type(key) == b"string" and json.loads(raw.get(key)) == r.json_data
            assert 0 < raw.ttl(key) <= 3600
        assert not raw.exists(f"{et}:{stray}")
        assert forge.audit(et).consistent


# -- edits behind our back, per layout -----------------------------------------------------------
Edit = Callable[[redis.Redis, str, dict[str, Any]], None]


def _json_edits() -> dict[str, Edit]:
    def rewrite(change: Callable[[dict[str, Any]], dict[str, Any]]) -> Edit:
        return lambda r, key, data: r.set(key, json.dumps(change(json.loads(r.get(key)))))

    return {"name": rewrite(lambda d: {**d, "name": "Edited"}),
            "email": rewrite(lambda d: {k: v for k, v in d.items() if k != "email"}),
            "age": rewrite(lambda d: {**d, "age": d["age"] + 1000})}


def _hash_edits() -> dict[str, Edit]:
    return {"name": lambda r, key, data: r.hset(key, "name", json.dumps("Edited")),
            "email": lambda r, key, data: r.hdel(key, "email"),
            "age": lambda r, key, data: r.hset(key, "age", data["age"] + 1000)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_raw_edits_are_stale_with_the_field_named_then_repaired(redis_url: str, raw: redis.Redis, et: str,
                                                                 tmp_path: Path, layout: str) -> None:
    rows = _profiles(et, 10)
    edits = _json_edits() if layout == "data" else _hash_edits()
    with _forge(tmp_path, redis_url, layout=layout) as forge:
        forge.write_many(rows)
        records = forge.records(rows)
        assert forge.audit(et).consistent
        targets = dict(zip(edits, (records[2], records[5], records[8])))
        for field, r in targets.items():
            edits[field](raw, f"{et}:{r.id}", dict(r.data))
        report = forge.audit(et, show_values=True)
        found = {f.id: f for f in report.findings}
        assert {f.kind for f in found.values()} == {"stale"} and len(found) == 3, report.findings
        for field, r in targets.items():
            assert found[str(r.id)].fields == (field,)
        assert found[str(targets["age"].id)].values == {"age": {"store": targets["age"].data["age"] + 1000,
                                                                "source": targets["age"].data["age"]}}
        repaired = forge.audit(et, repair=True)
        assert repaired.repaired["cache"]["rewritten"] == 3, repaired.repair_errors
        for r in targets.values():
            key = f"{et}:{r.id}"
            held = json.loads(raw.get(key)) if layout == "data" else {
                k.decode(): json.loads(v) for k, v in raw.hgetall(key).items()}
            assert held == r.json_data
        assert forge.audit(et).consistent


# -- other applications' keys --------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_other_applications_keys_are_foreign_and_survive_repair_and_drop(
        redis_url: str, raw: redis.Redis, et: str, tmp_path: Path, layout: str) -> None:
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, et)
    planted = {f"{et}:sessions:abc": lambda k: raw.set(k, "session", ex=600),
               f"{et}:42": lambda k: raw.hset(k, mapping={"name": "a row from another app"}),
               f"{et}:{ident}:prefs": lambda k: raw.hset(k, mapping={"theme": "dark"}),
               f"{et}:not-a-uuid": lambda k: raw.rpush(k, "x", "y")}
    for key, plant in planted.items():
        plant(key)
    before = {k: (raw.type(k), raw.dump(k)) for k in planted}
    with _forge(tmp_path, redis_url, et=et, layout=layout) as forge:
        rows = _profiles(et, 5)
        forge.write_many(rows)
        report = forge.audit(et)
        assert report.stores["cache"]["foreign"] == len(planted) and report.stores["cache"]["ok"] == 5
        assert set(report.foreign_samples["cache"]) == {f"{et}: {k}" for k in planted}
        forge.audit(et, repair=True, delete_orphans=True, max_delete=100)
        assert {k: (raw.type(k), raw.dump(k)) for k in planted} == before
        with pytest.raises(ValidationError, match="shared with others"):
            forge.stores[1].adapter.drop(et)  # a database without a prefix of ours: not without the proof
        forge.drop(et, stores=["cache"])
        assert {k: (raw.type(k), raw.dump(k)) for k in planted} == before
        assert not any(raw.exists(f"{et}:{r.id}") for r in forge.records(rows))


def test_a_key_of_ours_holding_the_wrong_redis_type_is_stale_then_rewritten(
        redis_url: str, raw: redis.Redis, et: str, tmp_path: Path) -> None:
    """A hash where the JSON layout wants a string: no crash (WRONGTYPE), an unreadable entry."""
    with _forge(tmp_path, redis_url) as forge:
        rows = _profiles(et, 4)
        forge.write_many(rows)
        victim = forge.records(rows)[1]
        key = f"{et}:{victim.id}"
        raw.delete(key)
        raw.hset(key, mapping={"name": "written by an old version"})
        report = forge.audit(et)
        assert [(f.kind, f.id) for f in report.findings] == [("stale", str(victim.id))]
        read = forge.stores[1].adapter.get_many(et, [victim.id])[victim.id]
        assert read.unreadable and "holds a Redis hash" in read.unreadable
        assert forge.audit(et, repair=True).repaired["cache"]["rewritten"] == 1
        assert raw.type(key) == b"string" and json.loads(raw.get(key)) == victim.json_data


# -- key patterns --------------------------------------------------------------------------------
def test_key_pattern_and_prefix_shape_the_keys(redis_url: str, raw: redis.Redis, et: str) -> None:
    tenant = f"t{uuid.uuid4().hex[:6]}"
    record = Record(et, uuid.uuid5(uuid.NAMESPACE_URL, et), {"name": "Ann"})
    key = f"{tenant}:cache/{et}:{record.id}:profile"
    try:
        with open_store(f"{redis_url}?prefix={tenant}&key_pattern=cache/{{type}}:{{id}}:profile") as store:
            store.put_many([record])
            assert store.key_of(et, record.id) == key
            assert json.loads(raw.get(key)) == {"name": "Ann"}  # the user's GET on the user's key
            raw.set(f"{tenant}:cache/{et}:{record.id}:profile:old", "{}")  # another shape: not even matched
            raw.set(f"{tenant}:cache/{et}:sessions:profile", "{}")  # matched, no ID: foreign
            items = dict(store.scan(et, include_malformed=True))
            assert items[record.id] == record.fingerprint and len(items) == 2
            assert [i.raw for i in items if not isinstance(i, uuid.UUID)] == [f"{tenant}:cache/{et}:sessions:profile"]
            with open_store(redis_url) as bare:  # another tenant's and another pattern's keys: not seen
                assert list(bare.scan(et, include_malformed=True)) == []
    finally:
        for k in raw.scan_iter(match=f"{tenant}:*"):
            raw.delete(k)


@pytest.mark.parametrize("pattern, reason", [
    ("user", "exactly once"),
    ("{type}:{id}:{id}", "exactly once"),
    ("{type}:{type}:{id}", "at most once"),
    ("{type}:{uuid}", "unknown placeholder"),
    ("{type}:{id", "stray brace"),
    ("{type}:*:{id}", "glob"),
    ("cache[1]:{type}:{id}", "glob"),
    ("{type}{id}", "set off by a separator"),
    ("{type}-{id}", "set off by a separator"),
    ("x{type}:{id}", "set off by a separator"),
])
def test_ambiguous_key_patterns_are_refused(redis_url: str, pattern: str, reason: str) -> None:
    with pytest.raises(OptionError, match=reason) as info:
        open_store(redis_url, key_pattern=pattern)
    assert "key_pattern" in str(info.value) and info.value.option == "key_pattern"


@pytest.mark.parametrize("pattern", ["{type}:{id}", "app:{type}:{id}", "{type}:{id}:profile", "{id}|{type}",
                                     "users/{id}"])
def test_good_key_patterns_are_accepted(redis_url: str, pattern: str) -> None:
    with open_store(redis_url, key_pattern=pattern) as store:
        ident = uuid.UUID(int=1)
        assert store.key_of("user", ident) == pattern.format(type="user", id=ident)


def test_hash_layout_refuses_empty_data_before_any_write(redis_url: str, raw: redis.Redis, et: str) -> None:
    good = Record(et, uuid.uuid5(uuid.NAMESPACE_URL, f"{et}-good"), {"a": 1})
    empty = Record(et, uuid.uuid5(uuid.NAMESPACE_URL, f"{et}-empty"), {})
    with open_store(redis_url, layout="hash") as store, pytest.raises(ValueError, match="empty data"):
        store.put_many([good, empty])
    assert not raw.exists(f"{et}:{good.id}")


def test_layout_options_are_declared_with_docs(redis_url: str) -> None:
    from uuid_forge.adapters.redis import RedisAdapter

    table = {o.name: o for o in RedisAdapter.options}
    assert table["layout"].default == "data" and table["layout"].choices == ("data", "hash", "envelope")
    assert table["layout"].deprecated == ("value",) and table["layout"].deprecated_values == (("json", "data"),)
    assert table["id_format"].deprecated == ("key_format",)
    assert table["key_pattern"].default == "{type}:{id}"
    assert all(len(o.doc) > 20 for o in table.values())
    for query in ("layout=xml", "value=xml"):  # the old name too: a bad value is refused under the new name
        with pytest.raises(OptionError, match="layout='xml'.*one of 'data', 'hash', 'envelope'"):
            open_store(f"{redis_url}?{query}")


# -- layouts as strategies, and the old spellings (issue 17) ----------------------------------------
def test_old_option_names_and_values_open_the_same_store_and_warn_once(
        redis_url: str, raw: redis.Redis, et: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``value=json`` and ``key_format=`` (the names before issue 17) are ``layout=data`` and ``id_format=``."""
    from uuid_forge import options

    monkeypatch.setattr(options, "_warned", set())  # each old spelling warns once per process: start afresh
    record = Record(et, uuid.uuid5(uuid.NAMESPACE_URL, et), {"name": "Ann", "age": 42})
    with pytest.warns(OptionDeprecationWarning) as caught:
        old = open_store(f"{redis_url}?value=json", key_format="base64url")
    assert sorted(str(w.message).split(" is deprecated")[0] for w in caught) == [
        "redis: layout=json", "redis: option key_format", "redis: option value"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither the second use of an old spelling nor the new names warn
        again = open_store(redis_url, value="json", key_format="base64url")
        new = open_store(f"{redis_url}?layout=data&id_format=base64url")
        hashed = open_store(f"{redis_url}?value=hash&layout=envelope")  # the new name wins
    with old, again, new, hashed:
        assert old.layout.name == again.layout.name == new.layout.name == "data"
        assert hashed.layout.name == "envelope"
        assert old.id_format == old.key_format == new.id_format == "base64url"
        old.put_many([record])
        key = f"{et}:{base64.urlsafe_b64encode(record.id.bytes)[:22].decode()}"
        assert raw.get(key).decode() == record.data_json  # the same key and value as the new names write
        assert new.get_many(et, [record.id])[record.id].data == {"name": "Ann", "age": 42}


@pytest.mark.parametrize("layout, owned", [("data", {"name", "age"}), ("hash", {"name", "age"}),
                                           ("envelope", {"fp", "data", "key"})])
def test_each_layout_says_which_fields_of_the_stored_entry_it_owns(redis_url: str, layout: str,
                                                                    owned: set[str]) -> None:
    from uuid_forge.adapters.redis import LAYOUTS

    record = Record("user", uuid.UUID(int=7), {"name": "Ann", "age": 42})
    with open_store(redis_url, layout=layout) as store:
        assert type(store.layout) is LAYOUTS[layout]
        assert store.layout.owned_fields(record) == owned


@pytest.mark.parametrize("layout", ["data", "hash", "envelope"])
def test_a_viewed_twin_fingerprints_through_its_own_view(redis_url: str, et: str, layout: str) -> None:
    """The audit reads a store through a view (``adapter.viewed``): the twin's layout must
    fingerprint the projected data, while the adapter it came from still sees every field."""
    record = Record(et, uuid.uuid5(uuid.NAMESPACE_URL, et), {"name": "Ann", "age": 42})
    projected = Record(et, record.id, {"name": "Ann"})
    with open_store(redis_url, layout=layout) as store:
        store.put_many([record])
        twin = store.viewed(FieldView(projection=("name",)))
        assert same_fingerprint(dict(twin.scan(et))[record.id], projected.fingerprint)
        assert same_fingerprint(twin.get_many(et, [record.id])[record.id].fingerprint, projected.fingerprint)
        assert same_fingerprint(dict(store.scan(et))[record.id], record.fingerprint)
        assert same_fingerprint(store.get_many(et, [record.id])[record.id].fingerprint, record.fingerprint)
