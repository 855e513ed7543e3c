"""Consistency audits: every store compared with the source of truth, and repair.

A full audit streams ``(id, fingerprint)`` pairs partition by partition over ID ranges. Only one
partition of the source is held in memory at a time, and the number of partitions grows with the
source's size, so memory stays bounded however many entities there are (deterministic IDs are
uniform, so equal ranges hold about equal numbers). Each ID in each store is one of:

* ok: present with the source's fingerprint;
* missing: in the source, not in the store;
* orphan: in the store, not in the source;
* stale: present with a different fingerprint;
* malformed: an ID of this scheme stored in the wrong encoding (a string ``_id`` where Binary is
  expected, a key in the wrong form), or, with ``verify_keys``, an ID the scheme could not have
  produced for the business key stored beside it;
* foreign: anything else under a type's names (another application's keys, files or documents,
  another tenant's keys; see uuid_forge.classify): counted with a few samples, never repaired or
  deleted, and not an inconsistency.

Repair rewrites missing, stale and malformed records from the source (a malformed entry's wrong
twin is removed only when its ID is in the source and so rewritten in the right form), and
deletes orphans only when asked to. Foreign entries are never touched. Repair never acts on a
finding as found: see :mod:`uuid_forge.repair` for the re-checks beside live writers and the
guard against mass deletion.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import idmarker, logspill
from .classify import scheme_versions
from .contract import DELETE, READ, SCAN, chunked
from .errors import StoreError, UUIDForgeError, ValidationError
from .record import (ForeignEntry, MalformedID, Partition, Record, TextFingerprint, comparable, data_fingerprint,
                     same_fingerprint)
from .urls import mask_text
from .view import FULL, FieldView

if TYPE_CHECKING:
    from .forge import Forge, StoreHandle

CLASSES = ("ok", "missing", "orphan", "stale", "malformed", "foreign")
#: classes that are not inconsistencies: foreign entries are not ours to judge
NOT_FINDINGS = ("ok", "foreign")
FOREIGN_SAMPLES = 10  # raw names kept per store to show what the foreign entries are
PARTITION_TARGET = 20_000  # source records held in memory at once, at most about this many

__all__ = ["CLASSES", "AuditReport", "Finding", "audit"]


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

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"store": self.store, "entity_type": self.entity_type, "id": self.id, "class": self.kind,
                             "detail": self.detail, "raw": self.raw}
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

    @property
    def consistent(self) -> bool:
        """Every store was audited and agrees with the source (after a repair, as the re-check found
        them). A store left out (``not_audited``) makes it False: a script reading only this flag
        must not take a partial audit for a clean one."""
        counts = self.rechecked if self.rechecked is not None else self.stores
        return not self.not_audited and not self.id_config and not self.repair_errors and all(
            c[k] == 0 for c in counts.values() for k in CLASSES if k not in NOT_FINDINGS)

    @property
    def complete(self) -> bool:
        """Every configured store was audited (an optional store that was down was not)."""
        return not self.not_audited

    def __str__(self) -> str:
        from .summary import audit_summary

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
            "rechecked": ({n: {k: c[k] for k in CLASSES} for n, c in self.rechecked.items()}
                          if self.rechecked is not None else None),
        }


def audit(forge: Forge, entity_type: str | Iterable[str] | None = None, **kwargs: Any) -> AuditReport:
    """Audit every store that answers; see :func:`_audit` for the arguments.

    An optional store that does not answer is left out, not fatal: the others are audited and
    the report lists it in ``not_audited`` (``complete`` is then False). A source or required
    store that does not answer still raises.
    """
    down = _unanswered_optional(forge)
    if not down:
        return _audit(forge, entity_type, **kwargs)
    everyone = forge.stores
    forge.stores = [h for h in everyone if h.name not in down]
    try:
        report = _audit(forge, entity_type, **kwargs)
    finally:
        forge.stores = everyone
    report.not_audited = {**down, **report.not_audited}
    return report


def _unanswered_optional(forge: Forge) -> dict[str, str]:
    """The optional stores that do not answer a ping, with the reason (URL passwords masked)."""
    down: dict[str, str] = {}
    for h in forge.stores[1:]:
        if not h.required:
            try:
                h.adapter.ping()
            except UUIDForgeError as err:
                down[h.name] = mask_text(str(err))
    return down


def _audit(forge: Forge, entity_type: str | Iterable[str] | None = None, *, keys: Iterable[Any] | None = None,
          ids: Iterable[uuid.UUID] | None = None, partition: Partition | None = None, repair: bool = False,
          delete_orphans: bool = False, dry_run: bool = False, verify_keys: bool = False,
          progress: Callable[[int], None] | None = None, max_findings: int = 100_000,
          max_delete: int | str | None = None, show_values: bool = False) -> AuditReport:
    """Audit ``entity_type`` (a type, a list of types, or every type when None) in every store
    against the source of truth.

    ``keys`` or ``ids`` make a point audit of those entities; otherwise the audit is full (within
    ``partition`` when given, so machines can split the work). With ``repair``, missing, stale and
    malformed records are rewritten from the source, and orphans deleted if ``delete_orphans``.
    ``dry_run`` with ``repair`` only computes the plan (``report.plan``).

    Orphan deletion is guarded: ``max_delete`` (a number, or ``"P%"`` of the source's records of
    that type; default 10%) caps the deletions per store and type, and a type the source holds
    none of is never emptied unless a number allows it. A refused repair raises
    :class:`~uuid_forge.errors.RepairRefusedError` before anything is changed.

    A stale finding names the fields that differ; ``show_values`` adds their values (hidden by
    default: they may be personal data).
    """
    from .repair import DeleteLimit, build_plan, source_is_empty, source_warnings

    if repair:
        DeleteLimit.parse(max_delete)  # a bad limit fails before the audit, not after
    started = time.perf_counter()
    versions = scheme_versions(forge.generator.config)
    for h in forge.stores:  # a name in the wrong form is ours only if it decodes to our scheme's version
        h.adapter.id_versions = versions
    report = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in forge.stores[1:]},
                         source=forge.source.name, max_findings=max_findings)
    if keys is not None or ids is not None:
        if not isinstance(entity_type, str):
            raise ValidationError("a point audit (keys or ids) needs one entity type")
        targets = list(ids or []) + (forge.generator.generate_many(entity_type, list(keys)) if keys is not None else [])
        report.entity_types = [entity_type]
        report.id_config = idmarker.audit_findings(forge, report.entity_types, refuse=repair and not dry_run)
        _point(forge, entity_type, targets, report, verify_keys)
        fraction = 1.0
    else:
        types = ([entity_type] if isinstance(entity_type, str) else list(entity_type) if entity_type is not None
                 else _all_types(forge))
        report.entity_types = types
        report.id_config = idmarker.audit_findings(forge, types, refuse=repair and not dry_run)
        for et in types:
            _full(forge, et, partition or Partition(), report, verify_keys, progress)
        fraction = 1.0 / (partition or Partition()).count
    describe_stale(forge, report, show_values)
    # a type the stores hold and the source lacks: a wrong source, whether or not orphans are deleted
    orphaned = {f.entity_type for f in report.findings if f.kind == "orphan" and f.store != forge.source.name}
    empty = {et for et in orphaned if source_is_empty(forge, et)}
    report.warnings += source_warnings(forge, report, empty)
    counts: dict[str, int | None] = dict.fromkeys(empty, 0)  # the others are counted only if a plan needs them
    if repair and dry_run:
        report.plan = build_plan(forge, report.findings, delete_orphans, max_delete, counts, fraction)
    elif repair:
        _repair(forge, report, delete_orphans, max_delete, counts, fraction)
        report.rechecked = _recheck(forge, report)
    report.seconds = time.perf_counter() - started
    return report


def _all_types(forge: Forge) -> list[str]:
    """Every type any store holds; an optional store that does not answer is skipped (it is then
    reported as not audited), a source or required one still raises."""
    types: set[str] = set()
    for h in forge.stores:
        if SCAN in h.adapter.capabilities:
            try:
                types.update(h.adapter.entity_types())
            except StoreError:
                if h.required:
                    raise
    return sorted(types)


def _partitions(forge: Forge, entity_type: str, within: Partition) -> list[Partition]:
    """Enough ID ranges that each holds at most about PARTITION_TARGET source records."""
    count = forge.source.adapter.count(entity_type) / within.count
    parts = 1 << max(0, math.ceil(math.log2(max(1.0, count / PARTITION_TARGET))))
    return within.split(parts) if parts > 1 else [within]


class _Sink:
    """One store's findings from one pass, gathered in its own thread and merged afterwards."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.ok = 0
        self.findings: list[Finding] = []
        self.foreign = 0  # counted, not kept: another application may have millions

    def add(self, finding: Finding) -> None:
        if finding.kind == "foreign":
            self.foreign += 1
            if self.foreign > FOREIGN_SAMPLES:
                return
        self.findings.append(finding)

    def merge_into(self, report: AuditReport) -> None:
        report.stores[self.store]["ok"] += self.ok
        report.stores[self.store]["foreign"] += max(0, self.foreign - FOREIGN_SAMPLES)
        for f in self.findings:
            report.add(f)


