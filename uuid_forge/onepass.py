"""A store whose scan is not ordered by ID, read once per audit and bucketed by partition.

Why: Redis SCAN walks the whole keyspace whatever ID range is asked for (``whole_scan = True`` on
the adapter), so auditing it partition by partition read it once per partition: about 240 s per
partition at 100M keys, and more partitions or workers did not help. Here such a store is read
once per audit pass, in a thread beside the source's first partition; each item goes to the
bucket of its partition as it streams. The buckets stay in memory while they hold at most
:data:`MEMORY_ITEMS` items; past that they become write buffers, appended to one private
temporary file per partition each time they fill again (:class:`SpillFiles`: a new 0700
directory, files 0600, never through a link, removed when the pass ends, on errors too). Then
each partition is compared with the source's same partition exactly as a partitioned scan would
be (uuid_forge.compare.compare), and the entries without an ID (foreign keys, malformed names
that decode to nothing) once per pass.

A store with ``read_apart`` (MongoDB and Elasticsearch with ``read_once``) is read by a process of
its own into this pass's spill files (uuid_forge.scanprocess), so that decoding its documents does
not share this process's interpreter lock; its buckets are then read back as a spill made here.

Only the fingerprint's 32 hex digits are held, never the value: where they differ from the
source's, the few such IDs are read back by ID (get_many) and compared again from the text as
stored, so a hand-reformatted JSON value is no finding, exactly as in a partitioned scan.

Where the source can hash by an algorithm the store hashes by in place (Redis: a script's sha1 of
each value, ``scan_digests``), the buckets hold that hash (an int) instead, and each partition is
compared by per-range sums (:meth:`OnePass.compare_hashed`, uuid_forge.rangehash): only the keys of
the ranges that differ are read, by ID.

Memory: about 150 bytes per held item up to :data:`MEMORY_ITEMS` (about 3 MB at the default),
then the same buffers plus one partition read back at a time; disk: about 60 bytes per key of
the audited range once spilled. A name SCAN returns twice (Redis resizing its table mid-scan)
is held once.
"""

from __future__ import annotations

import bisect
import contextlib
import marshal
import os
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, Self

from .cellsums import CellSums, aligned, cell_of, cell_partition, cells_of
from .contract import READ, chunked
from .errors import SpillError, StoreError
from .privatefile import create_private
from .rangehash import Digest
from .rangehash import bisect as bisect_ranges
from .record import ForeignEntry, MalformedID, Partition, same_fingerprint
from .scanprocess import reopen_spec, run_apart
from .uuidints import uuid_of_bytes

__all__ = ["MEMORY_ITEMS", "Buckets", "OnePass", "SpillFiles", "read_once", "recheck_stale", "whole_scan"]

#: items held in memory per store and pass before the buckets move to a temporary file: about one
#: partition's worth (uuid_forge.compare.PARTITION_TARGET), so an audit's memory stays bounded by
#: the partition size, not by the store's size (integration/test_memory.py)
MEMORY_ITEMS = 20_000

ScanItem = tuple[Any, "str | None"]


def whole_scan(adapter: Any) -> bool:
    """Whether ``adapter``'s scan walks the whole store whatever the partition (Redis SCAN)."""
    return bool(getattr(adapter, "whole_scan", False)) and bool(getattr(adapter, "partitioned_scan", True))


