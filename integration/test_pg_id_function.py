"""The ID function inside PostgreSQL gives the Python answer, or an error: never another ID.

Installed into a schema of its own (``uf_test_idfn``) on the test database, checked against every
vector of ``vectors/ids-v1.json`` and against the Python library on generated keys (NFC, member
order by UTF-16 code units, escapes, big integers, nesting).
"""

from __future__ import annotations

import json
import re
import string
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uuid_forge import IDConfig, Namespace, UUIDGenerator
from uuid_forge.ids import canonical_name
from uuid_forge.pgfunctions import FUNCTION_NAMES, postgres_functions_sql

psycopg = pytest.importorskip("psycopg")

SCHEMA = "uf_test_idfn"
VECTORS = json.loads((Path(__file__).resolve().parent.parent / "tests" / "vectors" / "ids-v1.json").read_text())
NS = Namespace("pg.uuid-forge.test")


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[Any]:
    conninfo = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        conn.execute(postgres_functions_sql(SCHEMA))
        yield conn
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _sql_id(pg: Any, namespace: uuid.UUID, entity_type: str, key: Any, salt: str, secret: str | None = None) -> Any:
    if secret is None:
        row = pg.execute(f"SELECT {SCHEMA}.uuid_forge_id(%s, %s, %s::jsonb, %s)",
                         (namespace, entity_type, json.dumps(key), salt)).fetchone()
    else:
        row = pg.execute(f"SELECT {SCHEMA}.uuid_forge_id_keyed(%s, %s, %s::jsonb, %s, %s::text)",
                         (namespace, entity_type, json.dumps(key), salt, secret)).fetchone()
    return row[0]


def _sql_name(pg: Any, entity_type: str, args: Any, kwargs: Any, salt: str) -> str:
    row = pg.execute(f"SELECT {SCHEMA}.uuid_forge_name(%s, %s::jsonb, %s::jsonb, %s)",
                     (entity_type, json.dumps(args), json.dumps(kwargs), salt)).fetchone()
    return str(row[0])


def _unsupported_place(value: Any, place: str) -> str | None:
    """Where the SQL function must stop: a float that is not integral (1.0 is the int 1 to both
    sides), or an integer of 1e21 or more; None when every value is supported."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, (int, float)):
        return None if float(value).is_integer() and abs(value) < 10**21 else place
    items = enumerate(value) if isinstance(value, list) else value.items()
    for k, v in items:
        found = _unsupported_place(v, f"{place}[{k}]" if isinstance(value, list) else f"{place}.{k}")
        if found:
            return found
    return None


@pytest.mark.parametrize("vector", VECTORS, ids=[v["label"] for v in VECTORS])
def test_each_vector_gives_the_python_id_or_an_error(pg: Any, vector: dict[str, Any]) -> None:
    """A supported vector: the vector's name and UUID, which are the Python library's; an
    unsupported one: an error naming the value's place, never an ID."""
    namespace = Namespace(vector["namespace_domain"]).uuid
    assert not (vector["args"] and vector["kwargs"])  # the key is one of the two
    key = vector["args"] or vector["kwargs"]
    place = _unsupported_place(vector["args"], "args") or _unsupported_place(vector["kwargs"], "kwargs")
    if place is not None:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=rf"at {re.escape(place)} is not supported"):
            _sql_id(pg, namespace, vector["entity_type"], key, vector["salt"], vector["secret"])
        return
    python = UUIDGenerator(IDConfig(namespace=namespace, salt=vector["salt"], secret=vector["secret"])).generate(
        vector["entity_type"], *vector["args"], **vector["kwargs"])
    assert python == uuid.UUID(vector["uuid"])
    assert _sql_name(pg, vector["entity_type"], vector["args"], vector["kwargs"], vector["salt"]) == vector["name"]
    assert _sql_id(pg, namespace, vector["entity_type"], key, vector["salt"], vector["secret"]) == python


def test_the_vectors_cover_both_outcomes() -> None:
    """Supported and unsupported, keyed and unkeyed, named and positional keys: each is in the file."""
    places = [_unsupported_place(v["args"], "args") or _unsupported_place(v["kwargs"], "kwargs") for v in VECTORS]
    supported = [v for v, p in zip(VECTORS, places) if p is None]
    assert any(p is not None for p in places)
    assert any(v["secret"] for v in supported) and any(not v["secret"] for v in supported)
    assert any(v["args"] for v in supported) and any(v["kwargs"] for v in supported)
    labels = {v["label"] for v in VECTORS}
    assert {"float fraction", "float integral", "secret hmac v8", "non-ascii literal", "escapes",
            "nested dict sorted", "bool and null"} <= labels


