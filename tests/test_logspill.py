"""A message log in an audit: read once, its latest state spilled to a private temporary file, then
compared partition by partition (uuid_forge.logspill), with the same findings as the old in-memory
comparison (the whole log's latest state and the source's IDs in two dicts). The log is a fake."""

from __future__ import annotations

import os
import stat
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace, Partition, Record, logspill
from uuid_forge import audit as audit_module
from uuid_forge import compare as compare_module
from uuid_forge.contract import DELETE, SCAN, WRITE, Adapter, ScanItem
from uuid_forge.errors import SpillError
from uuid_forge.ownership import PROVEN, Proof, Prover
from uuid_forge.record import DELETED, ForeignEntry, MalformedID
from uuid_forge.view import FULL, FieldView

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("logspill.test"), salt="s")
ET = "user"
PARTS = 8
SPACE = 1 << 128


class FakeLogAdapter(Adapter):
    """A fake message log: a list of events, read whole, oldest first; the latest per entity wins.

    ``delay`` slows every read down (the audit's partitions then go by before the log is read);
    ``seen`` records the spill file's and directory's modes while the log is being read."""

    name: ClassVar[str] = "fake-log"
    capabilities: ClassVar[frozenset[str]] = frozenset({WRITE, SCAN})
    partitioned_scan: ClassVar[bool] = False

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__("fake-log://")
        self.events: list[ScanItem] = []
        self.delay = delay
        self.counts = {"reads": 0}  # shared with the copies an audit reads through (with_id_versions)
        self.seen: list[tuple[str, int, int]] = []

    def _put(self, entity_type: str, records: list[Record]) -> None:
        self.events += [(r.id, r.fingerprint) for r in records]

    @property
    def reads(self) -> int:
        return self.counts["reads"]

    def _events(self) -> Iterator[ScanItem]:
        self.counts["reads"] += 1
        time.sleep(self.delay)
        yield from self.events

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        latest: dict[Any, ScanItem] = {}  # the RabbitMQ adapter's own keys for "the same entity"
        for item in self._events():
            ident = item[0]
            key = ident if isinstance(ident, uuid.UUID) else (ident.id or ident.raw) \
                if isinstance(ident, MalformedID) else f"foreign:{ident.raw}"
            if isinstance(key, str) or partition.contains(key):
                latest[key] = item
        yield from latest.values()

    def scan_log(self, entity_type: str, handle: Callable[[ScanItem], None]) -> None:
        spill = getattr(handle, "__self__", None)
        if isinstance(spill, logspill.LogSpill):
            self.seen.append((spill.path, stat.S_IMODE(os.stat(spill.path).st_mode),
                              stat.S_IMODE(os.stat(spill.dir).st_mode)))
        for item in self._events():
            handle(item)

    def _entity_types(self) -> Iterable[str]:
        return [ET]


class FakeTrustingProver(Prover):
    """A fake proof that takes every entry for ours: the planted source holds IDs at partition
    boundaries, which no key gives. Proof is tested in tests/test_ownership.py; here the subject
    is the log's spill, and the findings must not depend on it."""

    def prove(self, entity_type: str, records: Any, view: FieldView = FULL) -> dict[uuid.UUID, Proof]:
        return dict.fromkeys(records, PROVEN)


def _boundary_ids() -> list[uuid.UUID]:
    """The first and last ID of every one of PARTS partitions (and one past each end)."""
    out = []
    for k in range(PARTS):
        lo, hi = k * SPACE // PARTS, (k + 1) * SPACE // PARTS
        out += [uuid.UUID(int=lo), uuid.UUID(int=hi - 1)]
    return out


