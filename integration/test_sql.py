"""The SQL adapter against real PostgreSQL (psycopg 3) and MariaDB (PyMySQL) servers.

Raw checks use the drivers directly (psycopg, pymysql), never the adapter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import OneTypeContract, SilentServer, driver_missing

psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pymysql = pytest.importorskip("pymysql", reason=driver_missing("pymysql"))

import sqlalchemy as sa
from psycopg import sql as pgsql
from uuid_forge.adapters.sql import SQLAdapter

from uuid_forge import (
    ForeignEntry,
    IDConfig,
    MalformedID,
    Namespace,
    Partition,
    Record,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UUIDGenerator,
    ValidationError,
    canonical_name,
    open_store,
)
from uuid_forge.contract import Adapter
from uuid_forge.entitytypes import EntityType
from uuid_forge.ownership import Prover
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import INJECTION_STRINGS, sample_records

_ROOT = Path(__file__).resolve().parent.parent


def _pg(url: str) -> Any:
    """A raw psycopg connection (autocommit) to the server behind a SQLAlchemy URL."""
    u = sa.engine.make_url(url)
    return psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, dbname=u.database,
                           autocommit=True, connect_timeout=5)


def _maria(url: str) -> Any:
    u = sa.engine.make_url(url)
    return pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                           database=u.database, autocommit=True, connect_timeout=5, charset="utf8mb4")


def _pg_drop(url: str, table: str) -> None:
    with _pg(url) as raw:
        raw.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(pgsql.Identifier(table)))


def _maria_drop(url: str, table: str) -> None:
    with _maria(url) as raw, raw.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS `" + table.replace("`", "``") + "`")


def _with_password(url: str) -> str:
    """The same server with a password in the URL: trust auth ignores it, the masking test sees it."""
    return url.replace("postgres@", "postgres:s3cret-pw@", 1)


# -- the contract ----------------------------------------------------------------------------------
class TestPostgresAdapter(AdapterContract):
    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[Adapter]:
        with open_store(_with_password(postgres_url)) as s:
            yield s

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        _pg_drop(store.url(masked=False), f"uf_{entity_type}")

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "uuid"
        with _pg(store.url(masked=False)) as raw:
            rows = raw.execute(pgsql.SQL("SELECT pg_typeof(id)::text, id, fingerprint, pg_typeof(data)::text, "
                                         "data::text FROM {}").format(
                pgsql.Identifier(f"uf_{record.entity_type}"))).fetchall()
        assert rows == [("uuid", record.id, record.fingerprint, "json", record.data_json)]

    # plant_malformed stays False: a native uuid column cannot hold a wrongly encoded ID.


class TestPostgresStringIds(AdapterContract):
    """``id_format=string``: 36-char text IDs, so a wrong encoding can be planted and found."""

    bulk_size = 2000

    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[Adapter]:
        with open_store(postgres_url + "?id_format=string") as s:
            yield s

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        _pg_drop(store.url(masked=False), f"uf_{entity_type}")

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "string"
        with _pg(store.url(masked=False)) as raw:
            row = raw.execute(pgsql.SQL("SELECT pg_typeof(id)::text, id FROM {}").format(
                pgsql.Identifier(f"uf_{record.entity_type}"))).fetchone()
        assert row == ("character varying", str(record.id))

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        with _pg(store.url(masked=False)) as raw:
            raw.execute(pgsql.SQL("INSERT INTO {} (id, fingerprint, data) VALUES (%s, %s, %s)").format(
                pgsql.Identifier(f"uf_{entity_type}")), (str(ident).upper(), "0" * 32, "{}"))
        return True


class TestPostgresUserTable(OneTypeContract):
    """Your own table (``table=``, ``entity_type=user``), fresh for each test: drop keeps the table."""

    bulk_size = 2000

    @pytest.fixture
    def store(self, postgres_url: str) -> Iterator[Adapter]:
        self.table = f"own_{uuid.uuid4().hex[:10]}"
        with _pg(postgres_url) as raw:
            raw.execute(pgsql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY, fingerprint text, data json, key text)").format(
                pgsql.Identifier(self.table)))
        try:
            with open_store(postgres_url, table=self.table, entity_type="user") as s:
                yield s
        finally:
            _pg_drop(postgres_url, self.table)

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        with _pg(store.url(masked=False)) as raw:
            rows = raw.execute(pgsql.SQL("SELECT pg_typeof(id)::text, id, fingerprint FROM {}").format(
                pgsql.Identifier(self.table))).fetchall()
        assert rows == [("uuid", record.id, record.fingerprint)]

    def assert_container_kept(self, store: Adapter) -> None:
        with _pg(store.url(masked=False)) as raw:
            count = raw.execute(pgsql.SQL("SELECT count(*) FROM {}").format(pgsql.Identifier(self.table))).fetchone()
        assert count == (0,)

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        """The user's application's row (its own code writes this table too): no fingerprint, no key."""
        with _pg(store.url(masked=False)) as raw:
            raw.execute(pgsql.SQL("INSERT INTO {} (id, data) VALUES (%s, %s)").format(pgsql.Identifier(self.table)),
                        (name, json.dumps(data)))
        return True

    # -- ownership (issue 18): another application's columns in your table -----------------------
    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        table, column = pgsql.Identifier(self.table), pgsql.Identifier(name)
        with _pg(store.url(masked=False)) as raw:
            raw.execute(pgsql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} text").format(table, column))
            done = raw.execute(pgsql.SQL("UPDATE {} SET {} = %s WHERE id = %s").format(table, column), (value, ident))
            assert done.rowcount == 1
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        with _pg(store.url(masked=False)) as raw:
            row = raw.execute(pgsql.SQL("SELECT {} FROM {} WHERE id = %s").format(
                pgsql.Identifier(name), pgsql.Identifier(self.table)), (ident,)).fetchone()
        return None if row is None else row[0]

    def plant_required_column(self, store: Adapter, entity_type: str, column: str) -> bool:
        with _pg(store.url(masked=False)) as raw:
            raw.execute(pgsql.SQL("ALTER TABLE {} ADD COLUMN {} text NOT NULL").format(
                pgsql.Identifier(self.table), pgsql.Identifier(column)))
        return True

    def open_with_defaults(self, store: Adapter, defaults: dict[str, Any]) -> Adapter:
        return open_store(store.url(masked=False), table=self.table, entity_type=self.entity_type, defaults=defaults)

    # plant_malformed stays False: a native uuid column cannot hold a wrongly encoded ID.


class TestMariaDBAdapter(AdapterContract):
    @pytest.fixture
    def store(self, mariadb_url: str) -> Iterator[Adapter]:
        with open_store(mariadb_url) as s:
            yield s

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        _maria_drop(store.url(masked=False), f"uf_{entity_type}")

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert store.id_encoding == "hex"
        table = f"uf_{record.entity_type}"
        with _maria(store.url(masked=False)) as raw, raw.cursor() as cur:
            cur.execute("SELECT DATA_TYPE, CHARACTER_MAXIMUM_LENGTH, COLLATION_NAME FROM information_schema.COLUMNS "
                        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s AND COLUMN_NAME = 'id'", (table,))
            assert cur.fetchone() == ("char", 32, "utf8mb4_bin")
            cur.execute(f"SELECT id, fingerprint FROM `{table}`")
            assert cur.fetchall() == ((record.id.hex, record.fingerprint),)

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        with _maria(store.url(masked=False)) as raw, raw.cursor() as cur:
            cur.execute(f"INSERT INTO `uf_{entity_type}` (id, fingerprint, data) VALUES (%s, %s, %s)",
                        (ident.hex.upper(), "0" * 32, "{}"))  # uppercase: the _bin collation keeps it apart
        return True


# -- PostgreSQL specifics ----------------------------------------------------------------------------
@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[SQLAdapter]:
    with open_store(postgres_url) as s:
        assert isinstance(s, SQLAdapter)
        yield s


@pytest.fixture
def name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _vectors() -> list[dict[str, Any]]:
    """The repository's copy (tests/vectors), else the shared set beside the repository (../shared/vectors)."""
    for folder in (_ROOT / "tests" / "vectors", _ROOT.parent / "shared" / "vectors"):
        if (folder / "ids-v1.json").exists():
            return json.loads((folder / "ids-v1.json").read_text(encoding="utf-8"))
    raise FileNotFoundError(f"ids-v1.json is in neither {_ROOT / 'tests' / 'vectors'} nor {_ROOT.parent / 'shared' / 'vectors'}")


