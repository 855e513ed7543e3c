"""Store commands: adapters (more come with write-through and audit)."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from ..registry import available
from .app import CONTEXT, cli, emit_json, out


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def adapters(as_json: bool) -> None:
    """List every store adapter, whether its driver is installed, and what to install.

    Third-party adapters appear here too, from the 'uuid_forge.adapters' entry-point group.
    """
    rows = available()
    if as_json:
        emit_json(rows)
        return
    table = Table(header_style="bold")
    for col in ("adapter", "URL schemes", "installed", "stores the ID as", "install"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], ", ".join(r["schemes"]), "yes" if r["installed"] else "[red]no[/]",
                      escape(r["stores_id_as"]), escape(r["install"]))
    out.print(table)