def _planted(delay: float = 0.0) -> tuple[Forge, FakeLogAdapter, dict[str, set[str]]]:
    """A memory source and a fake log with planted faults of every class; what should be found."""
    source, log = MemoryAdapter(), FakeLogAdapter(delay)
    edges = _boundary_ids()
    ghosts = [edges[1], edges[8]]  # the last ID of partition 0 and the first of partition 4: log only
    records = [Record(ET, uuid.uuid5(uuid.NAMESPACE_URL, f"u{i}"), {"n": i}) for i in range(800)]
    records += [Record(ET, ident, {"edge": str(ident)}) for ident in edges if ident not in ghosts]
    source.put_many(records)
    want: dict[str, set[str]] = {k: set() for k in ("missing", "orphan", "stale", "malformed", "foreign")}
    for r in records[10:]:
        log.events.append((r.id, r.fingerprint))
    want["missing"] = {str(r.id) for r in records[:10]}
    # an entity updated twice: the latest event is the source's version (ok)
    log.events += [(records[20].id, "0" * 32), (records[20].id, records[20].fingerprint)]
    # the latest event is an older version: stale
    for r in records[30:35] + records[-3:]:  # the last ones are at partition boundaries
        log.events.append((r.id, "f" * 32))
        want["stale"].add(str(r.id))
    # orphans, two of them on partition boundaries
    for ident in [uuid.uuid4() for _ in range(6)] + ghosts:
        log.events.append((ident, "1" * 32))
        want["orphan"].add(str(ident))
    # malformed: the latest event names the entity wrongly (not also missing)
    for r in records[40:44]:
        log.events.append((MalformedID(r.id.hex, "correlation_id is not the 36-char form", r.id), r.fingerprint))
        want["malformed"].add(str(r.id))
    # a malformed event superseded by a well-formed one: ok
    log.events += [(MalformedID(records[50].id.hex.upper(), "upper case", records[50].id), None),
                   (records[50].id, records[50].fingerprint)]
    # a malformed name that decodes to no ID, twice (reported once), and foreign entries
    log.events += [(MalformedID("not-an-id", "no ID in it"), None)] * 2
    want["malformed"].add("not-an-id")
    log.events += [(ForeignEntry("their-key", "not ours"), None)] * 3 + [(ForeignEntry("", "no correlation_id"), None)]
    want["foreign"] = {"their-key", ""}
    forge = make_forge(Path(), ("src", source), ("log", log), ids=IDS, journal=None)
    forge.prover = FakeTrustingProver(forge.generator, forge.types)
    return forge, log, want


Seen = tuple[set[tuple[str, str, str, str, str | None]], dict[str, int]]


def _old_way(forge: Forge, within: Partition) -> Seen:
    """The removed in-memory comparison: the log's latest state and the source's IDs in two dicts."""
    h = forge.stores[1]
    latest = dict(h.adapter.scan(ET, within, include_malformed=True))
    expected = dict(forge.source.adapter.scan(ET, within))
    sink = compare_module.Sink(h.name)
    compare_module.compare(h, ET, expected, iter(latest.items()), sink)
    report = audit_module.AuditReport(stores={h.name: Counter({k: 0 for k in audit_module.CLASSES})})
    sink.merge_into(report)
    return _new_way(report)


def _new_way(report: audit_module.AuditReport) -> Seen:
    """The log's findings (foreign entries are counted, not listed) and its counts per class."""
    found = {(f.kind, f.id, f.detail, f.store, f.raw) for f in report.findings if f.store == "log"}
    return found, dict(report.stores["log"])


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[logspill.LogPass]:
    """Many small partitions, and every LogPass of the audit kept for a look afterwards."""
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 120)  # 814 source records: 8 partitions
    made: list[logspill.LogPass] = []

    class Recorded(logspill.LogPass):
        def __enter__(self) -> logspill.LogPass:
            made.append(self)
            return super().__enter__()

    monkeypatch.setattr(logspill, "LogPass", Recorded)
    return made


@pytest.mark.parametrize("delay", [0.0, 0.6], ids=["log-read-during-the-loop", "log-read-after-the-loop"])
def test_spilled_log_findings_equal_the_in_memory_comparison(passes: list[logspill.LogPass], delay: float) -> None:
    forge, log, want = _planted(delay)
    report = forge.audit(ET)
    assert report.partitions == PARTS
    assert log.reads == 1  # once per audit, not once per partition
    found = {k: {f.id for f in report.findings if f.store == "log" and f.kind == k} for k in want}
    found["foreign"] = {s.split(": ", 1)[1] for s in report.foreign_samples["log"]}
    assert found == want
    counts = report.stores["log"]
    assert {k: counts[k] for k in want} == {k: len(v) for k, v in want.items()}
    assert counts["ok"] == 814 - len(want["missing"]) - len(want["stale"]) - 4  # 4 malformed with an ID
    assert _new_way(report) == _old_way(forge, Partition())
    if delay:  # the partitions went by before the log was read: re-read from the source, but the
        assert passes[0].late == PARTS - 1  # last, still held when the audit waits for the log
    # the spill file was private while it existed, and is gone
    (path, mode, dir_mode), = log.seen
    assert (mode, dir_mode) == (0o600, 0o700)
    assert not os.path.exists(path) and not os.path.exists(os.path.dirname(path))