#: pieces of text: ASCII, escapes, composed and decomposed accents (NFC), supplementary planes
_PIECES = [*string.ascii_letters, *string.digits, " ", '"', "\\", "\t", "\n", "\r", "\b", "\f", "\x01", "\x1f",
           "\x7f", "\u00e9", "e\u0301", "\u00c5", "A\u030a", "\ufb01", "\u2028", "\u6771", "\U0001f600",
           "\U0001d11e", "\ufffd", "\ue000"]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**20), max_value=10**20) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12)


def _nfc_unique(kwargs: Any) -> bool:
    import unicodedata

    def ok(v: Any) -> bool:
        if isinstance(v, dict):
            keys = [unicodedata.normalize("NFC", k) for k in v]
            return len(keys) == len(set(keys)) and all(ok(x) for x in v.values())
        if isinstance(v, list):
            return all(ok(x) for x in v)
        return True
    return ok(kwargs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kwargs=st.dictionaries(_TEXT, _VALUES, max_size=4).filter(_nfc_unique), salt=_TEXT,
       secret=st.none() | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                                  min_size=1, max_size=8))
def test_generated_keys_agree_with_python(pg: Any, kwargs: dict[str, Any], salt: str, secret: str | None) -> None:
    generator = UUIDGenerator(IDConfig(namespace=NS, salt=salt, secret=secret))
    assert _sql_name(pg, "thing", [], kwargs, salt) == canonical_name("thing", [], kwargs, salt)
    assert _sql_id(pg, NS.uuid, "thing", kwargs, salt, secret) == generator.generate_many("thing", [kwargs])[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(_VALUES, min_size=1, max_size=4).filter(_nfc_unique), salt=_TEXT,
       secret=st.none() | st.sampled_from(["k", "\u00e9t\u00e9"]))
def test_generated_positional_keys_agree_with_python(pg: Any, args: list[Any], salt: str, secret: str | None) -> None:
    generator = UUIDGenerator(IDConfig(namespace=NS, salt=salt, secret=secret))
    assert _sql_name(pg, "thing", args, {}, salt) == canonical_name("thing", args, {}, salt)
    assert _sql_id(pg, NS.uuid, "thing", args, salt, secret) == generator.generate("thing", *args)


@pytest.mark.parametrize(("key", "message"), [
    ({"amount": 0.1}, r"number 0.1 at kwargs.amount is not supported"),
    ({"big": 10**21}, r"number 1000000000000000000000 at kwargs.big is not supported"),
    ([1, [2, 2.5]], r"number 2.5 at args\[1\]\[1\] is not supported"),
    ({"k": {"\u00e9": 1, "e\u0301": 2}}, "equal after NFC"),
])
def test_unsupported_values_raise_naming_the_place(pg: Any, key: Any, message: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        _sql_id(pg, NS.uuid, "thing", key, "")


@pytest.mark.parametrize("key", [{"k": "a\x00b"}, {"a\x00": 1}, ["\x00"]])
def test_a_nul_character_is_an_error_not_an_id(pg: Any, key: Any) -> None:
    """PostgreSQL text holds no NUL: jsonb refuses it (Python would give an ID for it)."""
    with pytest.raises(psycopg.errors.UntranslatableCharacter):
        _sql_id(pg, NS.uuid, "thing", key, "")


@pytest.mark.parametrize("levels", [99, 100])
@pytest.mark.parametrize("wrap", [lambda x: [x], lambda x: {"a": x}], ids=["arrays", "objects"])
def test_nesting_at_the_limit_is_as_python_says(pg: Any, levels: int, wrap: Any) -> None:
    """Python allows 101 nested containers (the key's own is the first): SQL gives its ID, and an
    error one level deeper."""
    key: Any = {"k": 1}
    for _ in range(levels):
        key = wrap(key)
    if levels == 99:
        assert _sql_name(pg, "thing", [key], {}, "") == canonical_name("thing", [key], {}, "")
    else:
        with pytest.raises(ValueError):
            canonical_name("thing", [key], {}, "")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="deeper than 100 levels at args"):
            _sql_id(pg, NS.uuid, "thing", [key], "")


def test_positional_key_matches_generate_with_args(pg: Any) -> None:
    ours = UUIDGenerator(IDConfig(namespace=NS, salt="s")).generate("product", "SKU-1", 7)
    assert _sql_id(pg, NS.uuid, "product", ["SKU-1", 7], "s") == ours


def test_the_secret_is_a_parameter_never_stored_in_a_function(pg: Any) -> None:
    _sql_id(pg, NS.uuid, "user", {"email": "a@b.c"}, "", secret="Zq-secret-9")
    rows = pg.execute("SELECT proname, prosrc FROM pg_proc JOIN pg_namespace n ON n.oid = pronamespace "
                      "WHERE nspname = %s", (SCHEMA,)).fetchall()
    assert {r[0] for r in rows} >= set(FUNCTION_NAMES)
    assert not any("Zq-secret-9" in r[1] for r in rows)


