"""Issue 19, the nightly audit always has an answer, on real servers.

A PostgreSQL table of the user's own (the source, one type), a Redis cache and files: entries of a
type the source neither declares nor holds (in Redis and among the files) give exit 1 with a
``stray_type`` finding naming each store and ``--entity``, while the user type is still audited;
findings name the entity by its key fields, masked unless ``--show-values``. ``validate`` names
the misspelled MongoDB option, the missing PostgreSQL column, an Elasticsearch index of the
user's whose ``uf_id`` is text or unmapped, and the ID-configuration guard that is off for a
source that cannot keep its marker. Raw checks and set-ups use the drivers directly.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing

psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
redis = pytest.importorskip("redis", reason=driver_missing("redis"))

from uuid_forge import IDConfig, Namespace, Record, UUIDGenerator, open_store

from .scaffold import DEFAULT_SALT, FAST_WRITE, run_cli, write_forge_toml
from .test_sql import _pg, _pg_drop

NAMESPACE = "nightly.uuid-forge.test"
PEOPLE = 5


@pytest.fixture
def site(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The user's table ``people_<hex>`` (source, type ``person_<hex>``), Redis and files, five
    people written through the CLI; the Redis keys of this test's types removed afterwards."""
    tag = uuid.uuid4().hex[:8]
    table, person, stray = f"people_{tag}", f"person{tag}", f"invoice{tag}"
    with _pg(postgres_url) as raw:
        raw.execute(f"CREATE TABLE {table} (id uuid PRIMARY KEY, email text NOT NULL, name text)")
    cfg = write_forge_toml(
        tmp_path / "uf.toml",
        {"db": {"url": postgres_url, "options": {"table": table, "entity_type": person,
                                                 "fields": {"email": "email", "name": "name"}}},
         "cache": f"{redis_url}?prefix=nt{tag}", "files": f"file://{tmp_path / 'files'}"},
        "db", namespace=NAMESPACE, write=FAST_WRITE, extra=f'[types.{person}]\nkey = ["email"]\n')
    lines = "".join(json.dumps({"entity_type": person, "key": {"email": f"p{i}@example.com"},
                                "data": {"email": f"p{i}@example.com", "name": f"P {i}"}}) + "\n"
                    for i in range(PEOPLE))
    done = run_cli("write", "-c", str(cfg), "--jsonl", "-", stdin=lines)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield {"cfg": cfg, "person": person, "stray": stray, "table": table, "tmp": tmp_path,
               "redis_url": f"{redis_url}?prefix=nt{tag}", "postgres_url": postgres_url}
    finally:
        _pg_drop(postgres_url, table)
        client = redis.Redis.from_url(redis_url)  # this test's own prefix: every key under it
        try:
            keys = list(client.scan_iter(match=f"nt{tag}*", count=1000))
            if keys:
                client.unlink(*keys)
        finally:
            client.close()


def _plant_strays(site: dict[str, Any]) -> None:
    """Entries of a type the source does not know: two in Redis, one in the files (written by
    another uuid-forge deployment, as a stray is in practice)."""
    gen = UUIDGenerator(IDConfig(namespace=Namespace("other.example"), salt="other"))
    records = [Record(site["stray"], gen.generate(site["stray"], n=i), {"total": i}) for i in range(2)]
    with open_store(site["redis_url"]) as cache:
        cache.put_many(records)
    with open_store(f"file://{site['tmp'] / 'files'}") as files:
        files.put_many(records[:1])


def _audit(site: dict[str, Any], *args: str) -> Any:
    return run_cli("audit", "-c", str(site["cfg"]), *args)


def test_a_stray_type_in_redis_and_files_gives_exit_1_naming_each_store(site: dict[str, Any]) -> None:
    assert _audit(site).returncode == 0
    _plant_strays(site)
    done = _audit(site)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not accepted" not in done.stdout + done.stderr
    text = " ".join(done.stdout.split())  # rich may fold a long line
    assert f"stray type store 'cache' holds 2 entries of entity type {site['stray']!r}" in text, done.stdout
    assert f"stray type store 'files' holds 1 entry of entity type {site['stray']!r}" in text, done.stdout
    assert text.count(f"--entity {site['stray']}") == 2
    body = json.loads(_audit(site, "--json").stdout)
    assert body["entity_types"] == [site["person"]]  # the consistent type still audited
    assert body["stores"]["cache"]["ok"] == PEOPLE and body["stores"]["files"]["ok"] == PEOPLE
    assert sorted((s["store"], s["count"]) for s in body["stray_types"]) == [("cache", 2), ("files", 1)]
    assert body["exit_code"] == 1 and "2 stray types" in body["summary"]


def test_an_entity_the_source_refuses_names_the_store(site: dict[str, Any]) -> None:
    _plant_strays(site)
    done = _audit(site, "--entity", site["stray"])
    assert done.returncode == 2
    assert "store 'db' (source" in done.stdout + done.stderr and site["stray"] in done.stdout + done.stderr


