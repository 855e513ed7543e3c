"""Bad inputs (issue 6, part 2): each row of docs/bad-inputs.md has a test here.

Every bad input must end in a documented error type with a message that says what is wrong and
where, or, on the command line, exit code 2 with one line on stderr. Never a traceback, a hang,
a silent coercion, or a write to some store before the input was checked.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import math
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uuid_forge.canonical import canonical
from uuid_forge.contract import Adapter
from uuid_forge.encodings import check_target, decode
from uuid_forge.errors import (
    CanonicalTypeError,
    CanonicalValueError,
    ConfigError,
    DecodeError,
    StoreTimeoutError,
    StoreUnavailableError,
    TargetError,
    ValidationError,
)
from uuid_forge.forge import Forge, StoreHandle
from uuid_forge.ids import IDConfig, UUIDGenerator, canonical_name
from uuid_forge.record import Record
from uuid_forge.registry import open_store
from uuid_forge.settings import WriteSettings, load_settings

from . import scaffold
from .scaffold import ForgeFactory, SilentServer

GEN = UUIDGenerator(IDConfig(namespace=uuid.UUID("7570842a-fbec-40d3-ae25-3f1c2bda326b"), salt="bad-inputs"))
SAMPLE = uuid.UUID("7570842a-fbec-40d3-ae25-3f1c2bda326b")



def _test_redis_url() -> str:
    """The tests' Redis URL: the variable, else the documented test database (15), never a user's 0."""
    from integration import servers  # the one place the test defaults live (docs/testing.md)
    return servers.default_urls()["redis"]

def nested_list(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` lists, built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``main(argv)`` in-process, with its own stdout/stderr and no UUID_FORGE_* variables."""
    return scaffold.run_cli(argv, env)


def assert_cli_error(argv: list[str], fragment: str, env: dict[str, str] | None = None) -> str:
    """Exit code 2, one line on stderr holding ``fragment``, nothing on stdout, no traceback."""
    code, out, err = run_cli(argv, env)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "unexpected error" not in err, err
    assert fragment in err, err
    return err


# ============================================================================================
# Values that have no canonical form
# ============================================================================================


class Plain:
    """A plain object: uuid-forge 0.1.x hashed its repr(), which held a memory address."""


class NoOffset(dt.tzinfo):
    def utcoffset(self, d: dt.datetime | None) -> dt.timedelta | None:
        return None

    def dst(self, d: dt.datetime | None) -> dt.timedelta | None:
        return None

    def tzname(self, d: dt.datetime | None) -> str:
        return "none"


class Forever:
    """``__forge_key__`` that returns the object itself, for ever."""

    def __forge_key__(self) -> Any:
        return self


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(CanonicalValueError) as info:
        GEN.generate("event", at=dt.datetime(2024, 5, 1, 12, 0))
    assert "naive datetime" in str(info.value) and "at kwargs.at" in str(info.value)


def test_datetime_whose_tzinfo_gives_no_offset_is_naive() -> None:
    with pytest.raises(CanonicalValueError, match="naive datetime"):
        canonical([dt.datetime(2024, 5, 1, tzinfo=NoOffset())])


@pytest.mark.parametrize("value", [
    dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=1))),
    dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-1))),
], ids=["year-1-east-of-utc", "year-9999-west-of-utc"])
def test_aware_datetime_outside_years_1_to_9999_in_utc_is_refused(value: dt.datetime) -> None:
    with pytest.raises(CanonicalValueError) as info:
        canonical({"when": value})
    assert "at value.when" in str(info.value)


@pytest.mark.parametrize("value,fragment", [
    (math.nan, "not a finite number"),
    (math.inf, "not a finite number"),
    (-math.inf, "not a finite number"),
    (decimal.Decimal("NaN"), "is not finite"),
    (decimal.Decimal("sNaN"), "is not finite"),
    (decimal.Decimal("-Infinity"), "is not finite"),
], ids=["nan", "inf", "-inf", "Decimal-NaN", "Decimal-sNaN", "Decimal--Infinity"])
def test_nan_and_infinity_are_refused(value: Any, fragment: str) -> None:
    with pytest.raises(CanonicalValueError) as info:
        GEN.generate("reading", sensor="t1", values=[1.5, value])
    assert fragment in str(info.value) and "at kwargs.values[1]" in str(info.value)