def test_audit_of_one_partition_reads_only_its_range_of_the_log(passes: list[logspill.LogPass]) -> None:
    forge, _, _ = _planted()
    within = Partition(2, 4)
    report = forge.audit(ET, partition=within)
    assert _new_way(report) == _old_way(forge, within)
    assert {f.kind for f in report.findings if f.store == "log"} >= {"orphan", "stale", "missing", "malformed"}
    assert all(within.contains(uuid.UUID(f.id)) for f in report.findings
               if f.store == "log" and f.kind in ("orphan", "stale", "missing"))


def test_partition_ranges_are_exact(tmp_path: Path) -> None:
    edges = _boundary_ids()
    with logspill.LogSpill(directory=str(tmp_path)) as spill:
        for ident in edges:
            spill.add((ident, ident.hex[:8]))
        spill.add((MalformedID("x", "decodes to the last ID", uuid.UUID(int=SPACE - 1)), None))
        spill.finish()
        parts = Partition().split(PARTS)
        got = [[i if isinstance(i, uuid.UUID) else i.id for i, _ in spill.items(p)] for p in parts]
        assert got[:-1] == [[edges[2 * k], edges[2 * k + 1]] for k in range(PARTS - 1)]
        assert got[-1] == [edges[-2], edges[-1]] == [edges[-2], uuid.UUID(int=SPACE - 1)]
        # the malformed name replaced the well-formed item of the same ID (the latest wins)
        assert list(spill.items(parts[-1]))[-1] == (MalformedID("x", "decodes to the last ID", edges[-1]), None)
        assert sum(len(g) for g in got) == len(edges)
        assert [fp for _, fp in spill.items(parts[0])] == [edges[0].hex[:8], edges[1].hex[:8]]
    assert not os.listdir(tmp_path)  # the directory and file are removed


def test_latest_item_wins_and_unkeyed_entries_come_once(tmp_path: Path) -> None:
    a = uuid.uuid4()
    with logspill.LogSpill(directory=str(tmp_path)) as spill:
        spill.add((a, "old"))
        spill.add((MalformedID("A", "upper", a), "mid"))
        for _ in range(3):
            spill.add((ForeignEntry("k", "theirs"), None))
        spill.add((MalformedID("junk", "nothing"), None))
        for n in range(5000):  # across several INSERT batches
            spill.add((a, f"v{n}"))
        spill.finish()
        assert list(spill.items(Partition())) == [(a, "v4999")]
        assert sorted(str(i) for i, _ in spill.others()) == sorted(
            [str(ForeignEntry("k", "theirs")), str(MalformedID("junk", "nothing"))])
        assert spill.count == 5006


def test_a_log_outside_the_audited_partition_is_not_kept(tmp_path: Path) -> None:
    within = Partition(0, 2)
    inside, outside = uuid.UUID(int=1), uuid.UUID(int=SPACE - 1)
    with logspill.LogSpill(within, directory=str(tmp_path)) as spill:
        spill.add((inside, "a"))
        spill.add((outside, "b"))
        spill.add((MalformedID("o", "out", outside), None))
        spill.finish()
        assert [i for i, _ in spill.items(Partition())] == [inside]


def test_a_failed_log_read_leaves_no_file_and_raises(tmp_path: Path) -> None:
    class FakeBrokenLog(FakeLogAdapter):
        def scan_log(self, entity_type: str, handle: Callable[[ScanItem], None]) -> None:
            handle((uuid.uuid4(), "x"))
            raise ConnectionError("fake outage: the log went away mid-read")

    with pytest.raises(ConnectionError):
        logspill.spill(FakeBrokenLog(), ET, directory=str(tmp_path))
    assert not os.listdir(tmp_path)


def test_a_bad_item_is_a_spill_error(tmp_path: Path) -> None:
    with logspill.LogSpill(directory=str(tmp_path)) as spill, pytest.raises(SpillError):
        spill.add(("not an id", None))
    assert not os.listdir(tmp_path)


def test_a_delete_event_ends_the_history_until_a_later_write(tmp_path: Path) -> None:
    """Issue 19: a deleted entity's history ends with its delete event: not held (not an orphan, not
    missing); a later write makes it held again; a malformed entry of the same ID goes too."""
    a, b, c = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    many = [uuid.UUID(int=SPACE - 1 - n) for n in range(3000)]
    with logspill.LogSpill(directory=str(tmp_path)) as spill:
        spill.add((a, "v1"))
        spill.add((a, DELETED))
        spill.add((b, "v1"))
        spill.add((b, DELETED))
        spill.add((b, "v2"))  # re-created after the delete
        spill.add((MalformedID("C", "upper", c), "m"))
        spill.add((c, DELETED))
        for ident in many:  # writes and deletes across several INSERT batches, in log order
            spill.add((ident, "w"))
        for ident in many:
            spill.add((ident, DELETED))
        spill.finish()
        assert list(spill.items(Partition())) == [(b, "v2")]
        assert list(spill.items(Partition(0, 2))) == [(b, "v2")]