def _full(forge: Forge, entity_type: str, within: Partition, report: AuditReport, verify_keys: bool,
          progress: Callable[[int], None] | None, parts: list[Partition] | None = None) -> None:
    """Source partition first, then every other store's same partition in parallel threads
    (drivers wait on sockets without the GIL, so a pass costs about the slowest store's scan)."""
    source = forge.source.adapter
    ranged = [h for h in forge.stores[1:] if SCAN in h.adapter.capabilities and h.adapter.partitioned_scan]
    unranged = [h for h in forge.stores[1:] if SCAN in h.adapter.capabilities and not h.adapter.partitioned_scan]
    readable = [h for h in forge.stores[1:] if SCAN not in h.adapter.capabilities and READ in h.adapter.capabilities]
    parts = parts or _partitions(forge, entity_type, within)  # a task's partition comes sized (uuid_forge.partial)
    report.partitions += len(parts)
    views = {h.adapter.view for h in ranged + readable + unranged}
    workers = max(1, len(ranged) + len(readable) + len(unranged))
    with ThreadPoolExecutor(max_workers=workers + len(unranged), thread_name_prefix="uuid-forge-audit") as pool, \
            logspill.LogPass(pool, unranged, entity_type, within, _compare_items) as logs:
        # a message log is read once, beside the partitions, its latest state spilled to disk;
        # then it is compared partition by partition like the other stores (uuid_forge.logspill)
        for part in parts:
            part_started = time.perf_counter()
            expected: dict[uuid.UUID, str | None] = {}
            for ident, fp in source.scan(entity_type, part, include_malformed=True):
                if isinstance(ident, (MalformedID, ForeignEntry)):
                    report.stores.setdefault(forge.source.name, Counter({k: 0 for k in CLASSES}))
                    report.add(_malformed(forge.source.name, entity_type, ident))
                else:
                    expected[ident] = fp
            by_view = _viewed_expectations(source, entity_type, part, expected, views)
            if verify_keys:
                _verify_keys(forge, entity_type, list(expected), report)
            jobs = [pool.submit(_guarded, h, _scan_and_compare, entity_type, part, by_view[h.adapter.view])
                    for h in ranged if h.name not in report.not_audited]
            jobs += [pool.submit(_guarded, h, _compare_by_reads, entity_type, by_view[h.adapter.view])
                     for h in readable if h.name not in report.not_audited]
            jobs += logs.ready(part, by_view)
            for job in jobs:
                sink = job.result()
                if isinstance(sink, _Lost):
                    report.not_audited[sink.store] = sink.reason
                else:
                    sink.merge_into(report)
            for job in logs.ready(part, by_view, wait=part is parts[-1]):  # a log read meanwhile
                job.result().merge_into(report)
            report.partition_times.append((entity_type, f"{part.index + 1}/{part.count}",
                                           time.perf_counter() - part_started, len(expected)))
            if progress is not None:
                progress(len(expected))
        for sink in logs.rest(lambda p: _viewed_expectations(source, entity_type, p, None, views)):
            sink.merge_into(report)
    if report.not_audited:  # a store lost half-way: its partial counts would read as the whole
        report.findings = [f for f in report.findings if f.store not in report.not_audited]
        for name in report.not_audited:
            report.stores.pop(name, None)
            report.foreign_samples.pop(name, None)


