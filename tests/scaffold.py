"""Shared scaffolding for the fast tests: the command line run in-process, in a clean environment.

Written once here so that every test file runs ``main(argv)`` the same way: its own stdout and
stderr, and no ``UUID_FORGE_*`` variable leaking in from the shell that started pytest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from click.testing import CliRunner

from uuid_forge.cli import main

#: unset even when absent from os.environ now (a test may set one with monkeypatch before the call)
ALWAYS_UNSET = ("UUID_FORGE_SALT", "UUID_FORGE_SECRET", "UUID_FORGE_NAMESPACE", "UUID_FORGE_SCHEME",
                "UUID_FORGE_CONFIG", "UUID_FORGE_DEBUG", "UUID_FORGE_JOURNAL")


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
