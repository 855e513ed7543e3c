"""Write-through deletes with in-process fakes: order, proof, journal, replay, tombstones, audit."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any, ClassVar

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace, ValidationError, WriteError
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import StoreUnavailableError
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import SCHEMA_VERSION, Journal
from uuid_forge.record import Record
from uuid_forge.settings import WriteSettings
from uuid_forge.tombstones import TOMBSTONE_TYPE, find, flag_id, parse_retention, purge_expired, tombstone_id

from .fakes import entities
from .scaffold import make_forge, run_cli, write_forge_toml

IDS = IDConfig(namespace=Namespace("deletes.test"), salt="s")


class FakeDownStore(MemoryAdapter):
    """A memory store whose every call fails as a refused connection while ``down`` is set."""

    name = "fake-down"

    def __init__(self, url: str = "memory://", down: bool = False, **options: Any) -> None:
        super().__init__(url, **options)
        self.down = down

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailableError("fake outage: connection refused", store=self.url())

    def _put(self, entity_type: str, records: list[Record]) -> None:
        self._check()
        super()._put(entity_type, records)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Any:
        self._check()
        return super()._get(entity_type, ids)

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        self._check()
        return super()._delete(entity_type, ids)


class FakeSharedStore(MemoryAdapter):
    """A memory store that says its container is shared with another application (as a user's own
    table, collection or index is), so a delete must prove each entry ours first."""

    name = "fake-shared"

    def shared(self, entity_type: str) -> bool:
        return True


class FakeTokenStore(MemoryAdapter):
    """A memory store that remembers the token of every delete (as a message log would use it)."""

    name = "fake-token"

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        self.tokens: list[str] = []

    def delete_many(self, entity_type: str, ids: Any, *, token: str = "") -> int:
        self.tokens.append(token)
        return super().delete_many(entity_type, ids, token=token)


def make(tmp_path: Path, *others: StoreHandle, source: MemoryAdapter | None = None,
         types: list[EntityType] | None = None) -> tuple[Forge, MemoryAdapter]:
    src = source if source is not None else MemoryAdapter()
    forge = make_forge(tmp_path, ("src", src), *others, ids=IDS, journal="j.sqlite3", types=types,
                       write=WriteSettings(retries=1, backoff=0.0, batch_size=100))
    forge._sleep = lambda s: None
    return forge, src


def ids_of(store: MemoryAdapter, entity_type: str = "user") -> set[uuid.UUID]:
    return set(store._data.get(entity_type, {}))


def test_delete_by_key_removes_it_everywhere_and_leaves_a_tombstone(tmp_path: Path) -> None:
    a, b = MemoryAdapter(), MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a), StoreHandle("b", b, required=False))
    forge.write_many(entities(5))
    gone = forge.id_for("user", {"email": "u1@example.com"})
    report = forge.delete("user", {"email": "u1@example.com"})
    assert report.ok and report.kind == "delete" and report.entities == 1
    assert {n: s.deleted for n, s in report.stores.items()} == {"src": 1, "a": 1, "b": 1}
    for store in (src, a, b):
        assert gone not in ids_of(store) and len(ids_of(store)) == 4
    stone = src._data[TOMBSTONE_TYPE][tombstone_id("user", gone)]
    assert stone.data["entity_type"] == "user" and stone.data["id"] == str(gone)
    assert set(stone.data) == {"entity_type", "id", "deleted_at"}, "a tombstone keeps no data"
    assert forge.pending() == {}
    assert "delete: 1 entity" in str(report) and "1 deleted" in str(report)


def test_delete_by_id_by_data_and_many(tmp_path: Path) -> None:
    order = EntityType("order", key=("number",))
    a = MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a), types=[order])
    forge.write_many(entities(4) + [("order", {"number": "A-1", "total": 3}), ("order", {"number": "A-2"})])
    u0, u1 = forge.id_for("user", {"email": "u0@example.com"}), forge.id_for("user", {"email": "u1@example.com"})
    forge.delete("user", id=u0)
    forge.delete("order", data={"number": "A-1"})
    report = forge.delete_many([("user", u1), {"entity_type": "user", "key": {"email": "u2@example.com"}},
                                {"entity_type": "order", "id": str(forge.id_for("order", data={"number": "A-2"}))}])
    assert report.entities == 3 and report.stores["a"].deleted == 3
    assert ids_of(src) == ids_of(a) == {forge.id_for("user", {"email": "u3@example.com"})}
    assert ids_of(src, "order") == ids_of(a, "order") == set()


def test_bad_items_fail_before_any_store_is_touched(tmp_path: Path) -> None:
    forge, src = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    forge.write_many(entities(2))
    with pytest.raises(ValidationError, match=r"deletes\[1\].*not a UUID"):
        forge.delete_many([("user", {"email": "u0@example.com"}), {"entity_type": "user", "id": "nope"}])
    with pytest.raises(ValidationError, match="reserved"):
        forge.delete_many([("uuid-forge.meta", {"x": 1})])
    assert len(ids_of(src)) == 2 and forge.pending() == {}


def test_an_unprovable_entry_in_a_shared_container_is_left_and_reported(tmp_path: Path) -> None:
    shared = FakeSharedStore()
    forge, _ = make(tmp_path, StoreHandle("shared", shared))
    forge.write_many(entities(3))
    victim = forge.id_for("user", {"email": "u0@example.com"})
    other = forge.id_for("user", {"email": "u1@example.com"})
    # another application's entry under the same name, holding no key of ours: not provable
    shared._data["user"][other] = Record("user", other, {"theirs": True})
    report = forge.delete_many([("user", {"email": "u0@example.com"}), ("user", {"email": "u1@example.com"})])
    res = report.stores["shared"]
    assert victim not in ids_of(shared) and other in ids_of(shared), "an unproven entry was deleted"
    assert res.deleted == 1 and res.unproven == 1 and res.unproven_ids == [f"user {other}"]
    assert any("cannot prove ours" in e and "theirs" not in e for e in res.errors)
    assert "1 left unproven" in str(report)


def test_a_source_that_fails_leaves_nothing_pending(tmp_path: Path) -> None:
    src = FakeDownStore()
    a = MemoryAdapter()
    forge, _ = make(tmp_path, StoreHandle("a", a), source=src)
    forge.write_many(entities(3))
    src.down = True
    with pytest.raises(WriteError, match="the source src could not delete") as failure:
        forge.delete("user", {"email": "u0@example.com"})
    said = str(failure.value)
    assert "1 entity not deleted anywhere" in said and "run the delete again" in said, said
    assert "written" not in said, said
    assert failure.value.report.stores["a"].status == "not attempted" and failure.value.report.stores["a"].deleted == 0
    assert forge.pending() == {} and len(ids_of(a)) == 3, "a store got ahead of the source"


def test_a_required_store_down_during_a_delete_says_the_delete_is_owed_to_it(tmp_path: Path) -> None:
    down = FakeDownStore()
    forge, _ = make(tmp_path, StoreHandle("cache", down))
    forge.write_many(entities(2))
    down.down = True
    with pytest.raises(WriteError) as failure:
        forge.delete("user", {"email": "u0@example.com"})
    said = str(failure.value)
    assert "required store(s) cache could not delete" in said and "the delete is owed to cache" in said, said
    assert "run 'uuid-forge replay'" in said and "written" not in said and "records" not in said, said
    assert forge.pending() == {"cache": 1}


def test_delete_with_both_key_and_id_is_refused_naming_both(tmp_path: Path) -> None:
    forge, src = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    forge.write_many(entities(2))
    u1 = forge.id_for("user", {"email": "u1@example.com"})
    with pytest.raises(ValidationError, match=r"delete\('user'\): give the key, the data or the id, not key and id"):
        forge.delete("user", {"email": "u0@example.com"}, id=u1)
    with pytest.raises(ValidationError, match=r"deletes\[0\] \(user\): give key, data or id, not key and id"):
        forge.delete_many([{"entity_type": "user", "key": {"email": "u0@example.com"}, "id": str(u1)}])
    assert len(ids_of(src)) == 2 and forge.pending() == {}, "something was deleted"


def test_a_key_the_source_never_held_is_deleted_nowhere_and_tombstoned_never(tmp_path: Path) -> None:
    a, log = MemoryAdapter(), FakeTokenStore()
    forge, src = make(tmp_path, StoreHandle("a", a), StoreHandle("log", log))
    forge.write_many(entities(2))
    typo = forge.id_for("user", {"email": "nobody@example.org"})
    report = forge.delete("user", {"email": "nobody@example.org"})
    assert report.ok and report.entities == 1 and report.not_in_source == 1
    assert report.not_in_source_ids == [f"user {typo}"]
    assert {n: s.deleted for n, s in report.stores.items()} == {"src": 0, "a": 0, "log": 0}
    assert log.tokens == [], "a delete event was published for an entity never written"
    assert find(src, [("user", typo)]) == {} and forge.pending() == {}
    assert "1 not in the source (nothing deleted; no tombstone" in str(report), str(report)
    assert "nobody@example.org" not in str(report)
    forge.write("user", {"email": "nobody@example.org"}, {"name": "first sign-up"})  # not refused
    unknown = [uuid.uuid4(), uuid.uuid4()]
    many = forge.delete_many([("user", i) for i in unknown] + [("user", {"email": "u0@example.com"})])
    assert many.not_in_source == 2 and many.stores["a"].deleted == 1 and len(log.tokens) == 1
    assert find(src, [("user", i) for i in unknown]) == {}
    dry = forge.delete_many([("user", unknown[0])], dry_run=True)
    assert dry.not_in_source == 1 and dry.stores["a"].deleted == 0


def test_force_deletes_everywhere_what_the_source_lost_and_tombstones_it(tmp_path: Path) -> None:
    a = MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a))
    forge.write_many(entities(2))
    gone = forge.id_for("user", {"email": "u0@example.com"})
    del src._data["user"][gone]  # the source was cleaned by hand; the other store still holds it
    plain = forge.delete("user", id=gone)
    assert plain.not_in_source == 1 and gone in ids_of(a)
    forced = forge.delete("user", id=gone, force=True)
    assert forced.not_in_source == 0 and forced.stores["a"].deleted == 1 and gone not in ids_of(a)
    assert find(src, [("user", gone)]), "a forced delete keeps a tombstone"
    again = forge.delete("user", id=gone)  # tombstoned: deleted already, not "not in the source"
    assert again.not_in_source == 0 and again.ok


def test_a_delete_while_an_optional_store_is_down_is_finished_by_replay(tmp_path: Path) -> None:
    down = FakeDownStore()
    tokens = FakeTokenStore()
    forge, src = make(tmp_path, StoreHandle("cache", down, required=False), StoreHandle("log", tokens))
    forge.write_many(entities(3))
    down.down = True
    report = forge.delete("user", {"email": "u0@example.com"})
    gone = forge.id_for("user", {"email": "u0@example.com"})
    assert report.ok and not report.complete and report.stores["cache"].status == "journaled"
    assert forge.pending() == {"cache": 1} and gone in ids_of(down)
    assert forge.journal.pending_delete_counts() == {"cache": 1}  # type: ignore[union-attr]
    batch = next(forge.journal.pending("cache"))  # type: ignore[union-attr]
    assert batch.op == "delete" and batch.token == tokens.tokens[-1] and batch.records[0].data == {}
    down.down = False
    again = forge.replay()
    assert again.stores["cache"].deleted == 1 and gone not in ids_of(down) and forge.pending() == {}
    stone = src._data[TOMBSTONE_TYPE][tombstone_id("user", gone)]
    assert tokens.tokens[-1] == stone.data["deleted_at"], "the delete was journaled under another token"


def test_replay_of_an_older_write_does_not_bring_a_deleted_entity_back(tmp_path: Path) -> None:
    a = MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a))
    # a writer crashed between its intent and the source write: its record waits in the journal
    forge.journal.record_intent(forge.records(entities(2)), ["src", "a"])  # type: ignore[union-attr]
    # another process (its own journal) deletes the entity meanwhile (forced: the source holds none yet)
    other = make_forge(tmp_path, ("src", src), ("a", a), ids=IDS, journal="other.sqlite3")
    other.delete("user", {"email": "u0@example.com"}, force=True)
    report = forge.replay()
    gone = forge.id_for("user", {"email": "u0@example.com"})
    kept = forge.id_for("user", {"email": "u1@example.com"})
    assert gone not in ids_of(src) and gone not in ids_of(a), "replay resurrected a deleted entity"
    assert kept in ids_of(src) and kept in ids_of(a)
    assert forge.pending() == {} and report.ok


def test_a_write_of_a_deleted_id_is_refused_unless_recreate(tmp_path: Path) -> None:
    a = MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a))
    forge.write_many(entities(3))
    forge.delete("user", {"email": "u0@example.com"})
    gone = forge.id_for("user", {"email": "u0@example.com"})
    with pytest.raises(WriteError, match=f"deleted.*user {gone}") as failure:
        forge.write_many(entities(3, version=2))
    report = failure.value.report
    assert report.refused_deleted == 1 and report.refused_deleted_ids == [f"user {gone}"]
    assert "User 0" not in str(failure.value), "the refusal shows the data"
    assert gone not in ids_of(src) and gone not in ids_of(a)
    assert src._data["user"][forge.id_for("user", {"email": "u1@example.com"})].data["v"] == 2, \
        "the other records were not written"
    again = forge.write("user", {"email": "u0@example.com"}, {"name": "back"}, recreate=True)
    assert again.ok and gone in ids_of(src) and gone in ids_of(a)
    assert find(src, [("user", gone)]) == {}, "recreate kept the tombstone"
    forge.write("user", {"email": "u0@example.com"}, {"name": "again"})  # no tombstone: an ordinary write


def test_no_tombstones_costs_one_read_per_batch(tmp_path: Path) -> None:
    class FakeCountingSource(MemoryAdapter):
        reads: ClassVar[list[tuple[str, int]]] = []

        def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Any:
            self.reads.append((entity_type, len(ids)))
            return super()._get(entity_type, ids)

    src = FakeCountingSource()
    forge, _ = make(tmp_path, StoreHandle("a", MemoryAdapter()), source=src)
    forge.write_many(entities(250))  # batches of 100: a type never deleted from costs its flag, one ID
    assert [n for t, n in src.reads if t == TOMBSTONE_TYPE] == [1, 1, 1]
    forge.delete("user", {"email": "u0@example.com"})
    src.reads.clear()
    with pytest.raises(WriteError):
        forge.write_many(entities(250, version=2))
    assert [n for t, n in src.reads if t == TOMBSTONE_TYPE] == [1, 100, 1, 100, 1, 50]


def test_purge_expired_tombstones(tmp_path: Path) -> None:
    forge, src = make(tmp_path, StoreHandle("a", MemoryAdapter()))
    forge.write_many(entities(3))
    forge.delete_many([("user", {"email": "u0@example.com"}), ("user", {"email": "u1@example.com"})])
    assert purge_expired(forge) == {}  # younger than 90 days
    assert purge_expired(forge, 0.0, dry_run=True) == {"user": 2} and len(src._data[TOMBSTONE_TYPE]) == 3
    assert purge_expired(forge, 0.0) == {"user": 2}
    assert list(src._data[TOMBSTONE_TYPE]) == [flag_id("user")], "the type's flag is kept (a purge may race a delete)"
    forge.write("user", {"email": "u0@example.com"}, {"name": "back"})  # purged: no longer refused
    assert parse_retention("90d") == 90 * 86400 and parse_retention("12h") == 43200 and parse_retention(60) == 60
    with pytest.raises(Exception, match="duration"):
        parse_retention("soon")


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    a = MemoryAdapter()
    forge, src = make(tmp_path, StoreHandle("a", a))
    forge.write_many(entities(3))
    report = forge.delete_many([("user", {"email": "u0@example.com"}), ("user", {"email": "nobody@example.com"})],
                               dry_run=True)
    assert report.dry_run and {n: s.deleted for n, s in report.stores.items()} == {"src": 1, "a": 1}
    assert len(ids_of(src)) == len(ids_of(a)) == 3 and TOMBSTONE_TYPE not in src._data and forge.pending() == {}
    assert str(report).startswith("delete (dry run)")


def test_journal_schema_3_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE entries (seq INTEGER PRIMARY KEY, entity_type TEXT NOT NULL, id BLOB NOT NULL, key TEXT,
            data TEXT NOT NULL, fp TEXT NOT NULL, created REAL NOT NULL, superseded INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE pending (store TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (store, lo)) WITHOUT ROWID;
        PRAGMA user_version = 3;""")
    db.execute("INSERT INTO entries VALUES (1, 'user', ?, '{\"email\":\"a\"}', '{\"n\":1}', 'fp', 1.0, 0)",
               (uuid.uuid4().bytes,))
    db.execute("INSERT INTO pending VALUES ('cache', 1, 1, 0, NULL)")
    db.commit()
    db.close()
    journal = Journal(path)
    batch = next(journal.pending("cache"))
    assert batch.op == "put" and batch.records[0].data == {"n": 1}
    assert journal._db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    journal.close()


