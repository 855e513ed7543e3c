"""What the integration tests need inside a server that is up: its database, Redis number or vhost.

A server answering is not enough: the URL names a PostgreSQL or MariaDB database, a Redis
database number and a RabbitMQ vhost, and a fresh server has none of the test ones. Each
``ensure_*`` function checks that the named one exists and creates it when the server lets the
URL's user do so (``CREATE DATABASE``; for a vhost the management API or a local
``rabbitmqctl``). When it cannot, it raises :class:`Missing`, whose text is the reason the
fixtures skip with (integration/conftest.py): the run goes on for the other stores.

Drivers are imported inside the functions, so this module imports without any of them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from urllib.parse import quote, unquote, urlsplit

__all__ = ["Missing", "ensure_amqp_vhost", "ensure_pgcrypto", "ensure_redis_database", "ensure_sql_database"]

#: the RabbitMQ management API's port (the plugin is optional; docker-compose.yml enables it)
MANAGEMENT_PORT = 15672


class Missing(Exception):
    """The database, Redis number or vhost a test URL names is not there and could not be made."""


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


# -- PostgreSQL and MariaDB ------------------------------------------------------------------------
def ensure_sql_database(url: str) -> str | None:
    """Connect to the URL's database; if the server says it does not exist, create it from the
    server's maintenance database (``postgres``; ``information_schema`` on MariaDB).

    Returns ``"created database NAME"`` when it made one, None when it was there."""
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    name = target.database
    if not name:
        raise Missing(f"{_masked(url)} names no database")
    try:
        _connect(url)
        return None
    except sa.exc.OperationalError as err:
        if not _no_such_database(err):
            raise Missing(f"{_masked(url)}: {_first_line(err)}") from None
    postgres = target.get_backend_name() == "postgresql"
    admin = target.set(database="postgres" if postgres else "information_schema")
    quoted = '"' + name.replace('"', '""') + '"' if postgres else "`" + name.replace("`", "``") + "`"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except sa.exc.SQLAlchemyError as err:
        raise Missing(f"database {name!r} does not exist on {_masked(url)} and could not be created "
                      f"({_first_line(err)}): create it, or point the URL at one that exists") from None
    finally:
        engine.dispose()
    return f"created database {name}"


def ensure_pgcrypto(url: str) -> None:
    """``CREATE EXTENSION IF NOT EXISTS pgcrypto`` in the URL's PostgreSQL database: its
    ``digest()`` gives sha1 range digests, what a Redis store is hashed by (uuid_forge.rangehash).
    The adapter never installs it; the tests that need it do, here, or say why not."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
    except sa.exc.SQLAlchemyError as err:
        raise Missing(f"pgcrypto cannot be installed in {_masked(url)} ({_first_line(err)}): install the "
                      "postgresql-contrib package, or run CREATE EXTENSION pgcrypto as a superuser") from None
    finally:
        engine.dispose()


