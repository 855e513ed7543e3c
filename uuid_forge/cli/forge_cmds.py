"""Commands that use a configured Forge: write, replay, stores, audit."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import click
from rich.markup import escape
from rich.table import Table

from .. import html_report, idmarker, metrics
from ..audit import CLASSES, AuditReport
from ..contract import SCAN
from ..entitytypes import FROM_DATA
from ..errors import ConfigError, PrivateFileError, RepairRefusedError, UUIDForgeError, ValidationError, WriteError
from ..forge import Forge
from ..metrics import metrics_option
from ..privatefile import check_folder, refuse_link, write_private
from ..record import Partition
from ..report import WriteReport
from .app import CONTEXT, cli, emit_json, err, out
from .parsing import parse_assignments
from .progress import partition_progress, progress_bar

DEFAULT_CONFIG = "uuid-forge.toml"


def config_option(f: Any) -> Any:
    return click.option("--config", "-c", "config_path", envvar="UUID_FORGE_CONFIG", default=DEFAULT_CONFIG,
                        show_default=True, type=click.Path(dir_okay=False),
                        help="TOML config with [ids] and [stores.NAME] (env: UUID_FORGE_CONFIG).")(f)


def open_forge(path: str) -> Forge:
    if not os.path.exists(path):
        raise ConfigError(f"config file {path!r} not found (name one with --config/-c or UUID_FORGE_CONFIG, or run "
                          "'uuid-forge demo' to try the embedded stores first)")
    forge = Forge.from_config(path)
    metrics.attach(forge)  # --metrics: its stores and journal
    for h in forge.stores:
        if h.adapter.url().startswith("memory:"):
            err.print(f"note: store {h.name!r} is memory://, which lives only as long as this command: the next "
                      "command (an audit after a write) starts with it empty", highlight=False)
    return forge


def per_store(counts: dict[str, Any]) -> str:
    """``{"cache": {"rewritten": 1}}`` or ``{"cache": 1}`` as ``cache: rewritten 1`` / ``cache: 1``:
    what the CLI prints instead of a Python dict."""
    parts = []
    for name, value in counts.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items()) or "nothing"
        parts.append(f"{name}: {value}")
    return "; ".join(parts)


def write_report_table(report: WriteReport, title: str = "write-through") -> Table:
    """Per-store results; the (masked) URLs go in the caption, so a narrow terminal squeezes no figure."""
    table = Table(header_style="bold", title=f"{title}: {report.entities} "
                  f"entit{'y' if report.entities == 1 else 'ies'} in {report.seconds:.2f}s",
                  caption="\n".join(f"{s.name}: {escape(s.url)}" for s in report.stores.values()),
                  caption_justify="left")
    for col in ("store", "role", "status", "written", "in journal", "retries", "seconds"):
        table.add_column(col, no_wrap=True)
    style = {"ok": "green", "journaled": "yellow", "failed": "red"}
    for s in report.stores.values():
        table.add_row(s.name, s.role, f"[{style[s.status]}]{s.status}[/]", str(s.written), str(s.pending),
                      str(s.retries), f"{s.seconds:.2f}")
    return table


def show_write(report: WriteReport, as_json: bool, ident: uuid.UUID | None = None) -> None:
    """The write table (or JSON); ``ident``, for a single entity, is the ID it was written under."""
    if as_json:
        emit_json({**report.to_dict(), "id": str(ident)} if ident is not None else report.to_dict())
        return
    if ident is not None:
        out.print(f"id: {ident}")
    out.print(write_report_table(report))
    for s in report.stores.values():
        for e in s.errors:
            err.print(f"[yellow]{s.name}[/]: {escape(e)}")
    dead = [f"{s.name}: {s.dead_letters}" for s in report.stores.values() if s.dead_letters]
    if dead:
        err.print(f"dead letters (records a store refused for good, kept in the journal; the others were written): "
                  f"{', '.join(dead)}; see 'uuid-forge journal dead-letters'")


def _entities(n: int) -> str:
    return f"{n} entit{'y' if n == 1 else 'ies'}"


class _JsonlReader:
    """Entities from a JSONL byte stream, each checked on its own line; stops at the first bad line.

    Why stop instead of raising inside ``write_many``: every entity before the bad line is then
    written, so the error can say how many were and where to resume (stdin cannot be read twice).
    """

    def __init__(self, stream: BinaryIO, name: str, forge: Forge | None) -> None:
        self.stream, self.name, self.forge = stream, name, forge
        self.error: ValidationError | None = None

    def __iter__(self) -> Iterator[tuple[str, Any, dict[str, Any]]]:
        try:
            for _, entity in _numbered(self.stream, self.name, self.forge):
                yield entity
        except ValidationError as e:
            self.error = e


def _numbered(stream: BinaryIO, name: str, forge: Forge | None = None
              ) -> Iterator[tuple[int, tuple[str, Any, dict[str, Any]]]]:
    """Each non-blank line of a JSONL byte stream as an entity, with its line number.

    Read as bytes and decoded line by line: a non-UTF-8 byte is then reported at its own line and
    byte offset (a text stream fails at a buffer boundary, with no line). The line ending is cut
    before parsing, so a JSON error's column is the one ``json.loads`` gives for the line itself.
    With ``forge``, each entity is also checked (ID, data, entity type) before it is yielded.
    """
    offset = 0
    for lineno, raw in enumerate(stream, 1):
        start, offset = offset, offset + len(raw)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            column = len(raw[:e.start].decode("utf-8")) + 1
            raise ValidationError(f"{name} line {lineno}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {column}, "
                                  f"byte offset {start + e.start})") from None
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValidationError(f"{name} line {lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(item, dict) or "entity_type" not in item:
            raise ValidationError(f"{name} line {lineno}: expected an object with entity_type, key and data "
                                  "(key may be left out for a type declared with key fields)")
        extra = set(item) - {"entity_type", "key", "data"}
        if extra:
            raise ValidationError(f"{name} line {lineno}: unknown field(s) {', '.join(sorted(extra))}")
        entity = (item["entity_type"], item.get("key", FROM_DATA), item.get("data", {}))
        if forge is not None:
            try:
                forge.records([entity])
            except (ValidationError, TypeError, ValueError) as e:
                reason = str(e).split(": ", 1)[1] if str(e).startswith("entities[") else str(e)
                raise ValidationError(f"{name} line {lineno}: {reason}") from None
        yield lineno, entity


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


def _unknown_type(forge: Forge, entity_type: str) -> tuple[str, str | None] | None:
    """A type that neither the configuration ([types.NAME]) nor any store knows is most likely a
    typo: its audit would say "consistent" of nothing. Returns the message and the suggestion.

    A declared type with no records yet is fine (a new deployment's audit may run before the
    first write). The source is asked first (a cheap listing); only a type it lacks costs a look
    at every store, since listing a message log's types reads the whole log.
    """
    if entity_type in forge.types:
        return None
    source = forge.source.adapter
    if SCAN in source.capabilities and entity_type in source.entity_types():
        return None
    known = forge.entity_types()
    if entity_type in known:
        return None
    import difflib

    candidates = sorted(set(known) | set(forge.types))
    close = difflib.get_close_matches(entity_type, candidates, n=1)
    message = (f"--entity {entity_type!r}: neither the configuration nor any store knows that entity type"
               + (f"; did you mean {close[0]!r}?" if close else "")
               + (f" (known: {', '.join(candidates)})" if candidates else " (the stores are empty and no "
                  "[types.NAME] is declared)"))
    return message, close[0] if close else None


def _check_file(path: str, forge: Forge) -> int:
    """A first pass over a JSONL file: every line valid before any store is touched."""
    count = 0
    with open(path, "rb") as fh:
        for _ in _numbered(fh, path, forge):
            count += 1
    return count


@cli.command(context_settings=CONTEXT)
@metrics_option("write")
@config_option
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
def write(config_path: str, entity_type: str | None, keys: tuple[str, ...], data: tuple[str, ...],
          jsonl: str | None, as_json: bool, workers: int = 1, executor: str = "local") -> None:
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
                report = forge.write(entity_type, key or FROM_DATA, fields)  # type: ignore[arg-type]
            elif jsonl == "-":
                reader = _JsonlReader(sys.stdin.buffer, "<stdin>", forge)
                with progress_bar("writing", None, not as_json) as advance:
                    report = forge.write_many(iter(reader), progress=counted(advance))
            else:
                if not os.path.isfile(jsonl):
                    raise ValidationError(f"--jsonl {jsonl!r}: no such file (use - to read standard input)")
                total = _check_file(jsonl, forge)
                chunked_report = _write_chunks(forge, config_path, jsonl, total, workers, executor, as_json)
                if chunked_report is not None:
                    report = chunked_report
                else:
                    with open(jsonl, "rb") as fh, progress_bar("writing", total, not as_json) as advance:
                        reader = _JsonlReader(fh, jsonl, None)  # each entity was checked above
                        report = forge.write_many(iter(reader), progress=counted(advance))
        except WriteError as failure:
            show_write(failure.report, as_json)
            if jsonl is None:
                raise
            before = "; ".join(f"{_entities(s.written)} written to {n} before it"
                               for n, s in failure.report.stores.items() if s.status == "failed")
            raise WriteError(f"{failure} ({before})" if before else str(failure), report=failure.report) from None
        except (PrivateFileError, OSError) as failure:  # a full disk under the journal, say
            if jsonl is None:
                raise
            raise PrivateFileError(f"{failure}; {_entities(written)} were written to every store before it"
                                   ) from None
        show_write(report, as_json, single)
        if unsalted and report.entities:  # a later salt changes every ID: say so while there are few
            err.print("[yellow]warning:[/] written without a salt or secret (UUID_FORGE_SALT / UUID_FORGE_SECRET): "
                      "anyone who knows the keys can compute these IDs, and setting a salt later changes them all "
                      "(uuid-forge init writes one to .env: load it before writing)", highlight=False)
        metrics.record(report)
        if reader is not None and reader.error is not None:
            n = report.entities
            raise ValidationError(f"{reader.error}; {_entities(n)} before it "
                                  f"{'was' if n == 1 else 'were'} written, nothing after it")


@cli.command(context_settings=CONTEXT)
@metrics_option("replay")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(config_path: str, as_json: bool) -> None:
    """Finish every write the journal still holds (after a store outage or a crash).

    Writes are idempotent upserts, so replaying is always safe. Exit 0 when nothing is left
    pending, 1 when some store is still down.
    """
    with open_forge(config_path) as forge:
        before = forge.pending()
        with progress_bar("replaying", sum(before.values()), not as_json) as advance:
            report = forge.replay(progress=advance)
        metrics.record(report)
        left = forge.pending()
        dead = forge.journal.dead_letter_counts() if forge.journal else {}
        if as_json:
            emit_json({**report.to_dict(), "pending_before": before, "pending_after": left, "dead_letters": dead})
        else:
            if not before:
                out.print("journal is empty: nothing to replay")
            else:
                out.print(write_report_table(report, "replay"))
                out.print(f"pending before: {per_store(before)}; after: {per_store(left) or 'nothing'}")
            if dead:
                out.print(f"dead letters (refused for good, not replayed): {per_store(dead)}; "
                          "see 'uuid-forge journal dead-letters'")
        if left:
            raise click.exceptions.Exit(1)


@cli.command(context_settings=CONTEXT)
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stores(config_path: str, as_json: bool) -> None:
    """Show each configured store: role, masked URL, reachable or not, and journal backlog.

    Exit 0 when the source and every required store answer (an optional store may be down), 2
    when one of them does not: a health check for a scheduler."""
    with open_forge(config_path) as forge:
        pending = forge.pending()
        rows = []
        for h in forge.stores:
            try:
                h.adapter.ping()
                reach = "yes"
            except UUIDForgeError as e:
                reach = f"no: {e}"
            rows.append({"name": h.name, "role": h.role, "url": h.adapter.url(), "adapter": h.adapter.name,
                         "reachable": reach == "yes", "error": None if reach == "yes" else reach[4:],
                         "pending": pending.get(h.name, 0)})
    if as_json:
        emit_json(rows)
    else:
        # the (masked) URLs in the caption: a narrow terminal cuts no database number or option
        table = Table(header_style="bold", caption="\n".join(f"{r['name']}: {escape(r['url'])}" for r in rows),
                      caption_justify="left")
        for col in ("store", "role", "adapter", "reachable", "pending"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["name"], r["role"], r["adapter"],
                          "[green]yes[/]" if r["reachable"] else f"[red]no[/] {escape(r['error'] or '')}",
                          str(r["pending"]))
        out.print(table)
    down = [r["name"] for r in rows if not r["reachable"] and r["role"] != "optional"]
    if down:  # a health check a scheduler can trust: a source or required store that fails is an error
        err.print(f"uuid-forge: error: not reachable: {', '.join(down)} (the source or a required store)",
                  highlight=False)
        raise click.exceptions.Exit(2)


def audit_table(report: AuditReport, title: str) -> Table:
    table = Table(header_style="bold", title=title)
    table.add_column("store")
    for k in CLASSES:
        table.add_column(k, justify="right")
    for name, counts in report.stores.items():
        cells = [f"[red]{counts[k]}[/]" if k not in ("ok", "foreign") and counts[k] else str(counts[k]) for k in CLASSES]
        table.add_row(name, *cells)
    foreign = {n: c["foreign"] for n, c in report.stores.items() if c["foreign"]}
    if foreign:  # not ours: say so, and that nothing was done to them
        table.caption = ("foreign: entries not written by uuid-forge (other applications' keys, files, documents), "
                         "left alone: never repaired or deleted. " + "; ".join(
                             f"{n}: {c} (e.g. {', '.join(escape(x) for x in report.foreign_samples.get(n, [])[:3])})"
                             for n, c in foreign.items()))
    return table


def _write_private(path: str, payload: dict[str, Any]) -> None:
    """The --output file: 0600, never through a symlink (see uuid_forge.privatefile)."""
    write_private(path, json.dumps(payload, indent=2), "--output")


@cli.command(context_settings=CONTEXT)
@metrics_option("audit", lambda p: {"entity_type": p["entity_type"] or "*", "partition": p["partition"] or "*"})
@config_option
@click.option("--entity", "-e", "entity_type", default=None, help="Only this entity type [default: all].")
@click.option("--partition", "-p", default=None, metavar="i/n", help="Audit only part i of n of the ID space.")
@click.option("--repair", is_flag=True, help="Plan a repair from the source (a dry run unless --apply).")
@click.option("--apply", is_flag=True, help="With --repair: carry the plan out, then audit again.")
@click.option("--delete-orphans", is_flag=True, help="With --repair: also delete records the source lacks.")
@click.option("--max-delete", default=None, metavar="N|P%",
              help="With --delete-orphans: refuse the whole repair (exit 2, nothing changed) when one store would "
                   "lose more than N records of a type, or more than P% of the source's records of that type "
                   "[default: 10%]. A percentage never allows deleting a type the source holds none of (an empty or "
                   "wrong source, a table_prefix typo); only a number does.")
@click.option("--verify-keys", is_flag=True, help="Also recompute each source ID from its stored key (reads data).")
@click.option("--show-values", is_flag=True,
              help="Show the differing values of stale records, in the findings and in the --html samples "
                   "(hidden by default: they may be personal data).")
@click.option("--json", "as_json", is_flag=True, help="Print the full findings as JSON.")
@click.option("--output", "-o", default=None, type=click.Path(dir_okay=False), help="Also write the JSON to FILE (0600).")
@click.option("--html", default=None, type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report to FILE (0600): table, chart, slowest partitions, samples.")
@click.option("--workers", "-w", default=None, type=click.IntRange(min=1), metavar="N",
              help="Partitions audited in N processes at once [default: the number of cores, or this process when "
                   "a store is a message log, read once here]; 1 audits in this process. With --executor "
                   "celery: sizes the repair groups only.")
@click.option("--executor", type=click.Choice(["local", "celery"]), default="local", show_default=True,
              help="Where partitions run: local processes, or Celery workers on the [executor] broker "
                   "(celery -A uuid_forge.celery worker; see docs/scaling.md).")
def audit(config_path: str, entity_type: str | None, partition: str | None, repair: bool, apply: bool,
          delete_orphans: bool, max_delete: str | None, verify_keys: bool, show_values: bool, as_json: bool,
          output: str | None, html: str | None = None, workers: int | None = None, executor: str = "local") -> None:
    """Compare every store with the source of truth: ok, missing, orphan, stale, malformed.

    Every store's data is read and fingerprinted as it is, so an edit made by another program is
    found as stale, with the fields that differ named (their values with --show-values).
    Exit 0 only when every store was audited and found consistent; 1 when there are findings
    (an ID configuration that differs from the one the source was written with is one finding
    per type); 2 when the audit could not finish: an optional store that does not answer is
    left out (the others are audited, it is listed as not audited), the source or a required
    store is down, --entity names a type neither the configuration nor a store knows, or a
    repair is refused (by the deletion guard, or under such an ID configuration).
    '--partition 2/4' audits the second quarter of the ID space, so four machines can share a
    large audit. Every finding is re-read before repair acts on it, and each orphan is re-read
    from the source right before its deletion, so a live writer's records are never deleted.

    \b
    Examples:
      uuid-forge audit -c uuid-forge.toml
      uuid-forge audit -c uuid-forge.toml --entity user --json > findings.json
      uuid-forge audit -c uuid-forge.toml --repair               # show the plan
      uuid-forge audit -c uuid-forge.toml --repair --apply       # do it, then audit again
    """
    if (apply or delete_orphans) and not repair:
        raise click.UsageError("--apply and --delete-orphans go with --repair")
    if max_delete is not None and not delete_orphans:
        raise click.UsageError("--max-delete goes with --repair --delete-orphans")
    part = Partition.parse(partition) if partition else None
    if output:
        refuse_link(output, "--output")  # before the audit (and any repair) runs, not after
    if html:
        refuse_link(html, "--html")
        check_folder(html, "--html")
    with open_forge(config_path) as forge:
        unknown = _unknown_type(forge, entity_type) if entity_type is not None else None
        if unknown:  # an error a scheduler sees (exit 2), with the suggestion where the reader looks
            if as_json:
                emit_json({"error": unknown[0], "did_you_mean": unknown[1], "consistent": None})
            else:
                out.print(f"uuid-forge: error: {escape(unknown[0])}", highlight=False)
            raise click.exceptions.Exit(2)
        run = _auditor(forge, config_path, executor, workers, entity_type, part, as_json)
        try:
            report = run("auditing", repair=repair, dry_run=not apply, delete_orphans=delete_orphans,
                         max_delete=max_delete, verify_keys=verify_keys, show_values=show_values)
        except RepairRefusedError as refused:  # machine readers get the refused plan; the line goes to stderr
            if as_json or output:
                body = {"refused": str(refused), "plan": refused.plan.to_dict() if refused.plan else None}
                if output:
                    _write_private(output, body)
                if as_json:
                    emit_json(body)
            raise
        for line in report.warnings:
            err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
        final = report
        if repair and apply:
            final = run("re-auditing", verify_keys=verify_keys, show_values=show_values)
    metrics.record(report, final if repair and apply else None)
    if html:
        html_report.write(html, report, final=final if repair and apply else None, show_values=show_values)
    code = audit_exit_code(report, final)
    payload = report.to_dict()
    payload["warnings"] = report.warnings
    if repair and apply:
        payload["after_repair"] = final.to_dict()
    payload["exit_code"], payload["summary"] = code, _summary_line(report, final, code)
    if output:
        _write_private(output, payload)
    if as_json:
        emit_json(payload)
    else:
        _print_audit(report, final, repair, apply, delete_orphans)
        out.print(("[green]" if code == 0 else "[red]") + escape(payload["summary"]) + "[/]", highlight=False)
    if code:
        raise click.exceptions.Exit(code)


def _auditor(forge: Forge, config_path: str, executor: str, workers: int | None, entity_type: str | None,
             part: Partition | None, as_json: bool) -> Callable[..., AuditReport]:
    """How this audit runs: in this process (one worker, one partition, or stores only this
    process can see), or its partitions as tasks on local processes or Celery workers."""
    from ..distributed import audit_on
    from ..executors import default_workers, in_process_only, make_executor
    from ..partial import plan

    n = workers or default_workers()
    if executor == "local" and workers is None and any(not h.adapter.partitioned_scan for h in forge.stores):
        n = 1  # a message log is read once per task: by default it is read once, here (--workers N overrides)
    planned = None
    if executor == "local":
        why = in_process_only(forge)
        if why and workers and workers > 1:
            err.print(f"note: auditing in this process: {escape(why)}", highlight=False)
        if n > 1 and not why:  # counting the source is a scan on some stores: done once, kept for the audit
            planned = plan(forge, [entity_type] if entity_type else forge.entity_types(), part)
        if planned is None or all(t["count"] == 1 for t in planned):  # small: a process costs more than it saves
            def here(label: str, **kwargs: Any) -> AuditReport:
                with progress_bar(label, None, not as_json) as advance:
                    return forge.audit(entity_type, partition=part, progress=advance, **kwargs)
            return here
    pool = make_executor(executor, config_path, n)

    def tasks(label: str, **kwargs: Any) -> AuditReport:
        with partition_progress(f"{label} ({pool.name}, {n} worker{'s' if n > 1 else ''})"
                                if pool.name == "local" else f"{label} (celery)", not as_json) as update:
            return audit_on(pool, forge, entity_type, partition=part, progress=update, planned=planned, **kwargs)
    return tasks


def audit_exit_code(report: AuditReport, final: AuditReport) -> int:
    """0: every store audited and consistent; 1: findings; 2: a store was not audited."""
    if report.not_audited or final.not_audited:
        return 2
    return 0 if final.consistent else 1


def _summary_line(report: AuditReport, final: AuditReport, code: int) -> str:
    """The last line of an audit's output: the outcome first, then the one-line summary."""
    outcome = {0: "consistent", 1: "INCONSISTENT", 2: "INCOMPLETE"}[code]
    text = str(report)
    if final is not report:  # after --repair --apply: the full re-audit decides
        text += f"; re-audit: {'consistent' if final.consistent else 'still inconsistent'}"
    return f"{outcome}: {text}"