def test_audit_reports_a_restored_deleted_entry_as_deleted_and_repair_removes_it(tmp_path: Path) -> None:
    a = MemoryAdapter()
    forge, _ = make(tmp_path, StoreHandle("a", a))
    forge.write_many(entities(20))
    gone = forge.id_for("user", {"email": "u0@example.com"})
    backup = a._data["user"][gone]
    forge.delete("user", {"email": "u0@example.com"})
    assert forge.audit("user").consistent, "a clean delete leaves findings"
    a._data["user"][gone] = backup  # the store restored from an old backup
    report = forge.audit("user")
    assert report.stores["a"]["deleted"] == 1 and report.stores["a"]["orphan"] == 0
    assert [f.kind for f in report.findings] == ["deleted"] and not report.consistent
    assert "1 deleted" in str(report)
    repaired = forge.audit("user", repair=True)  # no delete_orphans needed: the user asked for the deletion
    assert gone not in ids_of(a) and repaired.repaired["a"]["deleted_removed"] == 1
    assert repaired.consistent and forge.audit("user").consistent


def test_cli_delete(tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite3"
    files = tmp_path / "files"
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{db}", "files": f"file://{files}"},
                              "db", namespace="deletes.cli", journal=tmp_path / "j.sqlite3",
                              extra='[types.user]\nkey = ["email"]')
    env = {"UUID_FORGE_SALT": "pepper"}
    c = ["-c", str(config)]
    for i in range(3):
        code, output, error = run_cli(["write", *c, "user", "-d", f"email=u{i}@example.com", "-d", "name=N"], env)
        assert code == 0, output + error
    code, output, error = run_cli(["delete", *c, "--entity", "user", "--key", "email=u0@example.com", "--dry-run",
                                   "--json"], env)
    assert code == 0 and '"dry_run": true' in output, output + error
    assert json.loads(output)["stores"]["files"]["deleted"] == 1
    code, output, error = run_cli(["delete", *c, "--entity", "user", "--key", "email=u0@example.com"], env)
    assert code == 0, output + error
    assert "u0@example.com" not in output + error, "the key was printed"
    lines = tmp_path / "gone.jsonl"
    lines.write_text('{"entity_type": "user", "email": "u1@example.com"}\n')
    code, output, error = run_cli(["delete", *c, "--jsonl", str(lines), "--json"], env)
    assert code == 0 and json.loads(output)["stores"]["files"]["deleted"] == 1, output + error
    code, output, error = run_cli(["write", *c, "user", "-d", "email=u0@example.com", "-d", "name=N"], env)
    assert code == 2 and "deleted" in error and "--recreate" in error and "u0@example.com" not in error
    code, output, error = run_cli(["write", *c, "--recreate", "user", "-d", "email=u0@example.com", "-d", "name=N"],
                                  env)
    assert code == 0, output + error
    code, output, error = run_cli(["audit", *c], env)
    assert code == 0, output + error
    code, output, error = run_cli(["generate", "user", "--namespace", "deletes.cli", "-a", "email=u2@example.com"], env)
    u2 = output.strip()
    code, output, error = run_cli(["delete", *c, "--jsonl", "-", "--json"], env,
                                  stdin=json.dumps({"entity_type": "user", "id": u2}) + "\n")
    assert code == 0 and json.loads(output)["stores"]["files"]["deleted"] == 1, output + error
    code, output, error = run_cli(["delete", *c, "--entity", "user", "--id", u2], env)  # gone already: 0, no error
    assert code == 0 and "id: " + u2 in output, output + error
    code, output, error = run_cli(["delete", *c, "--entity", "user", "--id", "not-a-uuid"], env)
    assert code == 2 and "not a UUID" in error
    code, output, error = run_cli(["delete", *c, "--entity", "user", "--key", "email=nobody@example.org"], env)
    assert code == 0 and "warning: 1 entity not in the source db (nothing deleted; no tombstone)" in error, error
    assert "--force" in error and "nobody@example.org" not in output + error
    code, output, error = run_cli(["write", *c, "user", "-d", "email=nobody@example.org", "-d", "name=N"], env)
    assert code == 0, output + error
    code, output, error = run_cli(["delete", *c, "--entity", "user", "--id", str(uuid.uuid4()), "--force",
                                   "--json"], env)
    assert code == 0 and json.loads(output)["not_in_source"] == 0, output + error
    code, output, error = run_cli(["delete", *c, "--purge-expired", "--dry-run"], env)
    assert code == 0 and "would purge: 0" in output, output + error
    code, output, error = run_cli(["delete", "--help"], env)
    assert "Examples" in output and "--purge-expired" in output and "--jsonl" in output


