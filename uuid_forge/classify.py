"""One rule for every store: is a stored name ours, ours in the wrong form, or someone else's?

A scan meets names it did not necessarily write: other applications share Redis databases,
collections, indices and directories. Repair may only ever touch what uuid-forge owns, so every
adapter classifies what it finds with :func:`classify`:

* a ``uuid.UUID``: the name is exactly the store's expected encoding of an ID;
* a :class:`~uuid_forge.record.MalformedID`: the name is one of the documented text forms of a
  UUID (string, upper-case string, hex, urn, braces, base64url, base32) in the wrong form, and the
  UUID it decodes to has the RFC variant and a version this ID scheme produces (5 for
  ``uuid-forge/1`` without a secret and for the legacy scheme, 8 with a secret). Repair may
  rewrite it in the right form and remove the wrong twin;
* a :class:`~uuid_forge.record.ForeignEntry`: anything else (``session-abc``, ``42``,
  ``42:prefs``, ``README.txt``, another tenant's keys). Reported, never repaired, never deleted.

The integer form is deliberately not a stored form here: ``42`` is somebody's row number, not
a UUID.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import TYPE_CHECKING

from .record import ForeignEntry, MalformedID
from .uuidints import uuid_of_bytes, uuid_of_int, uuid_of_text

if TYPE_CHECKING:
    from .ids import IDConfig

__all__ = ["ANY_VERSIONS", "EXPECTED_FORMS", "classify", "classify_uuid", "exact_id", "parse_id", "scheme_versions"]

#: versions an ID of this project can have when the scheme is not known (v5 unkeyed, v8 keyed)
ANY_VERSIONS: frozenset[int] = frozenset({5, 8})
#: the encodings a store may expect for its IDs
EXPECTED_FORMS = ("string", "hex", "base64url")

_STRING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STRING_ANY = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-f]{32}")
_HEX_ANY = re.compile(r"[0-9a-fA-F]{32}")
_B64URL = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")  # canonical: the last char's low 4 bits are zero
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_CROCKFORD_INDEX = {c: i for i, c in enumerate(_CROCKFORD)}


def scheme_versions(config: IDConfig | None) -> frozenset[int]:
    """The UUID versions IDs of ``config`` have: 8 with a secret, else 5; both when unknown."""
    if config is None:
        return ANY_VERSIONS
    return frozenset({8}) if getattr(config, "secret", None) is not None else frozenset({5})


def exact_id(text: str, expected: str) -> uuid.UUID | None:
    """The UUID when ``text`` is exactly the ``expected`` encoding (lowercase, canonical), else
    None: what :func:`classify` returns first, also for a caller that has already seen the rest
    of what makes an entry ours (Elasticsearch's id field repeating the ``_id``)."""
    if expected == "string":
        return uuid_of_text(text) if len(text) == 36 and _STRING.fullmatch(text) else None
    if expected == "hex":
        return uuid_of_int(int(text, 16)) if len(text) == 32 and _HEX.fullmatch(text) else None
    if expected == "base64url":
        if len(text) == 22 and _B64URL.fullmatch(text):
            return uuid_of_bytes(base64.urlsafe_b64decode(text + "=="))
        return None
    raise ValueError(f"unknown expected ID form {expected!r}; one of {', '.join(EXPECTED_FORMS)}")


def parse_id(text: str) -> tuple[uuid.UUID, str] | None:
    """``(uuid, form)`` when ``text`` is a UUID in one of the documented text forms, else None."""
    n = len(text)
    try:
        if n == 36 and _STRING_ANY.fullmatch(text):
            return uuid.UUID(text), "string" if text == text.lower() else "upper-case string"
        if n == 38 and text[0] == "{" and text[-1] == "}" and _STRING_ANY.fullmatch(text[1:-1]):
            return uuid.UUID(text[1:-1]), "braced string"
        if n == 45 and text[:9].lower() == "urn:uuid:" and _STRING_ANY.fullmatch(text[9:]):
            return uuid.UUID(text[9:]), "urn"
        if n == 32 and _HEX_ANY.fullmatch(text):
            return uuid.UUID(hex=text), "hex" if text == text.lower() else "upper-case hex"
        if n == 22 and _B64URL.fullmatch(text):
            return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "==")), "base64url"
        if n == 26:
            low = text.lower()
            if low[0] <= "7" and all(c in _CROCKFORD_INDEX for c in low):
                value = 0
                for c in low:
                    value = (value << 5) | _CROCKFORD_INDEX[c]
                return uuid.UUID(int=value), "base32" if text == low else "upper-case base32"
    except (ValueError, binascii.Error):
        return None
    return None


def _ours(ident: uuid.UUID, versions: frozenset[int]) -> bool:
    return ident.variant == uuid.RFC_4122 and ident.version in versions


def classify(text: str, expected: str | None, *, raw: str | None = None,
             versions: frozenset[int] = ANY_VERSIONS, where: str = "stored name") -> uuid.UUID | MalformedID | ForeignEntry:
    """Classify one stored name (see the module doc).

    ``text`` is the part that should hold the ID (a key's suffix, a file name's stem, an ``_id``);
    ``raw`` is what identifies the entry in the store (the whole key, the path), ``text`` when
    None; ``expected`` is the store's encoding (``string``, ``hex``, ``base64url``, or None when
    no text form is right, e.g. a string ``_id`` where BSON Binary is expected); ``versions`` are
    the versions the configured ID scheme produces; ``where`` names the part in reasons.
    """
    raw = text if raw is None else raw
    if expected is not None:
        exact = exact_id(text, expected)
        if exact is not None:
            return exact
    parsed = parse_id(text)
    if parsed is None:
        return ForeignEntry(raw, f"{where} is not a UUID in any form uuid-forge writes: not ours, left alone")
    ident, form = parsed
    if not _ours(ident, versions):
        version = ident.version if ident.variant == uuid.RFC_4122 else None
        made = " or ".join(str(v) for v in sorted(versions))
        return ForeignEntry(raw, f"{where} is a UUID of {'version ' + str(version) if version else 'a non-RFC variant'}"
                                 f", not one this ID scheme makes (version {made}): not ours, left alone")
    want = f"the {expected} form" if expected else "another encoding"
    return MalformedID(raw=raw, reason=f"{where} holds the ID in {form} form, expected {want}", id=ident)


def classify_uuid(ident: uuid.UUID, *, raw: str, versions: frozenset[int] = ANY_VERSIONS,
                  where: str = "ID", wanted: str = "another encoding") -> MalformedID | ForeignEntry:
    """A UUID held in the wrong type (a Binary where a string is expected, ...): ours or not by version."""
    if not _ours(ident, versions):
        return ForeignEntry(raw, f"{where} is a UUID this ID scheme does not make: not ours, left alone")
    return MalformedID(raw=raw, reason=f"{where} holds the ID as {wanted}", id=ident)