@dataclass(frozen=True)
class _Lost:
    """An optional store that stopped answering during the audit: left out of the report."""

    store: str
    reason: str


def _guarded(h: StoreHandle, compare: Callable[..., _Sink], *args: Any) -> _Sink | _Lost:
    """``compare(h, *args)``; an optional store's failure leaves that store out instead of
    aborting the audit of the others (a source or required store's failure still raises)."""
    try:
        return compare(h, *args)
    except StoreError as err:
        if h.required:
            raise
        return _Lost(h.name, mask_text(str(err)))


def _viewed_expectations(source: Any, entity_type: str, part: Partition, full: dict[uuid.UUID, Any] | None,
                         views: set[FieldView]) -> dict[FieldView, dict[uuid.UUID, Any]]:
    """The source's fingerprints of ``part`` as each store view sees them (uuid_forge.view): a
    store holding a projection is compared with the source's same projection. The full view's come
    from the scan already made (``full``); each other view reads the partition once more."""
    out: dict[FieldView, dict[uuid.UUID, Any]] = {}
    for view in views | {FULL}:
        if view == FULL and full is not None:
            out[view] = full
        else:
            out[view] = dict(source.viewed(view).scan(entity_type, part))
    return out


def _scan_and_compare(h: StoreHandle, entity_type: str, part: Partition, expected: dict[uuid.UUID, str | None]) -> _Sink:
    sink = _Sink(h.name)
    _compare(h, entity_type, expected, h.adapter.scan(entity_type, part, include_malformed=True), sink)
    return sink


