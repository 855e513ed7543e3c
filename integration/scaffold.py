"""Shared scaffolding for the integration tests: a uuid-forge.toml writer and the CLI as a subprocess.

Written once here so that every test file builds its config and runs the command line the same
way (no inherited ``UUID_FORGE_*`` variable, a known salt, wide COLUMNS so rich never folds a
line the assertions read).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SALT = "integration-salt-not-shown"


def write_forge_toml(path: Path, stores: Mapping[str, str], source: str, *, namespace: str,
                     journal: Path | str | None = None, retries: int | None = 1, backoff: float = 0.01,
                     batch_size: int | None = None, extra: str = "") -> Path:
    """Write a config: [ids], [journal], [write] and one [stores.NAME] per entry of ``stores``.

    ``source`` names the store with role = "source"; ``journal`` defaults to journal.sqlite3
    beside the file; ``retries=None`` leaves [write] out (the defaults); ``extra`` (TOML text) is
    appended as it is, e.g. [types.*] sections.
    """
    if source not in stores:
        raise ValueError(f"source {source!r} is not one of the stores {sorted(stores)}")
    journal = path.parent / "journal.sqlite3" if journal is None else journal
    parts = [f"[ids]\nnamespace = {json.dumps(namespace)}\n", f"[journal]\npath = {json.dumps(str(journal))}\n"]
    if retries is not None:
        parts.append(f"[write]\nretries = {retries}\nbackoff = {backoff}\n"
                     + (f"batch_size = {batch_size}\n" if batch_size is not None else ""))
    for name, url in stores.items():
        parts.append(f"[stores.{name}]\nurl = {json.dumps(url)}\n" + ('role = "source"\n' if name == source else ""))
    if extra:
        parts.append(extra.strip("\n") + "\n")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def cli_env(env: Mapping[str, str] | None = None, *, salt: str | None = DEFAULT_SALT,
            columns: int = 200) -> dict[str, str]:
    """This process's environment without any UUID_FORGE_* variable, plus the salt, COLUMNS and ``env``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("UUID_FORGE_")}
    if salt is not None:
        base["UUID_FORGE_SALT"] = salt
    base["COLUMNS"] = str(columns)
    return {**base, **(env or {})}


def run_cli(*args: str, env: Mapping[str, str] | None = None, stdin: str | bytes | None = None,
            salt: str | None = DEFAULT_SALT, columns: int = 200,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m uuid_forge ARGS`` in a subprocess, as cron would run it; stdout/stderr as text.

    ``salt=None`` leaves UUID_FORGE_SALT unset (unless ``env`` gives it); ``stdin`` may be bytes
    (to feed undecodable input), the output is always decoded.
    """
    command = [sys.executable, "-m", "uuid_forge", *args]
    full_env = cli_env(env, salt=salt, columns=columns)
    if isinstance(stdin, bytes):
        done = subprocess.run(command, capture_output=True, env=full_env, input=stdin, timeout=timeout, check=False)
        return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
    return subprocess.run(command, capture_output=True, text=True, env=full_env, input=stdin, timeout=timeout,
                          check=False)