def test_findings_show_the_key_masked_and_clear_with_show_values(site: dict[str, Any]) -> None:
    gen = UUIDGenerator(IDConfig(namespace=Namespace(NAMESPACE), salt=DEFAULT_SALT))
    lost = gen.generate(site["person"], email="p3@example.com")
    client = redis.Redis.from_url(site["redis_url"].split("?")[0])
    try:
        gone = [k for k in client.scan_iter(match=f"nt*{site['person']}:*") if str(lost) in k.decode()]
        assert len(gone) == 1
        client.delete(*gone)
    finally:
        client.close()
    done = _audit(site)
    assert done.returncode == 1
    line = next(x for x in done.stdout.splitlines() if str(lost) in x)
    assert "missing" in line and "email=p•@e••••••.c••" in line and "p3@example.com" not in done.stdout
    shown = json.loads(_audit(site, "--json", "--show-values").stdout)
    assert [(f["class"], f["key"]) for f in shown["findings"]] == [("missing", {"email": "p3@example.com"})]


# -- validate ----------------------------------------------------------------------------------
def _validate(cfg: Path) -> tuple[int, list[dict[str, Any]], str]:
    done = run_cli("validate", "-c", str(cfg), "--json")
    return done.returncode, json.loads(done.stdout)["checks"], done.stderr


def test_validate_names_the_missing_column_of_a_postgresql_table(site: dict[str, Any]) -> None:
    cfg: Path = site["cfg"]
    code, checks, _ = _validate(cfg)
    assert code == 0, checks
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('name = "name" }', 'name = "name", nick = "nick" }'),
                   encoding="utf-8")
    code, checks, _ = _validate(cfg)
    failed = [c for c in checks if c["status"] == "failed"]
    assert code == 2
    assert [(c["store"], c["check"]) for c in failed] == [("db", f"table {site['table']!r}")]
    assert "no column 'nick'" in failed[0]["message"]
    with _pg(site["postgres_url"]) as raw:  # nothing written: the five rows, the columns as they were
        assert raw.execute(f"SELECT count(*) FROM {site['table']}").fetchone()[0] == PEOPLE


@pytest.fixture
def mongo_db(mongodb_url: str) -> Iterator[str]:
    pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
    name = f"uf_nightly_{uuid.uuid4().hex[:8]}"
    yield urlunsplit(urlsplit(mongodb_url)._replace(path=f"/{name}"))
    client: Any = pymongo.MongoClient(mongodb_url)
    client.drop_database(name)
    client.close()


def test_validate_names_a_misspelled_mongodb_option(mongo_db: str, tmp_path: Path) -> None:
    stores = {"db": f"sqlite:///{tmp_path}/source.db",
              "people": {"url": mongo_db, "options": {"colection": "people", "entity_type": "person"}}}
    cfg = write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace=NAMESPACE,
                           extra='[types.person]\nkey = ["email"]\n')
    code, checks, _ = _validate(cfg)
    assert code == 2
    bad = [c for c in checks if c["status"] == "failed"]
    assert [(c["store"], c["check"]) for c in bad] == [("people", "options")]
    assert "'colection'" in bad[0]["message"] and "Did you mean 'collection'?" in bad[0]["message"]
    stores["people"]["options"] = {"collection": "people", "entity_type": "person"}  # type: ignore[index]
    write_forge_toml(cfg, stores, "db", namespace=NAMESPACE, extra='[types.person]\nkey = ["email"]\n')
    code, checks, _ = _validate(cfg)
    assert code == 0, checks
    assert ("people", "collection 'people'") not in {(c["store"], c["check"]) for c in checks if c["status"] != "ok"}


def test_validate_says_the_id_configuration_guard_is_off(redis_url: str, tmp_path: Path) -> None:
    """Raw files as the source of truth keep no marker: a run under another salt is not detected."""
    stores = {"docs": {"url": f"file://{tmp_path / 'docs'}", "options": {"layout": "raw"}}, "cache": redis_url}
    cfg = write_forge_toml(tmp_path / "uf.toml", stores, "docs", namespace=NAMESPACE)
    code, checks, _ = _validate(cfg)
    guard = next(c for c in checks if c["check"] == "ID-configuration guard")
    assert guard["status"] == "off" and guard["store"] == "docs" and "not detected" in guard["message"]
    assert code == 0  # said, not a failure; with --strict it is one
    assert run_cli("validate", "-c", str(cfg), "--strict").returncode == 1
    text = run_cli("validate", "-c", str(cfg)).stdout
    assert any(x.startswith("off") and "docs: ID-configuration guard" in x for x in text.splitlines())


@pytest.fixture
def es(elasticsearch_url: str) -> Iterator[tuple[str, Any, str]]:
    elasticsearch = pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
    from .servers import elasticsearch_http_url

    client = elasticsearch.Elasticsearch(elasticsearch_http_url(elasticsearch_url), request_timeout=30)
    index = f"people-{uuid.uuid4().hex[:8]}"
    try:
        yield elasticsearch_url, client, index
    finally:
        client.indices.delete(index=index, ignore_unavailable=True)
        client.close()