def _compare(h: StoreHandle, entity_type: str, expected: dict[uuid.UUID, str | None],
             items: Iterator[tuple[Any, str | None]], sink: _Sink) -> None:
    seen: set[uuid.UUID] = set()
    for ident, fp in items:
        if isinstance(ident, ForeignEntry):
            sink.add(_malformed(h.name, entity_type, ident))  # not ours: never marks an ID as present
            continue
        if isinstance(ident, MalformedID):
            if ident.id is not None and ident.id not in expected:
                # ours in the wrong form, and the source lacks it: an orphan (removed by its raw name,
                # proven first, and only with --delete-orphans), never a rewrite the source cannot feed
                sink.add(Finding(h.name, entity_type, str(ident.id), "orphan",
                                 f"not in the source ({ident.reason})", ident.raw))
                continue
            sink.add(_malformed(h.name, entity_type, ident))
            if ident.id is not None:
                seen.add(ident.id)  # present, wrongly encoded: malformed, not also missing
            continue
        if ident not in expected:
            sink.add(Finding(h.name, entity_type, str(ident), "orphan", "not in the source"))
            continue
        seen.add(ident)
        if not same_fingerprint(fp, expected[ident]):  # both computed from the data each side holds
            held = getattr(fp, "text", None) if READ not in h.adapter.capabilities else None
            sink.add(Finding(h.name, entity_type, str(ident), "stale", "data differs from the source", held=held))
        else:
            sink.ok += 1
    for ident in expected.keys() - seen:
        sink.add(Finding(h.name, entity_type, str(ident), "missing", "in the source, not in this store"))


def describe_stale(forge: Forge, report: AuditReport, show_values: bool = False) -> None:
    """Name the fields each stale record differs in: after the partitions are compared, the stale
    IDs are read from the source and the store in batches (get_many) and their data diffed. A
    store that cannot be read back (a message log) is diffed with the data its scan read."""
    handles = {h.name: h for h in forge.stores}
    groups: dict[tuple[str, str], list[int]] = {}
    for n, f in enumerate(report.findings):
        if f.kind == "stale" and f.store in handles and f.store != forge.source.name:
            groups.setdefault((f.store, f.entity_type), []).append(n)
    source = forge.source.adapter
    if READ not in source.capabilities:
        return
    for (store, entity_type), positions in groups.items():
        adapter = handles[store].adapter
        readable = READ in adapter.capabilities
        for batch in chunked(positions, 500):
            ids = [uuid.UUID(report.findings[n].id) for n in batch]
            try:
                truth = source.get_many(entity_type, ids)
                held = adapter.get_many(entity_type, ids) if readable else {}
            except UUIDForgeError as err:
                report.warnings.append(f"{store}/{entity_type}: stale fields not named: {err}")
                break
            for n, ident in zip(batch, ids):
                f = report.findings[n]
                found = held.get(ident) if readable else None
                if isinstance(found, Record) and found.unreadable:  # say why, on the finding (never the content)
                    report.findings[n] = replace(f, detail=f"unreadable: {found.unreadable}", held=None)
                    continue
                theirs = _held_data(found if readable else f.held)
                if ident not in truth or theirs is None:
                    continue  # gone since, or not readable as a document: the finding stays as it is
                view = adapter.view
                report.findings[n] = _stale_finding(f, view.apply(_held_data(truth[ident])), view.apply(theirs),
                                                    show_values)


