"""Audits by hashes computed in the stores: a partition compared as per-range aggregates, and
only the ranges that differ read record by record.

Where the source and a store can both hash what they hold (``Adapter.digest_algorithms``), each
is asked, per ID range, for the count of its records and an exact sum of slices of a hash of
``id as 32 lowercase hex || data as stored`` (:func:`record_digest`; a fixed-length ID, so no
separator can be ambiguous; sums, never XOR or CRC, so equal pairs cancel nothing). A range whose
``(count, sum)`` agree on both sides holds the same IDs with the same bytes of data: consistent
without reading a record. A range that differs is split (:data:`FANOUT` ways, one query per side
per level) until it holds at most :data:`LEAF` records, and only those leaves go through the
record comparison of :mod:`uuid_forge.compare`, which decides: every finding kind and report
detail is the record path's own.

Never a false "consistent": the hash covers the stored text, not the parsed value, so a value
that is the same data in another text (JSON reformatted by hand) differs here and is settled by
the records; an entry outside the well-formed ID domain (a wrong encoding, another application's
key), which no range aggregate counts, makes that store audited by its records
(``Adapter.digest_outsiders``), as do a view or projection, typed columns, or no algorithm both
sides share.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .contract import SCAN, Adapter
from .handles import StoreHandle, Stores
from .record import Partition

__all__ = ["ALGORITHMS", "FANOUT", "LEAF", "TARGET", "Digest", "HashPlan", "bisect", "first_split", "hex_digest", "record_digest", "within"]

#: the algorithms a range digest may use, best first: md5 (or sha1) of ``id hex || data`` as UTF-8,
#: its first two 60-bit slices summed exactly (per range: the first sum times 2**100 plus the second).
#: sha1 because Redis scripts have only ``redis.sha1hex`` (PostgreSQL needs pgcrypto for it)
ALGORITHMS = ("md5", "sha1")
FANOUT = 16  # a differing range is cut into this many
LEAF = 500  # a differing range holding at most this many records (either side) is read
TARGET = 64  # about this many records per range at the first level: a drifted record costs a read of ~64
_MAX_RANGES = 4096  # ranges asked in one query at most
_DEEPEST = 1 << 124  # ranges are never cut finer (4 hex digits of ID left): read instead

Digest = tuple[int, int]  # (records, sum of their hash slices)


def record_digest(ident: uuid.UUID, data_text: str | bytes, algorithm: str = "md5") -> int:
    """One record's part of a range sum, as the stores compute it (for stores hashing in Python)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown range-digest algorithm {algorithm!r}")
    raw = data_text.encode("utf-8") if isinstance(data_text, str) else data_text
    return hex_digest(hashlib.new(algorithm, ident.hex.encode() + raw, usedforsecurity=False).hexdigest())


def hex_digest(h: str | bytes) -> int:
    """A record's part of a range sum from its hash as hex (a store's reply): two 60-bit slices."""
    return int(h[:15], 16) * (1 << 100) + int(h[15:30], 16)


def first_split(records: float) -> int:
    """Ranges a partition of about ``records`` is first cut into: a power of two, ~TARGET each."""
    want = max(1, min(_MAX_RANGES, int(records / TARGET)))
    return 1 << max(0, want.bit_length() - 1)


def common_algorithm(source: Adapter, store: Adapter, entity_type: str) -> str | None:
    """The first algorithm both sides can compute for ``entity_type`` (None: the records decide)."""
    mine = store.digest_algorithms(entity_type)
    return next((a for a in source.digest_algorithms(entity_type) if a in mine and a in ALGORITHMS), None)


def bisect(source_digests: Callable[[list[Partition]], list[Digest | None] | None],
           store_digests: Callable[[list[Partition]], list[Digest | None] | None],
           first: list[Partition], stats: Counter[str], known: Future[Any] | None = None
           ) -> tuple[int, list[Partition]]:
    """``(records settled by hashes, leaf ranges to read)`` for the ranges ``first``: agreeing
    ranges are settled, differing ones cut until small (or one side empty), then read.
    ``known``: the source's digests of ``first``, asked already (the store is asked meanwhile)."""
    settled, leaves, level = 0, [], first
    while level:
        if known is not None:
            mine = store_digests(level)
            truth = known.result()
        else:
            with ThreadPoolExecutor(1) as side:  # the source and the store answer at once
                theirs = side.submit(source_digests, level)
                mine = store_digests(level)
                truth = theirs.result()
        known = None
        if truth is None or mine is None:
            leaves += level
            break
        nxt: list[Partition] = []
        for r, a, b in zip(level, truth, mine):
            if a is not None and a == b:
                settled += a[0]
                stats["hashed_ranges"] += 1
                stats["hashed_records"] += a[0]
            elif a is None or b is None or max(a[0], b[0]) <= LEAF or min(a[0], b[0]) == 0 or r.count >= _DEEPEST:
                leaves.append(r)
            else:  # into ranges of about TARGET records, at least FANOUT of them
                nxt += r.split(max(FANOUT, first_split(max(a[0], b[0]))))
        level = nxt
    stats["read_ranges"] += len(leaves)
    return settled, leaves


