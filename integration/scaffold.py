"""Shared scaffolding for the integration tests: the CLI as a subprocess, as cron runs it.

Written once here so that every test file runs the command line the same way (no inherited
``UUID_FORGE_*`` variable, a known salt, wide COLUMNS so rich never folds a line the assertions
read). The config writer, the forge factory and the silent server are the fast tests' own
(tests/scaffold.py), re-exported here.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.scaffold import make_forge, write_forge_toml

if TYPE_CHECKING:
    from uuid_forge import Forge, Record

__all__ = ["CELERY_ET", "CELERY_N", "DEFAULT_SALT", "FAST_WRITE", "Workers", "celery_config", "cli_env", "make_forge",
           "plant_celery_drift", "plant_redis_tampers", "redis_value", "run_cli", "wait_report", "write_forge_toml"]

DEFAULT_SALT = "integration-salt-not-shown"
#: the [write] table of integration configs: one retry, a short backoff, so an outage fails fast
FAST_WRITE = {"retries": 1, "backoff": 0.01}


def cli_env(env: Mapping[str, str] | None = None, *, salt: str | None = DEFAULT_SALT,
            columns: int = 200) -> dict[str, str]:
    """This process's environment without any UUID_FORGE_* variable, plus the salt, COLUMNS and ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("UUID_FORGE_")}
    if salt is not None:
        base["UUID_FORGE_SALT"] = salt
    base["COLUMNS"] = str(columns)
    return {**base, **(env or {})}


def run_cli(*args: str, env: Mapping[str, str] | None = None, stdin: str | bytes | None = None,
            salt: str | None = DEFAULT_SALT, columns: int = 200,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m uuid_forge ARGS`` in a subprocess, as cron would run it; stdout/stderr as text.

    ``salt=None`` leaves UUID_FORGE_SALT unset (unless ``env`` gives it); ``stdin`` may be bytes
    (to feed undecodable input), the output is always decoded.
    """
    command = [sys.executable, "-m", "uuid_forge", *args]
    full_env = cli_env(env, salt=salt, columns=columns)
    if isinstance(stdin, bytes):
        done = subprocess.run(command, capture_output=True, env=full_env, input=stdin, timeout=timeout, check=False)
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
    return subprocess.run(command, capture_output=True, text=True, env=full_env, input=stdin, timeout=timeout,
                          check=False)


def forget_redis_type(redis_url: str, entity_type: str) -> None:
    """Remove what a test wrote under its own, uniquely named entity type in the test Redis
    database (``<type>:*`` and its name in the type set). A proven drop leaves what it cannot
    prove (a type with no declared key, a salt the teardown does not have), and the test database
    outlives the run: without this, keys pile up from run to run."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{entity_type}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start:start + 1000])
        client.srem("uf:types", entity_type)
    finally:
        client.close()


def redis_value(record: Record, **change: Any) -> str:
    """``record``'s data (with ``change``) as compact, sorted JSON: a planted value that differs
    from the stored one only where the test means it to."""
    return json.dumps({**record.data, **change}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def plant_redis_tampers(raw: Any, entity_type: str, records: list[Record]) -> dict[str, set[str]]:
    """Tamper behind uuid-forge's back, through the Redis client ``raw`` (keys ``<type>:<id>``),
    with the kinds every Redis audit test checks, on ``records[:10]``: six stale values (edited,
    removed and added field, changed number, no JSON, wrong Redis type), one reformatted by hand
    (no finding), two keys missing, one renamed to its upper-case form (malformed), and two
    foreign keys. Returns the IDs each finding kind must name; a test adds its own cases."""
    key = {r.id: f"{entity_type}:{r.id}" for r in records[:10]}
    raw.set(key[records[0].id], redis_value(records[0], name="edited"))  # edited field
    removed = dict(records[1].data)
    del removed["tags"]
    raw.set(key[records[1].id], json.dumps(removed))  # removed field
    raw.set(key[records[2].id], redis_value(records[2], extra=True))  # added field
    raw.set(key[records[3].id], redis_value(records[3], n=records[3].data["n"] + 1))  # changed number
    raw.set(key[records[4].id], "{not json")  # unreadable value
    raw.delete(key[records[5].id])
    raw.hset(key[records[5].id], "fp", "x")  # wrong Redis type
    raw.set(key[records[6].id], json.dumps(records[6].data, indent=2))  # reformatted by hand: no finding
    raw.delete(key[records[7].id], key[records[8].id])  # missing keys
    raw.rename(key[records[9].id], f"{entity_type}:{str(records[9].id).upper()}")  # a name in another form
    raw.set(f"{entity_type}:not-a-uuid", "x")  # foreign
    raw.set(f"{entity_type}:session-17", "y")
    return {"stale": {str(r.id) for r in records[0:6]}, "missing": {str(r.id) for r in records[7:9]},
            "malformed": {str(records[9].id)}}


# -- real Celery workers (integration/test_celery_workers.py, test_celery_forged_tasks.py) ------------------------

CELERY_ET = "member"
CELERY_N = 3000


def celery_config(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str, tag: str,
                  executor: str = "") -> Path:
    """The Celery tests' configuration: PostgreSQL the source, Redis, files, and ``mirror``, a second
    PostgreSQL table set (its own table prefix): the source and it both hash what they hold, so its
    partitions are compared by hashes (uuid_forge.rangehash). ``executor``: more ``[executor]`` lines
    (report_dir, signing)."""
    extra = (f'[executor]\nbroker = "{amqp_url}"\nbackend = "{redis_url}"\nresult_expires = 600\n'
             f'queue = "uf_test_{tag}"\nreport_dir = "{tmp_path}/reports"\n{executor}'
             '\n[types.member]\nkey = ["email"]\n')  # the key each record holds: orphans are proven ours
    return write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": {"url": postgres_url, "options": {"table_prefix": f"{tag}_"}},
        "cache": {"url": redis_url, "options": {"prefix": tag}},
        "files": f"file://{tmp_path}/files?fsync=false",
        "mirror": {"url": postgres_url, "options": {"table_prefix": f"{tag}m_"}}},
        "db", namespace="scale-n.uuid-forge.test", extra=extra)


