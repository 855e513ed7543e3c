"""``write`` and ``replay``: entities to every configured store, and what the journal still owes them."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape

from .. import metrics
from ..contract import READ
from ..entitytypes import FROM_DATA
from ..errors import PrivateFileError, UUIDForgeError, ValidationError, WriteError
from ..forge import CLI_RECREATE_HINT, RECREATE_HINT, Forge
from ..metrics import metrics_option
from ..precedence import SALT_ENV, SECRET_ENV
from ..report import WriteReport
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, open_forge
from .jsonl import JsonlReader, count_checked
from .parsing import parse_assignments
from .progress import progress_bar
from .reports import declare_key_hint, per_store, write_report_table

__all__ = ["replay", "show_write", "still_owed", "write"]


def show_write(report: WriteReport, as_json: bool, ident: uuid.UUID | None = None, said: str = "") -> None:
    """The write table (or JSON); ``ident``, for a single entity, is the ID it was written under.
    A store's error already in ``said`` (the error message that follows) is not printed twice."""
    if as_json:
        emit_json({**report.to_dict(), "id": str(ident)} if ident is not None else report.to_dict())
        return
    if ident is not None:
        out.print(f"id: {ident}")
    out.print(write_report_table(report))
    for s in report.stores.values():
        for e in s.errors:
            if e not in said:
                err.print(f"[yellow]{escape(s.name)}[/]: {escape(e)}")
    if report.refused_deleted:  # by type and ID, never the data
        err.print(f"refused (the entity was deleted; its tombstone is in the source): {report.refused_deleted} "
                  f"record(s), e.g. {', '.join(report.refused_deleted_ids)}; not written to any store. "
                  "'uuid-forge write --recreate' writes them and removes their tombstones", markup=False)
    dead = [f"{s.name}: {s.dead_letters}" for s in report.stores.values() if s.dead_letters]
    if dead:
        err.print(f"dead letters (records a store refused for good, kept in the journal; the others were written): "
                  f"{', '.join(dead)}; see 'uuid-forge journal dead-letters'", markup=False)


def _entities(n: int) -> str:
    return f"{n} entit{'y' if n == 1 else 'ies'}"


def _entries(n: int) -> str:
    return f"{n} pending entr{'y' if n == 1 else 'ies'}"


