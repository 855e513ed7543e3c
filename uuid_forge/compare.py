"""Finding what differs: every store compared with the source of truth, partition by partition
or ID by ID, and stale records described field by field.

A full pass streams ``(id, fingerprint)`` pairs partition by partition over ID ranges. One
partition of the source is held in memory at a time, up to 1 + :data:`BEHIND` while a store read
once per audit (uuid_forge.onepass) is still being read, and the number of partitions grows with
the source's size, so memory stays bounded however many entities there are (deterministic IDs are
uniform, so equal ranges hold about equal numbers). Each ID in each store is one of the classes
of :mod:`uuid_forge.report` (ok, missing, orphan, stale, malformed, foreign; an orphan whose ID has
a tombstone becomes ``deleted`` afterwards, uuid_forge.tombstones).

The functions here are given their stores (:class:`~uuid_forge.handles.Stores`): the audit
decides which answer and how they are opened (uuid_forge.audit); fixing is uuid_forge.repair.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Self

from . import logspill, onepass
from .classify import scheme_versions
from .contract import READ, SCAN, chunked
from .errors import StoreError, UUIDForgeError
from .handles import StoreHandle, Stores, StoreSet
from .masking import mask_name
from .ownership import HOW_TO_PROVE, Prover
from .rangehash import HashPlan, within
from .record import (
    ForeignEntry,
    MalformedID,
    Partition,
    Record,
    TextFingerprint,
    data_fingerprint,
    same_fingerprint,
)
from .report import CLASSES, FOREIGN_SAMPLES, UNPROVEN_SAMPLES, AuditReport, Finding
from .urls import mask_text
from .view import FULL, FieldView

if TYPE_CHECKING:
    from .forgeview import ForgeView

PARTITION_TARGET = 20_000  # source records held in memory at once, at most about this many
#: partitions that may wait for a read-once store's read while the next ones are compared (each holds
#: its source records: memory stays bounded by (1 + BEHIND) partitions, whatever the store's size)
BEHIND = 8

__all__ = ["PARTITION_TARGET", "Sink", "all_types", "answering", "compare", "describe_stale", "diff_fields",
           "full_pass", "partitions", "point_pass", "viewed_fingerprint"]


def answering(forge: ForgeView) -> StoreSet:
    """The stores of ``forge`` that answer an audit, each opened with the UUID versions of the
    forge's scheme (a name in the wrong form is ours only if it decodes to one of them).

    An optional store that does not answer a ping is left out, not fatal (``down`` says why, URL
    passwords masked); a source or required store that does not answer fails later, loudly.
    """
    versions = scheme_versions(forge.generator.config)
    down: dict[str, str] = {}
    for h in forge.stores[1:]:
        if not h.required:
            try:
                h.adapter.ping()
            except UUIDForgeError as err:
                down[h.name] = mask_text(str(err))
    return StoreSet([StoreHandle(h.name, h.adapter.with_id_versions(versions), h.source, h.required)
                     for h in forge.stores if h.name not in down], down)


def all_types(stores: Iterable[StoreHandle]) -> list[str]:
    """Every type any store holds; an optional store that does not answer is skipped (it is then
    reported as not audited), a source or required one still raises."""
    types: set[str] = set()
    for h in stores:
        if SCAN in h.adapter.capabilities:
            try:
                types.update(h.adapter.entity_types())
            except StoreError:
                if h.required:
                    raise
    return sorted(types)


def partitions(stores: Stores, entity_type: str, within: Partition) -> list[Partition]:
    """Enough ID ranges that each holds at most about PARTITION_TARGET source records."""
    count = stores.source.adapter.estimate(entity_type) / within.count  # about: no need to read every record
    parts = 1 << max(0, math.ceil(math.log2(max(1.0, count / PARTITION_TARGET))))
    return within.split(parts) if parts > 1 else [within]


class Sink:
    """One store's findings from one pass, gathered in its own thread and merged afterwards."""

    def __init__(self, store: str) -> None:
        self.store = store
        self.ok = 0
        self.findings: list[Finding] = []
        self.foreign = 0  # counted, not kept: another application may have millions
        self.unproven = 0  # likewise: a few kept as samples, names masked
        self.hashed: Counter[str] = Counter()  # ranges and records settled by hashes or read (uuid_forge.rangehash)

    def add(self, finding: Finding) -> None:
        if finding.kind == "foreign":
            self.foreign += 1
            if self.foreign > FOREIGN_SAMPLES:
                return
        elif finding.kind == "unproven":
            self.unproven += 1
            if self.unproven > UNPROVEN_SAMPLES:
                return
        self.findings.append(finding)

    def merge_into(self, report: AuditReport) -> None:
        report.stores.setdefault(self.store, Counter({k: 0 for k in CLASSES}))
        report.stores[self.store]["ok"] += self.ok
        report.stores[self.store]["foreign"] += max(0, self.foreign - FOREIGN_SAMPLES)
        report.stores[self.store]["unproven"] += max(0, self.unproven - UNPROVEN_SAMPLES)
        if self.hashed:
            report.hashed.setdefault(self.store, Counter()).update(self.hashed)
        for f in self.findings:
            report.add(f)