def test_a_delete_journaled_before_a_crash_is_finished_by_replay_with_its_token(tmp_path: Path) -> None:
    tokens = FakeTokenStore()
    forge, src = make(tmp_path, StoreHandle("log", tokens))
    forge.write_many(entities(3))
    targets = forge.delete_targets([("user", {"email": "u2@example.com"})])
    # the writer crashed between the intent and the source: every store is owed the delete
    forge.journal.record_intent(targets, ["src", "log"], op="delete", token="2026-01-02T03:04:05.000006Z")  # type: ignore[union-attr]
    report = forge.replay()
    gone = targets[0].id
    assert report.ok and gone not in ids_of(src) and gone not in ids_of(tokens) and forge.pending() == {}
    assert tokens.tokens == ["2026-01-02T03:04:05.000006Z"], "the replayed delete changed its token"
    assert find(src, [("user", gone)]) == {("user", gone): "2026-01-02T03:04:05.000006Z"}


def test_a_repair_task_removes_a_deleted_entity_it_proves_again(tmp_path: Path) -> None:
    from uuid_forge.tasks import repair_claimed

    a = MemoryAdapter()
    forge, _ = make(tmp_path, StoreHandle("a", a))
    forge.write_many(entities(20))
    gone, kept = forge.id_for("user", {"email": "u0@example.com"}), forge.id_for("user", {"email": "u1@example.com"})
    backup = a._data["user"][gone]
    forge.delete("user", {"email": "u0@example.com"})
    a._data["user"][gone] = backup  # restored from a backup
    claims = [{"store": "a", "entity_type": "user", "id": str(gone), "class": "deleted"},
              {"store": "a", "entity_type": "user", "id": str(kept), "class": "deleted"}]  # a false claim
    done = repair_claimed(forge, claims)
    assert gone not in ids_of(a) and kept in ids_of(a)
    assert done["repaired"]["a"]["deleted_removed"] == 1 and done["not_proven"] == {"no longer true when re-read": 1}