def viewed_fingerprint(view: FieldView, record: Record) -> str | None:
    """A record's fingerprint as a store of ``view`` is compared (its own when the view is full)."""
    if view.full or record.unreadable:
        return record.fingerprint
    data = _held_data(record)
    return data_fingerprint(view.apply(data)) if data is not None else None


def _held_data(found: Any) -> Any:
    """The data as read, with every digit: from the text it was read as where the adapter kept it."""
    if isinstance(found, Record):
        if found.unreadable:
            return None  # nothing to diff: the finding keeps its detail
        fp = found.fingerprint
        found = fp.text if isinstance(fp, TextFingerprint) else found.data
        if not isinstance(found, (str, bytes)):
            return found
    if isinstance(found, (str, bytes)):
        try:
            from .record import load_json

            return load_json(found)
        except ValueError:
            return None
    return None


def _stale_finding(f: Finding, source: Any, store: Any, show_values: bool) -> Finding:
    diffs = diff_fields(source, store) if isinstance(source, dict) and isinstance(store, dict) else []
    if not diffs:
        return replace(f, detail="data differs from the source (no field differs now: changed since the scan?)",
                       held=None)
    parts: dict[str, list[str]] = {}
    values: dict[str, dict[str, Any]] = {}
    for path, how, want, got in diffs:
        label = path
        if show_values:
            shown = {"missing": f"source {_shown(want)}", "extra": f"store {_shown(got)}"}.get(
                how, f"store {_shown(got)}, source {_shown(want)}")
            label = f"{path} ({shown})"
            values[path] = {k: _plain(v) for k, v, absent in (("store", got, how == "missing"),
                                                               ("source", want, how == "extra")) if not absent}
        parts.setdefault(how, []).append(label)
    heads = {"differs": "fields differ", "missing": "missing in the store", "extra": "not in the source"}
    detail = "; ".join(f"{heads[how]}: {', '.join(parts[how])}" for how in heads if how in parts)
    return replace(f, detail=detail, fields=tuple(p for p, *_ in diffs), values=values if show_values else None,
                   held=None)


def diff_fields(source: Any, store: Any, prefix: str = "") -> list[tuple[str, str, Any, Any]]:
    """``(path, how, source value, store value)`` for every field that differs between two data
    mappings; ``how`` is ``differs``, ``missing`` (in the source, not the store) or ``extra``.
    Nested objects are followed (``address.city``); values compare by canonical form, so ``2``
    and ``2.0``, or a Decimal and its float, are equal as they are in fingerprints."""
    out: list[tuple[str, str, Any, Any]] = []
    for k in sorted(set(source) | set(store)):
        path = prefix + str(k)
        if k not in store:
            out.append((path, "missing", source[k], None))
        elif k not in source:
            out.append((path, "extra", None, store[k]))
        elif isinstance(source[k], dict) and isinstance(store[k], dict):
            out += diff_fields(source[k], store[k], path + ".")
        elif _comparable(source[k]) != _comparable(store[k]):
            out.append((path, "differs", source[k], store[k]))
    return out


def _comparable(value: Any) -> str:
    """A value as fingerprints compare it: datetime text as the instant it names."""
    text = _canonical_or_repr(value)
    return text if text.startswith("\0") else comparable("[" + text + "]")


def _canonical_or_repr(value: Any) -> str:
    from .canonical import canonical

    try:
        return canonical(value)
    except (UUIDForgeError, ValueError, TypeError, RecursionError):
        return "\0" + repr(value)  # never equal to a canonical text


