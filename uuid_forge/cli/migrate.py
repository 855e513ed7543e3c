"""``migrate``: move existing entries to deterministic IDs by expand and contract (uuid_forge.migration).

Subcommands ``plan``, ``expand``, ``verify``, ``contract``, ``rollback`` and ``status``; each phase
takes ``--dry-run``, ``--json``, ``--plan NAME``, ``--types``, ``--stores`` and shows a progress
bar on a terminal. Exit codes: 0 done, 1 verify failed, 2 refused or stopped on listed entries
(or bad input). Old entries not named by a UUID are shown masked (another application's key names
may be personal data); IDs are shown as they are.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from .. import metrics, migration
from ..forge import Forge
from ..migration import COLLISION_RULES, Outcome
from ..migrationmap import STATES
from ..settings import ForgeSettings, load_settings
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, existing_config
from .progress import progress_bar

__all__ = ["migrate"]

#: problems listed on the terminal at most (all of them with --json)
SHOWN_PROBLEMS = 50


@contextlib.contextmanager
def _quiet_entries() -> Iterator[None]:
    """The stores' per-entry warnings (an entry that cannot be read, named by its stored key) are
    silenced while a phase runs: the phase lists those entries itself, their names masked, and an
    old entry's raw key may be another application's data."""
    adapters = logging.getLogger("uuid_forge.adapters")
    level = adapters.level
    adapters.setLevel(logging.ERROR)
    try:
        yield
    finally:
        adapters.setLevel(level)


def _open(path: str) -> tuple[Forge, ForgeSettings]:
    settings = load_settings(existing_config(path))
    forge = Forge.from_settings(settings)
    metrics.attach(forge)
    return forge, settings


def _split(values: tuple[str, ...]) -> list[str] | None:
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    return names or None


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        config_option(),
        click.option("--plan", "plan_name", default=None, metavar="NAME",
                     help="The migration plan (default: [migrate] plan, else 'default')."),
        click.option("--types", multiple=True, metavar="TYPE[,TYPE]",
                     help="Only these entity types (default: every [types.NAME] with key fields)."),
        click.option("--stores", multiple=True, metavar="STORE[,STORE]", help="Only these stores (default: all)."),
        click.option("--dry-run", is_flag=True, help="Count what would happen; change nothing."),
        click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout."),
        click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
                     help="Entries per batch (default: [write] batch_size)."),
    )):
        f = option(f)
    return f


def _show(outcome: Outcome, as_json: bool) -> int:
    code = 1 if outcome.passed is False else 2 if outcome.stopped else 0
    if as_json:
        emit_json(outcome.to_dict())
        return code
    title = f"migrate {outcome.phase} (plan {outcome.plan})" + (": dry run, nothing changed" if outcome.dry_run else "")
    columns: list[str] = []
    for counts in outcome.counts.values():
        columns += [k for k in counts if k not in columns]
    table = Table(header_style="bold", title=title)
    table.add_column("store/type")
    for c in columns:
        table.add_column(c, justify="right")
    for place, counts in sorted(outcome.counts.items()):
        table.add_row(Text(place), *(str(counts.get(c, 0)) for c in columns))
    out.print(table)
    for p in outcome.problems[:SHOWN_PROBLEMS]:
        err.print(f"{p['store']}/{p['type']} {p['entry']}: {p['problem']}: {p['reason']}", markup=False)
    if len(outcome.problems) > SHOWN_PROBLEMS:
        err.print(f"... and {len(outcome.problems) - SHOWN_PROBLEMS} more (--json lists them all)", markup=False)
    if outcome.passed is not None:
        out.print("verify: passed (contract may run)" if outcome.passed else "verify: FAILED", markup=False)
    if outcome.stopped:
        err.print(f"uuid-forge: {outcome.stopped}", markup=False)
    return code


#: the phases in the order they run: ``migrate --help`` lists them so, not alphabetically
ORDER = ("plan", "expand", "verify", "contract", "rollback", "status")
STEPS = "plan -> expand -> verify -> contract"


class _Phases(click.Group):
    """A group that lists its commands in workflow order (:data:`ORDER`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER))