def unproven(store: str, entity_type: str, name: str, reason: str, role: str = "store") -> Finding:
    """The finding of an entry that looks like ours but cannot be proven ours: its name masked,
    why not, and how to make such entries provable. Never acted on."""
    what = ("not copied to any store: not an entity of this type" if role == "source"
            else "not deleted or rewritten")
    return Finding(store, entity_type, mask_name(name), "unproven", f"not proven ours: {reason}; {what}; "
                   + HOW_TO_PROVE)


def prove_orphans(prover: Prover | None, h: StoreHandle, entity_type: str, sink: Sink) -> None:
    """Turn the sink's orphans that cannot be proven ours into "unproven" findings: only orphan
    candidates are read back (get_many), so a consistent store costs nothing. An entry under a
    name in the wrong form cannot be read back to be proven: unproven too. A store that cannot be
    read by ID (a message log, which is never deleted from) keeps its orphans as they are."""
    if prover is None or not any(f.kind == "orphan" for f in sink.findings):
        return
    if READ not in h.adapter.capabilities:
        return
    orphans = [f for f in sink.findings if f.kind == "orphan"]
    sink.findings = [f for f in sink.findings if f.kind != "orphan"]
    by_id = [f for f in orphans if f.raw is None]
    for f in orphans:
        if f.raw is not None:
            sink.add(unproven(h.name, entity_type, f.raw, "stored under a name in the wrong form, which cannot be "
                              "read back to prove it"))
    for batch in chunked(by_id, 500):
        found = h.adapter.get_many(entity_type, [uuid.UUID(f.id) for f in batch])
        proofs = prover.prove(entity_type, found, h.adapter.view)
        for f in batch:
            proof = proofs.get(uuid.UUID(f.id))
            if proof is None:
                continue  # gone since the scan: nothing to report
            sink.add(f if proof.ok else unproven(h.name, entity_type, f.id, proof.reason))


