"""What the commands say when something went wrong: true, naming the place, saying what to do.

A replay while a store is still down; the stores the write never reached because the source
failed first; the last line of an audit that repaired what it found.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import IDConfig, Namespace, WriteError
from uuid_forge.cli.reports import write_report_table
from uuid_forge.errors import StoreRejectedError
from uuid_forge.record import Record
from uuid_forge.report import write_summary
from uuid_forge.settings import WriteSettings

from .fakes import FakeFlakyStore
from .scaffold import make_forge, requires_driver, run_cli, write_forge_toml

SALT = {"UUID_FORGE_SALT": "s"}


class FakeRefusingSource(MemoryAdapter):
    """A memory store that refuses every record for good, as a source refuses a bad value."""

    name = "fake-refusing"

    def _put(self, entity_type: str, records: list[Record]) -> None:
        raise StoreRejectedError("fake: value refused", store=self.url())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _table_text(report: Any) -> str:
    console = Console(width=300, record=True, file=open("/dev/null", "w"))  # noqa: SIM115 - closed with console
    console.print(write_report_table(report))
    return console.export_text()


# -- replay while the store is still down ---------------------------------------------------------
@requires_driver("redis")
def test_replay_while_the_store_is_down_names_it_counts_what_stays_and_says_what_to_do(tmp_path: Path) -> None:
    cache = f"redis://127.0.0.1:{_closed_port()}/0"
    config = str(write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path / 'db.sqlite'}", "cache": {"url": cache, "optional": True}}, "db",
        namespace="t", write={"retries": 0, "backoff": 0.0}))
    for email in ("a@example.com", "b@example.com"):
        code, _, _ = run_cli(["write", "-c", config, "user", "-k", f"email={email}"], env=SALT)
        assert code == 0
    code, out, err = run_cli(["replay", "-c", config], env=SALT, columns=300)
    assert code == 1
    assert "replay: 0 entities" not in out and "replay: 0 of 2 pending entries finished" in out
    assert f"replay: cache ({cache}) is still down (" in err and "Connection refused" in err
    assert "2 entries stay pending in the journal; bring cache back, then run 'uuid-forge replay' again" in err
    code, out, _ = run_cli(["replay", "-c", config, "--json"], env=SALT)
    still = json.loads(out)["still_pending"]
    assert code == 1 and set(still) == {"cache"} and still["cache"]["pending"] == 2
    assert still["cache"]["url"] == cache and still["cache"]["reason"].startswith("is still down (")


# -- the source failed: the other stores were not attempted ---------------------------------------
def _forge(tmp_path: Path, source: MemoryAdapter) -> Any:
    forge = make_forge(tmp_path, ("src", source), ("cache", MemoryAdapter()), ids=IDConfig(namespace=Namespace("t")),
                       write=WriteSettings(retries=0, backoff=0.0))
    forge._sleep = lambda s: None
    return forge


@pytest.mark.parametrize(("source", "why"), [(FakeFlakyStore(down=True), "the source src failed"),
                                             (FakeRefusingSource(), "the source src refused them")],
                         ids=["down", "refuses"])
def test_stores_after_a_failed_source_say_not_attempted_not_ok(tmp_path: Path, source: MemoryAdapter, why: str
                                                              ) -> None:
    with pytest.raises(WriteError) as info:
        _forge(tmp_path, source).write("user", {"email": "a@example.com"}, {"name": "A"})
    report = info.value.report
    cache = report.stores["cache"]
    assert (cache.status, cache.written) == ("not attempted", 0)
    assert cache.status_text == f"not attempted ({why})"
    assert report.to_dict()["stores"]["cache"]["status"] == "not attempted"
    assert report.to_dict()["stores"]["cache"]["status_text"] == f"not attempted ({why})"
    assert f"cache: not attempted ({why})" in write_summary(report)
    assert f"not attempted ({why})" in _table_text(report)
    assert "cache: ok" not in write_summary(report) and not report.ok


def test_a_batch_the_source_partly_refused_says_how_many_were_not_attempted(tmp_path: Path) -> None:
    class FakePickySource(MemoryAdapter):
        """Refuses, for good, any record whose data has ``poison``."""

        def _put(self, entity_type: str, records: list[Record]) -> None:
            if any(r.json_data.get("poison") for r in records):
                raise StoreRejectedError("fake: value refused", store=self.url())
            super()._put(entity_type, records)

    forge = _forge(tmp_path, FakePickySource())
    with pytest.raises(WriteError) as info:
        forge.write_many([("user", {"email": f"u{i}@example.com"}, {"poison": i == 3}) for i in range(5)])
    cache = info.value.report.stores["cache"]
    assert (cache.status, cache.written, cache.skipped) == ("ok", 4, 1)
    assert cache.status_text == "ok (1 not attempted: the source src refused them)"


def test_the_cli_write_says_not_attempted_in_text_and_json(tmp_path: Path) -> None:
    config = str(write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'db.sqlite'}", "files": f"file://{tmp_path / 'files'}"},
        "db", namespace="t", write={"retries": 0, "backoff": 0.0}))
    code, out, err = run_cli(["write", "-c", config, "user", "-k", "email=a@example.com"], env=SALT, columns=300)
    assert code == 2, err
    assert "not attempted (the source db failed)" in out and "│ ok " not in out
    code, out, _ = run_cli(["write", "-c", config, "user", "-k", "email=a@example.com", "--json"], env=SALT)
    files = json.loads(out)["stores"]["files"]
    assert (files["status"], files["status_text"]) == ("not attempted", "not attempted (the source db failed)")


# -- the last line after audit --repair --apply --------------------------------------------------
def test_after_apply_the_last_line_says_repaired_not_consistent(tmp_path: Path) -> None:
    config = str(write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path / 'db.sqlite'}", "files": f"file://{tmp_path / 'files'}"}, "db", namespace="t"))
    for email in ("a@example.com", "b@example.com", "c@example.com"):
        assert run_cli(["write", "-c", config, "user", "-k", f"email={email}", "-d", "n=1"], env=SALT)[0] == 0
    for path in list((tmp_path / "files").rglob("*.json"))[:2]:
        path.unlink()
    code, out, _ = run_cli(["audit", "-c", config, "--repair", "--apply"], env=SALT, columns=300)
    last = out.rstrip().splitlines()[-1]
    assert code == 0 and last.startswith("repaired: audit of user against db: 2 findings fixed (files: 2 missing; "
                                         "repaired files: 2 rewritten), now consistent"), last
    assert last.endswith("; re-audit: consistent")
    code, out, _ = run_cli(["audit", "-c", config, "--repair", "--apply", "--json"], env=SALT)
    assert code == 0 and json.loads(out)["summary"].startswith("consistent: audit of user against db: consistent")


# -- tables in cron mail and pipes ------------------------------------------------------------------
def test_tables_are_not_cut_when_stdout_is_no_terminal(tmp_path: Path) -> None:
    config = str(write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'db.sqlite'}",
        "cache-of-the-people-directory": f"file://{tmp_path / 'files'}"},
        "db", namespace="t", write={"retries": 0, "backoff": 0.0}))
    # CliRunner's stdout is no terminal, as under cron or in a pipe; COLUMNS unset, as cron leaves it
    code, out, _ = run_cli(["write", "-c", config, "user", "-k", "email=a@example.com"], env=SALT, unset=("COLUMNS",))
    assert code == 2 and "…" not in out, out
    assert "cache-of-the-people-directory" in out and "not attempted (the source db failed)" in out, out
    (tmp_path / "missing-dir" / "x").mkdir(parents=True)
    code, out, _ = run_cli(["audit", "-c", config], env=SALT, unset=("COLUMNS",))
    assert "…" not in out and all(h in out for h in ("missing", "malformed", "unproven", "stray_type")), out
    code, narrow, _ = run_cli(["audit", "-c", config], env=SALT, columns=40)  # COLUMNS set: rich's width, as asked
    assert "…" in narrow


# -- fresh19 #11: wording --------------------------------------------------------------------------
def test_a_refused_deleted_entity_is_told_in_the_command_lines_words(tmp_path: Path) -> None:
    config = str(write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path / 'db.sqlite'}"}, "db",
                                  namespace="t", extra='[types.user]\nkey = ["email"]\n'))
    assert run_cli(["write", "-c", config, "user", "-d", "email=a@example.com"], env=SALT)[0] == 0
    assert run_cli(["delete", "-c", config, "--entity", "user", "--key", "email=a@example.com"], env=SALT)[0] == 0
    code, _out, err = run_cli(["write", "-c", config, "user", "-d", "email=a@example.com"], env=SALT)
    assert code == 2 and "uuid-forge write --recreate" in err, err
    assert "recreate=True" not in err and "other records were written" not in err, err


def test_validate_names_the_options_a_url_sets_and_a_dry_run_delete_says_would(tmp_path: Path) -> None:
    config = str(write_forge_toml(tmp_path / "uuid-forge.toml", {
        "db": f"sqlite:///{tmp_path / 'db.sqlite'}", "files": f"file://{tmp_path / 'files'}?fsync=false"}, "db",
        namespace="t", extra='[types.user]\nkey = ["email"]\n'))
    code, out, err = run_cli(["validate", "-c", config], env=SALT, unset=("COLUMNS",))
    assert "accepted (fsync in the URL)" in out + err, out + err
    assert run_cli(["write", "-c", config, "user", "-d", "email=a@example.com"], env=SALT)[0] == 0
    code, out, err = run_cli(["delete", "-c", config, "--entity", "user", "--key", "email=a@example.com", "--dry-run"],
                             env=SALT, unset=("COLUMNS",))
    assert code == 0 and "would delete" in out and "│ deleted" not in out, out + err
