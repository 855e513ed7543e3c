"""Issue 11, SQL: the user's own table with typed columns, on real PostgreSQL and MariaDB servers.

Every value kind written through the adapter reads back equal to the source (same fingerprint);
hand edits made with raw SQL (a text edited, a field set NULL, a number changed) are ``stale``
with the field named, and repair restores the source's value (checked with raw SQL); a ``users``
table written by the seed's own code (raw SQL) is read, audited and repaired in place, while
another application's rows beside ours are reported foreign and survive. Raw checks use the
drivers directly (psycopg, pymysql), never the adapter.
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

psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pymysql = pytest.importorskip("pymysql", reason=driver_missing("pymysql"))

import sqlalchemy as sa
from psycopg import sql as pgsql

from uuid_forge import Forge, IDConfig, Namespace, Record, ValidationError, open_store
from uuid_forge.canonical import canonical

from .scaffold import make_forge
from .test_sql import _maria, _pg

IDS = IDConfig(namespace=Namespace("users.layouts.uuid-forge.test"), salt="sql-layouts")
PARIS = dt.timezone(dt.timedelta(hours=2))
UTC = dt.UTC




def _pg_exec(url: str, statement: str, table: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement with ``{t}`` standing for the quoted table name; rows if it returns any."""
    with _pg(url) as raw:
        cur = raw.execute(pgsql.SQL(statement).format(t=pgsql.Identifier(table)), params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def table_name() -> str:
    return f"users_{uuid.uuid4().hex[:8]}"


# -- every value kind in typed PostgreSQL columns -------------------------------------------------------
TYPED_PG = """CREATE TABLE {t} (
    id uuid PRIMARY KEY, at timestamptz, local_at timestamp, amount numeric, n bigint, ratio double precision,
    ok boolean, doc jsonb, plain json, tags text[], amounts numeric[], ref uuid, name text, nothing text, day date)"""
TYPED_FIELDS = {f: f for f in ("at", "local_at", "amount", "n", "ratio", "ok", "doc", "plain", "tags", "amounts",
                               "ref", "name", "nothing", "day")}


def _every_kind(i: int) -> dict[str, Any]:
    return {
        "at": dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=PARIS),  # aware, with an offset
        "local_at": dt.datetime(2024, 1, 15, 8, 30, i, tzinfo=UTC),  # kept as Paris wall time
        "amount": decimal.Decimal("1234567890.1234567891") + i,  # 20 significant digits
        "n": 2**53 + i,
        "ratio": 0.1 + i,
        "ok": i % 2 == 0,
        "doc": {"nested": {"deep": [1, decimal.Decimal("0.12345678901234567890123")], "none": None}, "ü": "ß"},
        "plain": {"big": decimal.Decimal("3.14159265358979323846264338"), "list": [True, None, "x"]},
        "tags": ["a", "ü", "✓"],
        "amounts": [decimal.Decimal("1.10"), decimal.Decimal("99999999999999999999.000001")],
        "ref": uuid.UUID(int=i + 1),
        "name": f"Zoë ✓ {i}",
        "nothing": None,
        "day": dt.date(2024, 2, 29),
    }


