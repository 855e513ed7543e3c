"""Private files refuse symlinks, and every error names its place (issue 10, findings 10 and 11).

Fast: embedded stores (SQLite source, file store) through the CLI in-process; a full disk is
simulated by a failing ``os.write`` (integration/test_private_files_and_error_places.py fills a real one).
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import privatefile
from uuid_forge.errors import JournalError, PrivateFileError
from uuid_forge.journal import Journal
from uuid_forge.privatefile import create_private, write_private
from uuid_forge.record import Record

from .scaffold import run_cli, write_forge_toml


def run(args: list[str], stdin: bytes | None = None) -> tuple[int, str, str]:
    return run_cli(args, stdin=stdin)


def config(tmp_path: Path, batch_size: int = 1000) -> str:
    return str(write_forge_toml(tmp_path / "uuid-forge.toml",
                                {"db": "sqlite:///db.sqlite3",
                                 "files": {"url": f"file://{tmp_path}/files", "options": {"fsync": False}}},
                                "db", journal=f"{tmp_path}/j/journal.sqlite3", write={"batch_size": batch_size}))


def lines(n: int, start: int = 0) -> bytes:
    return "".join(json.dumps({"entity_type": "user", "key": {"n": i}, "data": {}}) + "\n"
                   for i in range(start, start + n)).encode()


def one_line(err: str) -> str:
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("uuid-forge: ")]
    assert len(errors) == 1, err
    return errors[0]


# -- privatefile -----------------------------------------------------------------------------------
def test_write_private_creates_0600_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_private_refuses_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    target.chmod(0o644)
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for name in ("link", "dangling"):
        with pytest.raises(PrivateFileError, match=f"--output {tmp_path / name} is a symbolic link"):
            write_private(tmp_path / name, "x", "--output")
    assert target.read_text() == "keep" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert not (tmp_path / "nowhere").exists()


def test_write_private_disk_full_names_the_file_and_keeps_the_old_one(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")

    def full(fd: int, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(privatefile.os, "write", full)
    with pytest.raises(PrivateFileError, match=f"--output {path}: cannot write it .*No space left on device"):
        write_private(path, "new", "--output")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["out.json"]


def test_create_private_refuses_a_symlink_and_never_chmods_its_target(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    target.chmod(0o644)
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(PrivateFileError, match="is a symbolic link"):
        create_private(tmp_path / "link")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    create_private(tmp_path / "new")
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o600


# -- the journal -----------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["", "-wal", "-shm"])
def test_journal_refuses_a_symlink(tmp_path: Path, which: str) -> None:
    target = tmp_path / "target"
    target.write_text("keep")
    target.chmod(0o644)
    journal = tmp_path / "journal.sqlite3"
    Path(f"{journal}{which}").symlink_to(target)
    with pytest.raises(PrivateFileError, match=f"{journal}{which} is a symbolic link"):
        Journal(journal)
    assert target.read_text() == "keep" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_corrupt_journal_names_its_path(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    journal.write_bytes(b"garbage" * 500)
    with pytest.raises(JournalError, match=f"journal {journal} is corrupt: .*move it aside"):
        Journal(journal)


def test_journal_errors_after_opening_name_the_path(tmp_path: Path) -> None:
    """A full journal (SQLITE_FULL, from a page limit here) met by a method, not at open time."""
    journal = Journal(tmp_path / "journal.sqlite3")
    try:
        journal._db.execute("PRAGMA max_page_count = 8")
        records = [Record("user", uuid.uuid4(), {"pad": "x" * 4000}, {"n": i}) for i in range(50)]
        with pytest.raises(JournalError, match=f"journal {tmp_path / 'journal.sqlite3'}: the disk is full"):
            journal.record_intent(records, ["db"])
        with pytest.raises(sqlite3.OperationalError, match="no such table"):  # not a file error: left as it is
            journal._db.execute("SELECT * FROM no_such_table")
    finally:
        journal.close()


# -- the CLI ---------------------------------------------------------------------------------------
def test_cli_output_symlink_exits_2_and_target_untouched(tmp_path: Path) -> None:
    conf = config(tmp_path)
    assert run(["write", "-c", conf, "user", "-k", "n:=1"])[0] == 0
    target = tmp_path / "target"
    target.write_text("keep")
    target.chmod(0o644)
    (tmp_path / "report.json").symlink_to(target)
    code, out, err = run(["audit", "-c", conf, "--repair", "--apply", "-o", str(tmp_path / "report.json")])
    assert code == 2 and "is a symbolic link" in one_line(err)
    assert out == ""  # refused before the audit and its repair ran
    assert target.read_text() == "keep" and stat.S_IMODE(target.stat().st_mode) == 0o644


def test_cli_corrupt_journal_names_its_path(tmp_path: Path) -> None:
    conf = config(tmp_path)
    assert run(["write", "-c", conf, "user", "-k", "n:=1"])[0] == 0
    (tmp_path / "j" / "journal.sqlite3").write_bytes(b"garbage" * 500)
    code, _, err = run(["write", "-c", conf, "user", "-k", "n:=2"])
    assert code == 2 and f"journal {tmp_path}/j/journal.sqlite3 is corrupt" in one_line(err)


def test_cli_stdin_bad_last_line_counts_what_was_written(tmp_path: Path) -> None:
    conf = config(tmp_path, batch_size=7)
    code, _, err = run(["write", "-c", conf, "--jsonl", "-", "--json"], stdin=lines(20) + b'{"entity_type": "user",\n')
    line = one_line(err)
    assert code == 2 and "<stdin> line 21: not valid JSON" in line and "20 entities before it were written" in line
    code, out, _ = run(["audit", "-c", conf, "--json"])
    assert code == 0 and json.loads(out)["stores"]["files"]["ok"] == 20


def test_cli_non_utf8_names_file_line_and_offset(tmp_path: Path) -> None:
    conf = config(tmp_path)
    data = tmp_path / "in.jsonl"
    prefix = b'{"entity_type": "user", "key": {"n": "\xc3\xa9'  # an "e" with an accent, then a lone byte
    data.write_bytes(lines(2) + prefix + b'\xe9"}}\n')
    code, _, err = run(["write", "-c", conf, "--jsonl", str(data)])
    line = one_line(err)
    column = len(prefix.decode()) + 1  # in characters, as json counts them
    assert code == 2 and f"{data} line 3: not UTF-8 (byte 0xe9 at column {column}, " in line
    assert f"byte offset {len(lines(2)) + len(prefix)})" in line
    code, _, err = run(["write", "-c", conf, "--jsonl", "-"], stdin=lines(2) + b"\xff\n")
    assert code == 2 and "<stdin> line 3: not UTF-8" in one_line(err) and "2 entities before it were written" in err


def test_cli_jsonl_column_is_jsons(tmp_path: Path) -> None:
    conf = config(tmp_path)
    text = '{"entity_type": "user", "key": {"email": "someone@example.com"}, "data": {"name": "A"},'
    with pytest.raises(json.JSONDecodeError) as e:
        json.loads(text)
    code, _, err = run(["write", "-c", conf, "--jsonl", "-"], stdin=(text + "\n").encode())
    assert code == 2 and f"<stdin> line 1: not valid JSON (Expecting property name enclosed in double quotes " \
                         f"at column {e.value.colno})" in one_line(err)


def test_cli_disk_full_in_the_file_store_names_file_and_count(tmp_path: Path) -> None:
    """os.write fails with ENOSPC after 25 files, in a real process (the CLI's own error path)."""
    conf = config(tmp_path, batch_size=10)
    script = (
        "import errno, os, sys\n"
        "real, n = os.write, [0]\n"
        "def write(fd, data):\n"
        f"    if os.readlink(f'/proc/self/fd/{{fd}}').startswith({str(tmp_path / 'files')!r}):\n"
        "        n[0] += 1\n"
        "        if n[0] > 25: raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))\n"
        "    return real(fd, data)\n"
        "os.write = write\n"
        "from uuid_forge.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UUID_FORGE_")}
    done = subprocess.run([sys.executable, "-c", script, "write", "-c", conf, "--jsonl", "-"], input=lines(60),
                          capture_output=True, env=env, check=False, timeout=120)
    err = done.stderr.decode()
    line = one_line(err)
    assert done.returncode == 2 and "No space left on device" in line and f"{tmp_path}/files/user/" in line
    assert "(20 entities written to files before it)" in line
