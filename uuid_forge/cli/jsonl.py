"""Entities from JSON lines (``write --jsonl``): one object per line, each checked where it stands.

Why line by line: an error names its line and column (or byte offset), and every entity before
it is written, so the message can say where to resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from ..entitytypes import FROM_DATA
from ..errors import ValidationError
from ..forge import Forge
from ..jsonline import parse_line

__all__ = ["JsonlReader", "count_checked", "numbered_entities"]


class JsonlReader:
    """Entities from a JSONL byte stream, each checked on its own line; stops at the first bad line.

    Why stop instead of raising inside ``write_many``: every entity before the bad line is then
    written, so the error can say how many were and where to resume (stdin cannot be read twice).
    """

    def __init__(self, stream: BinaryIO, name: str, forge: Forge | None) -> None:
        self.stream, self.name, self.forge = stream, name, forge
        self.error: ValidationError | None = None

    def __iter__(self) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        try:
            for _, entity in numbered_entities(self.stream, self.name, self.forge):
                yield entity
        except ValidationError as e:
            self.error = e


def numbered_entities(stream: BinaryIO, name: str, forge: Forge | None = None
                      ) -> Iterator[tuple[int, tuple[str, Any, dict[str, Any]]]]:
    """Each non-blank line of a JSONL byte stream as an entity, with its line number.

    Read as bytes and decoded line by line: a non-UTF-8 byte is then reported at its own line and
    byte offset (a text stream fails at a buffer boundary, with no line). The line ending is cut
    before parsing, so a JSON error's column is the one ``json.loads`` gives for the line itself.
    Each line is parsed by :func:`uuid_forge.jsonline.parse_line`: a repeated member or nesting
    past its limit is refused with the line, like invalid JSON.
    With ``forge``, each entity is also checked (ID, data, entity type) before it is yielded.
    """
    offset = 0
    for lineno, raw in enumerate(stream, 1):
        start, offset = offset, offset + len(raw)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            column = len(raw[:e.start].decode("utf-8")) + 1
            raise ValidationError(f"{name} line {lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}, "
                                  f"byte offset {start + e.start})") from None
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            item = parse_line(line)
        except ValidationError as e:
            raise ValidationError(f"{name} line {lineno}: {e}") from None
        if not isinstance(item, dict) or "entity_type" not in item:
            raise ValidationError(f"{name} line {lineno}: expected an object with entity_type, key and data "
                                  "(key may be left out for a type declared with key fields)")
        extra = set(item) - {"entity_type", "key", "data"}
        if extra:
            raise ValidationError(f"{name} line {lineno}: unknown field(s) {', '.join(sorted(extra))}")
        entity = (item["entity_type"], item.get("key", FROM_DATA), item.get("data", {}))
        if forge is not None:
            try:
                forge.records([entity])
            except (ValidationError, TypeError, ValueError) as e:
                reason = str(e).split(": ", 1)[1] if str(e).startswith("entities[") else str(e)
                raise ValidationError(f"{name} line {lineno}: {reason}") from None
        yield lineno, entity


def count_checked(path: str, forge: Forge) -> int:
    """A first pass over a JSONL file: every line valid before any store is touched."""
    count = 0
    with open(path, "rb") as fh:
        for _ in numbered_entities(fh, path, forge):
            count += 1
    return count