def prove_source(prover: Prover | None, stores: Stores, entity_type: str, sinks: list[Sink], report: AuditReport,
                 known: Mapping[uuid.UUID, Record] | None = None, flagged: AbstractSet[uuid.UUID] = frozenset()
                 ) -> set[uuid.UUID]:
    """Rule 2, in the source: an entry repair would copy (missing, stale or malformed in some store)
    is proven an entity of this type first. One whose key fields are missing or give another ID is
    reported "unproven" on the source, and its findings in the other stores are dropped, so repair
    never copies it. Only those candidates are read: a consistent audit pays nothing. Returns the
    IDs found unproven. ``flagged``: IDs --verify-keys already reported on the source (malformed,
    with the ID their key fields give): not reported twice, but never copied either."""
    if prover is None or READ not in stores.source.adapter.capabilities:
        return set()
    wanted: set[uuid.UUID] = set()
    for sink in sinks:
        for f in sink.findings:
            if f.kind in _COPIED and len(f.id) == 36:
                wanted.add(uuid.UUID(f.id))
    if not wanted:
        return set()
    bad: dict[uuid.UUID, str] = {}
    for batch in chunked(sorted(wanted), 1000):
        records = {i: known[i] for i in batch if i in known} if known is not None else {}
        rest = [i for i in batch if i not in records]
        if rest:
            records.update(stores.source.adapter.get_many(entity_type, rest))
        for ident, proof in prover.prove(entity_type, records).items():
            if not proof.ok:
                bad[ident] = proof.reason
    if bad:
        names = {str(i) for i in bad}
        for sink in sinks:
            sink.findings = [f for f in sink.findings if not (f.kind in _COPIED and f.id in names)]
        source = Sink(stores.source.name)
        for ident, reason in bad.items():
            if ident not in flagged:
                source.add(unproven(stores.source.name, entity_type, str(ident), reason, role="source"))
        source.merge_into(report)
    return set(bad)


_COPIED = ("missing", "stale", "malformed")  # what repair copies from the source