class FakeAppendOnlyLog(FakeLogAdapter):
    """A fake log that, like the RabbitMQ adapter, takes deletes as delete events (append_only)."""

    capabilities: ClassVar[frozenset[str]] = frozenset({WRITE, SCAN, DELETE})
    append_only: ClassVar[bool] = True

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        assert self._delete_token, "a delete event needs the deletion's token"
        self.events += [(i, DELETED) for i in ids]
        return len(ids)


def test_the_audit_after_a_delete_is_consistent_and_repair_publishes_no_delete_for_an_orphan() -> None:
    source, log = MemoryAdapter(), FakeAppendOnlyLog()
    forge = make_forge(Path(), ("src", source), ("log", log), ids=IDS, journal=None)
    forge.prover = FakeTrustingProver(forge.generator, forge.types)
    kept, gone, orphan = (Record(ET, uuid.uuid5(uuid.NAMESPACE_URL, n), {"n": n}) for n in ("kept", "gone", "orphan"))
    forge.source.adapter.put_many([kept, gone, orphan])
    log.put_many([kept, gone, orphan])
    source.delete_many(ET, [gone.id, orphan.id])
    log.delete_many(ET, [gone.id], token="t1")  # the deletion's event; the orphan's row went by hand
    report = forge.audit(ET, repair=True, delete_orphans=True)
    assert [(f.kind, f.id) for f in report.findings] == [("orphan", str(orphan.id))]
    assert f"uuid-forge delete --entity {ET} --id {orphan.id} --force" in report.findings[0].detail
    assert report.plan is not None
    (row,) = report.plan.rows
    assert (row.delete, row.keep, row.refused) == (0, 1, None) and "append-only" in (row.keep_reason or "")
    assert log.events[-1] == (gone.id, DELETED)  # repair appended nothing: no surprise delete event
    log.delete_many(ET, [orphan.id], token="t2")
    assert forge.audit(ET).consistent
    log.put_many([orphan])  # a later write: held again, an orphan again
    assert [f.kind for f in forge.audit(ET).findings] == ["orphan"]


def test_a_wrong_form_in_an_append_only_log_is_repaired_by_publishing_the_right_one() -> None:
    """A log removes nothing: repair publishes the source's record under the right ID form, which
    becomes the ID's latest event; it never asks the log to delete the wrong form."""
    source, log = MemoryAdapter(), FakeAppendOnlyLog()
    forge = make_forge(Path(), ("src", source), ("log", log), ids=IDS, journal=None)
    forge.prover = FakeTrustingProver(forge.generator, forge.types)
    record = Record(ET, uuid.uuid5(uuid.NAMESPACE_URL, "wrong-form"), {"n": 1})
    source.put_many([record])
    log.events.append((MalformedID(record.id.hex, "32 hex digits, no dashes", record.id), record.fingerprint))
    report = forge.audit(ET, repair=True)
    assert [f.kind for f in report.findings] == ["malformed"] and not report.repair_errors
    assert log.events[-1] == (record.id, record.fingerprint)
    assert forge.audit(ET).consistent


class FakeTextLog(FakeAppendOnlyLog):
    """A fake log whose scan gives each message's data text, as the RabbitMQ adapter's does."""

    def _put(self, entity_type: str, records: list[Record]) -> None:
        from uuid_forge.record import TextFingerprint

        self.events += [(r.id, TextFingerprint(r.data_json)) for r in records]


def test_an_orphan_in_a_log_is_named_by_the_key_fields_its_message_held(tmp_path: Path) -> None:
    from uuid_forge.entitytypes import EntityType

    source, log = MemoryAdapter(), FakeTextLog()
    forge = make_forge(tmp_path, ("src", source), ("log", log), ids=IDS, journal=None,
                       types=[EntityType(ET, key=("email",))])
    forge.write_many([(ET, {"email": "kept@example.org", "n": 1}), (ET, {"email": "gone@example.org", "n": 2})])
    gone = forge.id_for(ET, data={"email": "gone@example.org"})
    source.delete_many(ET, [gone])  # by hand in the source: the log still holds its message
    report = forge.audit(ET)
    (finding,) = [f for f in report.findings if f.kind == "orphan"]
    assert finding.id == str(gone) and finding.key == {"email": "gone@example.org"}, finding
    assert "gone@example.org" not in str(finding.to_dict().get("detail"))
