"""Server fixtures for the integration suite: real servers over real connections.

URLs come from ``UUID_FORGE_TEST_*_URL`` variables (defaults: the local servers). The MongoDB and
Elasticsearch stand-ins are started once per test run on free ports when no URL is given. Under
``CI=true`` a server that cannot be reached fails the run; locally its tests skip with the reason.
A database or vhost the URL names that does not exist is created when the server allows it
(integration/provision.py), else the tests that need it skip with the reason. The PostgreSQL test
database gets pgcrypto (sha1 range digests, what Redis is audited by); under ``CI=true`` the tests
needing it fail without it (``pgcrypto_url``).
The forge factory and the silent server are the fast tests' fixtures (tests/scaffold.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.scaffold import driver_missing, forge_factory, silent_server

from . import provision, servers

__all__ = ["forge_factory", "silent_server"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str) -> bool:
    parts = urlsplit(url.replace("elasticsearch+", ""))
    host = parts.hostname or "127.0.0.1"
    port = parts.port
    if port is None:
        return False
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _need(name: str, url: str | None, why: str = "") -> str:
    if url and _reachable(url):
        return url
    message = f"{name} server not reachable at {url!r}{': ' + why if why else ''}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def _inside(name: str, url: str, ensure: Callable[[str], object]) -> str:
    """The server is up: make what its URL names (database, vhost) or skip with the reason, CI
    included (the server is there; what is missing is the test set-up the URL asks for)."""
    try:
        ensure(url)
    except provision.Missing as why:
        pytest.skip(f"{name}: {why}")
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = _inside("PostgreSQL", _need("PostgreSQL", servers.default_urls()["postgres"]), provision.ensure_sql_database)
    # pgcrypto too, so that every test sees the same database whichever ran first (a Redis store is
    # audited by hashes where the source has sha1); where it cannot be had, pgcrypto_url says why
    with contextlib.suppress(provision.Missing):
        provision.ensure_pgcrypto(url)
    return url


@pytest.fixture(scope="session")
def pgcrypto_url(postgres_url: str) -> str:
    """The test PostgreSQL database with pgcrypto (sha1 range digests, what Redis is hashed by):
    installed when missing; under ``CI=true`` a database that cannot have it fails the run, as a
    missing server does (CI's PostgreSQL image ships it), else its tests skip with the reason."""
    try:
        provision.ensure_pgcrypto(postgres_url)
    except provision.Missing as why:
        if IN_CI:
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(f"PostgreSQL: {why}")
    return postgres_url


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    return _inside("MariaDB", _need("MariaDB", servers.default_urls()["mariadb"]), provision.ensure_sql_database)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _inside("Redis", _need("Redis", servers.default_urls()["redis"]), provision.ensure_redis_database)


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return _inside("RabbitMQ", _need("RabbitMQ", servers.default_urls()["amqp"]), provision.ensure_amqp_vhost)


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    url = servers.default_urls().get("mongodb")
    proc = None
    why = ""
    if not url:
        try:
            url, proc = servers.start_mongodb_standin()
        except Exception as err:  # noqa: BLE001 - reported as the skip/fail reason
            why = f"could not start the SecantusDB stand-in: {err}"
    yield _need("MongoDB", url, why)
    if proc is not None:
        servers.stop_process(proc)


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    url = servers.default_urls().get("elasticsearch")
    proc = None
    why = ""
    data_dir = tempfile.mkdtemp(prefix="uf-es-")
    if not url:
        try:
            url, proc = servers.start_elasticsearch_standin(data_dir)
        except Exception as err:  # noqa: BLE001 - reported as the skip/fail reason
            why = f"could not start the noida-db stand-in: {err}"
    yield _need("Elasticsearch", url, why)
    if proc is not None:
        servers.stop_process(proc)
    shutil.rmtree(data_dir, ignore_errors=True)


# -- plain driver clients, for checks that go around the adapters -------------------------------
# Each imports its driver only when a test asks for it (the suite runs with any subset installed).

@pytest.fixture(scope="module")
def redis_client(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client on the test database number."""
    redis = pytest.importorskip("redis", reason=driver_missing("redis"))
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def es_client(elasticsearch_url: str) -> Iterator[Any]:
    """A plain elasticsearch-py client of the test server."""
    elasticsearch = pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
    client = elasticsearch.Elasticsearch(servers.elasticsearch_http_url(elasticsearch_url), request_timeout=30)
    yield client
    client.close()


@pytest.fixture
def mongo_db_url(mongodb_url: str) -> Iterator[str]:
    """The MongoDB test server's URL with a database of this test's own, dropped afterwards."""
    pymongo = pytest.importorskip("pymongo", reason=driver_missing("pymongo"))
    name = f"uf_t_{uuid.uuid4().hex[:10]}"
    yield urlunsplit(urlsplit(mongodb_url)._replace(path=f"/{name}"))
    client = pymongo.MongoClient(mongodb_url)
    client.drop_database(name)
    client.close()
