"""Security (issue 6, part 4): secrets stay secret, keyed IDs resist enumeration, files are
private, and every SQL value travels as a bound parameter.

The secrets used here are long, unusual strings, so finding one anywhere is never a coincidence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect
from sqlalchemy import text as sql_text

from uuid_forge.contract import Adapter
from uuid_forge.errors import ConfigError, StoreUnavailableError, UUIDForgeError, WriteError
from uuid_forge.forge import Forge, StoreHandle
from uuid_forge.ids import IDConfig, Namespace, UUIDGenerator, canonical_name
from uuid_forge.journal import Journal
from uuid_forge.record import Record
from uuid_forge.registry import open_store
from uuid_forge.settings import WriteSettings, load_settings
from uuid_forge.urls import mask_text, mask_url

from . import scaffold

SALT = "salt-Qz7vK2pX9wLm4R"
SECRET = "secret-hmac-Jd8Tn3Ye6Uc1Hb"
REDIS_PASSWORD = "hunter2-Ws5Fg"
MEM_PASSWORD = "memPw-Lk9Zq0Vr"
SECRETS = (SALT, SECRET, REDIS_PASSWORD, MEM_PASSWORD)
REDIS_URL = f"redis://user:{REDIS_PASSWORD}@127.0.0.1:1/0"  # port 1: nothing listens, connection refused
MEM_URL = f"memory://admin:{MEM_PASSWORD}@security-cache"  # each config file gets its own cache name
ENV = {"UUID_FORGE_SALT": SALT, "UUID_FORGE_SECRET": SECRET}
MARKER = "marker-entity-data-7f3e"  # entity data: expected in the journal, unlike the secrets


def assert_no_secret(text: str, where: str) -> None:
    for s in SECRETS:
        assert s not in text, f"{s!r} leaked in {where}: {text[:3000]}"


CONFIG = """
[ids]
namespace = "security.example"

[journal]
path = "{tmp}/journal.sqlite3"

[write]
retries = 0
backoff = 0
concurrent = false

[stores.db]
url = "sqlite:///{tmp}/db.sqlite3"
role = "source"

[stores.files]
url = "file://{tmp}/files"
options = {{ fsync = false }}