def _plain(value: Any) -> Any:
    """A value as JSON can carry it (Decimals and dates as their canonical form)."""
    import json

    text = _canonical_or_repr(value)
    return json.loads(text) if not text.startswith("\0") else repr(value)


def _shown(value: Any) -> str:
    text = _canonical_or_repr(value)
    text = text if not text.startswith("\0") else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _malformed(store: str, entity_type: str, ident: MalformedID | ForeignEntry) -> Finding:
    if isinstance(ident, ForeignEntry):
        return Finding(store, entity_type, ident.raw, "foreign", ident.reason, ident.raw)
    return Finding(store, entity_type, str(ident.id) if ident.id else ident.raw, "malformed", ident.reason, ident.raw)


def _compare_by_reads(h: StoreHandle, entity_type: str, expected: dict[uuid.UUID, str | None]) -> _Sink:
    sink = _Sink(h.name)
    for batch in chunked(list(expected), 500):
        found = h.adapter.get_many(entity_type, batch)
        _compare(h, entity_type, {i: expected[i] for i in batch},
                 ((i, viewed_fingerprint(h.adapter.view, r)) for i, r in found.items()), sink)
    return sink


def _compare_items(h: StoreHandle, entity_type: str, expected: dict[uuid.UUID, str | None],
                   items: Iterator[tuple[Any, str | None]]) -> _Sink:
    sink = _Sink(h.name)
    _compare(h, entity_type, expected, items, sink)
    return sink


def _verify_keys(forge: Forge, entity_type: str, ids: list[uuid.UUID], report: AuditReport) -> None:
    """Flag source records whose ID is not what the scheme gives for their key: for a declared
    type (:class:`~uuid_forge.entitytypes.EntityType`) the key fields in the record's data, else
    the key stored beside it. IDs are recomputed a batch at a time (``generate_many``)."""
    if READ not in forge.source.adapter.capabilities:
        return
    declared = getattr(forge, "types", {}).get(entity_type)
    # under an ID configuration that differs, one summary (counts) instead of a finding per record
    summary = next((f.setdefault("verify_keys", {"checked": 0, "mismatched": 0}) for f in report.id_config
                    if f["entity_type"] == entity_type), None)
    if declared is not None and declared.salt_missing and summary is None:  # no marker to compare: not checkable
        note = (f"--verify-keys skipped for {entity_type!r}: its salt comes from ${declared.salt_env}, which is not "
                "set, so every ID would seem wrong")
        if note not in report.warnings:
            report.warnings.append(note)
        return
    declared = declared if declared is not None and declared.key else None
    source = forge.source.name

    def flag(ident: uuid.UUID, detail: str) -> None:
        report.stores.setdefault(source, Counter({k: 0 for k in CLASSES}))
        report.add(Finding(source, entity_type, str(ident), "malformed", detail))

    for batch in chunked(ids, 1000):
        keyed: list[tuple[uuid.UUID, Any]] = []
        for ident, record in forge.source.adapter.get_many(entity_type, batch).items():
            if declared is None:
                keyed.append((ident, record.key))
                continue
            missing = [n for n in declared.key if record.data.get(n) is None]  # data is a Mapping (Record checks)
            if not missing:
                keyed.append((ident, {n: record.data[n] for n in declared.key}))
            elif isinstance(record.key, dict) and set(record.key) == set(declared.key):
                keyed.append((ident, record.key))  # written as write(type, key, data) with the key outside the data
            else:  # no ID can be checked (or rebuilt) without its key fields
                flag(ident, f"key field(s) {', '.join(missing)} missing or null in the data: its ID cannot be checked")
        for (ident, _), expected in zip(keyed, _ids_from_keys(forge, entity_type, [k for _, k in keyed])):
            if summary is not None and expected is not None:
                summary["checked"] += 1
                summary["mismatched"] += expected != ident
            elif expected is not None and expected != ident:
                flag(ident, f"key fields give {expected}" if declared is not None
                     else f"the scheme gives {expected} for the stored key")


