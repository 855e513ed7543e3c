"""Erasure with proof on the real servers: one person erased from a PostgreSQL source, Redis,
MongoDB, Elasticsearch, files and RabbitMQ with a history stream; the report per store reads each
one back, says what remains (the stream is append-only) with the key masked in every output, and
the journal no longer holds the person's data. Another person beside them is untouched."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
import pika
import redis

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.contract import DELETE
from uuid_forge.entitytypes import EntityType
from uuid_forge.erasure import erase
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.record import Record

from .scaffold import forget_redis_type

EMAIL, OTHER = "jane.roe@example.org", "keep.me@example.org"
IDS = IDConfig(namespace=Namespace("erasure.integration.test"), salt="erase")


@pytest.fixture
def person_type() -> str:
    return f"person{uuid.uuid4().hex[:8]}"


@pytest.fixture
def forge(tmp_path: Path, postgres_url: str, redis_url: str, mongodb_url: str, elasticsearch_url: str,
          amqp_url: str, person_type: str) -> Iterator[Forge]:
    exchange = f"uf_test_erase_{uuid.uuid4().hex[:8]}"
    stores = [StoreHandle("pg", open_store(postgres_url), source=True),
              StoreHandle("cache", open_store(redis_url)),
              StoreHandle("docs", open_store(mongodb_url)),
              StoreHandle("search", open_store(elasticsearch_url)),
              StoreHandle("files", open_store(f"file://{tmp_path}/files")),
              StoreHandle("events", open_store(f"{amqp_url}?exchange={exchange}"))]
    f = Forge(stores, ids=IDS, journal=Journal(tmp_path / "journal.sqlite3"),
              types=[EntityType(person_type, key=("email",))])
    yield f
    try:
        f.drop(person_type)
        f.stores[-1].adapter.delete_topology()  # type: ignore[attr-defined]
    finally:
        f.close()
        forget_redis_type(redis_url, person_type)
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = conn.channel()
        channel.queue_delete(f"{exchange}.history")
        channel.exchange_delete(exchange)
        conn.close()


def test_erasure_report_for_one_person_across_every_store(forge: Forge, person_type: str, redis_url: str,
                                                        tmp_path: Path) -> None:
    forge.write_many([(person_type, {"email": EMAIL, "name": "Jane Roe", "city": "Lyon"}),
                      (person_type, {"email": OTHER, "name": "Keep Me", "city": "Oslo"})])
    gone, kept = forge.id_for(person_type, {"email": EMAIL}), forge.id_for(person_type, {"email": OTHER})
    # a dead letter of the person in the journal (a store refused the record once): data in the journal file
    assert forge.journal is not None
    record = Record(person_type, gone, {"email": EMAIL, "name": "Jane Roe"}, {"email": EMAIL})
    seqs = forge.journal.record_intent([record], ["cache"])
    forge.journal.mark_done("cache", seqs, dead=[(seqs[0], record, "refused by the test")])
    assert forge.journal.holds(person_type, [gone]) == 2

    report = erase(forge, [(person_type, {"email": EMAIL})])

    by = {s.name: s for s in report.stores}
    for name in ("pg", "cache", "docs", "search", "files"):
        s = by[name]
        assert (s.status, s.held_before, s.removed) == ("erased", 1, 1), (name, s)
        assert s.read_back == "get_many: 0 of 1 ID(s) found", name
        assert s.remains, name  # every real store says what a delete there does not erase
    assert any("VACUUM" in r for r in by["pg"].remains)
    assert any("_forcemerge?only_expunge_deletes=true" in r for r in by["search"].remains)
    assert any("RDB" in r for r in by["cache"].remains)
    events = by["events"]
    assert events.read_back.startswith("scan of the type: ")
    assert any("append-only" in r for r in events.remains)
    # the delete event is published, but a stream cannot remove a message: the person's earlier
    # messages stay until its retention, so the stream is "retained", never proven absent
    assert DELETE in forge.stores[-1].adapter.capabilities
    assert events.status == "retained", events
    assert events.still_held == [f"{person_type} {gone}"] and events.removed == 0 and events.held_before == 1
    assert "0 of 1 ID(s) found" in events.read_back and "still have earlier messages with data" in events.read_back
    assert any("delete event published" in e and "retention" in e for e in events.errors)
    assert not report.ok and "absence read back in 5 of 6 store(s)" in str(report)
    assert "events retained until the stream's retention" in str(report)
    assert {s.status for s in report.stores if s.name != "events"} == {"erased"}

    # absence, checked again with the raw drivers; the other person untouched everywhere
    raw = redis.Redis.from_url(redis_url)
    try:
        assert raw.exists(f"{person_type}:{gone}") == 0 and raw.exists(f"{person_type}:{kept}") == 1
    finally:
        raw.close()
    for name in ("pg", "cache", "docs", "search", "files"):
        adapter = by_name(forge, name)
        assert adapter.get_many(person_type, [gone, kept]).keys() == {kept}, name
    files = [p.read_bytes() for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert files and not any(EMAIL.encode() in b for b in files)

    # the journal: scrubbed, read back, and the file itself no longer holds the email
    assert report.journal is not None
    assert report.journal.dead_letters_removed == 1 and report.journal.entries_scrubbed >= 1
    assert report.journal.still_holding == 0
    journal_bytes = b"".join(Path(f"{tmp_path}/journal.sqlite3{s}").read_bytes()
                             for s in ("", "-wal") if os.path.exists(f"{tmp_path}/journal.sqlite3{s}"))
    assert EMAIL.encode() not in journal_bytes

    # the key masked in every output: text, JSON and the file kept as proof
    proof = tmp_path / "erasure.json"
    report.write(str(proof))
    outputs = [report.to_text(), json.dumps(report.to_dict()), str(report), proof.read_text()]
    for text in outputs:
        assert EMAIL not in text and "jane" not in text.lower() and "roe@" not in text
        assert str(gone) in text or text == str(report)
    assert report.entities[0].key.startswith('{"email": "j')  # the shape only
    assert (proof.stat().st_mode & 0o777) == 0o600


def by_name(forge: Forge, name: str) -> Any:
    return next(h.adapter for h in forge.stores if h.name == name)