def test_an_unmapped_uf_id_is_mapped_as_a_keyword_before_the_first_write_and_nothing_else(
        es: tuple[str, Any, str], tmp_path: Path) -> None:
    """validate says the first write will map it (and maps nothing itself); the write then adds
    uf_id as a keyword, leaving the user's own field mappings as they were."""
    url, client, index = es
    mine = {"email": {"type": "keyword"}, "notes": {"type": "text"}}
    client.indices.create(index=index, mappings={"properties": mine})
    stores = {"db": f"sqlite:///{tmp_path}/source.db",
              "search": {"url": url, "options": {"index": index, "entity_type": "person"}}}
    cfg = write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace=NAMESPACE,
                           extra='[types.person]\nkey = ["email"]\n')
    code, checks, _ = _validate(cfg)
    assert code == 0, checks
    said = [c["message"] for c in checks if c["check"] == f"index {index!r}"]
    assert said and "the first write maps it as a keyword" in said[0]
    assert "uf_id" not in client.indices.get_mapping(index=index).body[index]["mappings"]["properties"]
    done = run_cli("write", "-c", str(cfg), "person", "-k", "email=a@example.com")
    assert done.returncode == 0, done.stderr
    props = client.indices.get_mapping(index=index).body[index]["mappings"]["properties"]
    assert props["uf_id"] == {"type": "keyword"}
    assert {k: props[k] for k in mine} == mine, "a mapping of the user's own fields changed"


def test_validate_names_an_elasticsearch_index_whose_uf_id_is_not_a_keyword(
        es: tuple[str, Any, str], tmp_path: Path) -> None:
    mapping = {"properties": {"uf_id": {"type": "text"}, "email": {"type": "keyword"}}}
    said = "maps 'uf_id' as 'text'"
    url, client, index = es
    client.indices.create(index=index, mappings=mapping)
    stores = {"db": f"sqlite:///{tmp_path}/source.db",
              "search": {"url": url, "options": {"index": index, "entity_type": "person"}}}
    cfg = write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace=NAMESPACE,
                           extra='[types.person]\nkey = ["email"]\n')
    code, checks, _ = _validate(cfg)
    assert code == 2
    bad = [c for c in checks if c["status"] == "failed"]
    assert [(c["store"], c["check"]) for c in bad] == [("search", f"index {index!r}")]
    assert said in bad[0]["message"] and index in bad[0]["message"]
    assert client.indices.get_mapping(index=index).body[index]["mappings"] == mapping  # nothing was mapped
    client.indices.delete(index=index)
    client.indices.create(index=index, mappings={"properties": {"uf_id": {"type": "keyword"}}})
    code, checks, _ = _validate(cfg)
    assert code == 0, checks


def test_a_stray_key_set_by_hand_under_our_prefix_is_a_stray_type(site: dict[str, Any]) -> None:
    """``redis-cli set <prefix>:invoice:<uuid>``, never recorded in the prefix's type set: the
    audit finds the type by a SCAN of our prefix (before the fix: never reported, exit 0)."""
    assert _audit(site).returncode == 0
    ident = UUIDGenerator(IDConfig(namespace=Namespace("other.example"), salt="other")).generate(site["stray"], n=1)
    prefix = site["redis_url"].split("prefix=")[1]
    client = redis.Redis.from_url(site["redis_url"].split("?")[0])
    try:
        client.set(f"{prefix}:{site['stray']}:{ident}", '{"total": 1}')
        client.set(f"{prefix}:session-cache:not-an-id", "x")  # the pattern's shape, no ID of ours: no type
        assert not client.sismember(f"{prefix}:uf:types", site["stray"])
    finally:
        client.close()
    done = _audit(site, "--json")
    body = json.loads(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr
    assert [(s["store"], s["entity_type"], s["count"]) for s in body["stray_types"]] == [("cache", site["stray"], 1)]
    assert body["stray_types"][0]["samples"] == [str(ident)]  # an ID in our form: shown, as any ID


def test_without_a_prefix_only_types_uuid_forge_recorded_are_strays(site: dict[str, Any], redis_url: str) -> None:
    """A shared database (no prefix): ``invoice<hex>:<uuid>`` set by another application proves
    nothing and is not reported; the same type written by uuid-forge (recorded in ``uf:types``) is."""
    from .scaffold import forget_redis_type

    cfg = site["cfg"]
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(site["redis_url"], redis_url), encoding="utf-8")
    ident = UUIDGenerator(IDConfig(namespace=Namespace("other.example"), salt="other")).generate(site["stray"], n=1)
    client = redis.Redis.from_url(redis_url)
    try:
        run_cli("audit", "-c", str(cfg), "--repair", "--apply")  # the people copied into the shared database
        client.set(f"{site['stray']}:{ident}", '{"total": 1}')
        done = _audit(site, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["stray_types"] == []
        with open_store(redis_url) as cache:  # written by uuid-forge: recorded, so ours to report
            cache.put_many([Record(site["stray"], ident, {"total": 2})])
        done = _audit(site, "--json")
        assert done.returncode == 1 and [s["entity_type"] for s in json.loads(done.stdout)["stray_types"]] == [
            site["stray"]]
    finally:
        client.close()
        forget_redis_type(redis_url, site["stray"])
        forget_redis_type(redis_url, site["person"])
