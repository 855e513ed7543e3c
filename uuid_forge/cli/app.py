"""The command group and the ID commands: generate, encode, decode/inspect, extract, new-salt, config."""

from __future__ import annotations

import json
import os
import sys
import uuid
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..encodings import FORMS, all_forms, decode, encode
from ..errors import ConfigError
from ..ids import SCHEMES, UUIDGenerator, extract_uuid_from_prefixed, generate_salt
from ..privatefile import write_private
from .configuration import config_path_option, resolve_ids
from .parsing import parse_assignments, parse_positional

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def emit_json(payload: Any) -> None:
    """Machine output: one JSON document on stdout."""
    click.echo(json.dumps(payload, indent=2, sort_keys=False, default=str))


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="uuid-forge", prog_name="uuid-forge")
def cli() -> None:
    """Deterministic UUIDs that agree across services, languages and stores.

    The same entity type and key values give the same UUID everywhere, with no lookup; write
    each entity to every configured store, and audit the stores against the source of truth.

    Configuration: a uuid-forge.toml file (-c FILE, $UUID_FORGE_CONFIG, or ./uuid-forge.toml)
    names the stores; the salt and secret come from the environment (UUID_FORGE_SALT,
    UUID_FORGE_SECRET). Flags win over the environment, which wins over the file
    ('uuid-forge config' shows where each value came from; docs/configuration.md).

    \b
    Start here:
      uuid-forge demo                         write-through + audit on embedded stores
      uuid-forge generate user -a email=john@example.com
      uuid-forge stores                       is every configured store reachable?
      uuid-forge write user -k email=john@example.com -d name=John
      uuid-forge audit                        exit 0 consistent, 1 findings, 2 could not finish
    """


def id_flags(namespace: str | None, salt: str | None, scheme: str | None) -> dict[str, str | None]:
    """The ID flags as :func:`~uuid_forge.cli.configuration.resolve_ids` takes them."""
    return {"namespace": namespace, "salt": salt, "scheme": scheme}


def id_options(f: Any) -> Any:
    """--namespace/--salt/--scheme/--env, shared by every command that computes IDs."""
    f = click.option("--env/--no-env", "use_env", default=True, show_default=True,
                     help="Read UUID_FORGE_* variables (they override the file; flags override both).")(f)
    f = click.option("--scheme", type=click.Choice(SCHEMES), default=None,
                     help="ID scheme [default: $UUID_FORGE_SCHEME, else [ids] scheme, else uuid-forge/1].")(f)
    f = click.option("--salt", default=None, metavar="TEXT",
                     help="Salt [default: $UUID_FORGE_SALT]. Prefer the variable: flags land in shell history.")(f)
    f = click.option("--namespace", "-n", default=None, metavar="DOMAIN|UUID",
                     help="Namespace domain (e.g. users.myapp.com) or UUID [default: $UUID_FORGE_NAMESPACE, else [ids] "
                          "namespace, else the DNS namespace].")(f)
    return f


@cli.command(context_settings=CONTEXT)
@click.argument("entity_type")
@click.argument("args", nargs=-1, metavar="[ARG]...")
@click.option("-a", "--attr", "attrs", multiple=True, metavar="KEY=TEXT|KEY:=JSON",
              help="A named key value; repeat for more. '=' gives text, ':=' gives typed JSON.")
@click.option("--prefix", "-p", default=None, help="Human-readable prefix; it does not change the ID.")
@click.option("--separator", "-s", default="-", show_default=True, help="Between prefix and UUID.")
@click.option("--form", "-f", type=click.Choice([f for f in FORMS if f != "bytes"]), default="string",
              show_default=True, help="Text form of the printed ID.")
@id_options
@config_path_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of the bare ID.")
def generate(entity_type: str, args: tuple[str, ...], attrs: tuple[str, ...], prefix: str | None, separator: str,
             form: str, namespace: str | None, salt: str | None, scheme: str | None, use_env: bool,
             config_path: str | None, as_json: bool) -> None:
    """Print the deterministic UUID of ENTITY_TYPE and its key values.

    Values are text unless typed: '-a number:=12345' is the integer 12345, '-a number=12345'
    the string "12345" (they give different IDs, as in the library). A positional ARG is text,
    or JSON after ':=' (':=7', ':=true', ':=[1,"a"]').

    \b
    Examples:
      uuid-forge generate user -a email=john@example.com
      uuid-forge generate invoice -a region=EUR -a number:=12345 --prefix INV
      uuid-forge generate product SKU-123 :=7 --namespace products --form base64url
      UUID_FORGE_SECRET=... uuid-forge generate user -a email=x@y.z   # keyed UUIDv8
      uuid-forge generate order -a order_number=A-1 -c uuid-forge.toml   # [types.order] namespace/salt
    """
    config = resolve_ids(config_path, entity_type, id_flags(namespace, salt, scheme), use_env).config
    values = parse_positional(args)
    kwargs = parse_assignments(attrs)
    ident = UUIDGenerator(config).generate(entity_type, *values, **kwargs)
    text = encode(ident, form)
    shown = f"{prefix}{separator}{text}" if prefix else text
    if as_json:
        emit_json({"entity_type": entity_type, "id": str(ident), "form": form, "value": shown,
                   "version": ident.version, "scheme": config.scheme, "keyed": config.keyed})
    else:
        click.echo(shown)
    if not config.salt and not config.secret and sys.stderr.isatty():
        err.print("[yellow]note:[/] no salt or secret set: anyone who knows the key values can compute this ID "
                  "(uuid-forge new-salt makes one)")


