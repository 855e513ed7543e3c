"""Records moved between stores, their fingerprints, and ID-range partitions for scans.

A fingerprint is a hash of the canonical form of a record's data. Stores may keep it beside the
data as a write-time hint, but an audit computes it from the data each store holds: an edit made by
another program changes the data, not the hint.
"""

from __future__ import annotations

import decimal
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from .canonical import canonical, canonical_data
from .errors import UUIDForgeError, ValidationError

__all__ = ["DELETED", "ForeignEntry", "MalformedID", "Partition", "RawEntry", "Record", "TextFingerprint", "data_fingerprint",
           "fingerprint_of", "held_fingerprint", "load_json", "same_fingerprint"]

_SPACE = 1 << 128


UNREADABLE = "unreadable"  # the fingerprint of an unreadable entry: never a 32-hex digest, so never equal
#: the fingerprint a message log's scan gives a delete event (``scan_log``): from there on the entity
#: is not held, until a later event for it (uuid_forge.logspill)
DELETED = "deleted"


def fingerprint_of(data_json: str) -> str:
    """32 hex chars of SHA-256 over the canonical JSON text of the data.

    The one value rule (docs/data-model.md): two values are equal exactly when the ID scheme gives
    them one canonical form. Text is text, date-time text too: ``"2024-05-01T12:00:00+02:00"`` and
    ``"2024-05-01T10:00:00Z"`` name one instant but are two values, in data as in key fields
    (where the scheme hashes them to two IDs). An aware ``datetime`` (a ``timestamptz``, a BSON
    date) is its UTC text ``...Z``, in both."""
    return hashlib.sha256(data_json.encode("utf-8")).hexdigest()[:32]


def _number(text: str) -> float | decimal.Decimal:
    """A JSON fraction as canonical() wrote it: exponent forms came from floats, plain ones may be
    Decimals of more digits than a float holds (parsing them as floats would invent differences)."""
    return float(text) if "e" in text or "E" in text else decimal.Decimal(text)


_DECODER = json.JSONDecoder(parse_float=_number)


def load_json(text: str | bytes) -> Any:
    """Parse stored JSON text without losing digits: ``canonical(load_json(canonical(v)))`` is
    ``canonical(v)`` for every value, so stored text re-canonicalises to what was written.

    As ``json.loads(text, parse_float=...)`` does, through one decoder made once: ``json.loads``
    with a keyword builds a new decoder per call, which cost a third of reading a Redis batch."""
    if isinstance(text, str):
        if text.startswith("\ufeff"):
            return json.loads(text, parse_float=_number)  # json's own error for a BOM in text
        return _DECODER.decode(text)
    if not isinstance(text, (bytes, bytearray)):
        return json.loads(text, parse_float=_number)  # json's own TypeError
    return _DECODER.decode(text.decode(json.detect_encoding(text), "surrogatepass"))


def _stored_canonical(data: Any) -> str | None:
    """The canonical text of data as read from a store, or None when it has none."""
    if not isinstance(data, Mapping):
        return None
    try:
        return canonical_data(data, "stored data")
    except (UUIDForgeError, ValueError, TypeError, RecursionError):
        return None


def data_fingerprint(data: Any) -> str | None:
    """The fingerprint of data as read from a store (a parsed document, typed column values), or
    None when it has no canonical form (not a mapping, a naive datetime...): never equal to a
    source's fingerprint, so the record is reported stale rather than failing the scan."""
    text = _stored_canonical(data)
    return None if text is None else fingerprint_of(text)


def held_fingerprint(data: Any) -> TextFingerprint | None:
    """As :func:`data_fingerprint`, but keeping the canonical text, for a store whose data cannot
    be read back by ID later (a message log): the audit names the differing fields from it."""
    text = _stored_canonical(data)
    return None if text is None else TextFingerprint(text)


_sha256 = hashlib.sha256


