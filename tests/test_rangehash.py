"""The hashed audit (uuid_forge.rangehash) on fakes: ranges settled by digests, differing ones cut and
read, and the same report as the record path. The real stores' digests: integration/test_hashed_audit.py."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Forge, IDConfig, Namespace, Partition, Record
from uuid_forge.rangehash import LEAF, bisect, first_split, record_digest

from .fakes import FakeHashingStore, entities
from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("rangehash.test"), salt="s")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Forge, FakeHashingStore, FakeHashingStore]:
    src, replica = FakeHashingStore(), FakeHashingStore()
    forge = make_forge(tmp_path, ("src", src), ("replica", replica), ids=IDS, journal="j.sqlite3")
    forge.write_many(entities(3000))
    return forge, src, replica


def _same(a: Any, b: Any) -> None:
    """Two reports alike in every count and finding (order aside)."""
    assert {n: dict(c) for n, c in a.stores.items()} == {n: dict(c) for n, c in b.stores.items()}
    assert sorted(f.to_dict().items().__repr__() for f in a.findings) == \
        sorted(f.to_dict().items().__repr__() for f in b.findings)
    assert a.consistent == b.consistent


def test_a_consistent_store_is_settled_by_hashes_without_reading_it(setup: tuple[Forge, FakeHashingStore,
                                                                                 FakeHashingStore]) -> None:
    forge, _, replica = setup
    report = forge.audit()
    assert report.consistent and report.stores["replica"]["ok"] == 3000
    assert report.hashed["replica"]["hashed_records"] == 3000
    assert report.hashed["replica"]["read_records"] == 0 and replica.calls["scans"] == 0
    assert sum(p[3] for p in report.partition_times) == 3000  # the source's records, counted by its digests


def test_drift_is_found_exactly_and_only_its_ranges_are_read(setup: tuple[Forge, FakeHashingStore,
                                                                          FakeHashingStore]) -> None:
    forge, _, replica = setup
    table = replica._data["user"]
    ids = sorted(table)
    table[ids[5]] = Record("user", ids[5], {"name": "edited", "v": 1})  # edited field
    table[ids[700]] = Record("user", ids[700], {"v": 1})  # removed field
    del table[ids[1500]]  # missing
    orphan = uuid.UUID(int=ids[2000].int + 1)
    table[orphan] = Record("user", orphan, {"name": "ghost"})  # orphan (unproven: no key)
    # two values swapped between two records: counts agree, only the sums tell
    a, b = ids[10], ids[11]
    table[a], table[b] = Record("user", a, table[b].data), Record("user", b, table[a].data)
    hashed, records = forge.audit(), forge.audit(hashed=False)
    _same(hashed, records)
    kinds = Counter(f.kind for f in hashed.findings)
    assert kinds["stale"] == 4 and kinds["missing"] == 1 and kinds["unproven"] + kinds["orphan"] == 1
    stats = hashed.hashed["replica"]
    assert 0 < stats["read_records"] < 3000 * 0.2 and stats["hashed_records"] > 3000 * 0.8


def test_a_store_holding_entries_outside_the_ranges_is_audited_by_its_records(tmp_path: Path) -> None:
    src, replica = FakeHashingStore(), FakeHashingStore(outsiders=1)
    forge = make_forge(tmp_path, ("src", src), ("replica", replica), ids=IDS, journal="j.sqlite3")
    forge.write_many(entities(50))
    report = forge.audit()
    assert report.consistent and "replica" not in report.hashed and replica.calls["digests"] == 0


def test_no_common_algorithm_means_the_record_path(tmp_path: Path) -> None:
    src, replica = FakeHashingStore(), FakeHashingStore(algorithms=("sha1-only-here",))
    forge = make_forge(tmp_path, ("src", src), ("replica", replica), ids=IDS, journal="j.sqlite3")
    forge.write_many(entities(50))
    report = forge.audit()
    assert report.consistent and report.hashed == {} and replica.calls["digests"] == 0


def test_hashed_false_reads_every_record(setup: tuple[Forge, FakeHashingStore, FakeHashingStore]) -> None:
    forge, _, replica = setup
    report = forge.audit(hashed=False)
    assert report.consistent and report.hashed == {} and replica.calls["digests"] == 0 and replica.calls["scans"] > 0


def test_a_range_the_store_cannot_hash_is_read(setup: tuple[Forge, FakeHashingStore, FakeHashingStore]) -> None:
    forge, _, replica = setup
    ident = sorted(replica._data["user"])[42]
    replica.unhashable.add(ident)
    replica._data["user"][ident] = Record("user", ident, {"changed": True})
    report = forge.audit()
    assert [f.kind for f in report.findings] == ["stale"] and report.findings[0].id == str(ident)
    assert report.hashed["replica"]["read_records"] >= 1


# -- the bisection alone -----------------------------------------------------------------------------
def _digests(held: dict[uuid.UUID, str]) -> Any:
    def ask(ranges: list[Partition]) -> list[tuple[int, int] | None]:
        return [(sum(1 for i in held if r.contains(i)), sum(record_digest(i, t) for i, t in held.items()
                                                             if r.contains(i))) for r in ranges]
    return ask


def test_a_dense_cluster_is_cut_level_by_level_until_its_leaves_are_small() -> None:
    base = 0x1234 << 112  # 3000 IDs in one 1/65536 of the space: the first level cannot separate them
    truth = {uuid.UUID(int=base + n * 7919): f'{{"n":{n}}}' for n in range(3000)}
    changed = dict(truth)
    bad = sorted(truth)[1234]
    changed[bad] = '{"n":-1}'
    stats: Counter[str] = Counter()
    first = Partition().split(first_split(3000))
    settled, leaves = bisect(_digests(truth), _digests(changed), first, stats)
    assert any(leaf.contains(bad) for leaf in leaves)
    read = sum(1 for i in truth if any(leaf.contains(i) for leaf in leaves))
    assert read <= LEAF and settled + read == 3000 and leaves[0].count > first[0].count * 16


def test_equal_sides_are_settled_at_the_first_level() -> None:
    held = {uuid.uuid4(): f'{{"n":{n}}}' for n in range(500)}
    stats: Counter[str] = Counter()
    calls: list[int] = []

    def counted(ranges: list[Partition]) -> Any:
        calls.append(len(ranges))
        return _digests(held)(ranges)

    settled, leaves = bisect(counted, counted, Partition().split(8), stats)
    assert settled == 500 and leaves == [] and calls == [8, 8]


def test_an_empty_side_is_read_at_once_not_cut_further() -> None:
    held = {uuid.uuid4(): "{}" for _ in range(2000)}
    settled, leaves = bisect(_digests(held), _digests({}), [Partition()], Counter())
    assert settled == 0 and leaves == [Partition()]


def test_a_side_that_cannot_answer_is_read() -> None:
    settled, leaves = bisect(lambda rs: None, _digests({}), Partition().split(4), Counter())
    assert settled == 0 and len(leaves) == 4


def test_sums_not_xor_two_equal_records_do_not_cancel() -> None:
    one = uuid.UUID(int=5)
    assert record_digest(one, "{}") + record_digest(one, "{}") != 0
    assert record_digest(one, '{"a":1}') != record_digest(one, '{"a": 1}')  # bytes, not values: read, then decided


def test_the_configuration_can_turn_hashes_off(tmp_path: Path) -> None:
    from uuid_forge.errors import ConfigError
    from uuid_forge.settings import parse_settings

    doc: dict[str, Any] = {"ids": {"namespace": "x.test"}, "stores": {"db": {"url": "memory://", "role": "source"}}}
    assert parse_settings(doc, env={}).audit.hashed is True
    assert parse_settings({**doc, "audit": {"hashed": False}}, env={}).audit.hashed is False
    with pytest.raises(ConfigError, match=r"\[audit\] hashed"):
        parse_settings({**doc, "audit": {"hashed": "no"}}, env={})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_settings({**doc, "audit": {"hashing": False}}, env={})


def test_the_forge_setting_is_the_audit_default(setup: tuple[Forge, FakeHashingStore, FakeHashingStore]) -> None:
    forge, _, replica = setup
    forge.audit_hashed = False
    report = forge.audit()
    assert report.consistent and report.hashed == {} and replica.calls["digests"] == 0


def test_many_partitions_drifted_and_clean_give_the_record_paths_report(
        setup: tuple[Forge, FakeHashingStore, FakeHashingStore], monkeypatch: pytest.MonkeyPatch) -> None:
    from uuid_forge import compare as compare_module

    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 300)  # 16 partitions of ~190
    forge, _, replica = setup
    table = replica._data["user"]
    ids = sorted(table)
    for n in (0, 1, 200, 201, 202, 1000, 2999):  # drift in some partitions, one after another, then none
        table[ids[n]] = Record("user", ids[n], {"name": "edited", "v": n})
    del table[ids[500]]
    hashed, records = forge.audit(), forge.audit(hashed=False)
    _same(hashed, records)
    assert hashed.partitions == 16 and Counter(f.kind for f in hashed.findings) == Counter(stale=7, missing=1)
    assert hashed.hashed["replica"]["hashed_records"] + hashed.hashed["replica"]["read_records"] >= 2999 - 8


def test_record_digest_by_sha1_is_the_two_60_bit_slices_of_the_sha1_hex() -> None:
    """What a Redis script (redis.sha1hex), pgcrypto's digest and MariaDB's SHA1 compute in the store."""
    import hashlib

    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    text = '{"name":"Ann","é":1}'
    h = hashlib.sha1((ident.hex + text).encode("utf-8")).hexdigest()
    assert record_digest(ident, text, "sha1") == int(h[:15], 16) * (1 << 100) + int(h[15:30], 16)
    assert record_digest(ident, text.encode(), "sha1") == record_digest(ident, text, "sha1")  # bytes as stored
    assert record_digest(ident, text, "sha1") != record_digest(ident, text, "md5")
    assert record_digest(ident, text, "sha1") < 1 << 160
    with pytest.raises(ValueError, match="unknown"):
        record_digest(ident, text, "sha256")


def test_sqlite_offers_md5_first_then_sha1(tmp_path: Path) -> None:
    """md5 stays the SQL-to-SQL choice; sha1 is there for a store that can only hash by it, and
    SQLite's aggregate gives record_digest's sum."""
    import sqlalchemy as sa

    from uuid_forge import open_store

    store = open_store(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    forge = make_forge(tmp_path, ("a", store), ids=IDS)
    forge.write_many(entities(20))
    assert store.digest_algorithms("user") == ("md5", "sha1")
    [(count, total)] = store.range_digests("user", [Partition()], "sha1") or [(0, 0)]
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'd.sqlite3'}")
    with engine.connect() as conn:
        table = next(t for t in sa.inspect(conn).get_table_names() if t.endswith("user"))
        rows = conn.execute(sa.text(f'SELECT id, data FROM "{table}"')).all()
    engine.dispose()
    assert count == 20 and total == sum(record_digest(uuid.UUID(i), d, "sha1") for i, d in rows)
    forge.close()
