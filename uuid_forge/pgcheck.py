"""The cases an installed ID function is checked with: every spec vector, and the Python library's
answers on the values a vector does not exercise (NFC, member order, escapes, big integers, errors).

Why here and not in the SQL adapter: which answer is right is the ID scheme's business (the
vectors and :mod:`uuid_forge.ids`); the adapter only asks the server. ``uuid-forge sql postgres
--check`` and ``--install`` run these cases; a case passes when the server gives the expected
name and UUID, or, for a value SQL cannot canonicalise exactly, an error naming its place.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .ids import IDConfig, Namespace, UUIDGenerator, canonical_name

__all__ = ["Case", "cases", "unsupported_place", "vectors"]

#: the largest integral magnitude SQL prints as Python does (Python prints the float 1e21 as 1e+21)
_LIMIT = 10**21
_NS = Namespace("pg-check.uuid-forge.dev")


@dataclass(frozen=True)
class Case:
    """One call of the SQL function and what it must give: the name and UUID, or an error at ``error``."""

    label: str
    origin: str  # "vector" (ids-v1.json) or "library" (the Python library's answer)
    namespace: uuid.UUID
    entity_type: str
    args: list[Any]
    kwargs: dict[str, Any]
    salt: str
    secret: str | None
    name: str | None
    uuid: uuid.UUID | None
    error: str | None  # the place the error must name (args[1], kwargs.amount) or a phrase of it

    @property
    def key(self) -> Any:
        """The key as ``uuid_forge_id`` takes it: the positional values, else the named ones."""
        return self.args if self.args else self.kwargs


def unsupported_place(value: Any, place: str, depth: int = 0) -> str | None:
    """Where the SQL function stops with an error (the first such place, in the SQL's order), or None.

    SQL's order: array elements in order, object members in jsonb's (length, then bytes) order;
    only the first place matters, and a key has at most one in the cases here.
    """
    if isinstance(value, (list, dict)) and depth > 100:  # only containers count, the key's own is depth 0
        return "deeper than 100"
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if abs(value) < _LIMIT else place
    if isinstance(value, float):
        return None if value.is_integer() and abs(value) < _LIMIT else place
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = unsupported_place(item, f"{place}[{i}]", depth + 1)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for k in sorted(value, key=lambda s: (len(s.encode()), s.encode())):
            found = unsupported_place(value[k], f"{place}.{k}", depth + 1)
            if found:
                return found
        return None
    return place


def vectors() -> list[dict[str, Any]]:
    """The spec's vectors (``ids-v1.json``), as shipped with the package."""
    text = resources.files("uuid_forge").joinpath("vectors/ids-v1.json").read_text(encoding="utf-8")
    loaded: list[dict[str, Any]] = json.loads(text)
    return loaded


def _from_vector(v: dict[str, Any]) -> Case:
    place = unsupported_place(v["args"], "args") or unsupported_place(v["kwargs"], "kwargs")
    return Case(v["label"], "vector", Namespace(v["namespace_domain"]).uuid, v["entity_type"], v["args"], v["kwargs"],
                v["salt"], v["secret"], None if place else v["name"], None if place else uuid.UUID(v["uuid"]), place)


def _library(label: str, args: list[Any], kwargs: dict[str, Any], salt: str = "s",
             secret: str | None = None, error: str | None = None) -> Case:
    if error is not None:
        return Case(label, "library", _NS.uuid, "thing", args, kwargs, salt, secret, None, None, error)
    ident = UUIDGenerator(IDConfig(namespace=_NS, salt=salt, secret=secret)).generate("thing", *args, **kwargs)
    return Case(label, "library", _NS.uuid, "thing", args, kwargs, salt, secret,
                canonical_name("thing", args, kwargs, salt), ident, None)


def _library_cases() -> list[Case]:
    nested: Any = {"k": 1}
    for _ in range(101):
        nested = [nested]
    return [
        _library("NFC: a decomposed value", [], {"city": "Zu\u0308rich"}),
        _library("NFC: a decomposed member name", [], {"cafe\u0301": 1, "z": 2}),
        _library("NFC: the salt", [], {"email": "a@b.c"}, salt="se\u0301l"),
        _library("member order: UTF-16 code units", [], {"\ue000": 1, "\U0001f600": 2, "b": 3, "B": 4, "": 5}),
        _library("member order: nested objects", [], {"z": {"y": [{"b": None, "a": True}]}, "a": []}),
        _library("escapes: controls, DEL, U+2028", ["\x08\x0c\x1f\x7f\u2028\\\"/"], {}),
        _library("integers: big and negative", [10**20, -(10**20), -5, 0], {}),
        _library("empty array and object", [[], {}], {}),
        _library("keyed: text secret", [], {"email": "a@b.c"}, secret="pg-check-secret"),
        _library("keyed: non-ASCII secret and key", ["\u6771\u4eac"], {}, secret="s\u00e9cret"),
        _library("error: an integer of 1e21", [], {"big": 10**21}, error="kwargs.big"),
        _library("error: a fraction in a nested array", [1, [2, 2.5]], {}, error="args[1][1]"),
        _library("error: two member names equal after NFC", [], {"k": {"\u00e9": 1, "e\u0301": 2}},
                 error="equal after NFC"),
        _library("error: nested deeper than 100 levels", [nested], {}, error="deeper than 100"),
    ]


def cases() -> list[Case]:
    """Every vector, then the library's cases."""
    return [_from_vector(v) for v in vectors()] + _library_cases()
