"""The contract suite against the SQL adapter on a temporary SQLite file (no server needed)."""

from __future__ import annotations

import json
import sqlite3
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa
from uuid_forge.adapters.sql import LAYOUTS, SQLAdapter
from uuid_forge.adapters.sql.dialects import DIALECTS, Dialect, MySQL, PostgreSQL, SQLite, dialect_for

from uuid_forge import ForeignEntry, IDConfig, MalformedID, Partition, Record, ValidationError, open_store
from uuid_forge import options as options_module
from uuid_forge.contract import Adapter
from uuid_forge.ids import UUIDGenerator
from uuid_forge.layout import Layout
from uuid_forge.options import OptionDeprecationWarning
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import contract_prover, sample_records

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


class _OwnTableOwnership:
    """The ownership hooks of the contract on a SQLite table of the user's (``people``): another
    application's fields are columns of the table that no option maps."""

    #: the ID column, and the text the table holds for an ID
    id_column = "id"
    open_options: ClassVar[dict[str, Any]] = {}

    def id_text(self, ident: uuid.UUID) -> str:
        return ident.hex

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        with _raw(store) as raw:
            if name not in [row[1] for row in raw.execute("PRAGMA table_info(people)")]:
                raw.execute(f'ALTER TABLE people ADD COLUMN "{name}" TEXT')
            changed = raw.execute(f'UPDATE people SET "{name}" = ? WHERE "{self.id_column}" = ?',
                                  (value, self.id_text(ident))).rowcount
        assert changed == 1, f"no row of {ident} in the table"
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        with _raw(store) as raw:
            (value,) = raw.execute(f'SELECT "{name}" FROM people WHERE "{self.id_column}" = ?',
                                   (self.id_text(ident),)).fetchone()
        return value

    def plant_required_column(self, store: Adapter, entity_type: str, column: str) -> bool:
        """SQLite adds no NOT NULL column without a default to a table: the (empty) table is made
        again with it."""
        with _raw(store) as raw:
            (ddl,) = raw.execute("SELECT sql FROM sqlite_master WHERE name = 'people'").fetchone()
            assert raw.execute("SELECT count(*) FROM people").fetchone() == (0,)
            raw.execute("DROP TABLE people")
            raw.execute(ddl.rstrip().removesuffix(")") + f', "{column}" TEXT NOT NULL)')
        return True

    def open_with_defaults(self, store: Adapter, defaults: dict[str, Any]) -> Adapter:
        return open_store(store.url(masked=False), defaults=defaults, **self.open_options)


class TestSQLiteUserTable(_OwnTableOwnership, AdapterContract):
    """The same contract on the other layout: the user's own table (``table=``), its own column names."""

    bulk_size = 2_000
    invalid_entity_types = (*AdapterContract.invalid_entity_types, "thing")  # the table holds only "person"
    id_column = "person_id"
    open_options: ClassVar[dict[str, Any]] = {"table": "people", "entity_type": "person", "columns": {
        "id": "person_id", "fingerprint": "fp", "data": "body", "key": "business_key"}}

    def id_text(self, ident: uuid.UUID) -> str:
        return str(ident)

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        path = tmp_path / "own.db"
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE people (person_id VARCHAR(36) PRIMARY KEY, fp VARCHAR(32), body JSON NOT NULL, "
                        "business_key JSON)")
        with open_store(f"sqlite:///{path}", **self.open_options) as s:
            yield s

    @pytest.fixture
    def etype(self, store: Adapter) -> Iterator[str]:
        yield "person"  # the one type the table holds; each test has its own table

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "string"
        with _raw(store) as raw:
            rows = raw.execute("SELECT person_id, fp, body FROM people").fetchall()
        assert rows == [(str(record.id), record.fingerprint, record.data_json)]

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        with _raw(store) as raw:  # uppercase text in the 36-char ID column
            raw.execute("INSERT INTO people (person_id, body) VALUES (?, '{}')", (str(ident).upper(),))
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        with _raw(store) as raw:  # the user's application writes its own rows, in its own way
            raw.execute("INSERT INTO people (person_id, body) VALUES (?, ?)", (name, json.dumps(data)))
        return True

    def test_drop_removes_everything_and_the_type_can_be_written_again(self, store: Adapter, etype: str) -> None:
        """Dropping the type deletes the rows (each proven ours) and keeps the user's table (and so the type it holds)."""
        records = sample_records(etype, 2_500)
        store.put_many(records)
        with pytest.raises(ValidationError, match="shared with others"):
            store.drop(etype)
        store.drop(etype, prover=contract_prover(etype))
        assert list(store.scan(etype, include_malformed=True)) == []
        with _raw(store) as raw:
            assert raw.execute("SELECT count(*) FROM people").fetchone() == (0,)
        store.put_many(records[:3])
        assert set(store.get_many(etype, [r.id for r in records[:5]])) == {r.id for r in records[:3]}


