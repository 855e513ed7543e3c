"""``uuid-forge demo``: the main job on embedded stores, or on real servers with --config."""

from __future__ import annotations

import os

import click
from rich.markup import escape

from .. import demo as demo_job
from ..forge import Forge
from .app import CONTEXT, emit_json, out
from .configuration import config_option
from .progress import progress_bar
from .reports import audit_table, per_store, write_report_table

__all__ = ["demo"]


@click.command(context_settings=CONTEXT)
@config_option("demo")
@click.option("--dir", "directory", default=None, type=click.Path(file_okay=False),
              help="Where the embedded stores live [default: a temp dir, removed afterwards].")
@click.option("--users", default=1000, show_default=True, help="Sample users to write (at least 10).")
@click.option("--orders", default=500, show_default=True, help="Sample orders to write.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def demo(config_path: str | None, directory: str | None, users: int, orders: int, as_json: bool) -> None:
    """Write-through + audit, end to end: write a sample dataset to every store, plant one
    missing, orphan, stale and malformed record, audit, repair, and audit again.

    With no options it needs no server: SQLite is the source of truth, beside a file store and
    a memory store. Exit 0 when the final audit is consistent.
    """
    if users < 10 or orders < 0:
        raise click.BadParameter("--users must be at least 10 and --orders at least 0")
    tmp = None
    if config_path:
        forge = Forge.from_config(config_path)
        where = f"stores from {config_path}"
    else:
        if directory is None:
            tmp = directory = demo_job.temp_dir()
        directory = os.path.abspath(directory)  # file:// URLs need an absolute root
        os.makedirs(directory, exist_ok=True)
        forge = demo_job.embedded_forge(directory)
        where = f"embedded stores in {directory}" + (" (a temporary folder, removed when the demo ends: keep "
                                                     "the stores with --dir DIR)" if tmp else "")
    say = (lambda _msg: None) if as_json else (lambda msg: out.print(f"[bold cyan]{escape(msg)}[/]"))
    try:
        if not as_json:
            out.print(f"uuid-forge demo on {escape(where)}")
        with progress_bar("writing", users + orders, not as_json) as advance:
            result = demo_job.run_demo(forge, say, users, orders, progress=advance)
        if config_path:
            demo_job.cleanup(forge)
    finally:
        forge.close()
        if tmp:
            demo_job.remove_dir(tmp)
    if as_json:
        emit_json({"ok": result.ok, "write": result.write.to_dict() if result.write else None,
                   "planted": [{"store": s, "class": k, "id": i} for s, k, i in result.planted],
                   "first_audit": result.first_audit.to_dict() if result.first_audit else None,
                   "repaired": {n: dict(c) for n, c in result.repair.repaired.items()} if result.repair else {},
                   "final_audit": result.final_audit.to_dict() if result.final_audit else None})
    else:
        assert result.write and result.first_audit and result.final_audit and result.repair
        out.print(write_report_table(result.write))
        out.print("planted: " + ", ".join(f"{k} in {s}" for s, k, _ in result.planted), markup=False)
        out.print(audit_table(result.first_audit, "audit after planting"))
        out.print(f"repaired: {per_store({n: dict(c) for n, c in result.repair.repaired.items()}) or 'nothing'}",
                  markup=False)
        out.print(audit_table(result.final_audit, "audit after repair"))
        out.print("[green]demo ok: the audit found every planted fault and the repair fixed them[/]" if result.ok
                  else "[red]demo failed: see the tables above[/]")
    if not result.ok:
        raise click.exceptions.Exit(1)