[stores.mem]
url = "{mem}"
{cache}
"""
OPTIONAL_CACHE = f"""
[stores.cache]
url = "{REDIS_URL}"
optional = true
options = {{ socket_timeout = 1, socket_connect_timeout = 1 }}
"""
REQUIRED_CACHE = OPTIONAL_CACHE.replace("optional = true", "optional = false")


def write_config(tmp_path: Path, cache: str = OPTIONAL_CACHE, name: str = "uuid-forge.toml") -> Path:
    path = tmp_path / name
    mem = MEM_URL.replace("security-cache", f"sec-{tmp_path.name}-{path.stem}")
    path.write_text(CONFIG.format(tmp=tmp_path, mem=mem, cache=cache), encoding="utf-8")
    return path


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """``main(argv)`` in-process; returns the exit code and stdout + stderr together.

    COLUMNS is wide so that rich never folds a URL across lines (a split secret would hide).
    """
    code, out, err = scaffold.run_cli(argv, {**ENV, **(env or {})}, columns=400)
    return code, out + err


# ============================================================================================
# Secrets never appear in CLI output, logs, reports, exceptions, repr() or the journal
# ============================================================================================


@scaffold.requires_driver("redis")
def test_cli_output_never_shows_salt_secret_or_passwords(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    seen: list[str] = []
    for argv in (["generate", "user", "-a", "email=a@b.c", "--json"],
                 ["generate", "user", "-a", "email=a@b.c", "--salt", SALT, "--prefix", "USR"],
                 ["config"], ["config", "--json"], ["validate"], ["info"],
                 ["stores", "-c", cfg], ["stores", "-c", cfg, "--json"],
                 ["write", "-c", cfg, "user", "-k", "email=a@b.c", "-d", f"name={MARKER}"],
                 ["write", "-c", cfg, "user", "-k", "email=b@b.c", "-d", "name=B", "--json"],
                 ["replay", "-c", cfg], ["replay", "-c", cfg, "--json"],
                 ["audit", "-c", cfg], ["audit", "-c", cfg, "--json"]):
        _, output = run_cli(argv)
        assert "Traceback" not in output, (argv, output)
        assert_no_secret(output, " ".join(argv))
        seen.append(output)
    everything = "\n".join(seen)
    # the URLs were shown, masked; the unreachable store's error was shown too
    assert "redis://user:***@127.0.0.1:1/0" in everything and "memory://admin:***@sec-" in everything
    assert "Connection refused" in everything or "connecting to 127.0.0.1:1" in everything
    assert "set (hidden)" in everything  # config describes the salt without showing it


@scaffold.requires_driver("redis")
def test_cli_errors_never_show_passwords(tmp_path: Path) -> None:
    required = str(write_config(tmp_path, REQUIRED_CACHE, "required.toml"))
    code, output = run_cli(["write", "-c", required, "user", "-k", "email=a@b.c", "-d", "n:=1"])
    assert code == 2 and "could not be written" in output
    assert_no_secret(output, "write to a required unreachable store")
    misspelt = tmp_path / "misspelt.toml"
    misspelt.write_text(CONFIG.format(tmp=tmp_path, mem=MEM_URL.replace("memory", "memroy"), cache=""))
    code, output = run_cli(["stores", "-c", str(misspelt)])
    assert code == 2 and "memroy" in output
    assert_no_secret(output, "a misspelt scheme")


def _forge(tmp_path: Path, cache: str = OPTIONAL_CACHE) -> Forge:
    return Forge.from_config(str(write_config(tmp_path, cache)), env=ENV)


@scaffold.requires_driver("redis")
def test_logs_never_show_secrets(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with _forge(tmp_path) as forge:
        report = forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
        forge.replay()
    assert report.stores["cache"].status == "journaled"
    assert caplog.records, "nothing was logged: the check would prove nothing"
    assert any("cache" in r.getMessage() for r in caplog.records)
    assert_no_secret(caplog.text, "logs")
    assert_no_secret("\n".join(repr(r.args) for r in caplog.records), "log record arguments")


@scaffold.requires_driver("redis")
def test_reports_never_show_secrets(tmp_path: Path) -> None:
    with _forge(tmp_path) as forge:
        report = forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
        assert report.stores["cache"].errors, "the unreachable store left no error to check"
        assert_no_secret(json.dumps(report.to_dict()), "WriteReport.to_dict")
        assert_no_secret(report.summary() + repr(report), "WriteReport summary/repr")
    with Forge.from_config(str(write_config(tmp_path, "", "no-cache.toml")), env=ENV) as forge:
        forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
        audit = forge.audit()
        assert audit.consistent
        assert_no_secret(json.dumps(audit.to_dict()) + repr(audit), "AuditReport")


@scaffold.requires_driver("redis")
def test_exceptions_never_show_secrets(tmp_path: Path) -> None:
    redis_store = open_store(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    assert redis_store.url(masked=False) == REDIS_URL  # the password really is in the URL
    errors: list[BaseException] = []
    for call in (redis_store.ping, lambda: redis_store.put_many([Record("user", uuid.uuid4(), {"a": 1})]),
                 lambda: redis_store.get_many("user", [uuid.uuid4()]), lambda: list(redis_store.scan("user"))):
        with pytest.raises(StoreUnavailableError) as info:
            call()
        errors.append(info.value)
    redis_store.close()
    with pytest.raises(WriteError) as write_info, _forge(tmp_path, REQUIRED_CACHE) as forge:
        forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
    errors.append(write_info.value)
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.format(tmp=tmp_path, mem=f"memroy://admin:{MEM_PASSWORD}@x", cache=""))
    with pytest.raises(ConfigError) as config_info:
        load_settings(bad, env=ENV)
    errors.append(config_info.value)
    for err in errors:
        shown = f"{err}\n{err!r}\n{getattr(err, 'store', '')}\n{err.__cause__!r}\n{err.__context__!r}"
        assert_no_secret(shown, type(err).__name__)
    assert_no_secret(json.dumps(write_info.value.report.to_dict()), "WriteError.report")


@scaffold.requires_driver("redis")
def test_repr_never_shows_secrets(tmp_path: Path) -> None:
    config = IDConfig(namespace=Namespace("security.example"), salt=SALT, secret=SECRET)
    record = Record("user", uuid.uuid4(), {"password": MEM_PASSWORD}, {"email": "a@b.c"})
    adapters: list[Adapter] = [open_store(REDIS_URL), open_store(MEM_URL),
                               open_store(f"postgresql+psycopg://app:{REDIS_PASSWORD}@127.0.0.1:1/app")]
    shown = [repr(config), str(config.describe()), repr(UUIDGenerator(config)), repr(record), str(record),
             *(repr(a) for a in adapters), *(a.url() for a in adapters),
             repr(adapters[2]._engine)]  # type: ignore[attr-defined]
    for a in adapters:
        a.close()
    assert_no_secret("\n".join(shown), "repr()")


def test_settings_repr_never_shows_passwords(tmp_path: Path) -> None:
    """ForgeSettings/StoreSettings end up in logs and tracebacks; their URLs must be masked there."""
    settings = load_settings(write_config(tmp_path), env=ENV)
    assert_no_secret(repr(settings), "repr(ForgeSettings)")
    assert_no_secret("\n".join(repr(s) for s in settings.stores), "repr(StoreSettings)")
    assert REDIS_URL in [s.url for s in settings.stores]  # the real URL is still there to connect with


@pytest.mark.parametrize("url,password", [
    ("redis://:p@ss-Zx81@127.0.0.1:6379/0", "p@ss-Zx81"),
    ("redis://user:Ab12@Cd34@Ef56@127.0.0.1:6379/0", "Ab12@Cd34@Ef56"),
    ("postgresql://app:Qw3#xK9z@db.example/app", "Qw3#xK9z"),
    ("postgresql://app:Qw3%40xK9z@db.example/app", "Qw3%40xK9z"),
], ids=["one-at-sign", "two-at-signs", "hash", "percent-encoded"])
def test_mask_url_hides_passwords_with_reserved_characters(url: str, password: str) -> None:
    """An unencoded '@' or '#' in a password: drivers split the userinfo at the last '@', so
    the whole password must be masked, not only the part before its first '@'."""
    masked = mask_url(url)
    assert masked.endswith(url[url.rindex("@"):])  # the host is still shown
    for part in password.replace("@", " ").replace("#", " ").split():
        assert part not in masked, masked


@scaffold.requires_driver("redis")
def test_journal_holds_data_but_no_secrets(tmp_path: Path) -> None:
    with _forge(tmp_path) as forge:
        forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
        assert forge.pending() == {"cache": 1}
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite3*"))
    assert MARKER.encode() in raw  # entity data is expected there (the file is private)
    for s in SECRETS:
        assert s.encode() not in raw, f"{s!r} is in the journal"
    db = sqlite3.connect(tmp_path / "journal.sqlite3")
    try:
        errors = [row[0] for row in db.execute("SELECT last_error FROM pending")]
    finally:
        db.close()
    assert errors and all(e and "127.0.0.1:1" in e for e in errors)


# ============================================================================================
# Keyed mode: nobody without the secret can compute an ID from known data
# ============================================================================================

NS = Namespace("users.myapp.com")


def _spec_keyed(secret: bytes, name: str) -> uuid.UUID:
    d = bytearray(hmac.new(secret, NS.uuid.bytes + name.encode("utf-8"), hashlib.sha256).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x80
    d[8] = (d[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(d))


def test_keyed_id_is_a_uuidv8_that_depends_on_the_secret() -> None:
    keyed = UUIDGenerator(IDConfig(namespace=NS, salt=SALT, secret=SECRET))
    other = UUIDGenerator(IDConfig(namespace=NS, salt=SALT, secret=SECRET + "x"))
    plain = UUIDGenerator(IDConfig(namespace=NS, salt=SALT))
    name = canonical_name("user", [], {"email": "john@example.com"}, SALT)
    ident = keyed.generate("user", email="john@example.com")
    assert ident.version == 8 and ident.variant == uuid.RFC_4122
    assert ident == _spec_keyed(SECRET.encode(), name)
    assert ident == UUIDGenerator(IDConfig(namespace=NS, salt=SALT, secret=SECRET.encode())).generate(
        "user", email="john@example.com")  # a str secret is its UTF-8 bytes
    assert ident != uuid.uuid5(NS.uuid, name) == plain.generate("user", email="john@example.com")
    assert ident != other.generate("user", email="john@example.com")


def test_enumerating_emails_never_hits_a_keyed_id() -> None:
    """An attacker knows the scheme, the namespace, every candidate email, and even the salt."""
    emails = [f"user{i}@example.com" for i in range(3000)] + ["john@example.com"]
    keyed = UUIDGenerator(IDConfig(namespace=NS, salt=SALT, secret=SECRET))
    victims = set(keyed.generate_many("user", [{"email": e} for e in emails]))
    assert len(victims) == len(emails)
    guesses: set[uuid.UUID] = set()
    for salt in ("", SALT):  # without the salt, and with it
        guesses |= set(UUIDGenerator(IDConfig(namespace=NS, salt=salt)).generate_many(
            "user", [{"email": e} for e in emails]))
        guesses |= {uuid.uuid5(NS.uuid, canonical_name("user", [], {"email": e}, salt)) for e in emails}
    for wrong in ("", "secret", SECRET[:-1], SECRET.upper()):  # a few guessed secrets
        if wrong:
            guesses |= {_spec_keyed(wrong.encode(), canonical_name("user", [], {"email": e}, SALT))
                        for e in emails}
    assert len(guesses) > 4 * len(emails)
    assert victims.isdisjoint(guesses)
    # the attacker's own computation is right: it finds the IDs of an unkeyed deployment
    assert set(UUIDGenerator(IDConfig(namespace=NS, salt=SALT)).generate_many(
        "user", [{"email": e} for e in emails])) <= guesses


# ============================================================================================
# Private files: mode 0600 whatever the umask
# ============================================================================================


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000: a file created without an explicit mode would come out world-readable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_journal_and_its_wal_and_shm_are_0600(tmp_path: Path, open_umask: None) -> None:
    journal = Journal(tmp_path / "sub" / "journal.sqlite3")
    try:
        journal.record_intent([Record("user", uuid.uuid4(), {"a": 1})], ["db"])
        files = sorted(tmp_path.glob("sub/journal.sqlite3*"))
        assert [f.name for f in files] == ["journal.sqlite3", "journal.sqlite3-shm", "journal.sqlite3-wal"]
        assert {f.name: oct(mode(f)) for f in files} == {f.name: "0o600" for f in files}
    finally:
        journal.close()


def test_journal_of_a_forge_from_config_is_0600(tmp_path: Path, open_umask: None) -> None:
    with Forge.from_config(str(write_config(tmp_path, "")), env=ENV) as forge:
        forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
        files = sorted(tmp_path.glob("journal.sqlite3*"))
        assert tmp_path / "journal.sqlite3" in files
        for f in files:
            assert mode(f) == 0o600, f


def test_audit_output_file_is_0600(tmp_path: Path, open_umask: None) -> None:
    cfg = str(write_config(tmp_path, ""))
    assert run_cli(["write", "-c", cfg, "user", "-k", "email=a@b.c", "-d", f"name={MARKER}"])[0] == 0
    fresh = tmp_path / "findings.json"
    existing = tmp_path / "old-findings.json"
    existing.write_text("{}")
    existing.chmod(0o644)
    for target in (fresh, existing):
        code, output = run_cli(["audit", "-c", cfg, "--output", str(target)])
        assert code == 0, output
        assert mode(target) == 0o600, target
        assert json.loads(target.read_text())["consistent"] is True


def test_init_file_is_0600(tmp_path: Path, open_umask: None) -> None:
    fresh = tmp_path / "fresh.env"
    existing = tmp_path / "existing.env"
    existing.write_text("OLD=1\n")
    existing.chmod(0o644)
    assert run_cli(["init", "-o", str(fresh)])[0] == 0
    assert run_cli(["init", "-o", str(existing), "--force"])[0] == 0
    for target in (fresh, existing):
        assert mode(target) == 0o600, target
        assert "UUID_FORGE_SALT=" in target.read_text()


# ============================================================================================
# Every SQL statement binds its values
# ============================================================================================

SQL_INJECTIONS = [
    "'; DROP TABLE {table}; --",
    "x' OR '1'='1",
    "\"; DELETE FROM {table}; --",
    "Robert'); DROP TABLE students;--",
    "1); UPDATE {table} SET data = NULL; --",
    "%(data)s %s ? :1 $1",
    "\\'; SELECT pg_sleep(10); --",
]
TRICKY_TYPES = ["order-items.v2", "select", "drop-table_1"]


def _sql_records(entity_type: str, table: str) -> list[Record]:
    records = []
    for i, template in enumerate(SQL_INJECTIONS):
        value = template.format(table=table) + f" #{i}-{MARKER}"
        key = {"email": value, "code": f"{value} key"}
        records.append(Record(entity_type, uuid.uuid5(NS.uuid, f"{entity_type}/{i}"),
                              {"comment": value, value: [value, {"q": value}]}, key))
    return records


def _data_values(records: list[Record]) -> set[str]:
    out: set[str] = set()
    for r in records:
        assert isinstance(r.key, dict) and r.key_json is not None
        out |= {r.data_json, r.key_json, *r.data, *r.key.values()}
    return out


def _check_bound_parameters(store: Adapter, prefix: str) -> None:
    """Write, read, scan and delete injection strings, watching every statement sent."""
    statements: list[str] = []
    engine = store._engine  # type: ignore[attr-defined]

    def watch(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", watch)
    values: set[str] = set()
    try:
        for entity_type in TRICKY_TYPES:
            records = _sql_records(entity_type, prefix + entity_type)
            values |= _data_values(records)
            assert store.put_many(records) == len(records)
            assert store.put_many(records) == len(records)  # an upsert: still one row each
            back = store.get_many(entity_type, [r.id for r in records])
            assert {i: (r.data, r.key) for i, r in back.items()} == {r.id: (r.data, r.key) for r in records}
            assert store.count(entity_type) == len(records)
            assert store.delete_many(entity_type, [records[0].id]) == 1
            assert store.count(entity_type) == len(records) - 1
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert len(statements) > 10
    for statement in statements:
        for value in values:
            assert value not in statement, f"data inside SQL text: {statement[:500]}"
        assert MARKER not in statement, statement[:500]
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        for entity_type in TRICKY_TYPES:
            assert prefix + entity_type in tables
            quoted = engine.dialect.identifier_preparer.quote(prefix + entity_type)
            assert conn.execute(sql_text(f"SELECT COUNT(*) FROM {quoted}")).scalar() == len(SQL_INJECTIONS) - 1
        assert "students" not in tables


def test_sqlite_binds_every_value(tmp_path: Path) -> None:
    store = open_store("sqlite:///" + str(tmp_path / "x.db"))
    try:
        _check_bound_parameters(store, "uf_")
        assert sorted(store.entity_types()) == sorted(TRICKY_TYPES)
    finally:
        store.close()
    db = sqlite3.connect(tmp_path / "x.db")
    try:
        names = sorted(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        db.close()
    assert names == sorted(["uuid_forge_owners", *("uf_" + t for t in TRICKY_TYPES)])  # and whose each table is


def test_postgresql_binds_every_value() -> None:
    pytest.importorskip("psycopg")
    url = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    prefix = f"ufsec{uuid.uuid4().hex[:8]}_"
    store = open_store(url, table_prefix=prefix, connect_timeout=2)
    try:
        store.ping()
    except UUIDForgeError as err:
        store.close()
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no PostgreSQL server: {err}")
    engine = store._engine  # type: ignore[attr-defined]
    try:
        _check_bound_parameters(store, prefix)
    finally:
        with engine.begin() as conn:
            for name in inspect(conn).get_table_names():
                if name.startswith(prefix):
                    conn.execute(sql_text(f"DROP TABLE {engine.dialect.identifier_preparer.quote(name)}"))
        store.close()


@scaffold.requires_driver("redis")
def test_write_through_keeps_secrets_out_of_a_required_failure(tmp_path: Path) -> None:
    """A required store down: WriteError, the source written, the failure journaled, nothing leaked."""
    source = open_store("memory://")
    cache = open_store(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    forge = Forge([StoreHandle("db", source, True), StoreHandle("cache", cache)], ids=IDConfig(salt=SALT, secret=SECRET),
                  journal=str(tmp_path / "j.sqlite3"), write=WriteSettings(retries=0))
    with forge:
        with pytest.raises(WriteError) as info:
            forge.write("user", {"email": "a@b.c"}, {"name": MARKER})
        assert forge.pending() == {"cache": 1} and source.count("user") == 1
    assert_no_secret(f"{info.value}\n{info.value!r}\n{json.dumps(info.value.report.to_dict())}", "WriteError")


# ============================================================================================
# Issue 10 (findings 8 and 9): every password shape masked, data cut from driver errors, and
# mask_text in linear time with a capped length
# ============================================================================================

@pytest.mark.parametrize("url,secret_parts", [
    ("postgresql+psycopg://app:Pa55 W0rd-Qx@db.example/app", ["Pa55", "W0rd-Qx"]),
    ("redis://:Sl4sh3d/P4rtQ@127.0.0.1:6379/0", ["Sl4sh3d", "P4rtQ"]),
    ("redis://u:Co1on:P4rtZ@127.0.0.1:6379/0", ["Co1on", "P4rtZ"]),
    ("redis://:@127.0.0.1:6379/0", []),
    ("mongodb://u:Mu1tiHost-Pw@h1:27017,h2:27017/db?replicaSet=rs", ["Mu1tiHost-Pw"]),
    ("mongodb+srv://u:Srv%2FPw-Kk@cluster0.example.net/db", ["Srv%2FPw-Kk", "Srv"]),
    ("amqp://guest:Am%40qpPw-Ll@127.0.0.1:5672/vh", ["Am%40qpPw-Ll"]),
    ("elasticsearch+https://elastic:Es?Pw#Zz-9@es.example:9200", ["Es?Pw#Zz-9", "Pw#Zz"]),
    ("postgresql+psycopg://app@db/app?sslpassword=SslPw-Mm3&sslmode=require", ["SslPw-Mm3"]),
    ("mongodb://db/x?tlsCertificateKeyFilePassword=Tls-Pw7&authSource=admin", ["Tls-Pw7"]),
    ("redis://db/0?password=QpPw-1&token=QpTok-2&api_key=QpKey-3&client_secret=QpSec-4", ["QpPw-1", "QpTok-2",
                                                                                         "QpKey-3", "QpSec-4"]),
], ids=["space", "slash", "colon", "empty", "multi-host", "srv-encoded", "amqp-encoded", "es-reserved",
        "sslpassword", "tls-key-password", "query-credentials"])
def test_mask_url_and_mask_text_hide_every_password_shape(url: str, secret_parts: list[str]) -> None:
    """The shapes SQLAlchemy, redis-py, pika, pymongo and elasticsearch-py accept, as a URL
    alone and quoted in a driver's error text."""
    shown = [mask_url(url), mask_text(url), mask_text(f"connecting to {url}: refused (contact ops@example.com)"),
             mask_text(f"error: '{url}' failed\nnext line")]
    for text in shown:
        for part in secret_parts:
            assert part not in text, text
    host = url.split("@")[-1].split("/")[0].split("?")[0] if "@" in url else url.split("://")[1].split("/")[0]
    assert all(host in text for text in shown[:2]), shown  # the host is still shown