def _print_audit(report: AuditReport, final: AuditReport, repair: bool, apply: bool, delete_orphans: bool) -> None:
    """The text report: the table, the findings (20 at most), the plan or what was repaired."""
    out.print(audit_table(report, f"audit of {', '.join(report.entity_types) or 'nothing'} against "
                                  f"{report.source} ({report.seconds:.2f}s, {report.partitions} "
                                  f"partition{'' if report.partitions == 1 else 's'})"))
    for name, reason in report.not_audited.items():
        out.print(f"  [red]not audited[/] {escape(name)} (optional, not answering): {escape(reason)}",
                  highlight=False)
    for c in report.id_config:  # one line per type, whatever the number of records (see uuid_forge.idmarker)
        out.print(f"  [red]id config[/] {escape(idmarker.summary_line(c) or c['message'])}")
    for f in report.findings[:20]:
        out.print(f"  {f.kind:9} {f.store}/{f.entity_type} {f.id}  {escape(f.detail)}")
    if len(report.findings) > 20:
        out.print(f"  ... {len(report.findings) - 20} more (use --json)")
    if repair and not apply and not report.consistent:
        out.print("[bold]repair plan[/] (dry run; add --apply to carry it out):")
        for line in _plan(report, delete_orphans):
            out.print(f"  {escape(line)}")
    if repair and apply:
        out.print(f"repaired: {per_store({n: dict(c) for n, c in report.repaired.items()}) or 'nothing'}")
        for e in report.repair_errors:
            err.print(f"[red]repair error[/]: {escape(e)}")
        out.print(audit_table(final, "after repair"))