@pytest.mark.parametrize("members", [
    frozenset({"\u00e9", "e\u0301"}),  # NFC and NFD spellings of é
    frozenset({dt.date(2024, 5, 1), "2024-05-01"}),
    frozenset({0.1, decimal.Decimal("0.1")}),  # unequal in Python, both "0.1" in JSON
    frozenset({SAMPLE, str(SAMPLE)}),
], ids=["nfc-nfd", "date-vs-text", "float-vs-decimal", "uuid-vs-text"])
def test_set_whose_members_collide_is_refused(members: frozenset[Any]) -> None:
    assert len(members) == 2  # Python keeps both members
    with pytest.raises(CanonicalValueError) as info:
        GEN.generate("tagged", tags=members)
    assert "same canonical form" in str(info.value) and "at kwargs.tags" in str(info.value)


def test_dict_keys_that_collide_after_nfc_are_refused() -> None:
    with pytest.raises(CanonicalValueError, match="collide after NFC normalisation"):
        canonical({"\u00e9": 1, "e\u0301": 2})


def test_dict_with_non_text_keys_is_refused() -> None:
    with pytest.raises(CanonicalTypeError, match="keys must be str"):
        GEN.generate("grid", cells={(1, 2): "x"})


@pytest.mark.parametrize("value,type_name", [
    (b"\x00\x01", "bytes"), (bytearray(b"ab"), "bytearray"), (memoryview(b"ab"), "memoryview"),
], ids=["bytes", "bytearray", "memoryview"])
def test_bytes_are_refused(value: Any, type_name: str) -> None:
    with pytest.raises(CanonicalTypeError) as info:
        GEN.generate("blob", {"payload": [value]})
    assert f"unsupported type {type_name!r}" in str(info.value) and "at args[0].payload[0]" in str(info.value)


def test_plain_object_is_refused_never_reprd() -> None:
    obj = Plain()
    with pytest.raises(CanonicalTypeError) as info:
        GEN.generate("thing", owner=obj)
    message = str(info.value)
    assert "Plain" in message and "at kwargs.owner" in message
    assert hex(id(obj))[2:] not in message and "object at 0x" not in message


@pytest.mark.parametrize("value", [dt.time(12, 30), dt.timedelta(days=1), 1 + 2j, object()],
                         ids=["time", "timedelta", "complex", "object"])
def test_other_unsupported_types_are_refused(value: Any) -> None:
    with pytest.raises(CanonicalTypeError, match="unsupported type"):
        canonical(value)


def test_lone_surrogate_is_refused() -> None:
    with pytest.raises(CanonicalValueError, match="lone surrogate"):
        GEN.generate("user", name="bad \udc80 text")


@pytest.mark.parametrize("build", [nested_list, nested_dict], ids=["lists", "dicts"])
def test_nesting_10000_levels_is_an_error_not_a_crash(build: Any) -> None:
    value = build(10_000)
    for call in (lambda: canonical(value), lambda: GEN.generate("deep", v=value),
                 lambda: Record("deep", SAMPLE, {"v": value}).fingerprint):
        with pytest.raises(CanonicalValueError) as info:
            call()
        assert "nesting deeper than 100 levels" in str(info.value)


def test_a_forge_key_that_never_ends_is_an_error() -> None:
    with pytest.raises(CanonicalValueError, match="nesting deeper than 100 levels"):
        canonical(Forever())


def test_nesting_limit_is_the_same_for_every_leaf_type() -> None:
    """At the depth limit, 1 and Decimal(1) (the same form) must both pass or both fail."""

    def outcome(value: Any) -> str:
        try:
            return canonical(value)
        except CanonicalValueError:
            return "error"

    for depth in (100, 101, 102):
        assert outcome(nested_list(depth, 1)) == outcome(nested_list(depth, decimal.Decimal(1))), depth


def test_nesting_10000_levels_on_the_command_line() -> None:
    assert_cli_error(["generate", "deep", "-a", "v:=" + "[" * 10_000 + "]" * 10_000], "is not valid JSON")


def test_integer_of_5000_digits_keeps_every_digit() -> None:
    big = 10**5000 + 7
    text = "1" + "0" * 4999 + "7"
    assert canonical(big) == text
    assert canonical(decimal.Decimal(big)) == text
    assert GEN.generate("big", n=big) == uuid.uuid5(GEN.config.namespace_uuid,  # type: ignore[arg-type]
                                                   canonical_name("big", [], {"n": big}, "bad-inputs"))


def test_decimal_with_a_large_exponent_keeps_every_digit() -> None:
    assert canonical(decimal.Decimal("1E+5000")) == "1" + "0" * 5000
    assert canonical(decimal.Decimal("-1.5E-5000")) == "-0." + "0" * 4999 + "15"


_HUGE_DECIMAL = """
import decimal, sys
from uuid_forge.canonical import canonical
from uuid_forge.errors import CanonicalValueError
try:
    canonical(decimal.Decimal(sys.argv[1]))
except CanonicalValueError as err:
    print("CanonicalValueError", err)
"""


