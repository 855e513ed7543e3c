"""Elasticsearch read once per audit (option ``read_once``, uuid_forge.onepass), on the real servers.

Where an ``id_field`` range query walks the whole index (the stand-in here has no range index), an
audit of P partitions read the index P times. With ``read_once`` the index is read once and
bucketed by partition; the report must be exactly the per-partition one, for every tamper kind,
in memory and spilled.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
from uuid_forge.adapters.elasticsearch import ElasticsearchAdapter

from uuid_forge import Forge, IDConfig, Namespace, onepass, open_store
from uuid_forge import compare as compare_module
from uuid_forge.forge import StoreHandle
from uuid_forge.report import AuditReport

from .scaffold import audit_counting_scans, audits_read_apart

IDS = IDConfig(namespace=Namespace("es-once.uuid-forge.test"), salt="es-once")
N = 400


@pytest.fixture
def planted(postgres_url: str, elasticsearch_url: str, es_client: Any) -> Iterator[tuple[str, str, str]]:
    """PostgreSQL and an Elasticsearch index holding N users, then every tamper kind planted there."""
    et = f"once{uuid.uuid4().hex[:8]}"
    f = Forge([StoreHandle("postgres", open_store(postgres_url), source=True),
               StoreHandle("elasticsearch", open_store(elasticsearch_url, refresh="true"))], ids=IDS, journal=None)
    index = f"uf-{et}"
    try:
        items = [(et, {"email": f"u{i}@example.com"}, {"email": f"u{i}@example.com", "n": i}) for i in range(N)]
        assert f.write_many(items).complete
        records = f.records(items)

        def doc(i: int) -> dict[str, Any]:
            return dict(es_client.get(index=index, id=str(records[i].id))["_source"])

        es_client.index(index=index, id=str(records[0].id), document={**doc(0), "n": -5})  # changed number
        es_client.index(index=index, id=str(records[1].id), document={k: v for k, v in doc(1).items() if k != "n"})
        es_client.index(index=index, id=str(records[2].id), document={**doc(2), "extra": True})  # added field
        for i in (3, 4):  # missing
            es_client.delete(index=index, id=str(records[i].id))
        ghost = uuid.uuid4()  # an orphan
        es_client.index(index=index, id=str(ghost), document={"uf_id": str(ghost), "ghost": 1})
        es_client.index(index=index, id=str(records[5].id).upper(),  # wrongly encoded twin
                        document={"uf_id": str(records[5].id), "email": "u5@example.com", "n": 5})
        es_client.index(index=index, id="session-17", document={"app": "theirs"})  # another application's
        es_client.indices.refresh(index=index)
        yield postgres_url, elasticsearch_url, et
    finally:
        f.source.adapter.drop(et)
        es_client.indices.delete(index=index, ignore_unavailable=True)
        f.close()


def _audit(postgres_url: str, es_url: str, et: str, read_once: bool,
           read_apart: bool = False) -> tuple[AuditReport, int]:
    """The audit, and how many times the index was scanned in this process (``read_apart``: in a process
    of its own, uncounted)."""
    store = open_store(es_url, read_once=read_once, read_apart=read_apart)
    assert isinstance(store, ElasticsearchAdapter)
    return audit_counting_scans(postgres_url, "elasticsearch", store, et, IDS)


def _seen(report: AuditReport) -> tuple[Any, ...]:
    findings = sorted((x.store, x.kind, x.id, x.detail, x.raw or "", x.fields) for x in report.findings)
    samples = {s: sorted(v) for s, v in report.foreign_samples.items()}
    return {n: dict(c) for n, c in report.stores.items()}, findings, samples, report.partitions


@pytest.mark.parametrize("budget", [None, 7], ids=["in-memory", "spilled"])
def test_read_once_gives_the_per_partition_report(planted: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch,
                                                  budget: int | None) -> None:
    postgres_url, es_url, et = planted
    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 50)  # 400 source records: 8 partitions
    if budget is not None:
        monkeypatch.setattr(onepass, "MEMORY_ITEMS", budget)
    ranged, ranged_scans = _audit(postgres_url, es_url, et, read_once=False)
    once, once_scans = _audit(postgres_url, es_url, et, read_once=True)
    assert ranged.partitions == 8 and ranged_scans == 8
    assert once_scans == 1  # the index read once per audit, not once per partition
    assert _seen(once) == _seen(ranged)
    counts = once.stores["elasticsearch"]
    assert counts["stale"] == 3 and counts["missing"] == 2, counts
    assert counts["malformed"] == 1 and counts["foreign"] == 1, counts  # the uppercase twin, the app's document
    assert counts["orphan"] + counts["unproven"] == 1, counts  # the ghost


def test_read_apart_gives_the_per_partition_report(planted: tuple[str, str, str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``read_apart`` (the default with read_once) a process of its own reads the store into
    the spill files, and the report is the per-partition one, tamper for tamper."""
    postgres_url, es_url, et = planted
    ranged, apart = audits_read_apart(monkeypatch, _audit, postgres_url, es_url, et)
    assert _seen(apart) == _seen(ranged)
    assert [t[1] for t in apart.partition_times] == [f"{n}/8" for n in range(1, 9)]  # finished in order