class TextFingerprint(str):
    """The fingerprint of stored JSON text, hashed as read (fast: no parsing).

    Stores that keep the canonical text verbatim give the canonical fingerprint this way. Where it
    differs from the other side's, :meth:`settled` parses and re-canonicalises the text, so a hand
    edit that only reformats the JSON is no difference, while a changed value is.
    """

    text: str | bytes
    _settled: str | None = None  # a class default: one attribute set per instance (an audit makes millions)

    def __new__(cls, text: str | bytes) -> Self:
        raw = text if type(text) is bytes else text.encode("utf-8") if isinstance(text, str) else text
        obj = str.__new__(cls, _sha256(raw).hexdigest()[:32])
        obj.text = text
        return obj

    def settled(self) -> str | None:
        """The fingerprint of the text's canonical form (None when it is not a JSON object)."""
        if self._settled is None:
            try:
                value = load_json(self.text)
            except ValueError:
                return None
            self._settled = data_fingerprint(value) or ""
        return self._settled or None


def _settle(fp: str | None) -> str | None:
    return fp.settled() if isinstance(fp, TextFingerprint) else fp


def same_fingerprint(found: str | None, expected: str | None) -> bool:
    """Whether two fingerprints from data as read describe the same data (None never matches)."""
    if found is None or expected is None:
        return False
    if found == expected:
        return True
    if not isinstance(found, TextFingerprint) and not isinstance(expected, TextFingerprint):
        return False
    a, b = _settle(found), _settle(expected)
    return a is not None and a == b


class Record:
    """One entity in one store: entity type, UUID, data, and optionally the business key.

    The key is a mapping of named key values (``generate(type, **key)``) or a list of positional
    ones (``generate(type, *key)``); an audit can recompute the ID from it.

    The canonical JSON of ``data`` and its fingerprint are computed once, on first use. Adapters
    read records back without a fingerprint, so it is computed from the data the store holds
    (``fingerprint=`` is for callers that already know it from that same data).
    """

    __slots__ = ("_fingerprint", "_json", "_key_json", "data", "entity_type", "id", "key", "marked", "unreadable")

    def __init__(self, entity_type: str, id: uuid.UUID | str, data: Mapping[str, Any],
                 key: Mapping[str, Any] | list[Any] | None = None, *, fingerprint: str | None = None) -> None:
        if (type(entity_type) is not str or not entity_type) and (not isinstance(entity_type, str) or not entity_type):
            raise ValidationError(f"entity_type must be a non-empty str, got {entity_type!r}")
        if type(id) is not uuid.UUID and not isinstance(id, uuid.UUID):
            from .encodings import decode

            id = decode(id)
        if type(data) is not dict and not isinstance(data, Mapping):
            raise ValidationError(f"data of {entity_type} {id} must be a mapping, got {type(data).__name__}")
        self.entity_type = entity_type
        self.id = id
        self.data = data
        self.key = key
        self._json: str | None = None
        self._key_json: str | None = None
        self._fingerprint = fingerprint
        self.unreadable: str | None = None
        #: True when the entry carries uuid-forge's mark naming this ID (Elasticsearch's id field
        #: equal to ``_id``, the legacy envelope's ``id`` equal to its name): proof that it is ours
        #: (uuid_forge.ownership). Set by the layout that read it; never by a writer.
        self.marked = False

    @classmethod
    def unreadable_entry(cls, entity_type: str, id: uuid.UUID, reason: str) -> Record:
        """A stored entry under ``id`` that cannot be read as a record (a file emptied or edited into
        invalid JSON by hand). It is present, its fingerprint equals no data's, and ``unreadable``
        says why (never the content): an audit calls it stale, repair rewrites it from the source,
        and nothing copies its (empty) data anywhere."""
        record = cls(entity_type, id, {}, None, fingerprint=UNREADABLE)
        record.unreadable = reason
        return record

    @property
    def data_json(self) -> str:
        """The canonical JSON text of ``data``: what stores persist."""
        if self._json is None:
            self._json = canonical(self.data, f"data of {self.entity_type} {self.id}")
        return self._json

    @property
    def json_data(self) -> dict[str, Any]:
        """``data`` as plain JSON types (dates as text, Decimals as numbers), as stores keep it."""
        return json.loads(self.data_json)

    @property
    def key_json(self) -> str | None:
        """The canonical JSON text of the business key, if one is known."""
        if self.key is None:
            return None
        if self._key_json is None:
            self._key_json = canonical(self.key, f"key of {self.entity_type} {self.id}")
        return self._key_json

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_of(self.data_json)
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.entity_type, self.id, self.fingerprint) == (other.entity_type, other.id, other.fingerprint)

    def __hash__(self) -> int:
        return hash((self.entity_type, self.id))

    def __repr__(self) -> str:  # data may be personal: keep it out of logs
        return f"Record({self.entity_type!r}, {str(self.id)!r}, fingerprint={self.fingerprint!r})"


