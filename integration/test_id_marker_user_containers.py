"""Issue 18, rule 4: the ID-configuration guard holds for every source, on the real servers.

Sources on a container of the user's own (a PostgreSQL and a MariaDB table mapped with
``table=``, a MongoDB ``collection=``, an Elasticsearch ``index=``) kept no marker, so the guard
was off there: a write without the salt added a second copy of every entity. A marker that was
deleted was re-created by the next write whatever its configuration; ``ids accept --yes``
recorded a configuration that rebuilds none of the IDs in the source; two first writers with
different salts could both pass. Each test below counts what the source holds afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing
from uuid_forge import EntityType, Forge, IDConfig, Namespace, open_store
from uuid_forge.contract import Adapter
from uuid_forge.errors import IDConfigMismatchError
from uuid_forge.idmarker import META_TYPE, marker_id, read_markers

from .scaffold import make_forge, run_cli, write_forge_toml

NS = Namespace("marker-sides.uuid-forge.test")
SALT = "salt-S-never-printed"
OTHER = "salt-T-never-printed"
N = 12


@dataclass
class Source:
    """A user container used as the source: how to open it, and what to remove afterwards."""

    kind: str
    et: str
    open: Callable[[], Adapter]
    options: dict[str, Any]
    url: str

    def count(self) -> int:
        with self.open() as adapter:
            return adapter.count(self.et)


def _sql_source(url: str, et: str, ddl: str, name: str) -> Iterator[Source]:
    sa = pytest.importorskip("sqlalchemy")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(ddl.format(name=name)))
    options = {"table": name, "entity_type": et, "fields": {"email": "email", "n": "n"}}
    try:
        yield Source("sql", et, lambda: open_store(url, **options), options, url)
    finally:
        with open_store(url, **options) as adapter:
            adapter.delete_many(META_TYPE, [marker_id(et)])
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {name}"))
        engine.dispose()


@pytest.fixture(params=["postgres", "mariadb", "mongodb", "elasticsearch"])
def source(request: pytest.FixtureRequest) -> Iterator[Source]:
    tag = uuid.uuid4().hex[:8]
    et = f"person{tag}"
    if request.param == "postgres":
        pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
        url = request.getfixturevalue("postgres_url")
        yield from _sql_source(url, et, "CREATE TABLE {name} (id uuid PRIMARY KEY, email text NOT NULL, n integer)",
                               f"people_{tag}")
    elif request.param == "mariadb":
        pytest.importorskip("pymysql", reason=driver_missing("pymysql"))
        url = request.getfixturevalue("mariadb_url")
        yield from _sql_source(url, et, "CREATE TABLE {name} (id CHAR(36) PRIMARY KEY, email VARCHAR(200) NOT NULL, "
                               "n INT) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin", f"people_{tag}")
    elif request.param == "mongodb":
        pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
        base = request.getfixturevalue("mongodb_url")
        db = f"uf_marker_{tag}"
        url = urlunsplit(urlsplit(base)._replace(path=f"/{db}"))
        options = {"collection": "people", "entity_type": et}
        yield Source("mongodb", et, lambda: open_store(url, **options), options, url)
        client: Any = pymongo.MongoClient(base)
        client.drop_database(db)
        client.close()
    else:
        pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
        url = request.getfixturevalue("elasticsearch_url")
        options = {"index": f"people-{tag}", "entity_type": et}
        yield Source("elasticsearch", et, lambda: open_store(url, **options), options, url)
        with open_store(url, **options) as adapter:
            adapter.delete_many(META_TYPE, [marker_id(et)])
            adapter._client.indices.delete(index=options["index"], ignore_unavailable=True)  # the test's own index


def forge(tmp_path: Path, src: Source, salt: str | None, adapter: Adapter | None = None, name: str = "j") -> Forge:
    ids = IDConfig(namespace=NS, salt=salt) if salt else IDConfig(namespace=NS)
    return make_forge(tmp_path, ("src", adapter or src.open()), ids=ids, types=[EntityType(src.et, key=("email",))],
                      journal=f"{name}.sqlite3")


def people(src: Source, start: int = 0, count: int = N) -> list[tuple[str, Any, dict[str, Any]]]:
    from uuid_forge.entitytypes import FROM_DATA

    return [(src.et, FROM_DATA, {"email": f"p{i}@example.com", "n": i}) for i in range(start, start + count)]


def test_a_write_without_the_salt_is_refused_on_a_user_container(source: Source, tmp_path: Path) -> None:
    with forge(tmp_path, source, SALT) as f:
        f.write_many(people(source))
    with forge(tmp_path, source, None) as f, pytest.raises(IDConfigMismatchError, match="none is set now"):
        f.write_many(people(source))  # before: N more entities, a second copy of each under new IDs
    assert source.count() == N


def test_a_deleted_marker_is_recreated_only_under_the_right_salt(source: Source, tmp_path: Path) -> None:
    with forge(tmp_path, source, SALT) as f:
        f.write_many(people(source))
        f.source.adapter.delete_many(META_TYPE, [marker_id(source.et)])
        assert read_markers(f, [source.et]) == {}
    with forge(tmp_path, source, OTHER) as f, pytest.raises(IDConfigMismatchError, match="rebuilds none of the"):
        f.write_many(people(source))  # before: the marker was re-created for the wrong salt, and N copies written
    assert source.count() == N
    with forge(tmp_path, source, SALT) as f:
        f.write_many(people(source, start=N, count=1))  # the right salt proves itself on the sample
        assert set(read_markers(f, [source.et])) == {source.et}
    with forge(tmp_path, source, OTHER) as f, pytest.raises(IDConfigMismatchError, match="the salt differs"):
        f.write_many(people(source))
    assert source.count() == N + 1


def test_ids_accept_needs_rotate_for_a_configuration_that_rebuilds_no_id(source: Source, tmp_path: Path) -> None:
    with forge(tmp_path, source, SALT) as f:
        f.write_many(people(source))
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"src": {"url": source.url, "options": source.options}},
                              "src", namespace="marker-sides.uuid-forge.test",
                              extra=f'[types.{source.et}]\nkey = ["email"]\n')
    env = {"UUID_FORGE_SALT": OTHER}
    refused = run_cli("ids", "accept", "-c", str(config), "-e", source.et, "--yes", env=env, salt=None)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "rebuilds none of the" in refused.stderr and "--rotate" in refused.stderr and OTHER not in refused.stderr
    with forge(tmp_path, source, OTHER) as f, pytest.raises(IDConfigMismatchError, match="the salt differs"):
        f.write_many(people(source))  # the refused accept recorded nothing
    done = run_cli("ids", "accept", "-c", str(config), "-e", source.et, "--rotate", "--yes", env=env, salt=None)
    assert done.returncode == 0, done.stderr
    with forge(tmp_path, source, OTHER) as f:
        f.write_many(people(source, start=N, count=2))  # a deliberate rotation: new keys go on under the new salt
    assert source.count() == N + 2


def _synced(adapter: Adapter, barrier: threading.Barrier) -> Adapter:
    """``adapter`` whose first read of a marker waits for the other writer's: both have seen none."""
    real = adapter.get_many
    first = [True]

    def get_many(entity_type: str, ids: Any) -> Any:
        found = real(entity_type, ids)
        if entity_type == META_TYPE and first[0]:
            first[0] = False
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
        return found

    adapter.get_many = get_many  # type: ignore[method-assign]
    return adapter


def test_two_first_writers_with_different_salts_one_wins(source: Source, tmp_path: Path) -> None:
    barrier = threading.Barrier(2, timeout=20)
    results: dict[str, BaseException | None] = {}

    def writer(salt: str) -> None:
        try:
            with forge(tmp_path, source, salt, _synced(source.open(), barrier), name=salt) as f:
                f.write_many(people(source))
            results[salt] = None
        except BaseException as err:  # noqa: BLE001 - the loser's refusal is the result
            results[salt] = err

    threads = [threading.Thread(target=writer, args=(s,)) for s in (SALT, OTHER)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    won = [s for s, err in results.items() if err is None]
    lost = [err for err in results.values() if err is not None]
    assert len(won) == 1 and len(lost) == 1, results  # before: both wrote (no marker on a user container)
    assert isinstance(lost[0], IDConfigMismatchError) and "the salt differs" in str(lost[0])
    assert source.count() == N  # one copy of each entity, under the winner's IDs
    with forge(tmp_path, source, won[0]) as f:
        f.write_many(people(source, start=N, count=1))
    assert source.count() == N + 1
