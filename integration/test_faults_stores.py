"""Faults in every store that can run privately: Redis, PostgreSQL and RabbitMQ.

Each test writes 10,000 entities with ``write_many`` (batches of 500), takes a private server
down from the ``progress`` callback once four batches are in (so the fault always lands at the
same place), restarts it, replays the journal and then checks three things:

* ``forge.audit(entity_type).consistent`` is True;
* a direct count in every store, with the store's own driver (psycopg, redis-py, pika, the
  file tree on disk), shows all 10,000 entities;
* nothing is left in the journal.

Faults: Redis and PostgreSQL get SIGKILL (``kill()``). RabbitMQ gets a clean ``stop()``: on
RabbitMQ 3.10 a single-node stream queue whose node was SIGKILLed can stay "down" after the
node comes back, which is a broker limit, not something replay can fix (docs/reliability.md).

Roles: the Redis cache is an optional store (its part is journaled and the write goes on); the
private PostgreSQL and RabbitMQ are required stores (the write stops with WriteError, and after
the restart a replay plus a resubmission of the rest finishes the job, as a restarted job
would). One more test makes the private PostgreSQL the source of truth: its outage stops the
write before any other store gets ahead of it.

Each test prints one ``fault-result`` line (``pytest -s`` shows it); docs/reliability.md
tabulates them. Private servers only: the shared PostgreSQL on port 5432 serves as the source
of truth through the adapter, and nothing here stops or kills a shared server.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pytest.importorskip("redis", reason=driver_missing("redis"))
import pika
import pika.exceptions
import psycopg
import redis

from uuid_forge import Forge, IDConfig, Namespace
from uuid_forge.errors import WriteError
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.registry import open_store
from uuid_forge.settings import WriteSettings

from .servers import PrivatePostgres, PrivateRabbitMQ, PrivateRedis

pytestmark = [pytest.mark.fault, pytest.mark.slow]

N = 10_000
BATCH = 500
FAULT_AFTER = 4  # batches written before the server goes down: the fault lands at 2,000 of 10,000
REPLAY_DEADLINE = 60.0  # seconds a recovery may keep replaying before the test fails
IDS = IDConfig(namespace=Namespace("faults.uuid-forge.test"), salt="faults-stores")
SETTINGS = WriteSettings(retries=2, backoff=0.05, batch_size=BATCH)
STREAM = "uuid_forge.history"  # the RabbitMQ adapter's default history stream


# --------------------------------------------------------------------------- direct counts


def entities(entity_type: str, n: int = N) -> list[tuple[str, dict[str, str], dict[str, object]]]:
    return [(entity_type, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "n": i}) for i in range(n)]


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def pg_count(url: str, entity_type: str) -> int:
    with psycopg.connect(_dsn(url), connect_timeout=5) as conn:
        return conn.execute(f'SELECT count(*) FROM "uf_{entity_type}"').fetchone()[0]  # type: ignore[index]


def pg_drop(url: str, entity_type: str) -> None:
    with psycopg.connect(_dsn(url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "uf_{entity_type}"')


def redis_count(url: str, entity_type: str) -> int:
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{entity_type}:*", count=1000))
    finally:
        client.close()


def file_count(root: Path, entity_type: str) -> int:
    return sum(1 for _ in (root / entity_type).rglob("*.json"))


def stream_count(url: str, entity_type: str, stream: str = STREAM) -> tuple[int, int]:
    """(distinct entity IDs, messages) of ``entity_type`` in the history stream, read with pika.

    A stream never signals its end, so a confirmed marker is appended first (through the default
    exchange: it lands in this stream only) and the stream is read from the first offset until
    the marker arrives. Exact, unlike waiting for the stream to go quiet.
    """
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = conn.channel()
        channel.confirm_delivery()
        marker = f"test-count-{uuid.uuid4()}"
        channel.basic_publish("", stream, b"", pika.BasicProperties(type="test.count-marker", message_id=marker,
                                                                     delivery_mode=2), mandatory=True)
        channel.basic_qos(prefetch_count=1000)
        ids: set[str] = set()
        messages = 0
        for method, props, _ in channel.consume(stream, arguments={"x-stream-offset": "first"},
                                                inactivity_timeout=15):
            if method is None:
                pytest.fail(f"stream {stream} went quiet before the count marker ({messages} messages read)")
            channel.basic_ack(method.delivery_tag)
            if props.message_id == marker:
                break
            if (props.headers or {}).get("x-entity-type") == entity_type:
                messages += 1
                ids.add(props.correlation_id)
        return len(ids), messages
    finally:
        try:
            conn.close()
        except pika.exceptions.AMQPError:
            pass  # a stream may close the connection on consumer cancel (540): the count is complete


# --------------------------------------------------------------------------- fault plumbing


@dataclass
class Outcome:
    """One fault test's figures, as printed and as tabulated in docs/reliability.md."""

    store: str
    fault: str
    role: str
    written: int
    lost: int
    restart_s: float
    replay_s: float
    replay_rounds: int
    replayed: int
    test: str

    def line(self) -> str:
        return (f"fault-result store={self.store} fault={self.fault} role={self.role} written={self.written} "
                f"lost={self.lost} restart={self.restart_s:.2f}s replay={self.replay_s:.2f}s "
                f"recover={self.restart_s + self.replay_s:.2f}s replay_rounds={self.replay_rounds} "
                f"replayed={self.replayed} test={self.test}")


