"""Issue 10, findings 8 and 9: nothing secret or personal is printed, and masking is fast.

Real servers, real driver errors: a PostgreSQL login that fails on the real server, a Redis URL
that redis-py cannot parse, a jsonb insert that PostgreSQL rejects, a 20 MB document the MongoDB
stand-in refuses, and the command line reading a JSONL line with a 150 KB entity type. Each test
failed on the code before the fix (see the docstrings).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from uuid_forge import Forge
from uuid_forge.errors import ConfigError, StoreError, WriteError
from uuid_forge.record import Record
from uuid_forge.registry import open_store
from uuid_forge.settings import load_settings

from .scaffold import forget_redis_type, run_cli

PG_PASSWORD = "Pa55 W0rd-Zq"  # a space: SQLAlchemy accepts it unencoded
PG_SSLPASSWORD = "SslPw-Kx7"
REDIS_PASSWORD = "Sl4sh3d/P4rtQ"  # an unencoded '/': redis-py reads 'Sl4sh3d' as the port
SSN = "SSN-078-05-1120"
EMAIL = "bob.issue10@example.com"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, salt="safety-a-salt-not-shown")


def write_config(tmp_path: Path, store_url: str, *, source_url: str | None = None, optional: bool = True) -> Path:
    path = tmp_path / "uuid-forge.toml"
    path.write_text(f"""
[ids]
namespace = "safety-a.uuid-forge.test"

[journal]
path = "{tmp_path}/journal.sqlite3"

[write]
retries = 1
backoff = 0.01

[stores.src]
url = {json.dumps(source_url or f"sqlite:///{tmp_path}/source.sqlite3")}
role = "source"

[stores.pg]
url = {json.dumps(store_url)}
optional = {str(optional).lower()}
""")
    return path


def journal_errors(tmp_path: Path) -> list[str]:
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    try:
        # a store outage leaves last_error on pending rows; a record the store rejects is a dead letter
        return ([row[0] or "" for row in db.execute("SELECT last_error FROM pending")]
                + [row[0] for row in db.execute("SELECT reason FROM dead_letters")])
    finally:
        db.close()


def journal_bytes(tmp_path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite3*"))


def assert_absent(text: str, secrets: tuple[str, ...], where: str) -> None:
    for s in secrets:
        assert s not in text, f"{s!r} shown in {where}: {text[:2000]}"


def test_password_with_a_space_and_sslpassword_never_shown(postgres_url: str, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """Before: mask_url stopped at the space and skipped 'sslpassword=', so both were printed in
    full by 'stores --json', the write table and --json, the log and the journal's last_error."""
    parts = urlsplit(postgres_url)
    url = (f"postgresql+psycopg://nosuchrole_issue10:{PG_PASSWORD}@{parts.hostname}:{parts.port}{parts.path}"
           f"?sslpassword={PG_SSLPASSWORD}")
    secrets = ("Pa55", "W0rd-Zq", PG_SSLPASSWORD)
    path = write_config(tmp_path, url)

    table = cli("stores", "-c", str(path))
    assert_absent(table.stdout + table.stderr, secrets, "stores")
    assert "nosuchrole_issue10" in table.stdout
    stores = cli("stores", "-c", str(path), "--json")
    assert_absent(stores.stdout + stores.stderr, secrets, "stores --json")
    row = {r["name"]: r for r in json.loads(stores.stdout)}["pg"]
    assert row["reachable"] is False and "nosuchrole_issue10" in row["error"]  # the server's own reason
    assert "127.0.0.1" in row["url"] or str(parts.hostname) in row["url"]

    for as_json in ((), ("--json",)):
        done = cli("write", "-c", str(path), "user", "-k", "email=a@b.c", "-d", "name=x", *as_json)
        assert done.returncode == 0, done.stderr
        assert_absent(done.stdout + done.stderr, secrets, f"write {' '.join(as_json)}")
        assert "Traceback" not in done.stderr
    errors = journal_errors(tmp_path)
    assert errors and all("nosuchrole_issue10" in e for e in errors), errors  # a real driver error was kept
    raw = journal_bytes(tmp_path)
    assert_absent(raw.decode("latin-1"), secrets, "the journal file")

    caplog.set_level(logging.DEBUG)
    settings = load_settings(str(path), env={"UUID_FORGE_SALT": "safety-a-salt-not-shown"})
    assert_absent(repr(settings), secrets, "repr(ForgeSettings)")
    with Forge.from_settings(settings) as forge:
        report = forge.write("user", {"email": "c@d.e"}, {"name": "y"})
        assert report.stores["pg"].status == "journaled"
        assert_absent(json.dumps(report.to_dict()) + repr(forge.stores), secrets, "the write report")
    assert "nosuchrole_issue10" in caplog.text
    assert_absent(caplog.text, secrets, "the log")


def test_redis_password_with_an_unencoded_slash_never_shown(redis_url: str, tmp_path: Path) -> None:
    """Before: redis-py's "Port could not be cast to integer value as 'Sl4sh3d'" was printed as is."""
    parts = urlsplit(redis_url)
    url = f"redis://:{REDIS_PASSWORD}@{parts.hostname}:{parts.port}{parts.path or '/0'}"
    secrets = ("Sl4sh3d", "P4rtQ")
    path = write_config(tmp_path, url)
    for args in (("stores", "--json"), ("write", "user", "-k", "email=a@b.c")):
        done = cli(args[0], "-c", str(path), *args[1:])
        assert done.returncode == 2, done
        assert_absent(done.stdout + done.stderr, secrets, " ".join(args))
        assert "percent-encoded" in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(ConfigError) as info:
        open_store(url)
    assert_absent(str(info.value), secrets, "the exception")
    assert_absent(repr(load_settings(str(path), env={"UUID_FORGE_SALT": "s" * 16})), secrets, "repr(settings)")