@click.group(cls=_Phases, context_settings=CONTEXT)
def migrate() -> None:
    """Move existing entries from random IDs (serials, version-4 UUIDs, ObjectIds) to deterministic
    ones in every store, by expand and contract: plan -> expand -> verify -> contract (or rollback
    before contract). Every step before contract can be undone. See docs/migration.md.

    \b
    The workflow (each phase takes -c FILE, --dry-run, --json, --plan NAME, --types, --stores):
      uuid-forge migrate plan --dry-run      # counts per store and type; nothing written
      uuid-forge migrate plan                # old ID -> new ID, recorded in the source
      uuid-forge migrate expand --dry-run
      uuid-forge migrate expand              # new copies beside the old entries; nothing deleted
      uuid-forge migrate verify              # exit 0: passed; exit 1: fix what it lists, verify again
      uuid-forge migrate contract --dry-run  # what the last step would delete
      uuid-forge migrate contract --max-delete 100%   # deletes the old entries proven mapped

    \b
    Undo instead of contract (the old entries were never touched):
      uuid-forge migrate rollback            # removes only the new copies expand created, if unchanged
      uuid-forge migrate expand              # later, to start again

    \b
    Killed halfway (Ctrl-C, a deploy, kill -9)? Run the same phase again: each batch's end state
    is in the mapping, so a re-run skips what is done and redoes the one batch in flight.
      uuid-forge migrate status              # where the plan stands
    """


@migrate.command("plan", context_settings=CONTEXT)
@_common
@click.option("--leave-unmapped", is_flag=True,
              help="Entries without usable key fields (another application's) are left exactly as they are.")
@click.option("--on-collision", type=click.Choice(COLLISION_RULES), default="fail", show_default=True,
              help="Two old entries reaching one new ID: stop, or map the first (by old ID) and leave the others.")
def plan_cmd(config_path: str, plan_name: str | None, types: tuple[str, ...], stores: tuple[str, ...], dry_run: bool,
             as_json: bool, batch_size: int | None, leave_unmapped: bool, on_collision: str) -> None:
    """Read every store's entries and record old ID -> new ID in the source; nothing else is written.

    Step 1 of plan -> expand -> verify -> contract. Planning again before expand updates the
    mapping; stopped entries (unmapped, collisions) are listed, exit 2.

    \b
    Examples:
      uuid-forge migrate plan --dry-run          # entries, to map, unmapped, collisions per store/type
      uuid-forge migrate plan --leave-unmapped   # another application's entries stay as they are
      uuid-forge migrate expand                  # next
    """
    forge, settings = _open(config_path)
    with forge, _quiet_entries(), progress_bar("planning", None, not as_json) as advance:
        outcome = migration.plan(forge, settings.migrate, plan_name=plan_name, types=_split(types),
                                 stores=_split(stores), dry_run=dry_run, leave_unmapped=leave_unmapped,
                                 on_collision=on_collision, batch_size=batch_size, progress=advance)
    raise click.exceptions.Exit(_show(outcome, as_json))


def _phase(name: str, run: Callable[..., Outcome], help_text: str, **extra: Any) -> click.Command:
    @click.command(name, context_settings=CONTEXT, help=help_text)
    @_common
    def command(config_path: str, plan_name: str | None, types: tuple[str, ...], stores: tuple[str, ...],
                dry_run: bool, as_json: bool, batch_size: int | None, **more: Any) -> None:
        forge, settings = _open(config_path)
        with forge, _quiet_entries(), progress_bar(name, None, not as_json) as advance:
            outcome = run(forge, settings.migrate, plan_name=plan_name, types=_split(types), stores=_split(stores),
                          dry_run=dry_run, batch_size=batch_size, progress=advance, **more)
        raise click.exceptions.Exit(_show(outcome, as_json))
    return command