def forget_celery_run(forge: Forge, tag: str) -> None:
    """Remove what a Celery test run under ``tag`` (celery_config) left: its Redis keys, the tables
    of the source and ``mirror`` prefixes (the entity type's and the ID-config marker's), and its
    task queue. Without this, tables and queues pile up in the test database and vhost."""
    import contextlib

    import sqlalchemy as sa
    from kombu import Connection

    import uuid_forge.celery as uf_celery

    client = forge.stores[1].adapter._client  # type: ignore[attr-defined]
    for key in client.scan_iter(f"{tag}:*"):
        client.delete(key)
    for handle in (forge.stores[0], forge.stores[3]):
        with contextlib.suppress(Exception):
            handle.adapter.drop(CELERY_ET, prover=forge.prover)
    engine = forge.stores[0].adapter._engine  # type: ignore[attr-defined]
    with engine.begin() as conn:  # the marker's table: a reserved type no drop() accepts
        for prefix in (f"{tag}_", f"{tag}m_"):
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{prefix}uuid-forge.meta"'))
    with Connection(uf_celery.app.conf.broker_url) as conn, contextlib.suppress(Exception):
        conn.default_channel.queue_delete(f"uf_test_{tag}")


def plant_celery_drift(forge: Forge) -> None:
    """CELERY_N entities, then drift behind uuid-forge's back: cache 9 missing, 5 orphans and a
    foreign key; files 8 stale; mirror (compared by hashes) 4 missing, 3 stale, 2 orphans, in
    partitions apart."""
    et = CELERY_ET
    rows = [(et, {"email": f"m{i}@x.org"}, {"email": f"m{i}@x.org", "n": i}) for i in range(CELERY_N)]
    forge.write_many(rows)
    ids = [r.id for r in forge.records(rows)]
    cache: Any = forge.stores[1].adapter  # the Redis adapter: its client and prefix
    files, mirror = forge.stores[2].adapter, forge.stores[3].adapter
    cache.delete_many(et, ids[:9])
    files.put_many(forge.records([(et, {"email": f"m{i}@x.org"}, {"email": f"m{i}@x.org", "n": -1})
                                  for i in range(100, 108)]))
    cache.put_many(forge.records([(et, {"email": f"ghost{i}@x.org"}, {"email": f"ghost{i}@x.org", "n": i})
                                  for i in range(5)]))
    cache._client.set(f"{cache.prefix}{et}:not-an-id", "theirs")  # foreign: never touched
    mirror.delete_many(et, [ids[i] for i in (500, 1200, 2000, 2900)])
    mirror.put_many(forge.records([(et, {"email": f"m{i}@x.org"}, {"email": f"m{i}@x.org", "n": -2})
                                   for i in (700, 1700, 2700)]))
    mirror.put_many(forge.records([(et, {"email": f"phantom{i}@x.org"}, {"email": f"phantom{i}@x.org", "n": i})
                                   for i in range(2)]))


