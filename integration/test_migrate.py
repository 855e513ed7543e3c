"""Issue 21, small scale: ``uuid-forge migrate`` on real PostgreSQL (tables of ours and a user
table), Redis and files, through the command line in subprocesses, with a SIGKILL mid-expand and
mid-contract and the resume.

The old world: users and orders under version-4 IDs, the same users in every store (a serial
``legacy_id`` in their data, which orders' ``user_id`` holds), and another application's entries
beside them (a row without an email in the user table, a Redis key, a file). Entries not named by
a UUID need ``Adapter.read_raw`` (branch rawread) to be mapped: here they are another
application's, so they are left alone either way (``--leave-unmapped``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
redis = pytest.importorskip("redis", reason=driver_missing("redis"))

from uuid_forge import Forge
from uuid_forge import migrationmap as mm
from uuid_forge.masking import mask_name
from uuid_forge.record import Record
from uuid_forge.settings import load_settings

from .scaffold import DEFAULT_SALT, FAST_WRITE, cli_env, run_cli, write_forge_toml
from .test_sql import _pg

NAMESPACE = "shop.migrate.uuid-forge.test"
USERS, ORDERS = 150, 300


@dataclass
class World:
    config: Path
    tag: str
    olds: dict[int, uuid.UUID]
    pg: str
    redis: str
    files: Path
    accounts: str

    def forge(self) -> Forge:
        return Forge.from_config(str(self.config), env={"UUID_FORGE_SALT": DEFAULT_SALT})


@pytest.fixture
def world(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[World]:
    tag = f"mg{uuid.uuid4().hex[:8]}"
    accounts = f"{tag}_accounts"
    with _pg(postgres_url) as raw:
        raw.execute(f"CREATE TABLE {accounts} (id uuid PRIMARY KEY, email text, name text, legacy_id integer)")
    files = tmp_path / "files"
    extra = ('[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\n'
             'references = { user_id = "user" }\n\n'
             '[migrate.stores.db]\nold_id = "field:legacy_id"\n\n[migrate.stores.cache]\nold_id = "field:legacy_id"\n\n'
             '[migrate.stores.files]\nold_id = "field:legacy_id"\n\n[migrate.stores.accounts]\nold_id = "field:legacy_id"\n')
    stores: dict[str, Any] = {
        "db": f"{postgres_url}?prefix={tag}_",
        "accounts": {"url": postgres_url, "options": {"table": accounts, "entity_type": "user",
                                                      "fields": {"email": "email", "name": "name",
                                                                 "legacy_id": "legacy_id"}}},
        "cache": f"{redis_url}?prefix={tag}",
        "files": {"url": f"file://{files}", "options": {"fsync": False}},
    }
    config = write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace=NAMESPACE, write=FAST_WRITE, extra=extra)
    olds = {i: uuid.uuid4() for i in range(USERS)}
    w = World(config, tag, olds, postgres_url, redis_url, files, accounts)
    users = [Record("user", olds[i], {"email": f"u{i}@example.com", "name": f"User {i}", "legacy_id": i})
             for i in range(USERS)]
    orders = [Record("order", uuid.uuid4(), {"order_no": j, "user_id": j % USERS, "total": j * 3})
              for j in range(ORDERS)]
    with w.forge() as forge:
        for h in forge.stores:
            h.adapter.put_many(users)
            if h.name in ("db", "files"):
                h.adapter.put_many(orders)
    with _pg(postgres_url) as raw:  # another application's row: no email
        raw.execute(f"INSERT INTO {accounts} (id, email, name) VALUES (%s, NULL, 'theirs')", (uuid.uuid4(),))
    client = redis.Redis.from_url(redis_url)
    client.set(f"{tag}:user:session-abc", "theirs")
    (files / "user" / "notes.txt").write_text("theirs", encoding="utf-8")
    try:
        yield w
    finally:
        keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
        if keys:
            client.unlink(*keys)
        client.close()
        with _pg(postgres_url) as raw:
            rows = raw.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{tag}%",)).fetchall()
            for (name,) in rows:
                raw.execute(f'DROP TABLE IF EXISTS "{name}"')


def _cli(w: World, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("migrate", *args, "-c", str(w.config), timeout=600)


def _states(w: World) -> dict[str, int]:
    with w.forge() as forge:
        mappings, _ = mm.load(forge.source.adapter, "default")
    counts: dict[str, int] = {}
    for m in mappings:
        counts[m.state] = counts.get(m.state, 0) + 1
    return counts


def _kill_when(w: World, args: list[str], state: str) -> None:
    """Run ``migrate ARGS`` in a subprocess and SIGKILL it as soon as some mapping reached ``state``
    (and not all have): a kill in the middle of the phase."""
    proc = subprocess.Popen([sys.executable, "-m", "uuid_forge", "migrate", *args, "-c", str(w.config)],
                            env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if _states(w).get(state, 0) > 0:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the phase finished before the kill ({proc.returncode})"
    states = _states(w)
    assert states.get(state, 0) > 0 and states.get(state, 0) < sum(n for s, n in states.items() if s != "left")


def test_migrate_with_kills_and_resume(world: World) -> None:
    w = world
    done = _cli(w, "plan", "--json")
    assert done.returncode == 2 and done.stdout, done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert counts["accounts/user"]["unmapped"] == 1 and counts["files/user"]["unmapped"] == 1
    assert counts["cache/user"]["unmapped"] == 1 and counts["db/order"]["to map"] == ORDERS
    assert "theirs" not in done.stdout + done.stderr and "session-abc" not in done.stdout + done.stderr
    assert _states(w) == {}
    done = _cli(w, "plan", "--leave-unmapped")
    assert done.returncode == 0, done.stderr

    _kill_when(w, ["expand", "--batch-size", "2"], "expanded")
    done = _cli(w, "contract", "--max-delete", "100%")
    assert done.returncode == 2 and "verify has not passed" in done.stderr
    done = _cli(w, "expand", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _states(w) == {"expanded": 4 * USERS + 2 * ORDERS, "left": 3}

    done = _cli(w, "verify", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["passed"], done.stdout

    _kill_when(w, ["contract", "--batch-size", "2", "--max-delete", "100%"], "contracted")
    done = _cli(w, "rollback")
    assert done.returncode == 2 and "rollback refused" in done.stderr
    done = _cli(w, "contract", "--max-delete", "100%", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _states(w) == {"contracted": 4 * USERS + 2 * ORDERS, "left": 3}

    with w.forge() as forge:
        new_users = {str(u) for u in forge.generator.generate_many("user", [{"email": f"u{i}@example.com"}
                                                                           for i in range(USERS)])}
        for h in forge.stores:
            users = {str(i) for i, _ in h.adapter.scan("user")}
            assert new_users <= users and not users & {str(u) for u in w.olds.values()}, h.name
            if h.name in ("db", "files"):
                orders = h.adapter.get_many("order", [i for i, _ in h.adapter.scan("order")])
                assert len(orders) == ORDERS
                assert all(r.data["user_id"] in new_users for r in orders.values())
                assert all(forge.prover.proven("order", {r.id: r}) for r in orders.values())
        for entity_type, names in (("user", {"db", "accounts", "cache", "files"}), ("order", {"db", "files"})):
            # the audit of each type over the stores holding it (the user table refuses orders)
            one = Forge([h for h in forge.stores if h.name in names], ids=forge.ids, journal=None, types=forge.types)
            report = one.audit(entity_type)
            assert {f.kind for f in report.findings} <= {"unproven", "foreign"}, report.findings[:5]
            assert sum(c["unproven"] + c["foreign"] for c in report.stores.values()) == (3 if entity_type == "user"
                                                                                         else 0)
    done = _cli(w, "verify", "--json")  # after contract, verify still passes
    assert done.returncode == 0 and json.loads(done.stdout)["passed"], done.stdout
    with _pg(w.pg) as raw:
        assert raw.execute(f"SELECT count(*) FROM {w.accounts} WHERE name = 'theirs'").fetchone() == (1,)
        assert raw.execute(f"SELECT count(*) FROM {w.accounts}").fetchone() == (USERS + 1,)
    client = redis.Redis.from_url(w.redis)
    assert client.get(f"{w.tag}:user:session-abc") == b"theirs"
    client.close()
    assert (w.files / "user" / "notes.txt").read_text(encoding="utf-8") == "theirs"


def test_serial_named_entries_in_redis_and_files(postgres_url: str, redis_url: str, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Entries under names that are no UUID (Redis ``user:<serial>``, files ``<serial>.json``) are read
    with ``read_raw``, mapped, expanded with their references rewritten, and contracted by raw name
    through ``delete_raw_proven``; another application's key beside them is left."""
    from uuid_forge.migration import can_read_raw

    tag = f"mg{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    extra = ('[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\nreferences = { user_id = "user" }\n\n'
             '[migrate.stores.db]\nold_id = "field:legacy_id"\n\n[migrate.stores.cache]\nold_id = "field:legacy_id"\n\n'
             '[migrate.stores.files]\nold_id = "field:legacy_id"\n')
    config = write_forge_toml(tmp_path / "uf.toml", {"db": f"{postgres_url}?prefix={tag}_",
                                                     "cache": f"{redis_url}?prefix={tag}",
                                                     "files": {"url": f"file://{files}", "options": {"fsync": False}}},
                              "db", namespace=NAMESPACE, write=FAST_WRITE, extra=extra)
    forge = Forge.from_config(str(config), env={"UUID_FORGE_SALT": DEFAULT_SALT})
    cache = next(h.adapter for h in forge.stores if h.name == "cache")
    if not can_read_raw(cache):
        forge.close()
        pytest.skip("the Redis adapter has no read_raw yet (branch rawread)")
    client = redis.Redis.from_url(redis_url)
    try:
        n = 40
        db = forge.source.adapter
        db.put_many([Record("user", uuid.uuid4(), {"email": f"u{i}@example.com", "legacy_id": i}) for i in range(n)])
        db.put_many([Record("order", uuid.uuid4(), {"order_no": i, "user_id": i, "legacy_id": 1000 + i})
                     for i in range(n)])
        for i in range(n):
            client.set(f"{tag}:user:{i}", json.dumps({"email": f"u{i}@example.com", "legacy_id": i}))
            client.set(f"{tag}:order:{i}", json.dumps({"order_no": i, "user_id": i, "legacy_id": 1000 + i}))
            (files / "user").mkdir(parents=True, exist_ok=True)
            (files / "user" / f"{i}.json").write_text(json.dumps({"email": f"u{i}@example.com", "legacy_id": i}),
                                                      encoding="utf-8")
        client.set(f"{tag}:user:session-abc", json.dumps({"token": "theirs"}))
        # raw names holding personal data: one unreadable, one without key fields; never shown
        client.set(f"{tag}:user:ann@example.com", b"{not json")
        client.set(f"{tag}:user:bob@example.com", json.dumps({"token": "theirs"}))
        with caplog.at_level(logging.DEBUG):  # the store's own reasons, reprs and warnings: shapes only
            planted = [f"{tag}:user:ann@example.com", f"{tag}:user:bob@example.com"]
            got = cache.read_raw("user", planted)
            assert cache.delete_raw_proven("user", {k: {"email": "x"} for k in planted}) == 0
        assert got[planted[0]].data is None and len(got) == 2
        assert "@example.com" not in caplog.text + " ".join(f"{e!r} {e.reason}" for e in got.values())
        forge.close()
        w = World(config, tag, {}, postgres_url, redis_url, files, "")
        for phase in (["plan", "--dry-run"], ["plan", "--leave-unmapped"], ["expand"], ["verify"],
                      ["contract", "--max-delete", "100%"]):
            for fmt in (["--json"], []) if phase[0] == "plan" else (["--json"],):
                done = _cli(w, *phase, *fmt)
                assert done.returncode == (2 if phase == ["plan", "--dry-run"] else 0), (phase, done.stdout[-2000:],
                                                                                         done.stderr)
                shown = done.stdout + done.stderr
                assert "session-abc" not in shown and "@example.com" not in shown, (phase, fmt)
        with w.forge() as forge:
            new_users = forge.generator.generate_many("user", [{"email": f"u{i}@example.com"} for i in range(n)])
            for h in forge.stores:
                held = {i for i, _ in h.adapter.scan("user")}
                assert held == set(new_users), h.name
            cache = next(h.adapter for h in forge.stores if h.name == "cache")
            orders = cache.get_many("order", [i for i, _ in cache.scan("order")])
            assert sorted(r.data["user_id"] for r in orders.values()) == sorted(str(u) for u in new_users)
        assert client.get(f"{tag}:user:0") is None and client.get(f"{tag}:order:0") is None
        assert json.loads(client.get(f"{tag}:user:session-abc") or b"{}") == {"token": "theirs"}
        assert client.get(f"{tag}:user:ann@example.com") == b"{not json"
        assert client.get(f"{tag}:user:bob@example.com") is not None
        assert not (files / "user" / "0.json").exists()
    finally:
        keys = list(client.scan_iter(match=f"{tag}:*", count=1000))
        if keys:
            client.unlink(*keys)
        client.close()
        with _pg(postgres_url) as raw:
            for (name,) in raw.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{tag}%",)).fetchall():
                raw.execute(f'DROP TABLE IF EXISTS "{name}"')