class FakeOneTypeStore(MemoryAdapter):
    """A memory store that holds only ``user``, as a user's own table mapped to one type refuses others."""

    name = "fake-one-type"

    def check_entity_type(self, entity_type: str) -> str:
        if entity_type != "user" and not entity_type.startswith("uuid-forge."):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: it holds only 'user'")
        return super().check_entity_type(entity_type)


def test_delete_messages_name_the_value_and_the_place(tmp_path: Path) -> None:
    forge, _ = make(tmp_path, StoreHandle("people", FakeOneTypeStore()))
    with pytest.raises(ValidationError, match=r"^store people: entity type 'invoice' is not accepted by this store"):
        forge.delete("invoice", {"number": "A-1"})
    with pytest.raises(ValidationError) as bad:
        forge.delete("user", id="zz-zed.secret@example.org")
    assert "not a UUID" in str(bad.value) and "secret" not in str(bad.value), str(bad.value)
    with pytest.raises(ValidationError, match=r"^leavers.jsonl line 2 \(user\): id"):
        forge.delete_many([("user", uuid.uuid4()), {"entity_type": "user", "id": "nope"}],
                          places=["leavers.jsonl line 1", "leavers.jsonl line 2"])


def test_cli_delete_messages_name_what_was_given_and_where(tmp_path: Path) -> None:
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path / 'src.sqlite3'}"}, "db",
                              namespace="deletes.messages", journal=tmp_path / "j.sqlite3",
                              extra='[types.person]\nkey = ["email"]')
    env, c = {"UUID_FORGE_SALT": "pepper"}, ["-c", str(config)]
    code, _output, error = run_cli(["delete", *c, "--entity", "person"], env)
    assert code == 2 and "not both" not in error and "--key FIELD=VALUE" in error and "--id" in error, error
    code, _output, error = run_cli(["delete", *c, "--entity", "person", "--key", "emial=zed@example.org"], env)
    assert code == 2 and "--key emial: not a key field of entity type 'person'" in error, error
    assert "its key fields: email" in error and "zed@example.org" not in error, error
    code, _output, error = run_cli(["delete", *c, "--entity", "person", "--id", "zz-zed.secret@example.org"], env)
    assert code == 2 and "not a UUID" in error and "secret" not in error and "zed" not in error, error
    lines = tmp_path / "leavers.jsonl"
    lines.write_text('{"entity_type": "person", "email": "a@example.org"}\n'
                     '{"entity_type": "person", "id": "zz-zed.secret@example.org"}\n')
    for extra in ([], ["--erase"]):
        code, _output, error = run_cli(["delete", *c, "--jsonl", str(lines), *extra], env)
        assert code == 2 and f"{lines} line 2 (person): id" in error and "deletes[1]" not in error, error
        assert "secret" not in error