def full_pass(forge: ForgeView, stores: Stores, entity_type: str, within: Partition, report: AuditReport,
              verify_keys: bool, progress: Callable[[int], None] | None, parts: list[Partition] | None = None,
              hashed: bool = True, source_findings: bool = True) -> None:
    """Source partition first, then every other store's same partition in parallel threads
    (drivers wait on sockets without the GIL, so a pass costs about the slowest store's scan).

    With ``hashed``, a store that can hash what it holds as the source does is compared by
    per-range aggregates computed in both stores, and only the ranges that differ are read
    (uuid_forge.rangehash); ``verify_keys`` reads every source record, so it turns that off.
    Without ``source_findings`` the source's own malformed and foreign entries are not reported
    (another task of the same audit reports them: uuid_forge.partial.plan)."""
    source, others = stores.source.adapter, stores.stores[1:]
    plan = HashPlan(stores, entity_type, enabled=hashed and not verify_keys)
    by_hashes = [h for h in others if plan.covers(h)]
    others = [h for h in others if not plan.covers(h)]
    ranged = [h for h in others if SCAN in h.adapter.capabilities and h.adapter.partitioned_scan]
    whole = [h for h in ranged if onepass.whole_scan(h.adapter)]  # read once, bucketed (uuid_forge.onepass)
    ranged = [h for h in ranged if h not in whole]
    whole_hashed = {h.name: plan.whole[h.name] for h in whole if h.name in plan.whole}  # their scan hashes in the store
    unranged = [h for h in others if SCAN in h.adapter.capabilities and not h.adapter.partitioned_scan]
    readable = [h for h in others if SCAN not in h.adapter.capabilities and READ in h.adapter.capabilities]
    parts = parts or partitions(stores, entity_type, within)  # a task's partition comes sized (uuid_forge.partial)
    prover: Prover | None = getattr(forge, "prover", None)
    report.partitions += len(parts)
    views = {h.adapter.view for h in ranged + readable + unranged + whole}
    # else only hashes and the differing ranges are read
    scanned = bool(ranged or readable or unranged or [h for h in whole if h.name not in whole_hashed])
    # the pool: each log's read and its compare of a partition, each read-once store's read, and the
    # source's first digests; every store's comparisons run on its own thread (_Lanes)
    with ThreadPoolExecutor(max_workers=2 * len(unranged) + len(whole) + 1,
                            thread_name_prefix="uuid-forge-audit") as pool, \
            _Ahead() as digesting, \
            logspill.LogPass(pool, unranged, entity_type, within, _compare_items) as logs, \
            onepass.OnePass(pool, whole, entity_type, within, parts, compare, Sink, prove_orphans,
                            viewed_fingerprint, digests=whole_hashed, source=source) as once, \
            _Lanes() as lanes:
        backlog: deque[_Behind] = deque()  # partitions whose read-once comparisons are not all in
        # a message log is read once, beside the partitions, its latest state spilled to disk;
        # then it is compared partition by partition like the other stores (uuid_forge.logspill)
        # the source's digest of each partition, asked in order by one thread of its own from the start:
        # ready when the read-once store is read, instead of asked partition after partition then
        algorithms = sorted(set(whole_hashed.values()))
        ahead = {(p, a): digesting.submit(source.range_digests, entity_type, once.first_ranges(p, a), a)
                 for p in parts for a in algorithms}
        for a in algorithms:
            once.source_digests(a, {p: ahead[p, a] for p in parts})
        for part in parts:
            part_started = time.perf_counter()
            expected: dict[uuid.UUID, str | None] = {}
            protected: set[uuid.UUID] = set()  # IDs the source holds in another form: never orphans elsewhere
            asked = plan.source_first(part) if by_hashes else None
            first = pool.submit(asked[2]) if asked is not None else None
            held: int | None = None  # the source's records, counted by its digests when it is not scanned
            hashing: list[Future[Sink | _Lost]] = []
            # the source's digest of the partition whole, per algorithm a read-once store hashes by
            whole_first = {a: ahead[part, a] for a in algorithms}
            if first is not None and not scanned:  # the stores hash while the source does
                hashing = [lanes.submit(h, _compare_by_hashes, plan, part, None, first, prover)
                           for h in by_hashes if h.name not in report.not_audited]
                digests = first.result()
                held = (sum(d[0] for d in digests if d is not None) if digests is not None and None not in digests
                        else sum(1 for _ in source.scan(entity_type, part)))
            elif whole_first and not scanned:  # counted by its digest, as above; unhashable: scanned after all
                digests = next(iter(whole_first.values())).result()
                held = sum(d[0] for d in digests if d is not None) if digests is not None and None not in digests \
                    else None
            for ident, fp in (source.scan(entity_type, part, include_malformed=True) if held is None else ()):
                if isinstance(ident, (MalformedID, ForeignEntry)):
                    if source_findings:
                        report.stores.setdefault(stores.source.name, Counter({k: 0 for k in CLASSES}))
                        report.add(_malformed(stores.source.name, entity_type, ident))
                    if isinstance(ident, MalformedID) and ident.id is not None:
                        protected.add(ident.id)
                else:
                    expected[ident] = fp
            by_view = _viewed_expectations(source, entity_type, part, expected, views)
            flagged = _verify_keys(forge, stores, entity_type, list(expected), report) if verify_keys else set()
            jobs = [lanes.submit(h, _scan_and_compare, entity_type, part, by_view[h.adapter.view], prover,
                                 frozenset(protected))
                    for h in ranged if h.name not in report.not_audited]
            jobs += [lanes.submit(h, _compare_by_reads, entity_type, by_view[h.adapter.view], prover)
                     for h in readable if h.name not in report.not_audited]
            jobs += logs.ready(part, by_view)
            jobs += hashing or [lanes.submit(h, _compare_by_hashes, plan, part, expected, first, prover)
                                for h in by_hashes if h.name not in report.not_audited]
            read_once = [lanes.submit(h, once.compare, entity_type, part, by_view[h.adapter.view], prover,
                                      frozenset(protected)) if h.name not in whole_hashed else
                         lanes.submit(h, once.compare_hashed, entity_type, part,
                                     expected if held is None else None, whole_first[whole_hashed[h.name]], prover,
                                     frozenset(protected))
                         for h in whole if h.name not in report.not_audited]
            sinks: list[Sink] = []
            for job in jobs:
                sink = job.result()
                if isinstance(sink, _Lost):
                    report.not_audited[sink.store] = sink.reason
                else:
                    sinks.append(sink)
            sinks += [late.result() for late in logs.ready(part, by_view, wait=part is parts[-1])]  # a log read meanwhile
            backlog.append(_Behind(part, part_started, len(expected) if held is None else held, sinks, read_once,
                                   flagged))
            # the next partitions go on while a read-once store is still being read: up to BEHIND
            # partitions wait for it (their source records held), each finished in order once it is in
            while backlog and (len(backlog) > BEHIND or all(j.done() for j in backlog[0].read_once)):
                _finish(backlog.popleft(), prover, stores, entity_type, report, progress)
        while backlog:
            _finish(backlog.popleft(), prover, stores, entity_type, report, progress)
        for sink in logs.rest(lambda p: _viewed_expectations(source, entity_type, p, None, views)):
            sink.merge_into(report)
        for h in whole:  # its entries without an ID, once per pass
            lost = None if h.name in report.not_audited else _guarded(h, once.others)
            if isinstance(lost, _Lost):
                report.not_audited[lost.store] = lost.reason
            elif lost is not None:
                lost.merge_into(report)
    if report.not_audited:  # a store lost half-way: its partial counts would read as the whole
        report.findings = [f for f in report.findings if f.store not in report.not_audited]
        for name in report.not_audited:
            report.stores.pop(name, None)
            report.foreign_samples.pop(name, None)