def _forms_table(ident: uuid.UUID, detected: str | None) -> Table:
    table = Table(show_header=True, header_style="bold")
    table.add_column("form")
    table.add_column("value", overflow="fold")
    for name, value in all_forms(ident).items():
        label = f"{name} (input)" if name == detected else name
        table.add_row(label, value)
    return table


def _decode_cmd(value: str, form: str | None, as_json: bool, fit: str | None = None) -> None:
    ident = decode(value, form)
    from ..encodings import detect_form

    detected = form or detect_form(value)
    if as_json:
        emit_json({"input_form": detected, **all_forms(ident), **({"configuration": fit} if fit else {})})
    else:
        out.print(_forms_table(ident, detected))
        if fit:
            out.print(escape(f"configuration: {fit}"))


def _fits(value: str, form: str | None, resolved_config: Any, file: str | None) -> str:
    """Whether an ID's version is the one the configuration in use gives (v8 keyed, v5 otherwise)."""
    from ..classify import scheme_versions

    ident = decode(value, form)
    wanted = sorted(scheme_versions(resolved_config))
    where = f" of {file}" if file else ""
    if ident.version in wanted:
        return f"version {ident.version}, as the configuration{where} gives"
    return (f"version {ident.version}, but the configuration{where} gives version {wanted[0]}: not an ID this "
            "configuration writes (another secret setting, or another tool)")


_FORM_CHOICE = click.Choice(["string", "hex", "base64url", "base32", "int", "urn"])