def test_cli_delete_exits_1_when_a_required_store_keeps_an_unproven_entry(tmp_path: Path) -> None:
    """An undeclared type's file holds its data only, so nothing proves it ours: the delete leaves it,
    and must not report success; the message says how to make entries provable."""
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path / 'src.sqlite3'}",
                                                            "files": f"file://{tmp_path / 'files'}"},
                              "db", namespace="deletes.cli", journal=tmp_path / "j.sqlite3")
    env, c = {"UUID_FORGE_SALT": "pepper"}, ["-c", str(config)]
    code, output, error = run_cli(["write", *c, "user", "-k", "email=ann@example.com", "-d", "name=Ann"], env)
    assert code == 0, output + error
    code, output, error = run_cli(["delete", *c, "--entity", "user", "-k", "email=ann@example.com"], env)
    assert code == 1, output + error
    assert "files still holds entries not proven ours" in error and "[types.user] key = [...]" in error, error
    assert "ann@example.com" not in output + error
    assert len(list((tmp_path / "files").rglob("*.json"))) == 1  # left, as the rule says
    code, output, error = run_cli(["delete", *c, "--entity", "user", "-k", "email=ann@example.com", "--dry-run"], env)
    assert code == 0, output + error  # a dry run deletes nothing: what it would leave is no failure
