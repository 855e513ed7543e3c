"""Our fields merged into a stored JSON object, another application's members kept verbatim.

A write owns only its fields (:meth:`uuid_forge.view.FieldView.owns`, issue 18 rule 3). Where a
store keeps a record as JSON text (a Redis string, a file), a write reads the stored object,
keeps every member it does not own exactly as the other application wrote it (numbers digit for
digit, strings not NFC-normalised: re-encoding them would change fields that are not ours), and
writes its own members in canonical form. Redis and the file store share this one rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

__all__ = ["load_verbatim", "merged_text", "verbatim_json"]


class _Verbatim(str):
    """A JSON number as another application wrote it, written back digit for digit."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_verbatim(text: str | bytes) -> Any:
    """The JSON ``text`` with its numbers kept as their text and its strings as they are.

    ValueError when it is no JSON (NaN and Infinity included), RecursionError when nested too deep.
    """
    return json.loads(text, parse_float=_Verbatim, parse_int=_Verbatim, parse_constant=_no_constant)


def verbatim_json(value: Any) -> str:
    """The JSON text of a value read by :func:`load_verbatim`, unchanged but for insignificant spaces."""
    if isinstance(value, _Verbatim):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=False)}:{verbatim_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(verbatim_json(v) for v in value) + "]"
    return json.dumps(value)  # true, false, null


def merged_text(kept: dict[str, Any], ours: Iterable[tuple[str, str]]) -> str:
    """One JSON object: the ``kept`` members (read by :func:`load_verbatim`) as they were, and
    ``ours`` (the canonical JSON text of each member's name and of its value), in name order."""
    members = {json.dumps(k, ensure_ascii=False): verbatim_json(v) for k, v in kept.items()}
    members.update(ours)
    return "{" + ",".join(f"{k}:{v}" for k, v in sorted(members.items())) + "}"
