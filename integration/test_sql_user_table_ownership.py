"""Issue 18, SQL: a write owns only its columns of the user's table, and a filter narrows it.

On real PostgreSQL and MariaDB servers and on SQLite, a user table shared with another
application: its columns (unmapped, nullable or with a default; and a mapped column of a field the
store ignores) survive write, repair (API and ``audit --repair --apply``) and replay; an unmapped
``NOT NULL`` column without a default refuses the store when the table is opened, naming the
columns, and works once ``defaults`` declares values for it; a ``filter`` narrows a user table used
as the source, so the other rows are neither reported missing nor copied to other stores. Raw
checks use the drivers directly (psycopg, pymysql, sqlite3), never the adapter.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pymysql = pytest.importorskip("pymysql", reason=driver_missing("pymysql"))

from uuid_forge import ConfigError, Forge, WriteError, open_store

from .scaffold import DEFAULT_SALT, run_cli
from .test_sql import _maria, _pg

NAMESPACE = "users.ownership.uuid-forge.test"
ENV = {"UUID_FORGE_SALT": DEFAULT_SALT}


@dataclass
class Backend:
    """One SQL server: its URL, its column types and raw statements through its own driver."""

    name: str
    url: str
    id_type: str  # the ID column's type
    text: str  # a text column's type

    def run(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement (``%s`` placeholders) through the driver; its rows, IDs as text."""
        if self.name == "postgresql":
            with _pg(self.url) as raw:
                cur = raw.execute(statement, params)
                rows = cur.fetchall() if cur.description else []
        elif self.name == "mariadb":
            with _maria(self.url) as raw, raw.cursor() as cur:
                cur.execute(statement, params)
                rows = list(cur.fetchall()) if cur.description else []
        else:
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as raw:
                rows = raw.execute(statement.replace("%s", "?"), params).fetchall()
            raw.close()
        return [tuple(str(v) if isinstance(v, uuid.UUID) else v for v in row) for row in rows]


