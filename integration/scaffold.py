"""Shared scaffolding for the integration tests: the CLI as a subprocess, as cron runs it.

Written once here so that every test file runs the command line the same way (no inherited
``UUID_FORGE_*`` variable, a known salt, wide COLUMNS so rich never folds a line the assertions
read). The config writer, the forge factory and the silent server are the fast tests' own
(tests/scaffold.py), re-exported here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.scaffold import make_forge, write_forge_toml

__all__ = ["DEFAULT_SALT", "FAST_WRITE", "cli_env", "make_forge", "run_cli", "write_forge_toml"]

DEFAULT_SALT = "integration-salt-not-shown"
#: the [write] table of integration configs: one retry, a short backoff, so an outage fails fast
FAST_WRITE = {"retries": 1, "backoff": 0.01}


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


def forget_redis_type(redis_url: str, entity_type: str) -> None:
    """Remove what a test wrote under its own, uniquely named entity type in the test Redis
    database (``<type>:*`` and its name in the type set). A proven drop leaves what it cannot
    prove (a type with no declared key, a salt the teardown does not have), and the test database
    outlives the run: without this, keys pile up from run to run."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{entity_type}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start:start + 1000])
        client.srem("uf:types", entity_type)
    finally:
        client.close()