class _Behind:
    """A partition compared in every store but the read-once ones, whose comparisons may still wait
    for the store's one read (uuid_forge.onepass): finished, in order, when they are in."""

    def __init__(self, part: Partition, started: float, count: int, sinks: list[Sink],
                 read_once: list[Future[Sink | _Lost]], flagged: set[uuid.UUID]) -> None:
        self.part, self.started, self.count, self.sinks = part, started, count, sinks
        self.read_once, self.flagged = read_once, flagged


def _finish(behind: _Behind, prover: Prover | None, stores: Stores, entity_type: str, report: AuditReport,
            progress: Callable[[int], None] | None) -> None:
    """A partition's read-once comparisons (last, as a one-pass task's findings sort among the
    partition tasks', uuid_forge.partial), its source proofs, its sinks merged, its time and progress."""
    sinks = list(behind.sinks)
    for job in behind.read_once:
        sink = job.result()
        if isinstance(sink, _Lost):
            report.not_audited[sink.store] = sink.reason
        else:
            sinks.append(sink)
    prove_source(prover, stores, entity_type, sinks, report, flagged=behind.flagged)
    for sink in sinks:
        sink.merge_into(report)
    part = behind.part
    report.partition_times.append((entity_type, f"{part.index + 1}/{part.count}",
                                   time.perf_counter() - behind.started, behind.count))
    if progress is not None:
        progress(behind.count)


class _Lanes:
    """One thread per store for its comparisons of each partition. Why: glibc keeps a malloc arena
    per thread (up to 8 per core) and what a thread frees stays in its arena, so comparisons handed
    to whichever thread of a shared pool was free left each thread's arena holding a partition's
    worth in turn, and a long audit's RSS crept up partition after partition (200k entities in five
    stores: 122 to 147 MiB over 16 partitions; with two arenas, flat at 132). A store's comparisons
    on a thread of its own reuse that one arena."""

    def __init__(self) -> None:
        self._lanes: dict[str, ThreadPoolExecutor] = {}

    def __enter__(self) -> Self:
        return self

    def submit(self, h: StoreHandle, compare: Callable[..., Sink], *args: Any) -> Future[Sink | _Lost]:
        """``compare(h, *args)`` on ``h``'s thread, guarded as :func:`_guarded`."""
        lane = self._lanes.get(h.name)
        if lane is None:
            lane = self._lanes[h.name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="uuid-forge-audit-store")
        return lane.submit(_guarded, h, compare, *args)

    def __exit__(self, *exc: object) -> None:
        for lane in self._lanes.values():
            lane.shutdown(wait=True, cancel_futures=True)