@pytest.fixture
def jsonb_source(postgres_url: str) -> Iterator[tuple[str, str]]:
    prefix = f"sa{uuid.uuid4().hex[:8]}_"
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}data_type=jsonb&table_prefix={prefix}"
    yield url, prefix
    store = open_store(url)
    try:
        store.drop("user")
    finally:
        store.close()


def test_sql_errors_never_carry_bound_parameters(jsonb_source: tuple[str, str], tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A record PostgreSQL rejects (a \\u0000 in a jsonb column). Before: the error carried
    '[parameters: (... "ssn":"SSN-078-05-1120" ...)]' and the CONTEXT line quoted the data, on
    stderr, in the log, in the exception and in the journal's last_error."""
    url, _ = jsonb_source
    path = write_config(tmp_path, f"sqlite:///{tmp_path}/other.sqlite3", source_url=url)
    data = {"a_email": EMAIL, "a_ssn": SSN, "bad": "x\u0000y"}  # keys sorted: the data precedes the bad value
    secrets = (SSN, EMAIL)

    caplog.set_level(logging.DEBUG)
    # the salt the CLI below runs with: one ID configuration for the source (its marker)
    with Forge.from_config(str(path), env={"UUID_FORGE_SALT": "safety-a-salt-not-shown"}) as forge, \
            pytest.raises(WriteError) as info:
        forge.write("user", {"id": 1}, data)
    message = str(info.value)
    assert "unsupported Unicode escape sequence" in message  # the store's own reason is kept
    assert_absent(message, secrets, "the exception")
    assert_absent(caplog.text, secrets, "the log")
    errors = journal_errors(tmp_path)
    assert errors and any("Unicode" in e for e in errors), errors
    assert_absent("\n".join(errors), secrets, "the journal's last_error")

    (tmp_path / "in.jsonl").write_text(json.dumps({"entity_type": "user", "key": {"id": 2}, "data": data}) + "\n")
    done = cli("write", "-c", str(path), "--jsonl", str(tmp_path / "in.jsonl"))
    assert done.returncode == 2 and "unsupported Unicode escape sequence" in done.stderr, done
    assert_absent(done.stdout + done.stderr, secrets, "write output")
    assert_absent("\n".join(journal_errors(tmp_path)), secrets, "the journal's last_error")


def test_jsonl_line_with_a_150kb_entity_type_gives_a_short_error_fast(tmp_path: Path, redis_url: str,
                                                                       redis_client: Any) -> None:
    """Before: the quadratic mask_text took ~40 s on this error and printed all 150 KB of it.

    From standard input the good first line is written before the bad one is read, so it is of
    an entity type of this test's own, forgotten afterwards (the test database is shared)."""
    good_type = f"longtype{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path, redis_url)
    try:
        _long_entity_type_errors(tmp_path, path, good_type)
        # the line before the bad one, written from standard input, is the one key of that type
        assert len(list(redis_client.scan_iter(match=f"{good_type}:*"))) == 1
    finally:
        forget_redis_type(redis_url, good_type)


def _long_entity_type_errors(tmp_path: Path, path: Path, good_type: str) -> None:
    lines = (json.dumps({"entity_type": good_type, "key": "k0", "data": {}}) + "\n"
             + json.dumps({"entity_type": "t" * 150_000, "key": "k1", "data": {}}) + "\n")
    (tmp_path / "in.jsonl").write_text(lines)
    for args, stdin in ((("--jsonl", str(tmp_path / "in.jsonl")), None), (("--jsonl", "-"), lines)):
        started = time.perf_counter()
        done = cli("write", "-c", str(path), *args, stdin=stdin)
        took = time.perf_counter() - started
        assert done.returncode == 2, done.stderr[:500]
        error = [line for line in done.stderr.splitlines() if line.startswith("uuid-forge: error")]
        assert len(error) == 1 and len(error[0]) < 1200, done.stderr[:500]
        assert "chars cut]" in error[0] and "is not accepted" in error[0], error[0]
        assert took < 20, took  # the interpreter and the stores' start-up; the error itself takes milliseconds
    assert "line 2" in cli("write", "-c", str(path), "--jsonl", str(tmp_path / "in.jsonl")).stderr


def test_a_20mb_document_error_from_mongodb_is_cut_fast(mongodb_url: str) -> None:
    """pymongo's BulkWriteError quotes the whole 20 MB document. Before: mask_text kept the writer
    at 100% CPU for over 14 minutes, then printed megabytes of personal data."""
    store = open_store(mongodb_url)
    entity_type = f"big{uuid.uuid4().hex[:8]}"
    record = Record(entity_type, uuid.uuid4(), {"a_email": EMAIL, "blob": f"{SSN} " * 1_300_000}, ["k"])
    try:
        started = time.perf_counter()
        with pytest.raises(StoreError) as info:
            store.put_many([record])
        took = time.perf_counter() - started
        message = str(info.value)
        assert took < 60, took  # the stand-in refusing 20 MB; masking is milliseconds of it
        assert len(message) < 1500, len(message)
        assert "16777216" in message or "too large" in message.lower(), message  # the reason stays
        assert_absent(message, (SSN, EMAIL), "the exception")
    finally:
        try:
            store.drop(entity_type)
        finally:
            store.close()
