"""Other applications' names and data, masked the one way in every output format.

An audit lists entries it did not write (foreign and unproven ones: another application's Redis
key such as ``session:john@example.com``, a file name, a document ``_id``) and quotes raw keys in
its details. The HTML report, the text output, ``--json`` and ``--output`` all show them through
:class:`Masker`, so no format leaks what another shows as a shape. ``--show-values`` shows them
(URL credentials stay masked in any case). The IDs uuid-forge wrote are shown: an ID is not data.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from .ownership import HOW_TO_PROVE
from .urls import mask_text

if TYPE_CHECKING:
    from .report import AuditReport, Finding

__all__ = ["Masker", "mask_name", "mask_value", "masked_report"]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_WORD = re.compile(r"\w+")
#: a quoted value: the quote not inside a word, so an apostrophe ("type's", "application's") never
#: opens or closes one
_QUOTED = re.compile(r"(?<!\w)'[^']*'(?!\w)|(?<!\w)\"[^\"]*\"(?!\w)")
#: uuid-forge's own advice in a finding's detail: fixed text, never a value, so never masked
ADVICE = (HOW_TO_PROVE,)


def _shape(text: str) -> str:
    return _WORD.sub(lambda w: w.group()[0] + "•" * (len(w.group()) - 1), text)


def mask_value(text: str) -> str:
    """The shape of ``text`` without its content: each word keeps its first character, the rest
    becomes ``•``; separators and UUIDs (IDs, not data) stay. ``"session:john@example.com"`` ->
    ``"s••••••:j•••@e••••••.c••"``."""
    out: list[str] = []
    last = 0
    for m in _UUID.finditer(text):
        out.append(_shape(text[last:m.start()]))
        out.append(m.group())
        last = m.end()
    out.append(_shape(text[last:]))
    return "".join(out)


def mask_name(text: str) -> str:
    """Another application's entry name with nothing of it kept but its shape, a UUID-looking name
    included (a version-4 session ID is theirs, not an ID of ours): ``"session:john@example.com"``
    -> ``"s••••••:j•••@e••••••.c••"``. Findings of entries not proven ours hold their name so."""
    return _shape(text)


class Masker:
    """How one output shows names and details: masked, or with ``show_values`` as they are (URL
    credentials masked either way)."""

    def __init__(self, show_values: bool = False) -> None:
        self.show = show_values

    def raw(self, text: str | None) -> str:
        """A raw key, path or ``_id`` (another application's name, or ours in a wrong form)."""
        if text is None:
            return ""
        return mask_text(text) if self.show else mask_value(text)

    def ident(self, text: str) -> str:
        """Our IDs are shown; anything else in the ID column (a foreign name, a raw key) is a raw value."""
        return text if _UUID.fullmatch(text) else self.raw(text)

    def detail(self, text: str, raw: str | None = None) -> str:
        """A finding's detail: the raw name in it and any quoted text keep only their shape; our own
        advice (:data:`ADVICE`) stays readable."""
        text = mask_text(text)
        if self.show:
            return text
        advice = ""
        for fixed in ADVICE:
            at = text.find(fixed)
            if at >= 0:
                text, advice = text[:at], text[at:]
                break
        if raw:
            text = text.replace(raw, mask_value(raw))
        return _QUOTED.sub(lambda m: m.group()[0] + mask_value(m.group()[1:-1]) + m.group()[-1], text) + advice

    def sample(self, text: str) -> str:
        """A foreign sample is ``"entity_type: raw"``: the type is ours, the name is someone else's."""
        head, sep, rest = text.partition(": ")
        return f"{head}{sep}{self.raw(rest)}" if sep else self.raw(text)

    def finding(self, f: Finding) -> Finding:
        """``f`` as an output shows it: ID, detail and raw name masked (values only with show_values)."""
        return dataclasses.replace(f, id=self.ident(f.id), detail=self.detail(f.detail, f.raw),
                                   raw=None if f.raw is None else self.raw(f.raw),
                                   values=f.values if self.show else None, key=self.key(f.key))

    def key(self, key: Any) -> Any:
        """A finding's key fields (uuid_forge.entitynames): the names shown, each value's shape only
        unless show_values (a key is often personal data: an e-mail, a national number)."""
        if key is None or self.show:
            return key
        if isinstance(key, dict):
            return {k: mask_value(str(v)) for k, v in key.items()}
        if isinstance(key, list):
            return [mask_value(str(v)) for v in key]
        return mask_value(str(key))

    def key_text(self, key: Any) -> str:
        """``email=a•••@e••••••.c••`` for the text and HTML outputs ("" without a key)."""
        shown = self.key(key)
        if shown is None:
            return ""
        if isinstance(shown, dict):
            return ", ".join(f"{k}={v}" for k, v in shown.items())
        return ", ".join(map(str, shown)) if isinstance(shown, list) else str(shown)


def masked_report(report: AuditReport, show_values: bool = False) -> AuditReport:
    """A copy of ``report`` for output (text, ``--json``, ``--output``): every finding and foreign
    sample masked as the HTML report masks them, warnings and errors without URL credentials. The
    report itself is left as it is (repair and metrics use it)."""
    m = Masker(show_values)
    return dataclasses.replace(
        report, findings=[m.finding(f) for f in report.findings],
        foreign_samples={store: [m.sample(s) for s in samples] for store, samples in report.foreign_samples.items()},
        warnings=[mask_text(w) for w in report.warnings], repair_errors=[mask_text(e) for e in report.repair_errors],
        stray_types=[{**s, "samples": [m.raw(x) for x in s["samples"]]} for s in report.stray_types])
