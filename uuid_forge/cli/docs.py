"""docs/cli.md, generated from the CLI itself: ``python -m uuid_forge.cli.docs docs/cli.md``.

Why generated: the page is the reference for every command, option and exit code, and a page
written by hand drifts from the code. tests/test_cli_docs.py fails when the file and the CLI
disagree; run this module to bring the file up to date.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator

import click

from ..precedence import CONFIG_ENV, DEBUG_ENV
from .commands import cli
from .configuration import DEFAULT_CONFIG

__all__ = ["EXIT_CODES", "render"]

#: one table for every command: (command, 0, 1, 2)
EXIT_CODES: tuple[tuple[str, str, str, str], ...] = (
    ("audit", "every store audited and consistent (after --repair --apply: the re-audit is)",
     ("findings (missing, orphan, stale, malformed, unproven, a stray type only another store holds), or an "
      "ID configuration that differs from the one the source was written with (a salt missing from cron's "
      "environment)"),
     ("could not finish: an optional store not answering (the others are audited and reported), the source "
      "or a required store down, an --entity neither the configuration nor a store knows or that a store "
      "refuses (named), a refused repair, bad input")),
    ("write", "every required store written (an optional one may be journaled)", "-",
     ("a required store not written (kept in the journal), a record refused because its entity was deleted "
      "(a tombstone: --recreate writes it), a bad input line, bad configuration")),
    ("replay", "nothing left pending in the journal", "something still pending (a store still down)",
     "error (bad configuration, unreadable journal)"),
    ("delete", ("the source and every required store deleted (an optional one may be journaled; an entity not "
                "in the source is left alone, with a warning)"),
     "the source or a required store keeps an entry it could not prove ours (left, named)",
     "the source or a required store could not delete (a required one: owed in the journal), bad input"),
    ("delete --erase", "every store read back and none holds the entities; the journal scrubbed",
     "a store still holds one (down: journaled, not proven ours, no delete) or could not be read back",
     "could not start: bad input or configuration, a --report file that cannot be written"),
    ("stores", "the source and every required store answer", "-",
     "the source or a required store does not answer (an optional one may be down)"),
    ("validate", "configuration ok (notes on stderr)", ("weak: no salt or secret, a declared type's salt "
                                                         "variable unset, or any warning or check that is off "
                                                         "with --strict"),
     ("invalid configuration: a store check failed (an unknown option, a missing column, an index mapping, "
      "a store that does not answer, a type's ID configuration that differs from the one the source recorded)")),
    ("ids status / ids accept", "every marker matches / recorded", "a marker differs / would change (no --yes)",
     "error"),
    ("sql postgres", "printed; installed and checked (--install); every case passes (--check)",
     "--check: a case gives another answer than the Python library",
     ("not PostgreSQL, not UTF8, an extension or schema the user may not create (with the SQL a DBA runs), "
      "the functions not installed (--check), the server not reachable: nothing installed")),
    ("demo", "the final audit is consistent", "it is not", "error"),
    ("migrate plan / expand / contract / rollback", "the phase finished (with --dry-run: would finish)", "-",
     ("refused (contract before a passing verify of this plan, rollback after contract, --max-delete exceeded) or "
      "stopped on listed entries (unmapped, collisions, unresolved references, conflicts), bad input")),
    ("migrate verify", "passed: contract may run", "failed (listed): contract stays refused",
     "refused (no plan), bad input or error"),
    ("every other command", "done", "-", "bad input or error"),
)


def _commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group, info_name="uuid-forge")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        yield f"{prefix}{name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")


def _usage(name: str, command: click.Command) -> str:
    ctx = click.Context(command, info_name=f"uuid-forge {name}")
    # click 8.2+ prints an optional subcommand as [COMMAND], earlier releases as COMMAND: the page
    # must not depend on which click the reader installed
    return " ".join(command.collect_usage_pieces(ctx)).replace("[COMMAND]", "COMMAND")


def _option_row(param: click.Parameter) -> str | None:
    if not isinstance(param, click.Option) or param.hidden:
        return None
    names = ", ".join(f"`{n}`" for n in [*param.opts, *param.secondary_opts])
    help_text = (param.help or "").replace("\n", " ").replace("|", "\\|")
    extra = []
    if param.envvar:
        extra.append(f"env: `{param.envvar}`")
    if param.show_default and param.default not in (None, False, ()):
        extra.append(f"default: `{param.default}`")
    if isinstance(param.type, click.Choice):
        extra.append("one of: " + ", ".join(f"`{c}`" for c in param.type.choices))
    return f"| {names} | {help_text}{' (' + '; '.join(extra) + ')' if extra else ''} |"


def render() -> str:
    """The whole page, deterministic: the same CLI gives the same text."""
    lines = ["# Command line reference", "",
             ("<!-- Generated by `python -m uuid_forge.cli.docs docs/cli.md` from the CLI itself; "
              "tests/test_cli_docs.py fails when this file and the CLI disagree. Do not edit by hand. -->"), "",
             (f"Configuration for every command that uses IDs or stores: `-c FILE`, else `${CONFIG_ENV}`, "
              f"else `./{DEFAULT_CONFIG}`; each value from the first of a flag, the environment, the file, the "
              "default (see [configuration.md](configuration.md); `uuid-forge config` shows where each came from). "
              f"`demo` reads only `-c`, never `${CONFIG_ENV}`: it writes sample data."), "",
             "## Exit codes", "", "| command | 0 | 1 | 2 |", "|---|---|---|---|"]
    lines += [f"| `{c}` | {a} | {b} | {d} |" for c, a, b, d in EXIT_CODES]
    lines += ["", ("Every command: 130 when interrupted; errors are one line on stderr, never a traceback "
                   f"(`{DEBUG_ENV}=1` shows one)."), "", "## Commands", ""]
    for name, command in _commands(cli):
        lines += [f"### `uuid-forge {name}`", "", f"```\nuuid-forge {name} {_usage(name, command)}\n```", ""]
        lines += [inspect.cleandoc(command.help or "").replace("\b\n", ""), ""]
        rows = [r for r in (_option_row(p) for p in command.params) if r]
        args = [p for p in command.params if isinstance(p, click.Argument)]
        if args:
            lines += ["Arguments: " + ", ".join(f"`{p.human_readable_name}`" for p in args), ""]
        if rows:
            lines += ["| option | what it does |", "|---|---|", *rows, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if not args:
        sys.stdout.write(text)
        return 0
    with open(args[0], "w", encoding="utf-8") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