def test_postgres_typed_columns_round_trip_every_value_kind(postgres_url: str, table_name: str, tmp_path: Path) -> None:
    _pg_exec(postgres_url, TYPED_PG, table_name)
    try:
        store = open_store(postgres_url, table=table_name, entity_type="user", fields=TYPED_FIELDS,
                           timezone="Europe/Paris")
        source = open_store(f"sqlite:///{tmp_path}/source.db")
        with make_forge(tmp_path, source, ("pg", store), ids=IDS) as forge:
            rows = [("user", {"n": i}, _every_kind(i)) for i in range(6)]
            forge.write_many(rows)
            records = forge.records(rows)
            got = store.get_many("user", [r.id for r in records])
            for r in records:
                back = got[r.id]
                assert canonical(back.data) == canonical(r.data)  # every value, every digit
                assert back.fingerprint == r.fingerprint
                assert back.key is None  # no key column: the audit uses the declared key fields
            assert isinstance(got[records[0].id].data["at"], dt.datetime)
            assert got[records[0].id].data["at"] == records[0].data["at"]  # aware, the same instant
            assert got[records[0].id].data["amount"] == records[0].data["amount"]  # a Decimal, exact
            assert dict(store.scan("user")) == {r.id: r.fingerprint for r in records}
            report = forge.audit("user")
            assert report.consistent, report.findings
        # the server holds native values: the instant, the Paris wall time, exact numerics, real arrays
        first = records[0]
        row = _pg_exec(postgres_url, "SELECT at = '2024-05-01T08:00:00.123456Z'::timestamptz, local_at::text, "
                       "amount::text, doc->'nested'->'deep'->>1, tags, pg_typeof(amounts)::text, ref, day::text, "
                       "nothing IS NULL, ok FROM {t} WHERE id = %s", table_name, (first.id,))
        assert row == [(True, "2024-01-15 09:30:00", "1234567890.1234567891", "0.12345678901234567890123",
                        ["a", "ü", "✓"], "numeric[]", uuid.UUID(int=1), "2024-02-29", True, True)]
    finally:
        _pg_exec(postgres_url, "DROP TABLE IF EXISTS {t}", table_name)


def test_postgres_timestamptz_takes_the_instant_and_refuses_another_spelling(postgres_url: str, table_name: str) -> None:
    """Text is text (docs/data-model.md): the column keeps the instant, so only its UTC text reads
    back as written; ``...+02:00`` would come back as another value, and is refused."""
    _pg_exec(postgres_url, "CREATE TABLE {t} (id uuid PRIMARY KEY, at timestamptz, local_at timestamp)", table_name)
    try:
        with open_store(postgres_url, table=table_name, entity_type="user", fields={"at": "at", "local_at": "local_at"},
                        timezone="UTC") as store:
            r = Record("user", uuid.uuid5(uuid.NAMESPACE_DNS, "offset"),
                       {"at": "2024-05-01T08:00:00Z", "local_at": "2024-05-01T10:00:00Z"})
            store.put_many([r])
            back = store.get_many("user", [r.id])[r.id].data
            assert back == {"at": dt.datetime(2024, 5, 1, 8, tzinfo=UTC), "local_at": dt.datetime(2024, 5, 1, 10, tzinfo=UTC)}
            assert canonical(back) == r.data_json
            for field in ("at", "local_at"):
                zoned = Record("user", r.id, {**r.data, field: "2024-05-01T10:00:00+02:00"})
                with pytest.raises(ValidationError, match=rf"'{field}'.*keeps the instant.*2024-05-01T08:00:00Z"):
                    store.put_many([zoned])
        assert _pg_exec(postgres_url, "SELECT at = '2024-05-01T08:00:00Z'::timestamptz, local_at::text FROM {t}",
                        table_name) == [(True, "2024-05-01 10:00:00")]
    finally:
        _pg_exec(postgres_url, "DROP TABLE IF EXISTS {t}", table_name)


