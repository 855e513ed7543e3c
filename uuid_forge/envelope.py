"""The legacy envelope ``{fp, id, key, data}``: uuid-forge 1.0's stored shape, still read and written.

Files, Redis hashes, MongoDB documents and RabbitMQ bodies each wrap these members in their own
container; the members themselves are spelled here once. ``fp`` is written for old readers and
never trusted on read: a fingerprint always comes from the data as stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from .record import Record

__all__ = ["DATA", "FP", "ID", "KEY", "envelope_members", "envelope_record", "json_object"]

FP, ID, KEY, DATA = "fp", "id", "key", "data"


def envelope_members(record: Record) -> dict[str, str]:
    """``fp``, ``data`` and ``key`` of ``record`` as JSON texts (canonical; ``key`` ``null`` when unknown)."""
    return {FP: f"\"{record.fingerprint}\"", DATA: record.data_json, KEY: record.key_json or "null"}


def json_object(pairs: Iterable[tuple[str, str]]) -> str:
    """``{"a":<text>,"b":<text>}`` from member names and their values, already JSON text, in order."""
    return "{" + ",".join(f'"{name}":{text}' for name, text in pairs) + "}"


def envelope_record(entity_type: str, ident: uuid.UUID, doc: Any, fingerprint: str | None) -> Record:
    """The record a parsed envelope holds; TypeError when ``doc`` is no envelope with a data object.
    An envelope whose ``id`` is the entry's ID is marked ours (:attr:`Record.marked`)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get(DATA), Mapping):
        raise TypeError("the entry does not hold an envelope with a data object")
    key = doc.get(KEY)
    record = Record(entity_type, ident, doc[DATA], key if isinstance(key, (Mapping, list)) else None,
                    fingerprint=fingerprint)
    record.marked = doc.get(ID) == str(ident)  # the envelope names the entry it is in: uuid-forge's mark
    return record