def test_uuid_generate_v5_in_postgres_agrees_with_python(postgres_url: str) -> None:
    vectors = [v for v in _vectors() if v["secret"] is None]
    assert len(vectors) >= 10
    with _pg(postgres_url) as raw:
        raw.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
        for v in vectors:
            ns = Namespace(v["namespace_domain"])
            name = canonical_name(v["entity_type"], v["args"], v["kwargs"], v["salt"])
            assert name == v["name"], v["label"]
            (in_pg,) = raw.execute("SELECT uuid_generate_v5(%s, %s)", (ns.uuid, name)).fetchone()  # type: ignore[misc]
            ours = UUIDGenerator(IDConfig(namespace=ns, salt=v["salt"])).generate(
                v["entity_type"], *v["args"], **v["kwargs"])
            assert in_pg == ours == uuid.UUID(v["uuid"]), v["label"]


@pytest.mark.parametrize("scheme", ["postgresql://", "postgres://", "postgresql+psycopg://"])
def test_postgres_scheme_spellings(postgres_url: str, scheme: str) -> None:
    url = scheme + postgres_url.split("://", 1)[1]
    with open_store(url) as s:
        assert isinstance(s, SQLAdapter) and s._engine.url.drivername == "postgresql+psycopg"
        s.ping()


def test_entity_type_must_fit_postgres_identifier(pg_store: SQLAdapter) -> None:
    assert pg_store.check_entity_type("x" * 60) == "x" * 60  # uf_ + 60 = 63 bytes
    with pytest.raises(ValidationError, match="63 bytes"):
        pg_store.put_many([Record("x" * 61, uuid.uuid4(), {"a": 1})])