class Buckets:
    """One store's scan items, by partition of ``parts``: in memory, then in spill files.

    ``add_all`` takes items in scan order; ``finish`` ends the writing; ``items(part)`` gives the
    items of one of ``parts`` (in scan order; a name SCAN gave twice once), ``others()`` the
    entries without an ID. Past ``memory_items`` held items the buckets become write buffers:
    each is appended to its partition's own file whenever they hold that many again.
    """

    def __init__(self, within: Partition, parts: list[Partition], memory_items: int | None = None,
                 digests: bool = False) -> None:
        self.within = within
        self.digests = digests  # items hold hashes computed in the store (ints), not fingerprints
        self.parts = parts
        self._los = [p.lo for p in parts]
        self._index = {p: n for n, p in enumerate(parts)}
        self._mem: list[dict[Any, Any]] = [{} for _ in parts]
        self._others: list[ScanItem] = []
        self._limit = MEMORY_ITEMS if memory_items is None else memory_items
        self.held = 0
        self.spill: SpillFiles | None = None
        self.count = 0

    def add(self, item: ScanItem) -> None:
        """One scan item: kept in its partition's bucket (its fingerprint as plain text)."""
        self.add_all((item,))

    def add_all(self, items: Iterable[ScanItem]) -> None:
        """Scan items in scan order. A well-formed ID is held as ``{id: digest}`` in its bucket (the
        fast path: most items), a name in another form as ``{(id, name): item}``."""
        mem, los, place = self._mem, self._los, bisect.bisect_right
        whole, within, plain = self.within.count == 1, self.within, not self.digests
        for ident, fp in items:
            if fp is not None and plain:
                fp = str.__str__(fp)  # the digest only: never the value behind a TextFingerprint
            self.count += 1
            if type(ident) is uuid.UUID:
                if whole or within.contains(ident):
                    bucket = mem[place(los, ident.int) - 1]
                    size = len(bucket)
                    bucket[ident] = fp
                    self.held += len(bucket) - size
            elif isinstance(ident, MalformedID) and ident.id is not None:
                if whole or within.contains(ident.id):
                    bucket = mem[place(los, ident.id.int) - 1]
                    size = len(bucket)
                    bucket[(ident.id, ident.raw)] = (ident, fp)  # a name in another form: an entry of its own
                    self.held += len(bucket) - size
            else:
                self._others.append((ident, fp))
                self.held += 1
            if self.held > self._limit:
                self._flush()

    def _flush(self) -> None:
        """Every bucket appended to its partition's file, and emptied (the first time, the files made)."""
        if self.spill is None:
            self.spill = SpillFiles()
        for n, bucket in enumerate(self._mem):
            if bucket:
                self.spill.append(str(n), [(k.bytes, v) if type(k) is uuid.UUID else (k[0].bytes, v[1], v[0].raw,
                                                                                       v[0].reason)
                                           for k, v in bucket.items()])
                bucket.clear()  # in place: add_all holds the list of buckets
        if self._others:
            self.spill.append("others", [(isinstance(i, ForeignEntry), i.raw, i.reason, fp) for i, fp in self._others])
            self._others.clear()
        self.held = 0

    def finish(self) -> Buckets:
        if self.spill is not None:
            self._flush()
        return self

    def items(self, part: Partition) -> Iterator[ScanItem]:
        n = self._index.get(part)
        if n is None:
            raise ValueError(f"partition {part} is not one of this pass's partitions")
        if self.spill is None:
            yield from _held(self._mem[n])  # in scan order, as a partitioned scan gives them
            return
        held: dict[Any, Any] = {}  # one partition in memory at a time, a repeated name once
        for rows in self.spill.read(str(n)):
            for row in rows:
                ident = uuid_of_bytes(row[0])
                if len(row) == 2:
                    held[ident] = row[1]
                else:
                    held[(ident, row[2])] = (MalformedID(row[2], row[3], ident), row[1])
        yield from _held(held)

    def others(self) -> Iterator[ScanItem]:
        if self.spill is None:
            yield from self._others
            return
        for rows in self.spill.read("others"):
            for foreign, raw, reason, fp in rows:
                yield (ForeignEntry(raw, reason) if foreign else MalformedID(raw, reason)), fp

    def close(self) -> None:
        """Free the buckets and remove the spill files, if any (safe to call twice)."""
        self._mem, self._others = [{} for _ in self.parts], []
        if self.spill is not None:
            self.spill.close()


