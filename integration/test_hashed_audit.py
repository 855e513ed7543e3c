"""The hashed audit (uuid_forge.rangehash) on real PostgreSQL, MariaDB and SQLite: every tamper kind
found through per-range digests computed in the servers, with the record path's own report; a
hand-reformatted JSON value is no finding; entries outside the ID domain send the store to its
records, where they are found."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("pymysql", reason=driver_missing("pymysql"))
import sqlalchemy as sa

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.report import AuditReport

from .scaffold import make_forge, run_cli, write_forge_toml

IDS = IDConfig(namespace=Namespace("hashed.uuid-forge.test"), salt="hashed")
N = 3000
KINDS = ("postgres", "mariadb", "sqlite")


@pytest.fixture
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The URL of each kind the test asks for (servers only when asked)."""
    out = {"sqlite": f"sqlite:///{tmp_path / 'hashed.sqlite3'}"}
    for kind, fixture in (("postgres", "postgres_url"), ("mariadb", "mariadb_url")):
        if kind in request.node.name:
            out[kind] = request.getfixturevalue(fixture)
    return out


class Side:
    """One SQL store of the test: the adapter, and its table reached with raw SQL (as another program would)."""

    def __init__(self, url: str, prefix: str, entity_type: str) -> None:
        self.adapter = open_store(url, prefix=prefix)
        self.engine = sa.create_engine(url)
        self.backend = self.engine.dialect.name
        self.table = f"{prefix}{entity_type}"

    def key(self, ident: uuid.UUID) -> Any:
        return str(ident) if self.backend == "postgresql" else ident.hex

    def sql(self, text: str, **params: Any) -> Any:
        q = self.engine.dialect.identifier_preparer.quote(self.table)
        with self.engine.begin() as conn:
            return conn.execute(sa.text(text.replace("{t}", q)), params)

    def set_data(self, ident: uuid.UUID, text: str) -> None:
        cast = "CAST(:d AS json)" if self.backend == "postgresql" else ":d"
        where = "CAST(id AS text) = :i" if self.backend == "postgresql" else "id = :i"
        assert self.sql(f"UPDATE {{t}} SET data = {cast} WHERE {where}", d=text, i=self.key(ident)).rowcount == 1

    def data(self, ident: uuid.UUID) -> str:
        where = "CAST(id AS text) = :i" if self.backend == "postgresql" else "id = :i"
        col = "CAST(data AS text)" if self.backend == "postgresql" else "data"
        return str(self.sql(f"SELECT {col} FROM {{t}} WHERE {where}", i=self.key(ident)).scalar())

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def pair(request: pytest.FixtureRequest, urls: dict[str, str], tmp_path: Path) -> Iterator[tuple[Forge, Side, Side]]:
    kind = request.param
    et = "hs" + uuid.uuid4().hex[:10]
    source, store = Side(urls[kind], "ha_", et), Side(urls[kind], "hb_", et)
    forge = make_forge(tmp_path, ("source", source.adapter), ("replica", store.adapter), ids=IDS)
    forge.write_many((et, {"email": f"u{i}@example.com"},
                      {"name": f"User {i}", "n": i, "tags": ["a", "é"], "nested": {"k": i % 7}}) for i in range(N))
    forge.entity = et  # type: ignore[attr-defined]
    try:
        yield forge, source, store
    finally:
        for side in (source, store):
            side.adapter.drop(et)
            side.close()
        forge.close()


def _same(a: AuditReport, b: AuditReport) -> None:
    """The hashed and the record path's reports: the same counts and the same findings."""
    assert {n: dict(c) for n, c in a.stores.items()} == {n: dict(c) for n, c in b.stores.items()}
    key = lambda r: sorted(json.dumps(f.to_dict(), sort_keys=True) for f in r.findings)
    assert key(a) == key(b)
    assert a.foreign_samples == b.foreign_samples


def _ids(store: Side) -> list[uuid.UUID]:
    rows = store.sql("SELECT id FROM {t}").all()
    return sorted(r[0] if isinstance(r[0], uuid.UUID) else uuid.UUID(str(r[0])) for r in rows)


