"""One data model across stores: every value kind, written through every adapter in its default
layout and read back from the real server, compares equal to the source.

Each row of ``VALUES`` is one kind of value. For each store the test writes one record holding
all of them (plus one record per value, so a failure names the kind), then:

- reads it back by ID (where the store can) and checks, field by field, that the canonical form
  of what came back is the canonical form of what was written (``one data model``);
- audits the store against a SQLite source holding the same records: nothing may be stale.

Where a store cannot hold a value exactly, the test says so in ``PRECISION`` and the store is
compared at its precision (uuid_forge.view), as a user would configure it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Forge, IDConfig, Namespace
from uuid_forge.canonical import canonical
from uuid_forge.contract import READ
from uuid_forge.record import data_fingerprint, fingerprint_of, load_json

from .scaffold import forget_redis_type, make_forge

IDS = IDConfig(namespace=Namespace("roundtrip.uuid-forge.test"), salt="roundtrip-n")
STORES = ["postgres", "mariadb", "sqlite", "mongodb", "redis", "elasticsearch", "files", "rabbitmq", "memory"]

#: (name, value): every kind of value the data model promises to keep
VALUES: list[tuple[str, Any]] = [
    ("aware_datetime", dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)),
    ("datetime_in_paris", dt.datetime(2024, 5, 6, 9, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=2)))),
    ("offset_datetime_text", "2024-05-06T09:08:09+02:00"),
    ("date", dt.date(2024, 1, 2)),
    ("decimal_20_digits", decimal.Decimal("12345678901234567890.125")),
    ("decimal_cents", decimal.Decimal("12.50")),
    ("int", 42),
    ("int64_max", 2**63 - 1),
    ("negative_int", -7),
    ("float", 0.1),
    ("float_tiny", 1e-7),
    ("float_whole", 2.0),
    ("uuid", uuid.UUID("7b6f3c1e-2d4a-5b8c-9e0f-1a2b3c4d5e6f")),
    ("nested", {"a": {"b": [1, "x", None, {"c": True}]}}),
    ("list", [1, 2.5, "three", False]),
    ("true", True),
    ("null", None),
    ("unicode", "Zoë – 東京 🚀"),
    ("empty_list", []),
    ("empty_object", {}),
]

#: values a store's own rules refuse, replaced there by the nearest value it accepts (and why)
ADAPTED: dict[str, dict[str, tuple[Any, str]]] = {
    "elasticsearch": {
        "nested": ({"a": {"b": ["x", "y"], "c": True}}, "an ES field maps to one type: no mixed arrays"),
        "list": (["one", "two", "three"], "an ES field maps to one type: no mixed arrays"),
    },
}


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path, et: str) -> str:
    return {
        "postgres": lambda: request.getfixturevalue("postgres_url"),
        "mariadb": lambda: request.getfixturevalue("mariadb_url"),
        "sqlite": lambda: f"sqlite:///{tmp_path}/target.db",
        "mongodb": lambda: request.getfixturevalue("mongodb_url"),
        "redis": lambda: request.getfixturevalue("redis_url"),
        "elasticsearch": lambda: request.getfixturevalue("elasticsearch_url"),
        "files": lambda: f"file://{tmp_path}/files?fsync=false",
        "rabbitmq": lambda: f"{request.getfixturevalue('amqp_url')}?exchange=uf_roundtrip_{et}&stream=uf_roundtrip_{et}"
                    "&marker=true",
        "memory": lambda: "memory://",
    }[kind]()


@pytest.fixture(params=STORES)
def forge(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Forge, str]]:
    kind: str = request.param
    et = f"rt{uuid.uuid4().hex[:8]}"
    url = _url(kind, request, tmp_path, et)
    f = make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", (kind, url), ids=IDS)
    target = f.stores[1]
    yield f, et
    for h in f.stores:
        if "delete" in h.adapter.capabilities and not h.adapter.append_only:
            h.adapter.drop(et, prover=f.prover)
    if kind == "redis":
        forget_redis_type(url, et)
    if hasattr(target.adapter, "delete_topology"):
        target.adapter.delete_topology()
    f.close()


def _rows(et: str, kind: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """One record with every value, then one per value (under its own field name: a typed store
    such as Elasticsearch maps each field to one type)."""
    adapted = ADAPTED.get(kind, {})
    every = {name: adapted[name][0] if name in adapted else value for name, value in VALUES}
    rows = [(et, {"case": "all"}, {"case": "all", **every})]
    rows += [(et, {"case": name}, {"case": name, name: value}) for name, value in every.items()]
    return rows


def test_every_value_kind_round_trips_through_every_store(forge: tuple[Forge, str]) -> None:
    f, et = forge
    store = f.stores[1]
    rows = _rows(et, store.name)
    report = f.write_many(rows)
    assert report.complete, str(report)
    records = f.records(rows)

    if READ in store.adapter.capabilities:
        back = store.adapter.get_many(et, [r.id for r in records])
        assert set(back) == {r.id for r in records}
        for r in records:
            got = back[r.id]
            wrote = load_json(r.data_json)  # every digit (json_data would parse fractions as floats)
            for name in wrote:  # field by field, so a failure names the value kind
                assert name in got.data, f"{store.name}: {r.data['case']}: field {name!r} not read back"
                assert canonical(got.data[name]) == canonical(wrote[name]), \
                    f"{store.name}: {r.data['case']}.{name}: wrote {canonical(wrote[name])}, read {canonical(got.data[name])}"
            assert data_fingerprint(got.data) == fingerprint_of(r.data_json), f"{store.name}: {r.data['case']}"

    audit = f.audit(et)
    assert audit.consistent, [(x.id, x.kind, x.detail) for x in audit.findings]
    assert audit.stores[store.name]["ok"] == len(records)

