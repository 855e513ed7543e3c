"""Audits on real Celery workers (issue 13): two `celery -A uuid_forge.celery worker --concurrency 1`
processes on the real RabbitMQ broker (this suite's vhost) and the Redis result backend.

* the merged report equals the single-process audit on the same planted faults (API and CLI);
* a worker killed with SIGKILL mid-audit leaves a complete, correct report (its unacknowledged
  partition is re-delivered to the other worker; the merge counts it once), with the ``mirror``
  store compared by hashes (hashing on, the default): its planted findings exactly, every record
  counted once;
* a repair through the workers leaves the stores consistent, the foreign key untouched.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason='Celery is not installed (pip install "uuid-forge[celery]")')

from integration.scaffold import CELERY_ET as ET
from integration.scaffold import CELERY_N as N
from integration.scaffold import Workers, celery_config, forget_celery_run, plant_celery_drift, wait_report
from tests.scaffold import run_cli
from uuid_forge import Forge
from uuid_forge.audit import AuditReport
from uuid_forge.distributed import audit_on
from uuid_forge.masking import Masker

pytestmark = pytest.mark.slow


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Forge, Workers]]:
    import uuid_forge.celery as uf_celery
    import uuid_forge.compare as audit_mod

    monkeypatch.setattr(audit_mod, "PARTITION_TARGET", 100)  # 3000 records: 32 partition tasks
    tag = "sc" + secrets.token_hex(3)
    config = celery_config(tmp_path, postgres_url, redis_url, amqp_url, tag)
    workers = Workers(config, tmp_path)
    forge = Forge.from_config(str(config))
    try:
        from uuid_forge.settings import load_settings

        uf_celery.configure(load_settings(config).executor)
        plant_celery_drift(forge)
        workers.start("w1")
        workers.start("w2")
        workers.wait_ready()
        yield config, forge, workers
    finally:
        workers.stop()
        forget_celery_run(forge, tag)
        forge.close()


def hidden_name(raw: str) -> str:
    """A foreign name as results in the backend hold it (each word down to its first character)."""
    return re.sub(r"\w+", lambda w: w.group()[0] + "•" * (len(w.group()) - 1), raw)


def _same(got: AuditReport, want: AuditReport) -> None:
    """Equal reports, but for the foreign names: workers send them masked (never in the backend);
    and but for how finely the hashed ranges were cut: after a partition that differed, the next
    one a process audits is asked in finer ranges (uuid_forge.rangehash), so that depends on which
    partitions each worker took. The records each store holds are counted in ``stores`` (ok
    includes those the hashes settled), compared exactly."""
    a, b = got.to_dict(), want.to_dict()
    a.pop("seconds"), b.pop("seconds")
    assert a.pop("hashed").keys() == b.pop("hashed").keys() and "mirror" in got.hashed
    b["foreign_samples"] = {s: [f"{t.partition(': ')[0]}: {hidden_name(t.partition(': ')[2])}" for t in v]
                            for s, v in b["foreign_samples"].items()}
    for f in b["findings"]:  # and the key fields naming each finding: masked by the workers too
        f["key"] = Masker().key(f["key"])
    assert a == b


def test_celery_report_equals_the_single_process_audit(setup: Any) -> None:
    from uuid_forge.celery import CeleryExecutor

    config, forge, workers = setup
    want = forge.audit(ET)
    assert want.partitions == 32 and want.stores["cache"]["missing"] == 9 and want.stores["files"]["stale"] == 8
    assert want.stores["cache"]["orphan"] == 5 and want.stores["cache"]["foreign"] == 1
    got = audit_on(CeleryExecutor(str(config), 2), forge, ET)
    _same(got, want)
    assert workers.received("w1") and workers.received("w2")  # both workers took partitions
    code, out, err = run_cli(["audit", "-c", str(config), "--entity", ET, "--executor", "celery", "--json"])
    assert code == 1, err
    payload = json.loads(out)
    shown = [{**f, "key": Masker().key(f["key"])} for f in want.to_dict()["findings"]]  # --json masks keys
    assert payload["stores"] == want.to_dict()["stores"] and payload["findings"] == shown
    assert "guest:guest" not in out + err


def test_a_worker_killed_mid_audit_leaves_a_complete_correct_report(setup: Any) -> None:
    from uuid_forge.celery import CeleryExecutor

    config, forge, workers = setup
    want = forge.audit(ET)
    killed: list[str] = []

    workers.delay("w1", 1.0)  # w1 spends a second in each task: the kill finds it holding one

    def progress(done: int, total: int, entities: int, findings: int) -> None:
        if not killed and done >= 2:
            deadline = time.time() + 20  # w1 holds a partition it has not finished: kill it then
            while time.time() < deadline and not workers.running("w1"):
                time.sleep(0.02)
            workers.kill("w1")
            killed.append("w1")

    got = audit_on(CeleryExecutor(str(config), 2), forge, ET, progress=progress)
    assert killed
    _same(got, want)
    # the hashed path was taken, and no partition was lost or counted twice: the planted findings
    # exactly, and every other record ok once
    mirror, hashed = got.stores["mirror"], got.hashed["mirror"]
    assert (mirror["missing"], mirror["stale"], mirror["orphan"], mirror["ok"]) == (4, 3, 2, N - 7)
    assert hashed["hashed_ranges"] > 0 and hashed["hashed_records"] > 0 and hashed["read_records"] > 0
    assert hashed["hashed_records"] + hashed["read_records"] == N - 4 + 2  # each record the mirror holds, once
    assert got.stores["cache"]["missing"] == 9 and got.stores["cache"]["orphan"] == 5
    assert got.stores["cache"]["ok"] == N - 9 and got.stores["files"]["stale"] == 8
    assert sum(c[k] for c in got.stores.values() for k in ("missing", "stale", "orphan", "malformed",
                                                           "unproven", "deleted")) == 4 + 3 + 2 + 9 + 5 + 8
    # the partition w1 held unacknowledged was delivered again, to w2
    assert workers.received("w1") & workers.received("w2"), "no partition was re-delivered: the kill was not mid-task"


def test_repair_through_workers_leaves_the_stores_consistent(setup: Any) -> None:
    from uuid_forge.celery import CeleryExecutor

    config, forge, _ = setup
    report = audit_on(CeleryExecutor(str(config), 2), forge, ET, repair=True, delete_orphans=True)
    assert not report.repair_errors and report.plan is not None and report.plan.rechecked
    assert report.repaired["cache"]["rewritten"] == 9 and report.repaired["cache"]["orphans_deleted"] == 5
    assert report.repaired["files"]["rewritten"] == 8
    assert report.consistent
    after = forge.audit(ET)
    assert after.consistent and after.stores["cache"]["ok"] == N and after.stores["cache"]["foreign"] == 1
    assert forge.stores[1].adapter._client.get(f"{forge.stores[1].adapter.prefix}{ET}:not-an-id") == b"theirs"


def test_the_beat_task_audits_as_a_chord_and_writes_the_report(setup: Any, tmp_path: Path) -> None:
    from uuid_forge.celery import audit

    _, forge, _ = setup
    want = forge.audit(ET)
    (tmp_path / "reports").mkdir()
    started = audit.delay(ET).get(timeout=60)
    assert started["partitions"] >= 1  # planned by the worker (its own partition size)
    out = wait_report(tmp_path / "reports")
    got = json.loads(out.read_text())

    def key(f: dict[str, Any]) -> str:
        return json.dumps(f, sort_keys=True)

    # the worker plans with its own partition size, so the findings come in another order; the
    # foreign key's name reached the worker's report masked (results in the backend hold none)
    assert got["stores"] == want.to_dict()["stores"]
    assert got["foreign_samples"] == {"cache": [f"{ET}: {hidden_name(s.partition(': ')[2])}"
                                                for s in want.foreign_samples["cache"]]}
    masked = [{**f, "key": Masker().key(f["key"])} for f in want.to_dict()["findings"]]  # keys masked in results
    assert sorted(got["findings"], key=key) == sorted(masked, key=key)
    assert oct(out.stat().st_mode & 0o777) == "0o600"