def still_owed(report: WriteReport, left: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per store still owed something after a replay: its masked URL, the count, why (the store's
    own error, or that the source came first) and what to do, as one line an operator can act on."""
    source = next((s.name for s in report.stores.values() if s.role == "source"), "")
    owed: dict[str, dict[str, Any]] = {}
    for name, count in left.items():
        s = report.stores.get(name)
        if s is None:
            continue
        if s.errors:
            error = s.errors[0].removeprefix(f"{s.url}: ").rstrip(".")
            why, fix = f"is still down ({error})", f"bring {name} back"
        elif name != source and left.get(source):
            why, fix = f"was not attempted (the source {source} is still owed its part first)", f"bring {source} back"
        else:
            why, fix = "was not replayed", "see 'uuid-forge journal'"
        owed[name] = {"url": s.url, "pending": count, "reason": why,
                      "message": f"{name} ({s.url}) {why}; {count} entr{'y stays' if count == 1 else 'ies stay'} pending "
                                 f"in the journal; {fix}, then run 'uuid-forge replay' again"}
    return owed


def _write_chunks(forge: Forge, config_path: str, path: str, total: int, workers: int, executor: str,
                  as_json: bool) -> WriteReport | None:
    """The file written as chunk tasks (uuid_forge.backfill), or None to write it in this process:
    one worker, stores only this process sees, or an entity the file holds twice (its last line
    must win, and chunks run side by side)."""
    import time

    from ..backfill import chunks, first_repeat, merge_reports
    from ..executors import in_process_only, make_executor

    if executor == "local" and workers == 1:
        return None
    why = in_process_only(forge)
    repeat = None if why else first_repeat(forge, path)
    if why or repeat:
        reason = why or f"lines {repeat[0]} and {repeat[1]} write the same entity"  # type: ignore[index]
        err.print(f"note: writing in this process: {escape(reason)}", highlight=False)
        return None
    pool = make_executor(executor, config_path, workers)
    ranges = chunks(path, workers)
    started = time.perf_counter()
    with progress_bar(f"writing ({pool.name}, {len(ranges)} chunks)", total, not as_json) as advance:
        parts = pool.run("write_chunk", [{"path": os.path.abspath(path), "start": a, "end": b} for a, b in ranges],
                         lambda _, part: advance(part["report"]["entities"]))
    report = merge_reports(parts, time.perf_counter() - started)
    failed = [p["error"] for p in parts if p["error"]]
    if failed:
        raise WriteError(f"{len(failed)} of {len(parts)} chunk(s) failed: {failed[0]}", report=report)
    return report


def _unprovable_in(forge: Forge, entity_type: str | None, ident: uuid.UUID) -> list[str]:
    """The stores shared with others where the entry just written cannot be proven ours (read
    back and asked of the prover): said once, at the first write, not found out at the first
    delete. A declared type stores its key fields, so it is not asked."""
    if entity_type is None or entity_type in forge.types:
        return []
    names = []
    for h in forge.stores:
        if h.source or READ not in h.adapter.capabilities or not h.adapter.shared(entity_type):
            continue
        try:
            got = h.adapter.get_many(entity_type, [ident])
        except UUIDForgeError:
            continue  # a store that cannot answer now: the write report already says so
        if ident in got and not forge.prover.proven(entity_type, {ident: got[ident]}, h.adapter.view):
            names.append(h.name)
    return names


@click.command(context_settings=CONTEXT)
@metrics_option("write")
@config_option()
@click.argument("entity_type", required=False)
@click.option("-k", "--key", "keys", multiple=True, metavar="KEY=TEXT|KEY:=JSON", help="A business-key value.")
@click.option("-d", "--data", "data", multiple=True, metavar="FIELD=TEXT|FIELD:=JSON", help="A data field.")
@click.option("--jsonl", "jsonl", default=None, metavar="FILE|-",
              help="Read entities from JSON lines: {\"entity_type\":..,\"key\":{..},\"data\":{..}} (\"key\" may be "
                   "left out for a type declared with key fields).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--workers", "-w", default=1, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="With --jsonl FILE: write chunks of the file in N processes at once (each journals its "
                   "failures as usual; see docs/scaling.md).")
@click.option("--executor", type=click.Choice(["local", "celery"]), default="local", show_default=True,
              help="With --jsonl FILE: where the chunks are written (celery: workers that read FILE at the same path).")
@click.option("--recreate", is_flag=True,
              help="Write entities that were deleted (a tombstone in the source) and remove their tombstones; "
                   "without it, such records are refused (a late write of an older version never brings a "
                   "deleted entity back).")
def write(config_path: str, entity_type: str | None, keys: tuple[str, ...], data: tuple[str, ...],
          jsonl: str | None, as_json: bool, workers: int = 1, executor: str = "local", recreate: bool = False) -> None:
    """Write entities to every configured store under their deterministic IDs.

    The source of truth is written first, then the other stores. A store that stays down keeps
    its part in the journal: run 'uuid-forge replay' when it is back. Exit 0 when every
    required store was written, 2 otherwise.

    \b
    Examples:
      uuid-forge write -c uuid-forge.toml user -k email=john@example.com -d name=John -d age:=42
      uuid-forge write -c uuid-forge.toml order -d order_number=A-1 -d total:=12.5   # [types.order] key
      uuid-forge write -c uuid-forge.toml --jsonl users.jsonl
      producer | uuid-forge write -c uuid-forge.toml --jsonl -
    """
    if (jsonl is None) == (entity_type is None):
        raise click.UsageError("give ENTITY_TYPE with -k/-d, or --jsonl FILE (not both)")
    written = 0  # entities in batches finished before an error, for the message

    def counted(advance: Callable[[int], None]) -> Callable[[int], None]:
        def step(n: int) -> None:
            nonlocal written
            written += n
            advance(n)
        return step

    with open_forge(config_path) as forge:
        config = forge.generator.config
        unsalted = not config.salt and not config.secret
        reader = None
        single: uuid.UUID | None = None
        try:
            if jsonl is None:
                key = parse_assignments(keys, "-k")
                declared = forge.types.get(entity_type)  # type: ignore[arg-type]
                if not key and not (declared and declared.key):
                    raise click.UsageError(f"give the business key with -k KEY=VALUE (at least one), or declare "
                                           f"the key fields of {entity_type!r} in the configuration "
                                           f"([types.{entity_type}] key = [\"email\"])")
                fields = parse_assignments(data, "-d")
                single = forge.id_for(entity_type, key or FROM_DATA, fields)  # type: ignore[arg-type]
                report = forge.write(entity_type, key or FROM_DATA, fields, recreate=recreate)  # type: ignore[arg-type]
            elif jsonl == "-":
                reader = JsonlReader(sys.stdin.buffer, "<stdin>", forge)
                with progress_bar("writing", None, not as_json) as advance:
                    report = forge.write_many(iter(reader), progress=counted(advance), recreate=recreate)
            else:
                if not os.path.isfile(jsonl):
                    raise ValidationError(f"--jsonl {jsonl!r}: no such file (use - to read standard input)")
                total = count_checked(jsonl, forge)
                chunked_report = None if recreate else \
                    _write_chunks(forge, config_path, jsonl, total, workers, executor, as_json)
                if chunked_report is not None:
                    report = chunked_report
                else:
                    with open(jsonl, "rb") as fh, progress_bar("writing", total, not as_json) as advance:
                        reader = JsonlReader(fh, jsonl, None)  # each entity was checked above
                        report = forge.write_many(iter(reader), progress=counted(advance), recreate=recreate)
        except WriteError as failure:
            show_write(failure.report, as_json, said=str(failure))
            if RECREATE_HINT in str(failure):  # the command line's words, not the Python API's
                failure = WriteError(str(failure).replace(RECREATE_HINT, CLI_RECREATE_HINT), report=failure.report)
            if jsonl is None:
                raise failure from None
            before = "; ".join(f"{_entities(s.written)} written to {n} before it"
                               for n, s in failure.report.stores.items() if s.not_written or s.status == "failed")
            raise WriteError(f"{failure} ({before})" if before else str(failure), report=failure.report) from None
        except (PrivateFileError, OSError) as failure:  # a full disk under the journal, say
            if jsonl is None:
                raise
            raise PrivateFileError(f"{failure}; {_entities(written)} were written to every store before it"
                                   ) from None
        show_write(report, as_json, single)
        unprovable = _unprovable_in(forge, entity_type, single) if single is not None and report.entities else []
        if unprovable and not as_json:
            err.print(f"note: {', '.join(unprovable)} keep{'s' if len(unprovable) == 1 else ''} {entity_type!r} without "
                      "its key fields, so nothing there proves uuid-forge wrote it: a delete, repair or drop will "
                      f"leave it; {declare_key_hint(str(entity_type))}", markup=False, highlight=False)
        if unsalted and report.entities:  # a later salt changes every ID: say so while there are few
            err.print(f"[yellow]warning:[/] written without a salt or secret ({SALT_ENV} / {SECRET_ENV}): "
                      "anyone who knows the keys can compute these IDs, and setting a salt later changes them all "
                      "(uuid-forge init writes one to .env: load it before writing)", highlight=False)
        metrics.record(report)
        if reader is not None and reader.error is not None:
            n = report.entities
            raise ValidationError(f"{reader.error}; {_entities(n)} before it "
                                  f"{'was' if n == 1 else 'were'} written, nothing after it")


@click.command(context_settings=CONTEXT)
@metrics_option("replay")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(config_path: str, as_json: bool) -> None:
    """Finish every write the journal still holds (after a store outage or a crash).

    Writes are idempotent upserts, so replaying is always safe. Exit 0 when nothing is left
    pending, 1 when some store is still down.
    """
    with open_forge(config_path) as forge:
        before = forge.pending()
        deletes = forge.journal.pending_delete_counts() if forge.journal else {}
        with progress_bar("replaying", sum(before.values()), not as_json) as advance:
            report = forge.replay(progress=advance)
        metrics.record(report)
        left = forge.pending()
        dead = forge.journal.dead_letter_counts() if forge.journal else {}
        still = still_owed(report, left)
        if as_json:
            emit_json({**report.to_dict(), "pending_before": before, "deletes_before": deletes, "pending_after": left,
                       "dead_letters": dead, "still_pending": still})
        else:
            if not before:
                out.print("journal is empty: nothing to replay")
            else:
                done = sum(before.values()) - sum(left.values())
                out.print(write_report_table(report, heading=f"replay: {done} of {_entries(sum(before.values()))} "
                                             f"finished in {report.seconds:.2f}s"))
                of_which = f" (of which deletes: {per_store(deletes)})" if deletes else ""
                out.print(f"pending before: {per_store(before)}{of_which}; after: {per_store(left) or 'nothing'}",
                          markup=False)
            for line in still.values():
                err.print(f"[red]replay:[/] {escape(line['message'])}", highlight=False)
            if dead:
                out.print(f"dead letters (refused for good, not replayed): {per_store(dead)}; "
                          "see 'uuid-forge journal dead-letters'", markup=False)
        if left:
            raise click.exceptions.Exit(1)