def test_mask_url_keeps_urls_without_passwords() -> None:
    for url in ("postgresql+psycopg://postgres@127.0.0.1:5432/test", "redis://127.0.0.1:6379/1?key_format=hex",
                "mongodb://h1,h2/db?authSource=admin", "file:///tmp/x?fsync=false"):
        assert mask_url(url) == url
        assert mask_text(f"{url}: refused for ops@example.com") == f"{url}: refused for ops@example.com"


def test_mask_text_masks_credential_parameters_in_prose() -> None:
    text = ("host=db password='Pq Sp4ce' sslpassword=Ssl-9 "
            '{"api_key": "Js0n-Key", "token":"Js0n-Tok"} '
            "{'client_secret': 'Py-Sec'} Authorization: Bearer-Hdr")
    masked = mask_text(text)
    for secret in ("Pq", "Sp4ce", "Ssl-9", "Js0n-Key", "Js0n-Tok", "Py-Sec", "Bearer-Hdr"):
        assert secret not in masked, masked
    assert "host=db" in masked
    assert mask_text("expected key=value (text) or key:=JSON") == "expected key=value (text) or key:=JSON"
    mysql = "(1045, \"Access denied for user 'app'@'10.0.0.1' (using password: YES)\")"
    assert mask_text(mysql) == mysql


