"""``uuid-forge journal``: what the journal still owes each store, and its dead letters.

A dead letter is a record a store refused for good (a constraint, data or size violation). It
left the pending list so that one poison record cannot block a store's replay; this command
lists them (never their data), puts them back for replay once the cause is fixed, or forgets them.
Only the journal is opened: no store is contacted.

``-c/--config`` names the configuration (and so the journal) before or after the subcommand
(``journal -c B.toml drop`` is ``journal drop -c B.toml``): once a file is named, no subcommand
falls back to ``./uuid-forge.toml``'s journal, and two different names are refused.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import click
from click.core import ParameterSource
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..encodings import decode
from ..errors import ConfigError, DecodeError, ValidationError
from ..journal import Journal
from ..settings import ForgeSettings, load_settings
from .app import CONTEXT, emit_json, out
from .configuration import config_option, existing_config

__all__ = ["journal"]


#: how explicitly a ``-c`` value was chosen: on the command line beats the environment beats the default
_RANK = {ParameterSource.COMMANDLINE: 0, ParameterSource.ENVIRONMENT: 1}


def _settings(config_path: str) -> ForgeSettings:
    return load_settings(existing_config(config_path))


def _chosen_config(config_path: str) -> str:
    """The config file a journal subcommand acts on: its own ``-c`` or the group's, whichever was
    given (command line before environment before default).

    Why: ``journal -c B.toml drop`` once dropped the dead letters of ``./uuid-forge.toml``'s
    journal, because the subcommand's own ``-c`` default won over the group's ``-c``. Both places
    must name the same configuration; two different files named on the command line are refused.
    """
    ctx = click.get_current_context()
    group = ctx.parent
    if group is None or "config_path" not in group.params:
        return config_path
    given: list[tuple[int, str, str]] = []
    for where, at in ((f"journal {ctx.info_name} -c", ctx), ("journal -c", group)):
        source = at.get_parameter_source("config_path")
        given.append((_RANK.get(source, 2) if source is not None else 2, where, at.params["config_path"]))
    (own_rank, own_where, own), (group_rank, group_where, of_group) = given
    if own_rank == group_rank == 0 and os.path.realpath(own) != os.path.realpath(of_group):
        raise click.UsageError(f"two configurations named: {of_group!r} ({group_where}) and {own!r} ({own_where}); "
                               "name one, before or after the subcommand")
    return own if own_rank <= group_rank else of_group


@contextlib.contextmanager
def _opened(settings: ForgeSettings) -> Iterator[Journal | None]:
    """The configured journal, closed afterwards; None when it was never created (nothing was
    ever written), so a look at it never creates one."""
    if not os.path.exists(settings.journal_path):
        yield None
        return
    jr = Journal(settings.journal_path, settings.journal_synchronous)
    try:
        yield jr
    finally:
        jr.close()


def _which(settings: ForgeSettings) -> str:
    """The journal file a change goes to and where its path came from ([journal] of which file,
    UUID_FORGE_JOURNAL, or the default), escaped for the console: an operator must see what changes."""
    where = settings.origins.get("journal")
    return escape(f"journal {settings.journal_path}" + (f" ({where})" if where else ""))


def _group_json() -> bool:
    """``journal --json SUBCOMMAND``: the group's --json, which a subcommand must not silently ignore."""
    group = click.get_current_context().parent
    return bool(group is not None and group.params.get("as_json"))


def _store(settings: ForgeSettings, journal: Journal | None, store: str | None) -> str | None:
    """``--store`` checked against the configuration and the journal: a typo must not match nothing."""
    if store is None:
        return None
    known = {s.name for s in settings.stores}
    if journal is not None:
        known |= set(journal.stores_pending()) | set(journal.dead_letter_counts())
    if store not in known:
        raise ConfigError(f"--store {store!r}: no such store in {settings.origin} or the journal "
                          f"(stores: {', '.join(sorted(known)) or 'none'})")
    return store


