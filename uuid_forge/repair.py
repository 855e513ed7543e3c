"""Repair safety: findings re-checked before acting, orphans proven before deletion, a guard
against mass deletion, and the plan a dry run shows.

An audit takes time, and writers keep writing meanwhile: a record written to the source after
the source was scanned, but to a store before that store was scanned, looks like an orphan. So
nothing the audit found is acted on as found:

* every finding is re-read from the source and the store just before repair, and dropped when
  the two now agree (a writer finished what the audit caught half done);
* an orphan is re-read from the source and from its store right before it is deleted, and only
  those the source still lacks and that are proven ours (uuid_forge.ownership: their key fields
  rebuild their ID, or they carry our mark) go: nothing else is ever deleted, whatever a finding
  or a task says; a source record is proven an entity of its type before it is copied; after the deletion the source is read once more for those IDs, and any that appeared
  meanwhile (a writer that wrote the source, then this store, between the two reads) is
  rewritten into the store from the source at once, so an acknowledged write is never lost;
* rewritten records are read back from both sides and rewritten again (from the source's
  current record) when a writer's newer version landed in the source meanwhile;
* a guard refuses the whole repair, before anything is changed, when the source holds none of a
  type a store holds (an empty or wrong source, a ``prefix`` typo), or when the deletions
  in one store exceed a limit: ``max_delete`` records, or a percentage of the source's count
  for that type (default 10%).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .compare import point_pass
from .contract import DELETE, READ, Adapter, chunked
from .errors import ConfigError, RepairRefusedError, StoreError, StoreRejectedError, UUIDForgeError
from .handles import Stores
from .ownership import Prover
from .record import UNREADABLE, Record, data_fingerprint, fingerprint_of
from .report import CLASSES, NOT_FINDINGS, AuditReport, Finding
from .tombstones import held_by
from .view import FieldView
from .writes import attempt_once, put_isolating

DEFAULT_MAX_DELETE = "10%"
#: why repair keeps a message log's orphans (the plan's keep_reason; the findings say it per ID)
LOG_KEEPS = ("a message log is append-only: repair cannot delete an entity's history, and publishes no delete "
             "event for an orphan, which every consumer would act on and which it cannot prove ours, having no "
             "read by ID; if the entity was deleted, publish its delete event: uuid-forge delete --entity {type} "
             "--id ID --force, for each ID the findings name (--force: the source no longer holds it)")
REWRITE_KINDS = ("missing", "stale", "malformed")
READ_BATCH = 500
SETTLE_ROUNDS = 3

__all__ = ["DEFAULT_MAX_DELETE", "DeleteLimit", "PlanRow", "RepairPlan", "as_uuid", "build_plan", "delete_proven",
           "delete_proven_raw", "recheck", "recheck_repaired", "refuse_if_guarded", "repair", "settle", "source_is_empty",
           "source_warnings"]


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
    keep_reason: str | None = None  # why orphans are kept even with delete_orphans (a message log)

    @property
    def rewrite(self) -> int:
        return sum(self.counts[k] for k in REWRITE_KINDS)

    @property
    def keep(self) -> int:
        return max(0, self.counts["orphan"] + self.counts["deleted"] - self.delete)

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "entity_type": self.entity_type, "rewrite": self.rewrite,
                **{k: self.counts[k] for k in (*REWRITE_KINDS, "orphan", "deleted")}, "delete": self.delete,
                "keep": self.keep, "keep_reason": self.keep_reason, "source_records": self.source_count,
                "delete_limit": self.limit, "refused": self.refused}


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
        return (f"repair refused: it would delete {sum(r.delete for r in rows)} record(s) ({where}), "
                f"but {reasons}; nothing was changed. If the source is right, allow it with --max-delete {need} "
                f"(API: max_delete={need})")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "delete_orphans": self.delete_orphans, "max_delete": self.max_delete,
                "rechecked": self.rechecked, "refused": bool(self.refused),
                "message": self.message() if self.refused else None,
                "rows": [r.to_dict() for r in self.rows],
                "totals": {"rewrite": sum(r.rewrite for r in self.rows), "delete": sum(r.delete for r in self.rows),
                           "keep": sum(r.keep for r in self.rows)}}


def source_count(stores: Stores, entity_type: str, fraction: float = 1.0) -> int | None:
    """The source's record count for a type (scaled to the audited partition), None if it cannot say."""
    try:
        return round(stores.source.adapter.count(entity_type) * fraction)
    except UUIDForgeError:
        return None