@pytest.mark.parametrize("text", ["1E+999999999", "1E-999999999"])
def test_decimal_with_a_huge_exponent_is_refused_quickly(text: str) -> None:
    """Plain notation of 1E+999999999 is a gigabyte of digits: refused, not attempted.

    Run in a child process, so that a hang fails this test instead of the whole run.
    """
    try:
        done = subprocess.run([sys.executable, "-c", _HUGE_DECIMAL, text], capture_output=True, text=True,
                              timeout=20, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"canonical(Decimal({text!r})) ran for more than 20 s")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("CanonicalValueError") and "at value" in done.stdout, done.stdout


@pytest.mark.parametrize("entity_type,error", [("", CanonicalValueError), (7, CanonicalTypeError)],
                         ids=["empty", "not-text"])
def test_entity_type_must_be_non_empty_text(entity_type: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="entity_type must"):
        GEN.generate(entity_type, email="a@b.c")


# ============================================================================================
# Entity types a store cannot hold
# ============================================================================================


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[Adapter]:
    store = open_store("file://" + str(tmp_path / "files"), fsync=False)
    yield store
    store.close()


@pytest.fixture
def memory_store() -> Iterator[Adapter]:
    store = open_store("memory://")
    yield store
    store.close()


BAD_FOR_EVERY_STORE = ["", "../etc", "a/../../b", "..", "user name", "-user", "x" * 101, "ünïcode"]


@pytest.mark.parametrize("entity_type", BAD_FOR_EVERY_STORE)
@pytest.mark.parametrize("kind", ["memory", "file"])
def test_entity_type_refused_by_every_store(entity_type: str, kind: str, request: pytest.FixtureRequest) -> None:
    store: Adapter = request.getfixturevalue(f"{kind}_store")
    with pytest.raises(ValidationError, match="is not accepted by"):
        store.check_entity_type(entity_type)
    with pytest.raises(ValidationError):  # an empty type is refused by Record itself
        store.put_many([Record("user", GEN.generate("user", n=1), {"a": 1}), Record(entity_type, SAMPLE, {"a": 1})])
    assert store.entity_types() == []  # nothing written, not even the good record


@pytest.mark.parametrize("entity_type,fragment", [
    ("User", "lowercase only"), ("con", "Windows reserves"), ("com1.log", "Windows reserves"), ("user.", "trailing"),
])
def test_entity_type_refused_by_the_file_store(entity_type: str, fragment: str, file_store: Adapter,
                                               memory_store: Adapter) -> None:
    with pytest.raises(ValidationError, match=fragment):
        file_store.check_entity_type(entity_type)
    assert memory_store.check_entity_type(entity_type) == entity_type  # the memory store has no such limit


@pytest.mark.parametrize("entity_type", ["", "User", "user name", "../x", "a/b", "_user", "-user", "+user", ".", "..",
                                         "a*b", "a?b", 'a"b', "a<b", "a|b", "a,b", "a#b", "a:b", "x" * 256])
def test_entity_type_refused_as_an_elasticsearch_index(entity_type: str) -> None:
    with pytest.raises(TargetError, match="Elasticsearch index name"):
        check_target(entity_type, "es-index")


def test_forge_refuses_a_bad_entity_type_before_writing_anywhere(tmp_path: Path, forge_factory: ForgeFactory) -> None:
    source = open_store("memory://")
    files = open_store("file://" + str(tmp_path / "files"), fsync=False)
    forge = forge_factory(("db", source), ("files", files), journal="j.sqlite3")
    with forge:
        with pytest.raises(ValidationError, match="lowercase only"):
            forge.write_many([("user", {"e": "a@b.c"}, {"n": 1}), ("User", {"e": "a@b.c"}, {"n": 1})])
        assert source.entity_types() == [] and files.entity_types() == []
        assert forge.pending() == {}


def test_forge_refuses_bad_data_before_writing_anywhere(forge_factory: ForgeFactory) -> None:
    source = open_store("memory://")
    with forge_factory(("db", source), journal="j.sqlite3") as forge:
        with pytest.raises(ValidationError, match=r"entities\[1\] \(user\): unsupported type 'bytes'"):
            forge.write_many([("user", {"e": "a@b.c"}, {"n": 1}), ("user", {"e": "b@b.c"}, {"photo": b"\xff"})])
        with pytest.raises(ValidationError, match="must be a mapping"):
            forge.write("user", {"e": "c@b.c"}, "not a mapping")  # type: ignore[arg-type]
        assert source.entity_types() == [] and forge.pending() == {}


# ============================================================================================
# IDs too long for a target
# ============================================================================================


