"""One line of a JSONL input as a value, read strictly: every reader of user lines goes through here.

Why not ``json.loads`` alone: it keeps the last of two members with the same name, silently, so
a line that says two things is written as one of them; and a line nested thousands of levels
deep makes it raise ``RecursionError``, which names no line. Here a duplicate member is an
error that names it, and a line nested deeper than key and data values may be (the canonical
form's ``MAX_DEPTH``) is refused as such, at any depth, without parsing its inside.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from .canonical import MAX_DEPTH
from .errors import ValidationError

__all__ = ["LINE_DEPTH", "parse_line"]

#: Levels of nesting a line may have: the line's object, the ``key`` or ``data`` object in it,
#: then what the canonical form accepts inside a value (containers at depth 0 to MAX_DEPTH).
#: A deeper line always holds a value the canonical form refuses, so this refuses nothing more.
LINE_DEPTH = MAX_DEPTH + 2

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_NAME_SHOWN = 80  # characters of a member's name put in a message


class _Duplicate(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Duplicate(name)
            seen.add(name)
    return obj


def _depth(text: str) -> int:
    """The deepest nesting of valid JSON text (brackets inside strings do not count)."""
    steps = (1 if b in "[{" else -1 for b in _BRACKET.findall(_STRING.sub("", text)))
    return max(accumulate(steps, initial=0))


def _too_deep() -> ValidationError:
    return ValidationError(f"nesting deeper than {MAX_DEPTH} levels (key and data values may nest at most "
                           f"{MAX_DEPTH} levels)")


def parse_line(line: str) -> Any:
    """The JSON value of one line; ``ValidationError`` (no place: the caller adds file and line)
    for invalid JSON, a member that appears twice in one object, or nesting past ``LINE_DEPTH``.
    The message names a duplicate member, never a value."""
    try:
        value = json.loads(line, object_pairs_hook=_unique)
    except json.JSONDecodeError as e:
        raise ValidationError(f"not valid JSON ({e.msg} at column {e.colno})") from None
    except _Duplicate as e:
        name = e.name if len(e.name) <= _NAME_SHOWN else e.name[:_NAME_SHOWN] + "…"
        raise ValidationError(f"member {json.dumps(name, ensure_ascii=False)} appears twice in one object "
                              "(JSON lines must not repeat a member: which one would win is not said)") from None
    except RecursionError:
        raise _too_deep() from None
    if line.count("[") + line.count("{") > LINE_DEPTH and _depth(line) > LINE_DEPTH:
        raise _too_deep()
    return value