def source_is_empty(stores: Stores, entity_type: str) -> bool:
    """True when the source holds no record of ``entity_type`` (reads one record at most)."""
    try:
        scan = stores.source.adapter.scan(entity_type)
        try:
            return next(scan, None) is None
        finally:
            scan.close()  # type: ignore[attr-defined]
    except UUIDForgeError:
        return False  # it cannot say: the plan's count decides


def build_plan(stores: Stores, findings: Iterable[Finding], delete_orphans: bool, max_delete: Any,
               counts: dict[str, int | None] | None = None, fraction: float = 1.0) -> RepairPlan:
    """Counts per store and type from ``findings`` and the guard's verdict on their deletions."""
    limit = DeleteLimit.parse(max_delete)
    plan = RepairPlan(stores.source.name, delete_orphans, str(limit))
    rows: dict[tuple[str, str], PlanRow] = {}
    for f in findings:
        if f.store == stores.source.name:
            continue
        row = rows.get((f.store, f.entity_type))
        if row is None:
            row = rows[(f.store, f.entity_type)] = PlanRow(f.store, f.entity_type)
        row.counts[f.kind] += 1
    known = dict(counts or {})
    handles = {h.name: h for h in stores.stores}
    for row in rows.values():
        if row.entity_type not in known:
            known[row.entity_type] = source_count(stores, row.entity_type, fraction)
        row.source_count = known[row.entity_type]
        adapter = handles[row.store].adapter
        if row.counts["orphan"] and adapter.append_only:  # whatever --delete-orphans says: a log keeps them
            row.keep_reason = LOG_KEEPS.format(type=row.entity_type)
        # deleted entities go whenever a repair runs (the user asked for their deletion); orphans only when
        # asked, and never from a log (it cannot be read back to prove them ours)
        orphans = row.counts["orphan"] if delete_orphans and not adapter.append_only else 0
        wanted = orphans + row.counts["deleted"]
        if not wanted or DELETE not in adapter.capabilities:
            continue  # nothing to delete, or a store that cannot delete
        row.delete = wanted
        row.limit = limit.limit(row.source_count)
        if row.limit is not None and row.delete <= row.limit:
            continue
        if row.source_count == 0:
            row.refused = (f"the source {stores.source.name!r} holds no {row.entity_type!r} records "
                           "(an empty or wrong source URL, or a prefix typo?)")
        elif row.source_count is None:
            row.refused = f"the source {stores.source.name!r} cannot count its {row.entity_type!r} records"
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


