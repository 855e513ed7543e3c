"""``audit``: every store compared with the source of truth, and the repair it plans or carries out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape

from .. import html_report, idmarker, metrics
from ..audit import AuditReport
from ..contract import SCAN
from ..errors import RepairRefusedError
from ..forge import Forge
from ..masking import Masker, masked_report
from ..metrics import metrics_option
from ..privatefile import check_folder, refuse_link, write_private
from ..record import Partition
from .app import CONTEXT, emit_json, err, out
from .configuration import config_option, open_forge
from .progress import partition_progress, progress_bar
from .reports import audit_table, per_store

__all__ = ["audit", "audit_exit_code"]


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


def _write_private(path: str, payload: dict[str, Any]) -> None:
    """The --output file: 0600, never through a symlink (see uuid_forge.privatefile)."""
    write_private(path, json.dumps(payload, indent=2), "--output")


@click.command(context_settings=CONTEXT)
@metrics_option("audit", lambda p: {"entity_type": p["entity_type"] or "*", "partition": p["partition"] or "*"})
@config_option()
@click.option("--entity", "-e", "entity_type", default=None, help="Only this entity type [default: all].")
@click.option("--partition", "-p", default=None, metavar="i/n", help="Audit only part i of n of the ID space.")
@click.option("--repair", is_flag=True, help="Plan a repair from the source (a dry run unless --apply).")
@click.option("--apply", is_flag=True, help="With --repair: carry the plan out, then audit again.")
@click.option("--delete-orphans", is_flag=True, help="With --repair: also delete records the source lacks that are proven ours (their key fields rebuild their ID).")
@click.option("--max-delete", default=None, metavar="N|P%",
              help="With --repair: refuse the whole repair (exit 2, nothing changed) when one store would "
                   "lose more than N records of a type, or more than P% of the source's records of that type "
                   "[default: 10%]. A percentage never allows deleting a type the source holds none of (an empty or "
                   "wrong source, a prefix typo); only a number does.")
@click.option("--verify-keys", is_flag=True, help="Also recompute each source ID from its stored key (reads data).")
@click.option("--show-values", is_flag=True,
              help="Show the differing values of stale records, and other applications' key names as they are, "
                   "in the text, --json, --output and --html alike (masked by default: they may be personal data).")
@click.option("--no-hash", "no_hash", is_flag=True,
              help="Read and compare every record, even where the source and a store can compare hashes computed "
                   "in the stores ([audit] hashed = false in the configuration does the same for every run).")
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
          output: str | None, html: str | None = None, workers: int | None = None, executor: str = "local",
          no_hash: bool = False) -> None:
    """Compare every store with the source of truth: ok, missing, orphan, stale, malformed,
    deleted (a store still holds an entity that was deleted: its tombstone is in the source;
    --repair --apply removes it, no --delete-orphans needed), and foreign or unproven entries.

    Every store's data is read and fingerprinted as it is, so an edit made by another program is
    found as stale, with the fields that differ named (their values with --show-values). An entry
    is ours only when its own key fields rebuild its ID (or it carries uuid-forge's mark): one
    that cannot be proven is "unproven", counted with its name masked, and never deleted,
    rewritten or copied, whatever its name looks like.
    Without --entity, the types the source declares ([types.NAME]) or holds are audited; entries
    of a type only another store holds (a stray 'invoice' file or key) are one "stray type"
    finding per store and type, with their count and a few names masked, never an error that
    stops the audit of the others.
    Each finding shows the entity's key fields beside its ID, masked unless --show-values.
    Exit 0 only when every store was audited and found consistent; 1 when there are findings
    (an ID configuration that differs from the one the source was written with is one finding
    per type; a stray type is one per store and type); 2 when the audit could not finish: an optional store that does not answer is
    left out (the others are audited, it is listed as not audited), the source or a required
    store is down, --entity names a type neither the configuration nor a store knows (or one a
    store refuses: the store is named), or a
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
    if max_delete is not None and not repair:
        raise click.UsageError("--max-delete goes with --repair (it limits orphans and deleted entities removed)")
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
        if no_hash:
            forge.audit_hashed = False
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
    acknowledged = _acknowledged(final, forge.audit_settings.unproven)
    code = audit_exit_code(report, final, acknowledged)
    shown, shown_final = masked_report(report, show_values), masked_report(final, show_values)  # as the HTML page
    payload = shown.to_dict()
    payload["warnings"] = shown.warnings
    if repair and apply:
        payload["after_repair"] = shown_final.to_dict()
    payload["exit_code"], payload["summary"] = code, _summary_line(report, final, code, acknowledged)
    if acknowledged:
        payload["acknowledged"] = acknowledged
    if output:
        _write_private(output, payload)
    if as_json:
        emit_json(payload)
    else:
        _print_audit(shown, shown_final, repair, apply, delete_orphans)
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
    from ..strays import audit_scope

    n = workers or default_workers()
    if executor == "local" and workers is None and any(not h.adapter.partitioned_scan for h in forge.stores):
        n = 1  # a message log is read once per task: by default it is read once, here (--workers N overrides)
    planned = None
    if executor == "local":
        why = in_process_only(forge)
        if why and workers and workers > 1:
            err.print(f"note: auditing in this process: {escape(why)}", highlight=False)
        if n > 1 and not why:  # counting the source is a scan on some stores: done once, kept for the audit
            planned = plan(forge, [entity_type] if entity_type else audit_scope(forge, forge.types).types, part)
        # small (one partition per type; a one-pass task has none of its own): a process costs more than it saves
        if planned is None or all(t["count"] == 1 for t in planned if "count" in t):
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


def _acknowledged(final: AuditReport, unproven: str) -> dict[str, int]:
    """The findings ``[audit] unproven = "report"`` acknowledges: {"unproven": count} when unproven
    entries are the only thing between this audit and exit 0, else nothing (every other finding
    still fails, and so do unproven entries beside it)."""
    if unproven != "report" or final.consistent or not final.consistent_but("unproven"):
        return {}
    return {"unproven": final.count("unproven")}


def audit_exit_code(report: AuditReport, final: AuditReport, acknowledged: dict[str, int] | None = None) -> int:
    """0: every store audited and consistent, or holding only findings ``[audit]`` acknowledges
    (``acknowledged``); 1: findings; 2: a store was not audited."""
    if report.not_audited or final.not_audited:
        return 2
    return 0 if final.consistent or acknowledged else 1


def _summary_line(report: AuditReport, final: AuditReport, code: int,
                  acknowledged: dict[str, int] | None = None) -> str:
    """The last line of an audit's output: the outcome first, then the one-line summary. After
    --apply with findings, a clean re-audit is "repaired", never "consistent": the findings were true.
    Exit 0 through ``[audit] unproven = "report"`` is "acknowledged", never "consistent"."""
    outcome = {0: "consistent", 1: "INCONSISTENT", 2: "INCOMPLETE"}[code]
    if code == 0 and final is not report and report.rechecked is not None and report.findings:
        outcome = "repaired"
    if code == 0 and acknowledged:
        outcome = "acknowledged"
    text = str(report)
    if final is not report:  # after --repair --apply: the full re-audit decides
        text += f"; re-audit: {'consistent' if final.consistent else 'still inconsistent'}"
    if acknowledged:
        text += (f"; {acknowledged['unproven']} unproven acknowledged ([audit] unproven = \"report\"): entries "
                 "uuid-forge cannot prove it wrote, listed and left alone, not failing the audit")
    return f"{outcome}: {text}"


def _print_audit(report: AuditReport, final: AuditReport, repair: bool, apply: bool, delete_orphans: bool) -> None:
    """The text report: the table, the findings (20 at most), the plan or what was repaired."""
    out.print(audit_table(report, escape(f"audit of {', '.join(report.entity_types) or 'nothing'} against "
                                         f"{report.source} ({report.seconds:.2f}s, {report.partitions} "
                                         f"partition{'' if report.partitions == 1 else 's'})")))
    for name, reason in report.not_audited.items():
        out.print("  [red]not audited[/] " + escape(f"{name} (optional, not answering): {reason}"),
                  highlight=False)
    for c in report.id_config:  # one line per type, whatever the number of records (see uuid_forge.idmarker)
        out.print(f"  [red]id config[/] {escape(idmarker.summary_line(c) or c['message'])}")
    for s in report.stray_types:  # one line per store and type, whatever the number of entries
        out.print("  [red]stray type[/] " + escape(s["message"]) + escape(f" (e.g. {', '.join(s['samples'][:3])})"
                                                                   if s["samples"] else ""), highlight=False)
    for f in report.findings[:20]:  # already masked (masked_report): the key fields' shapes unless --show-values
        key = Masker(True).key_text(f.key)
        out.print(f"  {f.kind:9} {f.store}/{f.entity_type} {f.id}" + (f" [{key}]" if key else "") + f"  {f.detail}",
                  markup=False)
    if len(report.findings) > 20:
        out.print(f"  ... {len(report.findings) - 20} more (use --json)")
    if repair and not apply and not report.consistent:
        out.print("[bold]repair plan[/] (dry run; add --apply to carry it out):")
        for line in _plan(report, delete_orphans):
            out.print(f"  {escape(line)}")
    if repair and apply:
        out.print(f"repaired: {per_store({n: dict(c) for n, c in report.repaired.items()}) or 'nothing'}",
                  markup=False)
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
            deleted = row.counts["deleted"]
            what = (f"{row.delete - deleted} orphan(s)" if not deleted else
                    f"{deleted} deleted entit{'y' if deleted == 1 else 'ies'} (tombstoned in {report.source})"
                    + (f" and {row.delete - deleted} orphan(s)" if row.delete > deleted else ""))
            lines.append(f"{where}: delete {what}, each re-read from the source first"
                         + (f" - REFUSED: {row.refused}" if row.refused else f" (limit {row.limit})"))
        if row.keep:
            lines.append(f"{where}: keep {row.keep} orphan(s)" + (f" ({row.keep_reason})" if row.keep_reason else
                                                                  "" if delete_orphans else
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