def test_postgres_bad_values_and_mappings_are_refused_before_any_write(postgres_url: str, table_name: str) -> None:
    _pg_exec(postgres_url, "CREATE TABLE {t} (id uuid PRIMARY KEY, at timestamp, amount numeric(10, 2), "
             "n integer, name text)", table_name)
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, "refused")
    good = Record("user", uuid.uuid5(uuid.NAMESPACE_DNS, "good"), {"name": "ok"})
    try:
        # a timestamp without time zone and no declared zone: the error names the column and the option
        with open_store(postgres_url, table=table_name, entity_type="user", fields={"at": "at"}) as store:
            with pytest.raises(ValidationError, match=r"'at'.*timezone"):
                store.put_many([Record("user", ident, {"at": "2024-05-01T10:00:00Z"})])
            with pytest.raises(ValidationError, match=r"'at'.*timezone"):
                list(store.scan("user"))
        cases: list[tuple[dict[str, Any], str]] = [
            ({"at": "2024-05-01T10:00:00", "name": "x", "amount": 1, "n": 1}, "UTC text"),  # naive text
            ({"at": "2024-05-01T10:00:00Z", "name": "x", "amount": decimal.Decimal("1.005"), "n": 1}, "2 digits"),
            ({"at": "2024-05-01T10:00:00Z", "name": "x", "amount": 1, "n": 1.5}, "whole numbers"),
            ({"at": "2024-05-01T10:00:00Z", "name": 42, "amount": 1, "n": 1}, "text"),
            ({"at": "2024-05-01T10:00:00Z", "amount": 1, "n": 1}, "no field 'name'"),  # nulls='value': all fields
        ]
        fields = {"at": "at", "amount": "amount", "n": "n", "name": "name"}
        with open_store(postgres_url, table=table_name, entity_type="user", fields=fields, timezone="UTC") as store:
            for data, message in cases:
                with pytest.raises(ValidationError, match=message):
                    store.put_many([Record("user", good.id, {**{f: None for f in fields}, "name": "ok"}),
                                    Record("user", ident, data)])
        assert _pg_exec(postgres_url, "SELECT count(*) FROM {t}", table_name) == [(0,)]
        with pytest.raises(ValidationError, match=r"field 'user_id'.*'id'"), \
                open_store(postgres_url, table=table_name, entity_type="user", fields={"user_id": "id"}) as store:
            store.put_many([Record("user", ident, {"user_id": "x"})])  # a field on the ID column
        with pytest.raises(ValidationError, match="timezone 'Mars/Olympus'"):
            open_store(postgres_url, table=table_name, entity_type="user", fields=fields, timezone="Mars/Olympus")
    finally:
        _pg_exec(postgres_url, "DROP TABLE IF EXISTS {t}", table_name)


# -- the seed's user repository: its own table, written with raw SQL ----------------------------------------
SEED_USERS = """CREATE TABLE {t} (id uuid PRIMARY KEY, email text NOT NULL UNIQUE, name text,
    created_at timestamptz NOT NULL DEFAULT now(), balance numeric(12, 2), active boolean NOT NULL DEFAULT true,
    profile jsonb)"""
USER_FIELDS = {f: f for f in ("email", "name", "created_at", "balance", "active", "profile")}


def _seed_user(i: int) -> dict[str, Any]:
    return {"email": f"user{i}@example.com", "name": f"User {i}", "created_at": f"2023-0{1 + i % 9}-1{i % 10}T0{i % 10}:15:00Z",
            "balance": decimal.Decimal(f"{100 + i}.25"), "active": i % 3 != 0,
            "profile": {"lang": "fr", "score": decimal.Decimal("0.1234567890123456789")}}


@pytest.fixture
def seeded(postgres_url: str, table_name: str, tmp_path: Path) -> Iterator[tuple[Forge, list[Record], str]]:
    """The seed's users table, its rows inserted with raw SQL (the seed's UserRepository), and a
    source holding the same users (one of them not yet in the table)."""
    _pg_exec(postgres_url, SEED_USERS, table_name)
    store = open_store(postgres_url, table=table_name, entity_type="user", fields=USER_FIELDS)
    source = open_store(f"sqlite:///{tmp_path}/source.db")
    forge = make_forge(tmp_path, source, ("users", store), ids=IDS)
    records = forge.records([("user", {"email": d["email"]}, d) for d in (_seed_user(i) for i in range(8))])
    source.put_many(records)
    with _pg(postgres_url) as raw:
        for r in records[:-1]:  # the seed's own INSERT, in its own words
            d = r.data
            raw.execute(pgsql.SQL("INSERT INTO {t} (id, email, name, created_at, balance, active, profile) VALUES "
                                  "(%s, %s, %s, %s, %s, %s, %s::jsonb)").format(t=pgsql.Identifier(table_name)),
                        (r.id, d["email"], d["name"], d["created_at"], d["balance"], d["active"],
                         '{"lang": "fr", "score": 0.1234567890123456789}'))
    yield forge, records, table_name
    forge.close()
    _pg_exec(postgres_url, "DROP TABLE IF EXISTS {t}", table_name)