@pytest.mark.parametrize("value,target,fragment", [
    ("x" * 256, "amqp-shortstr", "at most 255 bytes"),
    ("\u00e9" * 128, "amqp-shortstr", "at most 255 bytes"),  # 128 chars, 256 bytes of UTF-8
    ("INV-" + "E" * 216 + "-" + str(SAMPLE), "amqp-shortstr", "at most 255 bytes"),
    ("x" * 513, "es-id", "1-512 bytes"),
    ("\U0001f600" * 129, "es-id", "1-512 bytes"),  # 129 chars, 516 bytes
    ("", "es-id", "1-512 bytes"),
], ids=["amqp-256-ascii", "amqp-256-bytes", "amqp-prefixed-id", "es-513", "es-516-bytes", "es-empty"])
def test_ids_too_long_for_amqp_or_elasticsearch(value: str, target: str, fragment: str) -> None:
    with pytest.raises(TargetError) as info:
        check_target(value, target, where="message_id")
    assert fragment in str(info.value) and "message_id" in str(info.value)


@pytest.mark.parametrize("value,target", [("x" * 255, "amqp-shortstr"), ("x" * 512, "es-id"),
                                          ("INV-" + str(SAMPLE), "amqp-shortstr")])
def test_ids_at_the_limit_are_accepted(value: str, target: str) -> None:
    assert check_target(value, target) == value


# ============================================================================================
# Malformed UUID text
# ============================================================================================

S = str(SAMPLE)


@pytest.mark.parametrize("text,form,fragment", [
    (S[:-1] + "g", None, "not a UUID in any form"),  # string: a non-hex digit
    (S[:8] + S[9] + "-" + S[10:], None, "not a UUID in any form"),  # string: a dash moved
    ("{" + S + "}", None, "not a UUID in any form"),  # string in braces (38 chars)
    (S[:-1], None, "not a UUID in any form"),  # string: 35 chars
    (SAMPLE.hex[:-1] + "z", None, "not a UUID in any form"),  # hex: a non-hex digit
    (SAMPLE.hex[:-1], None, "not a UUID in any form"),  # hex: 31 chars
    ("dXCEKvvsQNOuJT8cK9oya+", None, "not a UUID in any form"),  # base64 with '+' (not the URL alphabet)
    ("dXCEKvvsQNOuJT8cK9oya", None, "not a UUID in any form"),  # base64url: 21 chars
    ("dXCEKvvsQNOuJT8cK9oyaw==", None, "not a UUID in any form"),  # base64url with padding
    ("dXCEKvvsQNOuJT8cK9oyax", None, "non-canonical base64url"),  # low bits of the last char set
    ("3NE222NYZC839TW99Z3GNXMCKB", None, "lowercase (case matters here)"),  # base32 upper case
    ("3ne222nyzc839tw99z3gnxmcKB", None, "lowercase (case matters here)"),  # base32 mixed case
    ("8ne222nyzc839tw99z3gnxmckb", None, "must start with 0-7"),  # base32: more than 128 bits
    ("3ne222nyzc839tw99z3gnxmcku", None, "not a UUID in any form"),  # base32: 'u' is not Crockford
    (str(2**128), None, "below 2**128"),  # int: one too many
    ("1" * 40, None, "not a UUID in any form"),  # int: 40 digits
    ("urn:uuid:" + S[:-1], None, "not a UUID in any form"),  # urn: 44 chars
    ("urn:uid:" + S + "0", None, "not a UUID in any form"),  # urn: wrong prefix
    (S[:8], None, "display-only"),  # short form
    ("", None, "not a UUID in any form"),
    (S, "hex", "wrong length"),  # a form forced that does not fit
    (SAMPLE.hex, "string", "wrong length"),
    ("dxcekvvsqnoujt8ck9oyaw", "base32", "26 chars"),
    ("urn:uuid:{" + SAMPLE.hex + "}", "urn", "not a UUID"),  # braces and no dashes are not the urn form
    ("urn:" + SAMPLE.hex, "string", "not a UUID"),  # 36 chars, but not the string form
], ids=lambda p: p if isinstance(p, str) and len(p) < 30 else None)
def test_malformed_uuid_text_is_refused(text: str, form: str | None, fragment: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(text, form)
    assert fragment in str(info.value)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 15, b"\x00" * 17])
def test_bytes_form_must_be_16_bytes(raw: bytes) -> None:
    with pytest.raises(DecodeError, match="must be 16 bytes"):
        decode(raw)


def test_malformed_ids_given_to_a_store_are_refused(memory_store: Adapter) -> None:
    with pytest.raises(ValidationError, match=r"ids\[1\]"):
        memory_store.get_many("user", [SAMPLE, "3NE222NYZC839TW99Z3GNXMCKB"])
    with pytest.raises(DecodeError):
        Record("user", "not-a-uuid", {})