class TestSQLiteUserTableDefaultColumns(_OwnTableOwnership, OneTypeContract):
    """Your own table with the default column names (id, fingerprint, data, key), no column map."""

    bulk_size = 2_000
    open_options: ClassVar[dict[str, Any]] = {"table": "people", "entity_type": "user"}

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        path = tmp_path / "own.db"
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE people (id CHAR(32) PRIMARY KEY, data TEXT, key TEXT, fingerprint TEXT)")
        raw.close()
        with open_store(f"sqlite:///{path}", **self.open_options) as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        with _raw(store) as raw:
            rows = raw.execute("SELECT id, typeof(id), fingerprint FROM people").fetchall()
            tables = [t for (t,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert rows == [(record.id.hex, "text", record.fingerprint)]
        assert tables == ["people"]  # nothing of ours beside the user's table

    def assert_container_kept(self, store: Adapter) -> None:
        with _raw(store) as raw:  # the table stays, with only the wrong-form row drop could not prove ours
            assert raw.execute("SELECT id FROM people").fetchall() == [(str(sample_records("user", 1, start=10_000)[0].id),)]

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        with _raw(store) as raw:
            raw.execute("INSERT INTO people (id, fingerprint, data) VALUES (?, ?, ?)", (str(ident), "0" * 32, "{}"))
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        with _raw(store) as raw:
            # a CHAR(32) ID column: the other application names its rows by 32 hex digits too
            raw.execute("INSERT INTO people (id, data) VALUES (?, ?)", (uuid.UUID(name).hex, json.dumps(data)))
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
    with pytest.raises(ValidationError, match=r"^prefix .* must be 1-30 letters"):
        SQLAdapter(f"sqlite:///{tmp_path / 'b.db'}", table_prefix=prefix)
    with pytest.raises(ValidationError, match=r"^prefix .* must be 1-30 letters"):
        SQLAdapter(f"sqlite:///{tmp_path / 'b.db'}", prefix=prefix)


def test_prefix_names_the_per_type_tables_without_a_warning(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_store(f"sqlite:///{tmp_path / 'p.db'}", prefix="kw_") as s:
            s.put_many(sample_records("thing", 2))
        with open_store(f"sqlite:///{tmp_path / 'p.db'}?prefix=url_") as s:
            s.put_many(sample_records("thing", 3))
            assert s.count("thing") == 3
    with _raw(s) as raw:
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        owners = set(raw.execute("SELECT table_name, table_prefix, entity_type FROM uuid_forge_owners"))
    assert names == {"kw_thing", "url_thing", "uuid_forge_owners"}
    assert owners == {("kw_thing", "kw_", "thing"), ("url_thing", "url_", "thing")}  # columns as on disk


def test_table_prefix_is_a_deprecated_name_of_prefix_that_warns_once(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_warned", set())
    with pytest.warns(OptionDeprecationWarning, match="sql: option table_prefix is deprecated, use prefix"):
        old = open_store(f"sqlite:///{tmp_path / 'p.db'}", table_prefix="old_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the URL spelling does not warn again
        again = open_store(f"sqlite:///{tmp_path / 'p.db'}?table_prefix=old_")
    with old, again:
        old.put_many(sample_records("thing", 4))
        assert again.entity_types() == ["thing"] and again.count("thing") == 4
    with _raw(old) as raw:
        assert {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")} == \
            {"old_thing", "uuid_forge_owners"}


def test_an_owners_record_written_by_an_earlier_version_is_honoured(tmp_path: Path) -> None:
    """``p_`` + ``a_b`` and ``p_a_`` + ``b`` name one table; the record an earlier version wrote
    (its columns unchanged on disk) still decides whose it is."""
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE uuid_forge_owners (table_name VARCHAR(200) PRIMARY KEY, "
                    "table_prefix VARCHAR(64) NOT NULL, entity_type VARCHAR(200) NOT NULL)")
        raw.execute("INSERT INTO uuid_forge_owners VALUES ('p_a_b', 'p_', 'a_b')")
    with open_store(f"sqlite:///{path}", prefix="p_a_") as s:
        with pytest.raises(ValidationError, match="belongs to entity type 'a_b' with prefix 'p_'"):
            s.put_many(sample_records("b", 1))
        assert s.entity_types() == []
    with open_store(f"sqlite:///{path}", prefix="p_") as s:
        s.put_many(sample_records("a_b", 2))
        assert s.entity_types() == ["a_b"]


def test_dialects_are_chosen_by_backend_name() -> None:
    assert type(dialect_for("postgresql")) is PostgreSQL and type(dialect_for("mariadb")) is MySQL
    assert type(dialect_for("sqlite")) is SQLite and DIALECTS["mysql"] is MySQL
    other = dialect_for("oracle")
    assert type(other) is Dialect and not other.native_uuid and other.max_identifier is None
    with pytest.raises(ValidationError, match="SQL dialect 'oracle' is not supported"):
        other.upsert(sa.Table("t", sa.MetaData(), sa.Column("id", sa.String, primary_key=True)), None, [], None)


def test_layouts_table_names_both_shapes() -> None:
    assert set(LAYOUTS) == {"tables", "table"}
    assert all(issubclass(cls, Layout) and cls.doc for cls in LAYOUTS.values())


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
    key = {"email": data["email"]}  # the ID is the forge's own, from the key it keeps: provably ours
    return Record("person", UUIDGenerator(IDConfig()).generate("person", **key), data, key)


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


def test_a_missing_column_is_named_in_words_not_as_a_python_list(people_db: Path) -> None:
    with pytest.raises(ValidationError) as refused:
        open_store(f"sqlite:///{people_db}", table="people", entity_type="person",
                   fields={**PEOPLE_FIELDS, "phone": "phone"}).check_entity_type("person")
    said = str(refused.value)
    assert "has no column 'phone'; its columns: " in said and "[" not in said, said


def test_a_url_argument_sqlite_would_ignore_is_refused_naming_it(tmp_path: Path) -> None:
    """SQLAlchemy only warns (and drops it): a typo such as ?colour= or ?timout= must not pass in
    silence, nor print a raw SAWarning; arguments the driver takes still pass."""
    from uuid_forge import ValidationError, open_store

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning escapes either
        with pytest.raises(ValidationError) as info:
            open_store(f"sqlite:///{tmp_path / 'a.db'}?colour=red&timout=5")
        assert "colour, timout" in str(info.value) and "not an option of the sql adapter" in str(info.value)
        store = open_store(f"sqlite:///{tmp_path / 'a.db'}?timeout=5&prefix=app_")
        store.close()
