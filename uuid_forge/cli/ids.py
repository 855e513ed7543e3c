"""The ID commands, which need no store: generate, decode, inspect, encode, extract."""

from __future__ import annotations

import sys
import uuid
from typing import Any, cast

import click
from rich.markup import escape
from rich.table import Table

from ..encodings import FORMS, all_forms, decode, detect_form, encode
from ..ids import UUIDGenerator, extract_uuid_from_prefixed
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, id_flags, id_options, resolve_ids
from .parsing import parse_assignments, parse_positional

__all__ = ["TEXT_FORMS", "decode_", "encode_", "extract", "generate", "inspect"]

#: the forms an ID can be printed in (bytes are for the library only)
TEXT_FORMS = tuple(f for f in FORMS if f != "bytes")


@click.command(context_settings=CONTEXT)
@click.argument("entity_type")
@click.argument("args", nargs=-1, metavar="[ARG]...")
@click.option("-a", "--attr", "attrs", multiple=True, metavar="KEY=TEXT|KEY:=JSON",
              help="A named key value; repeat for more. '=' gives text, ':=' gives typed JSON.")
@click.option("--prefix", "-p", default=None, help="Human-readable prefix; it does not change the ID.")
@click.option("--separator", "-s", default="-", show_default=True, help="Between prefix and UUID.")
@click.option("--form", "-f", type=click.Choice(TEXT_FORMS), default="string",
              show_default=True, help="Text form of the printed ID.")
@id_options
@config_option("ids")
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
    resolved = resolve_ids(config_path, entity_type, id_flags(namespace, salt, scheme), use_env)
    config = resolved.config
    values = parse_positional(args)
    kwargs = parse_assignments(attrs)
    if resolved.key and (values or set(kwargs) != set(resolved.key)):  # else an ID no writer stores
        unknown, missing = sorted(set(kwargs) - set(resolved.key)), [k for k in resolved.key if k not in kwargs]
        said = [f"{len(values)} positional value{'s' if len(values) > 1 else ''}" if values else "",
                f"not key fields: {', '.join(unknown)}" if unknown else "",
                f"missing: {', '.join(missing)}" if missing else ""]
        raise click.UsageError(f"{resolved.file} [types.{entity_type}] declares key = {list(resolved.key)}: give "
                               f"exactly those with -a FIELD=VALUE ({'; '.join(filter(None, said))})")
    ident = UUIDGenerator(config).generate(entity_type, *values, **kwargs)
    text = cast(str, encode(ident, form))  # TEXT_FORMS: never bytes
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


def _json_forms(ident: uuid.UUID) -> dict[str, Any]:
    """Every form, with the version a number (or null), as ``generate --json`` gives it; the int
    form stays text (a JSON number loses digits past 2**53 in most readers)."""
    forms: dict[str, Any] = dict(all_forms(ident))
    forms["version"] = int(forms["version"]) if forms["version"].isdigit() else None
    return forms


def _decode_cmd(value: str, form: str | None, as_json: bool, fit: str | None = None) -> None:
    ident = decode(value, form)
    detected = form or detect_form(value)
    if as_json:
        emit_json({"input_form": detected, **_json_forms(ident), **({"configuration": fit} if fit else {})})
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


@click.command("decode", context_settings=CONTEXT)
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


@click.command(context_settings=CONTEXT)
@click.argument("value")
@click.option("--form", type=_FORM_CHOICE, default=None, help="Force the input form.")
@id_options
@config_option("ids")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect(value: str, form: str | None, namespace: str | None, salt: str | None, scheme: str | None,
            use_env: bool, config_path: str | None, as_json: bool) -> None:
    """Every form, version and variant of a UUID in any form, and whether its version is the one
    the configuration in use gives (keyed v8 or v5)."""
    resolved = resolve_ids(config_path, None, id_flags(namespace, salt, scheme), use_env, need_salts=False)
    _decode_cmd(value, form, as_json, _fits(value, form, resolved.config, resolved.file))


@click.command("encode", context_settings=CONTEXT)
@click.argument("value")
@click.option("--to", "form", type=click.Choice(TEXT_FORMS), default=None,
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
        emit_json(_json_forms(ident))
    else:
        out.print(_forms_table(ident, None))


@click.command(context_settings=CONTEXT)
@click.argument("prefixed_id")
@click.option("--separator", "-s", default="-", show_default=True, help="Separator between prefix and UUID.")
def extract(prefixed_id: str, separator: str) -> None:
    """Print the UUID inside a prefixed ID such as INV-EUR-645c67f9-... ."""
    click.echo(str(extract_uuid_from_prefixed(prefixed_id, separator)))