def test_jsonb_option(postgres_url: str, name: str) -> None:
    try:
        with open_store(postgres_url, data_type="jsonb") as s:
            records = sample_records(name, 3)
            s.put_many(records)
            got = s.get_many(name, [r.id for r in records])
            assert {i: r.json_data for i, r in got.items()} == {r.id: r.json_data for r in records}
            with _pg(postgres_url) as raw:
                (kind,) = raw.execute(pgsql.SQL("SELECT DISTINCT pg_typeof(data)::text FROM {}").format(
                    pgsql.Identifier(f"uf_{name}"))).fetchone()  # type: ignore[misc]
            assert kind == "jsonb"
            with pytest.raises(StoreError) as info:  # jsonb cannot hold U+0000: a clear error, not a retry
                s.put_many([Record(name, uuid.uuid4(), {"text": "a\x00b"})])
            assert not isinstance(info.value, StoreUnavailableError)
    finally:
        _pg_drop(postgres_url, f"uf_{name}")


def test_upsert_is_one_native_executemany_per_batch(pg_store: SQLAdapter, name: str) -> None:
    statements: list[tuple[str, bool]] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append((statement, executemany))

    sa.event.listen(pg_store._engine, "before_cursor_execute", spy)
    try:
        pg_store.put_many(sample_records(name, 2500))
    finally:
        sa.event.remove(pg_store._engine, "before_cursor_execute", spy)
        _pg_drop(pg_store.url(masked=False), f"uf_{name}")
    inserts = [(s, many) for s, many in statements if s.lstrip().upper().startswith("INSERT")
               and "uuid_forge_owners" not in s]  # the table's owner record, once on first write
    assert len(inserts) == 3 and all(many for _, many in inserts)  # 1000 + 1000 + 500
    assert all("ON CONFLICT (id) DO UPDATE" in s and "VALUES (%s::UUID, %s" in s for s, _ in inserts)


