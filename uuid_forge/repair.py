"""Repair safety: findings re-checked before acting, orphans proven before deletion, a guard
against mass deletion, and the plan a dry run shows.

An audit takes time, and writers keep writing meanwhile: a record written to the source after
the source was scanned, but to a store before that store was scanned, looks like an orphan. So
nothing the audit found is acted on as found:

* every finding is re-read from the source and the store just before repair, and dropped when
  the two now agree (a writer finished what the audit caught half done);
* an orphan is re-read from the source right before it is deleted, and only those still absent
  go; after the deletion the source is read once more for those IDs, and any that appeared
  meanwhile (a writer that wrote the source, then this store, between the two reads) is
  rewritten into the store from the source at once, so an acknowledged write is never lost;
* rewritten records are read back from both sides and rewritten again (from the source's
  current record) when a writer's newer version landed in the source meanwhile;
* a guard refuses the whole repair, before anything is changed, when the source holds none of a
  type a store holds (an empty or wrong source, a ``table_prefix`` typo), or when the deletions
  in one store exceed a limit: ``max_delete`` records, or a percentage of the source's count
  for that type (default 10%).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .contract import DELETE, READ, chunked
from .errors import ConfigError, RepairRefusedError, UUIDForgeError
from .record import UNREADABLE, Record, data_fingerprint, fingerprint_of
from .view import FieldView

if TYPE_CHECKING:
    from .audit import AuditReport, Finding
    from .forge import Forge

DEFAULT_MAX_DELETE = "10%"
REWRITE_KINDS = ("missing", "stale", "malformed")
READ_BATCH = 500
SETTLE_ROUNDS = 3

__all__ = ["DEFAULT_MAX_DELETE", "DeleteLimit", "PlanRow", "RepairPlan", "build_plan", "delete_proven", "recheck",
           "settle", "source_is_empty"]


@dataclass(frozen=True)
class DeleteLimit:
    """How many orphans one repair may delete from one store, per entity type.

    ``count`` is an absolute number (an explicit override: it also allows deleting from a type the
    source holds none of); ``percent`` is relative to the source's record count for that type, so
    it allows nothing when the source is empty.
    """

    count: int | None = None
    percent: float | None = None

    @classmethod
    def parse(cls, value: DeleteLimit | int | str | None) -> DeleteLimit:
        """``None`` (the default, 10%), an int, ``"N"`` or ``"P%"`` (0 < P <= 100)."""
        if isinstance(value, DeleteLimit):
            return value
        if value is None:
            value = DEFAULT_MAX_DELETE
        if isinstance(value, bool):
            raise ConfigError(f"max_delete {value!r}: give a number of records (500) or a percentage (10%)")
        if isinstance(value, int):
            if value < 0:
                raise ConfigError(f"max_delete {value}: must be 0 or more")
            return cls(count=value)
        text = str(value).strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if not 0 <= percent <= 100 or math.isnan(percent):
                    raise ValueError
                return cls(percent=percent)
            count = int(text)
            if count < 0:
                raise ValueError
            return cls(count=count)
        except ValueError:
            raise ConfigError(f"--max-delete {text!r}: give a number of records (500) or a percentage of the "
                              "source's records of that type from 0% to 100% (10%)") from None

    def limit(self, source_count: int | None) -> int | None:
        """The most deletions allowed for a type the source holds ``source_count`` records of."""
        if self.count is not None:
            return self.count
        if source_count is None:
            return None  # the source cannot count: only an absolute limit allows deleting
        return min(source_count, math.ceil(source_count * (self.percent or 0.0) / 100 - 1e-9))

    def __str__(self) -> str:
        return str(self.count) if self.count is not None else f"{self.percent:g}%"


@dataclass
class PlanRow:
    """What a repair does (or would do) to one entity type in one store."""

    store: str
    entity_type: str
    counts: Counter[str] = field(default_factory=Counter)  # findings by class
    delete: int = 0  # orphans to delete (0 without delete_orphans)
    source_count: int | None = None
    limit: int | None = None
    refused: str | None = None

    @property
    def rewrite(self) -> int:
        return sum(self.counts[k] for k in REWRITE_KINDS)

    @property
    def keep(self) -> int:
        return self.counts["orphan"] - self.delete

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "entity_type": self.entity_type, "rewrite": self.rewrite,
                **{k: self.counts[k] for k in (*REWRITE_KINDS, "orphan")}, "delete": self.delete,
                "keep": self.keep, "source_records": self.source_count, "delete_limit": self.limit,
                "refused": self.refused}


@dataclass
class RepairPlan:
    """Every (store, entity type) the repair touches, and the guard's verdict on deletions."""

    source: str
    delete_orphans: bool
    max_delete: str
    rows: list[PlanRow] = field(default_factory=list)
    rechecked: bool = False  # True once the findings were re-read from source and stores

    @property
    def refused(self) -> list[PlanRow]:
        return [r for r in self.rows if r.refused]

    def message(self) -> str:
        """One line: what was refused, how many, why, and how to override."""
        rows = self.refused
        where = ", ".join(f"{r.delete} from {r.store}/{r.entity_type}" for r in rows)
        reasons = "; ".join(dict.fromkeys(r.refused or "" for r in rows))
        need = max(r.delete for r in rows)
        return (f"repair refused: --delete-orphans would delete {sum(r.delete for r in rows)} record(s) ({where}), "
                f"but {reasons}; nothing was changed. If the source is right, allow it with --max-delete {need} "
                f"(API: max_delete={need})")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "delete_orphans": self.delete_orphans, "max_delete": self.max_delete,
                "rechecked": self.rechecked, "refused": bool(self.refused),
                "message": self.message() if self.refused else None,
                "rows": [r.to_dict() for r in self.rows],
                "totals": {"rewrite": sum(r.rewrite for r in self.rows), "delete": sum(r.delete for r in self.rows),
                           "keep": sum(r.keep for r in self.rows)}}


