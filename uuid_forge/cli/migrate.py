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


@click.group(context_settings=CONTEXT)
def migrate() -> None:
    """Move existing entries from random IDs (serials, version-4 UUIDs, ObjectIds) to deterministic
    ones in every store: plan, expand, verify, contract (or rollback before contract).
    See docs/migration.md."""


@migrate.command("plan", context_settings=CONTEXT)
@_common
@click.option("--leave-unmapped", is_flag=True,
              help="Entries without usable key fields (another application's) are left exactly as they are.")
@click.option("--on-collision", type=click.Choice(COLLISION_RULES), default="fail", show_default=True,
              help="Two old entries reaching one new ID: stop, or map the first (by old ID) and leave the others.")
def plan_cmd(config_path: str, plan_name: str | None, types: tuple[str, ...], stores: tuple[str, ...], dry_run: bool,
             as_json: bool, batch_size: int | None, leave_unmapped: bool, on_collision: str) -> None:
    """Read every store's entries and record old ID -> new ID in the source."""
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


expand_cmd = _phase("expand", migration.expand,
                    "Write each mapped entity under its new ID beside the old entry (references rewritten); "
                    "nothing is deleted. Resumable.")
verify_cmd = _phase("verify", migration.verify,
                    "Read back every new copy, resolve every reference, run the audit; a pass opens contract.")
rollback_cmd = _phase("rollback", migration.rollback,
                      "Before contract: remove the new copies expand created (if unchanged); old data untouched.")
contract_cmd = click.option(
    "--max-delete", default=None, metavar="N|P%",
    help="Refuse to run when more old entries of one store and type than this would be deleted (default: 10% of "
         "the entries the plan found there, as repair).")(
    _phase("contract", migration.contract,
           "After a passing verify of this exact plan: delete the old entries proven mapped."))


@migrate.command("status", context_settings=CONTEXT)
@config_option()
@click.option("--plan", "plan_name", default=None, metavar="NAME", help="The migration plan.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def status_cmd(config_path: str, plan_name: str | None, as_json: bool) -> None:
    """Where the plan stands: mappings per store, type and state; checkpoints; the last verify."""
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
