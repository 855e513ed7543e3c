"""How a write report and an audit report print as tables: write, replay, audit and demo share them."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..audit import CLASSES, AuditReport
from ..report import WriteReport

__all__ = ["audit_table", "declare_key_hint", "per_store", "write_report_table"]


def declare_key_hint(entity_type: str) -> str:
    """How an undeclared type's entries become provable ours (write's note, delete's exit 1)."""
    return (f"declare [types.{entity_type}] key = [...] so each write stores its key fields, by which an entry is "
            "proven ours (docs/entity-types.md)")


def per_store(counts: dict[str, Any]) -> str:
    """``{"cache": {"rewritten": 1}}`` or ``{"cache": 1}`` as ``cache: rewritten 1`` / ``cache: 1``:
    what the CLI prints instead of a Python dict."""
    parts = []
    for name, value in counts.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items()) or "nothing"
        parts.append(f"{name}: {value}")
    return "; ".join(parts)


def write_report_table(report: WriteReport, title: str = "write-through", heading: str | None = None) -> Table:
    """Per-store results; the (masked) URLs go in the caption, so a narrow terminal squeezes no figure.
    ``heading`` replaces the title line (``title: N entities in 0.1s``)."""
    table = Table(header_style="bold", title=heading or f"{title}: {report.entities} "
                  f"entit{'y' if report.entities == 1 else 'ies'} in {report.seconds:.2f}s",
                  caption=escape("\n".join(f"{s.name}: {s.url}" for s in report.stores.values())),
                  caption_justify="left")
    # deletes (a delete, or a replay that finished some) get their own columns
    deletes = report.kind == "delete" or any(s.deleted or s.unproven for s in report.stores.values())
    middle = ("deleted", "left unproven") if report.kind == "delete" else \
        ("written", "deleted", "left unproven") if deletes else ("written",)
    # a dry run changed nothing: its figures are what would happen
    header = {"deleted": "would delete", "left unproven": "would leave unproven"} if report.dry_run else {}
    for col in ("store", "role", "status", *middle, "in journal", "retries", "seconds"):
        table.add_column(header.get(col, col), no_wrap=True)
    style = {"ok": "green", "journaled": "yellow", "failed": "red", "not attempted": "yellow"}
    for s in report.stores.values():
        figures = {"written": s.written, "deleted": s.deleted, "left unproven": s.unproven}
        table.add_row(Text(s.name), s.role, Text(s.status_text, style=style[s.status]),
                      *(str(figures[c]) for c in middle), str(s.pending), str(s.retries), f"{s.seconds:.2f}")
    return table


def audit_table(report: AuditReport, title: str) -> Table:
    """Per-store counts of each class, findings in red; foreign entries explained in the caption."""
    table = Table(header_style="bold", title=title)
    table.add_column("store")
    for k in CLASSES:
        table.add_column(k, justify="right")
    for name, counts in report.stores.items():
        cells = [f"[red]{counts[k]}[/]" if k not in ("ok", "foreign") and counts[k] else str(counts[k]) for k in CLASSES]
        table.add_row(Text(name), *cells)
    foreign = {n: c["foreign"] for n, c in report.stores.items() if c["foreign"]}
    if foreign:  # not ours: say so, and that nothing was done to them
        table.caption = ("foreign: entries not written by uuid-forge (other applications' keys, files, documents), "
                         "left alone: never repaired or deleted. " + escape("; ".join(
                             f"{n}: {c} (e.g. {', '.join(report.foreign_samples.get(n, [])[:3])})"
                             for n, c in foreign.items())))
    return table