def recheck(stores: Stores, findings: list[Finding]) -> list[Finding]:
    """The findings still true now: each missing, stale or orphan finding re-read from the source
    and its store by ID, and reclassified (or dropped when both sides agree)."""
    kept: list[Finding] = []
    groups: dict[tuple[str, str], list[Finding]] = {}
    handles = {h.name: h for h in stores.stores}
    for f in findings:
        # an orphan in the wrong form (raw set) is not found by ID in its store: it is proven
        # against the source right before its deletion instead (delete_proven_raw)
        if f.store != stores.source.name and f.kind in ("missing", "stale", "orphan", "deleted") and f.raw is None \
                and READ in handles[f.store].adapter.capabilities:
            groups.setdefault((f.store, f.entity_type), []).append(f)
        else:
            kept.append(f)
    for (store, entity_type), group in groups.items():
        adapter = handles[store].adapter
        for batch in chunked(group, READ_BATCH):
            ids = [uuid.UUID(f.id) for f in batch]
            in_source = stores.source.adapter.get_many(entity_type, ids)
            in_store = adapter.get_many(entity_type, ids)
            stones = held_by(stores.source.adapter, entity_type, [i for i in ids if i not in in_source])
            for ident in ids:
                src, got = in_source.get(ident), in_store.get(ident)
                if src is None and got is None:
                    continue  # gone from both: nothing to do
                if src is None and ident in stones:
                    kept.append(Finding(store, entity_type, str(ident), "deleted",
                                        f"deleted at {stones[ident]}, still held here (re-checked)"))
                elif src is None:
                    kept.append(Finding(store, entity_type, str(ident), "orphan", "not in the source (re-checked)"))
                elif got is None:
                    kept.append(Finding(store, entity_type, str(ident), "missing",
                                        "in the source, not in this store (re-checked)"))
                elif _data_fp(adapter.view, src) != _data_fp(adapter.view, got):
                    kept.append(Finding(store, entity_type, str(ident), "stale", "data differs (re-checked)"))
    return kept


def delete_proven(stores: Stores, adapter: Any, entity_type: str, ids: list[uuid.UUID], done: Counter[str],
                  prover: Prover | None = None) -> int:
    """Delete the orphans among ``ids`` that the source still lacks and that ``prover`` proves
    ours, both read right before; then put back from the source any that a writer wrote
    meanwhile. Without a prover nothing is deleted. Returns how many were deleted."""
    source = stores.source.adapter
    deleted = 0
    for batch in chunked(ids, READ_BATCH):
        present = source.get_many(entity_type, batch)
        absent = [i for i in batch if i not in present]
        if present:  # written meanwhile: no longer an orphan; the store gets the source's version
            done["orphans_kept_now_in_source"] += len(present)
            _add(done, "rewritten_again", settle(stores, adapter, entity_type, list(present), prover))
        if not absent:
            continue
        proven = _proven_in_store(adapter, entity_type, absent, prover)
        _add(done, "orphans_kept_unproven", len(absent) - len(proven))
        if not proven:
            continue
        deleted += adapter.delete_many(entity_type, proven)
        appeared = source.get_many(entity_type, proven)  # a writer between our read and our delete
        appeared = _copyable(entity_type, appeared, prover)  # never copy an unreadable or unproven entry
        if appeared:
            adapter.put_many(appeared.values())
            done["restored_after_delete"] += len(appeared)
            _add(done, "rewritten_again", settle(stores, adapter, entity_type, list(appeared), prover))
    return deleted


def _proven_in_store(adapter: Any, entity_type: str, ids: list[uuid.UUID], prover: Prover | None) -> list[uuid.UUID]:
    """The entries among ``ids`` the store holds now and ``prover`` proves ours (none without one)."""
    if prover is None or READ not in adapter.capabilities:
        return []
    proven = prover.proven(entity_type, adapter.get_many(entity_type, ids), adapter.view)
    return [i for i in ids if i in proven]


def _copyable(entity_type: str, records: dict[uuid.UUID, Record], prover: Prover | None) -> dict[uuid.UUID, Record]:
    """The source records that may be copied to a store: readable, and proven entities of their type
    (a record whose key fields are missing or give another ID is not one)."""
    readable = {i: r for i, r in records.items() if not r.unreadable}
    if prover is None or not readable:
        return readable
    proven = prover.proven(entity_type, readable)
    return {i: r for i, r in readable.items() if i in proven}


def _remove_deleted(stores: Stores, adapter: Any, entity_type: str, ids: list[uuid.UUID], done: Counter[str],
                    prover: Prover | None) -> int:
    """Remove entities the source deleted on purpose (a tombstone) that a store still holds: as
    proven orphans are (:func:`delete_proven`: absent from the source and proven ours, read right
    before). A store that cannot be read by ID (a message log) holds nothing to prove: it gets
    the deletion as its own ``delete_many`` makes it, under the tombstone's time."""
    if READ in adapter.capabilities:
        return delete_proven(stores, adapter, entity_type, ids, done, prover)
    stones = held_by(stores.source.adapter, entity_type, ids)
    by_token: dict[str, list[uuid.UUID]] = {}
    for ident, when in stones.items():
        by_token.setdefault(when, []).append(ident)
    return sum(adapter.delete_many(entity_type, group, token=token) for token, group in by_token.items())


