"""Shared scaffolding for the fast tests: a uuid-forge.toml writer, the command line run in-process
in a clean environment, and skips (with the reason) for tests whose store driver is not installed.

Written once here so that every test file runs ``main(argv)`` the same way: its own stdout and
stderr, and no ``UUID_FORGE_*`` variable leaking in from the shell that started pytest.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from uuid_forge.cli import main

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

    A store is a URL, or a mapping of its keys (``url``, ``options``, ``optional`` ...);
    ``source`` gets role = "source"; ``journal`` defaults to journal.sqlite3 beside the file;
    ``extra`` (TOML text) is appended as it is.
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
DRIVER_EXTRAS = {"redis": "redis", "pymongo": "mongodb", "elasticsearch": "elasticsearch", "pika": "rabbitmq",
                 "psycopg": "postgres", "pymysql": "mariadb", "prometheus_client": "metrics"}


def _missing(module: str) -> str:
    return f'the {module} driver is not installed (pip install "uuid-forge[{DRIVER_EXTRAS.get(module, module)}]")'


def need_driver(module: str) -> Any:
    """The driver module, or skip the calling test with the extra to install."""
    return pytest.importorskip(module, reason=_missing(module))


def requires_driver(*modules: str) -> pytest.MarkDecorator:
    """A skipif mark for a test that opens a store whose driver may be absent."""
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(absent), reason="; ".join(_missing(m) for m in absent))
