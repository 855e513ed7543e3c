"""Every text form of a UUID, automatic decoding, and checks for what each target accepts.

Stores and people need different forms (a 36-char string for SQL and logs, 22-char base64url for
compact keys, 26-char lowercase base32 for DNS and Kubernetes names). ``decode`` tells them apart
by length and alphabet, so a compact form in a log is never a puzzle.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any

from .errors import DecodeError, TargetError

FORMS = ("string", "hex", "base64url", "base32", "int", "urn", "bytes", "short")
_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
_CROCKFORD_INDEX = {c: i for i, c in enumerate(_CROCKFORD)}
_B64URL = re.compile(r"[A-Za-z0-9_-]{22}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_STRING = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGITS = re.compile(r"[0-9]{1,39}")

__all__ = ["FORMS", "TARGETS", "all_forms", "check_target", "decode", "detect_form", "encode"]


def _as_uuid(value: Any) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    raise TypeError(f"expected a uuid.UUID, got {type(value).__name__}")


def encode(value: uuid.UUID, form: str = "string") -> str | bytes:
    """``value`` in one of :data:`FORMS` (``bytes`` gives 16 raw bytes, the rest text)."""
    u = _as_uuid(value)
    if form == "string":
        return str(u)
    if form == "hex":
        return u.hex
    if form == "base64url":
        return base64.urlsafe_b64encode(u.bytes)[:22].decode("ascii")
    if form == "base32":
        n = u.int
        return "".join(_CROCKFORD[(n >> shift) & 31] for shift in range(125, -1, -5))
    if form == "int":
        return str(u.int)
    if form == "urn":
        return u.urn
    if form == "bytes":
        return u.bytes
    if form == "short":
        return u.hex[:8]
    raise DecodeError(f"unknown form {form!r}; forms: {', '.join(FORMS)}")


def all_forms(value: uuid.UUID) -> dict[str, str]:
    """Every text form (bytes as hex), plus version and variant, for people reading logs."""
    u = _as_uuid(value)
    forms = {f: encode(u, f) for f in FORMS if f != "bytes"}
    forms["bytes_hex"] = u.bytes.hex()
    forms["version"] = str(u.version) if u.variant == uuid.RFC_4122 else "n/a"
    forms["variant"] = {uuid.RFC_4122: "RFC 9562 (10xx)", uuid.RESERVED_NCS: "NCS (0xxx)",
                        uuid.RESERVED_MICROSOFT: "Microsoft (110x)", uuid.RESERVED_FUTURE: "future (111x)"}[u.variant]
    return forms  # type: ignore[return-value]


def detect_form(text: str) -> str:
    """The form ``text`` is in, judged by length and alphabet; raises DecodeError if none fits."""
    return _decode(text)[1]


def decode(text: str | bytes, form: str | None = None) -> uuid.UUID:
    """The UUID behind any form; ``form`` forces one (an int of 22, 26 or 32 digits needs it)."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) != 16:
            raise DecodeError(f"bytes form must be 16 bytes, got {len(raw)}")
        return uuid.UUID(bytes=raw)
    if not isinstance(text, str):
        raise DecodeError(f"cannot decode a {type(text).__name__} as a UUID")
    if form is not None:
        return _decode_as(text, form)
    return _decode(text)[0]


def _tried(text: str, why: str = "") -> DecodeError:
    shown = text if len(text) <= 60 else text[:57] + "..."
    return DecodeError(
        f"{shown!r} is not a UUID in any form{': ' + why if why else ''} (tried: string 36, hex 32, "
        "base64url 22, base32 26 lowercase, int up to 39 digits, urn 45; short 8 is display-only)")


def _decode(text: str) -> tuple[uuid.UUID, str]:
    n = len(text)
    if n == 36 and _STRING.fullmatch(text):
        return uuid.UUID(text), "string"
    if n == 32 and _HEX32.fullmatch(text):
        return uuid.UUID(hex=text), "hex"
    if n == 22 and _B64URL.fullmatch(text):
        return _decode_as(text, "base64url"), "base64url"
    if n == 26 and all(c in _CROCKFORD_INDEX for c in text.lower()):
        return _decode_as(text, "base32"), "base32"
    if n == 45 and text[:9].lower() == "urn:uuid:" and _STRING.fullmatch(text[9:]):
        return uuid.UUID(text[9:]), "urn"
    if _DIGITS.fullmatch(text) and n not in (22, 26, 32):
        return _decode_as(text, "int"), "int"
    if n == 8 and _HEX32.fullmatch(text * 4):
        raise _tried(text, "the 8-char short form is display-only and cannot be decoded")
    raise _tried(text)