expand_cmd = _phase("expand", migration.expand, f"""Write each mapped entity under its new ID beside the old entry
    (references rewritten); nothing is deleted.

    Step 2 of {STEPS}. Resumable: killed halfway, run it again; the one batch in flight
    is written again with the same data, no duplicate.

    \b
    Examples:
      uuid-forge migrate expand --dry-run        # what would be written, per store and type
      uuid-forge migrate expand --batch-size 500
      uuid-forge migrate verify                  # next
      uuid-forge migrate rollback                # or undo: removes what expand created
    """)
verify_cmd = _phase("verify", migration.verify, f"""Read back every new copy, resolve every reference, run the audit;
    a pass opens contract.

    Step 3 of {STEPS}. Exit 0: passed, recorded with the mapping's digest; exit 1:
    failed, what failed is listed; fix it (or plan and expand again) and verify again.

    \b
    Examples:
      uuid-forge migrate verify
      uuid-forge migrate verify --json           # every problem, not only the first 50
      uuid-forge migrate contract --dry-run      # next
    """)
rollback_cmd = _phase("rollback", migration.rollback, f"""Before contract: remove the new copies expand created (if
    unchanged); old data untouched.

    Instead of the last step of {STEPS}: refused once contract has started. New
    copies that were there before expand, or changed since, are left and listed.

    \b
    Examples:
      uuid-forge migrate rollback --dry-run      # what would be removed
      uuid-forge migrate rollback
      uuid-forge migrate expand                  # later, to start again
    """)
contract_cmd = click.option(
    "--max-delete", default=None, metavar="N|P%",
    help="Refuse to run when more old entries of one store and type than this would be deleted (default: 10% of "
         "the entries the plan found there, as repair).")(
    _phase("contract", migration.contract, f"""After a passing verify of this exact plan: delete the old entries
    proven mapped.

    Step 4 of {STEPS}, the last: it cannot be undone, and rollback is refused from
    its first run on. Refused (exit 2) unless verify passed on this mapping. Resumable.

    \b
    Examples:
      uuid-forge migrate contract --dry-run              # what would be deleted, per store and type
      uuid-forge migrate contract --max-delete 100%      # a full migration deletes nearly every old entry
      uuid-forge migrate status                          # afterwards
    """))


@migrate.command("status", context_settings=CONTEXT)
@config_option()
@click.option("--plan", "plan_name", default=None, metavar="NAME", help="The migration plan.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def status_cmd(config_path: str, plan_name: str | None, as_json: bool) -> None:
    """Where the plan stands: mappings per store, type and state; checkpoints; the last verify.

    Between any two steps of plan -> expand -> verify -> contract, or after a phase was
    killed: a re-run of that phase continues from here.

    \b
    Examples:
      uuid-forge migrate status
      uuid-forge migrate status --plan 2026-ids --json
    """
    forge, settings = _open(config_path)
    with forge:
        info = migration.status(forge, settings.migrate, plan_name=plan_name)
    if as_json:
        emit_json(info)
        return
    if not info["planned"]:
        out.print(f"plan {info['plan']}: not made (run 'uuid-forge migrate plan')", markup=False)
        return
    states = [s for s in STATES if any(s in c for c in info["counts"].values())]
    table = Table(header_style="bold", title=f"migrate plan {info['plan']} (made {info['planned_at']})")
    table.add_column("store/type")
    for s in states:
        table.add_column(s, justify="right")
    for place, counts in info["counts"].items():
        table.add_row(Text(place), *(str(counts.get(s, 0)) for s in states))
    out.print(table)
    verified = info["verified"]
    out.print("verify: " + ("never run" if not verified else
                            f"{'passed' if verified['passed'] else 'failed'} at {verified['at']}"), markup=False)
    if info["contract_started"]:
        out.print("contract: started (rollback is no longer possible)", markup=False)


for _command in (expand_cmd, verify_cmd, contract_cmd, rollback_cmd):
    migrate.add_command(_command)