def test_scan_streams_with_a_server_side_cursor(pg_store: SQLAdapter, name: str) -> None:
    cursors: list[Any] = []

    def spy(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and f"uf_{name}" in statement:
            cursors.append(cursor)

    pg_store.put_many(sample_records(name, 50))
    sa.event.listen(pg_store._engine, "before_cursor_execute", spy)
    try:
        assert len(list(pg_store.scan(name, Partition(1, 2)))) > 0
    finally:
        sa.event.remove(pg_store._engine, "before_cursor_execute", spy)
        _pg_drop(pg_store.url(masked=False), f"uf_{name}")
    assert len(cursors) == 1 and isinstance(cursors[0], psycopg.ServerCursor)


def test_statement_timeout_gives_store_timeout_error(postgres_url: str, name: str) -> None:
    with open_store(postgres_url, statement_timeout=0.2) as s:
        s.put_many(sample_records(name, 1))
        try:
            with _pg(postgres_url) as raw, raw.transaction():
                raw.execute(pgsql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    pgsql.Identifier(f"uf_{name}")))
                with pytest.raises(StoreTimeoutError, match="timed out"):
                    s.put_many(sample_records(name, 1, start=1))
        finally:
            _pg_drop(postgres_url, f"uf_{name}")


@pytest.mark.parametrize("scheme", ["postgresql", "mariadb"])
def test_silent_server_times_out_and_closed_port_is_unavailable(scheme: str, silent_server: SilentServer) -> None:
    port = silent_server.port
    # PyMySQL waits for the server's greeting up to read_timeout, libpq up to connect_timeout (min 2 s)
    with open_store(f"{scheme}://u@127.0.0.1:{port}/test", connect_timeout=1, read_timeout=1) as s, \
            pytest.raises(StoreTimeoutError):
        s.ping()
    silent_server.close()  # now nothing listens on the port
    with open_store(f"{scheme}://u@127.0.0.1:{port}/test", connect_timeout=1) as s:
        with pytest.raises(StoreUnavailableError) as info:
            s.ping()
        assert not isinstance(info.value, StoreTimeoutError)


# -- your own table through a column map --------------------------------------------------------------
GEN = UUIDGenerator(IDConfig(namespace=Namespace("users.myapp.com"), salt="v1"))


def _user(email: str, name: str) -> Record:
    return Record("user", GEN.generate("user", email=email), {"email": email, "name": name}, {"email": email})


@pytest.fixture
def users_table(postgres_url: str) -> Iterator[str]:
    table = f"users_{uuid.uuid4().hex[:8]}"
    with _pg(postgres_url) as raw:
        raw.execute(pgsql.SQL("CREATE TABLE {} (user_id uuid PRIMARY KEY, email text NOT NULL, name text, "
                              "fp text, created_at timestamptz DEFAULT now())").format(pgsql.Identifier(table)))
    yield table
    _pg_drop(postgres_url, table)


def test_user_table_with_column_map(postgres_url: str, users_table: str) -> None:
    with open_store(postgres_url, table=users_table, entity_type="user",
                    columns={"id": "user_id", "fingerprint": "fp"}, fields={"email": "email", "name": "name"}) as s:
        users = [_user(f"u{i}@example.com", f"User {i}") for i in range(20)]
        assert s.put_many(users) == 20
        renamed = _user("u0@example.com", "Renamed")
        s.put_many([renamed])
        assert s.id_encoding == "uuid"
        with _pg(postgres_url) as raw:
            rows = raw.execute(pgsql.SQL("SELECT user_id, email, name, fp, pg_typeof(user_id)::text FROM {} "
                                         "ORDER BY email").format(pgsql.Identifier(users_table))).fetchall()
        assert len(rows) == 20
        assert rows[0] == (renamed.id, "u0@example.com", "Renamed", renamed.fingerprint, "uuid")
        got = s.get_many("user", [renamed.id, users[5].id])
        assert got[renamed.id].data == {"email": "u0@example.com", "name": "Renamed"}
        back = got[users[5].id]
        assert back.fingerprint == users[5].fingerprint == Record("user", back.id, back.data).fingerprint
        assert got[renamed.id].key is None  # no key column mapped
        assert dict(s.scan("user")) == {r.id: r.fingerprint for r in [renamed, *users[1:]]}
        assert s.entity_types() == ["user"]
        with pytest.raises(ValidationError, match="'age'"):  # no column for it: rejected before any write
            s.put_many([_user("new@example.com", "New"), Record("user", uuid.uuid4(), {"email": "x", "age": 3})])
        with pytest.raises(ValidationError, match="holds only 'user'"):
            s.put_many([Record("order", uuid.uuid4(), {"email": "x"})])
        assert s.delete_many("user", [users[1].id]) == 1
        assert s.count("user") == 19


