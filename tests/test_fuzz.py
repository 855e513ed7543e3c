"""Fuzzing (issue 6, part 1): every public parser either answers or raises its documented error.

Four targets, each run for 10,000 generated examples under ``@pytest.mark.slow``:

* ``canonical`` on arbitrary nested values: a str, or CanonicalTypeError/CanonicalValueError
  naming where (" at value"); and injectivity: two values with different meanings never share
  a canonical text (checked across the whole run, not only within one example);
* ``decode`` on arbitrary text and bytes: a UUID or DecodeError; encode -> decode round trips;
* the CLI argument parser (``key=text`` / ``key:=json``), and the whole ``generate`` command,
  which must print the UUID the spec defines for the same typed values;
* the TOML config loader on arbitrary documents and arbitrary file text: ForgeSettings or
  ConfigError, nothing else.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import hmac
import json
import math
import re
import string
import types
import unicodedata
import uuid
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uuid_forge.canonical import canonical
from uuid_forge.cli import main
from uuid_forge.cli.parsing import parse_assignments, parse_positional
from uuid_forge.encodings import FORMS, decode, detect_form, encode
from uuid_forge.errors import (
    CanonicalTypeError,
    CanonicalValueError,
    ConfigError,
    DecodeError,
    UUIDForgeError,
    ValidationError,
)
from uuid_forge.ids import IDConfig, UUIDGenerator, canonical_name
from uuid_forge.registry import known_schemes
from uuid_forge.settings import ForgeSettings, load_settings, parse_settings
from uuid_forge.urls import mask_text, scheme_of

FUZZ = settings(
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.large_base_example],
)

# ============================================================================================
# 1. canonicalisation
# ============================================================================================


class Color(enum.Enum):
    RED = "red"
    ONE = 1
    PAIR = (1, "a")


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Plain:
    """An object with no canonical form: it must be refused, never repr()-ed."""


class Slotted:
    __slots__ = ("x",)

    def __init__(self) -> None:
        self.x = 1


class Keyed:
    """An object that names its own key value through ``__forge_key__``."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __forge_key__(self) -> Any:
        return self.key

    def __repr__(self) -> str:
        return f"Keyed({self.key!r})"


class SelfKeyed:
    """``__forge_key__`` returns the object itself: an endless chain that must stop with an error."""

    def __forge_key__(self) -> Any:
        return self


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


class NoOffset(dt.tzinfo):
    """A tzinfo whose utcoffset() is None: such a datetime is naive in all but name."""

    def utcoffset(self, d: dt.datetime | None) -> dt.timedelta | None:
        return None

    def dst(self, d: dt.datetime | None) -> dt.timedelta | None:
        return None

    def tzname(self, d: dt.datetime | None) -> str:
        return "none"


_MAX_OFFSET = dt.timedelta(hours=23, minutes=59)
offsets = st.builds(dt.timezone, st.timedeltas(min_value=-_MAX_OFFSET, max_value=_MAX_OFFSET))
try:
    zones: st.SearchStrategy[dt.tzinfo] = st.one_of(offsets, st.timezones())
except Exception:  # noqa: BLE001 - no zoneinfo database: fixed offsets still cover the conversion
    zones = offsets

# Strings that differ in Python but may share a form: NFC/NFD pairs, compatibility characters,
# escapes, JSON metacharacters, lone surrogates (an error), and plain random text.
_PIECES = ["e\u0301", "\u00e9", "\u212b", "\u00c5", "A\u030a", "\ufb01", "\u1e9b\u0323", "\"", "\\", "\n", "\x00",
           "\x7f", "\u2028", "\ud800", "\udfff", "\U0001f600", "a", "1", "-", ":", "/"]
texts = st.one_of(
    st.text(max_size=12),
    st.text(st.characters(min_codepoint=0xD7F0, max_codepoint=0xE010), max_size=4),
    st.lists(st.sampled_from(_PIECES), max_size=5).map("".join),
)
decimals = st.one_of(
    st.decimals(),  # includes NaN, sNaN and the infinities
    st.builds(lambda sign, digits, exp: decimal.Decimal((sign, tuple(digits), exp)),
              st.integers(0, 1), st.lists(st.integers(0, 9), min_size=1, max_size=30), st.integers(-6000, 6000)),
)
floats = st.one_of(st.floats(), st.sampled_from([0.1, 1e21, 1e20, 1e-7, 1e-6, -0.0, 5e-324, 1.7976931348623157e308,
                                                 2.0**53, 123e-20, 0.30000000000000004]))
