"""Consistency audits: every store compared with the source of truth, and repair.

A full audit streams ``(id, fingerprint)`` pairs partition by partition over ID ranges. One
partition of the source is held in memory at a time (up to 1 + ``compare.BEHIND`` while a store
read once per audit is still being read), and the number of partitions grows with the source's
size, so memory stays bounded however many entities there are (deterministic IDs are
uniform, so equal ranges hold about equal numbers). Each ID in each store is one of:

* ok: present with the source's fingerprint;
* missing: in the source, not in the store;
* orphan: in the store, not in the source;
* deleted: in the store, not in the source, which holds its tombstone (uuid_forge.tombstones):
  deleted on purpose and still held here (a store restored from an old backup); repair removes
  it (proven ours, under the delete guard) without ``delete_orphans``;
* stale: present with a different fingerprint;
* malformed: an ID of this scheme stored in the wrong encoding (a string ``_id`` where Binary is
  expected, a key in the wrong form), or, with ``verify_keys``, an ID the scheme could not have
  produced for the business key stored beside it;
* foreign: anything else under a type's names (another application's keys, files or documents,
  another tenant's keys; see uuid_forge.classify): counted with a few samples, never repaired or
  deleted, and not an inconsistency.

Repair rewrites missing, stale and malformed records from the source (a malformed entry's wrong
twin is removed only when its ID is in the source and so rewritten in the right form), and
deletes orphans only when asked to. Foreign entries are never touched. Repair never acts on a
finding as found: see :mod:`uuid_forge.repair` for the re-checks beside live writers and the
guard against mass deletion.

One orchestrator: :func:`audit` plans the tasks, runs them on an executor (this process by
default, :class:`~uuid_forge.partial.InProcessExecutor`; worker processes or Celery with
:mod:`uuid_forge.executors`), merges their partial reports, then warns, plans, guards and
repairs. Finding is :mod:`uuid_forge.compare`, fixing :mod:`uuid_forge.repair`.

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
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import idmarker
from .compare import PARTITION_TARGET, answering, describe_stale, diff_fields, point_pass
from .entitynames import name_findings
from .errors import ValidationError
from .handles import Stores, StoreSet
from .partial import Executor, InProcessExecutor, merge, merge_all, merge_repairs, plan, repair_groups, to_report
from .record import Partition
from .repair import DeleteLimit, build_plan, recheck, refuse_if_guarded, source_is_empty, source_warnings
from .report import CLASSES, NOT_FINDINGS, AuditReport, Finding
from .strays import Scope, audit_scope, check_types, stray_findings
from .tombstones import mark_deleted

if TYPE_CHECKING:
    from .forgeview import ForgeView

#: called after each task with (partitions done, of total, source entities, findings so far)
Progress = Callable[[int, int, int, int], None]

__all__ = ["CLASSES", "NOT_FINDINGS", "PARTITION_TARGET", "AuditReport", "Finding", "Progress", "audit",
           "describe_stale", "diff_fields"]


def audit(forge: ForgeView, entity_type: str | Iterable[str] | None = None, *, keys: Iterable[Any] | None = None,
          ids: Iterable[uuid.UUID] | None = None, partition: Partition | None = None, repair: bool = False,
          delete_orphans: bool = False, dry_run: bool = False, verify_keys: bool = False,
          progress: Callable[[int], None] | None = None, max_findings: int = 100_000,
          max_delete: int | str | None = None, show_values: bool = False, executor: Executor | None = None,
          task_progress: Progress | None = None, planned: list[dict[str, Any]] | None = None,
          hashed: bool | None = None) -> AuditReport:
    """Audit ``entity_type`` (a type, a list of types, or every type when None) in every store
    against the source of truth.

    ``keys`` or ``ids`` make a point audit of those entities; otherwise the audit is full (within
    ``partition`` when given, so machines can split the work). With ``repair``, missing, stale and
    malformed records are rewritten from the source, and orphans deleted if ``delete_orphans``.
    ``dry_run`` with ``repair`` only computes the plan (``report.plan``).

    Orphan deletion is guarded: ``max_delete`` (a number, or ``"P%"`` of the source's records of
    that type; default 10%) caps the deletions per store and type, and a type the source holds
    none of is never emptied unless a number allows it. A refused repair raises
    :class:`~uuid_forge.errors.RepairRefusedError` before anything is changed.

    A stale finding names the fields that differ; ``show_values`` adds their values (hidden by
    default: they may be personal data).

    The tasks run on ``executor`` (worker processes or Celery, uuid_forge.executors), else in this
    process on the stores that answer: an optional store that does not answer is left out, not
    fatal (the report lists it in ``not_audited``; ``complete`` is then False), a source or
    required store that does not answer still raises. ``progress(source records)`` is called
    after each partition in this process, ``task_progress`` (:data:`Progress`) after each task;
    ``planned``: the tasks of :func:`uuid_forge.partial.plan` when the caller made them already.

    ``hashed`` (default: the forge's ``audit_hashed``, ``[audit] hashed``, true): a store that hashes what it holds as the source does is compared by
    per-range aggregates computed in both, and only differing ranges are read record by record
    (uuid_forge.rangehash; ``report.hashed`` counts both); False reads every record.
    """
    if repair:
        DeleteLimit.parse(max_delete)  # a bad limit fails before the audit, not after
    started = time.perf_counter()
    hashed = getattr(forge, "audit_hashed", True) if hashed is None else hashed
    refuse = repair and not dry_run
    stores: StoreSet | None = None  # with an executor, the workers open and ping their own stores
    if executor is None:
        stores = answering(forge)
        executor = InProcessExecutor(forge, stores, progress)
    in_process = getattr(executor, "in_process", False)
    if keys is not None or ids is not None:
        report = _point(forge, stores or answering(forge), entity_type, keys, ids, refuse, verify_keys, max_findings,
                        show_values)
    else:
        scope = (Scope([entity_type] if isinstance(entity_type, str) else list(entity_type))
                 if entity_type is not None else audit_scope(stores or forge, forge.types))
        types = scope.types
        check_types(stores or forge, types)  # a store that refuses a type is named, before any task runs
        idmarker.audit_findings(forge, types, refuse=refuse)  # refused before any task runs
        tasks = planned if planned is not None else plan(stores or forge, types, partition, whole_types=in_process)
        if not tasks and not in_process and not scope.strays:
            raise ValidationError("nothing to audit: no entity type")
        report = _run_tasks(executor, tasks, types, verify_keys, max_findings, show_values, task_progress,
                            stores or forge, hashed)
        report.warnings += scope.warnings
        stray_findings(stores or forge, scope, report)  # types only other stores hold: a finding each, not an error
    fraction = 1.0 / (partition or Partition()).count
    guarded = stores or forge
    mark_deleted(guarded.source.adapter, report)  # orphans the user deleted on purpose: their own class
    # a type the stores hold and the source lacks: a wrong source, whether or not orphans are deleted
    orphaned = {f.entity_type for f in report.findings if f.kind == "orphan" and f.store != guarded.source.name}
    empty = {et for et in orphaned if source_is_empty(guarded, et)}
    report.warnings += source_warnings(guarded, report, empty)
    counts: dict[str, int | None] = dict.fromkeys(empty, 0)  # the others are counted only if a plan needs them
    if repair and dry_run:
        report.plan = build_plan(guarded, report.findings, delete_orphans, max_delete, counts, fraction)
    elif repair:
        rechecked = recheck(guarded, report.findings)
        report.plan = build_plan(guarded, rechecked, delete_orphans, max_delete, counts, fraction)
        report.plan.rechecked = True
        refuse_if_guarded(report.plan)  # the whole audit's deletions, against each type's whole count
        payload = {"delete_orphans": delete_orphans, "max_delete": max_delete, "counts": counts, "fraction": fraction}
        if in_process:  # one group, acted on as re-checked and guarded just now
            tasks = [{"findings": [f.to_dict() for f in report.findings], "rechecked": rechecked, **payload}]
        else:  # each group is re-checked and guarded again where it runs, later
            groups = repair_groups(report.findings, max(1, min(executor.workers * 4,
                                                               math.ceil(len(report.findings) / 2000))))
            tasks = [{"findings": g, **payload} for g in groups]
        merge_repairs(report, executor.run("repair_findings", tasks))
    report.seconds = time.perf_counter() - started
    return report


def _run_tasks(executor: Executor, tasks: list[dict[str, Any]], types: list[str], verify_keys: bool,
               max_findings: int, show_values: bool, task_progress: Progress | None,
               stores: Stores, hashed: bool = True) -> AuditReport:
    """The partition tasks run on ``executor`` and their partial reports merged into one."""
    if not tasks:  # nothing the source knows: an empty report (stray types may be added to it)
        report = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in stores.stores[1:]},
                             source=stores.source.name, max_findings=max_findings)
        report.not_audited = dict(getattr(stores, "down", {}))
        report.entity_types = list(types)
        return report
    options: dict[str, Any] = {"verify_keys": verify_keys, "max_findings": max_findings, "show_values": show_values}
    if not hashed:  # absent means hashed: a worker of the version before still takes the task
        options["hashed"] = False
    merged: dict[str, Any] | None = None
    parts = sum(len(t.get("parts", [None])) for t in tasks)

    def done(_: int, partial: dict[str, Any]) -> None:
        nonlocal merged
        merged = partial if merged is None else merge(merged, partial)
        if task_progress is not None:
            task_progress(len(merged["parts"]), parts, merged["entities"], merged["total_findings"])

    partials = executor.run("audit_partition", [{"task": t, **options} for t in tasks], done)
    merged = merge_all(partials)
    executor.max_rss_mib = merged.get("max_rss_mib", 0.0)  # type: ignore[attr-defined] # bench/scale.py reads it
    return to_report(merged, types)


def _point(forge: ForgeView, stores: StoreSet, entity_type: str | Iterable[str] | None, keys: Iterable[Any] | None,
           ids: Iterable[uuid.UUID] | None, refuse: bool, verify_keys: bool, max_findings: int,
           show_values: bool) -> AuditReport:
    """A point audit of the entities ``keys`` or ``ids`` name, read by ID in this process."""
    if not isinstance(entity_type, str):
        raise ValidationError("a point audit (keys or ids) needs one entity type")
    report = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in stores.stores[1:]},
                         source=stores.source.name, max_findings=max_findings)
    targets = list(ids or []) + (forge.generator.generate_many(entity_type, list(keys)) if keys is not None else [])
    report.entity_types = [entity_type]
    report.id_config = idmarker.audit_findings(forge, report.entity_types, refuse=refuse)
    point_pass(forge, stores, entity_type, targets, report, verify_keys)
    describe_stale(stores, report, show_values)
    name_findings(stores, getattr(forge, "prover", None), report)  # a full audit's tasks name theirs
    report.not_audited = dict(stores.down)
    return report
