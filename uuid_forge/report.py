"""What a run found and did: write and replay results per store, audit findings and reports, and
the one-line summaries ``str(report)`` gives.

One module for the three, so that reports and their summaries are read and changed together.
Why one line for a summary: it is what a cron mail, a log line or a chat alert shows first, so
it says the outcome before the details, with rounded figures and no Python reprs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

CLASSES = ("ok", "missing", "orphan", "stale", "malformed", "foreign", "unproven", "deleted", "stray_type")
#: classes that are not inconsistencies: foreign entries are not ours to judge
NOT_FINDINGS = ("ok", "foreign")
FOREIGN_SAMPLES = 10  # raw names kept per store to show what the foreign entries are
#: findings kept per store of entries that look like ours but cannot be proven ours (uuid_forge.ownership):
#: counted, a few shown with their names masked, never acted on
UNPROVEN_SAMPLES = 10

__all__ = ["CLASSES", "FOREIGN_SAMPLES", "NOT_FINDINGS", "UNPROVEN_SAMPLES", "AuditReport", "Finding", "StoreResult", "WriteReport",
           "audit_summary", "counts_text", "plural", "write_summary"]


# -- write and replay ------------------------------------------------------------------------------
@dataclass
class StoreResult:
    """One store's part of a write. ``pending`` records stay in the journal for ``replay``."""

    name: str
    role: str  # source | required | optional
    url: str  # masked
    written: int = 0
    pending: int = 0
    attempts: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: records this store refused for good (dead letters in the journal), and their IDs (a few)
    dead_letters: int = 0
    dead_letter_ids: list[str] = field(default_factory=list)
    #: records not written and not journaled: the source refused them, the caller gets WriteError
    not_written: int = 0
    #: records this store was not asked to write because the source refused them (dead letters
    #: of the source): owed to no store, and not this store's failure
    skipped: int = 0
    #: why this store was not attempted for ``not_written`` or ``skipped`` records ("the source db
    #: failed"); empty for the source itself. A store that was never tried is not a store that failed.
    not_attempted: str = ""
    #: a delete: entries removed, and entries left because they could not be proven ours (a few IDs,
    #: and the reasons, which never hold data)
    deleted: int = 0
    unproven: int = 0
    unproven_ids: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """ok, journaled (optional, kept for replay), failed, or not attempted (the source failed first)."""
        if self.not_attempted and not (self.written or self.pending or self.dead_letters):
            return "not attempted"
        if self.pending == 0 and self.dead_letters == 0 and self.not_written == 0:
            return "ok"
        if self.not_written:  # the source failed: nothing of that batch is kept, whatever the role
            return "failed"
        return "journaled" if self.role == "optional" else "failed"

    @property
    def status_text(self) -> str:
        """The status as the reports print it: ``not attempted (the source db failed)``, or ``ok (1
        not attempted: the source db failed)`` when earlier batches were written."""
        status = self.status
        if status == "not attempted":
            return f"{status} ({self.not_attempted})"
        left = self.not_written + self.skipped
        return f"{status} ({left} not attempted: {self.not_attempted})" if self.not_attempted and left else status

    def note_error(self, message: str) -> None:
        if message not in self.errors and len(self.errors) < 5:
            self.errors.append(message)


@dataclass
class WriteReport:
    """The outcome of ``Forge.write``/``write_many``/``replay``."""

    entities: int = 0
    stores: dict[str, StoreResult] = field(default_factory=dict)
    journal_seconds: float = 0.0
    seconds: float = 0.0
    kind: str = "write"  # or "replay", "delete": what the summary calls it
    #: records refused because their ID was deleted (a tombstone, uuid_forge.tombstones), and a few
    #: of them as "type ID" (never their data); ``write(..., recreate=True)`` writes them
    refused_deleted: int = 0
    refused_deleted_ids: list[str] = field(default_factory=list)
    dry_run: bool = False  # a delete's dry run: ``deleted``/``unproven`` say what it would do
    #: a delete: entities the source neither holds nor has a tombstone for (a typo, or never written):
    #: nothing deleted anywhere, no tombstone, no delete event; a few as "type ID". ``force=True``
    #: deletes them everywhere anyway (the source cleaned by hand while other stores still hold them)
    not_in_source: int = 0
    not_in_source_ids: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return write_summary(self, self.kind)

    @property
    def ok(self) -> bool:
        """True when every required store holds everything (optional ones may be journaled) and no
        record was refused as deleted."""
        return not self.refused_deleted and all(s.status not in ("failed", "not attempted")
                                                for s in self.stores.values())

    @property
    def complete(self) -> bool:
        """True when every store, optional ones too, holds everything."""
        return all(s.pending == 0 and s.dead_letters == 0 and s.not_written == 0 for s in self.stores.values())

    def to_dict(self) -> dict[str, Any]:
        return {"entities": self.entities, "kind": self.kind, "ok": self.ok, "complete": self.complete,
                "refused_deleted": self.refused_deleted, "refused_deleted_ids": self.refused_deleted_ids,
                "dry_run": self.dry_run, "not_in_source": self.not_in_source,
                "not_in_source_ids": self.not_in_source_ids,
                "seconds": round(self.seconds, 4), "journal_seconds": round(self.journal_seconds, 4),
                "stores": {n: {**asdict(s), "status": s.status, "status_text": s.status_text}
                           for n, s in self.stores.items()}}

    def summary(self) -> str:
        parts = [f"{n}: {s.status_text} ({s.written} written" + (f", {s.deleted} deleted" if s.deleted else "")
                 + (f", {s.unproven} left unproven" if s.unproven else "")
                 + (f", {s.pending} in journal" if s.pending else "")
                 + (f", {s.dead_letters} dead letter(s)" if s.dead_letters else "")
                 + (f", {s.not_written} not written" if s.not_written else "") + ")"
                 for n, s in self.stores.items()]
        return f"{self.entities} entities; " + "; ".join(parts)


