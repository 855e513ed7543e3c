"""Buckets of a one-pass read (uuid_forge.onepass): the same items per partition in memory and
spilled, a key SCAN repeats held once, a wrong-form name beside its well-formed twin kept, the
spill files private and removed."""

from __future__ import annotations

import os
import stat
import uuid
from typing import Any

import pytest

from uuid_forge.onepass import Buckets, whole_scan
from uuid_forge.record import Partition

from .fakes import scan_items as _items


def _contents(b: Buckets, parts: list[Partition]) -> tuple[list[Any], list[Any]]:
    per = [sorted((str(i), fp) for i, fp in b.items(p)) for p in parts]
    return per, sorted(str(i) for i, _ in b.others())


@pytest.mark.parametrize("within", [Partition(), Partition(1, 2)], ids=["whole", "half"])
def test_spilled_buckets_hold_what_memory_holds(within: Partition) -> None:
    parts = within.split(8)
    memory, spilled = Buckets(within, parts), Buckets(within, parts, memory_items=10)
    memory.add_all(_items())
    spilled.add_all(_items())
    assert memory.spill is None and spilled.spill is not None
    memory.finish(), spilled.finish()
    folder = spilled.spill.dir
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    files = os.listdir(folder)
    assert len(files) > 2 and all(stat.S_IMODE(os.stat(os.path.join(folder, f)).st_mode) == 0o600 for f in files)
    assert _contents(memory, parts) == _contents(spilled, parts)
    per, others = _contents(memory, parts)
    held = [i for bucket in per for i, _ in bucket]
    assert len(held) == len(set(held))  # the repeated key once
    if within.count == 1:
        assert len(held) == 199 + 1  # and the uppercase twin of ids[1] as its own entry
        assert all(isinstance(fp, str) and type(fp) is str for bucket in per for _, fp in bucket if fp)
    for part in parts:
        assert all(part.contains(i if isinstance(i, uuid.UUID) else i.id) for i, _ in memory.items(part))
    assert len(others) == 2  # the name with no ID and the foreign key, once
    spilled.close()
    assert not os.path.exists(folder)


def test_an_unknown_partition_is_an_error() -> None:
    b = Buckets(Partition(), Partition().split(4)).finish()
    with pytest.raises(ValueError, match="not one of"):
        list(b.items(Partition(0, 8)))


def test_only_an_adapter_that_says_so_is_read_once() -> None:
    class Ranged:
        whole_scan = False

    class Walks:
        whole_scan = True

    class Log:  # a message log has its own single read (uuid_forge.logspill)
        whole_scan = True
        partitioned_scan = False

    assert [whole_scan(a) for a in (Ranged(), Walks(), Log(), object())] == [False, True, False, False]


def test_buckets_of_hashes_keep_the_ints_through_a_spill() -> None:
    """A store hashed in place (scan_digests) gives 120-bit ints, not fingerprints: held as they are,
    in memory and through marshal in the spill files."""
    parts = Partition().split(4)
    items: list[tuple[Any, Any]] = [(i, (n << 100) + n) for n, i in enumerate(uuid.UUID(int=(k * 0x9E3779B97F4A7C15
                                    << 64) % (1 << 128) | k) for k in range(1, 60))]
    items.append((items[3][0], None))  # a key of the wrong type since: a later page wins, as for fingerprints
    memory, spilled = Buckets(Partition(), parts, digests=True), Buckets(Partition(), parts, memory_items=7, digests=True)
    for b in (memory, spilled):
        b.add_all(items)
        b.finish()
    assert spilled.spill is not None
    assert _contents(memory, parts) == _contents(spilled, parts)
    held = dict(x for p in parts for x in spilled.items(p))
    assert held[items[5][0]] == items[5][1] and type(held[items[5][0]]) is int and held[items[3][0]] is None
    spilled.close()
