"""Issue 10, findings 4 and 6, on real servers: replay never resurrects an old version, and one
poison record neither blocks a store nor passes for an outage.

Stores that must die are private, killable instances (integration/servers.py); the shared
servers are only written to, in this helper's own databases. Versions are read back with each
store's own driver (psycopg, redis-py, the file on disk).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pytest.importorskip("pymysql", reason=driver_missing("pymysql"))
pytest.importorskip("redis", reason=driver_missing("redis"))
import psycopg
import pymysql
import redis
from sqlalchemy.engine import make_url

from uuid_forge import Forge, IDConfig, Namespace
from uuid_forge.cli import main
from uuid_forge.errors import WriteError
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.registry import open_store
from uuid_forge.settings import WriteSettings

from .scaffold import FAST_WRITE, make_forge, write_forge_toml
from .servers import PrivatePostgres, PrivateRedis

pytestmark = [pytest.mark.fault]
IDS = IDConfig(namespace=Namespace("safety-e.uuid-forge.test"), salt="safety-e")
FAST = WriteSettings(retries=1, backoff=0.05, batch_size=100)
N = 5


def people(version: int, n: int = N, entity_type: str = "person") -> list[tuple[str, dict[str, str], dict[str, Any]]]:
    return [(entity_type, {"email": f"p{i}@example.com"}, {"name": f"Person {i}", "v": version}) for i in range(n)]


def pg_versions(url: str, table: str) -> set[int]:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(f'SELECT data FROM "{table}"').fetchall()
    return {(r[0] if isinstance(r[0], dict) else json.loads(r[0]))["v"] for r in rows}


def redis_versions(url: str, entity_type: str) -> set[int]:
    client = redis.Redis.from_url(url)
    try:
        found = set()
        for key in client.scan_iter(match=f"{entity_type}:*", count=1000):
            found.add(json.loads(client.get(key))["v"])  # type: ignore[arg-type]  (the default layout: a JSON string)
        return found
    finally:
        client.close()


def file_versions(root: Path, entity_type: str) -> set[int]:
    found = set()
    for path in (root / entity_type).rglob("*.json"):
        doc = json.loads(path.read_text())
        found.add((doc.get("data") or doc)["v"])
    return found


def redis_clear(url: str, entity_type: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{entity_type}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def pg_drop(url: str, table: str) -> None:
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')


# ------------------------------------------------------------------ finding 4: v1 / v2 x three roles


def test_replay_after_source_outage_keeps_v2_everywhere(redis_url: str, tmp_path: Path) -> None:
    """Source down: v1 -> WriteError; source back; v2 ok; replay: every store, the source too, holds v2."""
    et = f"srcv{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    with PrivatePostgres() as private:
        forge = Forge([StoreHandle("pg", open_store(private.url, connect_timeout=2), source=True),
                       StoreHandle("cache", open_store(redis_url)),
                       StoreHandle("files", open_store(f"file://{files}"))],
                      ids=IDS, journal=Journal(tmp_path / "j.sqlite3"), write=FAST)
        try:
            forge.write_many(people(0, entity_type=et))  # the table exists, with v0
            private.kill()
            with pytest.raises(WriteError):
                forge.write_many(people(1, entity_type=et))
            left_after_failure = forge.pending()
            private.start()
            forge.write_many(people(2, entity_type=et))
            forge.replay()
            assert forge.pending() == {}
            assert pg_versions(private.url, f"uf_{et}") == {2}
            assert redis_versions(redis_url, et) == {2}
            assert file_versions(files, et) == {2}
            assert left_after_failure == {}  # reported failed: nothing kept to apply behind the caller's back
            assert forge.audit(et).consistent
        finally:
            forge.close()
            redis_clear(redis_url, et)


def test_replay_after_required_store_outage_keeps_v2(postgres_url: str, tmp_path: Path) -> None:
    """A required store down during v1: WriteError; back; v2 ok; replay: the store holds v2, not v1."""
    et = f"reqv{uuid.uuid4().hex[:8]}"
    with PrivateRedis() as cache:
        forge = Forge([StoreHandle("pg", open_store(postgres_url), source=True),
                       StoreHandle("cache", open_store(cache.url, socket_timeout=2, socket_connect_timeout=2))],
                      ids=IDS, journal=Journal(tmp_path / "j.sqlite3"), write=FAST)
        try:
            cache.kill()
            with pytest.raises(WriteError):
                forge.write_many(people(1, entity_type=et))
            assert forge.pending() == {"cache": N}
            cache.start()
            forge.write_many(people(2, entity_type=et))
            forge.replay()
            assert forge.pending() == {}
            assert pg_versions(postgres_url, f"uf_{et}") == {2}
            assert redis_versions(cache.url, et) == {2}
            assert forge.audit(et).consistent
        finally:
            forge.close()
            pg_drop(postgres_url, f"uf_{et}")


def test_replay_after_optional_store_outage_keeps_v2(postgres_url: str, tmp_path: Path) -> None:
    """An optional store down during v1: ok, journaled; back; v2 ok; replay: the store holds v2."""
    et = f"optv{uuid.uuid4().hex[:8]}"
    with PrivateRedis() as cache:
        forge = Forge([StoreHandle("pg", open_store(postgres_url), source=True),
                       StoreHandle("cache", open_store(cache.url, socket_timeout=2, socket_connect_timeout=2),
                                   required=False)],
                      ids=IDS, journal=Journal(tmp_path / "j.sqlite3"), write=FAST)
        try:
            cache.kill()
            report = forge.write_many(people(1, entity_type=et))
            assert report.ok and report.stores["cache"].status == "journaled"
            cache.start()
            forge.write_many(people(2, entity_type=et))
            forge.replay()
            assert forge.pending() == {}
            assert pg_versions(postgres_url, f"uf_{et}") == {2}
            assert redis_versions(cache.url, et) == {2}
            assert forge.audit(et).consistent
        finally:
            forge.close()
            pg_drop(postgres_url, f"uf_{et}")


# ------------------------------------------------------------------ finding 6: poison records


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep (MariaDB's JSON_VALID refuses 32: its limit)."""
    d: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        d = {"x": d}
    return d


