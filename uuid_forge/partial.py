"""Partition audits as pure tasks, the associative merge of their partial reports, and the
executor that runs the tasks in this process.

A task is ``(configuration, entity type, ID ranges)`` in, a JSON-serialisable partial report out.
The partitions are the ones a single pass walks (``compare.partitions``), so merging the partials
of every partition, in any grouping or order, gives the same report: the same counts, the same
findings (kept in partition order, so the same first ``max_findings``), the same foreign samples.
Each partial names the partitions it covers; a partition seen twice (a Celery task re-run after
its worker died) is counted once.

Repair is not part of a partition task: the delete guard needs the whole type's counts, so the
coordinator (uuid_forge.audit) plans and guards on the merged findings, and only then are the
rewrites and proven deletions carried out, a group of IDs per task (:func:`repair_findings`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from functools import reduce
from typing import TYPE_CHECKING, Any, Protocol

from . import idmarker, onepass
from .compare import answering, describe_stale, full_pass, partitions
from .contract import SCAN
from .entitynames import name_findings
from .errors import UUIDForgeError, ValidationError
from .handles import Stores, StoreSet
from .record import Partition
from .repair import recheck_repaired, repair
from .report import CLASSES, FOREIGN_SAMPLES, AuditReport, Finding
from .strays import check_types
from .urls import mask_text

if TYPE_CHECKING:
    from .forgeview import ForgeView

Partial = dict[str, Any]  # JSON: see audit_partition for the keys

__all__ = ["Done", "Executor", "InProcessExecutor", "audit_partition", "finding_from_dict", "merge", "merge_all",
           "merge_repairs", "plan", "repair_findings", "repair_groups", "to_report"]


def plan(stores: Stores, types: list[str], within: Partition | None = None, whole_types: bool = False
           ) -> list[dict[str, Any]]:
    """One task per partition a single pass would walk: ``{pos, entity_type, index, count}``.

    With ``whole_types``, one task per type holding all its partitions (``{pos, entity_type,
    within, parts}``): in one process a message log is then read once per type, not per partition.

    Otherwise a store whose scan walks the whole store (Redis SCAN, uuid_forge.onepass) is left
    out of the partition tasks (``skip``) and audited by one more task per type (``only``): it
    reads that store once, bucketed, and the source partition by partition (an ordered range
    read), so the store is walked once per audit however many partitions and workers there are."""
    within = within or Partition()
    check_types(stores, types)  # a store that refuses a type is named before it is counted
    if whole_types:
        return [{"pos": pos, "entity_type": et, "within": [within.index, within.count],
                 "parts": [[p.index, p.count] for p in partitions(stores, et, within)]} for pos, et in enumerate(types)]
    once = [h.name for h in stores.stores[1:] if SCAN in h.adapter.capabilities and onepass.whole_scan(h.adapter)]
    tasks: list[dict[str, Any]] = []
    for pos, et in enumerate(types):
        parts = partitions(stores, et, within)
        tasks += [{"pos": pos, "entity_type": et, "index": p.index, "count": p.count, **({"skip": once} if once else {})}
                  for p in parts]
        if once:
            tasks.append({"pos": pos, "entity_type": et, "within": [within.index, within.count],
                          "parts": [[p.index, p.count] for p in parts], "only": once})
    return tasks


def _task_stores(stores: StoreSet, task: dict[str, Any]) -> StoreSet:
    """The stores a task audits: all but its ``skip`` ones, or its ``only`` ones (the source always)."""
    only, skip = task.get("only"), set(task.get("skip", ()))
    if only is None and not skip:
        return stores

    def wanted(name: str) -> bool:
        return name in only if only is not None else name not in skip

    return StoreSet([stores.source, *(h for h in stores.stores[1:] if wanted(h.name))],
                    {n: why for n, why in stores.down.items() if wanted(n)})


def audit_partition(forge: ForgeView, task: dict[str, Any], *, verify_keys: bool = False, max_findings: int = 100_000,
                    show_values: bool = False, stores: StoreSet | None = None,
                    progress: Callable[[int], None] | None = None, hashed: bool = True) -> Partial:
    """Audit the partitions of one type a task names in ``stores`` (by default: the stores of
    ``forge`` that answer); a pure function of the data.

    Stale findings are described (their fields named) and every finding of ours named by its key
    fields (uuid_forge.entitynames) here, where the partition's stores are open.
    ``progress(source records)`` is called after each partition; ``hashed``: compare by hashes
    computed in the stores where both sides can (uuid_forge.rangehash).
    """
    stores = _task_stores(stores if stores is not None else answering(forge), task)
    et, pos = task["entity_type"], task["pos"]
    only = task.get("only")  # the one-pass task of a whole-scan store: the source's own findings are the others'
    verify_keys = verify_keys and only is None
    if "parts" in task:
        parts, within = [Partition(i, c) for i, c in task["parts"]], Partition(*task["within"])
    else:
        parts = [within := Partition(task["index"], task["count"])]
    report = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in stores.stores[1:]},
                         source=stores.source.name, max_findings=max_findings)
    report.id_config = idmarker.audit_findings(forge, [et])
    # sized by the plan already: counting the source again in every task would scan it each time
    marks: list[int] = []  # the one-pass task: how many findings there were as each partition ended

    def ended(entities: int) -> None:
        marks.append(len(report.findings))

    full_pass(forge, stores, et, within, report, verify_keys, progress if only is None else ended, parts,
              hashed=hashed, source_findings=only is None)
    describe_stale(stores, report, show_values)
    name_findings(stores, getattr(forge, "prover", None), report)  # the key fields beside each finding's ID
    report.not_audited = {**stores.down, **report.not_audited}
    tail: list[str] = []
    lo = parts[0].lo
    places = [[lo, n] for n in range(len(report.findings))]
    samples_at = lo
    if only is not None:  # the partition tasks count the partitions and the source's entities
        report.partitions, report.partition_times, tail = 0, [], ["+".join(only)]
        places, samples_at = _after_partitions(parts, marks, len(report.findings)), _LAST
    return {
        "parts": [[pos, et, p.index, p.count, *tail] for p in parts], "source": report.source, "max_findings": max_findings,
        "stores": {n: {k: c[k] for k in CLASSES} for n, c in report.stores.items()},
        "findings": [[pos, *at, f.to_dict()] for at, f in zip(places, report.findings)],
        "total_findings": len(report.findings) + report.truncated,
        "foreign_samples": {s: [[pos, samples_at, n, text] for n, text in enumerate(v)]
                            for s, v in report.foreign_samples.items()},
        "warnings": [[pos, samples_at, n, w] for n, w in enumerate(report.warnings)],
        "partition_times": [[pos, lo, n, et, label, secs, count]
                            for n, (et, label, secs, count) in enumerate(report.partition_times)],
        "partitions": report.partitions, "not_audited": report.not_audited, "id_config": report.id_config,
        "entities": sum(t[3] for t in report.partition_times),
        "hashed": {n: dict(c) for n, c in report.hashed.items()},
        "max_rss_mib": _rss_mib(),
    }


_AFTER = 1 << 40  # a one-pass task's finding sorts after its partition's own task's findings
_LAST = 1 << 128  # and its entries without an ID after every partition, as in one process


def _after_partitions(parts: list[Partition], marks: list[int], count: int) -> list[list[int]]:
    """Where each finding of a one-pass task sorts among the partition tasks' findings: in its
    partition, after that partition task's own (a single pass merges the stores in that order)."""
    places: list[list[int]] = []
    j = 0
    for n in range(count):
        while j < len(marks) and n >= marks[j]:
            j += 1
        places.append([parts[j].lo, _AFTER + n] if j < len(parts) else [_LAST, n])
    return places