def test_seed_users_table_is_read_audited_and_repaired_in_place(postgres_url: str,
                                                                seeded: tuple[Forge, list[Record], str]) -> None:
    forge, records, table = seeded
    other_app = uuid.uuid4()  # another application's row (gen_random_uuid-style v4): never ours
    _pg_exec(postgres_url, "INSERT INTO {t} (id, email, name) VALUES (%s, 'admin@example.com', 'Admin')", table,
             (other_app,))
    orphan = forge.records([("user", {"email": "gone@example.com"}, {"email": "gone@example.com"})])[0]
    _pg_exec(postgres_url, "INSERT INTO {t} (id, email, name) VALUES (%s, 'gone@example.com', 'Gone')", table,
             (orphan.id,))
    _pg_exec(postgres_url, "UPDATE {t} SET name = 'Renamed by the seed' WHERE id = %s", table, (records[2].id,))

    report = forge.audit("user")
    kinds = {(f.id, f.kind) for f in report.findings}
    assert kinds == {(str(records[2].id), "stale"), (str(records[-1].id), "missing"), (str(orphan.id), "orphan")}, \
        report.findings
    assert report.stores["users"]["foreign"] == 1  # the other application's row: counted, never repaired
    assert report.foreign_samples["users"] == [f"user: {other_app}"]
    assert [f.fields for f in report.findings if f.kind == "stale"] == [("name",)]

    repaired = forge.audit("user", repair=True, delete_orphans=True)
    assert not repaired.repair_errors
    rows = _pg_exec(postgres_url, "SELECT id, email, name, created_at, balance, active, profile->>'score' "
                    "FROM {t} ORDER BY email", table)
    by_id = {row[0]: row for row in rows}
    assert set(by_id) == {r.id for r in records} | {other_app}  # the orphan went, the other app's row stayed
    assert by_id[other_app][1:3] == ("admin@example.com", "Admin")
    for r in records:
        row = by_id[r.id]
        assert row[1:3] == (r.data["email"], r.data["name"])
        assert row[3] == dt.datetime.fromisoformat(r.data["created_at"])
        assert row[4] == r.data["balance"] and row[5] == r.data["active"]
        assert row[6] == "0.1234567890123456789"
    again = forge.audit("user")
    assert again.consistent and again.stores["users"]["foreign"] == 1, again.findings


def test_seed_users_hand_edits_are_stale_with_the_field_named(postgres_url: str,
                                                              seeded: tuple[Forge, list[Record], str]) -> None:
    forge, records, table = seeded
    forge.audit("user", repair=True)  # the missing one written: every user in the table
    edited, removed, renumbered, moved = records[1], records[3], records[4], records[5]
    _pg_exec(postgres_url, "UPDATE {t} SET name = 'Edited by hand' WHERE id = %s", table, (edited.id,))
    _pg_exec(postgres_url, "UPDATE {t} SET name = NULL WHERE id = %s", table, (removed.id,))
    _pg_exec(postgres_url, "UPDATE {t} SET balance = balance + 1000 WHERE id = %s", table, (renumbered.id,))
    _pg_exec(postgres_url, "UPDATE {t} SET created_at = created_at + interval '1 second', "
             "profile = jsonb_set(profile, '{{score}}', '0.1234567890123456788') WHERE id = %s", table, (moved.id,))

    report = forge.audit("user", show_values=True)
    found = {f.id: f for f in report.findings}
    assert set(found) == {str(r.id) for r in (edited, removed, renumbered, moved)}, report.findings
    assert {f.kind for f in found.values()} == {"stale"}
    assert found[str(edited.id)].fields == ("name",)
    assert found[str(removed.id)].fields == ("name",)  # NULL: the field is there, null (nulls='value')
    assert found[str(removed.id)].values == {"name": {"store": None, "source": removed.data["name"]}}
    assert found[str(renumbered.id)].fields == ("balance",)
    assert found[str(renumbered.id)].values == {"balance": {"store": 1000 + renumbered.data["balance"],
                                                            "source": renumbered.data["balance"]}}
    assert found[str(moved.id)].fields == ("created_at", "profile.score")  # one second, one last digit

    repaired = forge.audit("user", repair=True)
    assert repaired.repaired["users"]["rewritten"] == 4, repaired.repair_errors
    rows = {row[0]: row[1:] for row in _pg_exec(
        postgres_url, "SELECT id, name, balance, created_at, profile->>'score' FROM {t}", table)}
    for r in (edited, removed, renumbered, moved):
        assert rows[r.id] == (r.data["name"], r.data["balance"], dt.datetime.fromisoformat(r.data["created_at"]),
                              "0.1234567890123456789")
    assert forge.audit("user").consistent