def mariadb_count(url: str, table: str) -> int:
    u = make_url(url)
    conn = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                           database=u.database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            return int(cur.fetchone()[0])  # type: ignore[index]
    finally:
        conn.close()


def mariadb_drop(url: str, table: str) -> None:
    u = make_url(url)
    conn = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, password=u.password or "",
                           database=u.database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
    finally:
        conn.close()


POISONS = {
    "pg-jsonb-nul": ("postgres", {"data_type": "jsonb"}, lambda: {"name": "a\u0000b", "v": 1}),
    "mariadb-nested-32": ("mariadb", {}, lambda: {"doc": nested(32), "v": 1}),
    "mariadb-20mb": ("mariadb", {}, lambda: {"blob": "x" * (20 * 1024 * 1024), "v": 1}),
}


def _store_url(kind: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("postgres_url" if kind == "postgres" else "mariadb_url"))


def _count(kind: str, url: str, table: str) -> int:
    if kind == "postgres":
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])  # type: ignore[index]
    return mariadb_count(url, table)


def _drop(kind: str, url: str, table: str) -> None:
    (pg_drop if kind == "postgres" else mariadb_drop)(url, table)


@pytest.mark.parametrize("case", list(POISONS))
def test_poison_record_is_a_dead_letter_and_replay_is_not_stuck(case: str, tmp_path: Path,
                                                                 request: pytest.FixtureRequest) -> None:
    """One record the store always rejects, in a batch of 40: written live, the 39 others land and
    WriteError names the one; replayed after a crash, the same: pending reaches 0, the bad one is
    a dead letter with the store's own reason, and nothing says "unreachable"."""
    kind, options, poison = POISONS[case]
    url = _store_url(kind, request)
    et = f"poison{uuid.uuid4().hex[:8]}"
    table = f"uf_{et}"
    items = people(1, 40, et)
    items[13][2].update(poison())
    source = f"sqlite:///{tmp_path / 'source.db'}"
    forge = make_forge(tmp_path, ("src", source), ("db", open_store(url, **options)), ids=IDS, journal="j.sqlite3",
                       write=FAST)
    bad = forge.id_for(et, items[13][1])
    try:
        with pytest.raises(WriteError) as info:
            forge.write_many(items)
        text = str(info.value)
        assert str(bad) in text and "unreachable" not in text
        report = info.value.report
        assert report.stores["db"].dead_letters == 1 and report.stores["db"].written == 39
        assert report.stores["db"].retries == 0  # a rejection is not retried as an outage
        assert _count(kind, url, table) == 39 and forge.pending() == {}
        assert forge.journal is not None
        [dead] = forge.journal.dead_letters()
        assert dead.store == "db" and dead.id == bad and "unreachable" not in dead.reason
        assert "x" * 100 not in dead.reason and "\u0000" not in dead.reason  # the store's reason, not the data
        forge.journal.drop_dead_letters()  # start the replay case clean

        # the same batch owed after a writer crashed (intent recorded, nothing written): replay
        forge.stores[1].adapter.delete_many(et, [forge.id_for(et, k) for _, k, _ in items])
        assert _count(kind, url, table) == 0
        forge.journal.record_intent(forge.records(items), ["db"])
        assert forge.pending() == {"db": 40}
        replayed = forge.replay()
        assert forge.pending() == {}  # not stuck
        assert replayed.stores["db"].written == 39 and replayed.stores["db"].dead_letters == 1
        assert _count(kind, url, table) == 39
        assert [d.id for d in forge.journal.dead_letters("db")] == [bad]
    finally:
        forge.close()
        _drop(kind, url, table)


