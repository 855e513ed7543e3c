"""``uuid-forge journal -c FILE``: one configuration, named before or after the subcommand.

Issue 18: ``journal -c B drop --all --yes`` dropped the dead letters of ./uuid-forge.toml's
journal (A's), because the subcommand's own ``-c`` default won over the group's ``-c``. Here two
configurations A (the default ./uuid-forge.toml) and B each keep a journal with dead letters; every
subcommand, given ``-c B`` on either side, must act on B's journal and leave A's byte for byte.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest

from uuid_forge.journal import Journal
from uuid_forge.record import Record

from .scaffold import run_cli, write_forge_toml


def _fill(path: Path, tag: str) -> list[str]:
    """A journal at ``path`` with two dead letters for store "other" and one record pending for it."""
    ids = [uuid.uuid5(uuid.NAMESPACE_DNS, f"{tag}-{i}") for i in range(3)]
    records = [Record("user", i, {"name": f"{tag} {n}"}, {"email": f"{tag}{n}@example.com"}) for n, i in enumerate(ids)]
    journal = Journal(path)
    try:
        dead = journal.record_intent(records[:2], ["other"])
        journal.mark_done("other", dead, dead=[(s, r, f"refused by {tag}") for s, r in zip(dead, records[:2])])
        journal.record_intent(records[2:], ["other"])
    finally:
        journal.close()
    return [str(i) for i in ids[:2]]


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A (./uuid-forge.toml, the default) and B (b/B.toml), each with its own journal, both holding entries."""
    monkeypatch.chdir(tmp_path)
    stores = {"src": "memory://", "other": {"url": "memory://", "optional": True}}
    (tmp_path / "b").mkdir()
    a = write_forge_toml(tmp_path / "uuid-forge.toml", stores, "src", journal=tmp_path / "a.sqlite3")
    b = write_forge_toml(tmp_path / "b" / "B.toml", stores, "src", journal=tmp_path / "b" / "b.sqlite3")
    return {"a": a, "b": b, "a_journal": tmp_path / "a.sqlite3", "b_journal": tmp_path / "b" / "b.sqlite3",
            "a_ids": _fill(tmp_path / "a.sqlite3", "a"), "b_ids": _fill(tmp_path / "b" / "b.sqlite3", "b")}