def test_malformed_uuid_on_the_command_line() -> None:
    assert_cli_error(["decode", "dXCEKvvsQNOuJT8cK9oyax"], "non-canonical base64url")
    assert_cli_error(["decode", "3NE222NYZC839TW99Z3GNXMCKB"], "lowercase")


# ============================================================================================
# Injection strings inside data travel as data
# ============================================================================================

INJECTIONS = [
    "'; DROP TABLE uf_user; --",
    "Robert'); DROP TABLE students;--",
    "\" OR \"1\"=\"1",
    "1; DELETE FROM uf_user WHERE 1=1",
    "%s %(data)s ? :data $1 {}",  # the placeholders of every DB-API paramstyle
    "\\'; SELECT 1; --",
    '{"$gt": ""}',
    '"},"fp":"00000000000000000000000000000000","id":"x","data":{"',  # the file store's own layout
    "\\u0000 \\\" \\\\",
    "nul\x00inside",
    "*3\r\n$3\r\nSET\r\n$5\r\npwned\r\n$1\r\n1\r\n",  # a Redis protocol command
    "\r\nFLUSHALL\r\n",
    "user:* [a-z]? \\*",  # Redis glob characters
    "../../etc/passwd",
    "\u2028\u2029\U0001f600 \u00e9",
]


def injected_records(entity_type: str) -> list[Record]:
    records = []
    for i, text in enumerate(INJECTIONS):
        key = {"email": text, "n": i}
        data = {"text": text, "all": INJECTIONS, text: i, "nested": {"k": [text, {text: text}]}}
        records.append(Record(entity_type, GEN.generate(entity_type, **key), data, key))
    return records