def _rss_mib() -> float:
    """This process's peak resident memory (Linux: KiB), for the memory per worker in docs/scaling.md."""
    try:
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    except ImportError:  # not on this platform
        return 0.0


def _key(part: list[Any]) -> tuple[Any, ...]:
    return tuple(part)


def merge(a: Partial, b: Partial) -> Partial:
    """The partial of the union of two partials' partitions: associative and commutative.

    A partial whose partitions the other already covers is a duplicate (a re-run task) and adds
    nothing; partials that overlap only in part cannot be merged (they would double-count).
    """
    ka, kb = {_key(p) for p in a["parts"]}, {_key(p) for p in b["parts"]}
    if kb <= ka:
        return a
    if ka <= kb:
        return b
    if ka & kb:
        raise ValidationError("partial reports overlap in part: merge the single partitions instead")
    stores: dict[str, dict[str, int]] = {}
    for side in (a, b):
        for name, counts in side["stores"].items():
            mine = stores.setdefault(name, dict.fromkeys(CLASSES, 0))
            for k in CLASSES:
                mine[k] += counts.get(k, 0)
    cap = min(a["max_findings"], b["max_findings"])
    samples: dict[str, list[Any]] = {}
    for name in sorted(set(a["foreign_samples"]) | set(b["foreign_samples"])):
        both = a["foreign_samples"].get(name, []) + b["foreign_samples"].get(name, [])
        samples[name] = sorted(both, key=lambda s: s[:3])[:FOREIGN_SAMPLES]
    id_config: dict[str, dict[str, Any]] = {}
    for f in a["id_config"] + b["id_config"]:
        seen = id_config.get(f["entity_type"])
        if seen is None:
            id_config[f["entity_type"]] = {**f, **({"verify_keys": dict(f["verify_keys"])} if "verify_keys" in f else {})}
        elif "verify_keys" in f:
            mine = seen.setdefault("verify_keys", {"checked": 0, "mismatched": 0})
            for k in ("checked", "mismatched"):
                mine[k] += f["verify_keys"][k]
    return {
        "parts": sorted(a["parts"] + b["parts"]), "source": a["source"] or b["source"], "max_findings": cap,
        "stores": stores,
        "findings": sorted(a["findings"] + b["findings"], key=lambda f: f[:3])[:cap],
        "total_findings": a["total_findings"] + b["total_findings"],
        "foreign_samples": samples,
        "warnings": sorted(a["warnings"] + b["warnings"], key=lambda w: w[:3]),
        "partition_times": sorted(a["partition_times"] + b["partition_times"], key=lambda t: t[:3]),
        "partitions": a["partitions"] + b["partitions"],
        "not_audited": {**b["not_audited"], **a["not_audited"]},
        "id_config": sorted(id_config.values(), key=lambda f: f["entity_type"]),
        "entities": a["entities"] + b["entities"],
        "hashed": _sum_counts(a.get("hashed", {}), b.get("hashed", {})),
        "max_rss_mib": max(a.get("max_rss_mib", 0.0), b.get("max_rss_mib", 0.0)),
    }


