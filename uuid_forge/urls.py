"""Masking passwords in URLs and in any text that may quote one (driver errors often do)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^/\s]*)@")
_SECRET_QUERY = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key|apikey|salt)=([^&\s]+)")

__all__ = ["mask_url", "mask_text", "scheme_of"]


def mask_url(url: str) -> str:
    """``url`` with its password (and secret-looking query values) shown as ``***``."""
    return mask_text(url)


def mask_text(text: str) -> str:
    """Every ``scheme://user:password@`` and ``password=...`` in ``text`` masked."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _SECRET_QUERY.sub(lambda m: f"{m[1]}=***", text)


def scheme_of(url: str) -> str:
    """The scheme of ``url``, lowercased (``postgresql+psycopg`` for SQLAlchemy-style URLs)."""
    return urlsplit(url).scheme.lower()