@pytest.fixture(params=["memory", "file", "sqlite", "redis"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Adapter]:
    kind = request.param
    if kind == "memory":
        store = open_store("memory://")
    elif kind == "file":
        store = open_store("file://" + str(tmp_path / "files"), fsync=False)
    elif kind == "sqlite":
        store = open_store("sqlite:///" + str(tmp_path / "x.db"))
    else:
        scaffold.need_driver("redis")
        prefix = f"uf-bad-inputs-{uuid.uuid4().hex[:8]}:"
        store = open_store(_test_redis_url(), prefix=prefix,
                           socket_timeout=2, socket_connect_timeout=2)
        try:
            store.ping()
        except StoreUnavailableError as err:
            store.close()
            pytest.skip(f"no Redis server: {err}")
    yield store
    if kind == "redis":
        client = store.client  # type: ignore[attr-defined]
        keys = list(client.scan_iter(match=store.prefix + "*"))  # type: ignore[attr-defined]
        if keys:
            client.delete(*keys)
    store.close()


def test_injection_strings_round_trip_unchanged(any_store: Adapter, tmp_path: Path) -> None:
    records = injected_records("user")
    assert any_store.put_many(records) == len(records)
    back = any_store.get_many("user", [r.id for r in records])
    assert len(back) == len(records)
    for r in records:
        got = back[r.id]
        flat = any_store.name in ("redis", "file")  # their default layouts hold the data only
        assert got.data == r.data and got.key == (None if flat else r.key) and got.fingerprint == r.fingerprint
    assert sorted(any_store.entity_types()) == ["user"]
    assert any_store.count("user") == len(records)
    if any_store.name == "sql":
        with sqlite3.connect(tmp_path / "x.db") as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            assert sorted(tables) == ["uf_user", "uuid_forge_owners"]  # and whose each table is
            assert db.execute("SELECT COUNT(*) FROM uf_user").fetchone() == (len(records),)
        db.close()
    if any_store.name == "file":
        for r in records:
            text = Path(any_store.path_of("user", r.id)).read_text(encoding="utf-8")  # type: ignore[attr-defined]
            assert text == r.data_json + "\n" and json.loads(text) == r.data  # the data as a JSON document


#: store names rich would read as markup (a style, a closing tag with nothing to close, both), and
#: names of the same lengths that hold none: the same commands must exit and print the same with either
MARKUP_NAMES = ("[cache]", "a[/]b", "[bold red]x[/]")
PLAIN_NAMES = ("srcdb_7", "fs__5", "optional_st_14")


def _markup_scenario(root: Path, names: tuple[str, str, str]) -> list[tuple[str, int, str, str]]:
    """write, journal, replay, stores, config, validate and audit (text and --json) on a config whose
    source, required file store and optional store are ``names``; the optional store is down at first
    (its folder is a file), then up; then a record is made stale and a foreign file is planted."""
    source, files, optional = names
    root.mkdir()
    (root / "blocker").write_text("a file where the optional store's folder should be\n", encoding="utf-8")
    conf = root / "uuid-forge.toml"
    conf.write_text(f'[journal]\npath = "{root}/journal.sqlite3"\n\n'
                    f'[stores.{json.dumps(source)}]\nurl = "sqlite:///{root}/db.sqlite3"\nrole = "source"\n\n'
                    f'[stores.{json.dumps(files)}]\nurl = "file://{root}/files"\noptions = {{ fsync = false }}\n\n'
                    f'[stores.{json.dumps(optional)}]\nurl = "file://{root}/blocker/files"\noptional = true\n',
                    encoding="utf-8")
    env = {"UUID_FORGE_SALT": "markup-" * 5}
    steps: list[tuple[str, int, str, str]] = []

    def step(*argv: str) -> tuple[int, str, str]:
        code, out, err = scaffold.run_cli([argv[0], "-c", str(conf), *argv[1:]], env, columns=200)
        steps.append((" ".join(argv), code, out, err))
        return code, out, err

    step("write", "user", "-k", "email=a@x.org", "-d", "[bold]f[/]:=1", "-d", "name=[red]A[/]")
    _, out, _ = step("write", "user", "-k", "email=b@x.org", "-d", "[bold]f[/]:=1", "-d", "name=[red]A[/]", "--json")
    ident = json.loads(out)["id"]
    for command in ("journal", "replay", "stores", "config"):
        step(command)
        step(command, "--json")
    step("validate")
    step("audit")  # the optional store is still down: not audited
    (root / "blocker").unlink()  # the optional store comes back
    step("replay")
    step("audit")
    held = next((root / "files").rglob(f"{ident}.json"))
    held.write_text(json.dumps({"[bold]f[/]": 2, "name": "[red]B[/]", "[x]": 1, ":fire:": 1}), encoding="utf-8")
    (root / "files" / "user" / "[b]y.json").write_text("{}", encoding="utf-8")  # another application's file
    step("audit")
    step("audit", "--show-values")
    step("audit", "--repair")
    step("audit", "--json")
    shutil.rmtree(root / "files")
    (root / "files").write_text("the required store's folder is gone\n", encoding="utf-8")
    step("stores")
    return steps


def _normalized(steps: list[tuple[str, int, str, str]], root: Path, names: tuple[str, ...]) -> list[tuple[Any, ...]]:
    """Each step's output with the folder, the store names and the timings replaced by placeholders."""
    def plain(text: str) -> str:
        text = text.replace(str(root), "ROOT")
        for i, name in enumerate(names):
            text = text.replace(name, f"<store {i}>")
        return re.sub(r"\d+\.\d+", "#", text)
    return [(label, code, plain(out), plain(err)) for label, code, out, err in steps]


def test_markup_in_store_names_field_names_and_values_prints_literally(tmp_path: Path) -> None:
    """rich reads ``[...]`` as markup: a store named ``a[/]b`` crashed write and audit (MarkupError),
    ``[cache]`` vanished from the tables. Names, field names, values and reasons print as they are."""
    plain = _markup_scenario(tmp_path / "plain", PLAIN_NAMES)
    odd = _markup_scenario(tmp_path / "odd__", MARKUP_NAMES)  # the same length of folder name: the same widths
    assert [(label, code) for label, code, *_ in odd] == [(label, code) for label, code, *_ in plain]
    assert [code for _, code, *_ in odd] == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 2, 0, 0, 1, 1, 1, 1, 2]
    assert _normalized(odd, tmp_path / "odd__", MARKUP_NAMES) == _normalized(plain, tmp_path / "plain", PLAIN_NAMES)
    out = [o for _, _, o, _ in odd]
    err = [e for _, _, _, e in odd]
    for i in (0, 2, 4, 6, 8, 13):  # write, journal, replay, stores, config, audit: text
        assert all(name in out[i] for name in MARKUP_NAMES), (odd[i][0], out[i])
    for i in (1, 3, 5, 7, 9):  # their --json: one JSON document holding each name as it is
        assert json.loads(out[i]) and all(name in out[i] for name in MARKUP_NAMES), odd[i][0]
    assert json.loads(out[17])["stores"].keys() == {"a[/]b", "[bold red]x[/]"}
    assert "[bold red]x[/]: file://" in err[0]  # the optional store's error, its name in yellow
    assert "pending before: [bold red]x[/]: 2; after: [bold red]x[/]: 2" in out[4]
    assert "  not audited [bold red]x[/] (optional, not answering): file://" in out[11]
    assert "; NOT AUDITED: [bold red]x[/] (file://" in out[11]
    assert "audit of user against [cache] (" in out[13]
    assert "a[/]b: 1 (e.g. user: u•••/[b]y.j•••)" in out[14]  # the foreign file, in the caption (masked)
    assert "a[/]b/user " in out[14] and "fields differ: [bold]f[/], name; not in the source: :fire:, [x]" in out[14]
    assert ("fields differ: [bold]f[/] (store 2, source 1), name (store \"[red]B[/]\", source \"[red]A[/]\"); "
            "not in the source: :fire: (store 1), [x] (store 1)") in out[15]
    assert "  a[/]b/user: rewrite 1 record(s) from [cache] (0 missing, 1 stale, 0 malformed)" in out[16]
    assert "not reachable: a[/]b (the source or a required store)" in err[18]
    # a store that lives only as long as the command is named as it is in the note
    conf = tmp_path / "memory.toml"
    conf.write_text(f'[stores."a[/]b"]\nurl = "sqlite:///{tmp_path}/m.sqlite3"\nrole = "source"\n\n'
                    '[stores."[bold red]x[/]"]\nurl = "memory://"\n', encoding="utf-8")
    code, out, err = scaffold.run_cli(["stores", "-c", str(conf)], columns=200)
    assert code == 0 and "note: store '[bold red]x[/]' is memory://" in err and "[bold red]x[/]" in out