@cli.command("decode", context_settings=CONTEXT)
@click.argument("value")
@click.option("--form", type=_FORM_CHOICE, default=None, help="Force the input form (needed for an int of 22/26/32 digits).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def decode_(value: str, form: str | None, as_json: bool) -> None:
    """Show every form of a UUID given in ANY form, with its version and variant.

    The form is detected by length and alphabet: string (36), hex (32), base64url (22),
    base32 (26, lowercase), urn (45) or int (up to 39 digits).

    \b
    Example:
      uuid-forge decode ZFxn-eqzX6Sd1Cs1QtyNxw
    """
    _decode_cmd(value, form, as_json)



@cli.command(context_settings=CONTEXT)
@click.argument("value")
@click.option("--form", type=_FORM_CHOICE, default=None, help="Force the input form.")
@id_options
@config_path_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(value: str, form: str | None, namespace: str | None, salt: str | None, scheme: str | None,
            use_env: bool, config_path: str | None, as_json: bool) -> None:
    """Every form, version and variant of a UUID in any form, and whether its version is the one
    the configuration in use gives (keyed v8 or v5)."""
    resolved = resolve_ids(config_path, None, id_flags(namespace, salt, scheme), use_env, need_salts=False)
    _decode_cmd(value, form, as_json, _fits(value, form, resolved.config, resolved.file))


@cli.command("encode", context_settings=CONTEXT)
@click.argument("value")
@click.option("--to", "form", type=click.Choice([f for f in FORMS if f != "bytes"]), default=None,
              help="Print only this form.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def encode_(value: str, form: str | None, as_json: bool) -> None:
    """Print a UUID (given in any form) in one form or all forms.

    \b
    Examples:
      uuid-forge encode 645c67f9-eab3-5fa4-9dd4-2b3542dc8dc7 --to base32
      uuid-forge encode 645c67f9-eab3-5fa4-9dd4-2b3542dc8dc7 --json
    """
    ident = decode(value)
    if form:
        text = encode(ident, form)
        emit_json({form: text}) if as_json else click.echo(text)
    elif as_json:
        emit_json(all_forms(ident))
    else:
        out.print(_forms_table(ident, None))



@cli.command(context_settings=CONTEXT)
@click.argument("prefixed_id")
@click.option("--separator", "-s", default="-", show_default=True, help="Separator between prefix and UUID.")
def extract(prefixed_id: str, separator: str) -> None:
    """Print the UUID inside a prefixed ID such as INV-EUR-645c67f9-... ."""
    click.echo(str(extract_uuid_from_prefixed(prefixed_id, separator)))


@cli.command("new-salt", context_settings=CONTEXT)
@click.option("--length", "-l", default=32, show_default=True, help="Random bytes (at least 16).")
def new_salt(length: int) -> None:
    """Print a new random salt. Store it as UUID_FORGE_SALT, once per deployment.

    Changing the salt changes every ID, so generate it once and keep it safe.
    """
    click.echo(generate_salt(length))


@cli.command(context_settings=CONTEXT)
@click.option("--output", "-o", default=".env", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the template.")
@click.option("--force", "-f", is_flag=True, help="Overwrite an existing file.")
def init(output: str, force: bool) -> None:
    """Write a .env template with a fresh salt (mode 0600; the salt is not printed)."""
    if os.path.exists(output) and not force:
        raise ConfigError(f"{output} exists; pass --force to overwrite it")
    text = (
        "# uuid-forge configuration. Keep this file secret and out of version control.\n"
        f"UUID_FORGE_SALT={generate_salt()}\n"
        "# UUID_FORGE_NAMESPACE=mycompany.com\n"
        "# UUID_FORGE_SECRET=...   # keyed mode: IDs nobody can compute without it\n"
    )
    write_private(output, text, "--output")  # 0600, never through a symlink
    click.echo(f"wrote {output} (mode 0600) with a new salt")


@cli.command(context_settings=CONTEXT)
@id_options
@config_path_option
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
                     else "config file: none (-c FILE, $UUID_FORGE_CONFIG or ./uuid-forge.toml)"))
    for key, (value, origin) in resolved.rows.items():
        if entity_type is None or not key.startswith("type ") or key.startswith(f"type {entity_type} "):
            out.print(escape(f"{key}: {value}\n    from {origin}"))


@cli.command(context_settings=CONTEXT)
@id_options
@config_path_option
@click.option("--strict", is_flag=True, help="Treat warnings as failures (exit 1).")
def validate(namespace: str | None, salt: str | None, scheme: str | None, use_env: bool, config_path: str | None,
             strict: bool) -> None:
    """Check the configuration for weak settings (no salt, short salt, default namespace).

    With a config file, the whole file is validated too, and a declared type whose salt
    variable is unset fails. Exit 0 ok, 1 weak (or a warning with --strict), 2 invalid.
    """
    resolved = resolve_ids(config_path, None, id_flags(namespace, salt, scheme), use_env)
    cfg = resolved.config
    problems: list[str] = []
    failed = False
    if not cfg.salt and not cfg.secret:
        problems.append("no salt and no secret: IDs can be computed by anyone who knows the key values "
                        "(set UUID_FORGE_SALT; uuid-forge new-salt makes one)")
        failed = True
    elif cfg.salt and len(cfg.salt) < 16:
        problems.append(f"salt is only {len(cfg.salt)} characters; use 16 or more (uuid-forge new-salt)")
        failed = failed or strict
    if cfg.namespace_uuid == uuid.NAMESPACE_DNS:
        problems.append("the default namespace is in use; set [ids] namespace or UUID_FORGE_NAMESPACE to your domain")
        failed = failed or strict
    for key, (value, origin) in resolved.rows.items():
        if key.startswith("type ") and key.endswith(" salt") and value == "not set":
            problems.append(f"{key}: {origin}: the writer would refuse this type")
            failed = True
    for p in problems:
        err.print(f"- {escape(p)}")
    if failed:
        raise click.exceptions.Exit(1)
    where = f" ({resolved.file})" if resolved.file else ""
    click.echo(f"configuration ok{where}" if not problems else f"configuration usable (see notes){where}")


@cli.command(context_settings=CONTEXT)
def info() -> None:
    """What uuid-forge is and where its configuration comes from."""
    from .. import __version__

    out.print(f"uuid-forge {__version__}: deterministic UUIDs (scheme uuid-forge/1, RFC 9562 v5/v8)")
    out.print("configuration: UUID_FORGE_NAMESPACE, UUID_FORGE_SALT, UUID_FORGE_SECRET, UUID_FORGE_SCHEME")
    out.print("run 'uuid-forge --help' for the commands")


from . import stores as _stores  # noqa: E402,F401  (registers the store commands)
from . import forge_cmds as _forge_cmds  # noqa: E402,F401
from . import demo_cmd as _demo_cmd  # noqa: E402,F401
from . import ids_cmd as _ids_cmd  # noqa: E402,F401
from . import journal_cmd as _journal_cmd  # noqa: E402,F401
