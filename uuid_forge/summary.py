"""One-line human summaries of write, replay and audit reports: what ``str(report)`` gives.

Why one line: it is what a cron mail, a log line or a chat alert shows first, so it says the
outcome before the details, with rounded figures and no Python reprs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .audit import AuditReport
    from .report import WriteReport

__all__ = ["audit_summary", "counts_text", "plural", "write_summary"]

_FINDINGS = ("missing", "orphan", "stale", "malformed")


def plural(n: int, word: str) -> str:
    """``1 entity``, ``2 entities``, ``3 records``."""
    if n == 1:
        return f"1 {word}"
    return f"{n:,} {word[:-1]}ies" if word.endswith("y") else f"{n:,} {word}s"


def counts_text(counts: Mapping[str, Any]) -> str:
    """``{"cache": {"rewritten": 1}}`` as ``cache: 1 rewritten``; ``{"cache": 2}`` as ``cache: 2``."""
    parts = []
    for name, value in counts.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in value.items() if v) or "nothing"
        parts.append(f"{name}: {value}")
    return "; ".join(parts)


def _findings(stores: Mapping[str, Mapping[str, int]]) -> tuple[int, str]:
    """The number of findings and ``cache: 1 missing, 2 stale; files: 1 orphan``."""
    per_store = {n: {k: c[k] for k in _FINDINGS if c[k]} for n, c in stores.items()}
    per_store = {n: c for n, c in per_store.items() if c}
    return sum(sum(c.values()) for c in per_store.values()), counts_text(per_store)


def audit_summary(report: AuditReport) -> str:
    """``audit of user against db: consistent (1,000 records, 3 stores, 1.2s)``, or what was found,
    repaired and left, and which stores were not audited."""
    types = ", ".join(report.entity_types) or "nothing"
    entities = sum(p[3] for p in report.partition_times)
    found, where = _findings(report.stores)
    head = f"audit of {types} against {report.source}: "
    parts = []
    if report.id_config:
        parts.append(f"ID configuration differs for {', '.join(c['entity_type'] for c in report.id_config)}")
    if report.rechecked is not None:  # a repair was made
        left, left_where = _findings(report.rechecked)
        repaired = counts_text({n: dict(c) for n, c in report.repaired.items()}) or "nothing"
        parts.append(f"{plural(found, 'finding')} ({where}); repaired {repaired}; "
                     + ("consistent now" if not left and not report.repair_errors else
                        f"still inconsistent ({left_where or plural(len(report.repair_errors), 'repair error')})"))
    elif found:
        parts.append(f"{plural(found, 'finding')} ({where})")
    elif not report.id_config:
        parts.append("consistent" if not report.not_audited else "consistent where audited")
    head += "; ".join(parts)
    tail = [f"{entities:,} source records" if report.partition_times else "", f"{report.seconds:.1f}s"]
    text = head + f" ({', '.join(t for t in tail if t)})"
    if report.not_audited:
        text += "; NOT AUDITED: " + ", ".join(f"{n} ({_first_words(r)})" for n, r in report.not_audited.items())
    return text


def _first_words(reason: str, limit: int = 60) -> str:
    """A reason cut for a one-line summary (the full text is in --json)."""
    reason = reason.splitlines()[0] if reason else "no answer"
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def write_summary(report: WriteReport, title: str = "write") -> str:
    """``write: 1,000 entities in 0.4s; db: ok; cache: 3 in journal``."""
    parts = []
    for name, s in report.stores.items():
        extra = [f"{s.pending} in journal" if s.pending else "", plural(s.dead_letters, "dead letter")
                 if s.dead_letters else "", f"{s.not_written} not written" if s.not_written else ""]
        detail = ", ".join(e for e in extra if e)
        parts.append(f"{name}: {s.status}" + (f" ({detail})" if detail else ""))
    return f"{title}: {plural(report.entities, 'entity')} in {report.seconds:.1f}s; " + "; ".join(parts)