def _connect(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    finally:
        engine.dispose()


def _no_such_database(err: Exception) -> bool:
    """PostgreSQL: SQLSTATE 3D000 ("database ... does not exist"); MariaDB: error 1049 (Unknown database)."""
    orig = getattr(err, "orig", None)
    if getattr(orig, "sqlstate", None) == "3D000":
        return True
    args = getattr(orig, "args", ())
    if args and args[0] == 1049:
        return True
    text = str(orig or err)
    return "does not exist" in text and "database" in text


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


# -- Redis -----------------------------------------------------------------------------------------
def ensure_redis_database(url: str) -> None:
    """Redis has a fixed number of databases (``databases`` in redis.conf, 16 by default): a number
    past it cannot be created, only reported."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ResponseError as err:  # "DB index is out of range"
        raise Missing(f"{_masked(url)}: {err} (this server has fewer databases: use a lower number in "
                      "UUID_FORGE_TEST_REDIS_URL, or raise 'databases' in redis.conf)") from None
    except redis.RedisError as err:
        raise Missing(f"{_masked(url)}: {err}") from None
    finally:
        client.close()


# -- RabbitMQ --------------------------------------------------------------------------------------
def ensure_amqp_vhost(url: str) -> str | None:
    """Open a connection to the URL's vhost; if the broker refuses it because the vhost does not
    exist, create it (management API, else a local ``rabbitmqctl``) and give the URL's user all
    rights on it. AMQP itself cannot create a vhost.

    Returns ``"created vhost NAME"`` when it made one, None when it was there."""
    import pika
    import pika.exceptions

    params = pika.URLParameters(url)
    params.connection_attempts, params.socket_timeout, params.blocked_connection_timeout = 1, 5, 5
    try:
        pika.BlockingConnection(params).close()
        return None
    except pika.exceptions.AMQPConnectionError as err:
        if not _vhost_refused(err):
            raise Missing(f"{_masked(url)}: {type(err).__name__}: {err}") from None
    vhost = params.virtual_host
    user = params.credentials.username  # type: ignore[attr-defined]
    tried = []
    for create in (_create_vhost_by_api, _create_vhost_by_rabbitmqctl):
        why = create(url, vhost, user)
        if why is None:
            try:
                pika.BlockingConnection(params).close()
            except pika.exceptions.AMQPConnectionError as err:
                tried.append(f"created, but still refused: {type(err).__name__}: {err}")
                continue
            return f"created vhost {vhost}"
        tried.append(why)
    raise Missing(f"vhost {vhost!r} does not exist on {_masked(url)} and could not be created "
                  f"({'; '.join(tried)}): create it (rabbitmqctl add_vhost {vhost} && rabbitmqctl "
                  f"set_permissions -p {vhost} {user} '.*' '.*' '.*'), or point the URL at one that exists")


def _vhost_refused(err: BaseException) -> bool:
    """The broker closes the connection with 530 NOT_ALLOWED ("vhost ... not found") or, for a
    vhost the user has no rights on, an access refusal: pika reports either as a refused login."""
    import pika.exceptions

    text = repr(err)
    return "vhost" in text.lower() or "530" in text or isinstance(err, pika.exceptions.ProbableAccessDeniedError)


def _create_vhost_by_api(url: str, vhost: str, user: str) -> str | None:
    """PUT /api/vhosts/V and /api/permissions/V/U on the management port; None when done."""
    parts = urlsplit(url)
    auth = base64.b64encode(f"{unquote(parts.username or 'guest')}:{unquote(parts.password or 'guest')}".encode())
    base = f"http://{parts.hostname or '127.0.0.1'}:{MANAGEMENT_PORT}/api"
    v = quote(vhost, safe="")
    for path, body in ((f"/vhosts/{v}", {}), (f"/permissions/{v}/{quote(user, safe='')}",
                                              {"configure": ".*", "write": ".*", "read": ".*"})):
        request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="PUT",
                                         headers={"Authorization": f"Basic {auth.decode()}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5):
                pass
        except urllib.error.HTTPError as err:
            return f"management API: HTTP {err.code} on PUT {path}"
        except (urllib.error.URLError, OSError) as err:
            return f"management API on port {MANAGEMENT_PORT}: {getattr(err, 'reason', err)}"
    return None


def _create_vhost_by_rabbitmqctl(url: str, vhost: str, user: str) -> str | None:
    """``rabbitmqctl add_vhost`` and ``set_permissions``, for a broker on this machine; None when done."""
    host = urlsplit(url).hostname or "127.0.0.1"
    if host not in ("127.0.0.1", "localhost", "::1"):
        return "rabbitmqctl: the broker is not on this machine"
    ctl = shutil.which("rabbitmqctl") or next((p for p in ("/usr/sbin/rabbitmqctl",) if os.path.exists(p)), None)
    if ctl is None:
        return "rabbitmqctl: not installed"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, user, ".*", ".*", ".*"]):
        try:
            done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"rabbitmqctl {args[0]}: {err}"
        if done.returncode != 0 and "already exists" not in done.stderr + done.stdout:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return f"rabbitmqctl {args[0]}: {lines[-1] if lines else f'exit {done.returncode}'}"
    return None