def delete_proven_raw(stores: Stores, adapter: Any, entity_type: str, pairs: list[tuple[uuid.UUID, str]],
                      done: Counter[str] | None = None) -> int:
    """Orphans stored in the wrong form are never deleted: an entry under a name in the wrong form
    cannot be read back to be proven ours, and a look-alike name proves nothing. They are counted
    (``orphans_kept_unproven``) and left. Returns 0."""
    if done is not None:
        _add(done, "orphans_kept_unproven", len(pairs))
    return 0


def settle(stores: Stores, adapter: Any, entity_type: str, ids: list[uuid.UUID], prover: Prover | None = None) -> int:
    """Read ``ids`` back from the source and the store; rewrite from the source's current record
    any the store holds differently (a writer's newer version landed while we wrote an older one).
    Returns how many records were rewritten again."""
    if READ not in adapter.capabilities or not ids:
        return 0
    again = 0
    for batch in chunked(ids, READ_BATCH):
        todo = batch
        for _ in range(SETTLE_ROUNDS):
            in_source = stores.source.adapter.get_many(entity_type, todo)
            in_store = adapter.get_many(entity_type, todo)
            # an unreadable or unproven source entry is never copied (the rewrite step names it)
            behind = [r for i, r in in_source.items()
                      if not r.unreadable and _data_fp(adapter.view, r) != _data_fp(adapter.view, in_store.get(i))]
            if behind and prover is not None:
                behind = list(_copyable(entity_type, {r.id: r for r in behind}, prover).values())
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


def source_warnings(stores: Stores, report: AuditReport, empty: set[str]) -> list[str]:
    """Types a store holds but the source holds none of: loud, whether or not orphans are deleted."""
    held: dict[str, Counter[str]] = {}
    for f in report.findings:
        if f.kind == "orphan" and f.store != stores.source.name and f.entity_type in empty:
            held.setdefault(f.entity_type, Counter())[f.store] += 1
    return [f"the source {stores.source.name!r} holds no {et!r} records, but "
            + ", ".join(f"{s} holds {n}" for s, n in sorted(by_store.items()))
            + ": is the source URL (or its prefix) right? Their deletion is refused unless "
              "--max-delete allows it" for et, by_store in held.items()]


# -- carrying out a repair ------------------------------------------------------------------------
def repair(stores: Stores, report: AuditReport, delete_orphans: bool, max_delete: int | str | None = None,
           counts: dict[str, int | None] | None = None, fraction: float = 1.0,
           rechecked: list[Finding] | None = None, prover: Prover | None = None) -> None:
    """Re-check the findings (a writer may have finished what the audit caught half done), let the
    guard refuse mass deletion before anything changes, then rewrite and delete proven orphans.

    ``rechecked``: the findings as the caller re-checked them just before, with the guard applied
    to them already (an audit in one process): they are acted on without a second re-check.
    ``prover`` (uuid_forge.ownership) proves each orphan right before its deletion and each
    source record before it is copied; without one, nothing is deleted."""
    handles = {h.name: h for h in stores.stores}
    findings = rechecked
    if findings is None:
        findings = recheck(stores, report.findings)
        report.plan = build_plan(stores, findings, delete_orphans, max_delete, counts, fraction)
        report.plan.rechecked = True
        refuse_if_guarded(report.plan)
    todo: dict[tuple[str, str], dict[str, list[Finding]]] = {}
    for f in findings:
        if f.store == stores.source.name:
            continue  # the source is the truth; its own problems are reported, not "repaired"
        todo.setdefault((f.store, f.entity_type), {}).setdefault(f.kind, []).append(f)
    for (store, entity_type), kinds in todo.items():
        _repair_one(stores, report, handles[store].adapter, store, entity_type, kinds, delete_orphans, prover)


