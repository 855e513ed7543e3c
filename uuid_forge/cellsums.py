"""Per-cell range sums a store computes as it scans, for a whole-scan store (Redis) audited by hashes.

Why: a Redis audit by hashes used to take each page's names back to Python, send them back to a
script for their hashes, then build a UUID per key, hold it in a bucket (spilled to files past 20k
keys) and sort it: about 3 µs of Python a key, on the same thread as Redis's work. Here one script
call per page walks SCAN on the server, hashes each value, and packs ``ID || hash`` for the page
into one string; a second thread adds each to the sum of its cell, a fixed range of the ID space
(the ID's first :data:`BITS` bits), while Redis works on the next page. Memory is fixed (64k cells).
A partition whose cells' total agrees with the source's digest is consistent; one that differs is
compared cell by cell with the source's per-cell digests, and only the keys of the differing
cells are listed again (a second walk, filtered on the server) and read by ID.

A record's part is ``a * 2**100 + b`` with ``a`` and ``b`` the first two 60-bit slices of its
hash (``rangehash.hex_digest``), summed as Python integers: exactly what the source sums.

A cell that held a key the script could not hash (the wrong Redis type, or gone since SCAN), or a
name in another form whose ID falls in it, never agrees: its keys are read, so it is reported as
a record scan reports it.
"""

from __future__ import annotations

import re
import uuid
from array import array
from collections.abc import Iterable
from typing import Any

from .record import MalformedID, Partition

__all__ = ["BITS", "CELLS", "CellSums", "aligned", "cell_of", "cell_partition", "cells_of"]

#: the cells are the first BITS bits of the ID: 65,536 cells, about 15 keys each at 1M keys, so a
#: drifted record costs the read of its cell's few keys; memory is fixed (8 arrays of 64k int64)
BITS = 16
CELLS = 1 << BITS
_SHIFT = 128 - BITS
_HEX = BITS // 4  # a cell is the ID's first hex digits
_PACKED = 76  # a hashed key as the script packs it: the ID's 36 characters, its hash's 40 hex digits
_CANONICAL = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


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
        self.sums: list[int] = [0] * CELLS
        self.dirty: set[int] = set()
        self.odd: list[tuple[MalformedID, Any]] = []
        self.others: list[tuple[Any, Any]] = []
        self.keys = 0

    def add_packed(self, packed: bytes) -> list[bytes]:
        """A page's hashed keys, packed by the store's script as ``id (36) || sha1 hex (40)`` each;
        the IDs not in the canonical form are returned (a name in another form, classified by the
        caller), the others added to their cell."""
        count, sums, full = self.count, self.sums, _CANONICAL.fullmatch
        odd: list[bytes] = []
        for o in range(0, len(packed), _PACKED):
            ident = packed[o:o + 36]
            if full(ident) is None:
                odd.append(ident)
                continue
            c = int(ident[:_HEX], 16)
            count[c] += 1
            sums[c] += (int(packed[o + 36:o + 51], 16) << 100) + int(packed[o + 51:o + 66], 16)
        self.keys += len(packed) // _PACKED - len(odd)
        return odd

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
        dirty = self.dirty
        if dirty and (any(c in dirty for c in cells) if len(dirty) > len(cells) else any(c in cells for c in dirty)):
            return None
        return sum(self.count[cells.start:cells.stop]), sum(self.sums[cells.start:cells.stop])

    def cell(self, c: int) -> tuple[int, int] | None:
        return None if c in self.dirty else (self.count[c], self.sums[c])

    def close(self) -> None:
        """Nothing to free on disk (fixed memory): the same call as uuid_forge.onepass.Buckets."""