class _Ahead(ThreadPoolExecutor):
    """One thread asking the source for digests ahead of the partitions (uuid_forge.rangehash); on
    leaving, what it has not started is cancelled, not waited for."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="uuid-forge-audit-digests")

    def __exit__(self, *exc: object) -> None:
        self.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class _Lost:
    """An optional store that stopped answering during the audit: left out of the report."""

    store: str
    reason: str


def _guarded(h: StoreHandle, compare: Callable[..., Sink], *args: Any) -> Sink | _Lost:
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


def _scan_and_compare(h: StoreHandle, entity_type: str, part: Partition, expected: dict[uuid.UUID, str | None],
                      prover: Prover | None = None, protected: frozenset[uuid.UUID] = frozenset()) -> Sink:
    sink = Sink(h.name)
    compare(h, entity_type, expected, h.adapter.scan(entity_type, part, include_malformed=True), sink, protected)
    prove_orphans(prover, h, entity_type, sink)
    return sink


def _compare_by_hashes(h: StoreHandle, plan: HashPlan, part: Partition,
                       expected: dict[uuid.UUID, Any] | None, source_first: Any, prover: Prover | None) -> Sink:
    """One store's partition compared by hashes computed in both stores (uuid_forge.rangehash);
    the ranges that differ by their records, as any other store. ``expected``: the source's
    fingerprints of the whole partition when it was scanned already (else its leaves are)."""
    et = plan.entity_type
    sink = Sink(h.name)
    settled, leaves = plan.leaves(h, part, source_first, sink.hashed)
    sink.ok += settled
    if leaves:
        batches = list(chunked(sorted(leaves, key=lambda p: p.lo), 64))  # one query per side per 64 ranges
        truth = ({i: fp for i, fp in expected.items() if within(i, leaves)} if expected is not None
                 else {i: fp for b in batches for i, fp in plan.source.scan_ranges(et, b) if isinstance(i, uuid.UUID)})
        held = [item for b in batches for item in h.adapter.scan_ranges(et, b, include_malformed=True)]
        sink.hashed["read_records"] += len(held)
        compare(h, et, truth, iter(held), sink)
        prove_orphans(prover, h, et, sink)
    return sink


def _log_orphan(entity_type: str, ident: uuid.UUID) -> str:
    """Why a message log's orphan stays, and what ends it: its delete event."""
    return ("not in the source, and its history in this message log has no delete event; kept: an append-only "
            "log cannot delete, and repair publishes no delete event for an orphan. If the entity was deleted, "
            f"publish its delete event: uuid-forge delete --entity {entity_type} --id {ident} --force")


_ABSENT: Any = object()  # not in the source (None is a fingerprint there: an unreadable record)


def compare(h: StoreHandle, entity_type: str, expected: dict[uuid.UUID, str | None],
             items: Iterator[tuple[Any, str | None]], sink: Sink,
             protected: frozenset[uuid.UUID] | set[uuid.UUID] = frozenset()) -> None:
    """Class each scanned item against the source's ``expected`` fingerprints. An ID in
    ``protected`` (the source holds it, in another text form) is never an orphan: the source's
    malformed finding says what to fix, and nothing is deleted for it."""
    seen: set[uuid.UUID] = set()
    held_text = READ not in h.adapter.capabilities
    for ident, fp in items:
        if type(ident) is not uuid.UUID:  # the rare kinds first; an ID takes one lookup below (the hot loop)
            if isinstance(ident, ForeignEntry):
                sink.add(_malformed(h.name, entity_type, ident))  # not ours: never marks an ID as present
                continue
            if isinstance(ident, MalformedID):
                if ident.id is not None and ident.id in protected and ident.id not in expected:
                    continue
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
        want = expected.get(ident, _ABSENT)
        if want is _ABSENT:
            if ident not in protected:
                # a log cannot be read by ID: the data text it held names the entity (uuid_forge.entitynames)
                held = getattr(fp, "text", None) if READ not in h.adapter.capabilities else None
                sink.add(Finding(h.name, entity_type, str(ident), "orphan", _log_orphan(entity_type, ident)
                                 if h.adapter.append_only else "not in the source", held=held))
            continue
        seen.add(ident)
        if (fp is not None and fp == want) or same_fingerprint(fp, want):  # both from the data each side holds
            sink.ok += 1
        else:
            sink.add(Finding(h.name, entity_type, str(ident), "stale", "data differs from the source",
                             held=getattr(fp, "text", None) if held_text else None))
    for ident in expected.keys() - seen:
        sink.add(Finding(h.name, entity_type, str(ident), "missing", "in the source, not in this store"))