def test_nulls_absent_reads_a_null_column_as_a_missing_field(postgres_url: str, table_name: str,
                                                             tmp_path: Path) -> None:
    _pg_exec(postgres_url, SEED_USERS, table_name)
    try:
        store = open_store(postgres_url, table=table_name, entity_type="user", fields=USER_FIELDS, nulls="absent")
        source = open_store(f"sqlite:///{tmp_path}/source.db")
        with make_forge(tmp_path, source, ("users", store), ids=IDS) as forge:
            rows = [("user", {"email": f"a{i}@example.com"}, {"email": f"a{i}@example.com", "name": f"A {i}",
                                                               "created_at": "2024-01-01T00:00:00Z", "active": True})
                    for i in range(3)]  # no balance, no profile: NULL columns, absent fields
            forge.write_many(rows)
            assert forge.audit("user").consistent
            records = forge.records(rows)
            _pg_exec(postgres_url, "UPDATE {t} SET name = NULL WHERE id = %s", table_name, (records[1].id,))
            report = forge.audit("user")
            assert [(f.id, f.fields) for f in report.findings] == [(str(records[1].id), ("name",))]
            assert "missing in the store: name" in report.findings[0].detail
            with pytest.raises(ValidationError, match="nulls='absent'"):  # refused before any write
                store.put_many([Record("user", records[0].id, {"email": "n@example.com", "name": None,
                                                               "created_at": "2024-01-01T00:00:00Z", "active": True})])
            forge.audit("user", repair=True)
            assert _pg_exec(postgres_url, "SELECT name FROM {t} WHERE id = %s", table_name,
                            (records[1].id,)) == [("A 1",)]
    finally:
        _pg_exec(postgres_url, "DROP TABLE IF EXISTS {t}", table_name)


def test_postgres_json_data_column_keeps_every_digit(postgres_url: str, tmp_path: Path) -> None:
    """Our own per-type table (one json column): fractions read back as Decimals, not floats."""
    et = f"digits{uuid.uuid4().hex[:8]}"
    with open_store(postgres_url) as store:
        try:
            r = Record(et, uuid.uuid5(uuid.NAMESPACE_DNS, et), {"x": decimal.Decimal("0.12345678901234567890123"),
                                                                   "y": {"z": decimal.Decimal("1234567890.1234567891")}})
            store.put_many([r])
            back = store.get_many(et, [r.id])[r.id]
            assert back.data == r.data and canonical(back.data) == r.data_json
            assert isinstance(back.data["x"], decimal.Decimal)
        finally:
            store.drop(et)