# A Celery worker whose tasks wait first while the file UF_TEST_DELAY_FILE names exists (holding the
# seconds): the prerun signal runs in the pool child, before the task, on a real worker otherwise.
_DELAYED_WORKER = """
import os, time
from celery.signals import task_prerun

def _delay(**_):
    path = os.environ["UF_TEST_DELAY_FILE"]
    if os.path.exists(path):
        time.sleep(float(open(path).read() or 0))

task_prerun.connect(_delay, weak=False)
from celery.__main__ import main
main()
"""


class Workers:
    """Real ``celery -A uuid_forge.celery worker --concurrency 1`` processes, each in its own process
    group (so SIGKILL takes its pool child too)."""

    def __init__(self, config: Path, logs: Path) -> None:
        self.config, self.logs = config, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        env = {**os.environ, "UUID_FORGE_CONFIG": str(self.config)}
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 closed with the process
        env["UF_TEST_DELAY_FILE"] = str(self.logs / f"{name}.delay")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-c", _DELAYED_WORKER, "-A", "uuid_forge.celery", "worker", "--concurrency", "1", "-n",
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

    def delay(self, name: str, seconds: float) -> None:
        """From now on, ``name`` sleeps ``seconds`` before each task it runs, so a test can kill it
        while it holds a task (prefetch is one, so at most one is held unacknowledged)."""
        (self.logs / f"{name}.delay").write_text(str(seconds))

    def running(self, name: str) -> set[str]:
        """The partition tasks ``name`` received and has not yet finished (its log)."""
        text = (self.logs / f"{name}.log").read_text(errors="replace")
        ended = set(re.findall(r"Task uuid_forge\.audit_partition\[([0-9a-f-]+)\] (?:succeeded|raised)", text))
        return self.received(name) - ended

    def kill(self, name: str) -> None:
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(10)

    def received(self, name: str) -> set[str]:
        """The IDs of the partition tasks ``name`` received (its log)."""
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


def wait_report(folder: Path, timeout: float = 120) -> Path:
    """The report a worker wrote under its ``[executor] report_dir`` (the first one)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = sorted(folder.glob("audit-*.json")) if folder.exists() else []
        if done:
            return done[0]
        time.sleep(0.2)
    raise AssertionError(f"no report written under {folder}")


def audits_read_apart(monkeypatch: Any, audit: Any, source_url: str, store_url: str,
                      entity_type: str) -> tuple[Any, Any]:
    """The audit by ID range and the one read once by a process of its own (``read_apart``), over 8
    partitions: ``audit(source_url, store_url, entity_type, read_once=..., read_apart=...)`` returns
    (report, scans in this process). Checks that exactly one child read the store and this process
    scanned it not at all; (ranged report, read-apart report)."""
    from uuid_forge import compare, onepass

    monkeypatch.setattr(compare, "PARTITION_TARGET", 50)  # 400 source records: 8 partitions
    children: list[int] = []
    real = onepass.run_apart

    def counted(*args: Any, **kwargs: Any) -> int:
        children.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(onepass, "run_apart", counted)
    ranged, _ = audit(source_url, store_url, entity_type, read_once=False)
    apart, in_here = audit(source_url, store_url, entity_type, read_once=True, read_apart=True)
    assert children == [1] and in_here == 0  # read once, by the child, not in this process
    return ranged, apart


def audit_counting_scans(source_url: str, name: str, store: Any, entity_type: str, ids: Any) -> tuple[Any, int]:
    """An audit of ``store`` (named ``name``) against a PostgreSQL source, and how many times the
    store's ``_scan`` ran: once per partition by ID range, once per audit read once (``read_once``)."""
    from uuid_forge import Forge, open_store
    from uuid_forge.forge import StoreHandle

    calls: list[Any] = []
    scan = store._scan

    def counted(et: str, partition: Any) -> Any:
        calls.append(partition)
        return scan(et, partition)

    store._scan = counted
    f = Forge([StoreHandle("postgres", open_store(source_url), source=True), StoreHandle(name, store)],
              ids=ids, journal=None)
    try:
        return f.audit(entity_type), len(calls)
    finally:
        f.close()