def source_count(forge: Forge, entity_type: str, fraction: float = 1.0) -> int | None:
    """The source's record count for a type (scaled to the audited partition), None if it cannot say."""
    try:
        return round(forge.source.adapter.count(entity_type) * fraction)
    except UUIDForgeError:
        return None


def source_is_empty(forge: Forge, entity_type: str) -> bool:
    """True when the source holds no record of ``entity_type`` (reads one record at most)."""
    try:
        scan = forge.source.adapter.scan(entity_type)
        try:
            return next(scan, None) is None
        finally:
            scan.close()  # type: ignore[attr-defined]
    except UUIDForgeError:
        return False  # it cannot say: the plan's count decides


def build_plan(forge: Forge, findings: Iterable[Finding], delete_orphans: bool, max_delete: Any,
               counts: dict[str, int | None] | None = None, fraction: float = 1.0) -> RepairPlan:
    """Counts per store and type from ``findings`` and the guard's verdict on their deletions."""
    limit = DeleteLimit.parse(max_delete)
    plan = RepairPlan(forge.source.name, delete_orphans, str(limit))
    rows: dict[tuple[str, str], PlanRow] = {}
    for f in findings:
        if f.store == forge.source.name:
            continue
        row = rows.get((f.store, f.entity_type))
        if row is None:
            row = rows[(f.store, f.entity_type)] = PlanRow(f.store, f.entity_type)
        row.counts[f.kind] += 1
    known = dict(counts or {})
    handles = {h.name: h for h in forge.stores}
    for row in rows.values():
        if row.entity_type not in known:
            known[row.entity_type] = source_count(forge, row.entity_type, fraction)
        row.source_count = known[row.entity_type]
        if not (delete_orphans and row.counts["orphan"]):
            continue
        if DELETE not in handles[row.store].adapter.capabilities:
            continue  # a message log keeps its history: nothing to delete
        row.delete = row.counts["orphan"]
        row.limit = limit.limit(row.source_count)
        if row.limit is not None and row.delete <= row.limit:
            continue
        if row.source_count == 0:
            row.refused = (f"the source {forge.source.name!r} holds no {row.entity_type!r} records "
                           "(an empty or wrong source URL, or a table_prefix typo?)")
        elif row.source_count is None:
            row.refused = f"the source {forge.source.name!r} cannot count its {row.entity_type!r} records"
        else:
            row.refused = (f"the limit is {row.limit} ({limit} of the source's {row.source_count} "
                           f"{row.entity_type!r} records)")
    plan.rows = sorted(rows.values(), key=lambda r: (r.store, r.entity_type))
    return plan


def _data_fp(view: FieldView, record: Record | None) -> str | None:
    """The fingerprint of what was read, computed from the data (never a stored fingerprint), as
    a store of ``view`` is compared (its projection, uuid_forge.view)."""
    if record is None:
        return None
    if record.unreadable:
        return UNREADABLE
    if view.full:
        return fingerprint_of(record.data_json)
    return data_fingerprint(view.apply(record.data)) or UNREADABLE