def test_drop_removes_our_table_but_only_the_rows_of_yours(pg_store: SQLAdapter, name: str,
                                                          postgres_url: str, users_table: str) -> None:
    pg_store.put_many(sample_records(name, 3))
    pg_store.drop(name)
    with _pg(postgres_url) as raw:
        assert raw.execute("SELECT to_regclass(%s)", (f"uf_{name}",)).fetchone() == (None,)
    with open_store(postgres_url, table=users_table, entity_type="user", columns={"id": "user_id", "fingerprint": "fp"},
                    fields={"email": "email", "name": "name"}) as s:
        s.put_many([_user("a@example.com", "A"), _user("b@example.com", "B")])
        with _pg(postgres_url) as raw:  # a row of the user's own application, named by a UUID too
            raw.execute(pgsql.SQL("INSERT INTO {} (user_id, email) VALUES (%s, %s)").format(
                pgsql.Identifier(users_table)), (uuid.uuid4(), "theirs@example.org"))
        with pytest.raises(ValidationError, match="shared with others"):
            s.drop("user")  # the user's table: no drop without the proof
        s.drop("user", prover=Prover(GEN, {"user": EntityType("user", key=("email",))}))
    with _pg(postgres_url) as raw:
        assert raw.execute(pgsql.SQL("SELECT email FROM {}").format(pgsql.Identifier(users_table))).fetchall() == [
            ("theirs@example.org",)]


def test_user_table_as_sqlalchemy_table_without_fingerprint(postgres_url: str, users_table: str) -> None:
    table = sa.Table(users_table, sa.MetaData(), sa.Column("user_id", sa.Uuid, primary_key=True),
                     sa.Column("email", sa.Text), sa.Column("name", sa.Text), sa.Column("fp", sa.Text))
    with open_store(postgres_url, table=table, entity_type="user", columns={"id": "user_id", "fingerprint": None},
                    fields={"email": "email", "name": "name"}) as s:
        users = [_user(f"v{i}@example.com", f"V {i}") for i in range(5)]
        s.put_many(users)
        # no fingerprint column: the scan recomputes it from the field columns
        assert dict(s.scan("user")) == {r.id: r.fingerprint for r in users}


def test_quotes_in_table_and_column_names_and_values_are_safe(postgres_url: str) -> None:
    canary = f"canary_{uuid.uuid4().hex[:8]}"
    weird = f"""users'; DROP TABLE {canary}; --"{uuid.uuid4().hex[:6]}"""
    with _pg(postgres_url) as raw:
        raw.execute(pgsql.SQL("CREATE TABLE {} (x int)").format(pgsql.Identifier(canary)))
        raw.execute(pgsql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY, {} text, fingerprint text)").format(
            pgsql.Identifier(weird), pgsql.Identifier('e"mail\'; --')))
    try:
        with open_store(postgres_url, table=weird, entity_type="user", fields={"email": 'e"mail\'; --'}) as s:
            records = [Record("user", GEN.generate("user", text), {"email": text}) for text in INJECTION_STRINGS
                       if "\x00" not in text]  # a PostgreSQL text column cannot hold U+0000
            s.put_many(records)
            got = s.get_many("user", [r.id for r in records])
            assert {i: r.data for i, r in got.items()} == {r.id: r.data for r in records}
            assert dict(s.scan("user")) == {r.id: r.fingerprint for r in records}
        with _pg(postgres_url) as raw:
            assert raw.execute("SELECT to_regclass(%s)::text", (f'"{canary}"',)).fetchone() == (canary,)
    finally:
        _pg_drop(postgres_url, weird)
        _pg_drop(postgres_url, canary)


# -- MariaDB specifics ---------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", ["mariadb://", "mysql://", "mysql+pymysql://", "mariadb+pymysql://"])
def test_mariadb_scheme_spellings(mariadb_url: str, scheme: str) -> None:
    with open_store(scheme + mariadb_url.split("://", 1)[1]) as s:
        assert isinstance(s, SQLAdapter) and s._engine.url.drivername == "mysql+pymysql"
        s.ping()


