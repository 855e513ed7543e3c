"""The contract suite against the SQL adapter on a temporary SQLite file (no server needed)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from uuid_forge.adapters.sql import SQLAdapter

from uuid_forge import ForeignEntry, MalformedID, Partition, Record, ValidationError, open_store
from uuid_forge.contract import Adapter
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import sample_records

from .scaffold import OneTypeContract, make_forge


def _raw(store: Adapter) -> sqlite3.Connection:
    path = store.url(masked=False).split(":///", 1)[1].split("?", 1)[0]
    return sqlite3.connect(path)


def _plant(store: Adapter, entity_type: str, text: str) -> None:
    with _raw(store) as raw:
        raw.execute(f'INSERT INTO "uf_{entity_type}" (id, fingerprint, data) VALUES (?, ?, ?)',
                    (text, "0" * 32, "{}"))


class TestSQLiteAdapter(AdapterContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        with open_store(f"sqlite:///{tmp_path / 'store.db'}") as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "hex"
        with _raw(store) as raw:
            rows = raw.execute(f'SELECT id, typeof(id), fingerprint FROM "uf_{record.entity_type}"').fetchall()
        assert rows == [(record.id.hex, "text", record.fingerprint)]

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        _plant(store, entity_type, str(ident))  # 36-char text in the CHAR(32) hex column
        return True


class TestSQLiteUserTable(OneTypeContract):
    """Your own table (``table=people``, ``entity_type=user``): one entity type, the table kept by drop."""

    bulk_size = 2_000

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        path = tmp_path / "own.db"
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE people (id CHAR(32) PRIMARY KEY, data TEXT, key TEXT, fingerprint TEXT)")
        raw.close()
        with open_store(f"sqlite:///{path}", table="people", entity_type="user") as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        with _raw(store) as raw:
            rows = raw.execute("SELECT id, typeof(id), fingerprint FROM people").fetchall()
            tables = [t for (t,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert rows == [(record.id.hex, "text", record.fingerprint)]
        assert tables == ["people"]  # nothing of ours beside the user's table

    def assert_container_kept(self, store: Adapter) -> None:
        with _raw(store) as raw:
            assert raw.execute("SELECT count(*) FROM people").fetchone() == (0,)

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        with _raw(store) as raw:
            raw.execute("INSERT INTO people (id, fingerprint, data) VALUES (?, ?, ?)", (str(ident), "0" * 32, "{}"))
        return True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLAdapter]:
    with open_store(f"sqlite:///{tmp_path / 'extra.db'}") as s:
        assert isinstance(s, SQLAdapter)
        yield s


def test_uppercase_and_garbage_ids_are_malformed_in_their_partition(store: SQLAdapter) -> None:
    good = sample_records("thing", 50)
    store.put_many(good)
    # each sorts, as text, inside another partition's hex range than the one its UUID belongs to
    v5 = (5 << 76) | (0x8000 << 48)  # version 5, RFC variant: IDs this scheme could make
    upper, dashed = uuid.UUID(int=0xAB << 120 | v5), uuid.UUID(int=0x5555_5555_6 << 92 | v5)
    _plant(store, "thing", upper.hex.upper())  # 'AB..' sorts between '9..' and 'a..'
    _plant(store, "thing", str(dashed))  # '55555555-6..' sorts below the partition bound '555555555..'
    _plant(store, "thing", "B-not-a-uuid")  # no UUID (foreign); its text sits in two partitions' ranges
    whole = [i for i, _ in store.scan("thing", include_malformed=True) if isinstance(i, MalformedID)]
    assert {m.raw: m.id for m in whole} == {upper.hex.upper(): upper, str(dashed): dashed}
    assert [i.raw for i, _ in store.scan("thing", include_malformed=True) if isinstance(i, ForeignEntry)] == \
        ["B-not-a-uuid"]
    parts = Partition(0, 1).split(3)
    assert parts[2].contains(upper) and parts[1].contains(dashed)
    assert all(m.reason for m in whole)
    found: list[MalformedID] = []
    seen: list[uuid.UUID] = []
    foreign: list[str] = []
    for part in Partition(0, 1).split(3):
        for ident, _ in store.scan("thing", part, include_malformed=True):
            if isinstance(ident, ForeignEntry):
                foreign.append(ident.raw)
            elif isinstance(ident, MalformedID):
                assert ident.id is None or part.contains(ident.id)
                found.append(ident)
            else:
                seen.append(ident)
    assert sorted(m.raw for m in found) == sorted(m.raw for m in whole)  # each exactly once
    assert foreign == ["B-not-a-uuid"]
    assert sorted(seen) == sorted(r.id for r in good)


def test_id_format_string_from_url(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 's.db'}?id_format=string") as s:
        assert s.id_encoding == "string"
        records = sample_records("thing", 20)
        s.put_many(records)
        assert set(s.get_many("thing", [r.id for r in records])) == {r.id for r in records}
        with _raw(s) as raw:
            stored = {row[0] for row in raw.execute('SELECT id FROM "uf_thing"')}
        assert stored == {str(r.id) for r in records}
        assert sorted(i for i, _ in s.scan("thing", Partition(1, 2))) == \
            sorted(r.id for r in records if Partition(1, 2).contains(r.id))


def test_table_prefix_and_entity_types(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'p.db'}", table_prefix="app_ids_") as s:
        s.put_many(sample_records("order-item.v2", 2))
        assert s.entity_types() == ["order-item.v2"]
        with _raw(s) as raw:
            names = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert sorted(names) == ["app_ids_order-item.v2", "uuid_forge_owners"]  # and whose each table is


@pytest.mark.parametrize("prefix", ["uf'; DROP TABLE x; --", 'a"b', "", "1abc", "x" * 31])
def test_bad_table_prefix_rejected(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValidationError, match="table_prefix"):
        SQLAdapter(f"sqlite:///{tmp_path / 'b.db'}", table_prefix=prefix)


@pytest.mark.parametrize("bad", ['a"b', "a'b", "a;b", "x`y", "a b"])
def test_quotes_in_entity_types_rejected(store: SQLAdapter, bad: str) -> None:
    with pytest.raises(ValidationError, match="not accepted"):
        store.put_many([Record(bad, uuid.uuid4(), {"x": 1})])


def test_absent_table_reads_as_empty(store: SQLAdapter) -> None:
    assert store.get_many("never", [uuid.uuid4()]) == {}
    assert list(store.scan("never")) == []
    assert store.delete_many("never", [uuid.uuid4()]) == 0
    assert store.entity_types() == []


def test_unknown_options_and_formats_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="id_format"):
        SQLAdapter(f"sqlite:///{tmp_path / 'c.db'}", id_format="binary")
    with pytest.raises(ValidationError, match="entity_type"):
        SQLAdapter(f"sqlite:///{tmp_path / 'c.db'}", table="users")
    with pytest.raises(ValidationError, match="table="):
        SQLAdapter(f"sqlite:///{tmp_path / 'c.db'}", columns={"id": "user_id"})


def test_delete_raw_removes_only_the_wrong_encoding_and_drop_removes_the_table(store: SQLAdapter) -> None:
    good = sample_records("thing", 5)
    store.put_many(good)
    _plant(store, "thing", good[0].id.hex.upper())  # a wrongly encoded twin of a stored ID
    raws = [i.raw for i, _ in store.scan("thing", include_malformed=True) if isinstance(i, MalformedID)]
    assert raws == [good[0].id.hex.upper()]
    assert store.delete_raw("thing", raws) == 1
    assert sorted(i for i, _ in store.scan("thing", include_malformed=True)) == sorted(r.id for r in good)
    store.drop("thing")
    with _raw(store) as raw:
        assert raw.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall() == [("uuid_forge_owners",)]
        assert raw.execute("SELECT * FROM uuid_forge_owners").fetchall() == []  # its owner record went with it
    store.drop("thing")  # already gone: fine
    store.put_many(good[:1])  # and the table comes back on the next write
    assert store.count("thing") == 1


# -- your own table with typed columns (issue 11) ---------------------------------------------------------
TYPED = ("CREATE TABLE people (id CHAR(36) PRIMARY KEY, email TEXT NOT NULL, created_at TIMESTAMP, n INTEGER, "
         "ratio REAL, active BOOLEAN, profile JSON, nick TEXT)")
PEOPLE_FIELDS = {f: f for f in ("email", "created_at", "n", "ratio", "active", "profile", "nick")}


def _person(i: int) -> Record:
    import datetime as dt
    import decimal

    data = {"email": f"p{i}@example.com", "created_at": dt.datetime(2024, 3, 31, 1, 30, i, 250000,
                                                                     tzinfo=dt.UTC),
            "n": 10**15 + i, "ratio": i / 8, "active": i % 2 == 0, "nick": "Zoë ✓" if i else None,
            "profile": {"balance": decimal.Decimal("12345678901234567890.123"), "tags": ["a", None, True]}}
    return Record("person", uuid.uuid5(uuid.NAMESPACE_DNS, f"person-{i}"), data)


@pytest.fixture
def people_db(tmp_path: Path) -> Path:
    path = tmp_path / "people.db"
    with sqlite3.connect(path) as raw:
        raw.execute(TYPED)
    return path


def test_sqlite_typed_columns_round_trip_in_a_declared_zone(people_db: Path) -> None:
    people = [_person(i) for i in range(4)]
    with open_store(f"sqlite:///{people_db}", table="people", entity_type="person", fields=PEOPLE_FIELDS,
                    timezone="Europe/Paris") as s:
        s.put_many(people)
        got = s.get_many("person", [p.id for p in people])
        assert {i: r.fingerprint for i, r in got.items()} == {p.id: p.fingerprint for p in people}
        assert got[people[1].id].data["created_at"] == people[1].data["created_at"]  # aware again
        assert dict(s.scan("person")) == {p.id: p.fingerprint for p in people}
    with sqlite3.connect(people_db) as raw:
        row = raw.execute("SELECT created_at, profile, active, nick FROM people WHERE id = ?",
                          (str(people[1].id),)).fetchone()
    assert row[0].startswith("2024-03-31 03:30:01.250000")  # Paris wall time: summer time began at 01:00 UTC
    assert '"balance":12345678901234567890.123' in row[1] and row[2:] == (0, "Zoë ✓")


def test_sqlite_naive_timestamps_need_a_zone_and_doubles_keep_only_their_digits(people_db: Path) -> None:
    import decimal

    with open_store(f"sqlite:///{people_db}", table="people", entity_type="person", fields=PEOPLE_FIELDS) as s, \
            pytest.raises(ValidationError, match=r"'created_at'.*option timezone"):
        s.put_many([_person(0)])
    with open_store(f"sqlite:///{people_db}", table="people", entity_type="person", fields=PEOPLE_FIELDS,
                    timezone="UTC") as s:
        too_precise = _person(1)
        too_precise.data["ratio"] = decimal.Decimal("0.12345678901234567890")
        with pytest.raises(ValidationError, match="'ratio'.*double"):
            s.put_many([_person(0), too_precise])
        assert s.count("person") == 0  # refused before anything was written


def test_sqlite_field_set_null_by_hand_is_stale_and_repaired(people_db: Path, tmp_path: Path) -> None:

    store = open_store(f"sqlite:///{people_db}", table="people", entity_type="person", fields=PEOPLE_FIELDS,
                       timezone="UTC")
    source = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    with make_forge(tmp_path, source, ("people", store)) as forge:
        people = [_person(i) for i in range(4)]
        source.put_many(people)
        store.put_many(people)
        assert forge.audit("person").consistent
        with sqlite3.connect(people_db) as raw:
            raw.execute("UPDATE people SET nick = NULL WHERE id = ?", (str(people[2].id),))
            raw.execute("UPDATE people SET n = n + 1 WHERE id = ?", (str(people[3].id),))
        report = forge.audit("person")
        assert sorted((f.id, f.fields) for f in report.findings) == sorted(
            [(str(people[2].id), ("nick",)), (str(people[3].id), ("n",))])
        forge.audit("person", repair=True)
        with sqlite3.connect(people_db) as raw:
            assert raw.execute("SELECT nick FROM people WHERE id = ?", (str(people[2].id),)).fetchone() == ("Zoë ✓",)
            assert raw.execute("SELECT n FROM people WHERE id = ?", (str(people[3].id),)).fetchone() == (10**15 + 3,)
        assert forge.audit("person").consistent