def test_strip_sql_detail_cuts_quoted_data() -> None:
    pg = ('DataError: (psycopg.errors.UntranslatableCharacter) unsupported Unicode escape sequence\n'
          'DETAIL:  \\u0000 cannot be converted to text.\n'
          'CONTEXT:  JSON data, line 1: {"a_email":"bob@example.com","a_ssn":"SSN-078-05-1120","bad":"x\\u0000...\n'
          "unnamed portal parameter $3 = '...'\n"
          "[SQL: INSERT INTO t (id) VALUES (%s)]\n"
          "[parameters: ('SSN-078-05-1120', 'bob@example.com')]\n")
    unique = ('duplicate key value violates unique constraint "u_email"\n'
              'DETAIL:  Key (email)=(bob@example.com) already exists.')
    row = 'null value in column "x" violates not-null constraint\nDETAIL:  Failing row contains (1, SSN-078-05-1120).'
    mysql = "(1062, \"Duplicate entry 'bob@example.com' for key 'email'\")"
    mongo = ("E11000 duplicate key error collection: db.user index: email_1 dup key: { email: \"bob@example.com\" }, "
             "full error: {'keyValue': {'email': 'bob@example.com'}, 'op': {'_id': 1, 'ssn': 'SSN-078-05-1120'}}")
    for text in (pg, unique, row, mysql, mongo):
        masked = mask_text(text)
        assert "SSN-078-05-1120" not in masked and "bob@example.com" not in masked, masked
    assert "unsupported Unicode escape sequence" in mask_text(pg)
    assert "\\u0000 cannot be converted to text." in mask_text(pg)
    assert "Key (email)=(" in mask_text(unique) and "[SQL: INSERT INTO t" in mask_text(pg)


