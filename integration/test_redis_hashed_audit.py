"""Redis audited by hashes computed on the server (issue 20), PostgreSQL the source: a script hashes
each SCAN page's values (sha1, the only hash Redis scripts have; pgcrypto's ``digest`` on the
PostgreSQL side), the read-once buckets hold hashes, agreeing ranges are settled without reading a
record, and differing ranges are cut down and read. Every tamper kind gives the record path's own
report; a hand-reformatted value is no finding; without pgcrypto the store is read record by record."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaffold import driver_missing

redis = pytest.importorskip("redis", reason=driver_missing("redis"))
import sqlalchemy as sa
from uuid_forge.adapters.redis import RedisAdapter

from uuid_forge import Forge, IDConfig, Namespace, onepass, open_store
from uuid_forge import compare as compare_module
from uuid_forge.forge import StoreHandle
from uuid_forge.report import AuditReport

from . import provision
from .scaffold import forget_redis_type, plant_redis_tampers, redis_value
from .test_redis_onepass import _seen, counting_walks

IDS = IDConfig(namespace=Namespace("redishash.uuid-forge.test"), salt="redishash")
N = 6000


def _forge(source_url: str, redis_url: str) -> Forge:
    return Forge([StoreHandle("postgres", open_store(source_url), source=True),
                  StoreHandle("redis", open_store(redis_url))], ids=IDS, journal=None)


def _items(et: str, n: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(et, {"email": f"u{i}@example.com"}, {"name": f"Üser {i}", "n": i, "tags": ["a", "é"]}) for i in range(n)]


def _plant(f: Forge, et: str, raw: Any) -> dict[str, set[str]]:
    """One or more of every tamper kind, planted in Redis (and one in the source); what each is."""
    records = f.records(_items(et, N))
    want = plant_redis_tampers(raw, et, records)
    by_id = sorted(records, key=lambda r: r.id)  # two values swapped between neighbours: counts agree, sums not
    a, b = by_id[100], by_id[101]
    raw.set(f"{et}:{a.id}", redis_value(b))
    raw.set(f"{et}:{b.id}", redis_value(a))
    want["stale"] |= {str(a.id), str(b.id)}
    for g in [uuid.uuid4() for _ in range(2)]:  # extra keys: orphans, not provable (no key fields)
        raw.set(f"{et}:{g}", '{"ghost":1}')
    assert f.source.adapter.delete_many(et, [records[10].id]) == 1  # deleted in the source only: an orphan in Redis
    return want


@pytest.fixture
def planted(pgcrypto_url: str, redis_url: str) -> Iterator[tuple[Forge, str, dict[str, set[str]]]]:
    et = f"rh{uuid.uuid4().hex[:8]}"
    f = _forge(pgcrypto_url, redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        assert f.write_many(_items(et, N)).complete
        yield f, et, _plant(f, et, raw)
    finally:
        raw.close()
        f.source.adapter.drop(et)
        forget_redis_type(redis_url, et)
        f.close()


def _kinds(report: AuditReport) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for x in report.findings:
        if x.store == "redis":
            out.setdefault(x.kind, set()).add(x.id)
    return out


#: how the one pass holds Redis's hashes: summed per cell on the server (uuid_forge.cellsums, the
#: default), or each key's hash in buckets (a store without cell sums), in memory or spilled to files
PATHS = {"cells": ["sums", "cells"], "buckets-in-memory": ["pages"], "buckets-spilled": ["pages"]}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_tamper_is_found_through_the_hashed_path(planted: tuple[Forge, str, dict[str, set[str]]],
                                                       monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    f, et, want = planted
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 2000)  # 4 partitions, each cut into 16 ranges when it differs
    if path != "cells":
        monkeypatch.setattr(RedisAdapter, "sums_cells", lambda *args: False)
    if path == "buckets-spilled":
        monkeypatch.setattr(onepass, "MEMORY_ITEMS", 5)
    records = f.audit(et, hashed=False)
    with monkeypatch.context() as m:
        walks = counting_walks(m)
        hashed = f.audit(et)
    assert walks == PATHS[path]  # read once; summed per cell, the differing cells listed once more
    assert _seen(hashed) == _seen(records)
    kinds = _kinds(hashed)
    for kind, ids in want.items():
        assert kinds[kind] == ids, kind
    assert hashed.stores["redis"]["foreign"] == 2 and hashed.stores["redis"]["unproven"] == 3  # 2 ghosts, 1 deleted
    assert hashed.stores["redis"]["ok"] == N - 8 - 2 - 1 - 1  # the reformatted value is ok
    details = {x.id: x.detail for x in hashed.findings if x.kind == "stale"}
    assert sum(d.startswith("unreadable") for d in details.values()) == 2  # the wrong type, the value no JSON
    stats = hashed.hashed["redis"]
    assert stats["hashed_records"] > N * 0.5 and 0 < stats["read_records"] < N * 0.5, stats
    if path == "cells":  # 65,536 cells: each tamper costs the read of its cell's few keys, not a range's
        assert stats["read_records"] <= 30 and stats["read_ranges"] <= 20, stats
    assert records.hashed == {}


def test_a_consistent_audit_reads_no_record(pgcrypto_url: str, redis_url: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    et = f"rh{uuid.uuid4().hex[:8]}"
    f = _forge(pgcrypto_url, redis_url)
    n = 20_000
    try:
        assert f.write_many(_items(et, n)).complete
        reads: list[int] = []
        get = type(f.stores[1].adapter).get_many

        def counted(self: Any, entity_type: str, ids: list[uuid.UUID]) -> Any:
            reads.append(len(ids))
            return get(self, entity_type, ids)

        monkeypatch.setattr(type(f.stores[1].adapter), "get_many", counted)
        walks = counting_walks(monkeypatch)
        report = f.audit(et)
        assert walks == ["sums"]  # one walk, summed on the server; nothing to list again
        assert report.consistent and report.stores["redis"]["ok"] == n
        assert report.hashed["redis"]["hashed_records"] == n and report.hashed["redis"]["read_records"] == 0
        assert sum(reads) == 0  # not one Redis value read back
    finally:
        f.source.adapter.drop(et)
        forget_redis_type(redis_url, et)
        f.close()


def test_no_hash_turns_it_off(planted: tuple[Forge, str, dict[str, set[str]]]) -> None:
    f, et, _ = planted
    f.audit_hashed = False  # [audit] hashed = false
    assert f.audit(et).hashed == {}


@pytest.fixture
def bare_postgres(postgres_url: str) -> Iterator[str]:
    """A second test database without pgcrypto (created, dropped after)."""
    url = sa.engine.make_url(postgres_url)
    name = f"{url.database}2"
    other = url.set(database=name).render_as_string(hide_password=False)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    try:
        provision.ensure_sql_database(other)
        yield other
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_without_pgcrypto_redis_is_read_record_by_record(bare_postgres: str, redis_url: str) -> None:
    et = f"rh{uuid.uuid4().hex[:8]}"
    f = _forge(bare_postgres, redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        assert f.write_many(_items(et, N)).complete
        assert f.source.adapter.digest_algorithms(et) == ("md5",)
        want = _plant(f, et, raw)
        fallback, records = f.audit(et), f.audit(et, hashed=False)
        assert fallback.hashed == {}
        assert _seen(fallback) == _seen(records)
        kinds = _kinds(fallback)
        for kind, ids in want.items():
            assert kinds[kind] == ids, kind
    finally:
        raw.close()
        f.source.adapter.drop(et)
        forget_redis_type(redis_url, et)
        f.close()


def test_a_mariadb_source_hashes_by_sha1_too(mariadb_url: str, redis_url: str) -> None:
    """MariaDB's SHA1() gives what the Redis script gives: settled by hashes, a drift found."""
    et = f"rh{uuid.uuid4().hex[:8]}"
    f = _forge(mariadb_url, redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        assert f.write_many(_items(et, 3000)).complete
        clean = f.audit(et)
        assert clean.consistent and clean.hashed["redis"]["hashed_records"] == 3000
        victim = f.records(_items(et, 3000))[17]
        raw.set(f"{et}:{victim.id}", json.dumps({**victim.data, "n": -1}))
        hashed, records = f.audit(et), f.audit(et, hashed=False)
        assert _seen(hashed) == _seen(records)
        assert [(x.id, x.kind) for x in hashed.findings] == [(str(victim.id), "stale")]
        assert hashed.hashed["redis"]["read_records"] < 1000
    finally:
        raw.close()
        f.source.adapter.drop(et)
        forget_redis_type(redis_url, et)
        f.close()