def test_entity_type_must_fit_mariadb_identifier(mariadb_url: str) -> None:
    with open_store(mariadb_url) as s:
        assert s.check_entity_type("x" * 61) == "x" * 61  # uf_ + 61 = 64
        with pytest.raises(ValidationError, match="64 bytes"):
            s.check_entity_type("x" * 62)


def test_mariadb_partitioned_scan_reports_malformed_once(mariadb_url: str, name: str) -> None:
    with open_store(mariadb_url) as s:
        good = sample_records(name, 40)
        s.put_many(good)
        v5 = (5 << 76) | (0x8000 << 48)  # version 5, RFC variant: wrong forms of IDs this scheme could make
        planted = [uuid.UUID(int=0xAB << 120 | v5), uuid.UUID(int=0x5555_5555_6 << 92 | 0xABC | v5)]  # text sorts elsewhere
        try:
            with _maria(mariadb_url) as raw, raw.cursor() as cur:  # CHAR(32) refuses 36-char text in strict mode
                cur.executemany(f"INSERT INTO `uf_{name}` (id, fingerprint, data) VALUES (%s, %s, '{{}}')",
                                [(planted[0].hex.upper(), "0" * 32), (planted[1].hex.upper(), "0" * 32),
                                 ("B-not-a-uuid", "0" * 32)])
            found: list[MalformedID] = []
            foreign: list[ForeignEntry] = []
            for part in Partition(0, 1).split(3):
                found += [i for i, _ in s.scan(name, part, include_malformed=True) if isinstance(i, MalformedID)]
                foreign += [i for i, _ in s.scan(name, part, include_malformed=True) if isinstance(i, ForeignEntry)]
            assert sorted(str(m.id) for m in found) == sorted(map(str, planted))  # each exactly once
            assert [f.raw for f in foreign] == ["B-not-a-uuid"]  # not ours (issue 10): reported once
            assert sorted(s.get_many(name, [r.id for r in good] + planted)) == sorted(r.id for r in good)
            with pytest.raises(ValidationError, match="never deleted"):
                s.delete_raw(name, ["B-not-a-uuid"])
            assert s.delete_raw(name, [m.raw for m in found]) == 2  # the repair of wrong encodings
            assert not [i for i, _ in s.scan(name, include_malformed=True) if isinstance(i, MalformedID)]
            assert [i.raw for i, _ in s.scan(name, include_malformed=True) if isinstance(i, ForeignEntry)] == \
                ["B-not-a-uuid"]
        finally:
            _maria_drop(mariadb_url, f"uf_{name}")


def test_mariadb_read_timeout_gives_store_timeout_error(mariadb_url: str, name: str) -> None:
    with open_store(mariadb_url, read_timeout=1) as s:
        s.put_many(sample_records(name, 1))
        try:
            with _maria(mariadb_url) as raw, raw.cursor() as cur:
                cur.execute(f"LOCK TABLES `uf_{name}` WRITE")
                try:
                    with pytest.raises(StoreTimeoutError, match="timed out"):
                        s.get_many(name, [uuid.uuid4()])
                finally:
                    cur.execute("UNLOCK TABLES")
        finally:
            _maria_drop(mariadb_url, f"uf_{name}")


def test_estimate_counts_rows_without_reading_them(mariadb_url: str, name: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An audit sizes its partitions with ``count(*)``, never a scan that reads and hashes every row;
    a row under a wrongly encoded ID is counted too (an estimate), unlike ``count``."""
    with open_store(mariadb_url) as s:
        s.put_many(sample_records(name, 30))
        try:
            with _maria(mariadb_url) as raw, raw.cursor() as cur:
                cur.execute(f"INSERT INTO `uf_{name}` (id, fingerprint, data) VALUES (%s, %s, '{{}}')",
                            (uuid.uuid5(uuid.NAMESPACE_DNS, name).hex.upper(), "0" * 32))

            def no_scan(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("estimate read the rows")

            monkeypatch.setattr(SQLAdapter, "_scan", no_scan)
            assert s.estimate(name) == 31
            assert s.estimate("neverwritten" + name) == 0
        finally:
            s.drop(name)
