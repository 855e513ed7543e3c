"""Audit classification and repair, exactly, on in-process stores (the memory adapter and files)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Forge, IDConfig, Namespace, Partition, Record
from uuid_forge import compare as compare_module
from uuid_forge.masking import mask_name

from .fakes import entities
from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("audit.test"), salt="s")


def proven_orphan(forge: Forge, n: int = 0) -> Record:
    """A record of ours the source lacks: its ID is the forge's for the key it keeps beside its data."""
    key = {"email": f"ghost{n}@example.com"}
    return Record("user", forge.id_for("user", key), {"email": key["email"], "x": 1}, key)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Forge, MemoryAdapter, MemoryAdapter]:
    src, replica = MemoryAdapter(), MemoryAdapter()
    forge = make_forge(tmp_path, ("src", src), ("replica", replica), ids=IDS, journal="j.sqlite3")
    forge.write_many(entities(300) + entities(40, "order"))
    return forge, src, replica


def test_clean_stores_are_consistent(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, _ = setup
    report = forge.audit()
    assert report.consistent and report.entity_types == ["order", "user"]
    assert report.stores["replica"]["ok"] == 340 and report.findings == []


def test_each_planted_class_is_found_exactly(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, replica = setup
    ids = sorted(replica._data["user"])
    replica.delete_many("user", [ids[0]])
    ghost = proven_orphan(forge)
    stray = uuid.uuid4()  # a name in our form, nothing to prove it ours
    replica.put_many([ghost, Record("user", stray, {"x": 1})])
    replica.put_many([Record("user", ids[1], {"edited": True})])
    report = forge.audit()
    found = {(f.kind, f.id) for f in report.findings}
    assert found == {("missing", str(ids[0])), ("orphan", str(ghost.id)), ("stale", str(ids[1])),
                     ("unproven", mask_name(str(stray)))}
    assert report.stores["replica"]["ok"] == 338 and not report.consistent
    repaired = forge.audit(repair=True, delete_orphans=True)
    assert repaired.repaired["replica"] == {"rewritten": 2, "orphans_deleted": 1}
    after = forge.audit()
    assert [(f.kind, f.id) for f in after.findings] == [("unproven", mask_name(str(stray)))]
    assert set(replica.get_many("user", [ghost.id, stray])) == {stray}  # the proven orphan went, the other stayed


def test_repair_keeps_orphans_unless_asked(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, replica = setup
    replica.put_many([proven_orphan(forge)])
    forge.audit(repair=True)
    assert forge.audit().stores["replica"]["orphan"] == 1


def test_dry_run_changes_nothing(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, replica = setup
    replica.delete_many("user", [min(replica._data["user"])])
    forge.audit(repair=True, dry_run=True)
    assert forge.audit().stores["replica"]["missing"] == 1


def test_many_small_partitions_give_the_same_answer(setup: tuple[Forge, MemoryAdapter, MemoryAdapter],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    forge, _, replica = setup
    replica.delete_many("user", sorted(replica._data["user"])[:5])
    whole = forge.audit()
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 16)
    split = forge.audit()
    assert split.partitions > 16
    assert {(f.kind, f.id) for f in split.findings} == {(f.kind, f.id) for f in whole.findings}


def test_partitions_of_the_cli_cover_everything(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, replica = setup
    replica.delete_many("user", sorted(replica._data["user"])[:9])
    parts = [forge.audit("user", partition=Partition.parse(f"{i}/3")) for i in (1, 2, 3)]
    assert sum(p.stores["replica"]["missing"] for p in parts) == 9
    assert sum(p.stores["replica"]["ok"] for p in parts) == 291


def test_point_audit_by_keys(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, replica = setup
    target = forge.id_for("user", {"email": "u7@example.com"})
    replica.put_many([Record("user", target, {"changed": 1})])
    report = forge.audit("user", keys=[{"email": "u7@example.com"}, {"email": "u8@example.com"}])
    assert [(f.kind, f.id) for f in report.findings] == [("stale", str(target))]
    assert report.stores["replica"]["ok"] == 1


def test_verify_keys_flags_ids_the_scheme_could_not_produce(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, _ = setup
    forged = uuid.uuid4()
    record = Record("user", forged, {"name": "impostor"}, {"email": "u1@example.com"})
    for h in forge.stores:
        h.adapter.put_many([record])
    report = forge.audit("user", verify_keys=True)
    assert [(f.store, f.kind, f.id) for f in report.findings] == [("src", "malformed", str(forged))]
    assert forge.audit("user").consistent  # without verify_keys it looks fine


@pytest.mark.parametrize("text", ["0/4", "5/4", "x", "1/0", "1-4"])
def test_bad_partition_text(text: str) -> None:
    with pytest.raises(ValueError, match="partition"):
        Partition.parse(text)



def test_a_repair_that_worked_reports_consistent_and_says_so(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]
                                                            ) -> None:
    forge, _, replica = setup
    ids = sorted(replica._data["user"])
    replica.delete_many("user", [ids[0]])
    replica.put_many([Record("user", ids[1], {"edited": True})])
    report = forge.audit("user", repair=True)
    assert report.consistent and report.rechecked is not None and report.rechecked["replica"]["missing"] == 0
    text = str(report)
    assert text.startswith("audit of user against src: 2 findings fixed (replica: 1 missing, 1 stale; "
                           "repaired replica: 2 rewritten), now consistent (300 source records, ")
    assert "\n" not in text and "Counter" not in text and "AuditReport" not in text


def test_a_repair_that_leaves_orphans_is_not_consistent(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, replica = setup
    replica.put_many([proven_orphan(forge)])
    report = forge.audit("user", repair=True)  # orphans are kept unless delete_orphans
    assert not report.consistent and report.rechecked["replica"]["orphan"] == 1
    assert "still inconsistent (replica: 1 orphan)" in str(report)


def test_write_and_replay_reports_print_as_one_line(setup: tuple[Forge, MemoryAdapter, MemoryAdapter]) -> None:
    forge, _, _ = setup
    text = str(forge.write_many(entities(3, "invoice")))
    assert text.startswith("write: 3 entities in ") and text.endswith("; src: ok; replica: ok")
    assert str(forge.replay()).startswith("replay: 0 entities in ")