class SpillFiles:
    """Append-only private files, one per partition, in a new private directory.

    Why not the message log's SQLite file (uuid_forge.logspill): a log needs its latest event per
    entity, an index; a keyspace only needs its items by partition. Appending to a file per
    partition writes sequentially, where inserting random IDs into one B-tree cost about 37k
    items/s once past SQLite's page cache. Each append is one ``marshal`` blob with its length
    (rows of bytes, text and None only); each partition's file is read back whole, one at a time.
    The directory is ``tempfile.mkdtemp`` (mode 0700) under ``TMPDIR``, each file created 0600
    and never through a link (uuid_forge.privatefile), everything removed by :meth:`close`.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="uuid-forge-onepass-", dir=directory)
        self.bytes = 0

    @classmethod
    def existing(cls, path: str) -> SpillFiles:
        """The spill files of a directory another process made (uuid_forge.scanprocess): appended to there."""
        spill = cls.__new__(cls)
        spill.dir, spill.bytes = path, 0
        return spill

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, f"{name}.bin")

    def append(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        path = self._path(name)
        blob = marshal.dumps(rows)
        try:
            if not os.path.exists(path):
                create_private(path, "audit spill file")
            with open(path, "ab") as f:
                f.write(len(blob).to_bytes(8, "big") + blob)
        except OSError as err:
            raise SpillError(f"audit spill file {path}: cannot write it ({self.bytes} bytes written so far): "
                             f"{err.strerror or err}") from None
        self.bytes += len(blob) + 8

    def read(self, name: str) -> Iterator[list[tuple[Any, ...]]]:
        path = self._path(name)
        if not os.path.exists(path):
            return
        try:
            with open(path, "rb") as f:
                while head := f.read(8):
                    yield marshal.loads(f.read(int.from_bytes(head, "big")))
        except (OSError, ValueError, EOFError) as err:
            raise SpillError(f"audit spill file {path}: cannot read it back: {err}") from None

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def read_once(adapter: Any, entity_type: str, within: Partition, parts: list[Partition],
              memory_items: int | None = None, algorithm: str | None = None) -> Buckets:
    """Scan ``adapter``'s ``entity_type`` once over ``within`` into new, finished :class:`Buckets`;
    with ``algorithm``, each record's hash computed in the store (``scan_digests``) in place of its
    fingerprint. A store with ``read_apart`` is scanned by a process of its own into the buckets'
    spill files (uuid_forge.scanprocess)."""
    out = Buckets(within, parts, memory_items, digests=algorithm is not None)
    try:
        spec = reopen_spec(adapter)
        if spec is None:
            out.add_all(_scan_items(adapter, entity_type, within, algorithm))
            return out.finish()
        out.spill = SpillFiles()
        out.count = run_apart(spec, f"reading {entity_type}", fill_spill, entity_type, within, parts, out.spill.dir,
                              algorithm, memory_items)
        return out
    except BaseException:
        out.close()
        raise


def fill_spill(adapter: Any, entity_type: str, within: Partition, parts: list[Partition], directory: str,
               algorithm: str | None, memory_items: int | None) -> int:
    """In a process of its own (uuid_forge.scanprocess): ``adapter`` scanned into spill files in
    ``directory``, which the caller made and reads back; the number of items scanned."""
    out = Buckets(within, parts, memory_items, digests=algorithm is not None)
    out.spill = SpillFiles.existing(directory)
    out.add_all(_scan_items(adapter, entity_type, within, algorithm))
    out.finish()
    return out.count


def _scan_items(adapter: Any, entity_type: str, within: Partition, algorithm: str | None) -> Iterable[ScanItem]:
    """The store's scan items: its records' fingerprints, or with ``algorithm`` their hashes computed in the store."""
    if algorithm is None:
        return adapter.scan(entity_type, within, include_malformed=True)
    items = adapter.scan_digests(entity_type, within, algorithm)
    if items is None:
        raise StoreError(f"{adapter.url()}: cannot hash {entity_type} by {algorithm} after all")
    return items


Compare = Callable[..., Any]  # compare(handle, entity_type, expected, items, sink, protected)


class OnePass:
    """The whole-scan stores of one audit pass over one type: each read once into buckets in
    ``pool`` as the pass starts, then compared partition by partition (:meth:`compare`).

    ``compare_items`` is uuid_forge.compare.compare, ``new_sink`` makes a store's sink, ``prove``
    proves its orphans (uuid_forge.compare.prove_orphans) and ``viewed`` gives a record's
    fingerprint as the store's view sees it (uuid_forge.compare.viewed_fingerprint): given, so
    this module imports nothing of the comparison and no import circle forms.
    """

    def __init__(self, pool: Executor, handles: list[Any], entity_type: str, within: Partition,
                 parts: list[Partition], compare_items: Compare, new_sink: Callable[[str], Any],
                 prove: Callable[[Any, Any, str, Any], None], viewed: Callable[[Any, Any], Any],
                 memory_items: int | None = None, digests: Mapping[str, str] | None = None,
                 source: Any = None) -> None:
        self.handles, self.entity_type = handles, entity_type
        self._pool, self._within, self._parts = pool, within, parts
        self._compare, self._sink, self._prove, self._viewed = compare_items, new_sink, prove, viewed
        self._memory = memory_items
        #: the stores read as hashes computed in the store, and by which algorithm (:meth:`compare_hashed`)
        self.digests: dict[str, str] = dict(digests or {})
        self._source = source
        self._reads: dict[str, Future[Buckets | CellSums]] = {}
        #: the source's digest of each partition whole, per algorithm, asked by the caller (:meth:`source_digests`)
        self._wholes: dict[str, Mapping[Partition, Future[Any]]] = {}
        self._plans: dict[str, dict[Partition, _CellPlan]] = {}
        self._lock = threading.Lock()
        self.cells: set[str] = set()  # set as the pass starts (__enter__)

    def __enter__(self) -> Self:
        aligns = aligned(self._within) and all(aligned(p) for p in self._parts)
        hashed = [h for h in self.handles if h.name in self.digests]
        #: the algorithms whose stores are all summed per cell by themselves (uuid_forge.cellsums):
        #: the source is asked per cell from the start (:meth:`first_ranges`)
        self.cells = {a for a in self.digests.values() if aligns and all(
            h.adapter.sums_cells(self.entity_type, a) for h in hashed if self.digests[h.name] == a)}
        for h in self.handles:
            algorithm = self.digests.get(h.name)
            if algorithm in self.cells:
                self._reads[h.name] = self._pool.submit(_read_cells, h.adapter, self.entity_type, self._within,
                                                        self._parts, self._memory, algorithm)
            else:
                self._reads[h.name] = self._pool.submit(read_once, h.adapter, self.entity_type, self._within,
                                                        self._parts, self._memory, algorithm)
        return self

    def first_ranges(self, part: Partition, algorithm: str) -> list[Partition]:
        """The ranges the source is first asked for ``part`` by ``algorithm``: its cells where the
        stores hashing by it are summed per cell (each differing cell is then read with no further
        query), else ``part`` whole (cut further only where it differs, uuid_forge.rangehash)."""
        return [cell_partition(c) for c in cells_of(part)] if algorithm in self.cells else [part]

    def source_digests(self, algorithm: str, firsts: Mapping[Partition, Future[Any]]) -> None:
        """The source's digests of each partition's :meth:`first_ranges` by ``algorithm``, asked
        already by the caller (so that the source hashes each partition once)."""
        self._wholes[algorithm] = firsts

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        for future in self._reads.values():
            if not future.cancel():
                with contextlib.suppress(BaseException):
                    future.result().close()  # waits for a read still running, then frees it

    def buckets(self, name: str) -> Buckets:
        """The store's buckets, once read (its read's error raised here, for each partition)."""
        read = self._reads[name].result()
        assert isinstance(read, Buckets)
        return read

    def compare(self, h: Any, entity_type: str, part: Partition, expected: dict[uuid.UUID, Any],
                prover: Any = None, protected: frozenset[uuid.UUID] = frozenset()) -> Any:
        """The sink of ``h``'s bucket of ``part`` against the source's ``expected``, as
        uuid_forge.compare's partitioned scan gives it."""
        sink = self._sink(h.name)
        self._compare(h, entity_type, expected, self.buckets(h.name).items(part), sink, protected)
        recheck_stale(h, entity_type, expected, sink, self._viewed)
        self._prove(prover, h, entity_type, sink)
        return sink

    def compare_hashed(self, h: Any, entity_type: str, part: Partition, expected: dict[uuid.UUID, Any] | None,
                       source_first: Future[Any] | None, prover: Any = None,
                       protected: frozenset[uuid.UUID] = frozenset()) -> Any:
        """The sink of ``h``'s bucket of ``part`` held as hashes (uuid_forge.rangehash): the store's
        per-range ``(count, sum)`` summed here from the bucket, the source's asked of the source
        (``source_first``: its digest of ``part`` whole, asked already), agreeing ranges settled,
        differing ones cut down to leaves whose records are read by ID and compared as a scan's
        (``expected``: the source's fingerprints of ``part`` when it was scanned, else its leaves
        are). A range holding an entry that could not be hashed (another Redis type) or a name in
        another form never agrees: it is cut down and read, so it is reported as a scan reports it."""
        read = self._reads[h.name].result()
        if isinstance(read, CellSums):
            return self._compare_cells(h, entity_type, part, expected, read, prover, protected)
        algorithm, source = self.digests[h.name], self._source
        if algorithm in self.cells:  # the source was asked per cell, not for the partition whole
            source_first = None
        sink = self._sink(h.name)
        keyed: list[tuple[int, int | None]] = []
        odd: list[Any] = []  # names in another form (with their ID): read with their leaf
        for ident, held_digest in self.buckets(h.name).items(part):
            if type(ident) is uuid.UUID:
                keyed.append((ident.int, held_digest))  # type: ignore[arg-type]  # an int here (digests=True)
            else:
                odd.append((ident, held_digest))
        ints: list[int] = []
        sums, bad = [0], [0]
        odd_ints = sorted(i.id.int for i, _ in odd)
        place = bisect.bisect_left

        def ordered() -> None:
            """Sorted once, with running sums for any range (needed only once the partition is cut)."""
            if not ints and keyed:
                keyed.sort(key=_first)
                ints.extend(k for k, _ in keyed)
                for _, digest in keyed:
                    sums.append(sums[-1] + (digest or 0))
                    bad.append(bad[-1] + (digest is None))

        def mine(ranges: list[Partition]) -> list[Digest | None]:
            if ranges == [part]:  # the partition whole (most often all that is asked): no sort needed
                values = [d for _, d in keyed]
                whole_never = None in values or bool(odd)
                return [(len(values) + len(odd), -1 if whole_never else sum(d or 0 for d in values))]
            ordered()
            out: list[Digest | None] = []
            for r in ranges:
                a, b = place(ints, r.lo), place(ints, r.hi)
                others = place(odd_ints, r.hi) - place(odd_ints, r.lo)
                never = bad[b] - bad[a] or others
                out.append((b - a + others, -1 if never else sums[b] - sums[a]))  # -1: no source sum is negative
            return out

        settled, leaves = bisect_ranges(lambda rs: source.range_digests(entity_type, rs, algorithm), mine, [part],
                                        sink.hashed, source_first)
        sink.ok += settled
        if not leaves:
            return sink
        ordered()
        leaves.sort(key=lambda p: p.lo)
        ids = [uuid.UUID(int=k) for leaf in leaves for k in ints[place(ints, leaf.lo):place(ints, leaf.hi)]]
        return self._read_leaves(h, entity_type, leaves, ids, odd, expected, sink, prover, protected)

    def _read_leaves(self, h: Any, entity_type: str, leaves: list[Partition], ids: list[uuid.UUID],
                     odd: list[Any], expected: dict[uuid.UUID, Any] | None, sink: Any, prover: Any,
                     protected: frozenset[uuid.UUID]) -> Any:
        """The records of ``leaves`` (sorted ranges): the store's, read by ID (``ids``) plus its
        names in another form (``odd``), compared as a scan's with the source's (from ``expected``
        or scanned)."""
        source, view = self._source, h.adapter.view
        los = [leaf.lo for leaf in leaves]

        def inside(value: int) -> bool:
            n = bisect.bisect_right(los, value) - 1
            return n >= 0 and value < leaves[n].hi

        if expected is not None:
            truth = {i: fp for i, fp in expected.items() if inside(i.int)}
        else:
            truth = {i: fp for batch in chunked(leaves, 64) for i, fp in source.scan_ranges(entity_type, batch)
                     if type(i) is uuid.UUID}
        held: list[Any] = []
        for batch in chunked(ids, 500):  # the records of the leaves, as the store holds them now
            held += [(i, self._viewed(view, r)) for i, r in h.adapter.get_many(entity_type, batch).items()]
        held += [item for item in odd if inside(item[0].id.int)]
        sink.hashed["read_records"] += len(held)
        self._compare(h, entity_type, truth, iter(held), sink, protected)
        self._prove(prover, h, entity_type, sink)
        return sink

    def _compare_cells(self, h: Any, entity_type: str, part: Partition, expected: dict[uuid.UUID, Any] | None,
                       sums: CellSums, prover: Any, protected: frozenset[uuid.UUID]) -> Any:
        """:meth:`compare_hashed` for a store summed per cell by itself (uuid_forge.cellsums): the
        partition settled by its cells' total, else cell by cell; the differing cells' records read."""
        plan = self._cell_plan(h, sums)[part]
        sink = self._sink(h.name)
        sink.ok += plan.settled
        sink.hashed.update(plan.stats)
        if not plan.cells:
            return sink
        leaves = [cell_partition(c) for c in plan.cells]
        return self._read_leaves(h, entity_type, leaves, plan.ids, sums.odd, expected, sink, prover, protected)

    def _cell_plan(self, h: Any, sums: CellSums) -> dict[Partition, _CellPlan]:
        """Once per store and pass: per partition, the records its agreeing cells settle and the
        cells that differ; then one filtered pass lists the store's IDs in all differing cells."""
        with self._lock:
            if h.name in self._plans:
                return self._plans[h.name]
            algorithm, source, et = self.digests[h.name], self._source, self.entity_type
            firsts = self._wholes.get(algorithm, {})
            plans: dict[Partition, _CellPlan] = {}
            for part in self._parts:
                cells = list(cells_of(part))
                asked = firsts.get(part)
                truths = asked.result() if asked is not None else None
                if truths is None or len(truths) != len(cells):  # not asked ahead (or not per cell): asked now
                    truths = []
                    for batch in chunked(cells, 4096):
                        truths += source.range_digests(et, [cell_partition(c) for c in batch], algorithm) or \
                            [None] * len(batch)
                plan = plans[part] = _CellPlan(0, [], Counter())
                for c, t in zip(cells, truths):
                    if t is not None and t == sums.cell(c):
                        plan.settled += t[0]
                    else:
                        plan.cells.append(c)
                if not plan.cells:  # the partition settled whole
                    plan.stats.update(hashed_ranges=1, hashed_records=plan.settled)
                    continue
                plan.stats.update(hashed_ranges=len(cells) - len(plan.cells), hashed_records=plan.settled,
                                  read_ranges=len(plan.cells))
            wanted = [c for p in plans.values() for c in p.cells]
            if wanted:
                by_cell = {c: p for p in plans.values() for c in p.cells}
                for ident in h.adapter.scan_cells(et, wanted):
                    owner = by_cell.get(cell_of(ident))
                    if owner is not None:
                        owner.ids.append(ident)
            self._plans[h.name] = plans
            return plans

    def others(self, h: Any) -> Any:
        """The sink of ``h``'s entries without an ID (compared once per pass, not per partition)."""
        sink = self._sink(h.name)
        read = self._reads[h.name].result()
        self._compare(h, self.entity_type, {}, iter(read.others) if isinstance(read, CellSums) else read.others(),
                      sink)
        return sink


