"""``uuid-forge delete --erase``: the erasure with proof (uuid_forge.erasure) on the command line.

The ``delete`` command (uuid_forge.cli.delete) parses which entities to delete (key fields, IDs,
``--jsonl``); with ``--erase`` it hands them here instead of to a plain delete. Kept apart so the
delete command stays one concept and this one owns the report: text, ``--json`` and the proof file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click
from rich.markup import escape

from ..erasure import ErasureReport, erase
from ..forge import Forge
from ..privatefile import check_folder, refuse_link
from .app import emit_json, err, out

__all__ = ["erase_options", "run_erase"]

F = TypeVar("F", bound=Callable[..., Any])


def erase_options(command: F) -> F:
    """The options ``delete`` takes for an erasure: ``--erase`` and ``--report FILE``."""
    command = click.option(
        "--report", "report_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
        help="With --erase: also keep the erasure report in FILE (0600; JSON when FILE ends in .json, else text), "
             "the proof to keep. Keys are masked in it.")(command)
    return click.option(
        "--erase", "erase_", is_flag=True,
        help="Erase, not only delete: also scrub the entities from the journal, read every store back to prove "
             "they are gone, and report per store what was removed and what the store still keeps (an append-only "
             "stream, unmerged segments, dead rows, backups) and why. Exit 0 only when every store proved absence. "
             "See docs/erasure.md.")(command)


def run_erase(forge: Forge, items: Iterable[Any], *, as_json: bool = False, report_path: str | None = None,
              force: bool = False) -> ErasureReport:
    """Erase ``items`` (what ``Forge.delete_many`` takes), print the report, keep it in
    ``report_path``; exit 1 (click) when some store still holds them or could not be read back."""
    if report_path:  # checked before anything is deleted: a report that cannot be written is no proof
        refuse_link(report_path, "--report")
        check_folder(report_path, "--report")
    report = erase(forge, items, force=force)
    if report_path:
        report.write(report_path)
    if as_json:
        emit_json({**report.to_dict(), "summary": str(report), "exit_code": 0 if report.ok else 1})
    else:
        out.print(escape(report.to_text()), highlight=False)
        if report_path:
            err.print(f"erasure report kept in {escape(report_path)} (mode 0600)", highlight=False)
        out.print(("[green]" if report.ok else "[red]") + escape(str(report)) + "[/]", highlight=False)
    if not report.ok:
        raise click.exceptions.Exit(1)
    return report
