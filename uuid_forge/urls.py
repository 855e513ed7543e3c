"""Masking passwords in URLs and in any text that may quote one (driver errors often do).

Every function here runs in time linear in its input, whatever the input: driver errors can
quote whole documents (megabytes), and a regex that backtracks over them would keep the writer
busy for minutes. So URLs are found with ``str.find`` and regexes that cannot backtrack.

Password shapes masked (what SQLAlchemy, redis-py, pika, pymongo and elasticsearch-py accept):
spaces, an unencoded ``/``, ``@``, ``:``, ``#`` or ``?`` in the password, an empty user,
percent-encoding, ``mongodb+srv://`` and multi-host ``mongodb://u:p@h1,h2/db``. The userinfo
is taken to end at the *last* ``@`` of the URL (drivers built on ``urllib`` split there), and the
password to start at the first ``:`` of the userinfo; when in doubt more is masked, never less.

Credential-like parameters are masked wherever they appear (URL queries, libpq ``key=value``
strings, JSON, Python reprs): any name ending in one of :data:`SECRET_NAMES`, e.g.
``sslpassword``, ``tlsCertificateKeyFilePassword``, ``client_secret``, ``access_token``,
``x-api-key``, ``sslkey``, ``aws_secret_access_key``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: names (matched case-insensitively as the end of a parameter name) whose values are masked
#: (a bare ``key`` is not one: "key=value" is how usage messages spell an argument)
SECRET_NAMES = ("password", "passwd", "passphrase", "pwd", "pass", "secret", "token", "auth", "authorization",
                "credential", "credentials", "signature", "sig", "salt", "private", "apikey", "api_key", "api-key",
                "secret_key", "secretkey", "private_key", "privatekey", "access_key", "accesskey", "sslkey",
                "ssl_key", "signing_key", "encryption_key", "master_key", "account_key", "client_key", "auth_key",
                "session_key")
#: the default cap, in characters, of a masked error line (``mask_text(..., limit=None)`` for no cap)
DEFAULT_LIMIT = 1000

_NAMES = "|".join(sorted((re.escape(n) for n in SECRET_NAMES), key=len, reverse=True))
# name, an optional closing quote (JSON/repr keys), '=' or ':', then a quoted value (to its closing
# quote or the end of the line) or a bare one. No nested quantifier: each match is one left-to-right pass.
# Not masked: '***' (done already) and MySQL's "(using password: YES)", which tells no secret.
_SECRET_PARAM = re.compile(
    rf"(?i)(?P<name>(?:{_NAMES})[\"']?[ \t]{{0,20}}[=:][ \t]{{0,20}})"
    r"(?!\*\*\*|(?:YES|NO)\))(?P<value>\"[^\"\n]*\"?|'[^'\n]*'?|(?!//)[^\s&;,'\"}\])]+)")
# what ends a URL in prose: whitespace, quotes and angle brackets
_URL_END = re.compile(r"[\s'\"<>`]")
# "host:port" right after "://" (so no password follows the ':'): 1-5 digits, then the end or a separator
_PORT = re.compile(r"\d{1,5}(?:[/?#,:;)\].]|$)")
# how far past a space a password may reach in prose ("app:Pa55 W0rd@host"); whole URLs have no limit
_SPACE_WINDOW = 256
# a longer text is capped before it is masked (every mask is local to a line): only its head and its
# last lines within this many characters are masked and shown; a shorter one is masked whole (~0.3 s/MB)
_WINDOW = 1 << 17

# SQL error lines that quote the data (PostgreSQL DETAIL/CONTEXT, SQLAlchemy parameters, MySQL values)
_SQL_CONTEXT = re.compile(r"(?m)^[ \t]*(?:CONTEXT:|(?:unnamed portal|portal \"[^\"\n]*\") parameter \$)[^\n]*\n?")
_SQL_PARAMETERS = re.compile(r"(?m)^\[parameters: [^\n]*\]?[ \t]*\n?")
_SQL_DETAIL = re.compile(r"(?m)^(?P<lead>[ \t]*DETAIL:[ \t]*)(?P<text>[^\n]*)")
_SQL_KEY = re.compile(r"Key \((?P<cols>[^)\n]{0,200})\)=\(")
# pymongo's BulkWriteError quotes the whole operation ('op': the document) and the duplicate key's values
_MONGO_OP = re.compile(r"(?P<lead>['\"]op['\"]: )[^\n]*")
_MONGO_KEY_VALUE = re.compile(r"(?P<lead>['\"]keyValue['\"]: )\{[^}\n]*\}?")
_SQL_QUOTED_VALUE = re.compile(r"(?P<lead>(?:Duplicate entry|Incorrect [a-z]+ value:?|dup key:)[ \t]*)"
                               r"(?:'[^'\n]*'?|\"[^\"\n]*\"?|\{[^}\n]*\}?)")

__all__ = ["DEFAULT_LIMIT", "SECRET_NAMES", "cap", "hide_password", "mask_text", "mask_url", "password_of", "scheme_of",
           "strip_sql_detail"]


def mask_url(url: str) -> str:
    """``url`` with its password and credential-like query values shown as ``***`` (never cut).

    The whole string is one URL, so a password may hold spaces, ``/``, ``@`` and more: everything
    between the first ``:`` after ``scheme://`` and the last ``@`` is the password.
    """
    start = url.find("://")
    if start != -1:
        start += 3
        at = url.rfind("@", start)
        if at != -1:
            colon = url.find(":", start, at)
            if colon != -1:
                url = f"{url[:colon + 1]}***{url[at:]}"
    return _SECRET_PARAM.sub(_mask_param, url)


def password_of(url: str) -> str:
    """The raw password part of ``url`` as :func:`mask_url` sees it ('' when there is none)."""
    start = url.find("://")
    if start == -1:
        return ""
    at = url.rfind("@", start + 3)
    colon = url.find(":", start + 3, at) if at != -1 else -1
    return url[colon + 1:at] if colon != -1 else ""


def hide_password(text: str, url: str) -> str:
    """``text`` (masked) without any piece of ``url``'s password in it.

    A parser's message about a URL can quote a fragment of an unencoded password: redis-py and
    pika read ``redis://:ab/cd@host`` as host ``''`` and port ``ab`` and say
    "Port could not be cast to integer value as 'ab'".
    """
    text = mask_text(text)
    password = password_of(url)
    if password:
        pieces = {password, *re.split(r"[/@:?#\s]+", password)}
        for piece in sorted(pieces, key=len, reverse=True):
            if len(piece) > 1:
                text = text.replace(piece, "***")
            elif piece:  # a single character is hidden only where it is quoted
                text = text.replace(f"'{piece}'", "'***'").replace(f'"{piece}"', '"***"')
    return text


def mask_text(text: str, limit: int | None = DEFAULT_LIMIT) -> str:
    """``text`` with every URL password, credential-like parameter and quoted SQL data masked,
    then capped at ``limit`` characters (head and tail kept; ``None`` for no cap).

    Linear time, and bounded work when capped: every mask is local to a line, so only the head
    and the last whole lines are masked (a 20 MB driver error costs milliseconds).
    """
    window = max(_WINDOW, 4 * limit) if limit is not None else 0
    if limit is None or len(text) <= 2 * window:
        return cap(_mask(text), limit)
    tail = limit // 5
    head = _mask(text[:window], truncated=True)[:limit - tail]
    line_start = text.rfind("\n", len(text) - window, len(text) - tail)
    shown = _mask(text[line_start + 1:])[-tail:] if tail and line_start != -1 else ""
    cut = len(text) - len(head) - len(shown)
    return f"{head} … [{cut} chars cut]" + (f" … {shown}" if shown else "")


def cap(text: str, limit: int | None = DEFAULT_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters: the head (where the error says what failed) and
    the tail (where it says what to do), with ``… [N chars cut] …`` between them."""
    if limit is None or len(text) <= limit:
        return text
    tail = limit // 5
    head = limit - tail
    return f"{text[:head]} … [{len(text) - head - tail} chars cut]" + (f" … {text[len(text) - tail:]}" if tail else "")


