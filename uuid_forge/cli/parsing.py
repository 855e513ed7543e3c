"""Typed key values on the command line, following httpie: ``key=text`` and ``key:=json``.

``-a number=12345`` gives the string "12345"; ``-a number:=12345`` gives the integer. A positional
value is text unless it starts with ``:=`` (``:=7`` is the integer 7). This is what makes the CLI
and the library agree: the CLI never guesses a type.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import ValidationError

__all__ = ["parse_assignments", "parse_positional"]


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValidationError(f"{where}: {text!r} is not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise ValidationError(f"{where}: is not valid JSON here (nested too deeply)") from None
    except ValueError as err:  # an integer past Python's int-to-text limit
        raise ValidationError(f"{where}: is not valid JSON here ({str(err).split(';')[0]})") from None


def parse_positional(values: tuple[str, ...] | list[str], option: str = "ARG") -> list[Any]:
    """Positional key values: text, or JSON after a leading ``:=``."""
    return [_json(v[2:], f"{option} {i + 1} ({v!r})") if v.startswith(":=") else v for i, v in enumerate(values)]


def parse_assignments(items: tuple[str, ...] | list[str], option: str = "-a") -> dict[str, Any]:
    """``key=text`` / ``key:=json`` pairs into a dict; a repeated or empty key is an error."""
    out: dict[str, Any] = {}
    for item in items:
        eq = item.find("=")
        if eq <= 0:
            raise ValidationError(f"{option} {item!r}: expected key=value (text) or key:=json (typed)")
        if item[eq - 1] == ":":
            key, value = item[: eq - 1], _json(item[eq + 1 :], f"{option} {item!r}")
        else:
            key, value = item[:eq], item[eq + 1 :]
        if not key:
            raise ValidationError(f"{option} {item!r}: the key is empty")
        if key in out:
            raise ValidationError(f"{option} {item!r}: key {key!r} is given twice")
        out[key] = value
    return out