@pytest.fixture
def serial_tables(postgres_url: str) -> Iterator[tuple[str, str, str]]:
    """A users table and an orders table of the user's keyed by serials (orders.user_id -> users.id),
    the uuid_forge_id functions installed in the database; dropped afterwards."""
    from uuid_forge.pgfunctions import postgres_functions_sql

    tag = f"mgi{uuid.uuid4().hex[:8]}"
    users, orders = f"{tag}_users", f"{tag}_orders"
    with _pg(postgres_url) as raw:  # in a schema of its own, off the search path: the backfill qualifies the call
        raw.execute(f"CREATE SCHEMA {tag}_fn")
        raw.execute(postgres_functions_sql(f"{tag}_fn"))
        raw.execute(f"CREATE TABLE {users} (id serial PRIMARY KEY, email text, name text)")
        raw.execute(f"CREATE TABLE {orders} (id serial PRIMARY KEY, order_no integer, user_id integer "
                    f"REFERENCES {users}(id))")
        raw.execute(f"INSERT INTO {users} (email, name) SELECT 'u' || i || '@example.com', 'User ' || i "
                    "FROM generate_series(0, 299) AS i")
        raw.execute(f"INSERT INTO {orders} (order_no, user_id) SELECT j, 1 + j % 300 FROM generate_series(0, 699) AS j")
    try:
        yield tag, users, orders
    finally:
        with _pg(postgres_url) as raw:
            for (name,) in raw.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{tag}%",)).fetchall():
                raw.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')
            raw.execute(f"DROP SCHEMA IF EXISTS {tag}_fn CASCADE")


