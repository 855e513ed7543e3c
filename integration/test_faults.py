"""Faults against real servers: a store killed mid-write, and the writing process killed mid-batch.

Private servers are started and killed by the tests; the shared ones are never touched. Every
check reads the stores directly with their own drivers, not through uuid-forge.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pytest.importorskip("redis", reason=driver_missing("redis"))
import psycopg
import redis

from uuid_forge import Forge, IDConfig, Namespace
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.registry import open_store
from uuid_forge.settings import WriteSettings

from .servers import PrivateRedis

pytestmark = [pytest.mark.fault, pytest.mark.slow]
N = 10_000
IDS = IDConfig(namespace=Namespace("faults.uuid-forge.test"), salt="faults")


def entities(entity_type: str, n: int = N) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    return [(entity_type, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "n": i}) for i in range(n)]


def pg_count(pg_url: str, entity_type: str) -> int:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        return conn.execute(f'SELECT count(*) FROM "uf_{entity_type}"').fetchone()[0]  # type: ignore[index]


def pg_drop(pg_url: str, entity_type: str) -> None:
    dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "uf_{entity_type}"')


def redis_count(url: str, entity_type: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{entity_type}:*", count=1000))
    finally:
        client.close()


def file_count(root: Path, entity_type: str) -> int:
    return sum(1 for _ in (root / entity_type).rglob("*.json"))


def test_redis_killed_mid_write_then_replay_completes(postgres_url: str, tmp_path: Path) -> None:
    et = f"fault{uuid.uuid4().hex[:8]}"
    with PrivateRedis(persistent=True) as cache:
        forge = Forge([StoreHandle("pg", open_store(postgres_url), source=True),
                       StoreHandle("cache", open_store(cache.url, socket_timeout=2, socket_connect_timeout=2),
                                   required=False)],
                      ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"),
                      write=WriteSettings(retries=2, backoff=0.05, batch_size=500, concurrent=True))
        batches = 0

        def kill_after_four(n: int) -> None:
            nonlocal batches
            batches += 1
            if batches == 4:
                cache.kill()

        try:
            report = forge.write_many(entities(et), progress=kill_after_four)
            cache_part = report.stores["cache"]
            assert report.ok and not report.complete
            assert cache_part.status == "journaled"
            assert cache_part.written == 2000 and cache_part.pending == N - 2000
            assert report.stores["pg"].written == N
            assert forge.pending() == {"cache": N - 2000}

            cache.start()
            t = time.perf_counter()
            replayed = forge.replay()
            recovery = time.perf_counter() - t
            assert replayed.stores["cache"].written == N - 2000 and forge.pending() == {}
            assert redis_count(cache.url, et) == N
            assert pg_count(postgres_url, et) == N
            assert forge.audit(et).consistent
            print(f"redis killed after 2000/{N}: recovered {N - 2000} by replay in {recovery:.2f}s")
        finally:
            forge.close()
            pg_drop(postgres_url, et)


CHILD = textwrap.dedent('''
    import sys
    from uuid_forge import Forge, IDConfig, Namespace
    from uuid_forge.forge import StoreHandle
    from uuid_forge.journal import Journal
    from uuid_forge.registry import open_store
    from uuid_forge.settings import WriteSettings
    pg, rd, files, journal, et, n = sys.argv[1:7]
    forge = Forge([StoreHandle("pg", open_store(pg), source=True), StoreHandle("redis", open_store(rd)),
                   StoreHandle("files", open_store(files))],
                  ids=IDConfig(namespace=Namespace("faults.uuid-forge.test"), salt="faults"),
                  journal=Journal(journal), write=WriteSettings(batch_size=250))
    forge.write_many([(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "n": i}) for i in range(int(n))])
    print("finished without being killed")
''')


def test_writer_sigkilled_mid_batch_then_replay_completes(postgres_url: str, redis_url: str, tmp_path: Path) -> None:
    et = f"crash{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    journal = tmp_path / "journal.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", CHILD, postgres_url, redis_url, f"file://{files}", str(journal),
                              et, str(N)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill once a few batches are in, whatever batch is under way
            time.sleep(0.05)
            try:
                if pg_count(postgres_url, et) >= 1500:
                    break
            except psycopg.errors.UndefinedTable:
                continue
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert child.returncode == -signal.SIGKILL, child.stdout.read()  # type: ignore[union-attr]

        before = (pg_count(postgres_url, et), redis_count(redis_url, et), file_count(files, et))
        assert min(before) < N  # it really died part-way
        forge = Forge([StoreHandle("pg", open_store(postgres_url), source=True),
                       StoreHandle("redis", open_store(redis_url)), StoreHandle("files", open_store(f"file://{files}"))],
                      ids=IDS, journal=Journal(journal))
        try:
            pending = forge.pending()
            assert pending, "the journal should hold the batch that was cut off"
            t = time.perf_counter()
            forge.replay()
            print(f"writer killed with {before} in (pg, redis, files): replay of {pending} in "
                  f"{time.perf_counter() - t:.2f}s")
            assert forge.pending() == {}
            after = (pg_count(postgres_url, et), redis_count(redis_url, et), file_count(files, et))
            assert after[0] == after[1] == after[2] >= before[0]  # every store holds all the source holds
            assert forge.audit(et).consistent
            # the writer never got past this batch: write the rest, as a restarted job would
            forge.write_many(entities(et))
            assert (pg_count(postgres_url, et), redis_count(redis_url, et), file_count(files, et)) == (N, N, N)
            assert forge.audit(et).consistent
        finally:
            for h in forge.stores[1:2]:
                h.adapter.delete_many(et, [i for i, _ in h.adapter.scan(et)])
            forge.close()
    finally:
        if child.poll() is None:
            child.kill()
        pg_drop(postgres_url, et)