class BigInt(int):
    """An int past Python's int-to-text limit (4300 digits) whose repr() stays printable in reports."""

    def __repr__(self) -> str:
        return f"BigInt(<{self.bit_length()} bits>)"


big_ints = st.builds(lambda k, sign, extra: BigInt(sign * (10**k + extra)), st.integers(4000, 6000),
                     st.sampled_from([1, -1]), st.integers(0, 10**6))
ints = st.one_of(st.integers(), big_ints, st.sampled_from([2**53, 2**53 + 1, -(2**63)]))
edge_datetimes = st.sampled_from([
    dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=1))),
    dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-1))),
    dt.datetime(999, 12, 31, 23, 0, tzinfo=dt.timezone(dt.timedelta(hours=-2))),
    dt.datetime(2020, 1, 1, tzinfo=NoOffset()),
])

hashable_scalars = st.one_of(
    st.none(), st.booleans(), ints, floats, st.decimals(allow_nan=False), texts, st.binary(max_size=4),
    st.datetimes(), st.datetimes(timezones=zones), edge_datetimes, st.dates(), st.times(), st.uuids(),
    st.sampled_from([*Color, *Level]), st.builds(Plain), st.fractions(), st.complex_numbers(max_magnitude=10),
)
scalars = st.one_of(hashable_scalars, decimals, st.builds(Slotted), st.builds(SelfKeyed), st.timedeltas(),
                    st.binary(max_size=4).map(bytearray))
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(tuple), st.frozensets(inner, max_size=3),
                            st.builds(Point, inner, inner), st.builds(Keyed, inner)),
    max_leaves=8,
)


def _nest(value: Any, depth: int) -> Any:
    for _ in range(depth):
        value = [value]
    return value


values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(texts, inner, max_size=4),
        st.dictionaries(st.one_of(st.integers(), st.none(), st.booleans(), st.tuples(st.integers())), inner,
                        max_size=2),
        st.dictionaries(texts, inner, max_size=3).map(types.MappingProxyType),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.builds(Point, inner, inner),
        st.builds(Keyed, inner),
        st.builds(_nest, inner, st.integers(95, 105)),
    ),
    max_leaves=20,
)


def _utc_text(v: dt.datetime) -> str:
    """The spec's UTC text of an aware datetime, computed without astimezone()."""
    offset = v.utcoffset()
    assert offset is not None
    u = v.replace(tzinfo=None) - offset
    text = f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
    return text + (f".{u.microsecond:06d}" if u.microsecond else "") + "Z"