# ============================================================================================
# Bad configuration files
# ============================================================================================

GOOD = """
[ids]
namespace = "users.myapp.com"

[journal]
path = "{tmp}/j.sqlite3"

[write]
retries = 0

[stores.db]
url = "sqlite:///{tmp}/db.sqlite3"
role = "source"

[stores.cache]
url = "memory://"
optional = true
"""


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "uuid-forge.toml"
    path.write_text(text.replace("{tmp}", str(tmp_path)), encoding="utf-8")
    return path


@pytest.mark.parametrize("text,fragment", [
    (GOOD + "\n[extras]\nx = 1\n", "unknown key 'extras'"),
    (GOOD.replace("[ids]", "[ids]\nnamespce = \"x\""), "[ids]: unknown key 'namespce'"),
    (GOOD.replace("optional = true", "optional = true\nttl = 60"), "[stores.cache]: unknown key 'ttl'"),
    (GOOD.replace('role = "source"', ""), 'exactly one store needs role = "source" (found 0)'),
    (GOOD.replace('url = "sqlite:///{tmp}/db.sqlite3"', ""), "[stores.db]: 'url' is missing"),
    ("[ids]\n", "no [stores.NAME] section"),
    (GOOD.replace('url = "memory://"', 'url = "127.0.0.1:6379"'), "has no scheme"),
    (GOOD.replace('url = "memory://"', 'url = "redsi://127.0.0.1:6379/0"'), "did you mean 'redis'"),
    (GOOD.replace('url = "memory://"', 'url = "redis://[::1/0"'), "[stores.cache]"),
    (GOOD.replace('url = "memory://"', 'url = "redis://cache\uff03host/0"'), "[stores.cache]"),
    (GOOD.replace("retries = 0", "retries = 0\nbackoff = nan"), "backoff"),
    (GOOD.replace("retries = 0", "retries = 0\nbackoff = inf"), "backoff"),
    (GOOD.replace("retries = 0", "retries = 99"), "retries 0-20"),
    (GOOD.replace("[ids]", "[ids]\nsalt = \"s\""), "keep salt and secret out of the file"),
    (GOOD + "\nnested = " + "[" * 2000 + "]" * 2000 + "\n", "uuid-forge.toml"),
    ("[stores\n", "not valid TOML"),
], ids=["unknown-section", "unknown-ids-key", "unknown-store-key", "no-source", "source-without-url", "no-stores",
        "url-without-scheme", "misspelt-scheme", "bad-ipv6-host", "nfkc-host", "backoff-nan", "backoff-inf",
        "retries-too-many", "salt-in-file", "nested-2000-deep", "broken-toml"])
def test_bad_config_is_refused_with_config_error(tmp_path: Path, text: str, fragment: str) -> None:
    path = config_file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_config_that_is_not_utf8_or_not_a_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[ids]\nnamespace = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(bad, env={})
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})


def test_unknown_store_option_is_a_config_error(tmp_path: Path) -> None:
    path = config_file(tmp_path, GOOD.replace("optional = true", "optional = true\noptions = { colour = \"red\" }"))
    with pytest.raises(ConfigError, match="store options"):
        Forge.from_config(str(path), env={})


def test_relative_file_store_url_is_refused_when_opened(tmp_path: Path) -> None:
    path = config_file(tmp_path, GOOD.replace('url = "memory://"', 'url = "file://data/files"'))
    with pytest.raises(ValidationError, match="three slashes"):
        Forge.from_config(str(path), env={})