def test_repair_rewrites_the_others_past_a_poison_record(postgres_url: str, tmp_path: Path) -> None:
    """audit --repair: a record the store rejects no longer fails the repair of the others."""
    et = f"repair{uuid.uuid4().hex[:8]}"
    src = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    forge = make_forge(tmp_path, ("src", src), ("db", open_store(postgres_url, data_type="jsonb")), ids=IDS,
                       journal="j.sqlite3", write=FAST)
    items = people(1, 30, et)
    items[4][2]["name"] = "nul\u0000here"
    try:
        src.put_many(forge.records(items))  # the source holds all 30; the store none
        report = forge.audit(et, repair=True)
        assert _count("postgres", postgres_url, f"uf_{et}") == 29
        assert any("rejected 1" in e and str(forge.id_for(et, items[4][1])) in e for e in report.repair_errors), \
            report.repair_errors
    finally:
        forge.close()
        pg_drop(postgres_url, f"uf_{et}")


def test_journal_cli_on_a_mariadb_dead_letter(mariadb_url: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """uuid-forge journal: the summary, the list (no data), retry (replay makes it a dead letter
    again, attempts 2, not stuck) and drop."""
    et = f"jcli{uuid.uuid4().hex[:8]}"
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"src": f"sqlite:///{tmp_path}/source.db",
                                                             "maria": mariadb_url},
                              "src", namespace="safety-e.uuid-forge.test", journal=f"{tmp_path}/j.sqlite3", write=FAST_WRITE)
    items = [{"entity_type": et, "key": {"email": f"p{i}@example.com"}, "data": {"v": 1, "secret": "SSN-078-05-1120"}}
             for i in range(10)]
    items[6]["data"]["doc"] = nested(33)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps(i) + "\n" for i in items))
    try:
        assert main(["write", "-c", str(config), "--jsonl", str(jsonl), "--json"]) == 2
        capsys.readouterr()
        assert mariadb_count(mariadb_url, f"uf_{et}") == 9
        assert main(["journal", "-c", str(config), "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)["stores"]
        assert summary["maria"] == {"role": "required", "pending": 0, "dead_letters": 1}
        assert main(["journal", "dead-letters", "-c", str(config), "--json"]) == 0
        out = capsys.readouterr().out
        [row] = json.loads(out)
        assert row["store"] == "maria" and row["entity_type"] == et and "4025" in row["reason"]
        assert "SSN-078" not in out and "leaf" not in out  # never the data
        assert main(["journal", "dead-letters", "-c", str(config)]) == 0 and row["id"] in capsys.readouterr().out
        assert main(["journal", "retry", "-c", str(config), "--store", "maria"]) == 0
        assert "1 dead letter(s) back" in capsys.readouterr().out
        assert main(["replay", "-c", str(config), "--json"]) == 0  # not stuck: a dead letter again
        assert json.loads(capsys.readouterr().out)["pending_after"] == {}
        assert main(["journal", "dead-letters", "-c", str(config), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)[0]["attempts"] == 2
        assert main(["journal", "drop", "-c", str(config), "--all"]) == 2
        assert "--yes" in capsys.readouterr().err
        assert main(["journal", "drop", "-c", str(config), "--store", "mariadb", "--all", "--yes"]) == 2
        assert "'mariadb'" in capsys.readouterr().err  # a typo is named, not taken for "nothing to drop"
        assert main(["journal", "drop", "-c", str(config), "--all", "--yes"]) == 0
        assert "1 dead letter(s) dropped" in capsys.readouterr().out
        assert main(["journal", "-c", str(config), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["stores"]["maria"]["dead_letters"] == 0
    finally:
        mariadb_drop(mariadb_url, f"uf_{et}")


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_unknown_database_is_a_config_error_not_an_outage(kind: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest) -> None:
    """A store that refuses this client (unknown database) is not retried, keeps its part in the
    journal for a replay after the fix, and the report gives the store's own reason."""
    url = _store_url(kind, request)
    wrong = make_url(url).set(database="uf_no_such_db_e").render_as_string(hide_password=False)
    forge = make_forge(tmp_path, ("src", f"sqlite:///{tmp_path / 'source.db'}"), ("db", wrong), ids=IDS,
                       journal="j.sqlite3", write=WriteSettings(retries=3, backoff=0.05))
    forge._sleep = lambda s: None
    try:
        with pytest.raises(WriteError) as info:
            forge.write_many(people(1, 10, "cfg"))
        part = info.value.report.stores["db"]
        assert part.retries == 0 and part.pending == 10 and forge.pending() == {"db": 10}
        text = str(info.value)
        assert "unreachable" not in text and "refused by the store" in text
        assert ("does not exist" if kind == "postgres" else "1049") in text
    finally:
        forge.close()