def _sum_counts(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out = {n: dict(c) for n, c in a.items()}
    for n, c in b.items():
        mine = out.setdefault(n, {})
        for k, v in c.items():
            mine[k] = mine.get(k, 0) + v
    return out


def merge_all(partials: list[Partial]) -> Partial:
    """Every partial merged; a partial covering the same partitions as one before it (a re-run
    task's result) is dropped first, so it is counted once."""
    if not partials:
        raise ValidationError("no partial reports to merge")
    unique = {tuple(_key(p) for p in partial["parts"]): partial for partial in reversed(partials)}
    return reduce(merge, unique.values())


def finding_from_dict(d: dict[str, Any]) -> Finding:
    return Finding(d["store"], d["entity_type"], d["id"], d["class"], d.get("detail", ""), d.get("raw"),
                   tuple(d.get("fields", ())), d.get("values"), key=d.get("key"))


def to_report(partial: Partial, entity_types: list[str]) -> AuditReport:
    """The AuditReport a single-process audit of the same partitions gives (``seconds`` aside).

    A store that some partition found not answering is left out of every partition's counts,
    as a single-process audit leaves out a store lost half-way.
    """
    lost = partial["not_audited"]
    report = AuditReport(stores={n: Counter(c) for n, c in partial["stores"].items() if n not in lost},
                         source=partial["source"], max_findings=partial["max_findings"])
    report.entity_types = list(entity_types)
    report.findings = _once_on_source([finding_from_dict(f[3]) for f in partial["findings"] if f[3]["store"] not in lost],
                                      report)
    report.truncated = partial["total_findings"] - len(partial["findings"])
    report.foreign_samples = {s: [t[3] for t in v] for s, v in partial["foreign_samples"].items() if s not in lost}
    report.warnings = list(dict.fromkeys(w[3] for w in partial["warnings"]))
    report.partition_times = [(t[3], t[4], t[5], t[6]) for t in partial["partition_times"]]
    report.partitions = partial["partitions"]
    report.not_audited = dict(lost)
    report.id_config = [dict(f) for f in partial["id_config"]]
    report.hashed = {n: Counter(c) for n, c in partial.get("hashed", {}).items() if n not in lost}
    return report


def _once_on_source(findings: list[Finding], report: AuditReport) -> list[Finding]:
    """A source entry found unproven by two tasks of one partition (a partition task and the
    one-pass task of a whole-scan store, uuid_forge.partial.plan) is one finding, as in one pass."""
    seen: set[tuple[str, str]] = set()
    out: list[Finding] = []
    for f in findings:
        if f.store == report.source and f.kind == "unproven":
            if (f.entity_type, f.id) in seen:
                report.stores[f.store]["unproven"] -= 1
                continue
            seen.add((f.entity_type, f.id))
        out.append(f)
    return out


def repair_findings(forge: ForgeView, findings: list[dict[str, Any]], delete_orphans: bool, max_delete: Any,
                    counts: dict[str, int | None], fraction: float = 1.0, stores: StoreSet | None = None,
                    rechecked: list[Finding] | None = None) -> dict[str, Any]:
    """Repair one group of findings (every finding of an ID is in the same group) as a
    single-process repair does: re-check each, re-apply the guard against the whole type's source
    count, rewrite, delete orphans proven absent from the source right before, then re-read them.
    The coordinator has already applied the guard to all the findings of the audit. ``stores``:
    the stores to repair (by default, the stores of ``forge`` that answer); ``rechecked``: the
    findings the coordinator re-checked and guarded just before, in this process (not JSON)."""
    stores = stores if stores is not None else answering(forge)
    report = AuditReport(stores={h.name: Counter({k: 0 for k in CLASSES}) for h in stores.stores[1:]},
                         source=stores.source.name)
    report.findings = [finding_from_dict(f) for f in findings]
    prover = forge.prover  # every deletion and copy proven here, just before: a task proves nothing by arriving
    try:
        repair(stores, report, delete_orphans, max_delete, dict(counts), fraction, rechecked, prover)
    except UUIDForgeError as err:  # refused here (the source changed since the plan): nothing of this group done
        report.repair_errors.append(f"repair of {len(findings)} finding(s) refused or failed: {mask_text(str(err))}")
    left = recheck_repaired(stores, report, prover)
    return {"repaired": {n: dict(c) for n, c in report.repaired.items()}, "repair_errors": report.repair_errors,
            "rechecked": {n: {k: c[k] for k in CLASSES} for n, c in left.items()}}


def repair_groups(findings: list[Finding], groups: int) -> list[list[dict[str, Any]]]:
    """Findings split into ``groups`` by ID range, so every finding of one ID lands in one group
    (the re-read after repair counts each ID once per store)."""
    out: list[list[dict[str, Any]]] = [[] for _ in range(max(1, groups))]
    for f in findings:
        try:
            n = uuid.UUID(f.id).int * len(out) >> 128 if len(f.id) == 36 else 0
        except ValueError:
            n = 0
        out[n].append(f.to_dict())
    return [g for g in out if g]


def merge_repairs(report: AuditReport, results: list[dict[str, Any]]) -> None:
    """Add the repair groups' outcomes to ``report`` (repaired, repair_errors, rechecked)."""
    rechecked: dict[str, Counter[str]] = {n: Counter({k: 0 for k in CLASSES}) for n in report.stores
                                          if n != report.source}
    for r in results:
        for name, done in r["repaired"].items():
            report.repaired.setdefault(name, Counter()).update(done)
        report.repair_errors += r["repair_errors"]
        for name, counts in r["rechecked"].items():
            rechecked.setdefault(name, Counter({k: 0 for k in CLASSES})).update(counts)
        dropped = sum((r.get("not_proven") or {}).values())
        if dropped:  # claims the worker could not re-prove: counted, never acted on, never named
            report.warnings.append(f"repair: {dropped} finding(s) not acted on: the worker could not re-prove them "
                                   f"({', '.join(f'{n} {why}' for why, n in sorted(r['not_proven'].items()))})")
    for name, counts in report.stores.items():  # never acted on, so still there: the repair leaves them
        if counts["unproven"]:
            rechecked.setdefault(name, Counter({k: 0 for k in CLASSES}))["unproven"] = counts["unproven"]
    report.rechecked = rechecked


#: ``done(i, result)``: called as the task of payload ``i`` finishes
Done = Callable[[int, Any], None]


class Executor(Protocol):
    """Where the audit's tasks run: here (InProcessExecutor), in worker processes or on Celery
    (uuid_forge.executors). Defined here, beside the one every audit has, so the audit names it
    without importing the executors, which open Forges of their own."""

    workers: int
    name: str

    def run(self, task: str, payloads: list[dict[str, Any]], done: Done | None = None) -> list[Any]:
        """Each payload's result, in order; ``done(i, result)`` as each finishes."""
        ...


class InProcessExecutor:
    """Runs the audit's tasks here, one after the other, on stores already opened and pinged
    (``stores``): the executor a plain ``audit()`` uses, so one orchestrator serves both."""

    name = "in-process"
    workers = 1
    #: the tasks share this process: one task per type (a message log is then read once per type,
    #: uuid_forge.partial.plan) and one repair group
    in_process = True

    def __init__(self, forge: ForgeView, stores: StoreSet, progress: Callable[[int], None] | None = None) -> None:
        self.forge = forge
        self.stores = stores
        self.progress = progress

    def run(self, task: str, payloads: list[dict[str, Any]],
            done: Done | None = None) -> list[Any]:
        out: list[Any] = []
        for i, payload in enumerate(payloads):
            if task == "audit_partition":
                result: Any = audit_partition(self.forge, stores=self.stores, progress=self.progress, **payload)
            elif task == "repair_findings":
                result = repair_findings(self.forge, stores=self.stores, **payload)
            else:
                raise ValidationError(f"unknown audit task {task!r}")
            out.append(result)
            if done is not None:
                done(i, result)
        return out
