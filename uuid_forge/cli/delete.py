"""``delete``: remove entities from every configured store (write-through, journaled, proven ours).

Kept in its own module so that erasure (``--erase``: uuid_forge.cli.erase, uuid_forge.erasure)
is wired here without touching the write commands.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click
from rich.markup import escape

from .. import metrics, tombstones
from ..errors import ValidationError, WriteError
from ..forge import Forge
from ..metrics import metrics_option
from ..report import WriteReport
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, open_forge
from .erase import erase_options, run_erase
from .parsing import parse_assignments
from .progress import progress_bar
from .reports import declare_key_hint, write_report_table

__all__ = ["delete"]


def _lines(stream: IO[bytes], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Delete items from JSON lines: ``{"entity_type": T, "id": UUID}``, ``{"entity_type": T,
    "key": {...}}``, or ``{"entity_type": T, <key fields>...}``. A bad line names its number,
    never its content. Yields (the item's place, ``NAME line N``; the item)."""
    for n, raw in enumerate(stream, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValidationError(f"{name} line {n}: not valid JSON ({getattr(error, 'msg', 'not UTF-8')})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("entity_type"), str):
            raise ValidationError(f"{name} line {n}: expected a JSON object with \"entity_type\" and the key fields, "
                                  "\"key\" or \"id\"")
        if "id" in obj or "key" in obj:
            yield f"{name} line {n}", {k: obj[k] for k in ("entity_type", "id", "key") if k in obj}
        else:
            fields = {k: v for k, v in obj.items() if k != "entity_type"}
            if not fields:
                raise ValidationError(f"{name} line {n}: no key fields, \"key\" or \"id\"")
            yield f"{name} line {n}", {"entity_type": obj["entity_type"], "key": fields}


def _items(forge: Forge, entity_type: str | None, keys: tuple[str, ...], ids: tuple[str, ...],
           jsonl: str | None) -> tuple[list[dict[str, Any]], list[str] | None]:
    """The items to delete, and what an error calls each (a JSONL file's line; None: the options)."""
    if jsonl is not None:
        if entity_type or keys or ids:
            raise click.UsageError("give --jsonl FILE alone, or --entity with --key or --id")
        if jsonl == "-":
            pairs = list(_lines(sys.stdin.buffer, "<stdin>"))
        elif not os.path.isfile(jsonl):
            raise ValidationError(f"--jsonl {jsonl!r}: no such file (use - to read standard input)")
        else:
            with open(jsonl, "rb") as fh:
                pairs = list(_lines(fh, jsonl))
        return [item for _, item in pairs], [place for place, _ in pairs]
    if not entity_type:
        raise click.UsageError("give --entity TYPE with --key FIELD=VALUE (or --id UUID), or --jsonl FILE")
    if keys and ids:
        raise click.UsageError("give the entity's key fields with --key FIELD=VALUE, or its --id, not both")
    if not keys and not ids:
        raise click.UsageError(f"--entity {entity_type}: say which entity: its key fields with --key FIELD=VALUE "
                               "(repeat for each), or its --id UUID")
    if ids:
        return [{"entity_type": entity_type, "id": i} for i in ids], None
    key = parse_assignments(keys, "--key")
    declared = forge.types.get(entity_type)
    if declared is not None and declared.key:
        unknown = sorted(set(key) - set(declared.key))
        if unknown:  # a misspelled field: name it, not only the key field it left out
            raise click.UsageError(f"--key {', '.join(unknown)}: not a key field of entity type {entity_type!r} "
                                   f"(its key fields: {', '.join(declared.key)})")
        return [{"entity_type": entity_type, "data": key}], None
    return [{"entity_type": entity_type, "key": key}], None


def _show(report: WriteReport, as_json: bool, items: list[dict[str, Any]], forge: Forge) -> None:
    if as_json:
        emit_json(report.to_dict())
        return
    if report.not_in_source:  # a typo must not tombstone a future sign-up: said, not failed
        more = report.not_in_source - len(report.not_in_source_ids)
        err.print(f"uuid-forge: warning: {report.not_in_source} entit{'y' if report.not_in_source == 1 else 'ies'} "
                  f"not in the source {forge.source.name} (nothing deleted; no tombstone): "
                  f"{', '.join(report.not_in_source_ids)}{f' and {more} more' if more > 0 else ''}; if another store "
                  "still holds it (the source was cleaned by hand), run the delete again with --force", markup=False)
    if len(items) == 1:  # its ID (the key it came from is never printed: it may be personal data)
        out.print(f"id: {forge.delete_targets(items)[0].id}", markup=False)
    title = "delete (dry run: nothing changed)" if report.dry_run else "delete"
    out.print(write_report_table(report, title))
    for s in report.stores.values():
        for e in s.errors:
            err.print(f"[yellow]{escape(s.name)}[/]: {escape(e)}")
        if s.unproven:
            err.print(f"{s.name}: {s.unproven} entr{'y' if s.unproven == 1 else 'ies'} left: not proven ours "
                      f"({', '.join(s.unproven_ids)}); uuid-forge deletes only what it can prove it wrote",
                      markup=False)


@click.command(context_settings=CONTEXT)
@metrics_option("delete")
@config_option()
@click.option("--entity", "entity_type", default=None, metavar="TYPE", help="The entity type to delete from.")
@click.option("-k", "--key", "keys", multiple=True, metavar="FIELD=TEXT|FIELD:=JSON",
              help="A key field of the entity (repeat for each key field).")
@click.option("--id", "ids", multiple=True, metavar="UUID", help="Delete by ID instead of key (repeatable).")
@click.option("--jsonl", default=None, metavar="FILE|-",
              help="Entities to delete, one JSON object a line: {\"entity_type\": \"user\", \"email\": \"...\"} (its "
                   "key fields), {\"entity_type\": ..., \"key\": {...}} or {\"entity_type\": ..., \"id\": \"UUID\"}; - "
                   "reads standard input.")
@click.option("--dry-run", is_flag=True, help="Say what each store would delete; change nothing.")
@click.option("--force", is_flag=True,
              help="Delete everywhere and tombstone even an entity the source does not hold (its source entry "
                   "was removed by hand while other stores still hold it). Without it such an entity is left alone: "
                   "nothing deleted, no tombstone, a warning.")
@click.option("--purge-expired", is_flag=True,
              help="Remove tombstones older than [write] tombstone_retention (default 90d) from the source; "
                   "with --dry-run, count them.")
@erase_options
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def delete(config_path: str, entity_type: str | None, keys: tuple[str, ...], ids: tuple[str, ...],
           jsonl: str | None, dry_run: bool, force: bool, purge_expired: bool, erase_: bool,
           report_path: str | None, as_json: bool) -> None:
    """Delete entities from every configured store, under their deterministic IDs.

    Order: the journal records the intent, the source of truth deletes first (and keeps a
    tombstone: type, ID and time, no data), then every other store that can delete. Only
    entries proven ours go: in a table, collection, index or key space shared with another
    application, each entry is read first and deleted only when its key fields rebuild its ID;
    the others are left and counted. A store that is down keeps its part in the journal:
    run 'uuid-forge replay' when it is back. A later write of a deleted entity is refused
    unless 'uuid-forge write --recreate'. An entity the source neither holds nor has a
    tombstone for (a mistyped key) is left alone everywhere, with no tombstone, and named in a
    warning; --force deletes it everywhere and tombstones it anyway. Exit 0 when the source and
    every required store deleted (an entity not in the source too), 1 when one of them left an
    entry it could not prove ours, 2 otherwise. With --erase: the journal scrubbed too, every store read back and a
    report per store of what remains (docs/erasure.md); exit 0 only when every store proved
    absence, 1 when one still holds an entity or could not be read back.

    \b
    Examples:
      uuid-forge delete -c uuid-forge.toml --entity user --key email=john@example.com
      uuid-forge delete -c uuid-forge.toml --entity user --id 5f1c...-...  --dry-run
      uuid-forge delete -c uuid-forge.toml --jsonl leavers.jsonl          # {"entity_type":"user","email":"..."}
      uuid-forge delete -c uuid-forge.toml --entity user --key email=john@example.com --erase --report proof.json
      uuid-forge delete -c uuid-forge.toml --purge-expired                 # tombstones past retention
    """
    with open_forge(config_path) as forge:
        if purge_expired:
            if entity_type or keys or ids or jsonl or erase_ or force:
                raise click.UsageError("--purge-expired goes alone (with --dry-run or --json)")
            counts = tombstones.purge_expired(forge, dry_run=dry_run)
            if as_json:
                emit_json({"purged": counts, "dry_run": dry_run,
                           "retention": forge.settings.tombstone_retention})
            else:
                verb = "would purge" if dry_run else "purged"
                total = sum(counts.values())
                out.print(f"tombstones {verb}: {total} older than {forge.settings.tombstone_retention}"
                          + (f" ({', '.join(f'{t}: {n}' for t, n in counts.items())})" if counts else ""),
                          markup=False)
            return
        items, places = _items(forge, entity_type, keys, ids, jsonl)
        if not items:
            raise ValidationError(f"--jsonl {jsonl!r}: no entities to delete")
        if report_path and not erase_:
            raise click.UsageError("--report FILE goes with --erase (the erasure report)")
        if erase_:  # the delete, then the proof: journal scrubbed, every store read back (uuid_forge.erasure)
            if dry_run:
                raise click.UsageError("--erase cannot be a --dry-run: run --dry-run alone to see what would go")
            forge.delete_targets(items, places)  # a bad item named by its line, before anything is touched
            run_erase(forge, items, as_json=as_json, report_path=report_path, force=force)
            return
        try:
            with progress_bar("deleting", len(items), not as_json and len(items) > 1) as advance:
                report = forge.delete_many(items, progress=advance, dry_run=dry_run, force=force, places=places)
        except WriteError as failure:
            _show(failure.report, as_json, items, forge)
            raise
        _show(report, as_json, items, forge)
        metrics.record(report)
        left = sorted(s.name for s in report.stores.values() if s.unproven and s.role != "optional")
        if left and not report.dry_run:  # the entity is still there: not a success to report
            undeclared = sorted({str(i.get("entity_type")) for i in items} - set(forge.types))
            if not as_json:
                hint = f"; {declare_key_hint(undeclared[0])}" if undeclared else ""
                err.print(f"uuid-forge: {', '.join(left)} still hold{'s' if len(left) == 1 else ''} entries "
                          f"not proven ours (exit 1){hint}", markup=False)
            raise click.exceptions.Exit(1)
