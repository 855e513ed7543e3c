"""The canonical value form ``C(v)`` of SPEC-ids.md: compact JSON text any language can rebuild.

uuid-forge 0.1.x hashed ``repr()``, so dict order, sets, numeric types and plain objects changed
IDs between processes and versions. This module replaces that with one exact text per value,
following the RFC 8785 (JSON Canonicalization Scheme) profile described in the spec. It never
falls back to ``repr()``: an unsupported type is an error that says where it was found.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import itertools
import json
import math
import unicodedata
import uuid
from collections.abc import Mapping
from json.encoder import encode_basestring as _json_str
from typing import Any

from .errors import CanonicalTypeError, CanonicalValueError

MAX_DEPTH = 100
MAX_PLAIN_ZEROS = 100_000  # zeros a Decimal may add in plain notation (1E+999999999 is refused)

__all__ = ["MAX_DEPTH", "canonical", "canonical_data", "canonical_str", "format_decimal", "format_float"]


def _fail(cls: type[Exception], message: str) -> Exception:
    err = cls(message)
    err.where = []  # type: ignore[attr-defined]
    err.reason = message  # type: ignore[attr-defined]
    return err


def format_float(x: float) -> str:
    """ECMAScript Number::toString for a finite float (RFC 8785 section 3.2.2.3)."""
    if not math.isfinite(x):
        raise _fail(CanonicalValueError, f"{x!r} is not a finite number")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    text = repr(abs(x))
    mantissa, _, exp_text = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits_all = whole + frac
    lead = len(digits_all) - len(digits_all.lstrip("0"))
    digits = digits_all[lead:].rstrip("0")
    k = len(digits)
    n = len(whole) + (int(exp_text) if exp_text else 0) - lead
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e > 0 else "-") + str(abs(e))
    return sign + body


def format_decimal(d: decimal.Decimal) -> str:
    """Exact plain notation of a finite Decimal: no exponent, no trailing zeros."""
    if not d.is_finite():
        raise _fail(CanonicalValueError, f"Decimal {d} is not finite")
    if not d:
        return "0"
    exponent = d.as_tuple().exponent
    if exponent > MAX_PLAIN_ZEROS or -d.adjusted() > MAX_PLAIN_ZEROS:  # type: ignore[operator]
        raise _fail(CanonicalValueError, f"Decimal {d} needs more than {MAX_PLAIN_ZEROS} zeros in plain notation")
    if d == d.to_integral_value():
        return format(d.to_integral_value(), "f")
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _int_text(v: int) -> str:
    """Every digit of ``v``, also past Python's int-to-text limit (sys.get_int_max_str_digits)."""
    try:
        return str(v)
    except ValueError:
        return format(decimal.Decimal(v), "f")


def canonical_str(s: str) -> str:
    """NFC-normalise ``s`` and quote it as a JSON string with literal non-ASCII characters."""
    if not s.isascii():
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail(CanonicalValueError, "string contains a lone surrogate") from None
        s = unicodedata.normalize("NFC", s)
    return _json_str(s)


def _key_segment(key: str) -> str:
    return "." + key if key.isidentifier() else "[" + _json_str(key) + "]"


