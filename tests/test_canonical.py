"""The canonical form C(v), rule by rule, and the bad inputs it refuses (with where they were)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from uuid_forge import CanonicalTypeError, CanonicalValueError, IDConfig, UUIDGenerator, canonical
from uuid_forge.canonical import MAX_DEPTH, canonical_data, format_float


@pytest.mark.parametrize("value,text", [
    (1.0, "1"), (1e21, "1e+21"), (1e-7, "1e-7"), (-0.0, "0"), (0.1, "0.1"), (1e20, "100000000000000000000"),
    (123.456, "123.456"), (5e-324, "5e-324"), (-1.5e-10, "-1.5e-10"), (1e-6, "0.000001"),
    (1.7976931348623157e308, "1.7976931348623157e+308"),
])
def test_float_is_ecmascript_number_to_string(value: float, text: str) -> None:
    assert format_float(value) == text


@pytest.mark.parametrize("value,text", [
    (None, "null"), (True, "true"), (False, "false"), (2**80, str(2**80)), (-7, "-7"),
    (decimal.Decimal("-12.3400"), "-12.34"), (decimal.Decimal("1E+3"), "1000"), (decimal.Decimal("1E-7"), "0.0000001"),
    (decimal.Decimal("5.000"), "5"), ("tab\tquote\"back\\", '"tab\\tquote\\"back\\\\"'), ("\x01\x7f", '"\\u0001\x7f"'),
    ("Zürich", '"Zürich"'), (uuid.UUID("7570842A-FBEC-40D3-AE25-3F1C2BDA326B"), '"7570842a-fbec-40d3-ae25-3f1c2bda326b"'),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))), '"2024-01-02T01:04:05Z"'),
    (dt.datetime(2024, 1, 2, 3, 4, 5, 7, tzinfo=dt.UTC), '"2024-01-02T03:04:05.000007Z"'),
    (dt.date(2024, 1, 2), '"2024-01-02"'), ((1, "a"), '[1,"a"]'), ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
    ({"b", "a", "c"}, '["a","b","c"]'), (frozenset({10, 9}), "[10,9]"),
])
def test_canonical_values(value: object, text: str) -> None:
    assert canonical(value) == text


def test_dict_keys_sort_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, which sorts before U+FFFF.
    assert canonical({"\uffff": 1, "\U0001F600": 2}) == '{"\U0001F600":2,"\uffff":1}'


def test_enum_dataclass_and_forge_key() -> None:
    class Colour(enum.Enum):
        RED = "red"

    @dataclasses.dataclass
    class Point:
        y: int
        x: int

    class Email:
        def __init__(self, address: str) -> None:
            self.address = address

        def __forge_key__(self) -> str:
            return self.address.lower()

    assert canonical(Colour.RED) == '"red"'
    assert canonical(Point(2, 1)) == '{"x":1,"y":2}'
    assert canonical(Email("John@Example.com")) == '"john@example.com"'
    gen = UUIDGenerator(IDConfig(salt="s"))
    assert gen.generate("user", email=Email("A@B.C")) == gen.generate("user", email="a@b.c")


def _deep(n: int) -> list:
    v: list = []
    for _ in range(n):
        v = [v]
    return v


@pytest.mark.parametrize("value,error,where,reason", [
    ({"when": dt.datetime(2024, 1, 1)}, CanonicalValueError, "kwargs.when", "naive datetime"),
    ({"x": [1, float("nan")]}, CanonicalValueError, "kwargs.x[1]", "not a finite number"),
    ({"x": float("inf")}, CanonicalValueError, "kwargs.x", "not a finite number"),
    ({"d": decimal.Decimal("NaN")}, CanonicalValueError, "kwargs.d", "not finite"),
    ({"tags": {"\u00e9", "e\u0301"}}, CanonicalValueError, "kwargs.tags", "same canonical form"),
    ({"tags": {0.1, decimal.Decimal("0.1")}}, CanonicalValueError, "kwargs.tags", "same canonical form"),
    ({"b": b"bytes"}, CanonicalTypeError, "kwargs.b", "unsupported type 'bytes'"),
    ({"items": [1, 2, object()]}, CanonicalTypeError, "kwargs.items[2]", "unsupported type 'object'"),
    ({"m": {1: "x"}}, CanonicalTypeError, "kwargs.m", "keys must be str"),
    ({"m": {"\u00e9": 1, "e\u0301": 2}}, CanonicalValueError, "kwargs.m", "collide after NFC"),
    ({"s": "lone \ud800"}, CanonicalValueError, "kwargs.s", "lone surrogate"),
    ({"deep": _deep(10_000)}, CanonicalValueError, "kwargs.deep[0]", "deeper than 100"),
    ({"t": dt.time(1, 2)}, CanonicalTypeError, "kwargs.t", "unsupported type"),
])
def test_bad_values_are_refused_with_their_location(value: dict, error: type, where: str, reason: str) -> None:
    with pytest.raises(error) as info:
        canonical(value, "kwargs")
    assert reason in str(info.value)
    assert where in str(info.value)
    assert isinstance(info.value, (TypeError, ValueError))


def test_sets_with_colliding_members_fail() -> None:
    # {1, 1.0} is one member in Python, but 0.1 and Decimal("0.1") are two, with one canonical form.
    assert canonical({1, 1.0}) == "[1]"  # noqa: B033 - the duplicate is the point
    with pytest.raises(CanonicalValueError, match="same canonical form"):
        canonical({0.1, decimal.Decimal("0.1")})


def test_generator_errors_name_args_and_kwargs() -> None:
    gen = UUIDGenerator()
    with pytest.raises(TypeError, match=r"at args\[1\]"):
        gen.generate("thing", "ok", object())
    with pytest.raises(ValueError, match=r"at kwargs\.when"):
        gen.generate("thing", when=dt.datetime(2020, 1, 1))
    with pytest.raises(TypeError, match=r"keys\[1\]"):
        gen.generate_many("thing", [{"a": 1}, {"a": b"x"}])


# canonical_data: json's C encoder where it writes what canonical() writes (the audit's fast path)
_ANY_TEXT = st.one_of(st.text(max_size=8), st.text(st.characters(codec=None), max_size=4),  # surrogates too
                      st.sampled_from(["é", "e\u0301", "\U0001f600", "\ufb01", "a\"b\\c\n\x00", "Z", "a", "_"]))
_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**4300, max_value=10**4400),
                    st.floats(allow_nan=True), _ANY_TEXT, st.decimals(allow_nan=False, allow_infinity=False),
                    st.sampled_from([1.0, -0.0, 1e21, 5e-324, decimal.Decimal("1.50")]))
_VALUES = st.recursive(_LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                                                        st.dictionaries(_ANY_TEXT, inner, max_size=4)), max_leaves=12)


def _outcome(fn: Any, value: Any) -> tuple[str, str]:
    try:
        return ("text", fn(value))
    except (CanonicalTypeError, CanonicalValueError) as err:
        return ("error", str(err))


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(_ANY_TEXT, _VALUES, max_size=6))
def test_canonical_data_writes_what_canonical_writes(data: dict[str, Any]) -> None:
    assert _outcome(canonical_data, data) == _outcome(canonical, data)


@pytest.mark.parametrize("data", [
    {"b": 1, "a": "x", "c": [True, None, {"z": "y", "y": 2}]},  # plain: the fast path
    {"a": 1.0}, {"a": 10**5000}, {"é": 1}, {"a": "e\u0301"}, {"\U0001f600": 1, "\uff01": 2},  # not plain
    {"a": uuid.UUID(int=1)}, {"a": dt.date(2024, 1, 2)}, {"a": (1, 2)}, {1: "a"}, {"a": float("nan")},
])
def test_canonical_data_edges_agree_with_canonical(data: dict[Any, Any]) -> None:
    assert _outcome(canonical_data, data) == _outcome(canonical, data)


def test_canonical_data_leaves_deep_nesting_to_canonical() -> None:
    deep: Any = "x"
    for _ in range(MAX_DEPTH + 2):
        deep = {"a": deep}
    with pytest.raises(CanonicalValueError, match="nesting deeper"):
        canonical_data(deep)
    shallow: Any = 1
    for _ in range(MAX_DEPTH - 1):
        shallow = [shallow]
    assert canonical_data({"a": shallow}) == canonical({"a": shallow})
