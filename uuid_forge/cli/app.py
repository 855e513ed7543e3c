"""The command group and what every command prints with: the consoles and JSON output.

Why the group holds no command: each command module imports the group's settings from here, and
:mod:`uuid_forge.cli.commands` adds the commands to it, so no module imports one that imports it.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console, ConsoleDimensions

__all__ = ["CONTEXT", "NOT_A_TERMINAL_WIDTH", "cli", "emit_json", "err", "out"]

#: the width a table gets when its output is no terminal (cron, a pipe, a file) and COLUMNS is not
#: set: wide enough that no store name, status or header is cut to "cach…"
NOT_A_TERMINAL_WIDTH = 1000


class _Console(Console):
    """A console that, writing to no terminal, never cuts a table to 80 columns: a cron mail or a
    piped report must hold the full text. A terminal, or COLUMNS set, keeps rich's width."""

    @property
    def size(self) -> ConsoleDimensions:
        size = Console.size.fget(self)  # type: ignore[attr-defined]
        columns = self._environ.get("COLUMNS")
        if self._width is None and not self.is_terminal and not (columns and columns.isdigit()):
            return ConsoleDimensions(NOT_A_TERMINAL_WIDTH, size.height)
        return size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


#: no highlighting and no :emoji: codes: names, URLs and values print as they are (markup is escaped
#: where they are printed: rich.markup.escape in a line, rich.text.Text in a table cell)
out = _Console(highlight=False, soft_wrap=True, emoji=False)
err = _Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

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