@pytest.mark.parametrize("size", [80_000, 20_000_000], ids=["80KB", "20MB"])
def test_mask_text_is_linear_and_capped(size: int) -> None:
    """The old regex backtracked: 80 KB of letters took 5-13 s, a 20 MB driver error 14+ minutes."""
    import time

    shapes = ["a" * size, "x" * (size - 3) + "://", "x://a:" * (size // 6), "password=" * (size // 9),
              "redis://u:p w@h/0 password='x' DETAIL: y (z)\n" * (size // 45),
              "{'op': {'ssn': '" + "9" * size + "'}}"]
    for text in shapes:
        started = time.perf_counter()
        masked = mask_text(text)
        took = time.perf_counter() - started
        assert took < 2.0, (size, text[:40], took)
        assert len(masked) <= 1100, (text[:40], len(masked))
    assert mask_text("a" * size, limit=None) == "a" * size  # uncapped on request
    capped = mask_text("head " + "a" * size + " tail")
    assert capped.startswith("head aaa") and "chars cut]" in capped


def test_mask_text_cap_keeps_the_head_and_the_last_line() -> None:
    text = "store x: write failed: " + "d" * 200_000 + "\n(run replay when the store is back)"
    capped = mask_text(text)
    assert capped.startswith("store x: write failed: ddd") and capped.endswith("(run replay when the store is back)")
    cut = int(capped.split(" … [")[1].split(" chars cut]")[0])
    assert 195_000 < cut < len(text) and len(capped) < 1100


def test_a_password_cut_at_the_window_edge_is_still_masked() -> None:
    """A long text is masked only where it is shown: a URL running past the masked window must
    not show its password's start."""
    text = "e: redis://u:Edge-Pw-" + "x" * 400_000 + "@host/0"
    assert "Edge-Pw" not in mask_text(text)
    assert "Edge-Pw" not in mask_text(text, limit=None)


@scaffold.requires_driver("redis", "pika")
def test_open_store_hides_password_fragments_quoted_by_url_parsers() -> None:
    """redis-py reads 'redis://:ab/cd@h' as port 'ab' and says so: no piece of it is shown."""
    for url in ("redis://:Sl4sh3d/P4rtQ@127.0.0.1:6379/0", "amqp://g:Sl4sh3d/P4rtQ@127.0.0.1:5672/v"):
        with pytest.raises(ConfigError) as info:
            open_store(url)
        assert "Sl4sh3d" not in str(info.value) and "P4rtQ" not in str(info.value), str(info.value)
        assert "percent-encoded" in str(info.value)


def test_sql_engine_hides_bound_parameters(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/x.db")
    try:
        assert store._engine.hide_parameters  # type: ignore[attr-defined]
    finally:
        store.close()


def test_store_settings_repr_masks_credential_options() -> None:
    from uuid_forge.settings import StoreSettings

    options = {"password": "Opt-Pw-1", "socket_timeout": 1}
    shown = repr(StoreSettings("cache", "redis://:Sp ace-Pw@h/0", options=options))
    assert "Sp" not in shown.replace("StoreSettings", "") and "Opt-Pw-1" not in shown and "socket_timeout" in shown
