"""UUID objects made straight from their 128-bit value, without ``uuid.UUID.__init__``'s checks.

Why: an audit makes one UUID object for every entry it reads (a stored name parsed, a spilled
bucket read back), and ``uuid.UUID(text)`` spends most of its time re-checking arguments:
about 0.9 us per UUID against 0.4 us here. The objects are ordinary ``uuid.UUID`` instances,
equal and hashing alike. Callers pass only values they have checked already: text that fully
matched the canonical 36-character pattern, exactly 16 bytes, an int below 2**128.
"""

from __future__ import annotations

import uuid

__all__ = ["uuid_of_bytes", "uuid_of_int", "uuid_of_text"]

_new = object.__new__
_set = object.__setattr__
_SAFE = uuid.SafeUUID.unknown
_UUID = uuid.UUID


def uuid_of_int(value: int) -> uuid.UUID:
    """The UUID whose 128-bit value is ``value`` (0 <= value < 2**128, not checked)."""
    u = _new(_UUID)
    _set(u, "int", value)
    _set(u, "is_safe", _SAFE)
    return u


def uuid_of_bytes(data: bytes) -> uuid.UUID:
    """The UUID of 16 big-endian bytes (the length not checked)."""
    return uuid_of_int(int.from_bytes(data))


def uuid_of_text(text: str) -> uuid.UUID:
    """The UUID of canonical 36-character text (``8-4-4-4-12`` hex digits, not checked)."""
    return uuid_of_int(int(text.replace("-", ""), 16))