def _ident(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return decode(value)
    except (DecodeError, ValueError) as err:
        raise ValidationError(f"--id: {err}") from None


@click.group("journal", context_settings=CONTEXT, invoke_without_command=True)
@config_option()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the summary; before dead-letters, its list).")
@click.pass_context
def journal(ctx: click.Context, config_path: str, as_json: bool) -> None:
    """What the journal owes each store (pending) and the records stores refused (dead letters).

    -c/--config may come before or after the subcommand: it names the same configuration, and
    so the same journal, either way (retry and drop print the journal file they change).

    \b
    Examples:
      uuid-forge journal -c uuid-forge.toml                   pending and dead letters per store
      uuid-forge journal dead-letters -c uuid-forge.toml      one line per dead letter (no data)
      uuid-forge journal retry -c uuid-forge.toml --store pg  back to pending, then: uuid-forge replay
      uuid-forge journal drop -c uuid-forge.toml --all --yes  forget them
    """
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(config_path)
    with _opened(settings) as jr:
        exists = jr is not None
        pending = jr.pending_counts() if jr else {}
        dead = jr.dead_letter_counts() if jr else {}
    names = [s.name for s in settings.stores] + sorted((set(pending) | set(dead)) - {s.name for s in settings.stores})
    roles = {s.name: "source" if s.source else "required" if s.required else "optional" for s in settings.stores}
    if as_json:
        emit_json({"journal": settings.journal_path, "exists": exists,
                   "stores": {n: {"role": roles.get(n, "not configured"), "pending": pending.get(n, 0),
                                  "dead_letters": dead.get(n, 0)} for n in names}})
        return
    table = Table(header_style="bold", title=escape(f"journal {settings.journal_path}"
                               + ("" if exists else " (not created yet)")))
    for col in ("store", "role", "pending", "dead letters"):
        table.add_column(col, no_wrap=True)
    for n in names:
        table.add_row(Text(n), roles.get(n, "not configured"), str(pending.get(n, 0)),
                      f"[red]{dead[n]}[/]" if dead.get(n) else "0")
    out.print(table)
    if any(pending.values()):
        out.print("pending records are written by: uuid-forge replay")
    if any(dead.values()):
        out.print("dead letters: uuid-forge journal dead-letters (then retry or drop)")


def _filters(f: Any) -> Any:
    f = click.option("--id", "ident", default=None, metavar="UUID", help="Only this entity ID (any UUID form).")(f)
    f = click.option("--store", "-s", "store", default=None, metavar="NAME", help="Only this store.")(f)
    return config_option()(f)


@journal.command("dead-letters", context_settings=CONTEXT)
@_filters
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def dead_letters(config_path: str, store: str | None, ident: str | None, as_json: bool) -> None:
    """List dead letters: store, entity type, ID, reason, attempts, time (never the data)."""
    settings = _settings(_chosen_config(config_path))
    as_json = as_json or _group_json()
    wanted = _ident(ident)
    with _opened(settings) as jr:
        rows = jr.dead_letters(_store(settings, jr, store), wanted) if jr else []
    if as_json:
        emit_json([d.to_dict() for d in rows])
        return
    if not rows:
        out.print("no dead letters")
        return
    # one block per dead letter, not a table: a reason is long and an ID must never be cut
    click.echo(f"{len(rows)} dead letter(s): store, entity type, id, attempts, time; then the store's reason")
    for d in rows:
        click.echo(f"{d.store}  {d.entity_type}  {d.id}  attempts {d.attempts}  {d.to_dict()['time']}")
        click.echo(f"    {d.reason}")


@journal.command("retry", context_settings=CONTEXT)
@_filters
def retry(config_path: str, store: str | None, ident: str | None) -> None:
    """Put dead letters back on the pending list; the next 'uuid-forge replay' tries them again.

    Fix the cause first (a column type, a size limit, a constraint): a record refused again
    becomes a dead letter again. A retried record of the source is owed to the other stores too.
    """
    if _group_json():
        raise click.UsageError("--json: this subcommand prints text only")
    settings = _settings(_chosen_config(config_path))
    with _opened(settings) as jr:
        if jr is None:
            out.print(f"{_which(settings)}: no dead letters (the journal was never created)")
            return
        sources = [s.name for s in settings.stores if s.source]
        also: dict[str, Sequence[str]] | None = {sources[0]: [s.name for s in settings.stores if not s.source]} if sources else None
        n = jr.retry_dead_letters(_store(settings, jr, store), _ident(ident), also=also)
    out.print(f"{_which(settings)}: {n} dead letter(s) back on the pending list"
              + (": run uuid-forge replay" if n else ""))


@journal.command("drop", context_settings=CONTEXT)
@_filters
@click.option("--all", "drop_all", is_flag=True, help="Every dead letter (of --store, if given).")
@click.option("--yes", is_flag=True, help="Confirm: the records will not be written to that store by replay.")
def drop(config_path: str, store: str | None, ident: str | None, drop_all: bool, yes: bool) -> None:
    """Forget dead letters for good (--id ID or --all, with --yes). The data stays in the source;
    an audit shows the store still lacks it."""
    if (ident is None) == (not drop_all):
        raise click.UsageError("give --id ID or --all (one of them)")
    if not yes:
        raise click.UsageError("dropping dead letters forgets records the store never received: add --yes to confirm")
    if _group_json():
        raise click.UsageError("--json: this subcommand prints text only")
    settings = _settings(_chosen_config(config_path))
    with _opened(settings) as jr:
        if jr is None:
            out.print(f"{_which(settings)}: no dead letters (the journal was never created)")
            return
        n = jr.drop_dead_letters(_store(settings, jr, store), _ident(ident))
    out.print(f"{_which(settings)}: {n} dead letter(s) dropped")
