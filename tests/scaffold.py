"""Shared scaffolding for both test trees: the uuid-forge.toml writer, the forge factory, a silent
server, the command line run in-process in a clean environment, and skips (with the reason) for
tests whose store driver is not installed.

Written once here (tests/conftest.py and integration/conftest.py expose the fixtures) so that every
test file builds its config and its Forge, and runs ``main(argv)``, the same way: its own stdout and
stderr, and no ``UUID_FORGE_*`` variable leaking in from the shell that started pytest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import pytest
from click.testing import CliRunner

from uuid_forge import Forge, IDConfig, open_store
from uuid_forge.cli import main
from uuid_forge.contract import Adapter
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import ValidationError
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.record import MalformedID
from uuid_forge.settings import WriteSettings
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import contract_prover, sample_records

#: unset even when absent from os.environ now (a test may set one with monkeypatch before the call)
ALWAYS_UNSET = ("UUID_FORGE_SALT", "UUID_FORGE_SECRET", "UUID_FORGE_NAMESPACE", "UUID_FORGE_SCHEME",
                "UUID_FORGE_CONFIG", "UUID_FORGE_DEBUG", "UUID_FORGE_JOURNAL")


def toml_value(value: Any) -> str:
    """A TOML value for str, bool, int, float or a mapping (an inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def write_forge_toml(path: Path, stores: Mapping[str, str | Mapping[str, Any]], source: str, *,
                     namespace: str | None = None, journal: Path | str | None = None,
                     write: Mapping[str, Any] | None = None, extra: str = "") -> Path:
    """Write a config: [ids] (when ``namespace``), [journal], [write] (when given), [stores.NAME].

    The one config writer of both test trees. A store is a URL, or a mapping of its keys (``url``,
    ``options``, ``optional`` ...); ``source`` gets role = "source"; ``journal`` defaults to
    journal.sqlite3 beside the file; ``write`` is the [write] table (integration/scaffold.py's
    ``FAST_WRITE`` fails fast); ``extra`` (TOML text, e.g. [types.*] sections) is appended as it is.
    """
    if source not in stores:
        raise ValueError(f"source {source!r} is not one of the stores {sorted(stores)}")
    parts = [f"[ids]\nnamespace = {toml_value(namespace)}\n"] if namespace is not None else []
    journal = path.parent / "journal.sqlite3" if journal is None else journal
    parts.append(f"[journal]\npath = {toml_value(str(journal))}\n")
    if write:
        parts.append("[write]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in write.items()))
    for name, store in stores.items():
        keys = {"url": store} if isinstance(store, str) else dict(store)
        if name == source:
            keys["role"] = "source"
        parts.append(f"[stores.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in keys.items()))
    if extra:
        parts.append(extra.strip("\n") + "\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def env_off(*also: str) -> dict[str, str | None]:
    """Every UUID_FORGE_* variable (and ``also``) mapped to None: CliRunner unsets them."""
    names = {k for k in os.environ if k.startswith("UUID_FORGE_")} | set(ALWAYS_UNSET) | set(also)
    return dict.fromkeys(sorted(names))


def run_cli(argv: Sequence[str], env: Mapping[str, str | None] | None = None, *, stdin: bytes | str | None = None,
            columns: int | None = None, unset: Sequence[str] = ()) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr).

    ``env`` is applied over a clean environment (a None value unsets); ``columns`` sets COLUMNS,
    so that rich folds lines where the assertions expect; ``unset`` names other variables to clear.
    """
    full: dict[str, str | None] = {**env_off(*unset)}
    if columns is not None:
        full["COLUMNS"] = str(columns)
    full.update(env or {})
    with CliRunner().isolation(input=stdin, env=full) as streams:
        code = main(list(argv))
    return code, streams[0].getvalue().decode("utf-8"), streams[1].getvalue().decode("utf-8")


#: the extra that installs each driver module (pyproject.toml; tests/test_extras.py checks the adapters' side)
DRIVER_EXTRAS = {"redis": "redis", "pymongo": "mongodb", "bson": "mongodb", "elasticsearch": "elasticsearch",
                 "pika": "rabbitmq", "psycopg": "postgres", "pymysql": "mariadb", "prometheus_client": "metrics",
                 "celery": "celery"}


def driver_missing(module: str) -> str:
    """Why a test that needs ``module`` skips: the driver and the extra that installs it."""
    return f'the {module} driver is not installed (pip install "uuid-forge[{DRIVER_EXTRAS.get(module, module)}]")'


def need_driver(module: str) -> Any:
    """The driver module, or skip the calling test with the extra to install."""
    return pytest.importorskip(module, reason=driver_missing(module))


def requires_driver(*modules: str) -> pytest.MarkDecorator:
    """A skipif mark for a test that opens a store whose driver may be absent."""
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(absent), reason="; ".join(driver_missing(m) for m in absent))


# -- one way to build a Forge ---------------------------------------------------------------------
StoreLike = Adapter | str | StoreHandle | tuple[str, Adapter | str]


def _handle(store: StoreLike, default_name: str, *, source: bool = False) -> StoreHandle:
    if isinstance(store, StoreHandle):
        return store
    name, what = store if isinstance(store, tuple) else (default_name, store)
    return StoreHandle(name, open_store(what) if isinstance(what, str) else what, source=source)


def make_forge(tmp_path: Path, source: StoreLike, *others: StoreLike, ids: IDConfig | None = None,
               journal: str | Path | Journal | None = "journal.sqlite3", write: WriteSettings | None = None,
               types: Sequence[EntityType] | None = None, source_name: str = "source") -> Forge:
    """A Forge over ``source`` (role source) and ``others`` (required stores), journaled in ``tmp_path``.

    A store is an adapter, a URL, a ``(name, adapter or URL)`` pair or a ready ``StoreHandle`` (for
    another name or role); bare adapters after the source are named store1, store2 ... ``journal``
    is a file name inside ``tmp_path`` (a Path or a Journal is used as it is; None: no journal).
    """
    handles = [_handle(source, source_name, source=True)]
    handles += [_handle(store, f"store{i}") for i, store in enumerate(others, 1)]
    if isinstance(journal, str):
        journal = Journal(tmp_path / journal)
    elif isinstance(journal, Path):
        journal = Journal(journal)
    return Forge(handles, ids=ids, journal=journal, write=write, types=types)


#: the type of the forge_factory fixture: make_forge without its tmp_path
ForgeFactory = Callable[..., Forge]


def forge_factory_for(tmp_path: Path) -> tuple[ForgeFactory, Callable[[], None]]:
    """``make_forge`` bound to ``tmp_path``, and a function that closes every Forge it made."""
    made: list[Forge] = []

    def factory(source: StoreLike, *others: StoreLike, **kwargs: Any) -> Forge:
        forge = make_forge(tmp_path, source, *others, **kwargs)
        made.append(forge)
        return forge

    def close_all() -> None:
        for forge in made:
            forge.close()

    return factory, close_all


# -- the contract over a store that holds one entity type (your own table, collection or index) -----
class OneTypeContract(AdapterContract):
    """``AdapterContract`` for a store given one container of the user's that holds one entity type.

    Each test gets a fresh container (the ``store`` fixture's job) and writes the one ``entity_type``;
    ``drop`` empties the container and keeps it, so the type is still listed afterwards.
    """

    entity_type = "user"

    @pytest.fixture
    def etype(self, store: Adapter) -> Iterator[str]:
        yield self.entity_type

    def assert_container_kept(self, store: Adapter) -> None:
        """After ``drop``: the user's container is still there (checked with the raw driver)."""
        raise NotImplementedError(f"{type(self).__name__} must check that drop kept the container")

    def test_drop_removes_everything_and_the_type_can_be_written_again(self, store: Adapter, etype: str) -> None:
        """The user's container is shared with others: drop needs the proof, deletes every proven
        entry, leaves a wrong-form name it cannot prove, and keeps the container."""
        records = sample_records(etype, 2_500)
        store.put_many(records)
        planted = self.plant_malformed(store, etype, sample_records(etype, 1, start=10_000)[0].id)
        assert len(list(store.scan(etype, include_malformed=True))) == 2_500 + planted
        assert store.shared(etype)
        with pytest.raises(ValidationError, match="shared with others"):
            store.drop(etype)
        store.drop(etype, prover=contract_prover(etype))
        left = list(store.scan(etype, include_malformed=True))
        assert len(left) == planted and all(isinstance(i, MalformedID) for i, _ in left)
        self.assert_container_kept(store)
        store.put_many(records[:3])
        assert sorted(i for i, _ in store.scan(etype)) == sorted(r.id for r in records[:3])


# -- a server that accepts connections and never answers (timeout tests) ---------------------------
class SilentServer:
    """A TCP port on 127.0.0.1 that accepts every connection and never sends a byte.

    ``close()`` is immediate: shutting the listening socket down wakes the accepting thread at once
    (a plain ``close()`` leaves it blocked in ``accept`` until a join timeout runs out).
    """

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, name=f"silent-server-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not every platform lets a listening socket be shut down; close() below still stops it
        self._listener.close()
        self._thread.join(timeout=0.5)
        for conn in list(self.accepted):
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- the fixtures both conftests expose --------------------------------------------------------------
@pytest.fixture
def forge_factory(tmp_path: Path) -> Iterator[ForgeFactory]:
    """``make_forge`` bound to this test's ``tmp_path``; every Forge it made is closed afterwards."""
    factory, close_all = forge_factory_for(tmp_path)
    yield factory
    close_all()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    """A port that accepts connections and never answers, stopped at once after the test."""
    with SilentServer() as server:
        yield server