def meaning(v: Any) -> Any:
    """What a value means under the spec's equivalences; equal meanings may share a form.

    Numbers mean their exact decimal value (a float means its shortest round-trip decimal, as in
    JSON), strings their NFC text; UUIDs, dates and aware datetimes (in UTC) mean their text;
    tuples are lists; sets are lists in the spec's order; mappings and dataclasses are unordered
    sets of (NFC key, meaning) pairs; enums and ``__forge_key__`` objects mean what they stand for.
    """
    if hasattr(type(v), "__forge_key__"):
        return meaning(v.__forge_key__())
    if v is None:
        return ("null",)
    if isinstance(v, enum.Enum):
        return meaning(v.value)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("num", Fraction(int(v)))
    if isinstance(v, float):
        return ("num", Fraction(decimal.Decimal(repr(v))))
    if isinstance(v, decimal.Decimal):
        return ("num", Fraction(v))
    if isinstance(v, str):
        return ("str", unicodedata.normalize("NFC", v))
    if isinstance(v, uuid.UUID):
        return ("str", str(v))
    if isinstance(v, dt.datetime):
        return ("str", _utc_text(v))
    if isinstance(v, dt.date):
        return ("str", f"{v.year:04d}-{v.month:02d}-{v.day:02d}")
    if isinstance(v, (list, tuple)):
        return ("list", tuple(meaning(x) for x in v))
    if isinstance(v, (set, frozenset)):
        members = sorted(v, key=lambda x: canonical(x).encode("utf-8"))
        return ("list", tuple(meaning(x) for x in members))
    if dataclasses.is_dataclass(v):
        v = {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
    return ("dict", frozenset((unicodedata.normalize("NFC", k), meaning(x)) for k, x in v.items()))


# canonical text -> (meaning, repr of the first value seen with it), kept across the whole run
_SEEN_FORMS: dict[str, tuple[Any, str]] = {}


def _check_one(v: Any) -> None:
    try:
        text = canonical(v)
    except (CanonicalTypeError, CanonicalValueError) as err:
        assert type(err) in (CanonicalTypeError, CanonicalValueError), type(err)
        assert " at value" in str(err), str(err)
        return
    assert isinstance(text, str)
    text.encode("utf-8")  # valid UTF-8: no lone surrogate slipped through
    m = meaning(v)
    shown = repr(v)[:200]  # BigInt keeps this printable
    seen = _SEEN_FORMS.setdefault(text, (m, shown))
    assert seen[0] == m, f"{shown} and {seen[1]} mean different things but share the form {text[:200]}"


@pytest.mark.slow
@FUZZ
@given(st.lists(values, min_size=1, max_size=2))
def test_fuzz_canonical_gives_a_form_or_a_documented_error(batch: list[Any]) -> None:
    for v in batch:
        _check_one(v)


# ============================================================================================
# 2. decoding UUID text and bytes
# ============================================================================================

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_ALPHABET = "".join(sorted(set(string.hexdigits + "-" + string.ascii_letters + string.digits + "_" + _CROCKFORD
                               + _CROCKFORD.upper() + "{}:+/=iloIOLU ")))
_LENGTHS = [8, 21, 22, 23, 25, 26, 27, 31, 32, 33, 35, 36, 37, 38, 39, 40, 44, 45, 46]
some_uuids = st.one_of(st.uuids(), st.integers(0, 2**128 - 1).map(lambda n: uuid.UUID(int=n)),
                       st.sampled_from([uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID(int=1)]))
_TEXT_FORMS = [f for f in FORMS if f != "bytes"]


def _mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply edits (kind, position, char): 0 replace, 1 insert, 2 delete, 3 swap case."""
    for kind, pos, char in edits:
        if not text:
            text = char
            continue
        i = pos % len(text)
        if kind == 0:
            text = text[:i] + char + text[i + 1:]
        elif kind == 1:
            text = text[:i] + char + text[i:]
        elif kind == 2:
            text = text[:i] + text[i + 1:]
        else:
            text = text[:i] + text[i].swapcase() + text[i + 1:]
    return text


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 100), st.sampled_from(_ALPHABET + "\u0660\uff10é")),
                 max_size=3)
uuid_texts = st.one_of(
    st.text(max_size=50),
    st.sampled_from(_LENGTHS).flatmap(lambda n: st.text(st.sampled_from(_ALPHABET), min_size=n, max_size=n)),
    st.builds(lambda u, form, e: _mutate(str(encode(u, form)), e), some_uuids, st.sampled_from(_TEXT_FORMS), edits),
    st.builds(lambda u, form: str(encode(u, form)).upper(), some_uuids, st.sampled_from(_TEXT_FORMS)),
    st.builds(lambda u: "urn:uuid:" + u.hex + "{}", some_uuids),
)


def _same_text(form: str, given: str, u: uuid.UUID) -> bool:
    """True when ``given`` is exactly ``u`` written in ``form`` (case-blind where the form is)."""
    if form == "int":
        return int(given) == u.int
    again = str(encode(u, form))
    return given.lower() == again if form in ("string", "hex", "urn") else given == again


@pytest.mark.slow
@FUZZ
@given(uuid_texts)
def test_fuzz_decode_text_gives_a_uuid_or_decode_error(text: str) -> None:
    try:
        u = decode(text)
    except DecodeError as err:
        assert type(err) is DecodeError
        assert "not a UUID" in str(err)
        return
    assert isinstance(u, uuid.UUID)
    form = detect_form(text)
    assert _same_text(form, text, u), (text, form, u)


@pytest.mark.slow
@FUZZ
@given(uuid_texts, st.sampled_from(_TEXT_FORMS))
def test_fuzz_decode_with_a_forced_form_accepts_only_that_form(text: str, form: str) -> None:
    try:
        u = decode(text, form)
    except DecodeError as err:
        assert type(err) is DecodeError
        return
    assert form != "short"
    pattern = {"string": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
               "hex": r"[0-9a-fA-F]{32}", "base64url": r"[A-Za-z0-9_-]{22}", "base32": r"[0-7][0-9a-z]{25}",
               "int": r"[0-9]{1,39}",
               "urn": r"(?i:urn:uuid:)[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"}
    assert re.fullmatch(pattern[form], text), f"decode({text!r}, {form!r}) accepted text not in that form"
    assert _same_text(form, text, u)


@pytest.mark.slow
@FUZZ
@given(st.one_of(st.binary(max_size=40), st.binary(min_size=16, max_size=16)), st.sampled_from([bytes, bytearray]))
def test_fuzz_decode_bytes(raw: bytes, kind: Callable[[bytes], Any]) -> None:
    value = kind(raw)
    if len(raw) == 16:
        assert decode(value) == uuid.UUID(bytes=raw)
    else:
        with pytest.raises(DecodeError):
            decode(value)


@pytest.mark.slow
@FUZZ
@given(some_uuids)
def test_fuzz_every_form_round_trips(u: uuid.UUID) -> None:
    for form in FORMS:
        encoded = encode(u, form)
        if form == "short":
            assert encoded == u.hex[:8]
            with pytest.raises(DecodeError):
                decode(str(encoded), "short")
            continue
        assert decode(encoded, None if form == "bytes" else form) == u
        if form == "bytes":
            continue
        assert isinstance(encoded, str)
        if form == "int" and len(encoded) in (22, 26, 32):
            continue  # documented: an int of these lengths reads as another form unless forced
        assert decode(encoded) == u and detect_form(encoded) == form
    assert base64.urlsafe_b64decode(str(encode(u, "base64url")) + "==") == u.bytes


# ============================================================================================
# 3. the CLI argument parser, and the whole generate command
# ============================================================================================

_JSON_BITS = ["[", "]", "{", "}", ",", ":", "\"", "1", "-", "e", "9" * 5000, "[" * 3000, "{\"a\":" * 3000, "1e999",
              "NaN", "-Infinity", "\"\\ud800\"", "true", "null", "0x1", "\\", " ", "\n", "'", "\"a\":1"]
json_texts = st.one_of(st.text(max_size=20), st.lists(st.sampled_from(_JSON_BITS), max_size=6).map("".join))
cli_items = st.one_of(
    st.text(max_size=20),
    st.builds(lambda k, v: f"{k}={v}", st.text(max_size=6), st.text(max_size=10)),
    st.builds(lambda k, v: f"{k}:={v}", st.text(max_size=6), json_texts),
    st.builds(lambda v: f":={v}", json_texts),
)


@pytest.mark.slow
@FUZZ
@given(st.lists(cli_items, max_size=6))
def test_fuzz_parser_gives_values_or_validation_error(items: list[str]) -> None:
    try:
        out = parse_assignments(items)
    except ValidationError as err:
        assert type(err) is ValidationError
    else:
        assert isinstance(out, dict) and len(out) == len(items) and all(out)
    try:
        positional = parse_positional(items)
    except ValidationError as err:
        assert type(err) is ValidationError
    else:
        assert len(positional) == len(items)
        assert all(p == i for p, i in zip(positional, items) if not i.startswith(":="))


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(st.characters(codec="utf-8"), max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=5), inner,
                                            max_size=3)),
    max_leaves=8,
)
plain_text = st.text(st.characters(codec="utf-8"), max_size=12)
# key names include the parameter names of generate() itself, and names ending in ':'
cli_keys = st.one_of(st.text(st.characters(codec="utf-8", exclude_characters="="), min_size=1,
                             max_size=8),
                     st.sampled_from(["entity_type", "self", "prefix", "config", "email", "a:", "x:y", "-a", "--"]))


def _assignment(key: str, value: Any) -> str:
    """How a user types this key value: ``k=text`` for text, ``k:=json`` for everything else."""
    if isinstance(value, str) and not key.endswith(":"):
        return f"{key}={value}"
    return f"{key}:={json.dumps(value)}"


def _positional(value: Any) -> str:
    return value if isinstance(value, str) and not value.startswith(":=") else ":=" + json.dumps(value)


def _spec_uuid(namespace: uuid.UUID, name: str, secret: str | None) -> uuid.UUID:
    """The ID as SPEC-ids.md defines it, computed here from the name text."""
    if secret is None:
        return uuid.uuid5(namespace, name)
    d = bytearray(hmac.new(secret.encode("utf-8"), namespace.bytes + name.encode("utf-8"), hashlib.sha256).digest()[:16])
    d[6] = (d[6] & 0x0F) | 0x80
    d[8] = (d[8] & 0x3F) | 0x80
    return uuid.UUID(bytes=bytes(d))


def _namespace_uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_DNS, text)


_ENV_OFF = {k: None for k in ("UUID_FORGE_SALT", "UUID_FORGE_SECRET", "UUID_FORGE_NAMESPACE", "UUID_FORGE_SCHEME")}
_RUNNER = CliRunner()


def run_cli(argv: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    """``main(argv)`` in-process with its own stdout, stderr and environment."""
    with _RUNNER.isolation(env={**_ENV_OFF, **env}) as streams:
        code = main(argv)
    return code, streams[0].getvalue().decode("utf-8"), streams[1].getvalue().decode("utf-8")


env_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=10)


@pytest.mark.slow
@settings(FUZZ, max_examples=2_000)  # the whole CLI, in-process; its parser has 10,000 examples of its own above
@given(
    entity_type=st.one_of(plain_text, st.sampled_from(["user", "-user", ":=1", "--"])),
    args=st.lists(st.one_of(json_values, st.sampled_from([":=1", "-x", "--", ""])), max_size=3),
    kwargs=st.dictionaries(cli_keys, json_values, max_size=3),
    namespace=st.one_of(st.uuids().map(str), st.sampled_from(["users.example.com", "x", "é.example"])),
    salt=plain_text,
    secret=st.one_of(st.none(), env_text),
    form=st.sampled_from(_TEXT_FORMS),
    as_json=st.booleans(),
)
def test_fuzz_cli_generate_prints_the_spec_id(entity_type: str, args: list[Any], kwargs: dict[str, Any],
                                              namespace: str, salt: str, secret: str | None, form: str,
                                              as_json: bool) -> None:
    argv = ["generate", f"--namespace={namespace}", f"--salt={salt}", f"--form={form}",
            *(f"--attr={_assignment(k, v)}" for k, v in kwargs.items()), *(["--json"] if as_json else []),
            "--", entity_type, *(_positional(a) for a in args)]
    code, out, err = run_cli(argv, {"UUID_FORGE_SECRET": secret})
    try:
        name = canonical_name(entity_type, args, kwargs, salt)
    except UUIDForgeError as error:
        assert code == 2 and out == "", (argv, code, out, err)
        assert err == f"uuid-forge: error: {mask_text(str(error))}\n", (argv, err)
        return
    expected = _spec_uuid(_namespace_uuid(namespace), name, secret)
    assert code == 0, (argv, err)
    if as_json:
        payload = json.loads(out)
        assert payload["id"] == str(expected) and payload["keyed"] == (secret is not None)
        assert payload["value"] == encode(expected, form)
    else:
        assert out == str(encode(expected, form)) + "\n"
    if "entity_type" not in kwargs and "self" not in kwargs:  # generate()'s own parameter names
        config = IDConfig(namespace=namespace, salt=salt, secret=secret)  # type: ignore[arg-type]  # text is parsed
        assert UUIDGenerator(config).generate(entity_type, *args, **kwargs) == expected


@pytest.mark.slow
@settings(FUZZ, max_examples=3000)  # typed round trip; the parser has 10,000 examples above
@given(st.dictionaries(cli_keys, json_values, max_size=3), st.lists(json_values, max_size=3))
def test_fuzz_parser_round_trips_typed_values(kwargs: dict[str, Any], args: list[Any]) -> None:
    assert parse_assignments([_assignment(k, v) for k, v in kwargs.items()]) == kwargs
    assert parse_positional([_positional(a) for a in args]) == args


# ============================================================================================
# 4. the TOML config loader
# ============================================================================================

_PLAUSIBLE_KEYS = ["ids", "journal", "write", "stores", "url", "role", "optional", "required", "options", "namespace",
                   "scheme", "salt", "secret", "path", "synchronous", "retries", "backoff", "batch_size",
                   "concurrent", "db", "cache", "source", "ttl"]
toml_keys = st.one_of(st.sampled_from(_PLAUSIBLE_KEYS), st.text(max_size=8))
toml_scalars = st.one_of(
    st.text(max_size=12), st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(), st.datetimes(),
    st.datetimes(timezones=offsets), st.dates(), st.times(),
)
toml_values = st.recursive(toml_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                 st.dictionaries(toml_keys, inner, max_size=3)),
                           max_leaves=8)


def _maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any TOML value."""
    return st.one_of(good, good, good, toml_values)


_URLS = ["memory://", "memory://named", "sqlite:///tmp/uf-fuzz.db", "file:///tmp/uf-fuzz", "redis://127.0.0.1:6379/0",
         "redis://user:hunter2@127.0.0.1:6379/0", "postgresql+psycopg://app@127.0.0.1:5432/app", "redis://[::1/0",
         "redis://[::1]:6379/0", "redis://ho\uff03st/0", "redsi://127.0.0.1", "no-scheme-here", "://x", "http://x",
         "REDIS://H/0", "amqp://guest:guest@127.0.0.1:5672/%2F", "mongodb://h/db", "elasticsearch+http://h:9200",
         "redis://h:99999/0", "redis://h:port/0", "", " memory://", "memory:"]
urls = st.one_of(st.sampled_from(_URLS), st.builds(lambda s, rest: f"{s}://{rest}",
                                                   st.sampled_from(["redis", "memory", "file", "sqlite", "x"]),
                                                   st.text(max_size=12)))
store_specs = st.fixed_dictionaries({}, optional={
    "url": _maybe(urls),
    "role": _maybe(st.sampled_from(["source", "store", "Source", ""])),
    "optional": _maybe(st.booleans()),
    "required": _maybe(st.booleans()),
    "options": _maybe(st.dictionaries(st.sampled_from(["ttl", "batch_size", "fsync"]), toml_scalars, max_size=2)),
    "extra": toml_values,
})
config_docs = st.one_of(
    st.fixed_dictionaries({"stores": st.dictionaries(st.sampled_from(["db", "cache", "files", "My-Store", ""]),
                                                     _maybe(store_specs), max_size=3)},
                          optional={
        "ids": _maybe(st.fixed_dictionaries({}, optional={
            "namespace": _maybe(st.sampled_from(["users.myapp.com", str(uuid.uuid4()), "", "x" * 300])),
            "scheme": _maybe(st.sampled_from(["uuid-forge/1", "uuid-forge-0.1", "uuid-forge/2"])),
            "salt": st.text(max_size=5)})),
        "journal": _maybe(st.fixed_dictionaries({}, optional={
            "path": _maybe(st.sampled_from(["/tmp/uf-fuzz-journal.sqlite3", ""])),
            "synchronous": _maybe(st.sampled_from(["normal", "full", "off"]))})),
        "write": _maybe(st.fixed_dictionaries({}, optional={
            "retries": _maybe(st.integers(-2, 30)), "backoff": _maybe(st.floats()),
            "batch_size": _maybe(st.integers(-1, 200_000)), "concurrent": _maybe(st.booleans())})),
        "other": toml_values,
    }),
    st.dictionaries(toml_keys, toml_values, max_size=4),
)


_KNOWN_SCHEMES: set[str] = set()


def _check_settings(result: ForgeSettings) -> None:
    """What a ForgeSettings promises: one source first, known schemes, sane write settings."""
    assert isinstance(result, ForgeSettings)
    assert result.stores and result.stores[0].source and sum(s.source for s in result.stores) == 1
    _KNOWN_SCHEMES.update(_KNOWN_SCHEMES or known_schemes())  # looked up once: it scans entry points
    assert all(scheme_of(s.url) in _KNOWN_SCHEMES for s in result.stores)
    w = result.write
    assert 0 <= w.retries <= 20 and 1 <= w.batch_size <= 100_000
    assert math.isfinite(w.backoff) and w.backoff >= 0, f"backoff {w.backoff!r} accepted"


@pytest.mark.slow
@FUZZ
@given(config_docs)
def test_fuzz_parse_settings_gives_settings_or_config_error(doc: dict[str, Any]) -> None:
    try:
        result = parse_settings(doc, "<fuzz>", env={})
    except ConfigError as err:
        assert type(err) is ConfigError, type(err)
        assert "<fuzz>" in str(err)
        return
    _check_settings(result)


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, (int, str)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise AssertionError(type(v))


def toml_text(doc: dict[str, Any]) -> str:
    """A small TOML writer: [section] and [stores.NAME] headers, inline values below them."""
    lines: list[str] = []
    for section, body in doc.items():
        if section == "stores" and isinstance(body, dict):
            for name, spec in body.items():
                if isinstance(spec, dict):
                    lines.append(f"[stores.{_toml_key(name)}]")
                    lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in spec.items()]
                else:
                    lines.append(f"stores.{_toml_key(name)} = {_toml_value(spec)}")
        elif isinstance(body, dict):
            lines.append(f"[{_toml_key(section)}]")
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items()]
        else:
            lines.insert(0, f"{_toml_key(section)} = {_toml_value(body)}")
    return "\n".join(lines) + "\n"