# -- audits -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Finding:
    """One inconsistency: which store, which entity, which class, and why."""

    store: str
    entity_type: str
    id: str
    kind: str
    detail: str = ""
    raw: str | None = None  # for malformed: the key/_id/path exactly as stored
    #: for stale: the fields that differ (``address.city`` for nested ones), and with show_values
    #: their values, ``{field: {"store": ..., "source": ...}}`` (absent sides left out)
    fields: tuple[str, ...] = ()
    values: dict[str, dict[str, Any]] | None = None
    held: Any = field(default=None, compare=False, repr=False)  # scanned data of a store that cannot be read back
    #: the entity's key fields (``{"email": ...}``), read from the source or the store (uuid_forge.entitynames);
    #: every output masks them unless show_values
    key: Any = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"store": self.store, "entity_type": self.entity_type, "id": self.id, "class": self.kind,
                             "detail": self.detail, "raw": self.raw}
        if self.key is not None:
            d["key"] = self.key
        if self.kind == "stale":
            d["fields"] = list(self.fields)
            if self.values is not None:
                d["values"] = self.values
        return d


@dataclass
class AuditReport:
    """Counts per store and class, the findings, and what a repair did."""

    stores: dict[str, Counter[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    entity_types: list[str] = field(default_factory=list)
    source: str = ""
    partitions: int = 0
    seconds: float = 0.0
    truncated: int = 0
    repaired: dict[str, Counter[str]] = field(default_factory=dict)
    repair_errors: list[str] = field(default_factory=list)
    max_findings: int = 100_000
    id_config: list[dict[str, Any]] = field(default_factory=list)  # types whose ID configuration differs (idmarker)
    plan: Any = None  # the repair plan (uuid_forge.repair.RepairPlan), with --repair
    warnings: list[str] = field(default_factory=list)
    foreign_samples: dict[str, list[str]] = field(default_factory=dict)
    #: (entity type, partition "i/n", seconds, source records) per partition of a full audit
    partition_times: list[tuple[str, str, float, int]] = field(default_factory=list)
    #: optional stores that did not answer, so were left out: name -> reason (masked)
    not_audited: dict[str, str] = field(default_factory=dict)
    #: after a repair: the repaired IDs read again, per store and class (None: no repair was made)
    rechecked: dict[str, Counter[str]] | None = None
    #: entries of a type the source neither declares nor holds, one per store and type (uuid_forge.strays):
    #: ``{store, entity_type, count, samples (masked), message}``; never repaired
    stray_types: list[dict[str, Any]] = field(default_factory=list)
    #: per store compared by hashes (uuid_forge.rangehash): hashed_ranges and hashed_records settled by
    #: the stores' own aggregates, read_ranges and read_records compared record by record
    hashed: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        """Every store was audited and agrees with the source (after a repair, as the re-check found
        them). A store left out (``not_audited``) makes it False: a script reading only this flag
        must not take a partial audit for a clean one."""
        return self.consistent_but()

    def consistent_but(self, *kinds: str) -> bool:
        """:attr:`consistent`, with the finding classes ``kinds`` (``"unproven"``) not counted: what
        an audit whose ``[audit]`` settings acknowledge them exits 0 on."""
        counts = self.rechecked if self.rechecked is not None else self.stores
        return not self.not_audited and not self.id_config and not self.repair_errors and not self.stray_types \
            and all(c[k] == 0 for c in counts.values() for k in CLASSES if k not in NOT_FINDINGS and k not in kinds)

    def count(self, kind: str) -> int:
        """How many findings of class ``kind`` (after a repair, as the re-check found them)."""
        counts = self.rechecked if self.rechecked is not None else self.stores
        return sum(c[kind] for c in counts.values())

    @property
    def complete(self) -> bool:
        """Every configured store was audited (an optional store that was down was not)."""
        return not self.not_audited

    def __str__(self) -> str:
        return audit_summary(self)

    def add(self, finding: Finding) -> None:
        self.stores[finding.store][finding.kind] += 1
        if finding.kind == "foreign":  # counted, a few shown, never a finding to repair
            samples = self.foreign_samples.setdefault(finding.store, [])
            if len(samples) < FOREIGN_SAMPLES:
                raw = finding.raw or ""
                samples.append(f"{finding.entity_type}: {raw if len(raw) <= 100 else raw[:97] + '...'}")
            return
        if len(self.findings) < self.max_findings:
            self.findings.append(finding)
        else:
            self.truncated += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "consistent": self.consistent, "source": self.source, "entity_types": self.entity_types,
            "partitions": self.partitions, "seconds": round(self.seconds, 3),
            "stores": {n: {k: c[k] for k in CLASSES} for n, c in self.stores.items()},
            "findings": [f.to_dict() for f in self.findings], "findings_truncated": self.truncated,
            "repaired": {n: dict(c) for n, c in self.repaired.items()}, "repair_errors": self.repair_errors,
            "id_config": self.id_config,
            "plan": self.plan.to_dict() if self.plan is not None else None, "warnings": self.warnings,
            "foreign_samples": self.foreign_samples, "complete": self.complete, "not_audited": self.not_audited,
            "stray_types": self.stray_types,
            "rechecked": ({n: {k: c[k] for k in CLASSES} for n, c in self.rechecked.items()}
                          if self.rechecked is not None else None),
            "hashed": {n: {k: c[k] for k in HASHED} for n, c in self.hashed.items()},
        }


#: the counters of a store compared by hashes (AuditReport.hashed)
HASHED = ("hashed_ranges", "hashed_records", "read_ranges", "read_records")


# -- one-line summaries ----------------------------------------------------------------------------
_FINDINGS = ("missing", "orphan", "stale", "malformed", "unproven", "deleted")


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
    if report.stray_types:
        parts.append(plural(len(report.stray_types), "stray type") + " ("
                     + "; ".join(f"{s['store']}: {plural(s['count'], 'entry')} of {s['entity_type']!r}"
                                 for s in report.stray_types) + "; see --entity)")
    if report.rechecked is not None and (found or report.repair_errors):  # a repair was made
        left, left_where = _findings(report.rechecked)
        repaired = counts_text({n: dict(c) for n, c in report.repaired.items()}) or "nothing"
        if not left and not report.repair_errors:
            parts.append(f"{plural(found, 'finding')} fixed ({where}; repaired {repaired}), now consistent")
        else:
            parts.append(f"{plural(found, 'finding')} ({where}); repaired {repaired}; still inconsistent "
                         f"({left_where or plural(len(report.repair_errors), 'repair error')})")
    elif found:
        parts.append(f"{plural(found, 'finding')} ({where})")
    elif not report.id_config and not report.stray_types:
        parts.append("consistent" if not report.not_audited else "consistent where audited")
    head += "; ".join(parts)
    tail = [f"{entities:,} source records" if report.partition_times else "", hashed_text(report),
            f"{report.seconds:.1f}s"]
    text = head + f" ({', '.join(t for t in tail if t)})"
    if report.not_audited:
        text += "; NOT AUDITED: " + ", ".join(f"{n} ({_first_words(r)})" for n, r in report.not_audited.items())
    return text


def hashed_text(report: AuditReport) -> str:
    """``records settled by hashes: db 99,800, read 200`` (stores compared by uuid_forge.rangehash)."""
    if not report.hashed:
        return ""
    return "by hashes: " + ", ".join(f"{n} {c['hashed_records']:,} settled, {c['read_records']:,} read"
                                     for n, c in report.hashed.items())


def _first_words(reason: str, limit: int = 60) -> str:
    """A reason cut for a one-line summary (the full text is in --json)."""
    reason = reason.splitlines()[0] if reason else "no answer"
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


def write_summary(report: WriteReport, title: str = "write") -> str:
    """``write: 1,000 entities in 0.4s; db: ok; cache: 3 in journal``."""
    parts = []
    for name, s in report.stores.items():
        extra = [f"{s.deleted} deleted" if s.deleted or title == "delete" else "",
                 f"{s.unproven} left unproven" if s.unproven else "",
                 f"{s.pending} in journal" if s.pending else "", plural(s.dead_letters, "dead letter")
                 if s.dead_letters else "", f"{s.not_written} not written" if s.not_written else ""]
        detail = ", ".join(e for e in extra if e)
        parts.append(f"{name}: {s.status_text}" + (f" ({detail})" if detail else ""))
    refused = (f"; {report.refused_deleted} refused (deleted: {', '.join(report.refused_deleted_ids)}"
               f"{' and more' if report.refused_deleted > len(report.refused_deleted_ids) else ''}; "
               "--recreate writes them)") if report.refused_deleted else ""
    head = f"{title} (dry run)" if report.dry_run else title
    absent = (f"; {report.not_in_source} not in the source (nothing deleted; no tombstone: "
              f"{', '.join(report.not_in_source_ids)}{' and more' if report.not_in_source > len(report.not_in_source_ids) else ''})"
              if report.not_in_source else "")
    return f"{head}: {plural(report.entities, 'entity')} in {report.seconds:.1f}s; " + "; ".join(parts) + refused + absent
