"""Property tests: determinism across processes, order and normalisation independence, injectivity."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import pickle
import random
import subprocess
import sys
import unicodedata
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uuid_forge import CanonicalTypeError, CanonicalValueError, IDConfig, Namespace, UUIDGenerator, canonical

GEN = UUIDGenerator(IDConfig(namespace=Namespace("props.test"), salt="p"))

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), text,
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4),
                            st.frozensets(st.text(max_size=5) | st.integers(), max_size=4)),
    max_leaves=12,
)
keys = st.dictionaries(st.text(min_size=1, max_size=8), values, max_size=4)

_CHILD = r"""
import pickle, sys
from uuid_forge import IDConfig, Namespace, UUIDGenerator
gen = UUIDGenerator(IDConfig(namespace=Namespace("props.test"), salt="p"))
for key in pickle.load(sys.stdin.buffer):
    print(gen.generate("thing", **key))
"""


@pytest.mark.slow
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(keys, min_size=20, max_size=40))
def test_same_ids_in_processes_with_different_hash_seeds(batch: list[dict[str, Any]]) -> None:
    expected = [str(GEN.generate("thing", **k)) for k in batch]
    payload = pickle.dumps(batch)
    for seed in random.sample(range(1, 2**32 - 1), 2) + [0]:
        env = {**os.environ, "PYTHONHASHSEED": str(seed)}
        done = subprocess.run([sys.executable, "-c", _CHILD], input=payload, capture_output=True, env=env,
                              check=True, timeout=60)
        assert done.stdout.decode().split() == expected


@given(st.dictionaries(st.text(min_size=1, max_size=6), values, min_size=2, max_size=6), st.randoms())
def test_key_order_does_not_matter(key: dict[str, Any], rnd: random.Random) -> None:
    items = list(key.items())
    rnd.shuffle(items)
    assert GEN.generate("thing", **dict(items)) == GEN.generate("thing", **key)


@given(st.text(min_size=1, max_size=20))
def test_nfc_and_nfd_give_the_same_id(s: str) -> None:
    if any(unicodedata.category(c) == "Cs" for c in s):
        return
    nfc, nfd = unicodedata.normalize("NFC", s), unicodedata.normalize("NFD", s)
    assert GEN.generate("name", value=nfc) == GEN.generate("name", value=nfd)
    assert GEN.generate("name", {nfd: 1}) == GEN.generate("name", {nfc: 1})


def _meaning(v: Any) -> Any:
    """What the spec says two values share when they must share a canonical form."""
    if v is None or isinstance(v, bool):
        return ("k", v)
    if isinstance(v, (int, float, decimal.Decimal)):
        return ("n", Fraction(v))
    if isinstance(v, str):
        return ("s", unicodedata.normalize("NFC", v))
    if isinstance(v, dt.datetime):
        return ("s", v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") +
                (f".{v.microsecond:06d}" if v.microsecond else "") + "Z")
    if isinstance(v, dt.date):
        return ("s", v.isoformat())
    if isinstance(v, (list, tuple)):
        return ("l", tuple(_meaning(x) for x in v))
    if isinstance(v, (set, frozenset)):
        return ("l", tuple(sorted((_meaning(x) for x in v), key=repr)))
    return ("d", frozenset((unicodedata.normalize("NFC", k), _meaning(x)) for k, x in v.items()))


def _safe(v: Any) -> str | None:
    try:
        return canonical(v)
    except (CanonicalTypeError, CanonicalValueError):
        return None


@given(values, values)
def test_distinct_inputs_give_distinct_canonical_names(a: Any, b: Any) -> None:
    ca, cb = _safe(a), _safe(b)
    if ca is None or cb is None:
        return
    assert (ca == cb) == (_meaning(a) == _meaning(b)), (ca, cb)


@given(values)
def test_canonical_name_is_stable_for_a_value(a: Any) -> None:
    ca = _safe(a)
    if ca is not None:
        assert _safe(pickle.loads(pickle.dumps(a))) == ca


BAD = st.sampled_from([
    (b"bytes", TypeError), (object(), TypeError), (dt.datetime(2020, 1, 1), ValueError),
    (float("nan"), ValueError), (float("-inf"), ValueError), (decimal.Decimal("sNaN"), ValueError),
    ("lone \udc00", ValueError), (dt.time(1), TypeError), ({1: 2}, TypeError), (1j, TypeError),
])


@given(st.data())
def test_bad_leaf_errors_name_where_it_was_found(data: st.DataObject) -> None:
    bad, kind = data.draw(BAD)
    path = ""
    value: Any = bad
    for _ in range(data.draw(st.integers(0, 4))):
        if data.draw(st.booleans()):
            idx = data.draw(st.integers(0, 2))
            value = [None] * idx + [value]
            path = f"[{idx}]" + path
        else:
            name = data.draw(st.sampled_from(["a", "items", "b_c"]))
            value = {name: value}
            path = f".{name}" + path
    with pytest.raises(kind) as info:
        GEN.generate("thing", field=value)
    assert f"kwargs.field{path}" in str(info.value)