def _mask(text: str, truncated: bool = False) -> str:
    """All masks over ``text``; ``truncated`` when ``text`` is the head of something longer, so a
    URL or line running into its end is masked to the end rather than trusted."""
    text = _mask_userinfo(text, truncated)
    text = strip_sql_detail(text)
    return _SECRET_PARAM.sub(_mask_param, text) if "=" in text or ":" in text else text


def strip_sql_detail(text: str) -> str:
    """SQL error text without the lines that quote the data being written.

    PostgreSQL's ``CONTEXT:`` lines quote the offending value (``JSON data, line 1: {"ssn":…``)
    and the bound parameters; ``DETAIL:`` lines name key values (``Key (email)=(bob@…)``) or the
    whole failing row. SQLAlchemy's ``[parameters: …]`` and MySQL's ``Duplicate entry '…'`` do
    the same, and so does pymongo (``'op': {…the document…}``, ``dup key: {…}``). Those values
    are replaced by ``…``; the reason itself is kept.
    """
    if "CONTEXT:" in text or "parameter $" in text:
        text = _SQL_CONTEXT.sub("", text)
    if "[parameters: " in text:
        text = _SQL_PARAMETERS.sub("", text)
    if "DETAIL:" in text:
        text = _SQL_DETAIL.sub(_detail, text)
    text = _MONGO_OP.sub(lambda m: f"{m['lead']}{{…}} [document cut]", text)
    text = _MONGO_KEY_VALUE.sub(lambda m: f"{m['lead']}{{…}}", text)
    return _SQL_QUOTED_VALUE.sub(lambda m: f"{m['lead']}'…'", text)


