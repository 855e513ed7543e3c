"""The audit over an executor: plan partitions, fan them out, merge, then describe, guard and repair.

Where each safety rule of the repair runs (docs/repair.md, docs/scaling.md):

* the ID-configuration check refuses a repair here, before any task starts;
* the delete guard runs here, on the re-checked findings of the whole audit against each
  type's whole source count: one refusal stops everything before any store is changed;
* the rewrites and deletions then run as tasks, a group of IDs each, and each task re-checks
  its findings, applies the guard again (it can only be stricter) and proves every orphan
  absent from the source right before deleting it; foreign entries are never findings.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import idmarker
from .audit import AuditReport, _all_types
from .errors import ValidationError
from .partial import merge, merge_all, merge_repairs, plan, repair_groups, to_report
from .record import Partition

if TYPE_CHECKING:
    from .executors import Executor
    from .forge import Forge

#: called after each partition with (partitions done, of total, source entities, findings so far)
Progress = Callable[[int, int, int, int], None]


def audit_on(executor: Executor, forge: Forge, entity_type: str | Iterable[str] | None = None, *,
             partition: Partition | None = None, repair: bool = False, delete_orphans: bool = False,
             dry_run: bool = False, verify_keys: bool = False, max_findings: int = 100_000,
             max_delete: int | str | None = None, show_values: bool = False,
             progress: Progress | None = None, planned: list[dict[str, Any]] | None = None) -> AuditReport:
    """A full audit (as ``audit.audit``) whose partitions run on ``executor``; ``forge`` (this
    process's) is used for the plan, the ID-configuration check and the guard. ``planned``: the
    tasks of :func:`uuid_forge.partial.plan` when the caller made them already (counting is a scan)."""
    from .repair import DeleteLimit, build_plan, recheck, refuse_if_guarded, source_is_empty, source_warnings

    if repair:
        DeleteLimit.parse(max_delete)
    started = time.perf_counter()
    types = ([entity_type] if isinstance(entity_type, str) else list(entity_type) if entity_type is not None
             else _all_types(forge))
    idmarker.audit_findings(forge, types, refuse=repair and not dry_run)  # refused before any task runs
    tasks = planned if planned is not None else plan(forge, types, partition)
    if not tasks:
        raise ValidationError("nothing to audit: no entity type")
    options = {"verify_keys": verify_keys, "max_findings": max_findings, "show_values": show_values}
    merged: dict[str, Any] | None = None

    def done(_: int, partial: dict[str, Any]) -> None:
        nonlocal merged
        merged = partial if merged is None else merge(merged, partial)
        if progress is not None:
            progress(len(merged["parts"]), len(tasks), merged["entities"], merged["total_findings"])

    partials = executor.run("audit_partition", [{"task": t, **options} for t in tasks], done)
    merged = merge_all(partials)
    report = to_report(merged, types)
    executor.max_rss_mib = merged.get("max_rss_mib", 0.0)  # type: ignore[attr-defined] # bench/scale.py reads it
    fraction = 1.0 / (partition or Partition()).count
    orphaned = {f.entity_type for f in report.findings if f.kind == "orphan" and f.store != forge.source.name}
    empty = {et for et in orphaned if source_is_empty(forge, et)}
    report.warnings += source_warnings(forge, report, empty)
    counts: dict[str, int | None] = dict.fromkeys(empty, 0)
    if repair and dry_run:
        report.plan = build_plan(forge, report.findings, delete_orphans, max_delete, counts, fraction)
    elif repair:
        report.plan = build_plan(forge, recheck(forge, report.findings), delete_orphans, max_delete, counts, fraction)
        report.plan.rechecked = True
        refuse_if_guarded(report.plan)  # the whole audit's deletions, against each type's whole count
        groups = repair_groups(report.findings, max(1, min(executor.workers * 4,
                                                           math.ceil(len(report.findings) / 2000))))
        payload = {"delete_orphans": delete_orphans, "max_delete": max_delete, "counts": counts, "fraction": fraction}
        merge_repairs(report, executor.run("repair_findings", [{"findings": g, **payload} for g in groups]))
    report.seconds = time.perf_counter() - started
    return report
