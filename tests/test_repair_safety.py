"""Repair safety on in-process stores: the deletion guard, re-checked findings, proven orphans.

The "writer" here is a fake: a source adapter that writes a record at a chosen moment, so each
race is exact and repeatable (the real concurrent writer is in integration/test_orphan_deletion_guard.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace, Record
from uuid_forge.errors import ConfigError, RepairRefusedError
from uuid_forge.repair import DeleteLimit

from .fakes import entities
from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("repair.test"), salt="s")


class FakeRacingSource(MemoryAdapter):
    """A memory source that runs ``hook(call_number)`` before each get_many of entity data: a
    writer's timing. Reads of uuid-forge's own reserved types (the ID-configuration marker) are
    not counted, so the race stays on the repair's own reads."""

    hook: Callable[[int], None] | None = None
    calls = 0

    def get_many(self, entity_type: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Record]:
        if entity_type.startswith("uuid-forge."):
            return super().get_many(entity_type, ids)
        self.calls += 1
        if self.hook is not None:
            self.hook(self.calls)
        return super().get_many(entity_type, ids)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Forge, FakeRacingSource, MemoryAdapter]:
    src, replica = FakeRacingSource(), MemoryAdapter()
    forge = make_forge(tmp_path, ("src", src), ("replica", replica), ids=IDS, journal="j.sqlite3")
    forge.write_many(entities(100))
    return forge, src, replica


@pytest.mark.parametrize(("text", "limit", "source", "allowed"), [
    (None, DeleteLimit(percent=10), 100, 10), ("10%", DeleteLimit(percent=10), 95, 10),
    ("100%", DeleteLimit(percent=100), 0, 0), ("0%", DeleteLimit(percent=0), 100, 0),
    ("25", DeleteLimit(count=25), 0, 25), (7, DeleteLimit(count=7), None, 7),
    ("10%", DeleteLimit(percent=10), None, None),
])
def test_delete_limit_parse_and_limit(text: str | int | None, limit: DeleteLimit, source: int | None,
                                      allowed: int | None) -> None:
    assert DeleteLimit.parse(text) == limit and limit.limit(source) == allowed


@pytest.mark.parametrize("bad", ["-1", "101%", "ten", "%", "nan%", -3, True])
def test_delete_limit_rejects_nonsense(bad: str | int) -> None:
    with pytest.raises(ConfigError, match="max.delete"):
        DeleteLimit.parse(bad)


def test_guard_refuses_emptying_a_type_the_source_lacks(setup: tuple[Forge, FakeRacingSource, MemoryAdapter]) -> None:
    forge, src, replica = setup
    src.drop("user")
    plan = forge.audit("user", repair=True, dry_run=True, delete_orphans=True).plan
    assert plan.refused and plan.rows[0].delete == 100 and "holds no 'user'" in plan.message()
    with pytest.raises(RepairRefusedError, match="--max-delete 100") as refused:
        forge.audit("user", repair=True, delete_orphans=True, max_delete="100%")
    assert refused.value.plan.rows[0].source_count == 0
    assert replica.count("user") == 100
    warned = forge.audit("user")
    assert any("holds no 'user' records" in w for w in warned.warnings)
    done = forge.audit("user", repair=True, delete_orphans=True, max_delete=100)  # an explicit number allows it
    assert done.repaired["replica"]["orphans_deleted"] == 100 and replica.count("user") == 0


def test_guard_limit_is_per_store_and_type(setup: tuple[Forge, FakeRacingSource, MemoryAdapter]) -> None:
    forge, src, replica = setup
    ids = [r[0] for r in replica.scan("user")]
    src.delete_many("user", ids[:12])  # 12 orphans, the source keeps 88: 10% allows 9
    with pytest.raises(RepairRefusedError, match="limit is 9"):
        forge.audit("user", repair=True, delete_orphans=True)
    assert replica.count("user") == 100
    done = forge.audit("user", repair=True, delete_orphans=True, max_delete="14%")
    assert done.repaired["replica"]["orphans_deleted"] == 12 and replica.count("user") == 88


def test_orphan_written_before_the_delete_is_kept(setup: tuple[Forge, FakeRacingSource, MemoryAdapter]) -> None:
    """The writer writes the source after the audit, before the deletion: the orphan is proven wrong."""
    forge, src, replica = setup
    late = forge.records([("user", {"email": "late@example.com"}, {"late": 1})])[0]  # provably ours
    replica.put_many([late])  # the writer's store write seen by the audit before its source write
    report = forge.audit("user")
    assert [f.kind for f in report.findings] == ["orphan"]
    src.calls, src.hook = 0, (lambda n: src.put_many([late]) if n == 2 else None)  # 1: re-check, 2: proof
    done = forge.audit("user", repair=True, delete_orphans=True)
    assert replica.get_many("user", [late.id])  # not deleted
    assert done.repaired.get("replica", {}).get("orphans_deleted", 0) == 0


def test_orphan_written_between_proof_and_delete_is_put_back(
        setup: tuple[Forge, FakeRacingSource, MemoryAdapter]) -> None:
    """The writer writes the source and the store just after the proof read: the delete removes
    the store's copy, and the read after the delete puts it back from the source."""
    forge, src, replica = setup
    ghost = forge.records([("user", {"email": "ghost@example.com"}, {"v": 1})])[0]  # provably ours
    replica.put_many([ghost])
    newer = Record("user", ghost.id, {"v": 2}, ghost.key)

    def writer(n: int) -> None:
        if n == 3:  # 1: the re-check, 2: the proof read right before the delete, 3: the read after it
            src.put_many([newer])

    src.calls, src.hook = 0, writer
    done = forge.audit("user", repair=True, delete_orphans=True)
    assert done.repaired["replica"]["restored_after_delete"] == 1
    assert replica.get_many("user", [ghost.id])[ghost.id].data == {"v": 2}


def test_findings_rechecked_before_repair(setup: tuple[Forge, FakeRacingSource, MemoryAdapter]) -> None:
    """A stale finding a writer fixed meanwhile is dropped; one it changed again is rewritten from
    the source's current record, never from what the audit saw."""
    forge, src, replica = setup
    a, b = (r[0] for r in list(src.scan("user"))[:2])
    replica.put_many([Record("user", a, {"old": True}), Record("user", b, {"old": True})])
    report = forge.audit("user")
    assert {f.kind for f in report.findings} == {"stale"}

    key_b = MemoryAdapter.get_many(src, "user", [b])[b].key  # the source keeps each record's key: provable

    def writer(n: int) -> None:
        if n == 3:  # 1: the source read before copying, 2: naming the stale fields, 3: the re-check
            replica.put_many(MemoryAdapter.get_many(src, "user", [a]).values())  # the writer finished a
            src.put_many([Record("user", b, {"v": "newest"}, key_b)])  # and wrote b again

    src.calls, src.hook = 0, writer
    done = forge.audit("user", repair=True)
    assert done.plan.rechecked and done.plan.rows[0].counts["stale"] == 1  # only b was still stale
    assert replica.get_many("user", [b])[b].data == {"v": "newest"}
    assert forge.audit("user").consistent
