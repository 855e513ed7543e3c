"""``uuid-forge sql postgres``: print, install or check the ID functions inside PostgreSQL.

Why a command: a migration backfills millions of rows, and a DBA installs and checks the
functions that compute their IDs in the database. The SQL text is :mod:`uuid_forge.pgfunctions`;
the part that connects is the SQL adapter's (:mod:`uuid_forge.adapters.sql.functions`, imported
only when a database is used, so this module imports no driver).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import click
from rich.markup import escape

from ..errors import ConfigError
from ..ids import SCHEME_V1, IDConfig
from ..pgfunctions import postgres_functions_sql
from ..precedence import SALT_ENV, SECRET_ENV
from ..urls import mask_url
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, find_config, resolve_ids

__all__ = ["sql"]

#: the functions a caller uses (the others are their helpers)
PUBLIC_FUNCTIONS = ("uuid_forge_id(namespace uuid, entity_type text, key jsonb, salt text DEFAULT '')",
                    "uuid_forge_id_keyed(namespace uuid, entity_type text, key jsonb, salt text, secret text|bytea)",
                    "uuid_forge_name(entity_type text, args jsonb, kwargs jsonb, salt text)")


@click.group(context_settings=CONTEXT)
def sql() -> None:
    """SQL that runs inside a database: the ID functions for PostgreSQL."""


def _schema(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        postgres_functions_sql(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value


@sql.command("postgres", context_settings=CONTEXT)
@click.option("--schema", default="public", show_default=True, metavar="NAME", callback=_schema,
              help="The schema the functions go in (a lowercase identifier; --install creates it when missing).")
@click.option("--extensions-schema", default="public", show_default=True, metavar="NAME", callback=_schema,
              help="Where the printed SQL expects (or creates) uuid-ossp and pgcrypto; --install finds them itself.")
@click.option("--install", is_flag=True,
              help="Run the SQL against the database, in one transaction, and check it before the commit.")
@click.option("--check", "check_only", is_flag=True,
              help="Run the spec's vectors against the installed functions (exit 1 when one fails).")
@click.option("--url", default=None, metavar="URL",
              help="The PostgreSQL database [default: the source store of the config].")
@click.option("--store", "store_name", default=None, metavar="NAME",
              help="A configured store to use instead of the source (with --install or --check).")
@click.option("--entity", "-e", "entity_type", default=None, metavar="TYPE",
              help="The entity type of the printed example (its namespace and key fields) [default: the first "
                   "declared type, else 'user'].")
@config_option("ids")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def postgres(schema: str, extensions_schema: str, install: bool, check_only: bool, url: str | None,
             store_name: str | None, entity_type: str | None, config_path: str | None, as_json: bool) -> None:
    """Print, install or check the SQL functions that compute uuid-forge/1 IDs inside PostgreSQL.

    uuid_forge_id(namespace, entity_type, key jsonb, salt) gives the ID the Python library gives
    (UUIDv5); uuid_forge_id_keyed(namespace, entity_type, key, salt, secret) the keyed one
    (HMAC-SHA256, UUIDv8). KEY is a JSON object of named key values (generate('user',
    email=...)) or an array of positional ones. Text (NFC-normalised), integers, booleans, null,
    and objects and arrays of those give the Python answer; any other value (a number with a
    fraction, an integer of 1e21 or more) raises an error naming its place, never another ID.
    The salt and the secret are parameters of every call: they are never part of a function
    (\\df+ and pg_proc do not show them). Pass them as parameters, never inlined in SQL text,
    which lands in logs and pg_stat_statements.

    Without --install or --check: print the SQL (pipe it to psql). --install runs it in one
    transaction: the extensions uuid-ossp and pgcrypto when missing, CREATE OR REPLACE of each
    function (so it can run again), then every vector checked before the commit. --check runs
    the vectors against an installed copy: for a DBA after an install or an upgrade. The
    database: --url, else --store NAME or the source store of the config (-c). The server needs
    PostgreSQL 13 or later and the UTF8 encoding.

    \b
    Examples:
      uuid-forge sql postgres --schema util > uuid_forge.sql      # review; psql -1 -f uuid_forge.sql
      uuid-forge sql postgres --install --url postgresql://app@db/app --schema util
      uuid-forge sql postgres --check -c uuid-forge.toml          # the source store's database
    \b
    A backfill in batches (psql 15+; \\getenv keeps the salt out of argv and the SQL text):
      psql "$DATABASE_URL" -v ON_ERROR_STOP=1 <<'SQL'
      \\getenv salt UUID_FORGE_SALT
      UPDATE users SET new_id = util.uuid_forge_id('NAMESPACE-UUID', 'user',
             jsonb_build_object('email', email), :'salt')
       WHERE serial_id >= 1 AND serial_id < 10001 AND new_id IS NULL;
      SQL
    \b
    Keyed: util.uuid_forge_id_keyed(ns, 'user', key, :'salt', :'secret'), with
    \\getenv secret UUID_FORGE_SECRET. From Python, bound parameters:
      cur.execute("UPDATE users SET new_id = util.uuid_forge_id(%s, 'user', "
                  "jsonb_build_object('email', email), %s) WHERE ...", (ns, salt))
    'uuid-forge sql postgres' prints this example with the configured namespace UUID. The values
    supported and the errors: docs/ids.md, "IDs inside PostgreSQL".
    """
    if install or check_only:
        target = _target(url, store_name, config_path)
        functions = importlib.import_module("uuid_forge.adapters.sql.functions")
        if install:
            _print_install(functions.install_functions(target, schema), as_json)
        else:
            _print_check(functions.check_functions(target, schema), as_json)
        return
    if url is not None or store_name is not None:
        raise click.UsageError("--url and --store name the database of --install or --check; printing the SQL "
                               "needs none")
    example = _example(schema, config_path, entity_type)
    text = postgres_functions_sql(schema, extensions_schema, extensions_schema)
    if as_json:
        emit_json({"schema": schema, "functions": [f"{schema}.{f}" for f in PUBLIC_FUNCTIONS], "sql": text,
                   "example": example})
        return
    click.echo(_header(schema) + text + "\n" + "\n".join(f"-- {line}" if line else "--"
                                                         for line in example.splitlines()))


def _header(schema: str) -> str:
    return (f"-- uuid-forge/1 ID functions for PostgreSQL 13+ (UTF8), schema {schema}: 'uuid-forge sql postgres'.\n"
            "-- Install: psql \"$DATABASE_URL\" -v ON_ERROR_STOP=1 -1 -f THIS_FILE (or uuid-forge sql postgres "
            "--install).\n-- The salt and the secret are parameters of each call: no function holds them.\n\n")


def _example(schema: str, config_path: str | None, entity_type: str | None) -> str:
    """A backfill of the configured namespace, the salt and secret as placeholders (never their values)."""
    declared: dict[str, Any] = {}
    path, _ = find_config(config_path)
    if path is not None:
        from ..settings import load_settings

        declared = dict(load_settings(path, dict(os.environ)).types)
    if entity_type is None:
        entity_type = next((name for name, t in declared.items() if t.key), "user")
    elif declared and entity_type not in declared:  # an example of a type the config does not have misleads
        raise ConfigError(f"--entity {entity_type!r}: not a [types.NAME] of {path} (declared: "
                          f"{', '.join(declared)})")
    fields = tuple(declared[entity_type].key) if entity_type in declared and declared[entity_type].key else ("email",)
    config: IDConfig = resolve_ids(config_path, entity_type, {}, True, need_salts=False).config
    key = "jsonb_build_object(" + ", ".join(f"'{f}', {f}" for f in fields) + ")"
    salt = ":'salt'" if config.salt else "''"
    lines = [f"Example: a backfill of {entity_type} IDs in batches (psql 15+), the values as parameters:"]
    if config.salt:
        lines.append(f"  \\getenv salt {SALT_ENV}")
    if config.keyed:
        lines.append(f"  \\getenv secret {SECRET_ENV}")
        call = f"{schema}.uuid_forge_id_keyed('{config.namespace_uuid}', '{entity_type}', {key}, {salt}, :'secret')"
    else:
        call = f"{schema}.uuid_forge_id('{config.namespace_uuid}', '{entity_type}', {key}, {salt})"
    lines += [f"  UPDATE {entity_type}s SET new_id = {call}",
              "   WHERE serial_id >= 1 AND serial_id < 10001 AND new_id IS NULL;"]
    if not config.salt:
        lines.append("  (no salt is configured: '' is the salt; set one before the first ID is written)")
    if config.scheme != SCHEME_V1:
        lines.append(f"  Note: the configuration's scheme is {config.scheme}; these functions compute {SCHEME_V1} "
                     "IDs only.")
    return "\n".join(lines)


def _target(url: str | None, store_name: str | None, config_path: str | None) -> str:
    """The database: --url, else the named or the source store of the config."""
    if url is not None:
        if store_name is not None:
            raise click.UsageError("give --url or --store, not both")
        return url
    path, _ = find_config(config_path)
    if path is None:
        raise ConfigError("no database: give --url URL, or a config (-c FILE) whose source store is PostgreSQL")
    from ..settings import load_settings

    stores = load_settings(path, dict(os.environ)).stores
    chosen = [s for s in stores if (s.name == store_name if store_name else s.source)]
    if not chosen:
        names = ", ".join(s.name for s in stores) or "none"
        what = f"no store named {store_name!r}" if store_name else "no source store"
        raise ConfigError(f"{path}: {what} (stores: {names}); give --url URL or --store NAME")
    return chosen[0].url


def _print_install(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json({"installed": True, **report.as_dict()})
        return
    out.print(escape(f"installed in {report.url} ({report.server}), schema {report.schema}, one transaction:"))
    for name, state in report.extensions.items():
        out.print(escape(f"  extension {name}: {state}"))
    out.print(escape(f"  schema {report.schema}: {report.schema_state}"))
    for signature, state in report.functions.items():
        out.print(escape(f"  function {signature}: {state}"))
    check = report.check
    out.print(escape(f"  checked before the commit: {check.passed} of {len(check.results)} cases give the Python "
                     "answer or the expected error"))


def _print_check(report: Any, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(escape(f"{report.url}, schema {report.schema}:"))
        for r in report.results:
            mark = "pass" if r.passed else "FAIL"
            out.print(escape(f"  {mark}  {r.origin}: {r.label}" + ("" if r.passed else f": {r.detail}")))
        out.print(escape(f"{report.passed} passed, {report.failed} failed"))
    if report.failed:
        err.print(f"uuid-forge: {report.failed} case(s) give another answer than the Python library in "
                  f"{mask_url(report.url)}: reinstall with --install, or compute those IDs in Python",
                  highlight=False, markup=False)
        raise click.exceptions.Exit(1)