class HashPlan:
    """Which stores of one type's audit are compared by hashes, and the comparison itself.

    Decided once per type: the source and the store share an algorithm, hold no entry outside the
    ranges' ID domain, and the store is scanned by range (``partitioned_scan``).

    A partition is first asked whole (one aggregate, no GROUP BY: the cheapest query, enough when
    it agrees); after a partition that differed, the next one is asked at once in ranges of about
    :data:`TARGET` records (drift is seldom in one partition only), until one agrees again."""

    def __init__(self, stores: Stores, entity_type: str, enabled: bool = True) -> None:
        self.entity_type = entity_type
        self.source = stores.source.adapter
        self.algorithms: dict[str, str] = {}
        #: whole-scan stores (Redis) whose scan hashes each record in the store: compared per range
        #: from their buckets (uuid_forge.onepass.OnePass.compare_hashed), by this algorithm
        self.whole: dict[str, str] = {}
        self._fine = 0  # ranges the next partition is first cut into (0: asked whole)
        self._first: list[Partition] = []
        self._differed = False
        if not enabled or SCAN not in self.source.capabilities or self.source.digest_outsiders(entity_type) != 0:
            return
        for h in stores.stores[1:]:
            a = h.adapter
            if SCAN not in a.capabilities or not a.partitioned_scan:
                continue
            algorithm = common_algorithm(self.source, a, entity_type)
            if getattr(a, "whole_scan", False):  # read once, hashed by the store as it is (uuid_forge.onepass)
                if algorithm is not None and type(a).scan_digests is not Adapter.scan_digests:
                    self.whole[h.name] = algorithm
                continue
            if algorithm is not None and a.digest_outsiders(entity_type) == 0:
                self.algorithms[h.name] = algorithm

    def covers(self, h: StoreHandle) -> bool:
        return h.name in self.algorithms

    def source_first(self, part: Partition) -> tuple[str, list[Partition], Callable[[], Any]] | None:
        """The first level (``part`` whole) and a call asking the source for its digest (shared by
        every hashed store: the source is hashed once per partition)."""
        if not self.algorithms:
            return None
        algorithm = self.first_algorithm
        first = self._first = part.split(self._fine) if self._fine > 1 else [part]
        self._differed = False  # set by this partition's stores
        return algorithm, first, lambda: self.source.range_digests(self.entity_type, first, algorithm)

    def leaves(self, h: StoreHandle, part: Partition, source_first: Future[Any] | None,
               stats: Counter[str]) -> tuple[int, list[Partition]]:
        """``(records settled by hashes, ranges to read)`` of one store's partition (:func:`bisect`);
        ``source_first``: the source's digests of the first level, asked already."""
        et, algorithm = self.entity_type, self.algorithms[h.name]
        shared = source_first is not None and algorithm == self.first_algorithm and self._first[0].lo == part.lo
        first = self._first if shared else [part]
        settled, leaves = bisect(lambda rs: self.source.range_digests(et, rs, algorithm),
                                 lambda rs: h.adapter.range_digests(et, rs, algorithm), first, stats,
                                 source_first if shared else None)
        if shared:
            assert source_first is not None
            truth = source_first.result() or []
            count = sum(d[0] for d in truth if d is not None)
            if leaves:
                self._differed = True
            # the next partition: cut at once after a difference, whole again once all agree
            self._fine = first_split(count) if self._differed else 0
        return settled, leaves

    @property
    def first_algorithm(self) -> str:
        return next(iter(self.algorithms.values()))


def within(ident: uuid.UUID, leaves: list[Partition]) -> bool:
    """Whether ``ident`` is in one of ``leaves``."""
    return any(leaf.lo <= ident.int < leaf.hi for leaf in leaves)