_TOML_BITS = ["[stores.db]", "[stores.db]\nurl = \"memory://\"\nrole = \"source\"", "[ids]", "[write]", "[journal]",
              "url = \"redis://[::1/0\"", "backoff = nan", "backoff = inf", "a = " + "[" * 600, "x = {" * 400,
              "\x00", "\ufeff", "\"", "'''", "=", "\n", "[[stores]]", "role = \"source\"", "optional = true"]
toml_texts = st.one_of(
    st.builds(lambda doc, e: _mutate(toml_text(doc), e), config_docs, edits),
    st.builds(toml_text, config_docs),
    st.lists(st.one_of(st.sampled_from(_TOML_BITS), st.text(max_size=10)), max_size=6).map("\n".join),
    st.text(max_size=40),
)


@pytest.fixture(scope="module")
def toml_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for every example's file: pytest's own temporary tree, which pytest prunes."""
    return tmp_path_factory.mktemp("fuzz-toml")


@pytest.mark.slow
@settings(FUZZ, max_examples=3000)  # TOML text; the loader's logic has 10,000 examples above
@given(toml_texts)
def test_fuzz_load_settings_gives_settings_or_config_error(toml_dir: Path, text: str) -> None:
    path = toml_dir / "uuid-forge.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        result = load_settings(path, env={})
    except ConfigError as err:
        assert type(err) is ConfigError, type(err)
        return
    _check_settings(result)


def test_meaning_tells_apart_what_the_spec_tells_apart() -> None:
    """The fuzz oracle itself: equal where the spec makes values share a form, different elsewhere."""
    utc = dt.UTC
    assert meaning(1) == meaning(1.0) == meaning(decimal.Decimal("1.000")) == meaning(Level.LOW)
    assert meaning(0.1) == meaning(decimal.Decimal("0.1")) != meaning(0.30000000000000004)
    assert meaning("e\u0301") == meaning("\u00e9") and meaning((1, 2)) == meaning([1, 2])
    assert meaning(dt.date(2020, 1, 2)) == meaning("2020-01-02")
    assert meaning(dt.datetime(2020, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == \
        meaning(dt.datetime(2020, 1, 1, tzinfo=utc)) == meaning("2020-01-01T00:00:00Z")
    assert meaning({"y": 1, "x": 2}) == meaning({"x": 2, "y": 1}) == meaning(Point(2, 1)) != meaning(Point(1, 2))
    assert meaning(frozenset({"b", "a"})) == meaning(["a", "b"]) and meaning(Keyed("x")) == meaning("x")
    assert meaning(True) != meaning(1) and meaning(None) != meaning("null") and meaning("1") != meaning(1)
    assert meaning([]) != meaning({}) and meaning(uuid.UUID(int=0)) == meaning(str(uuid.UUID(int=0)))
