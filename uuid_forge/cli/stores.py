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
    # the extra's name, not the whole pip command, so the table fits 80 columns (--json has the command)
    table = Table(header_style="bold", caption='install an extra with: pip install "uuid-forge[EXTRA]"',
                  caption_justify="left")
    for col in ("adapter", "installed", "extra"):
        table.add_column(col, no_wrap=True)
    table.add_column("URL schemes", overflow="fold")
    table.add_column("stores the ID as", overflow="fold")
    for r in rows:
        extra = r["install"].partition("[")[2].partition("]")[0] or r["install"]
        table.add_row(r["name"], "yes" if r["installed"] else "[red]no[/]", escape(extra),
                      ", ".join(r["schemes"]), escape(r["stores_id_as"]))
    out.print(table)