def _ids_from_keys(forge: Forge, entity_type: str, keys: list[Any]) -> list[uuid.UUID | None]:
    """The IDs ``keys`` give (None for an absent or unusable key), in one batch when every key can."""
    usable = [k for k in keys if k is not None]
    if len(usable) == len(keys):
        try:
            return list(forge.generator.generate_many(entity_type, [tuple(k) if isinstance(k, list) else k
                                                                    for k in keys]))
        except (TypeError, ValueError):
            pass  # one bad key: the others one by one
    return [_id_from_key(forge, entity_type, k) for k in keys]


def _id_from_key(forge: Forge, entity_type: str | Record, key: Any = None) -> uuid.UUID | None:
    if isinstance(entity_type, Record):  # the older call: _id_from_key(forge, record)
        entity_type, key = entity_type.entity_type, entity_type.key
    if key is None:
        return None
    try:
        if isinstance(key, dict):
            return forge.generator.generate(entity_type, **key)
        if isinstance(key, list):
            return forge.generator.generate(entity_type, *key)
        return forge.generator.generate(entity_type, key)
    except (TypeError, ValueError):
        return None


def _point(forge: Forge, entity_type: str, targets: list[uuid.UUID], report: AuditReport, verify_keys: bool) -> None:
    source = forge.source.adapter
    for batch in chunked(targets, 500):
        in_source = source.get_many(entity_type, batch)
        for ident in batch:
            if ident not in in_source:
                report.stores.setdefault(forge.source.name, Counter({k: 0 for k in CLASSES}))
                report.add(Finding(forge.source.name, entity_type, str(ident), "missing", "not in the source"))
        if verify_keys:
            _verify_keys(forge, entity_type, list(in_source), report)
        for h in forge.stores[1:]:
            if READ in h.adapter.capabilities:
                view = h.adapter.view
                expected = {i: viewed_fingerprint(view, r) for i, r in in_source.items()}
                found = h.adapter.get_many(entity_type, batch)
                sink = _Sink(h.name)
                _compare(h, entity_type, expected, ((i, viewed_fingerprint(view, r)) for i, r in found.items()), sink)
                sink.merge_into(report)


def _repair(forge: Forge, report: AuditReport, delete_orphans: bool, max_delete: int | str | None = None,
            counts: dict[str, int | None] | None = None, fraction: float = 1.0) -> None:
    """Re-check the findings (a writer may have finished what the audit caught half done), let the
    guard refuse mass deletion before anything changes, then rewrite and delete proven orphans."""
    from .repair import build_plan, delete_proven, delete_proven_raw, recheck, refuse_if_guarded, settle

    handles = {h.name: h for h in forge.stores}
    findings = recheck(forge, report.findings)
    report.plan = build_plan(forge, findings, delete_orphans, max_delete, counts, fraction)
    report.plan.rechecked = True
    refuse_if_guarded(report.plan)
    todo: dict[tuple[str, str], dict[str, list[Finding]]] = {}
    for f in findings:
        if f.store == forge.source.name:
            continue  # the source is the truth; its own problems are reported, not "repaired"
        todo.setdefault((f.store, f.entity_type), {}).setdefault(f.kind, []).append(f)
    for (store, entity_type), kinds in todo.items():
        adapter = handles[store].adapter
        done = report.repaired.setdefault(store, Counter())
        rewrite = [uuid.UUID(f.id) for f in kinds.get("missing", []) + kinds.get("stale", [])]
        steps: list[tuple[str, Callable[[], int]]] = []
        # A wrong twin goes only when it is an ID of ours whose record the source holds, so it is
        # rewritten in the right form just below; anything else is reported and left alone.
        twins = _twins(forge, store, entity_type, kinds.get("malformed", []), report)
        rewrite += [i for i, _ in twins]
        if twins:  # first, so the rewrite below is not removed with the wrong twin
            steps.append(("malformed_removed", lambda: adapter.delete_raw(entity_type, [raw for _, raw in twins])))
        steps.append(("rewritten", lambda: _rewrite(forge, adapter, entity_type, rewrite)))
        if delete_orphans and kinds.get("orphan") and DELETE in adapter.capabilities:
            orphans = [uuid.UUID(f.id) for f in kinds["orphan"] if f.raw is None]
            wrong_form = [(uuid.UUID(f.id), f.raw) for f in kinds["orphan"] if f.raw is not None]
            steps.append(("orphans_deleted", lambda: delete_proven(forge, adapter, entity_type, orphans, done)
                          + delete_proven_raw(forge, adapter, entity_type, wrong_form)))
        for label, step in steps:
            try:
                done[label] += step()
            except UUIDForgeError as err:
                report.repair_errors.append(f"{store}/{entity_type} {label}: {err}")
        try:  # a writer's newer version may have landed in the source while we rewrote
            again = settle(forge, adapter, entity_type, rewrite)
            if again:
                done["rewritten_again"] += again
        except UUIDForgeError as err:
            report.repair_errors.append(f"{store}/{entity_type} re-check after rewrite: {err}")