def after_batches(n: int, action: Callable[[], None]) -> Callable[[int], None]:
    """A ``progress`` callback that runs ``action`` once, right after batch ``n``."""
    seen = 0

    def progress(_: int) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            action()

    return progress


def replay_until_clear(forge: Forge) -> tuple[int, int]:
    """Replay until the journal is empty, as an operator's ``uuid-forge replay`` loop would.

    Returns (rounds, records written by the replays). A server that accepts connections may still
    refuse writes for a moment (a queue's leader being elected), so more than one round can be
    needed; each round is an ordinary, idempotent ``replay``.
    """
    deadline = time.monotonic() + REPLAY_DEADLINE
    rounds = written = 0
    while True:
        rounds += 1
        report = forge.replay()
        written += sum(s.written for s in report.stores.values())
        if not forge.pending():
            return rounds, written
        if time.monotonic() >= deadline:
            pytest.fail(f"journal still holds {forge.pending()} after {rounds} replays: {report.summary()}")
        time.sleep(0.5)


def recover(server: Any, forge: Forge, after_restart: Callable[[], None] | None = None) -> tuple[float, float, int, int]:
    """Restart ``server`` and replay: (restart seconds, replay seconds, replay rounds, replayed).

    ``after_restart`` runs between the two, outside both timings: it checks what the server kept
    through the fault before replay adds anything.
    """
    t0 = time.perf_counter()
    server.start()
    restart = time.perf_counter() - t0
    if after_restart is not None:
        after_restart()
    t1 = time.perf_counter()
    rounds, replayed = replay_until_clear(forge)
    return restart, time.perf_counter() - t1, rounds, replayed


def finish(outcome: Outcome, counts: dict[str, int]) -> None:
    """Every store holds all N entities; print the figures."""
    print(f"\n{outcome.line()} counts={counts}")
    assert counts == dict.fromkeys(counts, N), counts
    assert outcome.lost == 0


# --------------------------------------------------------------------------- the tests


