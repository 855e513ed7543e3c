"""Replay never resurrects old versions; a poison record becomes a dead letter (in-process fakes).

The integration suite (integration/test_replay_and_poison_records.py) proves the same on real servers.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace, WriteError
from uuid_forge.cli import main
from uuid_forge.errors import StoreConfigError, StoreRejectedError
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.record import Record
from uuid_forge.settings import WriteSettings
from uuid_forge.writes import error_reason, put_isolating

from .fakes import FakeFlakyStore, entities
from .scaffold import make_forge, write_forge_toml

IDS = IDConfig(namespace=Namespace("safety.test"), salt="s")


class FakePickyStore(MemoryAdapter):
    """A memory store that refuses any record whose data has ``poison`` (as a store refuses a NUL
    in jsonb): the whole native batch fails, as one SQL transaction would."""

    name = "fake-picky"

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        self.calls = 0

    def _put(self, entity_type: str, records: list[Record]) -> None:
        self.calls += 1
        if any(r.json_data.get("poison") for r in records):
            raise StoreRejectedError("fake: value rejected", store=self.url())
        super()._put(entity_type, records)


def make(tmp_path: Path, source: MemoryAdapter, *others: StoreHandle, batch_size: int = 100) -> Forge:
    forge = make_forge(tmp_path, ("src", source), *others, ids=IDS, journal="j.sqlite3",
                       write=WriteSettings(retries=1, backoff=0.0, batch_size=batch_size))
    forge._sleep = lambda s: None
    return forge


def versions(store: MemoryAdapter) -> set[int]:
    return {r.json_data["v"] for r in store._data.get("user", {}).values()}


# ---------------------------------------------------------------- replay: no older version over a newer one

def test_source_failure_is_not_replayed_over_a_later_write(tmp_path: Path) -> None:
    src, other = FakeFlakyStore(down=True), MemoryAdapter()
    forge = make(tmp_path, src, StoreHandle("other", other))
    with pytest.raises(WriteError):
        forge.write_many(entities(5, version=1))
    assert forge.pending() == {}  # the caller got WriteError: nothing kept to apply behind its back
    src.down = False
    forge.write_many(entities(5, version=2))
    forge.replay()
    assert versions(src) == versions(other) == {2}


def test_required_store_replay_writes_the_source_current_record(tmp_path: Path) -> None:
    src, other = MemoryAdapter(), FakeFlakyStore(down=True)
    forge = make(tmp_path, src, StoreHandle("other", other))
    with pytest.raises(WriteError):
        forge.write_many(entities(5, version=1))
    assert forge.pending() == {"other": 5}
    other.down = False
    forge.write_many(entities(5, version=2))
    forge.replay()
    assert forge.pending() == {} and versions(src) == versions(other) == {2}


def test_optional_store_replay_writes_the_source_current_record(tmp_path: Path) -> None:
    src, other = MemoryAdapter(), FakeFlakyStore(down=True)
    forge = make(tmp_path, src, StoreHandle("other", other, required=False))
    assert forge.write_many(entities(5, version=1)).stores["other"].status == "journaled"
    other.down = False
    forge.write_many(entities(5, version=2))
    forge.replay()
    assert forge.pending() == {} and versions(src) == versions(other) == {2}


def test_replay_deletes_what_the_source_no_longer_has(tmp_path: Path) -> None:
    src, other = MemoryAdapter(), FakeFlakyStore(down=True)
    forge = make(tmp_path, src, StoreHandle("other", other, required=False))
    forge.write_many(entities(3))
    other.down = False
    other._data["user"] = dict(src._data["user"])  # an older copy reached it some other way
    gone = next(iter(src._data["user"]))
    src.delete_many("user", [gone])
    forge.replay()
    assert gone not in other._data["user"] and len(other._data["user"]) == 2


def test_crashed_intent_is_superseded_by_a_landed_newer_write(tmp_path: Path) -> None:
    src, other = MemoryAdapter(), MemoryAdapter()
    forge = make(tmp_path, src, StoreHandle("other", other))
    assert forge.journal is not None
    # a writer crashed between the intent (v1) and the source write: every store is owed it
    forge.journal.record_intent(forge.records(entities(4, version=1)), ["src", "other"])
    forge.write_many(entities(4, version=2))  # a later write of the same IDs lands everywhere
    forge.replay()
    assert forge.pending() == {} and versions(src) == versions(other) == {2}


def test_crashed_intent_is_applied_when_nothing_newer_landed(tmp_path: Path) -> None:
    src, other = FakeFlakyStore(), MemoryAdapter()
    forge = make(tmp_path, src, StoreHandle("other", other))
    assert forge.journal is not None
    forge.journal.record_intent(forge.records(entities(4, version=1)), ["src", "other"])  # crash, no answer
    src.down = True
    with pytest.raises(WriteError):  # v2 failed at the source: it supersedes nothing
        forge.write_many(entities(4, version=2))
    src.down = False
    forge.replay()
    assert forge.pending() == {} and versions(src) == versions(other) == {1}


def test_supersede_marks_only_older_entries_of_the_same_id(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    forge = make(tmp_path / "x", MemoryAdapter())
    old = forge.records(entities(3, version=1))
    new = forge.records(entities(1, version=2))  # the same ID as old[0] only
    seqs = journal.record_intent(old, ["src"])
    newer = journal.record_intent(new, ["src"])
    journal.mark_done("src", newer, landed=list(zip(newer, new)))
    batch = next(journal.pending("src"))
    assert batch.record_seqs == seqs and batch.superseded == {seqs[0]}


# ---------------------------------------------------------------- poison records: dead letters

def test_poison_record_in_the_source_is_isolated_and_named(tmp_path: Path) -> None:
    src, other = FakePickyStore(), MemoryAdapter()
    forge = make(tmp_path, src, StoreHandle("other", other))
    items = entities(20)
    items[7][2]["poison"] = True
    with pytest.raises(WriteError) as info:
        forge.write_many(items)
    report = info.value.report
    bad = forge.id_for("user", items[7][1])
    assert report.stores["src"].dead_letters == 1 and str(bad) in str(info.value)
    assert "unreachable" not in str(info.value)
    assert len(src._data["user"]) == len(other._data["user"]) == 19 and bad not in other._data["user"]
    assert forge.pending() == {}
    assert forge.journal is not None
    [dead] = forge.journal.dead_letters()
    assert (dead.store, dead.id, dead.attempts) == ("src", bad, 1) and "value rejected" in dead.reason
    assert src.calls <= 2 + 2 * 5  # bisection, not one call per record


def test_poison_record_in_a_required_store_does_not_block_it(tmp_path: Path) -> None:
    src, other = MemoryAdapter(), FakePickyStore()
    forge = make(tmp_path, src, StoreHandle("other", other), batch_size=10)
    items = entities(30)
    items[3][2]["poison"] = True
    items[25][2]["poison"] = True
    with pytest.raises(WriteError) as info:
        forge.write_many(items)
    report = info.value.report
    assert report.entities == 30  # dead letters do not stop the job
    assert report.stores["other"].dead_letters == 2 and report.stores["other"].written == 28
    assert len(src._data["user"]) == 30 and len(other._data["user"]) == 28
    assert forge.pending() == {} and forge.journal is not None
    assert forge.journal.dead_letter_counts() == {"other": 2}


def test_dead_letters_retry_and_drop(tmp_path: Path) -> None:
    src, other = MemoryAdapter(), FakePickyStore()
    forge = make(tmp_path, src, StoreHandle("other", other, required=False))
    items = entities(6)
    items[2][2]["poison"] = True
    report = forge.write_many(items)
    assert report.ok and report.stores["other"].dead_letters == 1
    journal = forge.journal
    assert journal is not None
    assert journal.retry_dead_letters("other") == 1 and forge.pending() == {"other": 1}
    forge.replay()  # still poison: a dead letter again, with its count of attempts; not stuck
    assert forge.pending() == {}
    [dead] = journal.dead_letters()
    assert dead.attempts == 2
    # the source is fixed: a retry now lands the source's current record
    bad = forge.id_for("user", items[2][1])
    src._data["user"][bad] = Record("user", bad, {"name": "fixed", "v": 1}, {"email": "u2@example.com"})
    assert journal.retry_dead_letters(ident=bad) == 1
    forge.replay()
    assert journal.dead_letters() == [] and other._data["user"][bad].json_data["name"] == "fixed"
    # drop: forgets it, and its entry
    items[2][2].pop("poison")
    items[4][2]["poison"] = True
    forge.write_many(items)
    assert journal.drop_dead_letters("other") == 1
    assert journal.dead_letters() == [] and journal._db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 0


def test_store_config_error_is_not_retried_and_stays_pending(tmp_path: Path) -> None:
    class Locked(MemoryAdapter):
        calls = 0

        def _put(self, entity_type: str, records: list[Record]) -> None:
            Locked.calls += 1
            raise PermissionError(13, "Permission denied")

    forge = make(tmp_path, MemoryAdapter(), StoreHandle("other", Locked()))
    with pytest.raises(WriteError) as info:
        forge.write_many(entities(5))
    assert Locked.calls == 1 and forge.pending() == {"other": 5}
    assert "refused by the store" in str(info.value) and "unreachable" not in str(info.value)


def test_put_isolating_finds_every_bad_record() -> None:
    records = list(range(37))
    bad = {0, 17, 36}

    def attempt(part: list[Any]) -> tuple[bool, str, Any]:
        hit = [r for r in part if r in bad]
        return (False, f"bad {hit[0]}", StoreRejectedError) if hit else (True, "", None)

    ok, _, rejected = put_isolating(records, attempt)  # type: ignore[arg-type]
    assert ok and {i for i, _ in rejected} == bad

    def down(part: list[Any]) -> tuple[bool, str, Any]:
        return (False, "down", StoreConfigError) if len(part) < 37 else (False, "bad", StoreRejectedError)

    assert put_isolating(records, down) == (False, "down", [])  # type: ignore[arg-type]


def test_reason_drops_quoted_statement_and_data() -> None:
    err = Exception("DataError: unsupported Unicode escape sequence\nCONTEXT:  JSON data, line 1: {\"ssn\":\"SSN-1\"\n"
                    "[SQL: INSERT ...]\n[parameters: ('SSN-078-05-1120',)]")
    assert error_reason(err) == "DataError: unsupported Unicode escape sequence"
    assert len(error_reason(Exception("x" * 100_000))) <= 500


def test_sql_errors_are_classified_by_code() -> None:
    pytest.importorskip("sqlalchemy")
    from uuid_forge.adapters.sql import _classify_sql

    def pg(state: str) -> Any:
        return SimpleNamespace(orig=SimpleNamespace(sqlstate=state, args=("x",)))

    def my(code: int) -> Any:
        return SimpleNamespace(orig=SimpleNamespace(args=(code, "x")))

    assert _classify_sql(pg("22P05")) is StoreRejectedError  # \u0000 in jsonb
    assert _classify_sql(pg("23505")) is StoreRejectedError
    assert _classify_sql(pg("28P01")) is StoreConfigError  # bad password
    assert _classify_sql(pg("3D000")) is StoreConfigError  # unknown database
    assert _classify_sql(pg("08006")) is None  # connection failure: transient
    assert _classify_sql(my(4025)) is StoreRejectedError  # CHECK json_valid (nesting) on MariaDB
    assert _classify_sql(my(1045)) is StoreConfigError
    assert _classify_sql(my(2003)) is None


# ---------------------------------------------------------------- the journal command

def test_journal_cli_lists_retries_and_drops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal_path = tmp_path / "j.sqlite3"
    config = write_forge_toml(tmp_path / "uuid-forge.toml",
                              {"src": "memory://", "other": {"url": "memory://", "optional": True}}, "src",
                              journal=journal_path)
    src, other = MemoryAdapter(), FakePickyStore()
    forge = make(tmp_path, src, StoreHandle("other", other, required=False))
    items = entities(4)
    items[1][2]["poison"] = True
    forge.write_many(items)
    forge.close()
    capsys.readouterr()
    assert main(["journal", "-c", str(config), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stores"]["other"] == {"role": "optional", "pending": 0, "dead_letters": 1}
    assert main(["journal", "dead-letters", "-c", str(config), "--json"]) == 0
    out = capsys.readouterr().out
    [row] = json.loads(out)
    assert row["store"] == "other" and row["entity_type"] == "user" and "value rejected" in row["reason"]
    assert "User 1" not in out  # never the data
    assert main(["journal", "retry", "-c", str(config), "--store", "nope"]) == 2
    assert "'nope'" in capsys.readouterr().err
    assert main(["journal", "drop", "-c", str(config), "--all"]) == 2  # no --yes
    assert main(["journal", "retry", "-c", str(config), "--id", row["id"]]) == 0
    assert Journal(journal_path).pending_counts() == {"other": 1}
    assert main(["journal", "drop", "-c", str(config), "--id", str(uuid.uuid4()), "--yes"]) == 0
    assert "0 dead letter(s) dropped" in capsys.readouterr().out


def test_a_store_own_validation_error_is_a_dead_letter_not_a_crash(tmp_path: Path) -> None:
    """A store's validate_records refusing one record (a field its table has no column for) used to
    escape write_many with the whole batch pending for every store, and replay raised it forever."""
    from uuid_forge.errors import ValidationError

    class Columns(MemoryAdapter):
        def validate_records(self, entity_type: str, records: list[Record]) -> None:
            for r in records:
                if "extra" in r.json_data:
                    raise ValidationError(f"{entity_type} {r.id}: data field 'extra' has no column")

    src, other = MemoryAdapter(), Columns()
    forge = make(tmp_path, src, StoreHandle("other", other))
    items = entities(8)
    items[5][2]["extra"] = 1
    with pytest.raises(WriteError) as info:
        forge.write_many(items)
    assert info.value.report.stores["other"].dead_letters == 1 and len(other._data["user"]) == 7
    assert forge.pending() == {} and forge.replay().ok


def test_schema_2_journal_gains_the_supersede_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v2.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE entries (seq INTEGER PRIMARY KEY, entity_type TEXT NOT NULL, id BLOB NOT NULL, key TEXT,
            data TEXT NOT NULL, fp TEXT NOT NULL, created REAL NOT NULL);
        CREATE TABLE pending (store TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (store, lo)) WITHOUT ROWID;
        PRAGMA user_version = 2;""")
    rec = make(tmp_path, MemoryAdapter()).records(entities(1))[0]
    db.execute("INSERT INTO entries VALUES (1, ?, ?, ?, ?, ?, 0)",
               (rec.entity_type, rec.id.bytes, rec.key_json, rec.data_json, rec.fingerprint))
    db.execute("INSERT INTO pending VALUES ('a', 1, 1, 0, NULL)")
    db.commit()
    db.close()
    journal = Journal(path)
    batch = next(journal.pending("a"))
    assert batch.records[0].id == rec.id and batch.superseded == set()
    assert journal.dead_letter_counts() == {}