def _plan(report: AuditReport, delete_orphans: bool) -> list[str]:
    """The dry run's plan: exact counts per store and type, and what the deletion guard refuses."""
    plan = report.plan
    lines = [f"refused for every type: the ID configuration of {c['entity_type']!r} differs (fix it, or run "
             f"'uuid-forge ids accept --entity {c['entity_type']} --yes')" for c in report.id_config]
    if plan is None:
        return lines
    for row in plan.rows:
        where = f"{row.store}/{row.entity_type}"
        if row.rewrite:
            lines.append(f"{where}: rewrite {row.rewrite} record(s) from {report.source} ({row.counts['missing']} "
                         f"missing, {row.counts['stale']} stale, {row.counts['malformed']} malformed)")
        if row.delete:
            lines.append(f"{where}: delete {row.delete} orphan(s), each re-read from the source first"
                         + (f" - REFUSED: {row.refused}" if row.refused else f" (limit {row.limit})"))
        if row.keep:
            lines.append(f"{where}: keep {row.keep} orphan(s)" + ("" if delete_orphans else
                                                                  " (add --delete-orphans to delete)"))
    for name, counts in report.stores.items():
        if counts["foreign"]:
            lines.append(f"{name}: leave {counts['foreign']} foreign entr{'y' if counts['foreign'] == 1 else 'ies'} "
                         "alone (not written by uuid-forge: never repaired or deleted)")
    if report.truncated:
        lines.append(f"(counts from the first {len(report.findings)} findings; {report.truncated} more not listed)")
    if plan.refused:
        lines.append(plan.message().replace("repair refused:", "--apply would be refused:")
                     .replace("; nothing was changed", ", and would change nothing"))
    return lines
