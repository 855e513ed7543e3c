"""``adapters`` and ``stores``: which store adapters exist, and whether the configured stores answer."""

from __future__ import annotations

import difflib
from typing import Any

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import ConfigError, UUIDForgeError
from ..options import options_rows
from ..registry import BUILTIN, adapter_class, available, known_schemes
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, open_forge

__all__ = ["adapters", "stores"]


@click.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--options", "options_of", metavar="NAME", default=None,
              help="Print the options of one adapter (a name from the list, or a URL scheme).")
def adapters(as_json: bool, options_of: str | None) -> None:
    """List every store adapter, whether its driver is installed, and what to install.

    Third-party adapters appear here too, from the 'uuid_forge.adapters' entry-point group.
    With --options NAME: the options that adapter reads from its URL query or keywords.
    """
    if options_of is not None:
        _print_options(options_of, as_json)
        return
    rows = available()
    if as_json:
        emit_json(rows)
        return
    # the extra's name, not the whole pip command, so the table fits 80 columns (--json has the command)
    table = Table(header_style="bold", caption='install an extra with: pip install "uuid-forge[EXTRA]"',
                  caption_justify="left")
    for col in ("adapter", "installed", "extra"):
        table.add_column(col, no_wrap=True)
    table.add_column("URL schemes", overflow="fold")
    table.add_column("stores the ID as", overflow="fold")
    for r in rows:
        extra = r["install"].partition("[")[2].partition("]")[0] or r["install"]
        table.add_row(Text(r["name"]), "yes" if r["installed"] else "[red]no[/]", escape(extra),
                      Text(", ".join(r["schemes"])), escape(r["stores_id_as"]))
    out.print(table)


def _print_options(name: str, as_json: bool) -> None:
    """The option table of one adapter: name, type, default, doc."""
    cls = adapter_class(_scheme_for(name))
    rows = options_rows(cls)
    if as_json:
        emit_json({"adapter": cls.name, "options": rows, "driver_query": cls.driver_query or None,
                   "driver_keywords": cls.driver_keywords or None})
        return
    table = Table(header_style="bold", title=f"{cls.name} options (URL query or keyword; a keyword wins)")
    table.add_column("option", no_wrap=True)
    table.add_column("type", overflow="fold")
    table.add_column("default", no_wrap=True)
    table.add_column("what it is for", overflow="fold")
    for r in rows:
        label = r["name"] + "".join(f" (alias {a})" for a in r["aliases"])
        table.add_row(escape(label), escape(r["type"]), escape(r["default"]), escape(r["doc"]))
    out.print(table)
    for label, where in (("other URL query parameters go to", cls.driver_query),
                         ("other keyword arguments go to", cls.driver_keywords)):
        if where:
            out.print(escape(f"{label} {where.replace('`', '')}"))


def _scheme_for(name: str) -> str:
    """A URL scheme for an adapter named as in `uuid-forge adapters` (or by its class's name, or a scheme)."""
    key = name.strip().lower()
    for spec in BUILTIN:
        if key == spec.name:
            return spec.schemes[0]
    if key in known_schemes():
        return key
    for spec in BUILTIN:  # the adapter's own name: sql, filesystem
        if key == spec.target.rpartition(".")[2].partition(":")[0]:
            return spec.schemes[0]
    names = sorted({spec.name for spec in BUILTIN} | set(known_schemes()))
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"--options {name!r}: no such adapter.{hint} Known: {', '.join(names)}")


@click.command(context_settings=CONTEXT)
@config_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stores(config_path: str, as_json: bool) -> None:
    """Show each configured store: role, masked URL, reachable or not, and journal backlog.

    Exit 0 when the source and every required store answer (an optional store may be down), 2
    when one of them does not: a health check for a scheduler."""
    with open_forge(config_path) as forge:
        pending = forge.pending()
        rows: list[dict[str, Any]] = []
        for h in forge.stores:
            try:
                h.adapter.probe()
                reach = "yes"
            except UUIDForgeError as e:
                reach = f"no: {e}"
            rows.append({"name": h.name, "role": h.role, "url": h.adapter.url(), "adapter": h.adapter.name,
                         "reachable": reach == "yes", "error": None if reach == "yes" else reach[4:],
                         "pending": pending.get(h.name, 0)})
    if as_json:
        emit_json(rows)
    else:
        # the (masked) URLs in the caption: a narrow terminal cuts no database number or option
        table = Table(header_style="bold", caption=escape("\n".join(f"{r['name']}: {r['url']}" for r in rows)),
                      caption_justify="left")
        for col in ("store", "role", "adapter", "reachable", "pending"):
            table.add_column(col)
        for r in rows:
            table.add_row(Text(r["name"]), r["role"], Text(r["adapter"]),
                          "[green]yes[/]" if r["reachable"] else f"[red]no[/] {escape(r['error'] or '')}",
                          str(r["pending"]))
        out.print(table)
    down = [r["name"] for r in rows if not r["reachable"] and r["role"] != "optional"]
    if down:  # a health check a scheduler can trust: a source or required store that fails is an error
        err.print(f"uuid-forge: error: not reachable: {', '.join(down)} (the source or a required store)",
                  highlight=False, markup=False)
        raise click.exceptions.Exit(2)
