"""uuid_forge.cellsums: the per-cell sums a Redis script's packed page adds up to equal the sums
the source computes (rangehash.record_digest), names not in the canonical form are handed back,
and a cell that could not be hashed never agrees."""

from __future__ import annotations

import hashlib
import uuid

from uuid_forge.cellsums import CELLS, CellSums, aligned, cell_of, cells_of
from uuid_forge.rangehash import record_digest
from uuid_forge.record import MalformedID, Partition


def _packed(pairs: list[tuple[str, bytes]]) -> bytes:
    """What the ``_CELLS`` script returns for a page: ``id || sha1(id hex || value)`` per key."""
    return b"".join(i.encode() + hashlib.sha1(i.replace("-", "").encode() + v).hexdigest().encode()
                    for i, v in pairs)


def test_the_sums_equal_the_sources_record_digests() -> None:
    ids = [uuid.uuid5(uuid.NAMESPACE_DNS, f"k{i}") for i in range(3000)]
    values = [f'{{"n":{i}}}'.encode() for i in range(3000)]
    sums = CellSums()
    for start in range(0, 3000, 700):  # pages
        assert sums.add_packed(_packed([(str(i), v) for i, v in zip(ids[start:start + 700], values[start:start + 700])])) == []
    half = Partition(0, 2)
    want = [record_digest(i, v, "sha1") for i, v in zip(ids, values) if half.contains(i)]
    assert sums.digest(cells_of(half)) == (len(want), sum(want))
    one = ids[0]
    same_cell = [record_digest(i, v, "sha1") for i, v in zip(ids, values) if cell_of(i) == cell_of(one)]
    assert sums.cell(cell_of(one)) == (len(same_cell), sum(same_cell))
    assert sums.keys == 3000


def test_a_changed_value_or_a_swap_changes_the_sum() -> None:
    a, b = uuid.uuid5(uuid.NAMESPACE_DNS, "a"), uuid.uuid5(uuid.NAMESPACE_DNS, "b")
    one, two = CellSums(), CellSums()
    one.add_packed(_packed([(str(a), b"1"), (str(b), b"2")]))
    two.add_packed(_packed([(str(a), b"2"), (str(b), b"1")]))  # the values swapped: counts agree
    whole = cells_of(Partition(0, 1))
    assert one.digest(whole)[0] == two.digest(whole)[0] == 2  # type: ignore[index]
    assert one.digest(whole) != two.digest(whole)


def test_names_in_another_form_are_handed_back_and_not_counted() -> None:
    good, bad = str(uuid.uuid4()), str(uuid.uuid4()).upper()
    sums = CellSums()
    assert sums.add_packed(_packed([(good, b"x"), (bad, b"y")])) == [bad.encode()]
    assert sums.keys == 1 and sums.digest(cells_of(Partition(0, 1)))[0] == 1  # type: ignore[index]


def test_a_cell_that_could_not_be_hashed_never_agrees() -> None:
    ident = uuid.uuid4()
    sums = CellSums()
    sums.unhashed(ident)
    assert sums.cell(cell_of(ident)) is None
    assert sums.digest(cells_of(Partition(0, 1))) is None
    wrong = MalformedID("t:" + str(ident).upper(), "uppercase", uuid.uuid4())
    sums.add_odd([(wrong, 7), (MalformedID("t:junk", "no id"), None)])
    assert wrong.id is not None and sums.cell(cell_of(wrong.id)) is None
    assert sums.odd == [(wrong, 7)] and len(sums.others) == 1


def test_partitions_of_a_power_of_two_count_are_whole_cells() -> None:
    assert aligned(Partition(3, 64)) and len(cells_of(Partition(3, 64))) == CELLS // 64
    assert not aligned(Partition(1, 3))  # another count: the audit keeps the per-key buckets
    assert not aligned(Partition(5, CELLS * 2))  # finer than a cell