def describe_stale(stores: Stores, report: AuditReport, show_values: bool = False) -> None:
    """Name the fields each stale record differs in: after the partitions are compared, the stale
    IDs are read from the source and the store in batches (get_many) and their data diffed. A
    store that cannot be read back (a message log) is diffed with the data its scan read."""
    handles = {h.name: h for h in stores.stores}
    groups: dict[tuple[str, str], list[int]] = {}
    for n, f in enumerate(report.findings):
        if f.kind == "stale" and f.store in handles and f.store != stores.source.name:
            groups.setdefault((f.store, f.entity_type), []).append(n)
    source = stores.source.adapter
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
    """A value as fingerprints (and the ID scheme) see it: its canonical form, text as text."""
    return _canonical_or_repr(value)


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


def _compare_by_reads(h: StoreHandle, entity_type: str, expected: dict[uuid.UUID, str | None],
                      prover: Prover | None = None) -> Sink:
    sink = Sink(h.name)
    for batch in chunked(list(expected), 500):
        found = h.adapter.get_many(entity_type, batch)
        compare(h, entity_type, {i: expected[i] for i in batch},
                 ((i, viewed_fingerprint(h.adapter.view, r)) for i, r in found.items()), sink)
    prove_orphans(prover, h, entity_type, sink)
    return sink


def _compare_items(h: StoreHandle, entity_type: str, expected: dict[uuid.UUID, str | None],
                   items: Iterator[tuple[Any, str | None]]) -> Sink:
    sink = Sink(h.name)
    compare(h, entity_type, expected, items, sink)
    return sink


def _verify_keys(forge: ForgeView, stores: Stores, entity_type: str, ids: list[uuid.UUID], report: AuditReport) -> set[uuid.UUID]:
    """Flag source records whose ID is not what the scheme gives for their key: for a declared
    type (:class:`~uuid_forge.entitytypes.EntityType`) the key fields in the record's data, else
    the key stored beside it. IDs are recomputed a batch at a time by the one ownership rule
    (:class:`~uuid_forge.ownership.Prover`, exactly the configured ID function)."""
    if READ not in stores.source.adapter.capabilities:
        return set()
    prover: Prover = getattr(forge, "prover", None) or Prover(forge.generator, getattr(forge, "types", {}))
    declared = getattr(forge, "types", {}).get(entity_type)
    # under an ID configuration that differs, one summary (counts) instead of a finding per record
    summary = next((f.setdefault("verify_keys", {"checked": 0, "mismatched": 0}) for f in report.id_config
                    if f["entity_type"] == entity_type), None)
    if declared is not None and declared.salt_missing and summary is None:  # no marker to compare: not checkable
        note = (f"--verify-keys skipped for {entity_type!r}: its salt comes from ${declared.salt_env}, which is not "
                "set, so every ID would seem wrong")
        if note not in report.warnings:
            report.warnings.append(note)
        return set()
    declared = declared if declared is not None and declared.key else None
    source = stores.source.name

    flagged: set[uuid.UUID] = set()

    def flag(ident: uuid.UUID, detail: str) -> None:
        flagged.add(ident)
        report.stores.setdefault(source, Counter({k: 0 for k in CLASSES}))
        report.add(Finding(source, entity_type, str(ident), "malformed", detail))

    for batch in chunked(ids, 1000):
        keyed: list[tuple[uuid.UUID, Any]] = []
        for ident, record in stores.source.adapter.get_many(entity_type, batch).items():
            key, why = prover.key_of(entity_type, record)
            if key is not None:
                keyed.append((ident, key))
            elif declared is not None:  # no ID can be checked (or rebuilt) without its key fields
                flag(ident, f"{why}: its ID cannot be checked")
        for (ident, _), expected in zip(keyed, prover.ids_from_keys(entity_type, [k for _, k in keyed])):
            if summary is not None and expected is not None:
                summary["checked"] += 1
                summary["mismatched"] += expected != ident
            elif expected is not None and expected != ident:
                flag(ident, f"key fields give {expected}" if declared is not None
                     else f"the scheme gives {expected} for the stored key")
    return flagged


