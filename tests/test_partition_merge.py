"""Partition audits as pure tasks (uuid_forge.partial): the partials of any split, merged in any
grouping and order, give the single-process audit's report; duplicates never double-count; the
local process pool (uuid_forge.executors) gives the same report, and a repair through it too.

Stores: SQLite source, a SQLite copy and a file store (all reopenable by another process).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import write_forge_toml
from uuid_forge import Forge
from uuid_forge.audit import AuditReport
from uuid_forge.distributed import audit_on
from uuid_forge.executors import LocalExecutor
from uuid_forge.partial import audit_partition, merge, merge_all, plan, to_report

ET = "user"


def _config(tmp_path: Path) -> Path:
    return write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path}/source.db", "copy": f"sqlite:///{tmp_path}/copy.db",
        "files": f"file://{tmp_path}/files?fsync=false"}, "db", namespace="scale.uuid-forge.test")


def _plant(forge: Forge, tmp_path: Path, n: int = 400) -> dict[str, set[str]]:
    rows = [(ET, {"email": f"u{i}@x.org"}, {"email": f"u{i}@x.org", "n": i}) for i in range(n)]
    forge.write_many(rows)
    ids = [r.id for r in forge.records(rows)]
    copy, files = forge.stores[1].adapter, forge.stores[2].adapter
    copy.delete_many(ET, ids[0:7])                                                     # missing in copy
    stale = forge.records([(ET, {"email": f"u{i}@x.org"}, {"email": f"u{i}@x.org", "n": -i}) for i in range(10, 15)])
    files.put_many(stale)                                                             # stale in files
    ghosts = forge.records([(ET, {"email": f"ghost{i}@x.org"}, {"n": i}) for i in range(6)])
    copy.put_many(ghosts)                                                             # orphans in copy
    beside = next((tmp_path / "files" / ET).rglob("*.json")).parent
    (beside / "not-ours.txt").write_text("x")                                         # foreign
    return {"missing": {str(i) for i in ids[0:7]}, "stale": {str(r.id) for r in stale},
            "orphan": {str(r.id) for r in ghosts}}


def _same(got: AuditReport, want: AuditReport) -> None:
    a, b = got.to_dict(), want.to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert [t[:2] + t[3:] for t in got.partition_times] == [t[:2] + t[3:] for t in want.partition_times]


def _random_merge(partials: list[dict[str, Any]], rng: random.Random) -> dict[str, Any]:
    """A random binary tree of merges over a shuffled list (JSON round trip on the way)."""
    items = [json.loads(json.dumps(p)) for p in partials]
    rng.shuffle(items)
    while len(items) > 1:
        i = rng.randrange(len(items) - 1)
        items[i:i + 2] = [merge(items[i], items[i + 1])]
    return items[0]


@pytest.fixture
def small_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid_forge.compare as audit_mod

    monkeypatch.setattr(audit_mod, "PARTITION_TARGET", 25)  # 400 records: 16 partitions


@pytest.mark.parametrize("max_findings", [100_000, 5])
def test_merged_partials_equal_the_single_process_audit(tmp_path: Path, small_partitions: None,
                                                        max_findings: int) -> None:
    with Forge.from_config(str(_config(tmp_path))) as forge:
        planted = _plant(forge, tmp_path)
        want = forge.audit(ET, max_findings=max_findings)
        tasks = plan(forge, [ET])
        assert len(tasks) == 16 == want.partitions
        partials = [audit_partition(forge, t, max_findings=max_findings) for t in tasks]
    if max_findings > 100:
        assert {k: {f.id for f in want.findings if f.kind == k} for k in planted} == planted
    assert want.stores["files"]["foreign"] == 1
    rng = random.Random(13)
    for _ in range(20):
        _same(to_report(_random_merge(partials, rng), [ET]), want)
    # a re-run partition (a worker that died after finishing) is counted once
    doubled = partials + [json.loads(json.dumps(p)) for p in partials[:5]]
    rng.shuffle(doubled)
    _same(to_report(merge_all(doubled), [ET]), want)
    _same(to_report(merge(_random_merge(partials, rng), _random_merge(partials[:7], rng)), [ET]), want)
    assert merge(partials[0], partials[0]) is partials[0]


def test_a_partial_overlap_is_refused(tmp_path: Path, small_partitions: None) -> None:
    from uuid_forge.errors import ValidationError

    with Forge.from_config(str(_config(tmp_path))) as forge:
        _plant(forge, tmp_path, 100)
        p = [audit_partition(forge, t) for t in plan(forge, [ET])[:3]]
    with pytest.raises(ValidationError):
        merge(merge(p[0], p[1]), merge(p[1], p[2]))
    assert merge_all(p)["parts"] == sorted(x["parts"][0] for x in p)


def test_the_local_pool_gives_the_single_process_report_and_repairs(tmp_path: Path, small_partitions: None) -> None:
    config = _config(tmp_path)
    with Forge.from_config(str(config)) as forge:
        _plant(forge, tmp_path)
        want = forge.audit(ET)
        seen: list[tuple[int, int, int, int]] = []
        got = audit_on(LocalExecutor(str(config), 2), forge, ET, progress=lambda *a: seen.append(a))
        _same(got, want)
        assert seen[-1] == (16, 16, 400, len(want.findings)) and len(seen) == 16
        fixed = audit_on(LocalExecutor(str(config), 2), forge, ET, repair=True, delete_orphans=True)
        assert fixed.plan is not None and fixed.plan.rechecked and not fixed.repair_errors
        assert fixed.rechecked is not None and fixed.consistent
        assert fixed.repaired["copy"]["orphans_deleted"] == 6 and fixed.repaired["copy"]["rewritten"] == 7
        after = forge.audit(ET)
        assert after.consistent and after.stores["files"]["foreign"] == 1  # the foreign file is untouched
        assert len(list((tmp_path / "files" / ET).rglob("not-ours.txt"))) == 1


def test_the_delete_guard_is_applied_to_the_whole_type(tmp_path: Path, small_partitions: None) -> None:
    from uuid_forge.errors import RepairRefusedError

    config = _config(tmp_path)
    with Forge.from_config(str(config)) as forge:
        _plant(forge, tmp_path)
        # 6 orphans in 16 partitions: no partition alone exceeds 1, the whole type does
        with pytest.raises(RepairRefusedError):
            audit_on(LocalExecutor(str(config), 2), forge, ET, repair=True, delete_orphans=True, max_delete=5)
        assert forge.audit(ET).stores["copy"]["orphan"] == 6  # nothing changed


def test_cli_audit_with_workers_equals_one_worker_and_write_in_chunks(tmp_path: Path) -> None:
    from tests.scaffold import run_cli

    config = _config(tmp_path)
    lines = [json.dumps({"entity_type": ET, "key": {"email": f"c{i}@x.org"}, "data": {"n": i}}) for i in range(3000)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["write", "-c", str(config), "--jsonl", str(tmp_path / "in.jsonl"), "--workers", "3",
                              "--json"])
    assert code == 0, err
    assert json.loads(out)["entities"] == 3000 and json.loads(out)["stores"]["files"]["written"] == 3000
    with Forge.from_config(str(config)) as forge:
        forge.stores[1].adapter.delete_many(ET, [forge.records([(ET, {"email": "c5@x.org"}, {"n": 5})])[0].id])
    # 3000 records at the default target make one partition: the CLI then audits in-process
    one = json.loads(run_cli(["audit", "-c", str(config), "--json", "--workers", "1"])[1])
    many = json.loads(run_cli(["audit", "-c", str(config), "--json", "--workers", "2"])[1])
    for r in (one, many):
        r.pop("seconds"), r.pop("summary")
    assert one == many and one["stores"]["copy"]["missing"] == 1


@pytest.mark.slow
def test_cli_audit_on_two_local_processes_equals_in_process(tmp_path: Path) -> None:
    """Enough records for 4 partitions at the default size, so --workers 2 really uses the pool."""
    from tests.scaffold import run_cli

    config = write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path}/source.db", "copy": f"sqlite:///{tmp_path}/copy.db"}, "db",
        namespace="scale.uuid-forge.test")
    with Forge.from_config(str(config)) as forge:
        rows = [(ET, {"email": f"u{i}@x.org"}, {"n": i}) for i in range(41_000)]
        forge.write_many(rows)
        ids = [r.id for r in forge.records(rows[:50])]
        forge.stores[1].adapter.delete_many(ET, ids[:3])
    one = json.loads(run_cli(["audit", "-c", str(config), "--json", "--workers", "1"])[1])
    code, out, err = run_cli(["audit", "-c", str(config), "--json", "--workers", "2"])
    many = json.loads(out)
    assert code == 1, err
    assert one["partitions"] == many["partitions"] == 4
    for r in (one, many):
        r.pop("seconds"), r.pop("summary")
        for counts in r["hashed"].values():  # how finely a task cuts its ranges depends on its partitions'
            counts.pop("hashed_ranges")     # order (uuid_forge.rangehash); the records settled do not
    assert one == many and one["stores"]["copy"]["missing"] == 3


def test_worker_processes_run_under_the_coordinators_current_salt(tmp_path: Path, small_partitions: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A forkserver keeps the environment it started with (an earlier audit's, without this salt):
    the workers must get the coordinator's UUID_FORGE_* variables as they are now (CI found the
    pool auditing under a stale salt once another test had started the forkserver)."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():  # started now (if not before) without this salt
        monkeypatch.delenv("UUID_FORGE_SALT", raising=False)
        starter = multiprocessing.get_context("forkserver").Process(target=len, args=("",))
        starter.start()
        starter.join()
    monkeypatch.setenv("UUID_FORGE_SALT", "a-salt-set-after-the-forkserver-started")
    config = _config(tmp_path)
    with Forge.from_config(str(config)) as forge:
        _plant(forge, tmp_path)
        want = forge.audit(ET)
        assert not want.id_config
        got = audit_on(LocalExecutor(str(config), 2), forge, ET)
        assert not got.id_config
        _same(got, want)


def test_a_source_entry_unproven_in_two_tasks_of_one_partition_is_one_finding() -> None:
    """A partition task and the one-pass task of a whole-scan store (uuid_forge.partial.plan) may
    both find the same source entry unprovable: one finding and one count, as in one pass."""
    from uuid_forge.partial import to_report
    from uuid_forge.report import CLASSES, Finding

    ident = "0e6a5d2c-1b7e-5c1f-9a4e-3d2f1a0b9c8d"
    twice = Finding("pg", "user", ident, "unproven", "not proven ours: no key").to_dict()
    other = Finding("cache", "user", ident, "missing", "in the source, not in this store").to_dict()
    counts = {"pg": {**dict.fromkeys(CLASSES, 0), "unproven": 2}, "cache": {**dict.fromkeys(CLASSES, 0), "missing": 1}}
    partial = {"not_audited": {}, "stores": counts, "source": "pg", "max_findings": 100,
               "findings": [[0, 0, 0, twice], [0, 0, 1, other], [0, 0, 1 << 40, twice]], "total_findings": 3,
               "foreign_samples": {}, "warnings": [], "partition_times": [], "partitions": 1, "id_config": []}
    report = to_report(partial, ["user"])
    assert [(f.store, f.kind) for f in report.findings] == [("pg", "unproven"), ("cache", "missing")]
    assert report.stores["pg"]["unproven"] == 1 and report.stores["cache"]["missing"] == 1
