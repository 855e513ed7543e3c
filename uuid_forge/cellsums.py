"""Per-cell range sums a store computes as it scans, for a whole-scan store (Redis) audited by hashes.

Why: a Redis audit by hashes used to bring every key's name and hash back to Python (about 3 µs a
key to parse the name, place it and hold it, plus spill files past 20k keys). Here the store's own
script sums, page by page, each record's part of a range sum (``rangehash.record_digest``) into
fixed cells of the ID space, the first :data:`BITS` bits of the ID; Python only adds the page's
per-cell totals. A partition whose cells' total agrees with the source's digest is consistent; one
that differs is compared cell by cell with the source's per-cell digests, and only the keys of the
differing cells are listed again (a second, filtered pass) and read by ID.

A record's part is ``a * 2**100 + b`` with ``a`` and ``b`` 60-bit slices of its hash. A script's
numbers are doubles (exact below 2**53), so it sums each slice as three 20-bit pieces; a page's
piece sums stay far below 2**53, and ``sum(a) == A1 * 2**40 + A2 * 2**20 + A3`` exactly, so the
total equals what the source sums (never a rounded, never a truncated value).

A cell that held a key the script could not hash (the wrong Redis type, or gone since SCAN), or a
name in another form whose ID falls in it, never agrees: its keys are read, so it is reported as
a record scan reports it.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Iterable, Sequence
from typing import Any

from .record import MalformedID, Partition

__all__ = ["BITS", "CELLS", "PIECES", "CellSums", "aligned", "cell_of", "cell_partition", "cells_of"]

#: the cells are the first BITS bits of the ID: 65,536 cells, about 15 keys each at 1M keys, so a
#: drifted record costs the read of its cell's few keys; memory is fixed (8 arrays of 64k int64)
BITS = 16
CELLS = 1 << BITS
_SHIFT = 128 - BITS
PIECES = 6  # per cell: 3 pieces of 20 bits of each of the two 60-bit slices


def cell_of(ident: uuid.UUID) -> int:
    return ident.int >> _SHIFT


def aligned(part: Partition) -> bool:
    """Whether ``part`` is a whole number of cells (partitions of a power-of-two count up to CELLS)."""
    return part.lo % (1 << _SHIFT) == 0 and part.hi % (1 << _SHIFT) == 0


def cells_of(part: Partition) -> range:
    """The cells ``part`` covers (``part`` :func:`aligned`)."""
    return range(part.lo >> _SHIFT, part.hi >> _SHIFT)


def cell_partition(cell: int) -> Partition:
    return Partition(cell, CELLS)


class CellSums:
    """One store's per-cell ``(count, sum)`` of a scan, added page by page from the store's script.

    ``dirty``: cells holding a key that could not be hashed, or a name in another form with an ID
    in the cell (never agreeing); ``odd``: such names' scan items, compared with their cell's
    records; ``others``: entries without an ID (another application's keys), compared once."""

    def __init__(self) -> None:
        self.count = array("q", bytes(8 * CELLS))
        self._pieces = [array("q", bytes(8 * CELLS)) for _ in range(PIECES)]
        self.dirty: set[int] = set()
        self.odd: list[tuple[MalformedID, Any]] = []
        self.others: list[tuple[Any, Any]] = []
        self.keys = 0

    def add(self, flat: Sequence[int]) -> None:
        """A page's totals, flat: per cell touched ``cell, count, a1, a2, a3, b1, b2, b3``."""
        count, (a1, a2, a3, b1, b2, b3) = self.count, self._pieces
        for j in range(0, len(flat), 8):
            c = flat[j]
            count[c] += flat[j + 1]
            a1[c] += flat[j + 2]
            a2[c] += flat[j + 3]
            a3[c] += flat[j + 4]
            b1[c] += flat[j + 5]
            b2[c] += flat[j + 6]
            b3[c] += flat[j + 7]
            self.keys += flat[j + 1]

    def unhashed(self, ident: uuid.UUID) -> None:
        """A key of ours the store could not hash: its cell is read."""
        self.dirty.add(cell_of(ident))

    def add_odd(self, items: Iterable[tuple[Any, Any]]) -> None:
        """Scan items of names in another form: with an ID, their cell is read; without, compared once."""
        for ident, fp in items:
            if type(ident) is uuid.UUID:  # canonical after all: read with its cell
                self.dirty.add(cell_of(ident))
            elif isinstance(ident, MalformedID) and ident.id is not None:
                self.dirty.add(cell_of(ident.id))
                self.odd.append((ident, fp))
            else:
                self.others.append((ident, fp))

    def digest(self, cells: range) -> tuple[int, int] | None:
        """``(count, sum)`` over ``cells``, as rangehash's Digest; None when one of them is dirty."""
        if any(c in self.dirty for c in cells) if len(self.dirty) < len(cells) else \
                any(c in cells for c in self.dirty):
            return None
        lo, hi = cells.start, cells.stop
        a1, a2, a3, b1, b2, b3 = (sum(p[lo:hi]) for p in self._pieces)
        return sum(self.count[lo:hi]), (((a1 << 40) + (a2 << 20) + a3) << 100) + (b1 << 40) + (b2 << 20) + b3

    def cell(self, c: int) -> tuple[int, int] | None:
        return self.digest(range(c, c + 1))

    def close(self) -> None:
        """Nothing to free on disk (the arrays are fixed): the same call as uuid_forge.onepass.Buckets."""