@pytest.mark.parametrize("pair", KINDS, indirect=True)
def test_every_tamper_is_found_through_the_hashed_path(pair: tuple[Forge, Side, Side]) -> None:
    forge, _, store = pair
    et = forge.entity  # type: ignore[attr-defined]
    assert forge.audit(et).consistent
    ids = _ids(store)
    data = {i: json.loads(store.data(i)) for i in ids[:400]}

    def text(d: dict[str, Any]) -> str:
        return json.dumps(d, separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    planted: dict[uuid.UUID, str] = {}
    edited, removed, added, number = ids[3], ids[50], ids[100], ids[150]
    store.set_data(edited, text({**data[edited], "name": "edited by hand"}))
    store.set_data(removed, text({k: v for k, v in data[removed].items() if k != "tags"}))
    store.set_data(added, text({**data[added], "extra": True}))
    store.set_data(number, text({**data[number], "n": data[number]["n"] + 1}))
    planted.update(dict.fromkeys((edited, removed, added, number), "stale"))
    wrong_type, unreadable = ids[200], ids[250]
    store.set_data(wrong_type, "[1,2,3]")  # JSON, not an object
    # an unreadable value: not JSON at all where the column allows it, else a JSON text that is no object
    store.set_data(unreadable, '"just text"' if store.backend in ("postgresql", "mysql") else "{not json")
    planted.update(dict.fromkeys((wrong_type, unreadable), "stale"))
    a, b = ids[300], ids[301]  # two values swapped between neighbours: the counts agree, the sums do not
    store.set_data(a, text(data[b]))
    store.set_data(b, text(data[a]))
    planted.update(dict.fromkeys((a, b), "stale"))
    missing = ids[350]
    store.sql("DELETE FROM {t} WHERE " + ("CAST(id AS text)" if store.backend == "postgresql" else "id") + " = :i",
              i=store.key(missing))
    planted[missing] = "missing"
    orphan = uuid.uuid5(uuid.NAMESPACE_DNS, et)  # in the store only (no key: unproven, never deleted)
    store.sql("INSERT INTO {t} (id, fingerprint, data) VALUES (" + ("CAST(:i AS uuid)" if store.backend == "postgresql"
                                                                 else ":i") + ", :f, :d)",
              i=store.key(orphan), f="0" * 32, d='{"ghost":1}')
    reformatted = ids[399]  # the same data in another text: never a finding
    store.set_data(reformatted, json.dumps(data[reformatted], indent=2, sort_keys=False)[::1].replace(
        '"name"', ' "name"'))
    assert store.data(reformatted) != text(data[reformatted])

    hashed, records = forge.audit(et), forge.audit(et, hashed=False)
    _same(hashed, records)
    found = {uuid.UUID(f.id): f.kind for f in hashed.findings if f.store == "replica" and f.kind != "unproven"}
    assert {i: found.get(i) for i in planted} == planted
    assert reformatted not in found  # the orphan has no key fields: unproven, its name masked
    assert [f.kind for f in hashed.findings if f.id not in {str(i) for i in planted}] in (["orphan"], ["unproven"])
    assert len(hashed.findings) == len(planted) + 1
    stats = hashed.hashed["replica"]
    assert stats["hashed_records"] > N * 0.5 and 0 < stats["read_records"] < N * 0.5
    assert records.hashed == {}


@pytest.mark.parametrize("pair", ("mariadb", "sqlite"), indirect=True)
def test_entries_outside_the_id_domain_send_the_store_to_its_records(pair: tuple[Forge, Side, Side]) -> None:
    forge, _, store = pair
    et = forge.entity  # type: ignore[attr-defined]
    ids = _ids(store)
    store.sql("INSERT INTO {t} (id, fingerprint, data) VALUES (:i, :f, :d)", i="invoice-2024-001", f="0" * 32, d="{}")
    store.sql("INSERT INTO {t} (id, fingerprint, data) VALUES (:i, :f, :d)", i=ids[7].hex.upper(), f="0" * 32,
              d=store.data(ids[7]))
    hashed, records = forge.audit(et), forge.audit(et, hashed=False)
    _same(hashed, records)
    assert [f.kind for f in hashed.findings] == ["malformed"] and hashed.stores["replica"]["foreign"] == 1
    assert "replica" not in hashed.hashed  # audited by its records, where both are found


@pytest.mark.parametrize("pair", ("sqlite",), indirect=True)
def test_a_source_holding_entries_outside_the_id_domain_is_read(pair: tuple[Forge, Side, Side]) -> None:
    forge, source, _ = pair
    et = forge.entity  # type: ignore[attr-defined]
    source.sql("INSERT INTO {t} (id, fingerprint, data) VALUES (:i, :f, :d)", i="not-an-id", f="0" * 32, d="{}")
    hashed = forge.audit(et)
    assert hashed.hashed == {} and hashed.stores["source"]["foreign"] == 1 and hashed.findings == []


def test_across_kinds_postgres_source_mariadb_store(postgres_url: str, mariadb_url: str, tmp_path: Path) -> None:
    et = "hs" + uuid.uuid4().hex[:10]
    source, store = Side(postgres_url, "ha_", et), Side(mariadb_url, "hb_", et)
    forge = make_forge(tmp_path, ("source", source.adapter), ("replica", store.adapter), ids=IDS)
    try:
        forge.write_many((et, {"email": f"u{i}@example.com"}, {"name": f"Üser {i}", "n": i / 3}) for i in range(500))
        clean = forge.audit(et)
        assert clean.consistent and clean.hashed["replica"]["hashed_records"] == 500
        victim = _ids(store)[17]
        store.set_data(victim, store.data(victim).replace("Üser", "User"))
        hashed, records = forge.audit(et), forge.audit(et, hashed=False)
        _same(hashed, records)
        assert [(f.id, f.kind) for f in hashed.findings] == [(str(victim), "stale")]
    finally:
        for side in (source, store):
            side.adapter.drop(et)
            side.close()
        forge.close()


def test_the_command_line_says_what_hashes_settled_and_no_hash_reads_everything(tmp_path: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.sqlite3'}", f"sqlite:///{tmp_path / 'b.sqlite3'}"
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": a, "copy": b}, "db",
                              namespace="hashed.cli.uuid-forge.test")
    lines = "".join(json.dumps({"entity_type": "user", "key": {"email": f"u{i}@x.test"}, "data": {"n": i}}) + "\n"
                    for i in range(300))
    assert run_cli("write", "-c", str(config), "--jsonl", "-", stdin=lines).returncode == 0
    done = run_cli("audit", "-c", str(config), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hashed"]["copy"]["hashed_records"] == 300
    plain = run_cli("audit", "-c", str(config), "--json", "--no-hash")
    assert plain.returncode == 0 and json.loads(plain.stdout)["hashed"] == {}
    text = run_cli("audit", "-c", str(config))
    assert "by hashes: copy 300 settled, 0 read" in text.stdout, text.stdout


@pytest.mark.parametrize("pair", ("sqlite",), indirect=True)
def test_partition_tasks_merge_into_the_same_report(pair: tuple[Forge, Side, Side],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """What executors run (one pure task per partition, partials merged), hashed as in one process."""
    from uuid_forge import compare as compare_module
    from uuid_forge.partial import audit_partition, merge_all, plan, to_report

    monkeypatch.setattr(compare_module, "PARTITION_TARGET", 500)  # 8 partitions
    forge, _, store = pair
    et = forge.entity  # type: ignore[attr-defined]
    ids = _ids(store)
    for n in (10, 11, 1500, 2990):
        store.set_data(ids[n], '{"edited":true}')
    tasks = plan(forge, [et])
    assert len(tasks) == 8
    merged = to_report(merge_all([audit_partition(forge, t) for t in reversed(tasks)]), [et])
    _same(merged, forge.audit(et, hashed=False))
    assert merged.hashed["replica"]["hashed_records"] > N / 2 and len(merged.findings) == 4
