"""Redis read once per audit (uuid_forge.onepass), on the real servers: PostgreSQL the source.

SCAN walks the whole keyspace for any ID range, so the audit reads Redis once, buckets its keys
by partition (in memory, or spilled to a private file past a budget) and compares partition by
partition. It must give exactly the report the per-partition scans gave, for every tamper kind,
with many partitions and with a forced spill, and SCAN must walk the keyspace once per audit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaffold import driver_missing

redis = pytest.importorskip("redis", reason=driver_missing("redis"))
from uuid_forge.adapters.redis import RedisAdapter

from uuid_forge import Forge, IDConfig, Namespace, onepass, open_store
from uuid_forge import compare as compare_module
from uuid_forge import partial as partial_module
from uuid_forge.forge import StoreHandle
from uuid_forge.report import AuditReport

from .scaffold import forget_redis_type, plant_redis_tampers

IDS = IDConfig(namespace=Namespace("onepass.uuid-forge.test"), salt="onepass")
N = 600


@pytest.fixture
def planted(postgres_url: str, redis_url: str) -> Iterator[tuple[Forge, str, dict[str, set[str]]]]:
    """A source and a Redis store with one or more of every tamper kind planted in Redis."""
    et = f"onep{uuid.uuid4().hex[:8]}"
    f = Forge([StoreHandle("postgres", open_store(postgres_url), source=True),
               StoreHandle("redis", open_store(redis_url))], ids=IDS, journal=None)
    raw = redis.Redis.from_url(redis_url)
    try:
        items = [(et, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "n": i, "tags": ["a"]})
                 for i in range(N)]
        assert f.write_many(items).complete
        records = f.records(items)
        want = plant_redis_tampers(raw, et, records)
        raw.rename(f"{et}:{records[10].id}", f"{et}:{records[10].id.hex}")  # another wrong-form key
        want["malformed"].add(str(records[10].id))
        ghosts = [uuid.uuid4() for _ in range(4)]  # orphans, not provable (no key): unproven
        for g in ghosts[:3]:
            raw.set(f"{et}:{g}", '{"ghost":1}')
        raw.set(f"{et}:{str(ghosts[3]).upper()}", '{"ghost":2}')  # an orphan under a wrong-form name
        stray = f.records([(et, {"email": "stray@example.com"}, {"n": -1})])[0]  # ours, not in the source
        raw.set(f"{et}:{str(stray.id).upper()}", '{"n":-1}')  # an orphan under a wrong-form name: unproven
        yield f, et, want
    finally:
        raw.close()
        f.source.adapter.drop(et)
        forget_redis_type(redis_url, et)
        f.close()


def _seen(report: AuditReport) -> tuple[Any, ...]:
    findings = sorted((x.store, x.kind, x.id, x.detail, x.raw or "", x.fields) for x in report.findings)
    samples = {s: sorted(v) for s, v in report.foreign_samples.items()}
    return ({n: dict(c) for n, c in report.stores.items()}, findings, samples, report.partitions)


def counting_walks(m: pytest.MonkeyPatch) -> list[str]:
    """How SCAN walks the keyspace from now on, one entry per walk: ``pages`` (names and their
    fingerprints or hashes, per partition or once), ``sums`` (hashes summed per cell by the server,
    uuid_forge.cellsums), ``cells`` (the IDs of the cells that differed, listed by the server)."""
    walks: list[str] = []
    pages, sums, cells = RedisAdapter._pages, RedisAdapter.scan_cell_sums, RedisAdapter.scan_cells

    def counted_pages(self: RedisAdapter, entity_type: str, partition: Any, read: Any) -> Any:
        walks.append("pages")
        return pages(self, entity_type, partition, read)

    def counted_sums(self: RedisAdapter, *args: Any) -> Any:
        result = sums(self, *args)
        if result is not None:
            walks.append("sums")
        return result

    def counted_cells(self: RedisAdapter, *args: Any) -> Any:
        walks.append("cells")
        return cells(self, *args)

    m.setattr(RedisAdapter, "_pages", counted_pages)
    m.setattr(RedisAdapter, "scan_cell_sums", counted_sums)
    m.setattr(RedisAdapter, "scan_cells", counted_cells)
    return walks


def _audit(f: Forge, et: str, monkeypatch: pytest.MonkeyPatch, one_pass: bool,
           hashed: bool = True) -> tuple[AuditReport, list[str]]:
    """The audit, and how SCAN walked the keyspace (:func:`counting_walks`; hashes computed by the
    server where the source has sha1: integration/test_redis_hashed_audit.py)."""
    with monkeypatch.context() as m:
        walks = counting_walks(m)
        m.setattr(RedisAdapter, "whole_scan", one_pass)
        report = f.audit(et, hashed=hashed)
    return report, walks


@pytest.mark.parametrize("hashed", [False, True], ids=["records", "hashed-if-pgcrypto"])
@pytest.mark.parametrize("budget", [None, 5], ids=["in-memory", "spilled"])
def test_one_pass_gives_the_per_partition_report(planted: tuple[Forge, str, dict[str, set[str]]],
                                                  monkeypatch: pytest.MonkeyPatch, budget: int | None,
                                                  hashed: bool) -> None:
    f, et, want = planted
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 40)  # 600 source records: 16 partitions
    spills: list[int] = []
    if budget is not None:
        monkeypatch.setattr(onepass, "MEMORY_ITEMS", budget)
    finish = onepass.Buckets.finish

    def watched(self: onepass.Buckets) -> onepass.Buckets:
        spills.append(self.spill is not None)
        return finish(self)

    monkeypatch.setattr(onepass.Buckets, "finish", watched)
    old, old_walks = _audit(f, et, monkeypatch, one_pass=False)
    new, new_walks = _audit(f, et, monkeypatch, one_pass=True, hashed=hashed)

    assert old.partitions == 16 and old_walks == ["pages"] * 16
    # SCAN reads the keyspace once per audit, not once per partition; summed per cell by the server,
    # a second walk lists only the IDs of the cells that differ
    assert new_walks in (["pages"], ["sums", "cells"])
    assert hashed or new_walks == ["pages"]
    assert spills == ([budget is not None] if new_walks == ["pages"] else [])
    assert _seen(new) == _seen(old)
    for kind, ids in want.items():
        assert {x.id for x in new.findings if x.store == "redis" and x.kind == kind} == ids, kind
    # the wrong-form ghost decodes to a UUID version the scheme never makes: foreign, not ours
    assert new.stores["redis"]["foreign"] == 3
    assert new.stores["redis"]["unproven"] == 4  # the orphans, none provable
    assert new.stores["redis"]["ok"] == N - 6 - 2 - 2  # the reformatted value is ok
    details = {x.id: x.detail for x in new.findings if x.kind == "stale"}
    assert any(d.startswith("unreadable") for d in details.values())


def test_partition_tasks_leave_redis_to_one_task_with_the_same_report(
        planted: tuple[Forge, str, dict[str, set[str]]], monkeypatch: pytest.MonkeyPatch) -> None:
    """The tasks worker processes and Celery run (uuid_forge.partial.plan, one per partition):
    Redis is left out of each and read once by one more task, and the merged report is the
    single-process one."""
    f, et, _ = planted
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 40)
    single, _ = _audit(f, et, monkeypatch, one_pass=True)
    stores = compare_module.answering(f)
    tasks = partial_module.plan(stores, [et])
    assert len(tasks) == 17 and [t for t in tasks if "only" in t] == [
        {"pos": 0, "entity_type": et, "within": [0, 1], "parts": [[i, 16] for i in range(16)], "only": ["redis"]}]
    walks = counting_walks(monkeypatch)
    # the tasks in reverse, the one-pass task twice (a re-delivered task after its worker died)
    merged = f.audit(et, planned=[*reversed(tasks), tasks[-1]])
    # once per run of the one-pass task, never per partition (summed per cell: and the differing cells listed)
    assert walks in (["pages"] * 2, ["sums", "cells"] * 2)
    assert _seen(merged) == _seen(single)
    # in the same order too: a single pass merges each partition's stores in the order the tasks sort by
    assert [(x.store, x.kind, x.id) for x in merged.findings] == [(x.store, x.kind, x.id) for x in single.findings]
    assert merged.foreign_samples == single.foreign_samples
    assert {k: v for k, v in merged.stores["redis"].items() if v} == {
        k: v for k, v in single.stores["redis"].items() if v}
