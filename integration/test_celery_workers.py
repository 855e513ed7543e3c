"""Audits on real Celery workers (issue 13): two `celery -A uuid_forge.celery worker --concurrency 1`
processes on the real RabbitMQ broker (this suite's vhost) and the Redis result backend.

* the merged report equals the single-process audit on the same planted faults (API and CLI);
* a worker killed with SIGKILL mid-audit leaves a complete, correct report (its unacknowledged
  partition is re-delivered to the other worker; the merge counts it once);
* a repair through the workers leaves the stores consistent, the foreign key untouched.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason='Celery is not installed (pip install "uuid-forge[celery]")')

from tests.scaffold import run_cli, write_forge_toml
from uuid_forge import Forge
from uuid_forge.audit import AuditReport
from uuid_forge.distributed import audit_on
from uuid_forge.masking import Masker

pytestmark = pytest.mark.slow
ET = "member"
N = 3000


def _config(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str, tag: str, executor: str = "") -> Path:
    """The test configuration; ``executor``: more ``[executor]`` lines (report_dir, signing)."""
    extra = (f'[executor]\nbroker = "{amqp_url}"\nbackend = "{redis_url}"\nresult_expires = 600\n'
             f'queue = "uf_test_{tag}"\nreport_dir = "{tmp_path}/reports"\n{executor}'
             '\n[types.member]\nkey = ["email"]\n')  # the key each record holds: orphans are proven ours
    return write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": {"url": postgres_url, "options": {"table_prefix": f"{tag}_"}},
        "cache": {"url": redis_url, "options": {"prefix": tag}},
        "files": f"file://{tmp_path}/files?fsync=false"}, "db", namespace="scale-n.uuid-forge.test", extra=extra)


def _plant(forge: Forge, tmp_path: Path) -> None:
    rows = [(ET, {"email": f"m{i}@x.org"}, {"email": f"m{i}@x.org", "n": i}) for i in range(N)]
    forge.write_many(rows)
    ids = [r.id for r in forge.records(rows)]
    cache, files = forge.stores[1].adapter, forge.stores[2].adapter
    cache.delete_many(ET, ids[:9])
    files.put_many(forge.records([(ET, {"email": f"m{i}@x.org"}, {"email": f"m{i}@x.org", "n": -1})
                                  for i in range(100, 108)]))
    cache.put_many(forge.records([(ET, {"email": f"ghost{i}@x.org"}, {"email": f"ghost{i}@x.org", "n": i})
                                  for i in range(5)]))
    cache._client.set(f"{forge.stores[1].adapter.prefix}{ET}:not-an-id", "theirs")  # foreign: never touched


class Workers:
    """Two real worker processes, each in its own process group (so SIGKILL takes its pool child too)."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs, self.procs = config, logs, {}

    def start(self, name: str) -> None:
        env = {**os.environ, "UUID_FORGE_CONFIG": str(self.config)}
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 closed with the process
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "uuid_forge.celery", "worker", "--concurrency", "1", "-n",
             f"{name}@%h", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(b"ready." in (self.logs / f"{n}.log").read_bytes() for n in self.procs):
                return
            for n, p in self.procs.items():
                assert p.poll() is None, (self.logs / f"{n}.log").read_text()
            time.sleep(0.2)
        raise AssertionError("workers not ready: " + " | ".join((self.logs / f"{n}.log").read_text()[-2000:]
                                                               for n in self.procs))

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def received(self, name: str) -> set[str]:
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        return set(re.findall(r"Task uuid_forge\.audit_partition\[([0-9a-f-]+)\] received", text))

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Forge, Workers]]:
    import uuid_forge.celery as uf_celery
    import uuid_forge.compare as audit_mod

    monkeypatch.setattr(audit_mod, "PARTITION_TARGET", 100)  # 3000 records: 32 partition tasks
    tag = "sc" + secrets.token_hex(3)
    config = _config(tmp_path, postgres_url, redis_url, amqp_url, tag)
    workers = Workers(config, tmp_path)
    forge = Forge.from_config(str(config))
    try:
        from uuid_forge.settings import load_settings

        uf_celery.configure(load_settings(config).executor)
        uf_celery.app.control.purge()  # nothing left over from an earlier run
        _plant(forge, tmp_path)
        workers.start("w1")
        workers.start("w2")
        workers.wait_ready()
        yield config, forge, workers
    finally:
        workers.stop()
        client = forge.stores[1].adapter._client
        for key in client.scan_iter(f"{tag}:*"):
            client.delete(key)
        forge.close()


def hidden_name(raw: str) -> str:
    """A foreign name as results in the backend hold it (each word down to its first character)."""
    return re.sub(r"\w+", lambda w: w.group()[0] + "•" * (len(w.group()) - 1), raw)


def _same(got: AuditReport, want: AuditReport) -> None:
    """Equal reports, but for the foreign names: workers send them masked (never in the backend)."""
    a, b = got.to_dict(), want.to_dict()
    a.pop("seconds"), b.pop("seconds")
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

    def progress(done: int, total: int, entities: int, findings: int) -> None:
        if not killed and done >= 2:
            deadline = time.time() + 10  # w1 holds a partition it has not finished: kill it then
            while time.time() < deadline and not workers.received("w1"):
                time.sleep(0.05)
            workers.kill("w1")
            killed.append("w1")

    got = audit_on(CeleryExecutor(str(config), 2), forge, ET, progress=progress)
    assert killed
    _same(got, want)
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


def wait_report(folder: Path, timeout: float = 120) -> Path:
    """The report a worker wrote under its ``[executor] report_dir`` (the first one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = sorted(folder.glob("audit-*.json")) if folder.exists() else []
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no report written under {folder}")


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
