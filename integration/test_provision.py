"""A test URL naming a database or vhost that does not exist: created when the server allows it,
else the tests skip with the reason (integration/provision.py, used by the fixtures in conftest.py).

Each test makes its own uniquely named database, role or vhost and removes it afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing

from . import conftest, provision

sa = pytest.importorskip("sqlalchemy", reason=driver_missing("sqlalchemy"))


def _with_path(url: str, path: str, user: str | None = None) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc if user is None else f"{user}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, path=path))


def _databases(url: str) -> set[str]:
    admin = sa.engine.make_url(url)
    postgres = admin.get_backend_name() == "postgresql"
    engine = sa.create_engine(admin.set(database="postgres" if postgres else "information_schema"), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        query = "SELECT datname FROM pg_database" if postgres else "SHOW DATABASES"
        names = {row[0] for row in conn.execute(sa.text(query))}
    engine.dispose()
    return names


def _drop_database(url: str, name: str) -> None:
    admin = sa.engine.make_url(url)
    postgres = admin.get_backend_name() == "postgresql"
    engine = sa.create_engine(admin.set(database="postgres" if postgres else "information_schema"), isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS {name}'))
    engine.dispose()


@pytest.fixture(params=["postgres_url", "mariadb_url"])
def sql_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def new_name() -> str:
    return f"uf_prov_{uuid.uuid4().hex[:8]}"


def test_a_missing_sql_database_is_created(sql_url: str, new_name: str) -> None:
    url = _with_path(sql_url, f"/{new_name}")
    assert new_name not in _databases(sql_url)
    try:
        assert provision.ensure_sql_database(url) == f"created database {new_name}"
        assert new_name in _databases(sql_url)
        assert provision.ensure_sql_database(url) is None  # there now: nothing to do
    finally:
        _drop_database(sql_url, new_name)


@pytest.fixture
def role_without_createdb(postgres_url: str, new_name: str) -> Iterator[str]:
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {new_name} LOGIN NOCREATEDB"))
    try:
        yield new_name
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {new_name}"))
        engine.dispose()


def test_a_database_the_user_may_not_create_is_a_reason_to_skip(postgres_url: str, role_without_createdb: str
                                                                 ) -> None:
    url = _with_path(postgres_url, f"/{role_without_createdb}_db", user=role_without_createdb)
    with pytest.raises(provision.Missing, match=f"database '{role_without_createdb}_db' does not exist .* could not "
                       "be created .*permission denied"):
        provision.ensure_sql_database(url)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL: database .* could not be created"):
        conftest._inside("PostgreSQL", url, provision.ensure_sql_database)


def test_a_redis_database_number_past_the_servers_is_a_reason_to_skip(redis_url: str) -> None:
    url = _with_path(redis_url, "/999")
    with pytest.raises(provision.Missing, match="DB index is out of range.*UUID_FORGE_TEST_REDIS_URL"):
        provision.ensure_redis_database(url)
    provision.ensure_redis_database(redis_url)  # the configured one is fine


@pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="rabbitmqctl is needed to remove the vhost")
def test_a_missing_vhost_is_created(amqp_url: str, new_name: str) -> None:
    pytest.importorskip("pika", reason=driver_missing("pika"))
    url = _with_path(amqp_url, f"/{new_name}")
    try:
        assert provision.ensure_amqp_vhost(url) == f"created vhost {new_name}"
        assert provision.ensure_amqp_vhost(url) is None
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", new_name], capture_output=True, timeout=60, check=False)
