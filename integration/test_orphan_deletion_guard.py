"""Issue 10, findings 1 and 5: orphan deletion never trusts an empty or short source, and a repair
running beside a live writer never deletes (or rolls back) what the writer was acknowledged for.

Real servers: PostgreSQL (the source), Redis, the filesystem and the MongoDB stand-in. Counts are
taken with the raw drivers, not through uuid-forge.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("redis", reason=driver_missing("redis"))
import pymongo
import redis
import sqlalchemy as sa

from uuid_forge import Forge
from uuid_forge.cli import main as cli_main
from uuid_forge.errors import RepairRefusedError
from uuid_forge.record import fingerprint_of

from .scaffold import FAST_WRITE, run_cli, write_forge_toml

SALT = "safety-d-salt-not-shown"
ENV = {"UUID_FORGE_SALT": SALT}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, salt=SALT)


def _config(path: Path, tmp: Path, source: str, others: dict[str, str], et: str) -> Path:
    """The type's key field (email) is declared and kept in every record's data: each store's
    entries are provably ours, so proven orphans can be deleted (issue 18)."""
    return write_forge_toml(path, {"db": source, **others}, "db", namespace="safety-d.uuid-forge.test",
                            journal=f"{tmp}/journal.sqlite3", write=FAST_WRITE,
                            extra=f'[types.{et}]\nkey = ["email"]\n')


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


class Raw:
    """Counts of one entity type per store, through each store's own driver."""

    def __init__(self, postgres_url: str, redis_url: str, files: Path, mongodb_url: str | None, et: str,
                 prefix: str = "uf_") -> None:
        self.engine = sa.create_engine(postgres_url)
        self.redis = redis.Redis.from_url(redis_url)
        self.mongo = pymongo.MongoClient(mongodb_url, serverSelectionTimeoutMS=5000) if mongodb_url else None
        self.files, self.et, self.prefix = files, et, prefix

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            exists = sa.inspect(conn).has_table(self.prefix + self.et)
            db = conn.execute(sa.text(f'SELECT count(*) FROM "{self.prefix}{self.et}"')).scalar() if exists else 0
        found = {"db": int(db or 0),
                 "cache": sum(1 for _ in self.redis.scan_iter(match=f"{self.et}:*", count=1000)),
                 "files": sum(len([n for n in names if n.endswith(".json")])
                              for _, _, names in os.walk(self.files / self.et))}
        if self.mongo is not None:
            found["docs"] = self.mongo.get_default_database().get_collection(self.et).count_documents({})
        return found

    def close(self) -> None:
        self.engine.dispose()
        self.redis.close()
        if self.mongo is not None:
            self.mongo.close()


def _cleanup(config: Path, et: str) -> None:
    with Forge.from_config(str(config), env=ENV) as forge:
        for h in forge.stores:
            h.adapter.drop(et, prover=forge.prover)  # the proven ones: all of this test's


def _write(config: Path, et: str, n: int) -> None:
    with Forge.from_config(str(config), env=ENV) as forge:
        forge.write_many((et, {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "n": i, "name": f"user {i}"})
                         for i in range(n))