# -- MariaDB: DATETIME(6) in a declared zone, DECIMAL, BOOLEAN, JSON ------------------------------------------
def test_mariadb_typed_columns_round_trip_audit_and_repair(mariadb_url: str, table_name: str, tmp_path: Path) -> None:
    with _maria(mariadb_url) as raw, raw.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table_name}` (id CHAR(36) PRIMARY KEY, email VARCHAR(200), name VARCHAR(200), "
                    "created_at DATETIME(6), balance DECIMAL(30, 20), ratio DOUBLE, active BOOLEAN, n BIGINT, "
                    "profile JSON) CHARACTER SET utf8mb4")
    table = sa.Table(table_name, sa.MetaData(), sa.Column("id", sa.String(36), primary_key=True),
                     *(sa.Column(c, t) for c, t in (("email", sa.String(200)), ("name", sa.String(200)),
                                                   ("created_at", sa.DateTime()), ("balance", sa.Numeric(30, 20)),
                                                   ("ratio", sa.Double()), ("active", sa.Boolean()),
                                                   ("n", sa.BigInteger()), ("profile", sa.JSON()))))
    fields = {c: c for c in ("email", "name", "created_at", "balance", "ratio", "active", "n", "profile")}
    try:
        store = open_store(mariadb_url, table=table, entity_type="user", fields=fields, timezone="Europe/Paris")
        source = open_store(f"sqlite:///{tmp_path}/source.db")
        with make_forge(tmp_path, source, ("maria", store), ids=IDS) as forge:
            rows = [("user", {"email": f"m{i}@example.com"},
                     {"email": f"m{i}@example.com", "name": f"Mär {i}", "created_at": dt.datetime(2024, 7, 1, 12, 0, i,
                                                                                                  654321, tzinfo=UTC),
                      "balance": decimal.Decimal("1234567890.12345678901234567890"), "ratio": 0.1 * i,
                      "active": bool(i % 2), "n": -i, "profile": {"deep": {"d": decimal.Decimal("0.1234567890123456789")}}})
                    for i in range(5)]
            forge.write_many(rows)
            records = forge.records(rows)
            got = store.get_many("user", [r.id for r in records])
            assert {i: canonical(r.data) for i, r in got.items()} == {r.id: r.data_json for r in records}
            assert forge.audit("user").consistent
            with _maria(mariadb_url) as raw, raw.cursor() as cur:
                cur.execute(f"SELECT created_at, balance, active FROM `{table_name}` WHERE id = %s", (str(records[1].id),))
                assert cur.fetchone() == (dt.datetime(2024, 7, 1, 14, 0, 1, 654321),  # Paris summer time
                                          decimal.Decimal("1234567890.12345678901234567890"), 1)
                cur.execute(f"UPDATE `{table_name}` SET name = 'edited' WHERE id = %s", (str(records[0].id),))
                cur.execute(f"UPDATE `{table_name}` SET email = NULL WHERE id = %s", (str(records[2].id),))
                cur.execute(f"UPDATE `{table_name}` SET balance = balance + 0.00000000000000000001 WHERE id = %s",
                            (str(records[3].id),))
            report = forge.audit("user")
            assert sorted((f.id, f.kind, f.fields) for f in report.findings) == sorted([
                (str(records[0].id), "stale", ("name",)), (str(records[2].id), "stale", ("email",)),
                (str(records[3].id), "stale", ("balance",))])
            forge.audit("user", repair=True)
            with _maria(mariadb_url) as raw, raw.cursor() as cur:
                cur.execute(f"SELECT name, email, balance FROM `{table_name}` WHERE id IN (%s, %s, %s) ORDER BY n DESC",
                            tuple(str(r.id) for r in (records[0], records[2], records[3])))
                assert cur.fetchall() == (("Mär 0", "m0@example.com", decimal.Decimal("1234567890.12345678901234567890")),
                                          ("Mär 2", "m2@example.com", decimal.Decimal("1234567890.12345678901234567890")),
                                          ("Mär 3", "m3@example.com", decimal.Decimal("1234567890.12345678901234567890")))
            assert forge.audit("user").consistent
    finally:
        with _maria(mariadb_url) as raw, raw.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table_name}`")
