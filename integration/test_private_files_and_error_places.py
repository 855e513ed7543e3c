"""Issue 10, findings 10 and 11: private files refuse symlinks; every error names its place.

Run through the real CLI (a subprocess) with PostgreSQL as the source of truth. A full disk is a
real one: a 512 KiB tmpfs mounted for the test (skipped, with the reason, where mounting is not
permitted).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from uuid_forge import Forge

from .scaffold import FAST_WRITE, run_cli, write_forge_toml


def cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, salt="safety-b-salt-not-shown")


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error: exit 2, one line on stderr, no traceback."""
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("uuid-forge: ")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def write_config(path: Path, source: str, *, journal: Path, files: Path, batch_size: int = 1000) -> None:
    write_forge_toml(path, {"db": source, "files": f"file://{files}?fsync=false"}, "db",
                     namespace="safety-b.uuid-forge.test", journal=journal,
                     write={**FAST_WRITE, "retries": 0, "batch_size": batch_size})


@pytest.fixture
def setup(postgres_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A config (PostgreSQL source, file store) and a fresh entity type; the type is dropped after."""
    et = f"safeb{uuid.uuid4().hex[:8]}"
    path = tmp_path / "uuid-forge.toml"
    write_config(path, postgres_url, journal=tmp_path / "journal" / "journal.sqlite3", files=tmp_path / "files")
    yield path, et
    with side_forge(path) as forge:
        forge.source.adapter.drop(et)


def side_forge(path: Path) -> Forge:
    """The config's stores with a journal of its own: the test's journal may be a planted link."""
    return Forge.from_config(str(path), env={**os.environ, "UUID_FORGE_JOURNAL": f"{path}.side-journal"})


def source_count(path: Path, et: str) -> int:
    with side_forge(path) as forge:
        return forge.source.adapter.count(et)


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A real, tiny filesystem (512 KiB tmpfs) that fills up after a few hundred small files."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill a disk for real: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def jsonl(et: str, n: int, pad: int = 10, start: int = 0) -> bytes:
    return "".join(json.dumps({"entity_type": et, "key": {"n": i}, "data": {"pad": "x" * pad}}) + "\n"
                   for i in range(start, start + n)).encode()


# -- finding 10: symlinks are followed ---------------------------------------------------------------
def test_output_symlink_is_refused_and_its_target_untouched(setup: tuple[Path, str], tmp_path: Path) -> None:
    path, et = setup
    assert cli("write", "-c", str(path), et, "-k", "n:=1").returncode == 0
    target = tmp_path / "precious.txt"
    target.write_text("precious\n")
    target.chmod(0o644)
    link = tmp_path / "report.json"
    link.symlink_to(target)

    line = one_error_line(cli("audit", "-c", str(path), "-e", et, "--output", str(link)))
    assert str(link) in line and "symbolic link" in line
    assert target.read_text() == "precious\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert link.is_symlink()

    line = one_error_line(cli("init", "--output", str(link), "--force"))  # the .env template holds a salt
    assert str(link) in line and target.read_text() == "precious\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644

    plain = tmp_path / "plain.json"  # a regular path still works, 0600
    assert cli("audit", "-c", str(path), "-e", et, "--output", str(plain)).returncode == 0
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600 and json.loads(plain.read_text())["consistent"] is True


@pytest.mark.parametrize("which", ["", "-wal", "-shm"])
def test_journal_symlink_is_refused_and_its_target_untouched(setup: tuple[Path, str], tmp_path: Path,
                                                              which: str) -> None:
    path, et = setup
    journal = tmp_path / "journal" / "journal.sqlite3"
    journal.parent.mkdir()
    target = tmp_path / "victim.txt"
    target.write_text("not a journal\n")
    target.chmod(0o644)
    link = Path(f"{journal}{which}")
    link.symlink_to(target)

    line = one_error_line(cli("write", "-c", str(path), et, "-k", "n:=1"))
    assert str(link) in line and "symbolic link" in line
    assert target.read_text() == "not a journal\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert source_count(path, et) == 0  # refused before any store was touched


# -- finding 11: messages without a place -------------------------------------------------------------
def test_corrupt_journal_error_names_the_journal(setup: tuple[Path, str], tmp_path: Path) -> None:
    path, et = setup
    assert cli("write", "-c", str(path), et, "-k", "n:=1").returncode == 0
    journal = tmp_path / "journal" / "journal.sqlite3"
    journal.write_bytes(b"this is not a database " * 200)
    for args in (("write", "-c", str(path), et, "-k", "n:=2"), ("replay", "-c", str(path)),
                 ("stores", "-c", str(path))):
        line = one_error_line(cli(*args))
        assert f"journal {journal} is corrupt" in line and "move it aside" in line, line


def test_corrupt_journal_pages_name_the_journal(setup: tuple[Path, str], tmp_path: Path) -> None:
    """A valid header with garbage pages: SQLite says "malformed" only when it reads them."""
    path, et = setup
    assert cli("write", "-c", str(path), et, "-k", "n:=1").returncode == 0
    journal = tmp_path / "journal" / "journal.sqlite3"
    with open(journal, "r+b") as fh:
        fh.seek(100)
        fh.write(b"\xff" * 8000)
    line = one_error_line(cli("write", "-c", str(path), et, "-k", "n:=2"))
    assert str(journal) in line and "corrupt" in line


def test_disk_full_file_store_names_file_and_count(setup: tuple[Path, str], tmp_path: Path,
                                                   full_disk: Path, postgres_url: str) -> None:
    path, et = setup
    write_config(path, postgres_url, journal=tmp_path / "journal" / "journal.sqlite3", files=full_disk / "files",
                 batch_size=40)
    done = cli("write", "-c", str(path), "--jsonl", "-", stdin=jsonl(et, 600, pad=200))
    line = one_error_line(done)
    assert "No space left on device" in line
    assert f"{full_disk}/files/{et}/" in line  # the file it was writing
    written = int(line.split(" entities written to files before it")[0].rsplit("(", 1)[1])
    assert written > 0 and written % 40 == 0, line  # whole batches, counted
    assert len(list((full_disk / "files" / et).rglob("*.json"))) >= written
    assert source_count(path, et) >= written  # the failed batch is in the source and journaled for files


def test_disk_full_journal_names_journal_and_count(setup: tuple[Path, str], tmp_path: Path,
                                                   full_disk: Path, postgres_url: str) -> None:
    path, et = setup
    journal = full_disk / "journal.sqlite3"
    write_config(path, postgres_url, journal=journal, files=tmp_path / "files", batch_size=40)
    done = cli("write", "-c", str(path), "--jsonl", "-", stdin=jsonl(et, 2000, pad=2000))
    line = one_error_line(done)
    assert f"journal {journal}" in line and "full" in line, line
    written = int(line.split(" entities were written to every store before it")[0].rsplit("; ", 1)[1])
    assert written > 0 and written % 40 == 0, line
    assert source_count(path, et) >= written


def test_disk_full_output_names_file_and_keeps_the_old_one(setup: tuple[Path, str], full_disk: Path) -> None:
    path, et = setup
    assert cli("write", "-c", str(path), "--jsonl", "-", stdin=jsonl(et, 50)).returncode == 0
    report = full_disk / "report.json"
    report.write_text('{"old": true}\n')
    fd = os.open(full_disk / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    line = one_error_line(cli("audit", "-c", str(path), "-e", et, "--output", str(report)))
    assert str(report) in line and "No space left on device" in line
    assert report.read_text() == '{"old": true}\n'  # not truncated: the new one never replaced it
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "report.json"]  # no temp file left


def test_non_utf8_jsonl_names_file_line_and_offset(setup: tuple[Path, str], tmp_path: Path) -> None:
    path, et = setup
    good = jsonl(et, 2)
    bad = b'{"entity_type": "' + et.encode() + b'", "key": {"n": "caf\xe9"}}\n'
    data = tmp_path / "people.jsonl"
    data.write_bytes(good + bad + jsonl(et, 1, start=5))
    offset = len(good) + bad.index(b"\xe9")
    line = one_error_line(cli("write", "-c", str(path), "--jsonl", str(data)))
    assert f"{data} line 3: not UTF-8" in line and f"byte offset {offset}" in line
    assert source_count(path, et) == 0  # a file is checked whole before any store is touched


def test_stdin_bad_last_line_says_how_many_were_written(setup: tuple[Path, str]) -> None:
    path, et = setup
    line = one_error_line(cli("write", "-c", str(path), "--jsonl", "-", stdin=jsonl(et, 1234) + b'{"entity_type": '))
    assert "<stdin> line 1235: not valid JSON" in line
    assert "1234 entities before it were written" in line
    assert source_count(path, et) == 1234  # every entity before the bad line, none after

    line = one_error_line(cli("write", "-c", str(path), "--jsonl", "-", stdin=jsonl(et, 3) + b"\xff\xfe\n"))
    assert "<stdin> line 4: not UTF-8" in line and "3 entities before it were written" in line


def test_jsonl_column_is_the_one_json_gives(setup: tuple[Path, str], tmp_path: Path) -> None:
    path, et = setup
    text = json.dumps({"entity_type": et, "key": {"email": "someone@example.com"}, "data": {"name": "A"}})[:-1] + ","
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        column = e.colno
    assert column > 60
    data = tmp_path / "col.jsonl"
    data.write_text(text + "\n")
    for args, stdin in ((str(data), None), ("-", (text + "\n").encode())):
        line = one_error_line(cli("write", "-c", str(path), "--jsonl", args, stdin=stdin))
        assert f"line 1: not valid JSON (Expecting property name enclosed in double quotes at column {column})" in line
