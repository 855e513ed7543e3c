"""Write-through semantics with in-process fakes: ordering, validation, retries, journal, replay."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace, UUIDGenerator, ValidationError, WriteError
from uuid_forge.events import event_id
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.settings import WriteSettings

from .fakes import FakeFlakyStore, all_ids, entities
from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("forge.test"), salt="s")


def make(tmp_path: Path, *others: StoreHandle, concurrent: bool = True, retries: int = 2) -> tuple[Forge, MemoryAdapter]:
    source = MemoryAdapter()
    forge = make_forge(tmp_path, ("src", source), *others, ids=IDS, journal="j.sqlite3",
                       write=WriteSettings(retries=retries, backoff=0.0, batch_size=100, concurrent=concurrent))
    forge._sleep = lambda s: None
    return forge, source


@pytest.mark.parametrize("concurrent", [True, False])
def test_every_store_gets_the_same_ids(tmp_path: Path, concurrent: bool) -> None:
    a, b = MemoryAdapter(), MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a), StoreHandle("b", b, required=False), concurrent=concurrent)
    report = forge.write_many(entities(250))
    expected = set(UUIDGenerator(IDS).generate_many("user", [k for _, k, _ in entities(250)]))
    assert all_ids([src, a, b], "user") == [expected] * 3
    assert report.ok and report.complete and report.entities == 250
    assert {n: s.written for n, s in report.stores.items()} == {"src": 250, "a": 250, "b": 250}
    assert forge.pending() == {}


def test_bad_data_fails_before_any_store_is_touched(tmp_path: Path) -> None:
    a = MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a))
    items = entities(50)
    items[30] = ("user", {"email": "bad@example.com"}, {"ratio": float("nan")})
    with pytest.raises(ValidationError, match=r"entities\[30\].*not a finite number"):
        forge.write_many(items)
    assert all_ids([src, a], "user") == [set(), set()]
    assert forge.pending() == {}


def test_entity_type_one_store_forbids_fails_before_writing(tmp_path: Path) -> None:
    forge, src = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    with pytest.raises(ValidationError, match="'../etc'"):
        forge.write_many([("user", {"e": 1}, {}), ("../etc", {"e": 2}, {})])
    assert all_ids([src], "user") == [set()]


def test_connection_errors_are_retried(tmp_path: Path) -> None:
    flaky = FakeFlakyStore(failures=2)
    forge, _ = make(tmp_path, StoreHandle("flaky", flaky), retries=3)
    report = forge.write_many(entities(10))
    assert report.ok and report.stores["flaky"].retries == 2 and flaky.calls == 3
    assert len(flaky.ids("user")) == 10


def test_optional_store_down_is_journaled_then_replayed(tmp_path: Path) -> None:
    cache = FakeFlakyStore(down=True)
    forge, src = make(tmp_path, StoreHandle("cache", cache, required=False))
    report = forge.write_many(entities(250))
    assert report.ok and not report.complete
    assert report.stores["cache"].status == "journaled" and report.stores["cache"].pending == 250
    assert forge.pending() == {"cache": 250}
    assert forge.replay().stores["cache"].pending == 250  # still down: stays in the journal
    cache.down = False
    replayed = forge.replay()
    assert replayed.stores["cache"].written == 250 and forge.pending() == {}
    assert cache.ids("user") == set(src._data["user"])


def test_required_store_down_raises_with_report_and_keeps_journal(tmp_path: Path) -> None:
    db = FakeFlakyStore(down=True)
    forge, src = make(tmp_path, StoreHandle("db", db))
    with pytest.raises(WriteError) as info:
        forge.write_many(entities(250))
    report = info.value.report
    assert report.stores["db"].status == "failed" and "fake outage" in str(info.value)
    assert report.entities == 100  # stops after the first failed batch
    assert forge.pending() == {"db": 100}
    db.down = False
    forge.replay()
    assert forge.pending() == {} and db.ids("user") == set(src._data["user"])


def test_source_down_drops_the_batch_and_others_untouched(tmp_path: Path) -> None:
    """The caller got WriteError: the batch is not kept to be applied later behind its back."""
    src = FakeFlakyStore(down=True)
    other = MemoryAdapter()
    forge = Forge([StoreHandle("src", src, source=True), StoreHandle("other", other)], ids=IDS,
                  journal=Journal(tmp_path / "j.sqlite3"), write=WriteSettings(retries=1, backoff=0.0, batch_size=100))
    forge._sleep = lambda s: None
    with pytest.raises(WriteError):
        forge.write_many(entities(10))
    assert other._data == {} and forge.pending() == {}
    src.down = False
    forge.replay()
    assert forge.pending() == {} and other._data == {} and src._data == {}


def test_replay_never_lets_a_store_get_ahead_of_the_source(tmp_path: Path) -> None:
    src = FakeFlakyStore(down=True)
    other = MemoryAdapter()
    forge = Forge([StoreHandle("src", src, source=True), StoreHandle("other", other)], ids=IDS,
                  journal=Journal(tmp_path / "j.sqlite3"), write=WriteSettings(retries=0, backoff=0.0))
    # a writer that crashed between the intent and the source write left the batch for every store
    forge.journal.record_intent(forge.records(entities(5)), ["src", "other"])  # type: ignore[union-attr]
    forge.replay()
    assert other._data == {} and forge.pending() == {"src": 5, "other": 5}


def test_journal_is_private(tmp_path: Path) -> None:
    forge, _ = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    forge.write_many(entities(3))
    journal = tmp_path / "j.sqlite3"
    assert journal.is_file(), "the journal was not written where it was configured"
    assert stat.S_IMODE(os.stat(journal).st_mode) == 0o600
    for path in (tmp_path / "j.sqlite3-wal", tmp_path / "j.sqlite3-shm"):
        if path.exists():  # SQLite's side files come and go with its journal mode and checkpoints
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path.name


def test_journal_survives_reopening(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    forge, _ = make(tmp_path, StoreHandle("a", FakeFlakyStore(down=True), required=False))
    forge.journal = journal
    forge.write_many(entities(7))
    journal.close()
    again = Journal(tmp_path / "j.sqlite3")
    assert again.pending_counts() == {"a": 7}
    batch = next(again.pending("a"))
    assert len(batch.records) == 7 and batch.records[0].key == {"email": "u0@example.com"}


def test_write_returns_report_for_one_entity(tmp_path: Path) -> None:
    forge, src = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    report = forge.write("user", {"email": "x@y.z"}, {"n": 1})
    assert report.entities == 1 and report.ok
    assert forge.id_for("user", {"email": "x@y.z"}) in src._data["user"]


def test_iterator_input_streams_in_batches(tmp_path: Path) -> None:
    forge, src = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    seen: list[int] = []
    forge.write_many(iter(entities(250)), progress=seen.append)
    assert seen == [100, 100, 50] and len(src._data["user"]) == 250


def test_event_ids_are_deterministic_per_version() -> None:
    forge_id = UUIDGenerator(IDS).generate("user", email="a@b.c")
    assert event_id(forge_id, "upserted", "fp1") == event_id(forge_id, "upserted", "fp1")
    assert event_id(forge_id, "upserted", "fp1") != event_id(forge_id, "upserted", "fp2")
    assert event_id(forge_id, "upserted", "fp1") != event_id(forge_id, "deleted", "fp1")


def test_journal_with_one_row_per_record_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    from uuid_forge.journal import SCHEMA

    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(SCHEMA.split("CREATE TABLE IF NOT EXISTS pending")[0] + """
        CREATE TABLE pending (store TEXT NOT NULL, seq INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT, PRIMARY KEY (store, seq)) WITHOUT ROWID;""")
    record = entities(1)[0]
    forge, _ = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    rec = forge.records([record])[0]
    db.execute("INSERT INTO entries (seq, entity_type, id, key, data, fp, created) VALUES (1, ?, ?, ?, ?, ?, 0)",
               (rec.entity_type, rec.id.bytes, rec.key_json, rec.data_json, rec.fingerprint))
    db.execute("INSERT INTO pending VALUES ('a', 1, 0, NULL)")
    db.commit()
    db.close()
    journal = Journal(path)
    assert journal.pending_counts() == {"a": 1}
    assert [r.id for r in next(journal.pending("a")).records] == [rec.id]
    journal.mark_done("a", [1])
    assert journal.pending_counts() == {}


def test_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from uuid_forge import ConfigError

    path = tmp_path / "new.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(ConfigError, match="newer uuid-forge"):
        Journal(path)



def test_an_optional_store_down_for_a_whole_batch_is_not_retried_by_the_next_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its records go to the journal at once (waiting through every retry of every batch made a
    100k write 12x slower); replay tries it again, and so does the next write. (A required store
    down stops the write at its first batch.)"""
    from uuid_forge import forge as forge_module

    down = FakeFlakyStore(down=True)
    forge = make_forge(tmp_path, MemoryAdapter(), StoreHandle("cache", down, required=False),
                       write=WriteSettings(retries=2, backoff=0.0, batch_size=10))
    forge._sleep = lambda s: None
    report = forge.write_many(entities(50))
    assert report.stores["cache"].pending == 50 and report.stores["cache"].status == "journaled"
    assert down.calls == 3  # the first batch's attempt and 2 retries; the 4 batches after it not tried
    assert forge.pending() == {"cache": 50}
    assert forge.replay().stores["cache"].pending == 50 and down.calls == 6  # replay tries once more, then skips
    down.down = False
    assert forge.replay().stores["cache"].written == 50 and forge.pending() == {}
    down.down, down.calls = True, 0
    monkeypatch.setattr(forge_module, "DOWN_WINDOW", 0.0)  # no window: every batch waits through its retries
    forge.write_many(entities(20, version=2))
    assert down.calls == 6
