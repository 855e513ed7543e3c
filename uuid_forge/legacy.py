"""The legacy scheme ``uuid-forge-0.1``: bit-identical to uuid-forge 0.1.x, where that was deterministic.

0.1.x hashed ``entity_type|salt:SALT|repr(arg)|...|key=repr(value)`` with uuid5. ``repr()`` of a
set depends on the process's hash seed and ``repr()`` of a plain object holds its memory address,
so those inputs are refused here instead of silently giving a different ID each run.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from .errors import CanonicalTypeError, CanonicalValueError

_REPR_SAFE = (str, int, float, bool, type(None), bytes, complex)


def _check(value: Any, where: str, depth: int = 0) -> None:
    if depth > 100:
        raise CanonicalValueError(f"nesting deeper than 100 levels at {where}")
    if isinstance(value, _REPR_SAFE):
        return
    if isinstance(value, (set, frozenset)):
        raise CanonicalTypeError(
            f"a set at {where}: uuid-forge 0.1.x gave it a different ID in every process (set order "
            "follows the hash seed); use a sorted list, or the uuid-forge/1 scheme")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check(key, f"{where} key", depth + 1)
            _check(item, f"{where}[{key!r}]", depth + 1)
        return
    if type(value).__repr__ is object.__repr__:
        raise CanonicalTypeError(
            f"type {type(value).__qualname__} at {where} has no __repr__ of its own: uuid-forge 0.1.x "
            "hashed its memory address, so no ID can be reproduced; use the uuid-forge/1 scheme")


def legacy_name(salt: str, entity_type: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    """The exact name text uuid-forge 0.1.x hashed."""
    for i, arg in enumerate(args):
        _check(arg, f"args[{i}]")
    for key, value in kwargs.items():
        _check(value, f"kwargs.{key}")
    parts = [entity_type]
    if salt:
        parts.append(f"salt:{salt}")
    normalized = "|".join([repr(a) for a in args] + [f"{k}={kwargs[k]!r}" for k in sorted(kwargs)])
    if normalized:
        parts.append(normalized)
    return "|".join(parts)


def generate(namespace: uuid.UUID, salt: str, entity_type: str, args: tuple[Any, ...],
             kwargs: Mapping[str, Any]) -> uuid.UUID:
    """uuid5 of the 0.1.x name."""
    if not isinstance(entity_type, str):
        raise CanonicalTypeError(f"entity_type must be a str, got {type(entity_type).__name__}")
    return uuid.uuid5(namespace, legacy_name(salt, entity_type, args, kwargs))