def _in_place_config(tmp_path: Path, postgres_url: str, tag: str, users: str, orders: str) -> World:
    extra = ('[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\n\n'
             f'[migrate.in_place.users]\nstore = "db"\ntable = "{users}"\ntype = "user"\n\n'
             f'[migrate.in_place.orders]\nstore = "db"\ntable = "{orders}"\ntype = "order"\n'
             'references = { user_id = { to = "users", column = "user_uid" } }\n')
    config = write_forge_toml(tmp_path / "uf.toml", {"db": f"{postgres_url}?prefix={tag}_"}, "db",
                              namespace=NAMESPACE, write=FAST_WRITE, extra=extra)
    return World(config, tag, {}, postgres_url, "", tmp_path, users)


def test_serial_tables_in_place_by_shadow_columns(serial_tables: tuple[str, str, str], postgres_url: str,
                                                  tmp_path: Path) -> None:
    """expand fills users.uid and orders.uid in the database and orders.user_uid by a join; verify
    recomputes every ID in Python; contract adds NOT NULL and UNIQUE and drops nothing."""
    tag, users, orders = serial_tables
    w = _in_place_config(tmp_path, postgres_url, tag, users, orders)
    done = _cli(w, "plan", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert counts[f"db/{users}/user"]["to map"] == 300 and counts[f"db/{orders}/order"]["to map"] == 700
    for phase in (["expand", "--batch-size", "64"], ["verify"]):
        done = _cli(w, *phase, "--json")
        assert done.returncode == 0, (phase, done.stdout[-2000:], done.stderr)
    with _pg(postgres_url) as raw:
        raw.execute(f"UPDATE {users} SET uid = NULL WHERE id = 5")  # a row lost its new ID: verify must fail
    done = _cli(w, "verify", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["problems"] == [
        {"store": "db", "type": "user", "entry": users, "problem": "not expanded",
         "reason": "1 keyed rows without a new ID: run expand (rows written since?)"}]
    done = _cli(w, "contract", "--json")
    assert done.returncode == 2 and "verify" in done.stderr
    assert _cli(w, "expand").returncode == 0 and _cli(w, "verify").returncode == 0
    with _pg(postgres_url) as raw:  # a row written after verify: contract refuses before changing anything
        raw.execute(f"INSERT INTO {users} (email, name) VALUES ('late@example.com', 'Late')")
    done = _cli(w, "contract")
    assert done.returncode == 2 and "1 rows have no new ID" in done.stderr
    assert not json.loads(_cli(w, "status", "--json").stdout)["contract_started"]  # rollback still possible
    with _pg(postgres_url) as raw:
        raw.execute(f"DELETE FROM {users} WHERE email = 'late@example.com'")
    done = _cli(w, "contract", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    with w.forge() as forge, _pg(postgres_url) as raw:
        rows = raw.execute(f"SELECT email, uid FROM {users} ORDER BY id").fetchall()
        expected = forge.generator.generate_many("user", [{"email": e} for e, _ in rows])
        assert [u for _, u in rows] == expected
        joined = raw.execute(f"SELECT count(*) FROM {orders} o JOIN {users} u ON o.user_id = u.id "
                             "WHERE o.user_uid = u.uid").fetchone()
        assert joined == (700,)
        nullable = raw.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = %s AND "
                               "column_name = 'uid'", (users,)).fetchone()
        assert nullable == ("NO",)
        assert raw.execute(f"SELECT count(*) FROM {users}").fetchone() == (300,)  # nothing dropped
        with pytest.raises(psycopg.errors.UniqueViolation):
            raw.execute(f"UPDATE {users} SET uid = (SELECT uid FROM {users} WHERE id = 1) WHERE id = 2")
    assert _cli(w, "rollback").returncode == 2


def test_in_place_writes_between_expand_and_contract(serial_tables: tuple[str, str, str], postgres_url: str,
                                                     tmp_path: Path) -> None:
    """The application keeps writing after expand: a user row inserted (no uid), a user's email
    (its key) edited (its uid stale, and so the user_uid of its orders), an order pointed at
    another user (its user_uid stale). verify fails naming each; expand again fills and
    recomputes exactly those; verify passes. An edit after that pass: contract refuses before
    changing anything, and rollback is still possible."""
    tag, users, orders = serial_tables
    w = _in_place_config(tmp_path, postgres_url, tag, users, orders)
    for phase in ("plan", "expand"):
        assert _cli(w, phase).returncode == 0
    with _pg(postgres_url) as raw:
        raw.execute(f"INSERT INTO {users} (email, name) VALUES ('late@example.com', 'Late')")
        raw.execute(f"UPDATE {users} SET email = 'renamed7@example.com' WHERE id = 7")
        raw.execute(f"UPDATE {orders} SET user_id = 9 WHERE id = 3")
    done = _cli(w, "verify", "--json")
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr
    reasons = [p["reason"] for p in json.loads(done.stdout)["problems"]]
    assert any(r.startswith("1 keyed rows without a new ID") for r in reasons), reasons
    assert any(r.startswith("1 rows hold a new ID their key columns do not give") for r in reasons), reasons
    # order 3 (user 7's orders still match user 7's stale uid: they follow it when it is recomputed)
    assert any(r.startswith("1 rows whose user_uid is not the new ID") for r in reasons), reasons
    done = _cli(w, "expand", "--json", "--batch-size", "64")  # the recompute walks the table in ranges
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    counts = json.loads(done.stdout)["counts"]
    assert counts[f"db/{users}/user"]["filled"] == 1
    assert counts[f"db/{users}/user"]["refreshed (key columns changed)"] == 1
    assert counts[f"db/{orders}/order"]["references refreshed (user_id)"] == 1 + 3  # order 3; user 7's three
    done = _cli(w, "verify", "--json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    with w.forge() as forge, _pg(postgres_url) as raw:
        rows = raw.execute(f"SELECT email, uid FROM {users} ORDER BY id").fetchall()
        assert [u for _, u in rows] == forge.generator.generate_many("user", [{"email": e} for e, _ in rows])
        assert raw.execute(f"SELECT count(*) FROM {orders} o JOIN {users} u ON o.user_id = u.id "
                           "WHERE o.user_uid = u.uid").fetchone() == (700,)
    for edit, refusal in ((f"UPDATE {users} SET email = 'again@example.com' WHERE id = 8",
                           "1 rows hold a new ID (uid) their key columns no longer give"),
                          (f"UPDATE {orders} SET user_id = 10 WHERE id = 4", "user_uid is not the new ID")):
        with _pg(postgres_url) as raw:  # written after verify passed: contract's own check finds it
            raw.execute(edit)
        done = _cli(w, "contract")
        assert done.returncode == 2 and refusal in done.stderr and "nothing was changed" in done.stderr, done.stderr
        assert not json.loads(_cli(w, "status", "--json").stdout)["contract_started"]
        assert _cli(w, "expand").returncode == 0 and _cli(w, "verify").returncode == 0
    with _pg(postgres_url) as raw:  # a key emptied: the row holds a new ID no key gives
        raw.execute(f"UPDATE {users} SET email = NULL WHERE id = 11")
    assert _cli(w, "verify").returncode == 1
    assert _cli(w, "expand").returncode == 0  # its uid back to NULL, and its orders' user_uid
    done = _cli(w, "verify")
    assert done.returncode == 1 and "user_id names no row with a new ID" in done.stderr, done.stderr
    with _pg(postgres_url) as raw:
        raw.execute(f"UPDATE {users} SET email = 'u10@example.com' WHERE id = 11")
        assert raw.execute(f"SELECT uid FROM {users} WHERE id = 11").fetchone() == (None,)
    assert _cli(w, "expand").returncode == 0 and _cli(w, "verify").returncode == 0
    done = _cli(w, "contract", "--json")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr


def test_in_place_rollback_drops_only_the_columns_expand_created(serial_tables: tuple[str, str, str],
                                                                 postgres_url: str, tmp_path: Path) -> None:
    tag, users, orders = serial_tables
    with _pg(postgres_url) as raw:
        raw.execute(f"ALTER TABLE {orders} ADD COLUMN user_uid uuid")  # there before: never dropped
    w = _in_place_config(tmp_path, postgres_url, tag, users, orders)
    for phase in (["plan"], ["expand"]):
        assert _cli(w, *phase).returncode == 0
    done = _cli(w, "rollback", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    with _pg(postgres_url) as raw:
        cols = {r[0] for r in raw.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ANY(%s)",
                                          ([users, orders],)).fetchall()}
    assert "uid" not in cols and "user_uid" in cols


def test_mongodb_and_elasticsearch_copies_beside(postgres_url: str, mongo_db_url: str, elasticsearch_url: str,
                                                 tmp_path: Path) -> None:
    """Users and orders under version-4 IDs in PostgreSQL (the source), MongoDB and Elasticsearch:
    after plan, expand, verify and contract each store holds every entity once under its new ID,
    orders pointing at their users' new IDs, and the audit of each type is consistent."""
    from uuid_forge import migration

    tag = f"mge{uuid.uuid4().hex[:8]}"
    # the old IDs are the entries' own version-4 names (no old_id field): an Elasticsearch index that
    # mapped a serial user_id as a number could not take the new UUID text (expand stops on its error)
    extra = '[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\nreferences = { user_id = "user" }\n'

    config = write_forge_toml(tmp_path / "uf.toml", {"db": f"{postgres_url}?prefix={tag}_", "docs": mongo_db_url,
                                                     "search": f"{elasticsearch_url}?prefix={tag}"},
                              "db", namespace=NAMESPACE, write=FAST_WRITE, extra=extra)
    settings = load_settings(config, env={"UUID_FORGE_SALT": DEFAULT_SALT})
    n = 60
    users = [Record("user", uuid.uuid4(), {"email": f"u{i}@example.com", "legacy_id": i}) for i in range(n)]
    orders = [Record("order", uuid.uuid4(), {"order_no": j, "user_id": str(users[j % n].id)}) for j in range(2 * n)]
    forge = Forge.from_settings(settings)
    try:
        for h in forge.stores:
            h.adapter.put_many(users + orders)
        m = settings.migrate
        assert not migration.plan(forge, m).stopped
        assert not migration.expand(forge, m, batch_size=25).stopped
        verified = migration.verify(forge, m)
        assert verified.passed, verified.problems[:5]
        assert not migration.contract(forge, m, max_delete="100%").stopped
        new_users = set(forge.generator.generate_many("user", [{"email": f"u{i}@example.com"} for i in range(n)]))
        for h in forge.stores:
            assert {i for i, _ in h.adapter.scan("user")} == new_users, h.name
            held = h.adapter.get_many("order", [i for i, _ in h.adapter.scan("order")])
            assert len(held) == 2 * n and {uuid.UUID(r.data["user_id"]) for r in held.values()} == new_users, h.name
        for entity_type in ("user", "order"):
            assert forge.audit(entity_type).consistent, entity_type
    finally:
        for h in forge.stores:
            for entity_type in ("user", "order", "uuid-forge.migration"):
                with contextlib.suppress(Exception):  # cleanup of this test's own containers
                    h.adapter.drop(entity_type, forge.prover)
        forge.close()
        with _pg(postgres_url) as raw:
            for (name,) in raw.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE %s", (f"{tag}%",)).fetchall():
                raw.execute(f'DROP TABLE IF EXISTS "{name}"')


@pytest.mark.parametrize("layout", ["data", "envelope"])
def test_contract_leaves_an_old_mongodb_document_edited_after_verify(mongo_db_url: str, tmp_path: Path,
                                                                     layout: str) -> None:
    """Old users under ObjectIds in MongoDB (the source): between verify and contract another
    application adds a field to one old document and edits another. Contract deletes the rest,
    leaves those two as they are, and lists them (masked); a second contract leaves them too.
    (The data layout sees the added field as data; the envelope does not, and the store's delete
    refuses a document with a field beside its members.)"""
    from bson import ObjectId

    from uuid_forge import migration

    extra = '[types.user]\nkey = ["email"]\n'
    store = {"url": mongo_db_url, "options": {"layout": layout}}
    config = write_forge_toml(tmp_path / "uf.toml", {"docs": store}, "docs", namespace=NAMESPACE, write=FAST_WRITE,
                              extra=extra)
    settings = load_settings(config, env={"UUID_FORGE_SALT": DEFAULT_SALT})
    forge = Forge.from_settings(settings)
    try:
        adapter = forge.source.adapter
        ours = Record("user", forge.generator.generate_many("user", [{"email": "ours@example.com"}])[0],
                      {"email": "ours@example.com"})
        adapter.put_many([ours])  # the collection is uuid-forge's (claimed); the old documents beside
        coll = adapter._collection("user")  # type: ignore[attr-defined]
        olds = {i: ObjectId() for i in range(6)}
        data = {i: {"email": f"u{i}@example.com", "name": f"User {i}"} for i in olds}
        coll.insert_many([{"_id": olds[i], **data[i]} if layout == "data" else
                          {"_id": olds[i], "data": data[i], "key": None} for i in olds])
        m = settings.migrate
        assert not migration.plan(forge, m).stopped
        assert not migration.expand(forge, m).stopped
        assert migration.verify(forge, m).passed
        added = {"_id": olds[0]}
        coll.update_one(added, {"$set": {"loyalty_tier": "gold"}})  # another application's new field
        edited = {"_id": olds[1]}
        coll.update_one(edited, {"$set": {"name": "Edited"} if layout == "data" else {"data.name": "Edited"}})
        out = migration.contract(forge, m, max_delete="100%")
        assert out.stopped and {p["entry"] for p in out.problems} == {mask_name(str(olds[0])), mask_name(str(olds[1]))}
        assert str(olds[0]) not in json.dumps(out.to_dict())
        assert out.counts["docs/user"]["deleted"] == 4
        assert (coll.find_one(added) or {}).get("loyalty_tier") == "gold"
        assert coll.find_one(edited) is not None
        assert coll.count_documents({"_id": {"$in": [olds[i] for i in range(2, 6)]}}) == 0
        again = migration.contract(forge, m, max_delete="100%")  # the same mapping: still left, still listed
        assert again.stopped and coll.find_one(added) is not None and coll.find_one(edited) is not None
    finally:
        for entity_type in ("user", "uuid-forge.migration"):
            with contextlib.suppress(Exception):  # cleanup of this test's own collections
                forge.source.adapter.drop(entity_type, forge.prover)
        forge.close()


def test_contract_leaves_an_old_file_edited_after_verify(tmp_path: Path) -> None:
    """Old users as ``user/<n>.json`` files (the source): one is edited between verify and
    contract, another is replaced by a writer in the instant between contract's last read of it
    and its delete. Contract deletes the others; both edited files stay with their new content,
    listed (masked), and nothing is left under a private name beside them."""
    from uuid_forge import migration

    files = tmp_path / "files"
    config = write_forge_toml(tmp_path / "uf.toml", {"files": {"url": f"file://{files}", "options": {"fsync": False}}},
                              "files", namespace=NAMESPACE, write=FAST_WRITE, extra='[types.user]\nkey = ["email"]\n')
    settings = load_settings(config, env={"UUID_FORGE_SALT": DEFAULT_SALT})
    forge = Forge.from_settings(settings)
    try:
        store = forge.source.adapter
        store.put_many([Record("user", forge.generator.generate_many("user", [{"email": "ours@example.com"}])[0],
                               {"email": "ours@example.com"})])
        top = files / "user"
        for i in range(6):
            (top / f"{i}.json").write_text(json.dumps({"email": f"u{i}@example.com", "name": f"User {i}"}), "utf-8")
        m = settings.migrate
        assert not migration.plan(forge, m).stopped
        assert not migration.expand(forge, m).stopped
        assert migration.verify(forge, m).passed
        before_contract = {"email": "u0@example.com", "name": "Edited before contract"}
        (top / "0.json").write_text(json.dumps(before_contract), "utf-8")
        in_between = {"email": "u1@example.com", "name": "Edited in between"}
        read = store._read_raw  # type: ignore[attr-defined]

        def read_then_rewrite(entity_type: str, raws: list[str]) -> Any:
            found = list(read(entity_type, raws))
            if raws == ["user/1.json"]:  # the delete's own read of that file, just before it moves it
                tmp = top / ".1.json.writer.tmp"
                tmp.write_text(json.dumps(in_between), "utf-8")
                tmp.replace(top / "1.json")
            return found

        store._read_raw = read_then_rewrite  # type: ignore[attr-defined]
        try:
            out = migration.contract(forge, m, max_delete="100%")
        finally:
            del store._read_raw  # type: ignore[attr-defined]
        assert out.stopped and out.counts["files/user"]["deleted"] == 4, out.to_dict()
        assert {p["entry"] for p in out.problems} == {mask_name("user/0.json"), mask_name("user/1.json")}
        assert json.loads((top / "0.json").read_text("utf-8")) == before_contract
        assert json.loads((top / "1.json").read_text("utf-8")) == in_between
        assert not [p for p in top.iterdir() if p.name.startswith(".")]
        assert not [i for i in range(2, 6) if (top / f"{i}.json").exists()]
    finally:
        forge.close()
