"""One configuration for every command: ``-c/--config``, ``UUID_FORGE_CONFIG``, the ID flags.

Why: ``generate`` must print the ID the configured ``write`` stores, so both read the same file,
the same environment and the same flags in the same order (flags > environment > file >
default, decided in :mod:`uuid_forge.precedence`). The file is found the same way everywhere:
``-c FILE``, else ``$UUID_FORGE_CONFIG``, else ``./uuid-forge.toml`` when it exists.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import click

from .. import metrics
from ..errors import ConfigError
from ..forge import Forge
from ..ids import SCHEMES, IDConfig
from ..precedence import CONFIG_ENV, ENV_PREFIX, ID_ENV, NAMESPACE_ENV, SALT_ENV, SCHEME_ENV, id_settings
from ..urls import mask_url, scheme_of
from .app import err

__all__ = ["DEFAULT_CONFIG", "ConfigUse", "Resolved", "config_option", "existing_config", "find_config", "id_flags",
           "id_options", "open_forge", "resolve_ids"]

DEFAULT_CONFIG = "uuid-forge.toml"

F = TypeVar("F", bound=Callable[..., Any])
#: what a command reads the file for: its stores (the file must exist), its IDs (a file is
#: optional), or the demo's stores (named on the command line only: the demo writes sample data)
ConfigUse = Literal["stores", "ids", "demo"]


def config_option(use: ConfigUse = "stores") -> Callable[[F], F]:
    """``-c/--config FILE``: the one option every command names its configuration file with."""
    settings: dict[str, Any]
    if use == "stores":
        settings = {"envvar": CONFIG_ENV, "default": DEFAULT_CONFIG, "show_default": True,
                    "help": f"TOML config with [ids] and [stores.NAME] (env: {CONFIG_ENV})."}
    elif use == "ids":
        settings = {"envvar": CONFIG_ENV, "default": None,
                    "help": f"TOML config: its [ids] and [types.NAME] [default: ${CONFIG_ENV}, else "
                            f"./{DEFAULT_CONFIG} when it exists]."}
    else:
        settings = {"default": None, "help": "Run against the stores of this TOML config instead of the embedded ones."}
    return click.option("--config", "-c", "config_path", type=click.Path(dir_okay=False, exists=use == "demo"),
                        **settings)


def id_options(f: F) -> F:
    """--namespace/--salt/--scheme/--env, shared by every command that computes IDs."""
    f = click.option("--env/--no-env", "use_env", default=True, show_default=True,
                     help=f"Read {ENV_PREFIX}* variables (they override the file; flags override both).")(f)
    f = click.option("--scheme", type=click.Choice(SCHEMES), default=None,
                     help=f"ID scheme [default: ${SCHEME_ENV}, else [ids] scheme, else uuid-forge/1].")(f)
    f = click.option("--salt", default=None, metavar="TEXT",
                     help=f"Salt [default: ${SALT_ENV}]. Prefer the variable: flags land in shell history.")(f)
    f = click.option("--namespace", "-n", default=None, metavar="DOMAIN|UUID",
                     help=f"Namespace domain (e.g. users.myapp.com) or UUID [default: ${NAMESPACE_ENV}, else [ids] "
                          "namespace, else the DNS namespace].")(f)
    return f


def id_flags(namespace: str | None, salt: str | None, scheme: str | None) -> dict[str, str | None]:
    """The ID flags as :func:`resolve_ids` takes them."""
    return {"namespace": namespace, "salt": salt, "scheme": scheme}


def existing_config(path: str, hint: str = "") -> str:
    """``path``, which must exist: a missing file is an error that says how to name one."""
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} not found (name one with --config/-c or {CONFIG_ENV}{hint})")
    return path


def open_forge(path: str) -> Forge:
    """The Forge of the config file at ``path``, for every command that uses the stores."""
    forge = Forge.from_config(existing_config(path, ", or run 'uuid-forge demo' to try the embedded stores first"))
    metrics.attach(forge)  # --metrics: its stores and journal
    for h in forge.stores:
        if h.adapter.process_local:
            err.print(f"note: store {h.name!r} is {scheme_of(h.adapter.url())}://, which lives only as long as this "
                      "command: the next command (an audit after a write) starts with it empty",
                      highlight=False, markup=False)
    return forge


def find_config(given: str | None) -> tuple[str | None, str]:
    """The config file to read and where its name came from (flag, env, default, or none)."""
    if given is not None:
        source = _parameter_source("config_path")
        return given, (f"env {CONFIG_ENV}" if source == "ENVIRONMENT" else "flag --config")
    if os.path.isfile(DEFAULT_CONFIG):
        return DEFAULT_CONFIG, f"default ./{DEFAULT_CONFIG}"
    return None, "none"


def _parameter_source(name: str) -> str:
    ctx = click.get_current_context(silent=True)
    source = ctx.get_parameter_source(name) if ctx is not None else None
    return source.name if source is not None else "COMMANDLINE"


@dataclass
class Resolved:
    """The ID configuration in use and a printable origin for every value (secrets masked)."""

    config: IDConfig
    file: str | None
    file_origin: str
    rows: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (shown value, origin)
    key: tuple[str, ...] = ()  # the entity type's declared key fields ([types.NAME] key), if any


def resolve_ids(config_path: str | None, entity_type: str | None, flags: dict[str, Any], use_env: bool,
                need_salts: bool = True) -> Resolved:
    """The IDConfig ``entity_type`` gets (or the [ids] one), from flags, environment, file, default.

    A declared type's own namespace and salt (``[types.NAME]``) replace the [ids] ones; a flag
    still wins over them. ``need_salts``: a type whose ``salt_env`` is unset is an error, since
    the ID printed without it would not be the one the writer stores.
    """
    if flags.get("namespace") == "":
        raise ConfigError("--namespace '': give a domain (users.myapp.com) or a UUID, or leave the flag out")
    path, path_origin = find_config(config_path)
    env = dict(os.environ) if use_env else {}
    given = {k: v for k, v in flags.items() if v is not None}
    if path is None:
        from ..settings import id_config_from

        picked = id_settings({}, env, "", given)
        config = id_config_from(picked)  # a bad value named with where it came from, as with a file
        resolved = Resolved(config, None, path_origin)
        for key, setting in picked.items():
            resolved.rows[key] = (_shown(key, setting.value, config), setting.origin)
        return resolved
    from ..settings import load_settings

    settings = load_settings(path, env, given)
    config = settings.ids
    resolved = Resolved(config, path, path_origin)
    for key in ID_ENV:
        resolved.rows[key] = (_shown(key, getattr(config, key), config), settings.origins.get(key, "default"))
    resolved.rows["journal"] = (settings.journal_path, settings.origins.get("journal", "default"))
    for store in settings.stores:
        role = "source" if store.source else "required" if store.required else "optional"
        resolved.rows[f"store {store.name}"] = (f"{mask_url(store.url)} ({role})",
                                                settings.origins.get(f"store.{store.name}", ""))
    for name, declared in settings.types.items():
        _type_rows(resolved, path, name, declared, given)
    own = settings.types.get(entity_type) if entity_type else None
    if own is not None:
        if need_salts and own.salt_missing and "salt" not in given:
            raise ConfigError(f"{path} [types.{entity_type}]: its salt comes from ${own.salt_env}, which is not "
                              "set; the ID printed without it would not be the one the writer stores")
        resolved.key = tuple(own.key or ())
        base = own.id_config(config)
        resolved.config = IDConfig(namespace=given.get("namespace", base.namespace), salt=given.get("salt", base.salt),
                                   scheme=base.scheme, secret=base.secret)
    return resolved


def _type_rows(resolved: Resolved, path: str, name: str, declared: Any, given: dict[str, Any]) -> None:
    """A declared type's own namespace and salt, where it has them."""
    where = f"file {path} [types.{name}]"
    if declared.key:
        resolved.rows[f"type {name} key"] = (", ".join(declared.key), where)
    if declared.namespace is not None:
        resolved.rows[f"type {name} namespace"] = ((str(given["namespace"]), "flag --namespace") if "namespace" in given
                                                   else (IDConfig(namespace=declared.namespace).describe()["namespace"],
                                                         where))
    if declared.salt_env is not None:
        state = "not set" if declared.salt_missing else "set (hidden)"
        resolved.rows[f"type {name} salt"] = (state, f"env {declared.salt_env}" if not declared.salt_missing
                                              else f"env {declared.salt_env} (unset)")


def _shown(key: str, value: Any, config: IDConfig) -> str:
    """A value as ``config`` prints it: salts and secrets never shown."""
    described = config.describe()
    if key in described:
        return described[key]
    return "not set" if value in (None, "") else str(value)