def test_backfill_in_place_matches_python(pg: Any) -> None:
    """The migration's use: one UPDATE computes the new IDs of a whole table."""
    pg.execute(f"CREATE TABLE {SCHEMA}.users (serial_id int PRIMARY KEY, email text NOT NULL, new_id uuid)")
    emails = [f"user{i}@example.com" for i in range(500)] + ["Zu\u0308rich@example.com"]
    with pg.cursor() as cur:
        cur.executemany(f"INSERT INTO {SCHEMA}.users (serial_id, email) VALUES (%s, %s)", list(enumerate(emails)))
    pg.execute(f"UPDATE {SCHEMA}.users SET new_id = {SCHEMA}.uuid_forge_id(%s, 'user', "
               "jsonb_build_object('email', email), 'v1')", (NS.uuid,))
    got = dict(pg.execute(f"SELECT email, new_id FROM {SCHEMA}.users").fetchall())
    generator = UUIDGenerator(IDConfig(namespace=NS, salt="v1"))
    assert got == {e: generator.generate("user", email=e) for e in emails}


@pytest.mark.parametrize("kwargs", [
    {"\ue000": 1, "\U0001f600": 2},  # UTF-16 puts the surrogate pair (D83D ...) before U+E000
    {"b": 1, "a": 2, "B": 3, "aa": 4, "": 5},
    {"\u00e9": "e\u0301", "z": {"y": [{"b": None, "a": True}]}},
])
def test_member_order_and_nfc_match_python(pg: Any, kwargs: dict[str, Any]) -> None:
    assert _sql_name(pg, "thing", [], kwargs, "") == canonical_name("thing", [], kwargs, "")


#: ASCII only, the fast path's ground, with the characters it must still escape or refuse
_ASCII_PIECES = [*string.ascii_letters, *string.digits, " ", '"', "\\", "\t", "\n", "\x01", "\x1f", "\x7f", "/",
                 ":", ",", '": ', ', "', "{", "}", "[", "]"]
_ASCII = st.lists(st.sampled_from(_ASCII_PIECES), max_size=6).map("".join)
_FLAT = (st.none() | st.booleans() | _ASCII
         | st.integers(min_value=-(10**21) + 1, max_value=10**21 - 1) | st.sampled_from([10**20, -(10**20), 0]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kwargs=st.dictionaries(_ASCII, _FLAT | st.lists(_FLAT, max_size=2) | st.dictionaries(_ASCII, _FLAT, max_size=2),
                              min_size=1, max_size=3),
       entity_type=st.sampled_from(["user", "order", 'we"ird', "tab\tbed", "caf\u00e9"]),
       salt=st.sampled_from(["", "bench", 's"alt', "back\\slash", "\u00e9t\u00e9"]),
       secret=st.none() | st.sampled_from(["k"]))
def test_flat_ascii_keys_take_the_fast_path_and_agree_with_python(pg: Any, kwargs: dict[str, Any], entity_type: str,
                                                                   salt: str, secret: str | None) -> None:
    """uuid_forge_flat_object reads one or two members straight from jsonb's text: where it
    answers, its answer is C(kwargs) exactly; where it cannot (a third member, a nested value, a
    name with an escape), it says NULL; and the ID is Python's on every path."""
    flat = pg.execute(f"SELECT {SCHEMA}.uuid_forge_flat_object(%s::jsonb)", (json.dumps(kwargs),)).fetchone()[0]
    plain = len(kwargs) <= 2 and all('"' not in k and "\\" not in k and not any(c < " " for c in k) for k in kwargs) \
        and all(v is None or isinstance(v, (bool, int, str)) for v in kwargs.values())
    if plain:
        assert flat == canonical_name("t", [], kwargs, "")[len('["uuid-forge/1","t",[],'):-len(',""]')]
    else:
        assert flat is None
    generator = UUIDGenerator(IDConfig(namespace=NS, salt=salt, secret=secret))
    assert _sql_id(pg, NS.uuid, entity_type, kwargs, salt, secret) == generator.generate_many(entity_type, [kwargs])[0]


@pytest.mark.parametrize("key", ['{"a": 1.5}', '{"a": 1e21}', '{"a": 1, "b": 0.1}', '{"a": [1, 2.5]}'])
def test_the_fast_path_leaves_unsupported_numbers_to_the_error(pg: Any, key: str) -> None:
    assert pg.execute(f"SELECT {SCHEMA}.uuid_forge_flat_object(%s::jsonb)", (key,)).fetchone()[0] is None
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="is not supported"):
        pg.execute(f"SELECT {SCHEMA}.uuid_forge_id(%s, 'thing', %s::jsonb, '')", (NS.uuid, key))


def test_an_empty_entity_type_is_still_an_error(pg: Any) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="entity_type must be a non-empty text"):
        _sql_id(pg, NS.uuid, "", {"email": "a@b.c"}, "")
