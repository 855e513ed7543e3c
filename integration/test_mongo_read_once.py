"""MongoDB read once per audit (option ``read_once``, uuid_forge.onepass), on the real servers.

Where an ``_id`` range query walks the whole collection (the SecantusDB stand-in has no index for
it), an audit of P partitions read the collection P times. With ``read_once`` the collection is
read once and bucketed by partition; the report must be exactly the per-partition one, for every
tamper kind, in memory and spilled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaffold import driver_missing

pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
from uuid_forge.adapters.mongodb import MongoAdapter

from uuid_forge import Forge, IDConfig, Namespace, onepass, open_store
from uuid_forge import compare as compare_module
from uuid_forge.forge import StoreHandle
from uuid_forge.report import AuditReport

from .scaffold import audit_counting_scans, audits_read_apart

IDS = IDConfig(namespace=Namespace("mongo-once.uuid-forge.test"), salt="mongo-once")
N = 400


@pytest.fixture
def planted(postgres_url: str, mongo_db_url: str) -> Iterator[tuple[str, str, str]]:
    """PostgreSQL and a MongoDB database holding N users, then every tamper kind planted in MongoDB."""
    et = f"once{uuid.uuid4().hex[:8]}"
    f = Forge([StoreHandle("postgres", open_store(postgres_url), source=True),
               StoreHandle("mongodb", open_store(mongo_db_url))], ids=IDS, journal=None)
    client: Any = pymongo.MongoClient(mongo_db_url, uuidRepresentation="standard")
    try:
        items = [(et, {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "n": i}) for i in range(N)]
        assert f.write_many(items).complete
        records = f.records(items)
        coll = client.get_default_database()[et]
        coll.update_one({"_id": records[0].id}, {"$set": {"n": -5}})  # changed number
        coll.update_one({"_id": records[1].id}, {"$unset": {"n": ""}})  # removed field
        coll.update_one({"_id": records[2].id}, {"$set": {"extra": True}})  # added field
        coll.delete_many({"_id": {"$in": [records[3].id, records[4].id]}})  # missing
        coll.insert_one({"_id": uuid.uuid4(), "ghost": 1})  # an orphan no key proves: unproven
        coll.insert_one({"_id": str(records[5].id), "email": "u5@example.com", "n": 5})  # wrongly encoded twin
        coll.insert_one({"_id": "session-17", "app": "theirs"})  # another application's document
        yield postgres_url, mongo_db_url, et
    finally:
        client.close()
        f.source.adapter.drop(et)
        f.close()


def _audit(postgres_url: str, mongo_url: str, et: str, read_once: bool,
           read_apart: bool = False) -> tuple[AuditReport, int]:
    """The audit, and how many times the collection was scanned in this process (``read_apart``: in a process
    of its own, uncounted)."""
    store = open_store(mongo_url, read_once=read_once, read_apart=read_apart)
    assert isinstance(store, MongoAdapter)
    return audit_counting_scans(postgres_url, "mongodb", store, et, IDS)


def _seen(report: AuditReport) -> tuple[Any, ...]:
    findings = sorted((x.store, x.kind, x.id, x.detail, x.raw or "", x.fields) for x in report.findings)
    return {n: dict(c) for n, c in report.stores.items()}, findings, report.partitions


@pytest.mark.parametrize("budget", [None, 7], ids=["in-memory", "spilled"])
def test_read_once_gives_the_per_partition_report(planted: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch,
                                                  budget: int | None) -> None:
    postgres_url, mongo_url, et = planted
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 50)  # 400 source records: 8 partitions
    if budget is not None:
        monkeypatch.setattr(onepass, "MEMORY_ITEMS", budget)
    ranged, ranged_scans = _audit(postgres_url, mongo_url, et, read_once=False)
    once, once_scans = _audit(postgres_url, mongo_url, et, read_once=True)
    assert ranged.partitions == 8 and ranged_scans == 8
    assert once_scans == 1  # the collection read once per audit, not once per partition
    assert _seen(once) == _seen(ranged)
    kinds = {(x.kind, x.id) for x in once.findings if x.store == "mongodb"}
    assert {k for k, _ in kinds} >= {"stale", "missing", "malformed"}, kinds
    assert once.stores["mongodb"]["stale"] == 3 and once.stores["mongodb"]["missing"] == 2
    assert once.stores["mongodb"]["foreign"] == 1


def test_read_apart_gives_the_per_partition_report(planted: tuple[str, str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``read_apart`` (the default with read_once) a process of its own reads the store into
    the spill files, and the report is the per-partition one, tamper for tamper."""
    postgres_url, mongo_url, et = planted
    ranged, apart = audits_read_apart(monkeypatch, _audit, postgres_url, mongo_url, et)
    assert _seen(apart) == _seen(ranged)
    assert [t[1] for t in apart.partition_times] == [f"{n}/8" for n in range(1, 9)]  # finished in order
