"""Servers for the integration tests: where they are, and how to start private ones.

Three kinds of server are used by ``integration/``:

* **Shared servers** on their standard ports (PostgreSQL, MariaDB, Redis, RabbitMQ), installed
  from Debian on the development machines and in CI, or run from ``docker-compose.yml``.
  Tests find them through environment URLs; :func:`default_urls` returns them.
  Tests must never stop or kill these.
* **Stand-ins** for the stores that cannot be installed here: ``noida-db`` speaks the
  Elasticsearch REST API and ``secantusd-py`` (SecantusDB) the MongoDB wire protocol.
  :func:`start_elasticsearch_standin` and :func:`start_mongodb_standin` start them on free
  ports when ``UUID_FORGE_TEST_ELASTICSEARCH_URL`` / ``UUID_FORGE_TEST_MONGODB_URL`` are unset.
  They are test infrastructure (``pip install noida-db secantusdb``), never package dependencies.
* **Private instances** for fault tests: :class:`PrivateRedis`, :class:`PrivatePostgres` and
  :class:`PrivateRabbitMQ` run a throw-away server on a free port that a test may stop or kill.

Only the standard library is imported here, so this module is importable without any driver.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "DEFAULT_URLS",
    "ENV_VARS",
    "PrivatePostgres",
    "PrivateRabbitMQ",
    "PrivateRedis",
    "ServerStartError",
    "default_urls",
    "elasticsearch_http_url",
    "free_port",
    "start_elasticsearch_standin",
    "start_mongodb_standin",
    "stop_process",
    "wait_http",
    "wait_port",
]

HOST = "127.0.0.1"

#: store name -> environment variable holding its test URL
ENV_VARS: dict[str, str] = {
    "postgres": "UUID_FORGE_TEST_POSTGRES_URL",
    "mariadb": "UUID_FORGE_TEST_MARIADB_URL",
    "redis": "UUID_FORGE_TEST_REDIS_URL",
    "amqp": "UUID_FORGE_TEST_AMQP_URL",
    "mongodb": "UUID_FORGE_TEST_MONGODB_URL",
    "elasticsearch": "UUID_FORGE_TEST_ELASTICSEARCH_URL",
}

#: defaults for the shared servers; MongoDB and Elasticsearch have none (stand-ins on demand)
DEFAULT_URLS: dict[str, str] = {
    "postgres": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
    "redis": "redis://127.0.0.1:6379/15",
    "amqp": "amqp://guest:guest@127.0.0.1:5672/uuid_forge_test",  # a vhost of its own, made when missing
}

#: database name used in MongoDB URLs (stand-in and docker-compose alike)
MONGODB_DATABASE = "uuid_forge_test"


class ServerStartError(RuntimeError):
    """A server did not start or did not answer in time (the message includes its log tail)."""


# --------------------------------------------------------------------------- small helpers


def free_port(host: str = HOST) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(
    host: str,
    port: int,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until ``host:port`` accepts connections.

    Raises :class:`ServerStartError` after ``timeout`` seconds, or at once if ``proc`` (the
    server process, when we started it) has exited.
    """
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(f"server process exited with code {proc.returncode} before {host}:{port} was open")
        if time.monotonic() >= deadline:
            raise ServerStartError(f"nothing answered on {host}:{port} within {timeout:.0f} s")
        time.sleep(0.1)