def _repair_one(stores: Stores, report: AuditReport, adapter: Adapter, store: str, entity_type: str,
                kinds: dict[str, list[Finding]], delete_orphans: bool, prover: Prover | None = None) -> None:
    """Repair one entity type in one store: wrong twins removed, records rewritten, proven orphans
    deleted, then the rewrites read back (each step's error reported, the next one still tried)."""
    done = report.repaired.setdefault(store, Counter())
    rewrite = [uuid.UUID(f.id) for f in kinds.get("missing", []) + kinds.get("stale", [])]
    steps: list[tuple[str, Callable[[], int]]] = []
    # A wrong twin goes only when it is an ID of ours whose record the source holds, so it is
    # rewritten in the right form just below; anything else is reported and left alone.
    twins = _twins(stores, store, entity_type, kinds.get("malformed", []), report, prover)
    rewrite += [i for i, _ in twins]
    if twins and not adapter.append_only:  # first, so the rewrite below is not removed with the wrong twin
        # (a log removes nothing: the rewrite's event, in the right form, becomes the ID's latest)
        steps.append(("malformed_removed", lambda: adapter.delete_raw(entity_type, [raw for _, raw in twins])))
    steps.append(("rewritten", lambda: _rewrite(stores, adapter, entity_type, rewrite, prover, done)))
    if delete_orphans and kinds.get("orphan") and DELETE in adapter.capabilities and not adapter.append_only:
        orphans = [uuid.UUID(f.id) for f in kinds["orphan"] if f.raw is None and as_uuid(f.id)]
        wrong_form = [(uuid.UUID(f.id), f.raw) for f in kinds["orphan"] if f.raw is not None and as_uuid(f.id)]
        steps.append(("orphans_deleted", lambda: delete_proven(stores, adapter, entity_type, orphans, done, prover)
                      + delete_proven_raw(stores, adapter, entity_type, wrong_form, done)))
    if kinds.get("deleted") and DELETE in adapter.capabilities:  # deleted on purpose: no --delete-orphans needed
        deleted = [uuid.UUID(f.id) for f in kinds["deleted"] if f.raw is None and as_uuid(f.id)]
        steps.append(("deleted_removed", lambda: _remove_deleted(stores, adapter, entity_type, deleted, done, prover)))
    for label, step in steps:
        try:
            done[label] += step()
        except UUIDForgeError as err:
            report.repair_errors.append(f"{store}/{entity_type} {label}: {err}")
    try:  # a writer's newer version may have landed in the source while we rewrote
        again = settle(stores, adapter, entity_type, rewrite, prover)
        if again:
            done["rewritten_again"] += again
    except UUIDForgeError as err:
        report.repair_errors.append(f"{store}/{entity_type} re-check after rewrite: {err}")


def recheck_repaired(stores: Stores, report: AuditReport, prover: Prover | None = None) -> dict[str, Counter[str]]:
    """The IDs of the findings read again after a repair, per store and class: what is left.

    A point audit of those IDs only (not a second full audit). An orphan the repair was not
    asked to delete is still an orphan; an ID the source lacks is not a finding of the source's.
    """
    left = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in stores.stores[1:]},
                       source=stores.source.name)
    targets: dict[str, set[uuid.UUID]] = {}
    for f in report.findings:
        if f.kind != "foreign" and (ident := as_uuid(f.id)) is not None:
            targets.setdefault(f.entity_type, set()).add(ident)
    for entity_type, ids in targets.items():
        point_pass(None, stores, entity_type, sorted(ids), left, prover=prover)
    left.stores.pop(stores.source.name, None)  # "not in the source": the orphans, counted in their stores
    for f in report.findings:  # a store that cannot be read by ID (a message log): what the audit found,
        handle = next((h for h in stores.stores if h.name == f.store), None)  # less what repair republished
        if handle is None or READ in handle.adapter.capabilities or f.kind in NOT_FINDINGS:
            continue
        if f.kind in ("missing", "stale", "malformed") and _republished(report, f.store):
            continue  # the broker confirmed the source's record: it is the stream's latest state now
        left.stores[f.store][f.kind] += 1
    return left.stores