@pytest.fixture(params=["postgresql", "mariadb", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgresql":
        return Backend("postgresql", request.getfixturevalue("postgres_url"), "uuid", "text")
    if request.param == "mariadb":
        return Backend("mariadb", request.getfixturevalue("mariadb_url"), "CHAR(36)", "VARCHAR(200)")
    return Backend("sqlite", f"sqlite:///{tmp_path}/app.db", "CHAR(36)", "TEXT")


@pytest.fixture
def table(backend: Backend) -> Iterator[str]:
    name = f"users_{uuid.uuid4().hex[:8]}"
    yield name
    backend.run(f"DROP TABLE IF EXISTS {name}")


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _config(tmp_path: Path, stores: dict[str, dict[str, Any]], source: str) -> Path:
    """A forge.toml: our namespace, a journal, and ``stores`` (keys as in [stores.NAME]; ``source`` the source)."""
    parts = [f"[ids]\nnamespace = {_toml(NAMESPACE)}\n",
             f"[journal]\npath = {_toml(str(tmp_path / 'journal.sqlite3'))}\n",
             "[write]\nretries = 1\nbackoff = 0.01\n"]
    for name, keys in stores.items():
        keys = {**keys, **({"role": "source"} if name == source else {})}
        parts.append(f"[stores.{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items()))
    path = tmp_path / "forge.toml"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _adapter(forge: Forge, name: str) -> Any:
    return next(h.adapter for h in forge.stores if h.name == name)


def _users(n: int, suffix: str = "") -> list[tuple[str, dict[str, str], dict[str, str]]]:
    return [("user", {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "name": f"User {i}{suffix}"})
            for i in range(n)]


def _app_columns(backend: Backend, table: str) -> dict[str, tuple[Any, ...]]:
    """email -> (name, plan, app_note, app_count) as the table holds them."""
    rows = backend.run(f"SELECT email, name, plan, app_note, app_count FROM {table}")
    return {r[0]: tuple(r[1:]) for r in rows}


# -- rule 3: a write owns only its columns --------------------------------------------------------------------
def test_other_apps_columns_survive_write_repair_and_replay(backend: Backend, table: str, tmp_path: Path) -> None:
    """The other application's ``app_note`` (nullable), ``app_count`` (NOT NULL DEFAULT 7) and ``plan``
    (mapped, but a field the store ignores) keep their values through every kind of write of ours."""
    t = backend.text
    backend.run(f"CREATE TABLE {table} (id {backend.id_type} PRIMARY KEY, email {t}, name {t}, plan {t}, "
                f"app_note {t}, app_count INTEGER NOT NULL DEFAULT 7)")
    config = _config(tmp_path, {
        "source": {"url": f"sqlite:///{tmp_path}/source.db"},
        "users": {"url": backend.url, "ignore_fields": ["plan"],
                  "options": {"table": table, "entity_type": "user",
                              "fields": {"email": "email", "name": "name", "plan": "plan"}}}}, "source")
    with Forge.from_config(str(config), env=ENV) as forge:
        report = forge.write_many(_users(4))
        assert report.ok and report.complete, report
        assert _app_columns(backend, table)["u0@example.com"] == ("User 0", None, None, 7)  # inserted: theirs empty
        backend.run(f"UPDATE {table} SET plan = 'gold', app_note = 'theirs', app_count = 99")
        theirs = ("gold", "theirs", 99)

        # a write-through of changed data
        assert forge.write_many(_users(4, " v2")).complete
        assert all(v == (f"User {k[1]} v2", *theirs) for k, v in _app_columns(backend, table).items())

        # repair through the API: a hand edit of a mapped column, and a row that went missing
        backend.run(f"UPDATE {table} SET name = 'edited by hand' WHERE email = 'u1@example.com'")
        assert {f.kind for f in forge.audit("user").findings} == {"stale"}
        repaired = forge.audit("user", repair=True)
        assert not repaired.repair_errors and forge.audit("user").consistent
        assert _app_columns(backend, table)["u1@example.com"] == ("User 1 v2", *theirs)

        # replay: the table is away while a write happens (journaled), then back
        away = f"{table}_away"
        backend.run(f"ALTER TABLE {table} RENAME TO {away}")
        try:
            with pytest.raises(WriteError, match="kept in the journal"):
                forge.write_many(_users(4, " v3"))
        finally:
            backend.run(f"ALTER TABLE {away} RENAME TO {table}")
        assert forge.pending() == {"users": 4}
        replayed = forge.replay()
        assert replayed.complete and forge.pending() == {}
        assert all(v == (f"User {k[1]} v3", *theirs) for k, v in _app_columns(backend, table).items())

    # repair through the CLI: audit --repair --apply
    backend.run(f"UPDATE {table} SET name = 'edited again' WHERE email = 'u2@example.com'")
    done = run_cli("audit", "-c", str(config), "--entity", "user", "--repair", "--apply", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["after_repair"]["consistent"] is True, done.stdout
    assert all(v == (f"User {k[1]} v3", *theirs) for k, v in _app_columns(backend, table).items())


def test_a_projection_leaves_the_other_mapped_columns_alone(backend: Backend, table: str, tmp_path: Path) -> None:
    """A store holding only ``email`` and ``name`` (its projection) never writes ``plan``, which it
    maps for reading: with nulls='absent' it used to write NULL over the other application's value."""
    t = backend.text
    backend.run(f"CREATE TABLE {table} (id {backend.id_type} PRIMARY KEY, email {t}, name {t}, plan {t})")
    config = _config(tmp_path, {
        "source": {"url": f"sqlite:///{tmp_path}/source.db"},
        "users": {"url": backend.url, "projection": ["email", "name"],
                  "options": {"table": table, "entity_type": "user", "nulls": "absent",
                              "fields": {"email": "email", "name": "name", "plan": "plan"}}}}, "source")
    with Forge.from_config(str(config), env=ENV) as forge:
        assert forge.write_many(_users(3)).complete
        backend.run(f"UPDATE {table} SET plan = 'gold'")
        assert forge.write_many(_users(3, " v2")).complete
        assert forge.audit("user").consistent
        users = _adapter(forge, "users")
        record = forge.records(_users(1))[0]
        layout = users._table("user", create=False)  # the layout says what it owns
        assert layout.owned_fields(record) == {"id", "email", "name"}
    assert sorted(backend.run(f"SELECT name, plan FROM {table}")) == [
        ("User 0 v2", "gold"), ("User 1 v2", "gold"), ("User 2 v2", "gold")]


# -- rule 3: unmapped NOT NULL columns --------------------------------------------------------------------------
def test_unmapped_not_null_column_is_refused_at_open_and_works_with_defaults(backend: Backend, table: str,
                                                                              tmp_path: Path) -> None:
    t = backend.text
    backend.run(f"CREATE TABLE {table} (id {backend.id_type} PRIMARY KEY, email {t}, name {t}, "
                f"tenant {t} NOT NULL, created_by {t} NOT NULL, app_count INTEGER NOT NULL DEFAULT 7)")
    options = {"table": table, "entity_type": "user", "fields": {"email": "email", "name": "name"}}
    with open_store(backend.url, **options) as store, pytest.raises(ConfigError) as refused:
        store.count("user")  # the table is opened (reflected and checked) on first use
    text = str(refused.value)
    assert table in text and "['tenant', 'created_by']" in text and "NOT NULL" in text
    assert "fields=" in text and "defaults=" in text  # how to fix it
    assert "app_count" not in text  # it has a default

    config = _config(tmp_path, {"source": {"url": f"sqlite:///{tmp_path}/source.db"},
                                "users": {"url": backend.url, "options": options}}, "source")
    write = run_cli("write", "-c", str(config), "user", "-k", "email=u0@example.com", "-d", "email=u0@example.com",
                    "-d", "name=User 0")
    assert write.returncode == 2 and "['tenant', 'created_by']" in write.stderr, write.stderr
    assert "Traceback" not in write.stderr
    with open_store(f"sqlite:///{tmp_path}/source.db") as source:  # refused before any store was written
        assert source.count("user") == 0

    text_config = config.read_text().replace("options = { ", "options = { defaults = { tenant = \"acme\", "
                                             "created_by = \"uuid-forge\" }, ")
    config.write_text(text_config)
    with Forge.from_config(str(config), env=ENV) as forge:
        assert forge.write_many(_users(3)).complete
        backend.run(f"UPDATE {table} SET tenant = 'theirs' WHERE email = 'u0@example.com'")
        assert forge.write_many(_users(3, " v2")).complete  # the update leaves the default columns alone
        assert forge.audit("user").consistent
    assert sorted(backend.run(f"SELECT email, name, tenant, created_by, app_count FROM {table}")) == [
        ("u0@example.com", "User 0 v2", "theirs", "uuid-forge", 7),
        ("u1@example.com", "User 1 v2", "acme", "uuid-forge", 7),
        ("u2@example.com", "User 2 v2", "acme", "uuid-forge", 7)]
    with (pytest.raises(ConfigError, match=r"defaults= names mapped columns \['email'\]"),
          open_store(backend.url, **options, defaults={"email": "x", "tenant": "a", "created_by": "b"}) as s):
        s.count("user")


# -- rule 2: a filter narrows a user table used as the source ------------------------------------------------
def test_filter_narrows_a_user_table_used_as_the_source(backend: Backend, table: str, tmp_path: Path) -> None:
    """The user's table holds users and another application's password-reset tokens (ID text a
    version-5 UUID); with filter="kind = 'user'" the audit, repair and counts see the users only."""
    t = backend.text
    backend.run(f"CREATE TABLE {table} (id {backend.id_type} PRIMARY KEY, kind {t} NOT NULL, email {t}, name {t})")
    source_options = {"table": table, "entity_type": "user", "filter": "kind = 'user'",
                      "defaults": {"kind": "user"}, "fields": {"email": "email", "name": "name"}}
    config = _config(tmp_path, {"source": {"url": backend.url, "options": source_options},
                                "cache": {"url": f"sqlite:///{tmp_path}/cache.db"}}, "source")
    with Forge.from_config(str(config), env=ENV) as forge:
        assert forge.write_many(_users(3)).complete
        tokens = [uuid.uuid5(uuid.uuid4(), f"reset-{i}") for i in range(4)]  # the other app's, our ID's shape
        for i, token in enumerate(tokens):
            backend.run(f"INSERT INTO {table} (id, kind, email, name) VALUES (%s, 'reset_token', %s, %s)",
                        (str(token), f"u{i}@example.com", f"secret-{i}"))
        source = _adapter(forge, "source")
        assert source.count("user") == 3
        assert source.get_many("user", tokens) == {}
        report = forge.audit("user")
        assert report.consistent, report.findings
        repaired = forge.audit("user", repair=True, delete_orphans=True)
        assert not repaired.repair_errors and repaired.consistent
        cache = _adapter(forge, "cache")
        assert cache.count("user") == 3 and cache.get_many("user", tokens) == {}
        assert source.delete_many("user", tokens) == 0  # outside the filter: never ours to delete
    assert len(backend.run(f"SELECT id FROM {table} WHERE kind = 'reset_token'")) == 4
    done = run_cli("audit", "-c", str(config), "--entity", "user", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["consistent"] is True, done.stdout


def test_filter_refuses_dangerous_text_and_names_a_bad_condition(backend: Backend, table: str) -> None:
    t = backend.text
    backend.run(f"CREATE TABLE {table} (id {backend.id_type} PRIMARY KEY, kind {t}, email {t})")
    base = {"table": table, "entity_type": "user", "fields": {"email": "email"}}
    for bad in ("kind = 'user'; DROP TABLE x", "kind = 'user' -- all", "kind = 'user' /* x */", "kind = 'user' # x"):
        with pytest.raises(ConfigError, match="a filter is one SQL condition"):
            open_store(backend.url, **base, filter=bad)
    with open_store(backend.url, **base, filter="no_such_column = 1") as store, \
            pytest.raises(ConfigError, match=f"filter 'no_such_column = 1' on table '{table}' is refused"):
        store.count("user")
    # a colon and a percent sign are text, not parameters
    with open_store(backend.url, **base, filter="kind <> 'at 10:00' AND email NOT LIKE '%x'") as store:
        assert store.count("user") == 0