@pytest.fixture
def four_stores(postgres_url: str, redis_url: str, mongodb_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """4,000 good records in PostgreSQL, Redis, files and MongoDB, and a second config whose
    source has a table_prefix typo (an empty source for that type)."""
    et = f"sd{uuid.uuid4().hex[:8]}"
    others = {"cache": redis_url, "files": f"file://{tmp_path}/files?fsync=false", "docs": mongodb_url}
    good = _config(tmp_path / "good.toml", tmp_path, postgres_url, others, et)
    typo = _config(tmp_path / "typo.toml", tmp_path, _with_query(postgres_url, "table_prefix=ufx_"), others, et)
    _write(good, et, 4000)
    raw = Raw(postgres_url, redis_url, tmp_path / "files", mongodb_url, et)
    assert raw.counts() == {"db": 4000, "cache": 4000, "files": 4000, "docs": 4000}
    yield {"et": et, "good": good, "typo": typo, "raw": raw}
    raw.close()
    _cleanup(good, et)


def test_empty_source_orphan_deletion_refused(four_stores: dict[str, Any]) -> None:
    """Finding 1: a source with a table_prefix typo holds none of the type; nothing is deleted."""
    et, typo, raw = four_stores["et"], four_stores["typo"], four_stores["raw"]
    for scope in ([], ["-e", et]):
        done = cli("audit", "-c", str(typo), *scope, "--repair", "--apply", "--delete-orphans")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and SALT not in done.stdout + done.stderr
        line = [x for x in done.stderr.splitlines() if x.startswith("uuid-forge: error:")]
        assert len(line) == 1, done.stderr
        assert "refused" in line[0] and "holds no" in line[0]
        if scope:  # every type (no -e) may also count other tests' types left in the shared test servers
            assert "--max-delete 4000" in line[0]
            assert "4000 from cache" in line[0] and "4000 from files" in line[0] and "4000 from docs" in line[0]
        assert raw.counts() == {"db": 4000, "cache": 4000, "files": 4000, "docs": 4000}
    # without --delete-orphans, -e TYPE still says loudly that the source holds none of it
    warned = cli("audit", "-c", str(typo), "-e", et, "--repair", "--json")
    assert warned.returncode == 1
    assert f"holds no '{et}' records" in warned.stderr
    payload = json.loads(warned.stdout)
    assert any("holds no" in w for w in payload["warnings"])
    # a percentage never empties a type the source lacks; the dry run shows what would be refused
    plan = cli("audit", "-c", str(typo), "-e", et, "--repair", "--delete-orphans", "--max-delete", "100%", "--json")
    body = json.loads(plan.stdout)["plan"]
    assert body["refused"] and {r["store"]: r["delete"] for r in body["rows"]} == {"cache": 4000, "files": 4000,
                                                                                     "docs": 4000}
    again = cli("audit", "-c", str(typo), "-e", et, "--repair", "--apply", "--delete-orphans", "--max-delete", "100%",
                "--json")
    assert again.returncode == 2 and "--max-delete 4000" in again.stderr
    assert json.loads(again.stdout)["plan"]["rows"][0]["refused"].startswith("the source 'db' holds no")
    assert raw.counts() == {"db": 4000, "cache": 4000, "files": 4000, "docs": 4000}
    # the API raises with the plan, and changes nothing
    with Forge.from_config(str(typo), env=ENV) as forge, pytest.raises(RepairRefusedError) as refused:
        forge.audit(et, repair=True, delete_orphans=True)
    assert {r.store for r in refused.value.plan.refused} == {"cache", "files", "docs"}
    assert raw.counts() == {"db": 4000, "cache": 4000, "files": 4000, "docs": 4000}


@pytest.fixture
def short_source(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    et = f"sd{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path / "uf.toml", tmp_path, postgres_url,
                     {"cache": redis_url, "files": f"file://{tmp_path}/files?fsync=false"}, et)
    _write(config, et, 4000)
    with Forge.from_config(str(config), env=ENV) as forge:  # the source loses 30% behind our back
        gone = [forge.id_for(et, {"email": f"u{i}@example.com"}) for i in range(0, 4000, 10) for i in (i, i + 1, i + 2)]
        forge.source.adapter.delete_many(et, gone)
    raw = Raw(postgres_url, redis_url, tmp_path / "files", None, et)
    assert raw.counts() == {"db": 2800, "cache": 4000, "files": 4000}
    yield {"et": et, "config": config, "raw": raw}
    raw.close()
    _cleanup(config, et)


def test_over_limit_orphan_deletion_refused_until_allowed(short_source: dict[str, Any]) -> None:
    """Finding 1: 1,200 orphans per store (30% of 4,000) exceed the default 10% guard."""
    et, config, raw = short_source["et"], short_source["config"], short_source["raw"]
    plan = cli("audit", "-c", str(config), "-e", et, "--repair", "--delete-orphans")
    assert plan.returncode == 1
    assert f"cache/{et}: delete 1200 orphan(s)" in plan.stdout and "REFUSED" in plan.stdout
    refused = cli("audit", "-c", str(config), "-e", et, "--repair", "--apply", "--delete-orphans")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "--max-delete 1200" in refused.stderr and "limit is 280" in refused.stderr
    assert raw.counts() == {"db": 2800, "cache": 4000, "files": 4000}
    small = cli("audit", "-c", str(config), "-e", et, "--repair", "--apply", "--delete-orphans", "--max-delete", "1199")
    assert small.returncode == 2 and raw.counts() == {"db": 2800, "cache": 4000, "files": 4000}
    allowed = cli("audit", "-c", str(config), "-e", et, "--repair", "--apply", "--delete-orphans",
                  "--max-delete", "100%", "--json")
    assert allowed.returncode == 0, allowed.stderr
    result = json.loads(allowed.stdout)
    assert result["repaired"]["cache"]["orphans_deleted"] == 1200 and result["after_repair"]["consistent"]
    assert raw.counts() == {"db": 2800, "cache": 2800, "files": 2800}


WRITER = textwrap.dedent("""
    import json, sys
    from uuid_forge import Forge
    from uuid_forge.errors import WriteError

    config, et, acks, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    batch = 150
    with Forge.from_config(config, env={"UUID_FORGE_SALT": %r}) as forge, open(acks, "a") as out:
        for start in range(0, total, batch):
            items = [(i, 1) for i in range(start, min(start + batch, total))]
            if start >= 3000:  # a second version of earlier entities: a rewrite must never roll one back
                items += [(i, 2) for i in range(start - 3000, start - 3000 + batch // 3)]
            try:
                forge.write_many([(et, {"email": f"w{i}@example.com"},
                                   {"email": f"w{i}@example.com", "n": i, "v": v, "pad": "x" * 40})
                                  for i, v in items])
            except WriteError:
                continue  # not acknowledged: not owed
            out.write("".join(f"{i} {v}\\n" for i, v in items))
            out.flush()
""") % SALT


@pytest.mark.slow
def test_repair_beside_live_writer_loses_no_acknowledged_write(postgres_url: str, redis_url: str,
                                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding 5: a writer in another process writes 20,000 entities (and second versions of
    some) while audit --repair --apply --delete-orphans runs again and again in this one."""
    et = f"sd{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path / "uf.toml", tmp_path, postgres_url,
                     {"cache": redis_url, "files": f"file://{tmp_path}/files?fsync=false"}, et)
    acks = tmp_path / "acks.txt"
    (tmp_path / "writer.py").write_text(WRITER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UUID_FORGE_")}
    total = 20_000
    writer = subprocess.Popen([sys.executable, str(tmp_path / "writer.py"), str(config), et, str(acks), str(total)],
                              env=env, stderr=subprocess.PIPE, text=True)
    audits: list[int] = []
    monkeypatch.setenv("UUID_FORGE_SALT", SALT)  # the audits in this process run under the writer's ID configuration
    try:
        deadline = time.monotonic() + 90
        # an audit of a type no store knows yet is an error (exit 2): start once the writer wrote some
        while writer.poll() is None and not (acks.exists() and acks.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.05)
        while writer.poll() is None and time.monotonic() < deadline:
            code = cli_main(["audit", "-c", str(config), "-e", et, "--repair", "--apply", "--delete-orphans",
                             "--max-delete", "100%", "--json"])
            audits.append(code)
            time.sleep(0.3)  # room for the writer on a busy machine: races need it to make progress
        _, errors = writer.communicate(timeout=60)
        assert writer.returncode == 0, errors[-2000:]
        assert len(audits) >= 3 and set(audits) <= {0, 1}, audits
        acked: dict[int, int] = {}
        for line in acks.read_text().splitlines():
            i, v = map(int, line.split())
            acked[i] = max(acked.get(i, 0), v)
        assert len(acked) == total
        with Forge.from_config(str(config), env=ENV) as forge:
            ids = {forge.id_for(et, {"email": f"w{i}@example.com"}): i for i in acked}
            source = forge.source.adapter.get_many(et, list(ids))
            assert len(source) == total
            assert all(source[ident].data["v"] == acked[i] for ident, i in ids.items())  # no version rolled back
            for h in forge.stores[1:]:
                held = h.adapter.get_many(et, list(ids))
                lost = [str(ident) for ident in ids if ident not in held]
                assert not lost, f"{h.name} lost {len(lost)} acknowledged record(s), e.g. {lost[:3]}"
                behind = [str(ident) for ident in ids
                          if fingerprint_of(held[ident].data_json) != fingerprint_of(source[ident].data_json)]
                assert not behind, f"{h.name} holds an older version of {len(behind)} record(s), e.g. {behind[:3]}"
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
        _cleanup(config, et)