def _counts(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """(dead letters, pending) per store of the journal at ``path``."""
    journal = Journal(path)
    try:
        return journal.dead_letter_counts(), journal.pending_counts()
    finally:
        journal.close()


def _files(journal: Path) -> dict[str, bytes]:
    """The journal's files as they are on disk (the database and any -wal/-shm beside it)."""
    return {p.name: p.read_bytes() for p in sorted(journal.parent.glob(journal.name + "*"))}


def _sides(sub: Sequence[str], config: str) -> list[list[str]]:
    """``journal -c FILE SUB...`` and ``journal SUB... -c FILE``."""
    return [["journal", "-c", config, *sub], ["journal", *sub, "-c", config]]


@pytest.mark.parametrize("side", [0, 1], ids=["group -c", "subcommand -c"])
def test_drop_acts_on_the_named_configuration_only(two: dict, side: int) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(_sides(["drop", "--all", "--yes"], str(two["b"]))[side])
    assert code == 0, err
    assert _files(two["a_journal"]) == a_before, "A's journal was changed"
    assert _counts(two["b_journal"])[0] == {} and _counts(two["a_journal"])[0] == {"other": 2}
    assert "2 dead letter(s) dropped" in out and str(two["b_journal"]) in out  # says which journal it changed


@pytest.mark.parametrize("side", [0, 1], ids=["group -c", "subcommand -c"])
def test_drop_one_id_acts_on_the_named_configuration_only(two: dict, side: int) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(_sides(["drop", "--id", two["b_ids"][0], "--yes"], str(two["b"]))[side])
    assert code == 0, err
    assert _files(two["a_journal"]) == a_before, "A's journal was changed"
    assert "1 dead letter(s) dropped" in out and str(two["b_journal"]) in out


@pytest.mark.parametrize("side", [0, 1], ids=["group -c", "subcommand -c"])
def test_retry_acts_on_the_named_configuration_only(two: dict, side: int) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(_sides(["retry", "--store", "other"], str(two["b"]))[side])
    assert code == 0, err
    assert _files(two["a_journal"]) == a_before, "A's journal was changed"
    assert _counts(two["b_journal"]) == ({}, {"other": 3})
    assert "2 dead letter(s) back on the pending list" in out and str(two["b_journal"]) in out


@pytest.mark.parametrize("side", [0, 1], ids=["group -c", "subcommand -c"])
def test_dead_letters_lists_the_named_configuration(two: dict, side: int) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(_sides(["dead-letters", "--json"], str(two["b"]))[side])
    assert code == 0, err
    rows = json.loads(out)
    assert sorted(r["id"] for r in rows) == sorted(two["b_ids"]) and {r["reason"] for r in rows} == {"refused by b"}
    assert _files(two["a_journal"]) == a_before


def test_the_summary_reads_the_named_configuration(two: dict) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(["journal", "-c", str(two["b"]), "--json"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["journal"] == str(two["b_journal"])
    assert summary["stores"]["other"] == {"role": "optional", "pending": 1, "dead_letters": 2}
    assert _files(two["a_journal"]) == a_before


@pytest.mark.parametrize("sub", [["drop", "--all", "--yes"], ["retry"], ["dead-letters"]], ids=lambda s: s[0])
def test_two_different_configurations_are_refused(two: dict, sub: list[str]) -> None:
    before = _files(two["a_journal"]), _files(two["b_journal"])
    code, _out, err = run_cli(["journal", "-c", str(two["a"]), *sub, "-c", str(two["b"])])
    assert code == 2
    assert str(two["a"]) in err and str(two["b"]) in err and "two configurations" in err
    assert (_files(two["a_journal"]), _files(two["b_journal"])) == before


def test_the_same_file_named_twice_is_one_configuration(two: dict) -> None:
    code, out, err = run_cli(["journal", "-c", "b/B.toml", "drop", "--all", "--yes", "-c", str(two["b"])])
    assert code == 0 and "2 dead letter(s) dropped" in out, err


@pytest.mark.parametrize("side", [0, 1], ids=["group -c", "subcommand -c"])
def test_a_flag_beats_the_environment_on_either_side(two: dict, side: int) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(_sides(["drop", "--all", "--yes"], str(two["b"]))[side],
                             env={"UUID_FORGE_CONFIG": str(two["a"])})
    assert code == 0, err
    assert _files(two["a_journal"]) == a_before, "A's journal was changed"
    assert str(two["b_journal"]) in out


def test_the_environment_names_the_configuration_of_every_subcommand(two: dict) -> None:
    a_before = _files(two["a_journal"])
    code, out, err = run_cli(["journal", "drop", "--all", "--yes"], env={"UUID_FORGE_CONFIG": str(two["b"])})
    assert code == 0, err
    assert _files(two["a_journal"]) == a_before, "A's journal was changed"
    assert str(two["b_journal"]) in out


def test_the_group_json_is_not_ignored(two: dict) -> None:
    code, out, err = run_cli(["journal", "--json", "-c", str(two["b"]), "dead-letters"])
    assert code == 0 and len(json.loads(out)) == 2, err
    b_before = _files(two["b_journal"])
    code, out, err = run_cli(["journal", "--json", "-c", str(two["b"]), "drop", "--all", "--yes"])
    assert code == 2 and "--json" in err
    assert _files(two["b_journal"]) == b_before


def test_drop_says_when_the_environment_picks_the_journal(two: dict) -> None:
    """UUID_FORGE_JOURNAL beats every file's [journal] path (documented precedence): drop acts on
    it, and says so, so that a shared variable is not mistaken for B's own journal."""
    b_before = _files(two["b_journal"])
    code, out, err = run_cli(["journal", "-c", str(two["b"]), "drop", "--all", "--yes"],
                             env={"UUID_FORGE_JOURNAL": str(two["a_journal"])})
    assert code == 0, err
    assert f"journal {two['a_journal']} (env UUID_FORGE_JOURNAL): 2 dead letter(s) dropped" in out
    assert _files(two["b_journal"]) == b_before


def test_drop_names_the_file_its_journal_path_comes_from(two: dict) -> None:
    code, out, err = run_cli(["journal", "drop", "-c", str(two["b"]), "--all", "--yes"])
    assert code == 0, err
    assert f"journal {two['b_journal']} (file {two['b']} [journal]): 2 dead letter(s) dropped" in out