def recheck(forge: Forge, findings: list[Finding]) -> list[Finding]:
    """The findings still true now: each missing, stale or orphan finding re-read from the source
    and its store by ID, and reclassified (or dropped when both sides agree)."""
    from .audit import Finding

    kept: list[Finding] = []
    groups: dict[tuple[str, str], list[Finding]] = {}
    handles = {h.name: h for h in forge.stores}
    for f in findings:
        # an orphan in the wrong form (raw set) is not found by ID in its store: it is proven
        # against the source right before its deletion instead (delete_proven_raw)
        if f.store != forge.source.name and f.kind in ("missing", "stale", "orphan") and f.raw is None \
                and READ in handles[f.store].adapter.capabilities:
            groups.setdefault((f.store, f.entity_type), []).append(f)
        else:
            kept.append(f)
    for (store, entity_type), group in groups.items():
        adapter = handles[store].adapter
        for batch in chunked(group, READ_BATCH):
            ids = [uuid.UUID(f.id) for f in batch]
            in_source = forge.source.adapter.get_many(entity_type, ids)
            in_store = adapter.get_many(entity_type, ids)
            for ident in ids:
                src, got = in_source.get(ident), in_store.get(ident)
                if src is None and got is None:
                    continue  # gone from both: nothing to do
                if src is None:
                    kept.append(Finding(store, entity_type, str(ident), "orphan", "not in the source (re-checked)"))
                elif got is None:
                    kept.append(Finding(store, entity_type, str(ident), "missing",
                                        "in the source, not in this store (re-checked)"))
                elif _data_fp(adapter.view, src) != _data_fp(adapter.view, got):
                    kept.append(Finding(store, entity_type, str(ident), "stale", "data differs (re-checked)"))
    return kept


def delete_proven(forge: Forge, adapter: Any, entity_type: str, ids: list[uuid.UUID], done: Counter[str]) -> int:
    """Delete the orphans among ``ids`` that the source still lacks, read right before; then put
    back from the source any that a writer wrote meanwhile. Returns how many were deleted."""
    source = forge.source.adapter
    deleted = 0
    for batch in chunked(ids, READ_BATCH):
        present = source.get_many(entity_type, batch)
        absent = [i for i in batch if i not in present]
        if present:  # written meanwhile: no longer an orphan; the store gets the source's version
            done["orphans_kept_now_in_source"] += len(present)
            _add(done, "rewritten_again", settle(forge, adapter, entity_type, list(present)))
        if not absent:
            continue
        deleted += adapter.delete_many(entity_type, absent)
        appeared = source.get_many(entity_type, absent)  # a writer between our read and our delete
        appeared = {i: r for i, r in appeared.items() if not r.unreadable}  # never copy an unreadable entry
        if appeared:
            adapter.put_many(appeared.values())
            done["restored_after_delete"] += len(appeared)
            _add(done, "rewritten_again", settle(forge, adapter, entity_type, list(appeared)))
    return deleted


def delete_proven_raw(forge: Forge, adapter: Any, entity_type: str, pairs: list[tuple[uuid.UUID, str]]) -> int:
    """Delete orphans stored in the wrong form, by their raw names, once the source is read right
    before and still lacks their IDs. Returns how many were deleted."""
    deleted = 0
    for batch in chunked(pairs, READ_BATCH):
        present = forge.source.adapter.get_many(entity_type, [i for i, _ in batch])
        raws = [raw for i, raw in batch if i not in present]
        if raws:
            deleted += adapter.delete_raw(entity_type, raws)
    return deleted


def settle(forge: Forge, adapter: Any, entity_type: str, ids: list[uuid.UUID]) -> int:
    """Read ``ids`` back from the source and the store; rewrite from the source's current record
    any the store holds differently (a writer's newer version landed while we wrote an older one).
    Returns how many records were rewritten again."""
    if READ not in adapter.capabilities or not ids:
        return 0
    again = 0
    for batch in chunked(ids, READ_BATCH):
        todo = batch
        for _ in range(SETTLE_ROUNDS):
            in_source = forge.source.adapter.get_many(entity_type, todo)
            in_store = adapter.get_many(entity_type, todo)
            # an unreadable source entry is never copied (the rewrite step names it)
            behind = [r for i, r in in_source.items()
                      if not r.unreadable and _data_fp(adapter.view, r) != _data_fp(adapter.view, in_store.get(i))]
            if not behind:
                break
            adapter.put_many(behind)
            again += len(behind)
            todo = [r.id for r in behind]
    return again


def _add(done: Counter[str], label: str, n: int) -> None:
    if n:
        done[label] += n


def refuse_if_guarded(plan: RepairPlan) -> None:
    if plan.refused:
        raise RepairRefusedError(plan.message(), plan=plan)


def source_warnings(forge: Forge, report: AuditReport, empty: set[str]) -> list[str]:
    """Types a store holds but the source holds none of: loud, whether or not orphans are deleted."""
    held: dict[str, Counter[str]] = {}
    for f in report.findings:
        if f.kind == "orphan" and f.store != forge.source.name and f.entity_type in empty:
            held.setdefault(f.entity_type, Counter())[f.store] += 1
    return [f"the source {forge.source.name!r} holds no {et!r} records, but "
            + ", ".join(f"{s} holds {n}" for s, n in sorted(by_store.items()))
            + ": is the source URL (or its table_prefix) right? Their deletion is refused unless "
              "--max-delete allows it" for et, by_store in held.items()]