def held_in_another_form(source: Any, entity_type: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, MalformedID]:
    """The IDs of ``ids`` the source holds under a name in another text form (what its scan reports
    as malformed), found by scanning only the narrowest partition around each (1/2**64 of the ID
    space): a point audit pays for it only for its orphan candidates."""
    out: dict[uuid.UUID, MalformedID] = {}
    if SCAN not in source.capabilities:
        return out
    for ident in sorted(ids):
        part = Partition(ident.int >> 64, 1 << 64)
        for item, _ in source.scan(entity_type, part, include_malformed=True):
            if isinstance(item, MalformedID) and item.id == ident:
                out[ident] = item
                break
    return out


def point_pass(forge: ForgeView | None, stores: Stores, entity_type: str, targets: list[uuid.UUID], report: AuditReport,
               verify_keys: bool = False, prover: Prover | None = None) -> None:
    """Compare ``targets`` (IDs) in every store with the source, read by ID (``verify_keys`` needs
    ``forge``, whose scheme recomputes the IDs). Orphans and what repair would copy are proven
    by ``prover`` (by default the forge's): what cannot be proven is "unproven"."""
    prover = prover if prover is not None else getattr(forge, "prover", None)
    source = stores.source.adapter
    readable = [h for h in stores.stores[1:] if READ in h.adapter.capabilities]
    for batch in chunked(targets, 500):
        in_source = source.get_many(entity_type, batch)
        found = {h.name: h.adapter.get_many(entity_type, batch) for h in readable}
        # orphan candidates the source holds in another text form: never a reason to delete (rule 2)
        other_form = held_in_another_form(source, entity_type,
                                          {i for got in found.values() for i in got if i not in in_source})
        for ident in batch:
            if ident not in in_source:
                report.stores.setdefault(stores.source.name, Counter({k: 0 for k in CLASSES}))
                report.add(_malformed(stores.source.name, entity_type, other_form[ident]) if ident in other_form
                           else Finding(stores.source.name, entity_type, str(ident), "missing", "not in the source"))
        if verify_keys and forge is not None:
            _verify_keys(forge, stores, entity_type, list(in_source), report)
        sinks: list[Sink] = []
        for h in readable:
            view = h.adapter.view
            expected = {i: viewed_fingerprint(view, r) for i, r in in_source.items()}
            sink = Sink(h.name)
            compare(h, entity_type, expected, ((i, viewed_fingerprint(view, r)) for i, r in found[h.name].items()),
                    sink, set(other_form))
            prove_orphans(prover, h, entity_type, sink)
            sinks.append(sink)
        prove_source(prover, stores, entity_type, sinks, report, in_source)
        for sink in sinks:
            sink.merge_into(report)