def scheme_of(url: str) -> str:
    """The scheme of ``url``, lowercased (``postgresql+psycopg`` for SQLAlchemy-style URLs)."""
    return urlsplit(url).scheme.lower()


def _mask_param(m: re.Match[str]) -> str:
    value = m["value"]
    quote = value[0] if value[0] in "'\"" else ""
    return f"{m['name']}{quote}***{quote if quote and len(value) > 1 and value[-1] == quote else ''}"


def _detail(m: re.Match[str]) -> str:
    detail = m["text"]
    key = _SQL_KEY.search(detail)
    if key:  # unique/foreign-key violations: the columns are useful, their values are data
        return f"{m['lead']}Key ({key['cols']})=(…) [values cut]"
    if any(c in detail for c in "()'\"=:{"):  # "Failing row contains (…)", quoted values
        return f"{m['lead']}[cut: it quotes the data]"
    return m[0]


def _mask_userinfo(text: str, truncated: bool = False) -> str:
    """Every ``scheme://user:password@`` in prose masked; one left-to-right pass.

    A URL in prose ends at whitespace or a quote; its userinfo ends at its last ``@``. A URL whose
    first word has a ``:`` but no ``@`` may have a password with a space or a quote in it
    (``app:Pa55 W0rd@host``): then the password runs to the next ``@`` on the same line, within
    a few hundred characters, unless what follows the ``:`` is a port. In a ``truncated`` text,
    a URL with a ``:`` that runs to its end without its ``@`` is masked to the end.
    """
    pieces: list[str] = []
    done = 0  # text[:done] is already in pieces
    n = len(text)
    i = text.find("://")
    while i != -1:
        start = i + 3
        m = _URL_END.search(text, start)
        end = m.start() if m else n
        resume = end
        at = text.rfind("@", start, end)
        if truncated and end == n:  # its last '@' may lie beyond the cut: all after a ':' is masked
            colon = text.find(":", start, n)
            if colon != -1:
                pieces.append(text[done:colon + 1])
                pieces.append("***")
                done = n
            break
        if at != -1:
            colon = text.find(":", start, at)
            if colon != -1:
                pieces.append(text[done:colon + 1])
                pieces.append("***")
                done = at
        else:
            slash = text.find("/", start, end)
            colon = text.find(":", start, end if slash == -1 else slash)  # a user name holds no '/'
            if (colon != -1 and colon + 1 < end and not text.startswith("[", start)
                    and not _PORT.match(text, colon + 1, end)):
                line_end = text.find("\n", end, end + _SPACE_WINDOW)
                stop = line_end if line_end != -1 else min(n, end + _SPACE_WINDOW)
                at = text.find("@", end, stop)
                if at == -1 and truncated and line_end == -1 and end + _SPACE_WINDOW >= n:
                    pieces.append(text[done:colon + 1])
                    pieces.append("***")
                    done = n
                    break
                if at != -1:
                    m = _URL_END.search(text, at)  # "p w@x@host": the last '@' of that word
                    word_end = m.start() if m else n
                    at = text.rfind("@", at, word_end)
                    pieces.append(text[done:colon + 1])
                    pieces.append("***")
                    done = at
                    resume = at
        i = text.find("://", resume)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)
