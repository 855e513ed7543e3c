"""A store whose scan is not ordered by ID, read once per audit and bucketed by partition.

Why: Redis SCAN walks the whole keyspace whatever ID range is asked for (``whole_scan = True`` on
the adapter), so auditing it partition by partition read it once per partition: about 240 s per
partition at 100M keys, and more partitions or workers did not help. Here such a store is read
once per audit pass, in a thread beside the source's first partition; each item goes to the
bucket of its partition as it streams. The buckets stay in memory while they hold at most
:data:`MEMORY_ITEMS` items; past that, everything is moved to a private temporary SQLite file
(uuid_forge.logspill: mode 0600 in a new 0700 directory, removed when the pass ends, on errors
too) and the rest of the scan goes there. Then each partition is compared with the source's
same partition exactly as a partitioned scan would be (uuid_forge.compare.compare), and the
entries without an ID (foreign keys, malformed names that decode to nothing) once per pass.

Only the fingerprint's 32 hex digits are held, never the value: where they differ from the
source's, the few such IDs are read back by ID (get_many) and compared again from the text as
stored, so a hand-reformatted JSON value is no finding, exactly as in a partitioned scan.

Memory: about 200 bytes per held item up to :data:`MEMORY_ITEMS` (40 MB at the default), then
SQLite's 2 MiB page cache; disk: about 70 bytes per entry of the audited range once spilled.
A key SCAN returns twice (Redis resizing its table mid-scan) is held once.
"""

from __future__ import annotations

import bisect
import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future
from types import TracebackType
from typing import Any, Self

from .contract import READ, chunked
from .logspill import LogSpill
from .record import MalformedID, Partition, same_fingerprint

__all__ = ["MEMORY_ITEMS", "Buckets", "OnePass", "read_once", "recheck_stale", "whole_scan"]

#: items held in memory per store and pass before the buckets move to a temporary file
MEMORY_ITEMS = 200_000

ScanItem = tuple[Any, "str | None"]


def whole_scan(adapter: Any) -> bool:
    """Whether ``adapter``'s scan walks the whole store whatever the partition (Redis SCAN)."""
    return bool(getattr(adapter, "whole_scan", False)) and bool(getattr(adapter, "partitioned_scan", True))


class Buckets:
    """One store's scan items, by partition of ``parts``: in memory, then in a spill file.

    ``add`` takes items in scan order; ``finish`` ends the writing; ``items(part)`` gives the
    items of one of ``parts`` (in scan order, or in ID order once spilled), ``others()`` the
    entries without an ID.
    """

    def __init__(self, within: Partition, parts: list[Partition], memory_items: int | None = None) -> None:
        self.within = within
        self.parts = parts
        self._los = [p.lo for p in parts]
        self._index = {p: n for n, p in enumerate(parts)}
        self._mem: list[dict[Any, Any]] = [{} for _ in parts]
        self._others: list[ScanItem] = []
        self._limit = MEMORY_ITEMS if memory_items is None else memory_items
        self.held = 0
        self.spill: LogSpill | None = None
        self.count = 0

    def add(self, item: ScanItem) -> None:
        """One scan item: kept in its partition's bucket (its fingerprint as plain text)."""
        self.add_all((item,))

    def add_all(self, items: Iterable[ScanItem]) -> None:
        """Scan items in scan order. A well-formed ID is held as ``{id: digest}`` in its bucket (the
        fast path: most items), a name in another form as ``{(id, name): item}``."""
        mem, los, place = self._mem, self._los, bisect.bisect_right
        whole, within = self.within.count == 1, self.within
        for ident, fp in items:
            if fp is not None:
                fp = str.__str__(fp)  # the digest only: never the value behind a TextFingerprint
            self.count += 1
            if self.spill is not None:
                self.spill.add((ident, fp))
                continue
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
                self._move_to_disk()
                mem = self._mem

    def _move_to_disk(self) -> None:
        spill = LogSpill(self.within, by_name=True)
        try:
            for bucket in self._mem:
                for item in _held(bucket):
                    spill.add(item)
            for item in self._others:
                spill.add(item)
        except BaseException:
            spill.close()
            raise
        self.spill, self._mem, self._others, self.held = spill, [{} for _ in self.parts], [], 0

    def finish(self) -> Buckets:
        if self.spill is not None:
            self.spill.finish()
        return self

    def items(self, part: Partition) -> Iterator[ScanItem]:
        if self.spill is not None:
            yield from self.spill.items(part)
            return
        n = self._index.get(part)
        if n is None:
            raise ValueError(f"partition {part} is not one of this pass's partitions")
        yield from _held(self._mem[n])  # in scan order, as a partitioned scan gives them

    def others(self) -> Iterator[ScanItem]:
        if self.spill is not None:
            yield from self.spill.others()
        else:
            yield from self._others

    def close(self) -> None:
        """Free the buckets and remove the spill file, if any (safe to call twice)."""
        self._mem, self._others = [{} for _ in self.parts], []
        if self.spill is not None:
            self.spill.close()


def read_once(adapter: Any, entity_type: str, within: Partition, parts: list[Partition],
              memory_items: int | None = None) -> Buckets:
    """Scan ``adapter``'s ``entity_type`` once over ``within`` into new, finished :class:`Buckets`."""
    out = Buckets(within, parts, memory_items)
    try:
        out.add_all(adapter.scan(entity_type, within, include_malformed=True))
        return out.finish()
    except BaseException:
        out.close()
        raise


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
                 memory_items: int | None = None) -> None:
        self.handles, self.entity_type = handles, entity_type
        self._pool, self._within, self._parts = pool, within, parts
        self._compare, self._sink, self._prove, self._viewed = compare_items, new_sink, prove, viewed
        self._memory = memory_items
        self._reads: dict[str, Future[Buckets]] = {}

    def __enter__(self) -> Self:
        for h in self.handles:
            self._reads[h.name] = self._pool.submit(read_once, h.adapter, self.entity_type, self._within,
                                                    self._parts, self._memory)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        for future in self._reads.values():
            if not future.cancel():
                with contextlib.suppress(BaseException):
                    future.result().close()  # waits for a read still running, then frees it

    def buckets(self, name: str) -> Buckets:
        """The store's buckets, once read (its read's error raised here, for each partition)."""
        return self._reads[name].result()

    def compare(self, h: Any, entity_type: str, part: Partition, expected: dict[uuid.UUID, Any],
                prover: Any = None, protected: frozenset[uuid.UUID] = frozenset()) -> Any:
        """The sink of ``h``'s bucket of ``part`` against the source's ``expected``, as
        uuid_forge.compare's partitioned scan gives it."""
        sink = self._sink(h.name)
        self._compare(h, entity_type, expected, self.buckets(h.name).items(part), sink, protected)
        recheck_stale(h, entity_type, expected, sink, self._viewed)
        self._prove(prover, h, entity_type, sink)
        return sink

    def others(self, h: Any) -> Any:
        """The sink of ``h``'s entries without an ID (compared once per pass, not per partition)."""
        sink = self._sink(h.name)
        self._compare(h, self.entity_type, {}, self.buckets(h.name).others(), sink)
        return sink


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


def _held(bucket: dict[Any, Any]) -> Iterator[ScanItem]:
    """A bucket's items as the scan gave them (a well-formed ID's entry is its digest alone)."""
    for name, value in bucket.items():
        yield (name, value) if type(name) is uuid.UUID else value
