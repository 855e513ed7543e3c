"""While a store read once per audit is still being read, the next partitions go on with the
other stores (uuid_forge.compare.BEHIND): at most BEHIND partitions wait for it, they finish in
order, and the report is the one a partition-by-partition audit gives.

The slow store is a fake: the in-process memory adapter, read once (``whole_scan``), whose scan
waits for the test's signal before it gives anything.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import uuid_forge.compare as compare_module
from uuid_forge import IDConfig, Namespace, open_store

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("behind.uuid-forge.test"), salt="behind")
ET = "user"


def test_partitions_go_on_while_a_read_once_store_is_read_but_at_most_behind_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 10)  # 80 records: 8 partitions
    monkeypatch.setattr(compare_module, "BEHIND", 2)
    slow, ranged = open_store("memory://"), open_store("memory://")
    forge = make_forge(tmp_path, "memory://", ("slow", slow), ("ranged", ranged), ids=IDS, journal=None)
    rows = [(ET, {"email": f"u{i}@x.org"}, {"email": f"u{i}@x.org", "n": i}) for i in range(80)]
    forge.write_many(rows)
    victim = forge.records(rows)[5].id
    slow.delete_many(ET, [victim])  # a finding the late store must still report, in its partition
    go = threading.Event()
    scans: list[Any] = []
    slow_scan, ranged_scan = slow.scan, ranged.scan

    def waits(*args: Any, **kwargs: Any) -> Any:
        assert go.wait(30)
        yield from slow_scan(*args, **kwargs)

    def counted(*args: Any, **kwargs: Any) -> Any:
        scans.append(args[1] if len(args) > 1 else kwargs.get("partition"))
        return ranged_scan(*args, **kwargs)

    slow.whole_scan = True
    slow.scan, ranged.scan = waits, counted
    out: dict[str, Any] = {}
    audit = threading.Thread(target=lambda: out.update(report=forge.audit(ET)))
    audit.start()
    deadline = time.monotonic() + 20
    while len(scans) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # were it not bounded, the other five partitions would be scanned meanwhile
    assert len(scans) == 1 + 2  # the partition waiting for the read, and BEHIND more
    go.set()
    audit.join(30)
    report = out["report"]
    assert len(scans) == 8 and report.partitions == 8
    assert [t[1] for t in report.partition_times] == [f"{n}/8" for n in range(1, 9)]  # finished in order
    assert [(f.store, f.id, f.kind) for f in report.findings] == [("slow", str(victim), "missing")]
    assert report.stores["slow"]["ok"] == 79 and report.stores["ranged"]["ok"] == 80
    forge.close()