def _republished(report: AuditReport, store: str) -> bool:
    """Whether repair rewrote a log store's findings without an error (publisher confirms)."""
    return report.repaired.get(store, Counter())["rewritten"] > 0 and not any(
        e.startswith(f"{store}/") for e in report.repair_errors)


def _twins(stores: Stores, store: str, entity_type: str, malformed: list[Finding],
           report: AuditReport, prover: Prover | None = None) -> list[tuple[uuid.UUID, str]]:
    """(ID, raw entry) of the malformed findings whose ID the source holds, read just before, as a
    proven entity of the type (``prover``): only those are rewritten, so only their wrongly encoded
    twins may be removed (a twin under a wrong-form name cannot itself be read back: the proof is
    its source record's). Without a prover, none."""
    decoded = [(i, f.raw) for f in malformed if f.raw is not None and (i := as_uuid(f.id)) is not None]
    if not decoded:
        return []
    if prover is None:
        return []
    try:
        present: set[uuid.UUID] = set()
        for batch in chunked(list({i for i, _ in decoded}), 1000):
            present.update(_copyable(entity_type, stores.source.adapter.get_many(entity_type, batch), prover))
    except UUIDForgeError as err:
        report.repair_errors.append(f"{store}/{entity_type} malformed_removed: source not read, nothing removed: {err}")
        return []
    return [(i, raw) for i, raw in decoded if i in present]


def as_uuid(text: str) -> uuid.UUID | None:
    """The UUID a finding's ID names, or None (a raw name in the wrong form)."""
    try:
        return uuid.UUID(text) if len(text) == 36 else None
    except ValueError:
        return None


def _rewrite(stores: Stores, adapter: Any, entity_type: str, ids: list[uuid.UUID], prover: Prover | None = None,
             done: Counter[str] | None = None) -> int:
    """Rewrite ``ids`` from the source. A record the store rejects for good (constraint, data,
    size) is isolated by splitting the batch, so it does not fail the repair of the others; the
    rejected ones are named (IDs, never data) in one error after the rest is written. A source
    record ``prover`` cannot prove an entity of its type is never copied (counted, not an error:
    the audit reported it "unproven")."""
    total = 0
    rejected: list[tuple[uuid.UUID, str]] = []
    for batch in chunked(ids, 1000):
        found = stores.source.adapter.get_many(entity_type, batch)
        records = list(found.values())
        unreadable = [r for r in records if r.unreadable]
        if unreadable:  # never copy an unreadable source entry anywhere: named, and the rest goes on
            rejected.extend((r.id, f"the source's entry cannot be read ({r.unreadable})") for r in unreadable)
            records = [r for r in records if not r.unreadable]
        if prover is not None and records:
            proven = _copyable(entity_type, {r.id: r for r in records}, prover)
            if done is not None:
                _add(done, "not_copied_unproven", len(records) - len(proven))
            records = list(proven.values())
        ok, error, bad = put_isolating(records, attempt_once(adapter.put_many))
        if not ok:
            raise StoreError(f"{error} ({total} record(s) rewritten before it)")
        rejected.extend((records[i].id, reason) for i, reason in bad)
        total += len(records) - len(bad)
    if rejected:
        shown = ", ".join(str(i) for i, _ in rejected[:5])
        shown += f" and {len(rejected) - 5} more" if len(rejected) > 5 else ""
        raise StoreRejectedError(f"{total} record(s) rewritten; the store rejected {len(rejected)} for good ({shown}): "
                        f"{rejected[0][1]}")
    return total
