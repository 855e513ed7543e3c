"""Where each configuration value comes from: flags, then the environment, then the file, then
the default. The one place that order is decided.

Why one place: the CLI's ``generate`` must give the ID the configured writer stores, and
``uuid-forge config`` must say truthfully which layer set each value. Both go through
:func:`pick`, and so does :func:`uuid_forge.settings.parse_settings`, so the three cannot
disagree about which layer wins.

A value counts as given when it is not None (a flag, a file key) or not empty (an environment
variable: an empty ``UUID_FORGE_SALT=`` in an env file is "not set", as in the shell).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BROKER_URL_ENV", "CONFIG_ENV", "DEBUG_ENV", "ENV_PREFIX", "ID_ENV", "JOURNAL_ENV", "NAMESPACE_ENV",
           "RESULT_BACKEND_ENV", "SALT_ENV", "SCHEME_ENV", "SECRETS", "SECRET_ENV", "Setting", "id_settings", "pick",
           "store_url_env", "type_salt_env"]

# Every UUID_FORGE_* variable is named here and nowhere else: other modules import these names.
#: what every uuid-forge variable starts with (a worker process takes all of the coordinator's)
ENV_PREFIX = "UUID_FORGE_"
NAMESPACE_ENV = "UUID_FORGE_NAMESPACE"
SCHEME_ENV = "UUID_FORGE_SCHEME"
SALT_ENV = "UUID_FORGE_SALT"
SECRET_ENV = "UUID_FORGE_SECRET"
#: the environment variable of each [ids] value
ID_ENV = {"namespace": NAMESPACE_ENV, "scheme": SCHEME_ENV, "salt": SALT_ENV, "secret": SECRET_ENV}
JOURNAL_ENV = "UUID_FORGE_JOURNAL"
#: the config file every command (and a Celery worker) reads when no -c FILE is given
CONFIG_ENV = "UUID_FORGE_CONFIG"
#: ``[executor]`` broker and result backend: a password can stay out of the file
BROKER_URL_ENV = "UUID_FORGE_BROKER_URL"
RESULT_BACKEND_ENV = "UUID_FORGE_RESULT_BACKEND"
#: set to anything: the CLI shows the traceback of an error instead of one line
DEBUG_ENV = "UUID_FORGE_DEBUG"
#: values that belong in the environment only: never read from the file, never printed
SECRETS = ("salt", "secret")


@dataclass(frozen=True)
class Setting:
    """One resolved value and where it came from (``flag --salt``, ``env UUID_FORGE_SALT``,
    ``file uuid-forge.toml [ids]``, ``default``)."""

    value: Any
    origin: str


def _env_part(name: str) -> str:
    return name.upper().replace("-", "_")


def store_url_env(store: str) -> str:
    """The variable that overrides ``[stores.NAME] url``: NAME upper-cased, '-' as '_'."""
    return f"{ENV_PREFIX}STORE_{_env_part(store)}_URL"


def type_salt_env(entity_type: str) -> str:
    """The variable to suggest for a declared type's own salt (``salt_env``): ``UUID_FORGE_SALT_ORDERS``."""
    return f"{SALT_ENV}_{_env_part(entity_type)}"


def pick(*, flag: Any = None, flag_name: str = "", env: Mapping[str, str] | None = None, env_name: str = "",
         file_value: Any = None, file_where: str = "", default: Any = None) -> Setting:
    """The winning layer for one value: flag, then environment, then file, then default."""
    if flag is not None:
        return Setting(flag, f"flag {flag_name}")
    if env is not None and env_name and env.get(env_name):
        return Setting(env[env_name], f"env {env_name}")
    if file_value is not None:
        return Setting(file_value, f"file {file_where}")
    return Setting(default, "default")


def id_settings(ids_table: Mapping[str, Any], env: Mapping[str, str] | None, origin: str,
                flags: Mapping[str, Any] | None = None) -> dict[str, Setting]:
    """namespace, scheme, salt and secret of ``[ids]``, each from its winning layer.

    ``env`` None means the environment is not read (``--no-env``). The salt and secret are never
    read from the file (settings refuses them there).
    """
    flags = flags or {}
    out: dict[str, Setting] = {}
    for key, var in ID_ENV.items():
        out[key] = pick(flag=flags.get(key), flag_name=f"--{key}", env=env, env_name=var,
                        file_value=None if key in SECRETS else ids_table.get(key),
                        file_where=f"{origin} [ids]", default=None)
    return out