def test_bad_config_on_the_command_line(tmp_path: Path) -> None:
    path = config_file(tmp_path, GOOD.replace('url = "memory://"', 'url = "redsi://127.0.0.1:6379/0"'))
    assert_cli_error(["stores", "-c", str(path)], "did you mean 'redis'")
    assert_cli_error(["stores", "-c", str(tmp_path / "nope.toml")], "not found")


# ============================================================================================
# A server that accepts connections and never answers (the silent_server fixture, conftest)
# ============================================================================================


def _fails_in_time(call: Any, limit: float) -> StoreUnavailableError:
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < limit, f"took {elapsed:.1f} s"
    return info.value


@scaffold.requires_driver("redis")
def test_silent_redis_server_times_out(silent_server: SilentServer) -> None:
    store = open_store(f"redis://127.0.0.1:{silent_server.port}/0", socket_timeout=1, socket_connect_timeout=1)
    try:
        err = _fails_in_time(store.ping, 5)
        assert isinstance(err, StoreTimeoutError) and "timed out" in str(err)
        err = _fails_in_time(lambda: store.put_many([Record("user", SAMPLE, {"a": 1})]), 5)
        assert isinstance(err, StoreTimeoutError)
    finally:
        store.close()


@pytest.mark.parametrize("url,options", [
    ("postgresql+psycopg://postgres@127.0.0.1:{port}/test", {"connect_timeout": 1}),
    ("mysql+pymysql://root@127.0.0.1:{port}/test", {"connect_timeout": 1, "read_timeout": 1}),
], ids=["postgresql", "mariadb"])
def test_silent_sql_server_times_out(silent_server: SilentServer, url: str, options: dict[str, Any]) -> None:
    pytest.importorskip("psycopg" if url.startswith("postgresql") else "pymysql")
    store = open_store(url.format(port=silent_server.port), **options)
    try:
        err = _fails_in_time(store.ping, 10)
        assert isinstance(err, StoreTimeoutError), repr(err)
        _fails_in_time(lambda: store.put_many([Record("user", SAMPLE, {"a": 1})]), 10)
    finally:
        store.close()


@scaffold.requires_driver("redis")
def test_silent_optional_store_is_journaled_not_waited_for(silent_server: SilentServer, tmp_path: Path) -> None:
    source = open_store("memory://")
    cache = open_store(f"redis://127.0.0.1:{silent_server.port}/0", socket_timeout=1, socket_connect_timeout=1)
    forge = Forge([StoreHandle("db", source, True), StoreHandle("cache", cache, required=False)],
                  journal=str(tmp_path / "j.sqlite3"), write=WriteSettings(retries=1, backoff=0.01))
    with forge:
        started = time.monotonic()
        report = forge.write("user", {"email": "a@b.c"}, {"n": 1})
        assert time.monotonic() - started < 10
        assert report.ok and not report.complete
        assert report.stores["cache"].status == "journaled" and "timed out" in report.stores["cache"].errors[0]
        assert forge.pending() == {"cache": 1}


# ============================================================================================
# Command-line values
# ============================================================================================


@pytest.mark.parametrize("argv,fragment", [
    (["generate", "x", "-a", "k:=1e999"], "not a finite number"),
    (["generate", "x", "-a", "k:=NaN"], "not a finite number"),
    (["generate", "x", "-a", "k:=" + "9" * 5000], "is not valid JSON"),
    (["generate", "x", "-a", "k:={\"a\": 1"], "is not valid JSON"),
    (["generate", "x", "-a", "=1"], "expected key=value"),
    (["generate", "x", "-a", ":=1"], "the key is empty"),
    (["generate", "", "-a", "k=1"], "entity_type must not be empty"),
], ids=["json-inf", "json-nan", "json-5000-digits", "json-unclosed", "no-key", "empty-typed-key", "empty-type"])
def test_bad_values_on_the_command_line(argv: list[str], fragment: str) -> None:
    assert_cli_error(argv, fragment)


@pytest.mark.parametrize("key", ["entity_type", "self"])
def test_key_named_like_a_parameter_of_generate(key: str) -> None:
    """'entity_type' and 'self' are ordinary key names in the spec; the CLI must not choke on them."""
    code, out, err = run_cli(["generate", "thing", "-a", f"{key}=x"])
    expected = uuid.uuid5(uuid.NAMESPACE_DNS, canonical_name("thing", [], {key: "x"}))
    assert (code, out, err) == (0, f"{expected}\n", "")


@dataclasses.dataclass
class _Row:
    a: int


def test_dataclass_with_bad_field_names_the_field() -> None:
    with pytest.raises(CanonicalTypeError, match=r"at kwargs\.row\.a"):
        GEN.generate("t", row=_Row(a=b"x"))  # type: ignore[arg-type]