def test_redis_sigkilled_mid_write(postgres_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Optional persistent Redis SIGKILLed after batch 4: the write completes, Redis's part waits
    in the journal, and a replay after the restart fills it in."""
    et = f"fsredis{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    with PrivateRedis(persistent=True) as cache:
        forge = Forge([StoreHandle("pg", open_store(postgres_url), source=True),
                       StoreHandle("cache", open_store(cache.url, socket_timeout=2, socket_connect_timeout=2),
                                   required=False),
                       StoreHandle("files", open_store(f"file://{files}?fsync=false"))],
                      ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"), write=SETTINGS)
        try:
            report = forge.write_many(entities(et), progress=after_batches(FAULT_AFTER, cache.kill))
            assert report.ok and not report.complete
            assert report.stores["cache"].status == "journaled"
            assert report.stores["cache"].written == FAULT_AFTER * BATCH
            assert forge.pending() == {"cache": N - FAULT_AFTER * BATCH}
            assert report.stores["pg"].written == report.stores["files"].written == N

            def kept_through_kill() -> None:  # the AOF (fsync always) kept every acknowledged write
                assert redis_count(cache.url, et) == FAULT_AFTER * BATCH

            restart, replay, rounds, replayed = recover(cache, forge, kept_through_kill)
            assert forge.audit(et).consistent
            counts = {"pg": pg_count(postgres_url, et), "cache": redis_count(cache.url, et),
                      "files": file_count(files, et)}
            finish(Outcome("Redis (private, AOF fsync always)", "SIGKILL", "optional", N, N - counts["cache"],
                           restart, replay, rounds, replayed, request.node.name), counts)
        finally:
            forge.close()
            shutil.rmtree(files, ignore_errors=True)  # 10,000 files: not left for pytest's exit-time cleanup
            pg_drop(postgres_url, et)


def test_postgres_required_sigkilled_mid_write(postgres_url: str, tmp_path: Path,
                                               request: pytest.FixtureRequest) -> None:
    """A required private PostgreSQL SIGKILLed after batch 4: WriteError after batch 5 with the
    report; after the restart (crash recovery) a replay writes batch 5 and the job resumes."""
    et = f"fspgreq{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    items = entities(et)
    with PrivatePostgres() as private:
        forge = Forge([StoreHandle("source", open_store(postgres_url), source=True),
                       StoreHandle("pg", open_store(private.url)),
                       StoreHandle("files", open_store(f"file://{files}?fsync=false"))],
                      ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"), write=SETTINGS)
        try:
            with pytest.raises(WriteError) as caught:
                forge.write_many(items, progress=after_batches(FAULT_AFTER, private.kill))
            report = caught.value.report
            stopped_at = report.entities  # batches attempted, the failed one included
            assert stopped_at == (FAULT_AFTER + 1) * BATCH
            assert report.stores["pg"].status == "failed" and report.stores["pg"].pending == BATCH
            assert report.stores["source"].written == report.stores["files"].written == stopped_at
            assert forge.pending() == {"pg": BATCH}

            def crash_recovered() -> None:  # a real crash: recovery ran and kept every committed batch
                assert "automatic recovery in progress" in private.log.read_text()
                assert pg_count(private.url, et) == FAULT_AFTER * BATCH

            restart, replay, rounds, replayed = recover(private, forge, crash_recovered)
            assert pg_count(private.url, et) == stopped_at
            forge.write_many(items[stopped_at:])  # the rest, as the restarted job would send it
            assert forge.pending() == {}
            assert forge.audit(et).consistent
            counts = {"source": pg_count(postgres_url, et), "pg": pg_count(private.url, et),
                      "files": file_count(files, et)}
            finish(Outcome("PostgreSQL (private cluster)", "SIGKILL", "required", N, N - counts["pg"],
                           restart, replay, rounds, replayed, request.node.name), counts)
        finally:
            forge.close()
            shutil.rmtree(files, ignore_errors=True)  # 10,000 files: not left for pytest's exit-time cleanup
            pg_drop(postgres_url, et)


def test_postgres_source_sigkilled_mid_write(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The private PostgreSQL as the source of truth, SIGKILLed after batch 4: the next batch
    stops with WriteError, nothing reaches the other stores ahead of the source, and the failed
    batch is not kept in the journal (its caller got WriteError: replay must not apply it behind
    its back, issue 10). After the restart a replay has nothing to do, and a rerun of the whole
    job finishes without duplicates."""
    et = f"fspgsrc{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    items = entities(et)
    with PrivatePostgres() as private, PrivateRedis() as cache:
        forge = Forge([StoreHandle("pg", open_store(private.url), source=True),
                       StoreHandle("cache", open_store(cache.url, socket_timeout=2, socket_connect_timeout=2)),
                       StoreHandle("files", open_store(f"file://{files}?fsync=false"))],
                      ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"), write=SETTINGS)
        try:
            with pytest.raises(WriteError) as caught:
                forge.write_many(items, progress=after_batches(FAULT_AFTER, private.kill))
            report = caught.value.report
            done = FAULT_AFTER * BATCH
            assert report.entities == done + BATCH
            assert report.stores["pg"].status == "failed" and report.stores["pg"].written == done
            assert all(report.stores[n].written == done and report.stores[n].not_written == BATCH
                       for n in ("cache", "files"))
            assert forge.pending() == {}
            assert (redis_count(cache.url, et), file_count(files, et)) == (done, done)  # none ahead of the source

            def crash_recovered() -> None:  # a real crash: recovery ran and kept every committed batch
                assert "automatic recovery in progress" in private.log.read_text()
                assert pg_count(private.url, et) == done

            restart, replay, rounds, replayed = recover(private, forge, crash_recovered)
            assert pg_count(private.url, et) == redis_count(cache.url, et) == file_count(files, et) == done
            assert forge.audit(et).consistent
            rerun = forge.write_many(items)  # a rerun of the whole job: every write is an idempotent upsert
            assert rerun.complete
            assert forge.audit(et).consistent
            counts = {"pg": pg_count(private.url, et), "cache": redis_count(cache.url, et),
                      "files": file_count(files, et)}
            finish(Outcome("PostgreSQL (private cluster) as source", "SIGKILL", "source", N, N - counts["pg"],
                           restart, replay, rounds, replayed, request.node.name), counts)
        finally:
            forge.close()
            shutil.rmtree(files, ignore_errors=True)  # 10,000 files: not left for pytest's exit-time cleanup


def test_rabbitmq_required_stopped_mid_write(postgres_url: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    """A required private RabbitMQ node stopped (rabbitmqctl stop) after batch 4: WriteError after
    batch 5; after the restart a replay publishes batch 5 and the job resumes. The stream then
    holds exactly one event per entity: no batch was published twice."""
    et = f"fsamqp{uuid.uuid4().hex[:8]}"
    files = tmp_path / "files"
    items = entities(et)
    with PrivateRabbitMQ() as node:
        forge = Forge([StoreHandle("pg", open_store(postgres_url), source=True),
                       StoreHandle("events", open_store(node.url)),
                       StoreHandle("files", open_store(f"file://{files}?fsync=false"))],
                      ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"), write=SETTINGS)
        try:
            with pytest.raises(WriteError) as caught:
                forge.write_many(items, progress=after_batches(FAULT_AFTER, node.stop))
            report = caught.value.report
            stopped_at = report.entities
            assert stopped_at == (FAULT_AFTER + 1) * BATCH
            assert report.stores["events"].status == "failed" and report.stores["events"].pending == BATCH
            assert forge.pending() == {"events": BATCH}

            # No count between restart and replay here: for a moment after the port opens the stream
            # is not routable yet (the adapter's declare sees 404 "down or inaccessible" and retries),
            # and the replay is meant to meet that moment, as an operator's replay would. The final
            # count still shows that the 2,000 confirmed messages outlived the stop: replay and the
            # resumed job publish only the other 8,000.
            restart, replay, rounds, replayed = recover(node, forge)
            assert replayed == BATCH
            resumed = forge.write_many(items[stopped_at:])  # the rest, as the restarted job would send it
            assert resumed.stores["events"].written == N - stopped_at
            assert forge.pending() == {}
            assert forge.audit(et).consistent
            distinct, messages = stream_count(node.url, et)
            counts = {"pg": pg_count(postgres_url, et), "events": distinct, "files": file_count(files, et)}
            assert messages == N, f"{messages} messages for {distinct} entities: some batch was published twice"
            finish(Outcome("RabbitMQ (private node, stream)", "stop (rabbitmqctl)", "required", N,
                           N - distinct, restart, replay, rounds, replayed, request.node.name), counts)
        finally:
            forge.close()
            shutil.rmtree(files, ignore_errors=True)  # 10,000 files: not left for pytest's exit-time cleanup
            pg_drop(postgres_url, et)