def wait_http(
    url: str,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Wait until a GET of ``url`` returns a 2xx status (same error rules as :func:`wait_port`)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
                last = f"HTTP {resp.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        if proc is not None and proc.poll() is not None:
            raise ServerStartError(f"server process exited with code {proc.returncode} before {url} answered ({last})")
        if time.monotonic() >= deadline:
            raise ServerStartError(f"{url} did not answer within {timeout:.0f} s ({last})")
        time.sleep(0.2)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a server we started with ``start_new_session=True``: SIGTERM its process group,
    then SIGKILL it if it is still there after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # pid is the group leader (start_new_session=True)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def _spawn(cmd: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session with stdin closed and output appended to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


# --------------------------------------------------------------------------- URLs


def default_urls() -> dict[str, str]:
    """URLs of the test servers, by store name, from the environment or the defaults.

    Keys: ``postgres``, ``mariadb``, ``redis``, ``amqp`` (always present) and ``mongodb``,
    ``elasticsearch`` (present only when their variable is set: otherwise a fixture starts a
    stand-in). The Elasticsearch URL uses the adapter scheme ``elasticsearch+http://host:port``;
    :func:`elasticsearch_http_url` turns it into the plain URL the official client wants.
    """
    urls: dict[str, str] = {}
    for name, var in ENV_VARS.items():
        value = os.environ.get(var, "").strip() or DEFAULT_URLS.get(name)
        if value:
            urls[name] = value
    return urls


def elasticsearch_http_url(url: str) -> str:
    """``elasticsearch+http://h:p`` -> ``http://h:p`` (also ``+https``; plain URLs pass through).

    ``elasticsearch://h:p`` means ``http://h:p``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme.startswith("elasticsearch+"):
        scheme = scheme[len("elasticsearch+") :]
    elif scheme == "elasticsearch":
        scheme = "http"
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


# --------------------------------------------------------------------------- stand-ins


def _noida_command() -> list[str]:
    """The noida-db server binary. The ``noida-db`` script is a Python wrapper that runs a
    native binary as its child and does not pass SIGTERM on, so we run the binary itself."""
    try:
        from importlib.resources import files

        binary = Path(str(files("noida_db").joinpath("noida-db")))
        if binary.is_file():
            if not os.access(binary, os.X_OK):
                binary.chmod(0o755)
            return [str(binary)]
    except (ImportError, OSError):
        pass
    script = shutil.which("noida-db")
    if script:
        return [script]  # stop_process kills the whole process group, so the child goes too
    raise ServerStartError("noida-db is not installed: pip install noida-db")


def start_elasticsearch_standin(
    tmpdir: os.PathLike[str] | str, port: int | None = None, timeout: float = 60.0
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start the noida-db Elasticsearch stand-in on a free port; data and log in ``tmpdir``.

    Returns ``("elasticsearch+http://127.0.0.1:PORT", process)`` once ``GET /`` answers.
    Stop it with :func:`stop_process`. It behaves like Elasticsearch 8.15 for the official
    ``elasticsearch`` 8.x client, including near-real-time search (refresh or wait ~1 s).
    """
    base = Path(tmpdir)
    data = base / "noida-data"
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = base / "noida-db.log"
    cmd = _noida_command() + [
        "start",
        "--only",
        "elasticsearch",
        "--host",
        HOST,
        "--elasticsearch-port",
        str(port),
        "--data-dir",
        str(data),
    ]
    proc = _spawn(cmd, log)
    try:
        wait_http(f"http://{HOST}:{port}/", timeout, proc)
    except ServerStartError as exc:
        stop_process(proc)
        raise ServerStartError(f"Elasticsearch stand-in: {exc}\n{_log_tail(log)}") from None
    return f"elasticsearch+http://{HOST}:{port}", proc


def _secantus_command() -> list[str]:
    script = shutil.which("secantusd-py")
    if script:
        return [script]
    if importlib.util.find_spec("secantus") is None:
        raise ServerStartError("SecantusDB is not installed: pip install secantusdb")
    return [sys.executable, "-c", "import sys; from secantus.cli import main; sys.exit(main())"]


def start_mongodb_standin(
    tmpdir: os.PathLike[str] | str | None = None,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 60.0,
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start the SecantusDB MongoDB stand-in (in-memory storage) on a free port.

    Returns ``("mongodb://127.0.0.1:PORT/uuid_forge_test", process)`` once the port accepts
    connections. ``extra_args`` may add e.g. ``--enable-test-commands`` (``configureFailPoint``).
    The log goes to ``tmpdir/secantusd.log`` (a new temporary directory when ``tmpdir`` is None).
    SIGTERM takes a few seconds to stop it; :func:`stop_process` waits.
    """
    base = Path(tmpdir) if tmpdir is not None else Path(tempfile.mkdtemp(prefix="uf-mongo-"))
    base.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = base / "secantusd.log"
    cmd = _secantus_command() + [
        "--host",
        HOST,
        "--port",
        str(port),
        "--storage-path",
        ":memory:",
        *extra_args,
    ]
    proc = _spawn(cmd, log)
    try:
        wait_port(HOST, port, timeout, proc)
    except ServerStartError as exc:
        stop_process(proc)
        raise ServerStartError(f"MongoDB stand-in: {exc}\n{_log_tail(log)}") from None
    return f"mongodb://{HOST}:{port}/{MONGODB_DATABASE}", proc


# --------------------------------------------------------------------------- private servers


class _PrivateServer:
    """A throw-away server on its own port, for tests that stop or kill it.

    Use as a context manager (``with PrivateRedis() as redis: ...``), or call ``start()`` and
    ``stop()``; ``kill()`` simulates a crash (SIGKILL); ``start()`` again after ``stop()`` or
    ``kill()`` brings it back on the same port. ``cleanup()`` (called by ``__exit__``) stops it
    and removes its temporary directory.
    """

    name = "server"

    def __init__(self, port: int | None = None) -> None:
        self.port: int = port or free_port()
        self.dir: Path = Path(tempfile.mkdtemp(prefix=f"uf-{self.name}-"))

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return port_open(HOST, self.port)

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} running={self.running}>"


class PrivateRedis(_PrivateServer):
    """``redis-server`` on its own port, in the foreground under our control.

    It saves nothing unless ``persistent``: then every write is appended and fsynced
    (``appendfsync always``), so a SIGKILL loses nothing it acknowledged.
    """

    name = "redis"

    def __init__(self, port: int | None = None, db: int = 0, persistent: bool = False) -> None:
        super().__init__(port)
        self.db = db
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/{self.db}"

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        binary = shutil.which("redis-server")
        if not binary:
            raise ServerStartError("redis-server not found (apt-get install redis-server)")
        log = self.dir / "redis.log"
        self.proc = _spawn(
            [
                binary,
                "--bind",
                HOST,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
                "--dir",
                str(self.dir),
            ],
            log,
        )
        try:
            wait_port(HOST, self.port, timeout, self.proc)
        except ServerStartError as exc:
            self.kill()
            raise ServerStartError(f"private Redis: {exc}\n{_log_tail(log)}") from None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def _as_user(user: str, cmd: Sequence[str]) -> list[str]:
    """Run ``cmd`` as ``user`` when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", user, "--", *cmd]
    return list(cmd)


def _postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/*/bin`` (Debian), else wherever ``initdb`` is on PATH."""
    dirs = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
    )
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists():
            return Path(d)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise ServerStartError("initdb not found (apt-get install postgresql)")


class PrivatePostgres(_PrivateServer):
    """A private PostgreSQL cluster: ``initdb`` (trust auth) + ``pg_ctl`` as user postgres.

    The cluster lives in a temporary directory (also its socket directory), listens on
    127.0.0.1 only, and has a database ``test``. ``fsync`` is off: it is for tests only.
    Start takes about 0.7 s the first time (initdb) and 0.1 s after that.
    """

    name = "postgres"
    user = "postgres"

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.bindir = _postgres_bindir()
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.dir, self.user, self.user)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/test"

    def _run(self, *cmd: str, timeout: float = 60.0) -> None:
        result = subprocess.run(
            _as_user(self.user, cmd),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"private PostgreSQL: {' '.join(cmd)} failed "
                f"({result.returncode}):\n{result.stdout}{result.stderr}"
                f"\n{_log_tail(self.log)}"
            )

    def start(self, timeout: float = 60.0) -> None:
        fresh = not (self.data / "PG_VERSION").exists()
        if fresh:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            )
        if self.running:
            return
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off -c full_page_writes=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            str(int(timeout)),
            "-o",
            options,
            "start",
            timeout=timeout + 10,
        )
        if fresh:
            self._run(str(self.bindir / "createdb"), "-h", HOST, "-p", str(self.port), "-U", "postgres", "test")

    def _pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self._pid() is None:
            return
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def kill(self) -> None:
        """SIGKILL the postmaster, as in a crash; the next ``start()`` runs crash recovery.

        Its child processes exit on their own when they notice. A killed process may stay a
        zombie for a while here (PID 1 reaps late), and PostgreSQL would take that PID in
        ``postmaster.pid`` (and the socket lock file) for a live server, so the stale lock
        files are removed once the postmaster and its children are gone.
        """
        pid = self._pid()
        if pid is None:
            return
        children = _children(pid)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for proc_id in [pid, *children]:
            _wait_gone(proc_id, 10)
        _wait_port_closed(self.port, 10)
        for stale in (
            self.data / "postmaster.pid",
            self.dir / f".s.PGSQL.{self.port}.lock",
            self.dir / f".s.PGSQL.{self.port}",
        ):
            stale.unlink(missing_ok=True)


class PrivateRabbitMQ(_PrivateServer):
    """A private RabbitMQ node (``uf<port>@localhost``) with its own ports, data and logs.

    It shares the machine's Erlang cookie and epmd, so it must be started as root (the Debian
    ``rabbitmq-server`` wrapper then runs it as user rabbitmq) or as user rabbitmq. Its own
    config file replaces /etc/rabbitmq/rabbitmq.conf (whose ``listeners.tcp.local = :5672``
    would clash), and an empty enabled-plugins file keeps management/prometheus ports closed.
    Start takes about 6-7 s; guest/guest may connect from 127.0.0.1.
    """

    name = "rabbitmq"

    def __init__(self, port: int | None = None, dist_port: int | None = None) -> None:
        super().__init__(port)
        self.dist_port = dist_port or free_port()
        self.node = f"uf{self.port}@localhost"
        os.chmod(self.dir, 0o755)
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir()
        (self.dir / "rabbitmq.conf").write_text(f"listeners.tcp.local = {HOST}:{self.port}\n")
        (self.dir / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:
            for path in [self.dir, *self.dir.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/%2F"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": HOST,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
                "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.dir / "log"),
                "RABBITMQ_PID_FILE": str(self.dir / "rabbitmq.pid"),
            }
        )
        return env

    def _tool(self, name: str) -> str:
        path = shutil.which(name) or f"/usr/sbin/{name}"
        if not os.path.exists(path):
            raise ServerStartError(f"{name} not found (apt-get install rabbitmq-server)")
        return path

    def start(self, timeout: float = 90.0) -> None:
        if self.running:
            return
        result = subprocess.run(
            [self._tool("rabbitmq-server"), "-detached"],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise ServerStartError(
                f"private RabbitMQ: rabbitmq-server -detached failed:\n{result.stdout}{result.stderr}"
            )
        try:
            wait_port(HOST, self.port, timeout)
        except ServerStartError as exc:
            self.kill()
            log = self.dir / "log" / f"{self.node}.log"
            raise ServerStartError(f"private RabbitMQ: {exc}\n{_log_tail(log)}") from None

    def _pid(self) -> int | None:
        try:
            return int((self.dir / "rabbitmq.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self, timeout: float = 60.0) -> None:
        pid = self._pid()
        if pid is None or not _alive(pid):
            return
        subprocess.run(
            [self._tool("rabbitmqctl"), "-n", self.node, "stop"],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        _wait_gone(pid, 15)
        if _alive(pid):
            self.kill()

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM (a crash: no clean shutdown)."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        _wait_gone(pid, 10)
        _wait_port_closed(self.port, 10)  # the VM's other threads may still hold the socket


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie still answers kill(0); treat it as gone (for a multi-threaded process the
    # leader shows Z while other threads still exit: callers also wait for the port to close)
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def _children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (read from /proc)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as fh:
                fields = fh.read().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 1 and fields[1] == str(pid):
            found.append(int(Path(stat).parent.name))
    return found


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _wait_port_closed(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while port_open(HOST, port) and time.monotonic() < deadline:
        time.sleep(0.05)