def _decode_as(text: str, form: str) -> uuid.UUID:
    try:
        if form in ("string", "hex"):
            if len(text) != (36 if form == "string" else 32):
                raise _tried(text, f"{form} form has the wrong length {len(text)}")
            if not (_STRING if form == "string" else _HEX32).fullmatch(text):
                raise _tried(text, f"not in the {form} form")
            return uuid.UUID(text)
        if form == "urn":
            if not text.lower().startswith("urn:uuid:"):
                raise _tried(text, "urn form must start with urn:uuid:")
            if not _STRING.fullmatch(text[9:]):
                raise _tried(text, "urn form is urn:uuid: followed by the 36-char string form")
            return uuid.UUID(text[9:])
        if form == "base64url":
            if not _B64URL.fullmatch(text):
                raise _tried(text, f"base64url form is 22 chars of A-Z a-z 0-9 - _, got {len(text)} chars")
            raw = base64.urlsafe_b64decode(text + "==")
            if base64.urlsafe_b64encode(raw)[:22].decode() != text:
                raise _tried(text, "non-canonical base64url (the last char's low bits are not zero)")
            return uuid.UUID(bytes=raw)
        if form == "base32":
            if text != text.lower():
                raise _tried(text, "base32 form is lowercase (case matters here)")
            if len(text) != 26 or any(c not in _CROCKFORD_INDEX for c in text):
                raise _tried(text, "base32 form is 26 chars of Crockford's lowercase alphabet")
            if text[0] > "7":
                raise _tried(text, "base32 form must start with 0-7 (more would exceed 128 bits)")
            n = 0
            for c in text:
                n = (n << 5) | _CROCKFORD_INDEX[c]
            return uuid.UUID(int=n)
        if form == "int":
            if not _DIGITS.fullmatch(text) or int(text) >= 1 << 128:
                raise _tried(text, "int form is 1-39 decimal digits below 2**128")
            return uuid.UUID(int=int(text))
        if form == "short":
            raise _tried(text, "the short form is display-only and cannot be decoded")
    except (ValueError, binascii.Error) as err:
        if isinstance(err, DecodeError):
            raise
        raise _tried(text, str(err)) from None
    raise DecodeError(f"unknown form {form!r}; forms: {', '.join(FORMS)}")


# -- what each target accepts ----------------------------------------------------------------
_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ES_INDEX_BAD = set('\\/*?"<>| ,#:')


def _dns_label(v: str) -> str | None:
    if not _DNS_LABEL.fullmatch(v):
        return "a DNS label (RFC 1123) is 1-63 chars of a-z 0-9 '-', starting and ending with a letter or digit"
    return None


def _k8s_name(v: str) -> str | None:
    if len(v) > 253 or not all(_DNS_LABEL.fullmatch(p) for p in v.split(".")):
        return "a Kubernetes name is at most 253 chars of DNS labels joined by '.'"
    return None


def _es_id(v: str) -> str | None:
    if not v or len(v.encode("utf-8")) > 512:
        return "an Elasticsearch _id is 1-512 bytes of UTF-8"
    return None


def _es_index(v: str) -> str | None:
    if (not v or v != v.lower() or v in (".", "..") or v[0] in "-_+" or len(v.encode("utf-8")) > 255
            or any(c in _ES_INDEX_BAD for c in v)):
        return ("an Elasticsearch index name is lowercase, at most 255 bytes, does not start with - _ +, "
                "is not . or .., and has none of \\ / * ? \" < > | space , # :")
    return None


def _amqp_shortstr(v: str) -> str | None:
    if len(v.encode("utf-8")) > 255:
        return "an AMQP shortstr (message_id, correlation_id, type) is at most 255 bytes of UTF-8"
    return None


def _redis_key(v: str) -> str | None:
    if not v or len(v.encode("utf-8")) > 512 * 1024 * 1024:
        return "a Redis key is 1 byte to 512 MiB"
    return None


TARGETS = {
    "dns-label": _dns_label,
    "k8s-name": _k8s_name,
    "es-id": _es_id,
    "es-index": _es_index,
    "amqp-shortstr": _amqp_shortstr,
    "redis-key": _redis_key,
}


def check_target(value: str, target: str, where: str = "value") -> str:
    """Return ``value`` if ``target`` accepts it, else raise TargetError naming value and rule."""
    rule = TARGETS.get(target)
    if rule is None:
        raise TargetError(f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    if not isinstance(value, str):
        raise TargetError(f"{where} must be a str for target {target}, got {type(value).__name__}")
    problem = rule(value)
    if problem:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise TargetError(f"{where} {shown!r} does not fit {target}: {problem}")
    return value