@dataclass(frozen=True)
class MalformedID:
    """An ID found in a store in the wrong encoding (``id`` is what it decodes to, if anything)."""

    raw: str
    reason: str
    id: uuid.UUID | None = None


@dataclass(frozen=True)
class ForeignEntry:
    """Something under a type's names that is not an ID of this scheme in any form (another
    application's key, file or document, another tenant's key): reported, never repaired or deleted.

    ``raw`` is the key, path or ``_id`` exactly as stored; ``reason`` says why it is not ours.
    """

    raw: str
    reason: str


@dataclass(frozen=True)
class RawEntry:
    """An entry read by its raw stored name (``ForeignEntry.raw`` / ``MalformedID.raw``), for moving
    data that lives under names uuid-forge did not make (a serial ``user:42``, an ObjectId).

    ``data`` is what ``get_many`` would give as ``Record.data`` had the name been an ID of ours
    (same layout decoding, same view); None when the entry is present but cannot be read as this
    layout's data, and then ``reason`` says why (masked, never the value).
    """

    raw: str
    data: dict[str, Any] | None
    reason: str = ""

    def __repr__(self) -> str:
        """Neither the name nor the data (both may be personal): their sizes only, so a log or a
        traceback holding one leaks nothing (masking.mask_name shows a name's shape where needed)."""
        return (f"RawEntry(<name of {len(self.raw)} characters>, "
                f"{'unreadable' if self.data is None else f'data of {len(self.data)} fields'}, reason={self.reason!r})")


@dataclass(frozen=True)
class Partition:
    """Part ``index`` of ``count`` equal ranges of the 128-bit ID space.

    Deterministic IDs are uniform, so equal ranges hold about equal numbers of records; separate
    machines can audit separate partitions.
    """

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and isinstance(self.index, int) and 0 <= self.index < self.count):
            raise ValidationError(f"partition index must be in 0..count-1, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Partition:
        """``"i/n"`` with i counted from 1, as on the command line."""
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise ValidationError(f"partition {text!r} must look like i/n, e.g. 1/4") from None
        if not 1 <= i <= n:
            raise ValidationError(f"partition {text!r}: i must be between 1 and n")
        return cls(i - 1, n)

    @property
    def lo(self) -> int:
        return self.index * _SPACE // self.count

    @property
    def hi(self) -> int:
        return (self.index + 1) * _SPACE // self.count

    @property
    def lo_uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.lo)

    @property
    def hi_uuid(self) -> uuid.UUID | None:
        """The exclusive upper bound, or None for the last partition (no UUID is 2**128)."""
        return None if self.hi >= _SPACE else uuid.UUID(int=self.hi)

    def contains(self, value: uuid.UUID) -> bool:
        return self.lo <= value.int < self.hi

    def split(self, parts: int) -> list[Partition]:
        """This partition cut into ``parts`` finer partitions (same overall ranges)."""
        return [Partition(self.index * parts + k, self.count * parts) for k in range(parts)]

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"