class _CellPlan:
    """One partition of a store summed per cell: records settled, cells to read, and their IDs."""

    def __init__(self, settled: int, cells: list[int], stats: Counter[str]) -> None:
        self.settled, self.cells, self.stats = settled, cells, stats
        self.ids: list[uuid.UUID] = []


def _read_cells(adapter: Any, entity_type: str, within: Partition, parts: list[Partition],
                memory_items: int | None, algorithm: str) -> Buckets | CellSums:
    """The store summed per cell by itself (uuid_forge.cellsums) where it can, else read into buckets."""
    sums = adapter.scan_cell_sums(entity_type, within, algorithm)
    return sums if sums is not None else read_once(adapter, entity_type, within, parts, memory_items, algorithm)


def recheck_stale(h: Any, entity_type: str, expected: Mapping[uuid.UUID, Any], sink: Any,
                  viewed: Callable[[Any, Any], Any]) -> None:
    """Stale findings by digest only, read back by ID and compared from the text as stored: one
    that differs only in formatting (a hand-reformatted JSON value) is ok, as in a scan."""
    if READ not in h.adapter.capabilities:
        return
    stale = [f for f in sink.findings if f.kind == "stale" and f.raw is None]
    if not stale:
        return
    settled: set[str] = set()
    view = h.adapter.view
    for batch in chunked(stale, 500):
        found = h.adapter.get_many(entity_type, [uuid.UUID(f.id) for f in batch])
        for f in batch:
            ident = uuid.UUID(f.id)
            record = found.get(ident)
            if record is not None and same_fingerprint(viewed(view, record), expected.get(ident)):
                settled.add(f.id)
    if settled:
        sink.findings = [f for f in sink.findings if not (f.kind == "stale" and f.raw is None and f.id in settled)]
        sink.ok += len(settled)


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


def _held(bucket: dict[Any, Any]) -> Iterator[ScanItem]:
    """A bucket's items as the scan gave them (a well-formed ID's entry is its digest alone)."""
    for name, value in bucket.items():
        yield (name, value) if type(name) is uuid.UUID else value
