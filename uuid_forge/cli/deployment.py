"""Setting a deployment up and checking it: new-salt, init, config, validate, info."""

from __future__ import annotations

import os
import shlex
import uuid

import click
from rich.markup import escape

from ..errors import ConfigError
from ..ids import generate_salt
from ..precedence import CONFIG_ENV, NAMESPACE_ENV, SALT_ENV, SCHEME_ENV, SECRET_ENV
from ..privatefile import write_private
from .app import CONTEXT, emit_json, err, out
from .configuration import DEFAULT_CONFIG, config_option, id_flags, id_options, resolve_ids

__all__ = ["config", "info", "init", "new_salt", "validate"]


@click.command("new-salt", context_settings=CONTEXT)
@click.option("--length", "-l", default=32, show_default=True, help="Random bytes (at least 16).")
def new_salt(length: int) -> None:
    """Print a new random salt. Store it as UUID_FORGE_SALT, once per deployment.

    Changing the salt changes every ID, so generate it once and keep it safe.
    """
    click.echo(generate_salt(length))


@click.command(context_settings=CONTEXT)
@click.option("--output", "-o", default=".env", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the template.")
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing file.")
def init(output: str, force: bool) -> None:
    """Write a .env template with a fresh salt (mode 0600; the salt is not printed)."""
    if os.path.exists(output) and not force:
        raise ConfigError(f"{output} exists; pass --force to overwrite it")
    text = (
        "# uuid-forge configuration. Keep this file secret and out of version control.\n"
        f"{SALT_ENV}={generate_salt()}\n"
        f"# {NAMESPACE_ENV}=mycompany.com\n"
        f"# {SECRET_ENV}=...   # keyed mode: IDs nobody can compute without it\n"
    )
    write_private(output, text, "--output")  # 0600, never through a symlink
    click.echo(f"wrote {output} (mode 0600) with a new salt")
    # uuid-forge reads the salt from the environment only: say how to get it there (". FILE"
    # without a slash searches PATH in a POSIX shell, so the path gets one)
    path = output if "/" in output else f"./{output}"
    click.echo(f"next: load it into the environment before running uuid-forge, e.g. "
               f"set -a; . {shlex.quote(path)}; set +a (or your service manager's EnvironmentFile=)")


@click.command(context_settings=CONTEXT)
@id_options
@config_option("ids")
@click.option("--entity", "-e", "entity_type", default=None, help="Show the ID configuration of this entity type "
              "(its [types.NAME] namespace and salt) [default: the [ids] one].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config(namespace: str | None, salt: str | None, scheme: str | None, use_env: bool, config_path: str | None,
           entity_type: str | None, as_json: bool) -> None:
    """Show the configuration in use and where each value came from.

    Each value comes from the first of: a flag, the environment (UUID_FORGE_*), the config file,
    the default. Salts and secrets are never printed, store passwords show as ***.
    """
    resolved = resolve_ids(config_path, entity_type, id_flags(namespace, salt, scheme), use_env, need_salts=False)
    described = resolved.config.describe()
    if as_json:
        emit_json({**described, "keyed": resolved.config.keyed, "file": resolved.file,
                   "file_from": resolved.file_origin,
                   "values": {k: {"value": v, "from": o} for k, (v, o) in resolved.rows.items()}})
        return
    # one value per line, its origin on the next: fits 80 columns without cutting a URL
    out.print(escape(f"config file: {resolved.file} (from {resolved.file_origin})" if resolved.file
                     else f"config file: none (-c FILE, ${CONFIG_ENV} or ./{DEFAULT_CONFIG})"))
    for key, (value, origin) in resolved.rows.items():
        if entity_type is None or not key.startswith("type ") or key.startswith(f"type {entity_type} "):
            out.print(escape(f"{key}: {value}\n    from {origin}"))


@click.command(context_settings=CONTEXT)
@id_options
@config_option("ids")
@click.option("--strict", is_flag=True, help="Treat warnings (and checks that are off) as failures (exit 1).")
@click.option("--offline", is_flag=True, help="Do not open the stores: check the ID settings and the file only.")
@click.option("--json", "as_json", is_flag=True, help="Print every check as JSON (check, store, status, message).")
def validate(namespace: str | None, salt: str | None, scheme: str | None, use_env: bool, config_path: str | None,
             strict: bool, offline: bool = False, as_json: bool = False) -> None:
    """Check the configuration: weak ID settings (no salt, short salt, default namespace), then
    every check that opening the stores runs, with nothing written.

    With a config file, each store is opened as every command opens it and checked: unknown or
    misspelled options (with the close match), whether it answers, each declared type (and each
    type the source holds) accepted, the user's own table and its mapped columns (an unmapped
    NOT NULL column refuses the table), an Elasticsearch index's mapping (your own index must map
    uf_id as a keyword), whether the ID-configuration guard is on for the source, and each type's
    ID configuration against the marker the source recorded (a salt missing from cron's
    environment fails here, as every write would refuse it). Each check
    is named: ok, failed, off or skipped. Exit 0 ok, 1 weak (or a warning or a check that is off,
    with --strict), 2 a check failed: the commands that open the stores would refuse them.
    """
    from ..checks import FAILED, OFF, SKIPPED, StoreCheck, check_stores
    from ..settings import load_settings

    resolved = resolve_ids(config_path, None, id_flags(namespace, salt, scheme), use_env)
    cfg = resolved.config
    checks: list[StoreCheck] = []
    weak = False
    if not cfg.salt and not cfg.secret:
        checks.append(StoreCheck(None, "salt", "weak", "no salt and no secret: IDs can be computed by anyone who "
                                 f"knows the key values (set {SALT_ENV}; uuid-forge new-salt makes one)"))
        weak = True
    elif cfg.salt and len(cfg.salt) < 16:
        checks.append(StoreCheck(None, "salt", "warning", f"salt is only {len(cfg.salt)} characters; use 16 or more "
                                 "(uuid-forge new-salt)"))
        weak = weak or strict
    if cfg.secret and len(cfg.secret) < 32:
        checks.append(StoreCheck(None, "secret", "warning", f"{SECRET_ENV} is only {len(cfg.secret)} character(s): a "
                                 "short secret can be guessed from IDs and keys; use 32 or more (uuid-forge "
                                 "new-salt makes a good one)"))
        weak = weak or strict
    if cfg.namespace_uuid == uuid.NAMESPACE_DNS:
        checks.append(StoreCheck(None, "namespace", "warning", "the default namespace is in use; set [ids] namespace "
                                 f"or {NAMESPACE_ENV} to your domain"))
        weak = weak or strict
    for key, (value, origin) in resolved.rows.items():
        if key.startswith("type ") and key.endswith(" salt") and value == "not set":
            checks.append(StoreCheck(None, key, "weak", f"{origin}: the writer would refuse this type"))
            weak = True
    if resolved.file and not offline:
        checks += check_stores(load_settings(resolved.file, None if use_env else {}, id_flags(namespace, salt, scheme)))
    failed = any(c.status == FAILED for c in checks)
    weak = weak or (strict and any(c.status in (OFF, SKIPPED) for c in checks))
    code = 2 if failed else 1 if weak else 0
    where = f" ({resolved.file})" if resolved.file else ""
    noted = [c for c in checks if c.status != "ok"]
    summary = (f"configuration refused{where}: {sum(c.status == FAILED for c in checks)} check(s) failed" if failed
               else f"configuration weak{where}" if weak
               else f"configuration ok{where}" if not noted else f"configuration usable (see notes){where}")
    if as_json:
        emit_json({"file": resolved.file, "ok": code == 0, "exit_code": code, "summary": summary,
                   "checks": [c.to_dict() for c in checks]})
    else:
        for c in checks:
            if c.store is None:  # the ID settings: notes on stderr, as before
                err.print(f"- {escape(c.message)}", highlight=False)
            else:
                style = {"ok": "green", FAILED: "red", OFF: "yellow", SKIPPED: "yellow"}.get(c.status, "")
                out.print(f"[{style}]{c.status:7}[/] " + escape(c.line()[8:]), highlight=False)
        click.echo(summary, err=code != 0)
    if code:
        raise click.exceptions.Exit(code)


@click.command(context_settings=CONTEXT)
def info() -> None:
    """What uuid-forge is and where its configuration comes from."""
    from .. import __version__

    out.print(f"uuid-forge {__version__}: deterministic UUIDs (scheme uuid-forge/1, RFC 9562 v5/v8)")
    out.print(escape(f"configuration: a TOML file (-c FILE, ${CONFIG_ENV} or ./{DEFAULT_CONFIG}: stores, [ids], "
                     f"[types]); the environment ({NAMESPACE_ENV}, {SALT_ENV}, {SECRET_ENV}, {SCHEME_ENV}) wins over "
                     "it, and a flag over both ('uuid-forge config' shows where each value came from)"))
    out.print("run 'uuid-forge --help' for the commands")