def _c(v: Any, depth: int) -> str:
    t = type(v)
    # Fast paths for exact builtin types; they cannot carry __forge_key__, so the order holds.
    if t is str:
        return canonical_str(v)
    if t is int:
        return _int_text(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is float:
        return format_float(v)
    hook = getattr(t, "__forge_key__", None)
    if hook is not None:
        if depth > MAX_DEPTH:
            raise _fail(CanonicalValueError, f"nesting deeper than {MAX_DEPTH} levels")
        return _c(v.__forge_key__(), depth + 1)
    if isinstance(v, enum.Enum):
        return _c(v.value, depth)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return _int_text(int(v))
    if isinstance(v, float):
        return format_float(float(v))
    if isinstance(v, decimal.Decimal):
        return format_decimal(v)
    if isinstance(v, str):
        return canonical_str(str(v))
    if isinstance(v, uuid.UUID):
        return '"' + str(v) + '"'
    if isinstance(v, _dt.datetime):
        return '"' + _format_datetime(v) + '"'
    if isinstance(v, _dt.date):
        return '"' + v.isoformat() + '"'
    if depth > MAX_DEPTH:  # only containers count: every leaf type behaves the same at the limit
        raise _fail(CanonicalValueError, f"nesting deeper than {MAX_DEPTH} levels")
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_at(f"[{i}]", x, depth) for i, x in enumerate(v)) + "]"
    if isinstance(v, Mapping):
        return _mapping(v, depth)
    if isinstance(v, (set, frozenset)):
        return _set(v, depth)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _mapping({f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, depth)
    name = t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"
    raise _fail(
        CanonicalTypeError,
        f"unsupported type {name!r} (supported: str, int, float, Decimal, bool, None, Enum, UUID, "
        "aware datetime, date, list, tuple, dict, set, dataclass, or any object with __forge_key__())",
    )


def _at(segment: str, value: Any, depth: int) -> str:
    try:
        return _c(value, depth + 1)
    except (CanonicalTypeError, CanonicalValueError) as err:
        err.where.insert(0, segment)
        raise


def _format_datetime(v: _dt.datetime) -> str:
    if v.tzinfo is None or v.utcoffset() is None:
        raise _fail(CanonicalValueError, "naive datetime (no timezone); use an aware datetime")
    try:
        u = v.astimezone(_dt.UTC)
    except OverflowError:
        raise _fail(CanonicalValueError, f"datetime {v.isoformat()} is outside years 1-9999 in UTC") from None
    text = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.year < 1000:
        text = f"{u.year:04d}" + text[len(str(u.year)) :]
    if u.microsecond:
        text += f".{u.microsecond:06d}"
    return text + "Z"


def _mapping(m: Mapping[Any, Any], depth: int) -> str:
    members: dict[str, str] = {}
    for key, value in m.items():
        if not isinstance(key, str):
            raise _fail(CanonicalTypeError, f"dict key {key!r} is a {type(key).__name__}, keys must be str")
        norm = key if key.isascii() else unicodedata.normalize("NFC", key)
        if norm in members:
            raise _fail(CanonicalValueError, f"dict keys {norm!r} collide after NFC normalisation")
        members[norm] = _at(_key_segment(norm), value, depth)
    order = sorted(members, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
    return "{" + ",".join(canonical_str(k) + ":" + members[k] for k in order) + "}"


def _set(s: set[Any] | frozenset[Any], depth: int) -> str:
    forms = [_at("{}", x, depth) for x in s]
    forms.sort(key=lambda f: f.encode("utf-8"))
    for a, b in itertools.pairwise(forms):
        if a == b:
            raise _fail(CanonicalValueError, f"set has two members with the same canonical form {a}")
    return "[" + ",".join(forms) + "]"


def canonical(value: Any, where: str = "value") -> str:
    """Return ``C(value)``; errors name the location, e.g. ``kwargs.items[2]``."""
    try:
        return _c(value, 0)
    except (CanonicalTypeError, CanonicalValueError) as err:
        path = where + "".join(getattr(err, "where", []))
        reason = getattr(err, "reason", str(err))
        err.args = (f"{reason} at {path}",)
        err.path = path
        raise


_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode
_PLAIN = frozenset({str, int, bool, type(None), dict, list})
_PLAIN_DEPTH = MAX_DEPTH // 2  # deeper: canonical() decides (and refuses past MAX_DEPTH)


def _plain(v: dict[Any, Any] | list[Any], depth: int) -> bool:
    """Whether ``v`` holds only str keys, and values of exactly the types json's encoder writes
    as C does (str, int, bool, None, dict, list: no float, no subclass, nothing with a hook)."""
    if type(v) is dict:
        if not set(map(type, v)) <= {str}:
            return False
        values: Any = v.values()
    else:
        values = v
    types = set(map(type, values))
    if not types <= _PLAIN:
        return False
    if dict in types or list in types:
        if depth >= _PLAIN_DEPTH:
            return False
        return all(_plain(x, depth + 1) for x in values if type(x) is dict or type(x) is list)
    return True


def canonical_data(data: Any, where: str = "value") -> str:
    """``canonical(data, where)``, through json's C encoder where that writes the same text: a dict
    of :func:`_plain` values whose text is all ASCII (so no string needs NFC, and json's key order,
    by code point, is C's UTF-16 order). Why: an audit canonicalises every record it reads from a
    document store, and this is about twice as fast for the usual flat record; anything else
    (floats, dates, non-ASCII text, very large ints, deep nesting) goes through canonical()."""
    if type(data) is dict and _plain(data, 0):
        try:
            text = _ENCODE(data)
        except ValueError:  # an int past Python's int-to-text limit
            text = None
        if text is not None and text.isascii():
            return text
    return canonical(data, where)
