"""One configuration for every command: ``-c/--config``, ``UUID_FORGE_CONFIG``, the ID flags.

Why: ``generate`` must print the ID the configured ``write`` stores, so both read the same file,
the same environment and the same flags in the same order (flags > environment > file >
default, decided in :mod:`uuid_forge.precedence`). The file is found the same way everywhere:
``-c FILE``, else ``$UUID_FORGE_CONFIG``, else ``./uuid-forge.toml`` when it exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import click

from ..errors import ConfigError
from ..ids import IDConfig
from ..precedence import CONFIG_ENV, ID_ENV, id_settings
from ..urls import mask_url

DEFAULT_CONFIG = "uuid-forge.toml"

__all__ = ["DEFAULT_CONFIG", "Resolved", "config_path_option", "find_config", "resolve_ids"]


def config_path_option(f: Any) -> Any:
    """``-c/--config`` for a command whose file is optional (the ID commands)."""
    return click.option("--config", "-c", "config_path", envvar=CONFIG_ENV, default=None,
                        type=click.Path(dir_okay=False),
                        help=f"TOML config: its [ids] and [types.NAME] [default: ${CONFIG_ENV}, else "
                             f"./{DEFAULT_CONFIG} when it exists].")(f)


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
        picked = id_settings({}, env, "", given)
        config = IDConfig(namespace=picked["namespace"].value or IDConfig().namespace,
                          salt=picked["salt"].value or "", scheme=picked["scheme"].value or IDConfig().scheme,
                          secret=picked["secret"].value or None)
        resolved = Resolved(config, None, path_origin)
        for key, s in picked.items():
            resolved.rows[key] = (_shown(key, s.value, config), s.origin)
        return resolved
    from ..settings import load_settings

    settings = load_settings(path, env, given)
    config = settings.ids
    resolved = Resolved(config, path, path_origin)
    for key in ID_ENV:
        resolved.rows[key] = (_shown(key, getattr(config, key), config), settings.origins.get(key, "default"))
    resolved.rows["journal"] = (settings.journal_path, settings.origins.get("journal", "default"))
    for s in settings.stores:
        role = "source" if s.source else "required" if s.required else "optional"
        resolved.rows[f"store {s.name}"] = (f"{mask_url(s.url)} ({role})", settings.origins.get(f"store.{s.name}", ""))
    for name, declared in settings.types.items():
        _type_rows(resolved, path, name, declared, given)
    declared = settings.types.get(entity_type) if entity_type else None
    if declared is not None:
        if need_salts and declared.salt_missing and "salt" not in given:
            raise ConfigError(f"{path} [types.{entity_type}]: its salt comes from ${declared.salt_env}, which is not "
                              "set; the ID printed without it would not be the one the writer stores")
        base = declared.id_config(config)
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
