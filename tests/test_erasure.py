"""Erasure with proof (uuid_forge.erasure): the report, the read-back, the journal scrub, masking.

In-process memory stores; integration/test_erasure.py proves the same on the real servers.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace
from uuid_forge.contract import BACKUPS, DELETE, READ, SCAN, WRITE
from uuid_forge.entitytypes import EntityType
from uuid_forge.erasure import ErasureReport, StoreErasure, erase, masked_key
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.record import DELETED, Record

IDS = IDConfig(namespace=Namespace("erasure.test"), salt="s")
EMAIL = "john.doe@example.com"


class FakeScanOnlyStore(MemoryAdapter):
    """A store that can scan but not read by ID nor delete, like a message log."""

    name = "fake-log"
    capabilities = frozenset({WRITE, SCAN})

    def erasure_limits(self, entity_type: str) -> list[str]:
        return ["the log is append-only: old messages stay until retention drops them"]


class FakeSharedStore(MemoryAdapter):
    """A memory store that says it is shared with other applications (as the user's own table is):
    a delete there removes only entries proven ours."""

    name = "fake-shared"

    def shared(self, entity_type: str) -> bool:
        return True


class FakeAppendOnlyLog(MemoryAdapter):
    """A fake message log with a history stream: a delete publishes a delete event, and every
    message stays (``scan_log`` gives every event, oldest first), as RabbitMQ's stream does."""

    name = "fake-stream"
    capabilities = frozenset({WRITE, SCAN, DELETE})
    append_only = True

    def __init__(self, url: str = "memory://") -> None:
        super().__init__(url)
        self.events: list[tuple[str, uuid.UUID, str]] = []

    def _put(self, entity_type: str, records: list[Record]) -> None:
        super()._put(entity_type, records)
        self.events += [(entity_type, r.id, "data") for r in records]

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        super()._delete(entity_type, ids)  # the latest event is the delete: no longer listed by a scan
        self.events += [(entity_type, i, DELETED) for i in ids]
        return len(ids)

    def scan_log(self, entity_type: str, handle: Callable[[tuple[uuid.UUID, str]], None]) -> None:
        for t, i, fp in self.events:
            if t == entity_type:
                handle((i, fp))


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[Forge]:
    f = Forge([StoreHandle("src", MemoryAdapter("memory://"), source=True),
               StoreHandle("cache", MemoryAdapter("memory://")),
               StoreHandle("log", FakeScanOnlyStore("memory://"), required=False)],
              ids=IDS, journal=Journal(tmp_path / "j.sqlite3"),
              types=[EntityType("person", key=("email",))])
    yield f
    f.close()


def test_erasure_report_proves_absence_and_masks_the_key(forge: Forge, tmp_path: Path) -> None:
    forge.write_many([("person", {"email": EMAIL, "name": "John"}), ("person", {"email": "x@y.z", "name": "X"})])
    ident = forge.id_for("person", {"email": EMAIL})
    report = erase(forge, [("person", {"email": EMAIL})])
    by = {s.name: s for s in report.stores}
    assert by["src"].status == "erased" and by["src"].held_before == 1 and by["src"].removed == 1
    assert by["src"].read_back == "get_many: 0 of 1 ID(s) found"
    assert by["cache"].status == "erased"
    # the scan-only store without delete still holds it, and says so: the erasure is not complete
    assert by["log"].status == "held" and by["log"].still_held == [f"person {ident}"]
    assert by["log"].read_back.startswith("scan of the type: 1 of 1")
    assert any("has no delete" in e for e in by["log"].errors)
    assert by["log"].remains == ["the log is append-only: old messages stay until retention drops them"]
    assert by["src"].remains == []  # memory: nothing outlives a delete
    assert not report.ok
    # the other person is untouched
    other = forge.id_for("person", {"email": "x@y.z"})
    assert other in forge.stores[0].adapter.get_many("person", [other])
    for text in (report.to_text(), json.dumps(report.to_dict()), str(report)):
        assert EMAIL not in text and "john" not in text.lower()
    assert report.entities[0].key == masked_key({"email": EMAIL}) != ""
    assert str(ident) in report.to_text()


def test_all_stores_erased_is_ok_and_the_file_is_private(forge: Forge, tmp_path: Path) -> None:
    forge.stores = forge.stores[:2]
    forge.write_many([("person", {"email": EMAIL, "name": "John"})])
    report = erase(forge, [{"entity_type": "person", "data": {"email": EMAIL}}])
    assert report.ok, report.to_text()
    assert str(report).startswith("erasure ") and ": erased: 1 entity" in str(report)
    path = tmp_path / "proof.json"
    report.write(str(path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["ok"] is True and saved["entities"][0]["id"] == str(forge.id_for("person", {"email": EMAIL}))
    assert EMAIL not in path.read_text()
    text = tmp_path / "proof.txt"
    report.write(str(text))
    assert "read back: get_many: 0 of 1 ID(s) found" in text.read_text()
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception, match="symbolic link"):
        report.write(str(link))


def test_an_entity_never_written_is_absent_by_id(forge: Forge) -> None:
    forge.stores = forge.stores[:2]
    ident = uuid.uuid4()
    report = erase(forge, [{"entity_type": "person", "id": str(ident)}])
    assert [s.status for s in report.stores] == ["absent", "absent"]
    assert report.ok and report.entities[0].key == ""
    assert "(given by ID)" in report.to_text()


def test_an_unproven_entry_is_left_and_named(forge: Forge) -> None:
    """Another application's entry under the ID (no key fields in it) is not deleted: held, with why."""
    forge.stores = [forge.stores[0], StoreHandle("cache", FakeSharedStore("memory://"))]
    ident = forge.id_for("person", {"email": EMAIL})
    forge.stores[1].adapter.put_many([Record("person", ident, {"theirs": 1})])
    report = erase(forge, [("person", {"email": EMAIL})])
    cache = report.stores[1]
    assert cache.status == "held" and not report.ok
    assert any("not proven ours" in e for e in cache.errors)  # mine, after the delete path's own


def test_the_journal_is_scrubbed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    keep, gone = uuid.uuid4(), uuid.uuid4()
    records = [Record("person", gone, {"email": EMAIL}, {"email": EMAIL}), Record("person", keep, {"email": "k@k.k"})]
    seqs = journal.record_intent(records, ["src", "cache"])
    journal.mark_done("src", seqs, dead=[(seqs[0], records[0], "refused")])
    assert journal.holds("person", [gone]) == 2  # the entry and its dead letter
    scrubbed, dead = journal.erase("person", [gone])
    assert (scrubbed, dead) == (1, 1)
    assert journal.holds("person", [gone]) == 0 and journal.holds("person", [keep]) == 1
    batch = next(journal.pending("cache"))  # the batch is still owed to cache: the scrubbed entry kept, empty
    assert [r.data for r in batch.records] == [{}, {"email": "k@k.k"}]
    assert batch.superseded == {seqs[0]}  # never replayed to the source
    journal.close()
    for name in ("j.sqlite3", "j.sqlite3-wal"):
        path = tmp_path / name
        if path.exists():
            assert EMAIL.encode() not in path.read_bytes(), name


def test_bad_items_fail_before_any_store_is_touched(forge: Forge) -> None:
    forge.write_many([("person", {"email": EMAIL, "name": "John"})])
    with pytest.raises(Exception, match="items\\[1\\]"):
        erase(forge, [("person", {"email": EMAIL}), {"key": 1}])
    ident = forge.id_for("person", {"email": EMAIL})
    assert ident in forge.stores[0].adapter.get_many("person", [ident])


def test_every_adapter_says_what_it_cannot_erase(tmp_path: Path) -> None:
    from uuid_forge.registry import adapter_class, open_store

    for scheme in ("postgresql", "mongodb", "redis", "elasticsearch", "amqp", "file"):
        assert "erasure_limits" in vars(adapter_class(scheme)), scheme
    with open_store(f"sqlite:///{tmp_path}/x.sqlite3") as sqlite:
        limits = sqlite.erasure_limits("person")
    assert "secure_delete" in limits[0] and limits[-1] == BACKUPS
    with open_store(f"file://{tmp_path}/files") as files:
        assert files.erasure_limits("person")[-1] == BACKUPS and "unlinked" in files.erasure_limits("person")[0]


def test_report_text_of_a_held_store() -> None:
    report = ErasureReport(stores=[StoreErasure("s", "required", "redis://h", status="unverified",
                                                errors=["read back failed: down"], remains=["r"])])
    assert "NOT fully erased" in str(report) and "s unverified" in str(report)
    assert "error: read back failed: down" in report.to_text() and "remains: r" in report.to_text()
    assert READ  # imported for readers: the read-back uses get_many where the store has READ


def test_run_erase_prints_keeps_the_file_and_exits_1_when_a_store_holds_it(forge: Forge, tmp_path: Path) -> None:
    """The --erase handling the delete command calls (uuid_forge.cli.erase), under click."""
    import click
    from click.testing import CliRunner

    from uuid_forge.cli.erase import erase_options, run_erase

    @click.command()
    @erase_options
    @click.option("--json", "as_json", is_flag=True)
    def command(erase_: bool, report_path: str | None, as_json: bool) -> None:
        assert erase_
        run_erase(forge, [("person", {"email": EMAIL})], as_json=as_json, report_path=report_path)

    forge.write_many([("person", {"email": EMAIL, "name": "John"})])
    proof = tmp_path / "proof.txt"
    result = CliRunner().invoke(command, ["--erase", "--report", str(proof)])
    assert result.exit_code == 1, result.output  # the log store has no delete: not fully erased
    assert "NOT fully erased" in result.output and "store log (optional" in result.output
    assert EMAIL not in result.output and EMAIL not in proof.read_text()
    assert "read back: get_many: 0 of 1 ID(s) found" in proof.read_text()
    forge.stores = forge.stores[:2]
    result = CliRunner().invoke(command, ["--erase", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["ok"] is True and payload["exit_code"] == 0 and payload["summary"].startswith("erasure ")
    result = CliRunner().invoke(command, ["--erase", "--report", str(tmp_path / "no" / "such" / "r.json")])
    assert result.exit_code != 0 and "does not exist" in str(result.exception or result.output)


def test_cli_delete_erase(tmp_path: Path) -> None:
    """``uuid-forge delete --erase --report FILE``: the report printed and kept, keys masked, exit 0;
    ``--report`` without ``--erase`` and ``--erase --dry-run`` are refused before anything changes."""
    from .scaffold import run_cli, write_forge_toml

    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path / 'src.sqlite3'}",
                                                              "files": f"file://{tmp_path / 'files'}"},
                              "db", namespace="erasure.cli", journal=tmp_path / "j.sqlite3",
                              extra='[types.person]\nkey = ["email"]')
    env = {"UUID_FORGE_SALT": "pepper"}
    c = ["-c", str(config)]
    for email in (EMAIL, "keep@example.com"):
        code, output, error = run_cli(["write", *c, "person", "-d", f"email={email}", "-d", "name=N"], env)
        assert code == 0, output + error
    code, output, error = run_cli(["delete", *c, "--entity", "person", "--key", f"email={EMAIL}", "--report",
                                   str(tmp_path / "r.txt")], env)
    assert code == 2 and "--report FILE goes with --erase" in error
    code, output, error = run_cli(["delete", *c, "--entity", "person", "--key", f"email={EMAIL}", "--erase",
                                   "--dry-run"], env)
    assert code == 2 and "--erase cannot be a --dry-run" in error
    proof = tmp_path / "erasure.json"
    code, output, error = run_cli(["delete", *c, "--entity", "person", "--key", f"email={EMAIL}", "--erase",
                                   "--report", str(proof)], env)
    assert code == 0, output + error
    assert "store db (source" in output and "store files (required" in output and ": erased: 1 entity" in output
    assert "read back: get_many: 0 of 1 ID(s) found" in output and "secure_delete" in output
    saved = json.loads(proof.read_text())
    assert saved["ok"] and [s["status"] for s in saved["stores"]] == ["erased", "erased"]
    assert stat.S_IMODE(os.stat(proof).st_mode) == 0o600
    for text in (output, error, proof.read_text()):
        assert EMAIL not in text
    code, output, error = run_cli(["delete", *c, "--entity", "person", "--key", f"email={EMAIL}", "--erase",
                                   "--json"], env)  # again: nothing held, still proven absent
    assert code == 0, output + error
    assert [s["status"] for s in json.loads(output)["stores"]] == ["absent", "absent"]
    lines = tmp_path / "erase.jsonl"  # key fields on a line, as the delete command reads them
    lines.write_text(json.dumps({"entity_type": "person", "email": "keep@example.com"}) + "\n")
    code, output, error = run_cli(["delete", *c, "--jsonl", str(lines), "--erase", "--json"], env)
    assert code == 0, output + error
    payload = json.loads(output)
    assert [s["status"] for s in payload["stores"]] == ["erased", "erased"]
    assert "keep@example.com" not in output and payload["entities"][0]["key"].startswith('{"email": "k')


@pytest.mark.parametrize("entity_type", ["person", "a.b-c_1", "pé", 'q"x'])
def test_a_tombstone_record_is_canonical(entity_type: str) -> None:
    """The tombstone's JSON texts are built directly for speed; they must be exactly canonical()'s."""
    from uuid_forge.canonical import canonical
    from uuid_forge.tombstones import Tombstone, deletion_time

    record = Tombstone(entity_type, uuid.uuid4(), deletion_time()).record()
    assert record.data_json == canonical(record.data) and record.key_json == canonical(record.key)


class FakeDownStore(MemoryAdapter):
    """A memory store that refuses every call while ``down`` is set, as an unreachable server does."""

    name = "fake-down"
    down = False

    def _check(self) -> None:
        if self.down:
            from uuid_forge.errors import StoreUnavailableError

            raise StoreUnavailableError("fake outage: connection refused", store=self.url())

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        self._check()
        return super()._get(entity_type, ids)

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        self._check()
        return super()._delete(entity_type, ids)


def test_a_store_down_is_unverified_then_replay_and_erase_again_prove_it(forge: Forge) -> None:
    down = FakeDownStore("memory://")
    forge.stores = [forge.stores[0], StoreHandle("cache", down, required=False)]
    forge._sleep = lambda _: None
    forge.write_many([("person", {"email": EMAIL, "name": "John"})])
    down.down = True
    report = erase(forge, [("person", {"email": EMAIL})])
    cache = report.stores[1]
    assert cache.status == "unverified" and not report.ok
    assert any("read back failed" in e and "connection refused" in e for e in cache.errors)
    assert any("could not be read before the delete" in e for e in cache.errors)
    assert forge.pending() == {"cache": 1}  # the delete waits in the journal for the store
    assert any("uuid-forge replay" in e for e in cache.errors)
    down.down = False
    forge.replay()
    again = erase(forge, [("person", {"email": EMAIL})])
    assert again.ok and [s.status for s in again.stores] == ["absent", "absent"]


def test_an_append_only_stream_is_retained_not_proven_absent(forge: Forge) -> None:
    """A stream that got the delete event still holds the person's earlier messages: ``retained``,
    not counted as absence read back, and the erasure is not ok (exit 1), saying until when."""
    stream = FakeAppendOnlyLog()
    forge.stores = [*forge.stores[:2], StoreHandle("events", stream)]
    forge.write_many([("person", {"email": EMAIL, "name": "John"})])
    ident = forge.id_for("person", {"email": EMAIL})
    report = erase(forge, [("person", {"email": EMAIL})])
    events = {s.name: s for s in report.stores}["events"]
    assert events.status == "retained" and events.removed == 0 and events.held_before == 1
    assert events.still_held == [f"person {ident}"]
    assert "1 of 1 ID(s) still have earlier messages with data" in events.read_back
    assert any("delete event published" in e and "x-max-age" in e for e in events.errors)
    assert not report.ok
    line = str(report)
    assert "NOT fully erased" in line and "absence read back in 2 of 3 store(s)" in line
    assert "events retained until the stream's retention" in line
    assert report.to_dict()["ok"] is False and "store events (" in report.to_text() and ": retained" in report.to_text()
    again = erase(forge, [("person", {"email": EMAIL})])  # the latest event is the delete: still retained
    assert {s.name: s.status for s in again.stores}["events"] == "retained" and not again.ok


def test_an_append_only_stream_that_never_held_the_entity_is_absent(forge: Forge) -> None:
    forge.stores = [*forge.stores[:2], StoreHandle("events", FakeAppendOnlyLog())]
    report = erase(forge, [{"entity_type": "person", "id": str(uuid.uuid4())}])
    assert [s.status for s in report.stores] == ["absent", "absent", "absent"] and report.ok