def _recheck(forge: Forge, report: AuditReport) -> dict[str, Counter[str]]:
    """The IDs of the findings read again after a repair, per store and class: what is left.

    A point audit of those IDs only (not a second full audit). An orphan the repair was not
    asked to delete is still an orphan; an ID the source lacks is not a finding of the source's.
    """
    left = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in forge.stores[1:]},
                       source=forge.source.name)
    targets: dict[str, set[uuid.UUID]] = {}
    for f in report.findings:
        if f.kind != "foreign" and (ident := _as_uuid(f.id)) is not None:
            targets.setdefault(f.entity_type, set()).add(ident)
    for entity_type, ids in targets.items():
        _point(forge, entity_type, sorted(ids), left, verify_keys=False)
    left.stores.pop(forge.source.name, None)  # "not in the source": the orphans, counted in their stores
    for f in report.findings:  # a store that cannot be read by ID (a message log): what the audit found,
        handle = next((h for h in forge.stores if h.name == f.store), None)  # less what repair republished
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


def _twins(forge: Forge, store: str, entity_type: str, malformed: list[Finding],
           report: AuditReport) -> list[tuple[uuid.UUID, str]]:
    """(ID, raw entry) of the malformed findings whose ID the source holds: only those are rewritten,
    so only their wrongly encoded twins may be removed."""
    decoded = [(i, f.raw) for f in malformed if f.raw is not None and (i := _as_uuid(f.id)) is not None]
    if not decoded:
        return []
    try:
        present: set[uuid.UUID] = set()
        for batch in chunked(list({i for i, _ in decoded}), 1000):
            present.update(forge.source.adapter.get_many(entity_type, batch))
    except UUIDForgeError as err:
        report.repair_errors.append(f"{store}/{entity_type} malformed_removed: source not read, nothing removed: {err}")
        return []
    return [(i, raw) for i, raw in decoded if i in present]


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if len(text) == 36 else None
    except ValueError:
        return None


def _rewrite(forge: Forge, adapter: Any, entity_type: str, ids: list[uuid.UUID]) -> int:
    """Rewrite ``ids`` from the source. A record the store rejects for good (constraint, data,
    size) is isolated by splitting the batch, so it does not fail the repair of the others; the
    rejected ones are named (IDs, never data) in one error after the rest is written."""
    from .errors import StoreError as _StoreError
    from .forge import attempt_once, put_isolating

    total = 0
    rejected: list[tuple[uuid.UUID, str]] = []
    for batch in chunked(ids, 1000):
        records = list(forge.source.adapter.get_many(entity_type, batch).values())
        unreadable = [r for r in records if r.unreadable]
        if unreadable:  # never copy an unreadable source entry anywhere: named, and the rest goes on
            rejected.extend((r.id, f"the source's entry cannot be read ({r.unreadable})") for r in unreadable)
            records = [r for r in records if not r.unreadable]
        ok, error, bad = put_isolating(records, attempt_once(adapter.put_many))
        if not ok:
            raise _StoreError(f"{error} ({total} record(s) rewritten before it)")
        rejected.extend((records[i].id, reason) for i, reason in bad)
        total += len(records) - len(bad)
    if rejected:
        from .errors import StoreRejectedError as _Rejected

        shown = ", ".join(str(i) for i, _ in rejected[:5])
        shown += f" and {len(rejected) - 5} more" if len(rejected) > 5 else ""
        raise _Rejected(f"{total} record(s) rewritten; the store rejected {len(rejected)} for good ({shown}): "
                        f"{rejected[0][1]}")
    return total
