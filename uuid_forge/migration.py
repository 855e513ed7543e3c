"""``uuid-forge migrate``: move existing entries from random IDs to deterministic ones, by expand
and contract, across every configured store (docs/migration.md).

* :func:`plan` reads every store's entries of the migrated types, computes each one's new ID from
  its key fields and records the mapping in the source (uuid_forge.migrationmap). Entries without
  key fields and two old entries reaching one new ID stop it unless resolved.
* :func:`expand` writes each mapped entity under its new ID beside the old entry, references
  rewritten from old IDs to new ones; nothing is deleted.
* :func:`verify` reads every new copy back, checks every reference and runs the audit: the gate.
* :func:`contract` deletes the old entries proven mapped, only after a verify of this exact map.
* :func:`rollback` (before any contract) removes the new copies expand created, if unchanged.

Every phase works in batches and records each batch's end state in the mapping before moving on,
so a killed run leaves at most one batch in flight, which the next run redoes idempotently. No
driver is imported here: stores are reached through the adapter contract only; entries not named
by a UUID are read with ``Adapter.read_raw`` (a store without it leaves them unmapped).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from . import inplace
from . import migrationmap as mm
from .contract import Adapter, chunked
from .errors import MigrationRefusedError, StoreError, StoreUnavailableError, ValidationError
from .masking import mask_name
from .migrationmap import Mapping, PlanState
from .migrationrun import Outcome, Run, shown_entry
from .record import ForeignEntry, MalformedID, Record
from .repair import DeleteLimit
from .settings import MigrateSettings, check_plan_name

if TYPE_CHECKING:
    from .forge import Forge

log = logging.getLogger("uuid_forge.migration")

__all__ = ["COLLISION_RULES", "Outcome", "contract", "expand", "plan", "rollback", "status", "verify"]

COLLISION_RULES = ("fail", "keep-first")
_ZERO = uuid.UUID(int=0)
Progress = Callable[[int], None]


def read_old(adapter: Adapter, entity_type: str, maps: list[Mapping]) -> dict[str, dict[str, Any] | None]:
    """The data of each old entry by address (None: unreadable; absent: not held any more)."""
    out: dict[str, dict[str, Any] | None] = {}
    ids = [m.old for m in maps if m.kind == "uuid"]
    if ids:
        for ident, record in adapter.get_many(entity_type, [uuid.UUID(i) for i in ids]).items():
            out[str(ident)] = None if record.unreadable else dict(record.data)
    raws = [m.old for m in maps if m.kind == "raw"]
    if raws:
        for raw, entry in _read_raw(adapter, entity_type, raws).items():
            out[raw] = entry
    return out


def can_read_raw(adapter: Adapter) -> bool:
    """Whether ``adapter`` reads entries by raw name: it has ``read_raw`` and, where the contract
    declares the ``_read_raw`` hook (branch rawread), implements it (the base raises)."""
    if getattr(adapter, "read_raw", None) is None:
        return False
    base = getattr(Adapter, "_read_raw", None)
    return base is None or getattr(type(adapter), "_read_raw", None) is not base


def _read_raw(adapter: Adapter, entity_type: str, raws: list[str]) -> dict[str, dict[str, Any] | None]:
    """Entries not named by a UUID, through ``Adapter.read_raw`` (None: unreadable)."""
    if not can_read_raw(adapter):
        return {}
    entries = cast(Any, adapter).read_raw(entity_type, raws)  # declared by the contract once rawread is merged
    return {raw: (None if entry.data is None else dict(entry.data)) for raw, entry in entries.items()}


def _new_data(run: Run, store: str, entity_type: str, data: dict[str, Any],
              index: dict[tuple[str, str], dict[str, str]]) -> tuple[dict[str, Any], str]:
    """``data`` with its reference fields rewritten from old IDs to new ones, or ("", why) when a
    reference value is found nowhere (never guessed)."""
    out = dict(data)
    for fname, target in run.references(entity_type).items():
        value = data.get(fname)
        if value is None:
            continue
        text = str(value)
        new = index.get((store, target), {}).get(text) or index.get((run.source_name, target), {}).get(text)
        if new is None:
            if text in index.get(("*new", target), {}):
                continue  # already a new ID (an entry already deterministic, or written so)
            return {}, f"reference {fname} -> {target}: old ID not found in the plan of {store} or the source"
        out[fname] = new
    return out, ""


def _index(mappings: list[Mapping], run: Run | None = None) -> dict[tuple[str, str], dict[str, str]]:
    """Per (store, type): old ID as references hold it -> new ID; per ("*new", type): every new ID.
    With ``run``, the in-place tables of the source too (their primary key -> the ID their key
    columns give): a serial ``users.id`` is the old user ID a cache's orders hold."""
    index: dict[tuple[str, str], dict[str, str]] = {}
    for m in mappings:
        if m.new is not None and m.state != "left":
            index.setdefault((m.store, m.entity_type), {})[m.legacy] = m.new
            index.setdefault(("*new", m.entity_type), {})[m.new] = m.new
    if run is not None:
        _index_in_place(run, index)
    return index


def _index_in_place(run: Run, index: dict[tuple[str, str], dict[str, str]], every: bool = False) -> None:
    """Add each in-place table of the source store: pk text -> new ID, computed in Python from the
    key columns as verify does (the same answer as the database's uuid_forge_id). Only tables some
    reference points at are read (``every``: all); an entry of the plan's own mapping wins."""
    referenced = {t for refs in run.settings.references.values() for t in refs.values()}
    handles = {h.name: h.adapter for h in run.forge.stores}
    for place in run.settings.in_place.values():
        if place.store != run.source_name or not (every or place.entity_type in referenced):
            continue
        opener = getattr(handles[place.store], "shadow_columns", None)
        if opener is None:
            continue
        try:
            sql = opener()
        except ValidationError as err:  # another SQL database: say which table of the config asked
            raise MigrationRefusedError(f"[migrate.in_place.{place.name}]: store {place.store!r}: {err}") from None
        if not sql.columns(place.table):
            continue  # no such table (yet): nothing to add
        olds = index.setdefault((place.store, place.entity_type), {})
        news = index.setdefault(("*new", place.entity_type), {})
        for page in sql.rows(place.table, place.pk, place.pk, place.key, run.batch):
            ids = run.forge.prover.ids_from_keys(place.entity_type, [k for _, _, k in page])
            for (pk, _, _), new in zip(page, ids, strict=True):
                if new is not None:
                    olds.setdefault(str(pk), str(new))
                    news[str(new)] = str(new)


def _expected(run: Run, m: Mapping, data: dict[str, Any] | None, index: dict[tuple[str, str], dict[str, str]]
              ) -> tuple[Record | None, str]:
    """The new copy an old entry gives now, or (None, why not): its key fields must still give
    the mapped new ID, and every reference must resolve."""
    if data is None:
        return None, "the old entry cannot be read"
    key, why = run.forge.prover.key_of(m.entity_type, Record(m.entity_type, _ZERO, data))
    if key is None:
        return None, why
    new = run.forge.prover.ids_from_keys(m.entity_type, [key])[0]
    if new is None or str(new) != m.new:
        return None, "its key fields now give another ID than the plan recorded (changed since plan: plan again)"
    rewritten, why = _new_data(run, m.store, m.entity_type, data, index)
    if why:
        return None, why
    return Record(m.entity_type, new, rewritten, key), ""


def _with_retries(run: Run, call: Callable[[], Any]) -> Any:
    """A store call retried on connection trouble as write-through retries ([write] retries)."""
    attempts = max(1, run.forge.settings.retries + 1)
    for n in range(attempts):
        try:
            return call()
        except StoreUnavailableError:
            if n == attempts - 1:
                raise
            run.forge._sleep(run.forge.settings.backoff * (2 ** n))
    return None


def _in_batches(run: Run, state: PlanState, phase: str, store: str, entity_type: str, todo: list[Mapping],
                total: int, dry_run: bool, progress: Progress | None,
                step: Callable[[list[Mapping]], None]) -> None:
    """``step`` over ``todo`` batch by batch, the phase's checkpoint (done of ``total``) saved after
    each so a killed run resumes there and ``status`` shows how far it got; nothing saved in a dry run."""
    done = total - len(todo)
    for batch in chunked(todo, run.batch):
        step(batch)
        done += len(batch)
        if not dry_run:
            state.checkpoint(phase, store, entity_type, done, total)
            run.save_state(state)
        if progress:
            progress(len(batch))


def _uuid_text(raw: str) -> uuid.UUID | None:
    """The UUID a raw name is, in its canonical text form exactly (a user table's v4 ``id``)."""
    try:
        value = uuid.UUID(raw)
    except (ValueError, TypeError):
        return None
    return value if str(value) == raw else None


# -- plan ---------------------------------------------------------------------------------------
def plan(forge: Forge, settings: MigrateSettings, *, plan_name: str | None = None, types: Iterable[str] | None = None,
         stores: Iterable[str] | None = None, dry_run: bool = False, leave_unmapped: bool = False,
         on_collision: str = "fail", batch_size: int | None = None, progress: Progress | None = None) -> Outcome:
    """Read every selected store's entries and record old -> new for each (see the module doc)."""
    if on_collision not in COLLISION_RULES:
        raise ValidationError(f"--on-collision {on_collision!r}: use one of {', '.join(COLLISION_RULES)}")
    run = Run(forge, settings, plan_name, types, stores, batch_size)
    out = Outcome("plan", run.plan, dry_run)
    held, state = mm.load(run.source, run.plan)
    if state is not None and state.contract_started:
        raise MigrationRefusedError(f"plan {run.plan!r}: contract has started; start a new plan (--plan NAME) "
                                    "for entries written since")
    known = {m.id: m for m in held}
    found: list[Mapping] = []
    for store, adapter in run.stores.items():
        for entity_type in run.types:
            try:
                adapter.check_entity_type(entity_type)
            except ValidationError:
                continue  # a store holding other types only (a user table holds one)
            found += _plan_place(run, out, store, adapter, entity_type, leave_unmapped, on_collision, progress)
    inplace.plan(run, out, leave_unmapped)
    if out.stopped:
        return out
    fresh: list[Mapping] = []
    for m in found:
        prior = known.get(m.id)
        if prior is None:
            fresh.append(m)
        elif prior.new != m.new and prior.state not in ("planned", "left", "rolled_back"):
            out.problem(m, m.store, m.entity_type, "changed", "mapped to another new ID by an earlier run that has "
                        "already expanded it; roll back first")
            out.stopped = "an entry changed after expand"
        elif prior.new != m.new or prior.state != m.state and prior.state in ("planned", "left"):
            fresh.append(m)  # re-planned before expand: the newer answer
    if out.stopped or dry_run:
        return out
    mm.save(run.source, fresh)
    state = state or PlanState(run.plan)
    state.planned_at = mm.now()
    state.verified = None
    state.counts.update({k: dict(v) for k, v in out.counts.items()})
    mm.save_state(run.source, state)
    out.count(run.source_name, mm.MIGRATION_TYPE, "mappings written", len(fresh))
    return out


def _held_by_source(run: Run, store: str, entity_type: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Of entries whose own data cannot prove their ID (a file uuid-forge wrote holds the data, the
    key apart), those the source holds under the same ID, proven from the source's key fields:
    already under their deterministic ID, so nothing to migrate. Only counted: plan maps, writes
    and deletes none of them either way."""
    if not ids or store == run.source_name:
        return set()
    held = run.source.get_many(entity_type, ids)
    proofs = run.forge.prover.prove(entity_type, held, run.source.view)
    return {ident for ident, record in held.items() if proofs[ident].ok}


def _plan_place(run: Run, out: Outcome, store: str, adapter: Adapter, entity_type: str, leave_unmapped: bool,
                on_collision: str, progress: Progress | None) -> list[Mapping]:
    ids: list[uuid.UUID] = []
    raws: list[str] = []
    for ident, _ in adapter.scan(entity_type, include_malformed=True):
        if type(ident) is uuid.UUID or isinstance(ident, uuid.UUID):
            ids.append(ident)
        elif isinstance(ident, ForeignEntry) and _uuid_text(ident.raw) is not None:
            ids.append(_uuid_text(ident.raw))  # type: ignore[arg-type]  # a UUID of another version (v4): get_many reads it
        elif isinstance(ident, (MalformedID, ForeignEntry)):
            raws.append(ident.raw)
    out.count(store, entity_type, "entries", len(ids) + len(raws))
    for what in ("already deterministic", "to map", "unmapped", "collisions"):  # every column, zeros too
        out.count(store, entity_type, what, 0)
    field_name = run.old_id_field(store)
    referenced = any(entity_type in refs.values() for refs in run.settings.references.values())
    candidates: list[tuple[str, str, dict[str, Any] | None, str]] = []  # kind, address, data, why unreadable
    for batch in chunked(ids, run.batch):
        records = adapter.get_many(entity_type, batch)
        proofs = run.forge.prover.prove(entity_type, records, adapter.view)
        vouched = _held_by_source(run, store, entity_type, [i for i in batch if i in records and not proofs[i].ok])
        for ident in batch:
            record = records.get(ident)
            if record is None:
                continue  # deleted since the scan
            if proofs[ident].ok or ident in vouched:
                out.count(store, entity_type, "already deterministic")
            else:
                candidates.append(("uuid", str(ident), None if record.unreadable else dict(record.data),
                                   record.unreadable or ""))
        if progress:
            progress(len(batch))
    readable = can_read_raw(adapter)
    for batch in chunked(raws, run.batch):
        if not readable:
            candidates += [("raw", r, None, "this store cannot read entries not named by a UUID (no read_raw)")
                           for r in batch]
            continue
        entries = cast(Any, adapter).read_raw(entity_type, batch)
        for raw in batch:
            entry = entries.get(raw)
            if entry is None:  # gone since the scan, or a name of another pattern: not this store's entry
                candidates.append(("raw", raw, None, "not readable as an entry of this store's layout"))
            else:
                candidates.append(("raw", raw, None if entry.data is None else dict(entry.data),
                                   entry.reason or "cannot be read"))
        if progress:
            progress(len(batch))
    keyed: list[tuple[str, str, dict[str, Any], Any, str]] = []
    left: list[Mapping] = []
    for kind, address, data, why in candidates:
        legacy = address
        if data is not None and field_name:
            if data.get(field_name) is not None:
                legacy = str(data[field_name])
            elif referenced:  # other entries point at it by that field: without it, they could not be rewritten
                data, why = None, f"no old ID in field {field_name!r}, which references to {entity_type} hold"
        if data is not None:
            key, why = run.forge.prover.key_of(entity_type, Record(entity_type, _ZERO, data), adapter.view)
            if key is not None:
                keyed.append((kind, address, data, key, legacy))
                continue
        out.count(store, entity_type, "unmapped")
        out.problem(None, store, entity_type, "unmapped", why, mask_name(address), address if kind == "raw" else "")
        left.append(Mapping(run.plan, store, entity_type, kind, address, legacy, None, "left", reason=why))
    news = run.forge.prover.ids_from_keys(entity_type, [k for *_, k, _ in keyed])
    by_new: dict[str, list[Mapping]] = {}
    for (kind, address, _data, _key, legacy), new in zip(keyed, news, strict=True):
        if new is None:
            why = "its key fields are not a key the ID function accepts"
            out.count(store, entity_type, "unmapped")
            out.problem(None, store, entity_type, "unmapped", why, mask_name(address),
                        address if kind == "raw" else "")
            left.append(Mapping(run.plan, store, entity_type, kind, address, legacy, None, "left", reason=why))
            continue
        by_new.setdefault(str(new), []).append(Mapping(run.plan, store, entity_type, kind, address, legacy, str(new)))
    mapped: list[Mapping] = []
    for new_text, group in by_new.items():
        group.sort(key=lambda m: (m.kind, m.old))
        mapped.append(group[0])
        for m in group[1:]:
            out.count(store, entity_type, "collisions")
            first = shown_entry(group[0].kind, group[0].old)
            out.problem(m, store, entity_type, "collision", f"reaches new ID {new_text}, as {first} does")
            if on_collision == "keep-first":
                m.state, m.new, m.reason = "left", None, f"collision with {group[0].old}"
                left.append(m)
            else:
                out.stopped = "two old entries reach one new ID: resolve them, or pass --on-collision keep-first"
    out.count(store, entity_type, "to map", len(mapped))
    if any(m.reason and not m.reason.startswith("collision") for m in left) and not leave_unmapped:
        out.stopped = out.stopped or ("entries without usable key fields (or another application's): fix them, or "
                                      "pass --leave-unmapped to leave them exactly as they are")
    return mapped + left


# -- expand -------------------------------------------------------------------------------------
def expand(forge: Forge, settings: MigrateSettings, *, plan_name: str | None = None,
           types: Iterable[str] | None = None, stores: Iterable[str] | None = None, dry_run: bool = False,
           batch_size: int | None = None, progress: Progress | None = None) -> Outcome:
    """Write each mapped entity under its new ID beside the old entry (see the module doc)."""
    run = Run(forge, settings, plan_name, types, stores, batch_size)
    mappings, state = run.load()
    if state.contract_started:
        raise MigrationRefusedError(f"plan {run.plan!r}: contract has started; expand is over")
    out = Outcome("expand", run.plan, dry_run)
    index = _index(mappings, run)
    for (store, entity_type), group in mm.by_place(run.selected(mappings)):
        todo = [m for m in group if m.state in ("planned", "expanding", "rolled_back")]
        out.count(store, entity_type, "already expanded", sum(1 for m in group if m.state == "expanded"))
        out.count(store, entity_type, "left alone", sum(1 for m in group if m.state == "left"))
        adapter = run.stores[store]
        _in_batches(run, state, "expand", store, entity_type, todo, len(group), dry_run, progress,
                    partial(_expand_batch, run, out, adapter, store, entity_type, index=index, dry_run=dry_run))
    inplace.expand(run, out, state, dry_run, progress)
    if out.problems:
        out.stopped = "some entries were not expanded (listed): fix them and run expand again"
    if not dry_run and state.verified:
        state.verified = None  # what verify saw has changed
        mm.save_state(run.source, state)
    return out


def _expand_batch(run: Run, out: Outcome, adapter: Adapter, store: str, entity_type: str, batch: list[Mapping],
                  index: dict[tuple[str, str], dict[str, str]], dry_run: bool) -> None:
    olds = read_old(adapter, entity_type, batch)
    ready: list[tuple[Mapping, Record]] = []
    for m in batch:
        if m.old not in olds:
            out.count(store, entity_type, "old entry gone")
            out.problem(m, store, entity_type, "gone", "the old entry is no longer held (deleted since plan)")
            continue
        record, why = _expected(run, m, olds[m.old], index)
        if record is None:
            out.count(store, entity_type, "not expanded")
            out.problem(m, store, entity_type, "not expanded", why)
            continue
        ready.append((m, record))
    held = adapter.get_many(entity_type, [r.id for _, r in ready]) if ready else {}
    writes: list[Record] = []
    marked: list[Mapping] = []
    for m, record in ready:
        there = held.get(record.id)
        if m.state != "expanding" or m.created is None:  # a batch in flight keeps what it decided then
            if there is not None and there.fingerprint != record.fingerprint:
                out.count(store, entity_type, "conflicts")
                out.problem(m, store, entity_type, "conflict", f"new ID {m.new} already holds other data")
                continue
            m.created = there is None
        elif there is not None and there.fingerprint != record.fingerprint and not m.created:
            out.count(store, entity_type, "conflicts")
            out.problem(m, store, entity_type, "conflict", f"new ID {m.new} already holds other data")
            continue
        out.count(store, entity_type, "written" if m.created else "already there")
        if m.created:
            writes.append(record)
        marked.append(m)
    if dry_run or not marked:
        return
    for m in marked:
        m.state = "expanding"
    mm.save(run.source, marked)  # created decided before anything is written: a kill keeps it
    if writes:
        _with_retries(run, lambda: adapter.put_many(writes))
    for m in marked:
        m.state = "expanded"
    mm.save(run.source, marked)


# -- verify -------------------------------------------------------------------------------------
def verify(forge: Forge, settings: MigrateSettings, *, plan_name: str | None = None,
           types: Iterable[str] | None = None, stores: Iterable[str] | None = None, dry_run: bool = False,
           batch_size: int | None = None, progress: Progress | None = None, run_audit: bool = True) -> Outcome:
    """Read back every new copy, resolve every reference, run the audit; record a pass with the
    digest of the mapping it verified (the gate of :func:`contract`)."""
    run = Run(forge, settings, plan_name, types, stores, batch_size)
    mappings, state = run.load()
    out = Outcome("verify", run.plan, dry_run)
    index = _index(mappings, run)
    for (store, entity_type), group in mm.by_place(run.selected(mappings)):
        adapter = run.stores[store]
        out.count(store, entity_type, "left alone", sum(1 for m in group if m.state == "left"))
        live = [m for m in group if m.state != "left"]
        for m in live:
            if m.state not in ("expanded", "contracted"):
                out.count(store, entity_type, "not expanded")
                out.problem(m, store, entity_type, "not expanded", f"state {m.state}: run expand")
        for batch in chunked([m for m in live if m.state == "expanded"], run.batch):
            _verify_batch(run, out, adapter, store, entity_type, batch, index)
            if progress:
                progress(len(batch))
        out.count(store, entity_type, "contracted", sum(1 for m in live if m.state == "contracted"))
    if run_audit:
        _verify_audit(run, out, mappings)
    inplace.verify(run, out)
    out.passed = not out.problems
    if not dry_run:
        state.verified = {"passed": out.passed, "digest": mm.digest(mappings), "at": mm.now(),
                          "types": sorted(run.types), "stores": sorted(run.stores)}
        mm.save_state(run.source, state)
    if not out.passed:
        out.stopped = "verify failed: contract stays refused"
    return out


def _verify_batch(run: Run, out: Outcome, adapter: Adapter, store: str, entity_type: str, batch: list[Mapping],
                  index: dict[tuple[str, str], dict[str, str]]) -> None:
    olds = read_old(adapter, entity_type, batch)
    news = adapter.get_many(entity_type, [m.new_id for m in batch])
    for m in batch:
        there = news.get(m.new_id)
        if there is None:
            out.count(store, entity_type, "new copy missing")
            out.problem(m, store, entity_type, "missing", f"no new copy under {m.new}")
            continue
        if m.old not in olds:
            out.count(store, entity_type, "old entry gone")
            out.problem(m, store, entity_type, "gone", "the old entry is no longer held")
            continue
        record, why = _expected(run, m, olds[m.old], index)
        if record is None or record.fingerprint != there.fingerprint:
            out.count(store, entity_type, "new copy differs")
            out.problem(m, store, entity_type, "differs", why or f"the new copy {m.new} differs from the old entry")
            continue
        for fname, target in run.references(entity_type).items():
            value = there.data.get(fname)
            if value is not None and str(value) not in index.get(("*new", target), {}):
                out.count(store, entity_type, "references unresolved")
                out.problem(m, store, entity_type, "reference", f"{fname} of {m.new} points at no mapped {target}")
                break
        else:
            out.count(store, entity_type, "verified")


def _verify_audit(run: Run, out: Outcome, mappings: list[Mapping]) -> None:
    """The audit of the migrated types: every finding must be about an old entry of the plan (a
    mapped one contract removes, or one left alone), or a new copy missing from a store that never
    held the entity. Entries not proven ours (unproven, foreign) are listed by the audit as masked
    samples only, so they are checked by count: no more than the plan's old entries still held."""
    old = {(m.store, m.entity_type, m.old) for m in mappings}
    old_any = {(m.entity_type, m.old) for m in mappings}
    new_in = {(m.store, m.entity_type, m.new) for m in mappings if m.new is not None}
    in_place: dict[tuple[str, str], dict[str, str]] = {}
    _index_in_place(run, in_place, every=True)
    for entity_type in run.types:
        held = {s: sum(1 for m in mappings if m.store == s and m.entity_type == entity_type
                       and m.state != "contracted") for s in run.stores}
        _audit_type(run, out, entity_type, old, old_any, new_in, held,
                    set(in_place.get(("*new", entity_type), {})))


def _audit_type(run: Run, out: Outcome, entity_type: str, old: set[tuple[str, str, str]],
                old_any: set[tuple[str, str]], new_in: set[tuple[str, str, str]], held: dict[str, int],
                in_place: set[str]) -> None:
    """The audit of one type over the stores that accept it (a user table holds one type).
    ``in_place``: the new IDs of the source's in-place table of the type, whose rows the audit
    cannot read (a serial table is no uuid-forge table): a copy the audit calls an orphan is
    explained when its ID is one of them."""
    from .forge import Forge

    handles = []
    for h in run.forge.stores:
        try:
            h.adapter.check_entity_type(entity_type)
        except ValidationError:
            continue
        if h.source or h.name in run.stores:
            handles.append(h)
    if not any(h.source for h in handles):
        return
    forge = Forge(handles, ids=run.forge.ids, journal=None, types=run.forge.types)
    forge.audit_hashed = run.forge.audit_hashed
    try:
        report = forge.audit(entity_type)
    finally:  # its stores are the run's, still in use: only its own thread pool is released
        if forge._pool is not None:
            forge._pool.shutdown(wait=True)
    for store in run.stores:
        counts: Counter[str] = report.stores.get(store, Counter())
        unowned = sum(counts.get(k, 0) for k in _UNOWNED)
        expected = held.get(store, 0)
        if unowned > expected:
            out.count(store, entity_type, "audit: not ours, unexplained", unowned - expected)
            out.problems.append({"store": store, "type": entity_type, "entry": "", "problem": "audit unproven",
                                 "reason": f"{unowned} entries not proven ours, more than the plan's {expected} old "
                                           "entries still held: plan again"})
        elif unowned:
            out.count(store, entity_type, "audit: old entries not ours", unowned)
    for f in report.findings:
        if f.store not in run.stores or f.kind in _UNOWNED:
            continue
        name = f.raw if f.raw is not None else f.id
        if (f.store, f.entity_type, name) in old or (f.entity_type, name) in old_any:
            out.count(f.store, f.entity_type, "audit: old entries")
            continue
        if f.kind == "missing" and (f.store, f.entity_type, f.id) not in new_in:
            out.count(f.store, f.entity_type, "audit: not held before either")
            continue
        if f.kind == "orphan" and f.id is not None and str(f.id) in in_place:
            out.count(f.store, f.entity_type, "audit: its source row is in place")
            continue
        out.count(f.store, f.entity_type, f"audit: {f.kind}")
        shown = f.id if f.raw is None else mask_name(f.raw)
        out.problems.append({"store": f.store, "type": f.entity_type, "entry": shown, "problem": f"audit {f.kind}",
                             "reason": "the audit finds it and the plan does not explain it: repair it "
                                       "(uuid-forge audit --repair) or plan again"})


_UNOWNED = ("unproven", "foreign")


# -- contract -----------------------------------------------------------------------------------
def contract(forge: Forge, settings: MigrateSettings, *, plan_name: str | None = None,
             types: Iterable[str] | None = None, stores: Iterable[str] | None = None, dry_run: bool = False,
             max_delete: int | str | None = None, batch_size: int | None = None,
             progress: Progress | None = None) -> Outcome:
    """Delete the old entries proven mapped, after a verify of this exact mapping."""
    limit = DeleteLimit.parse(max_delete)  # bad input is refused before anything is read
    run = Run(forge, settings, plan_name, types, stores, batch_size)
    mappings, state = run.load()
    verified = state.verified or {}
    if not verified.get("passed"):
        raise MigrationRefusedError(f"plan {run.plan!r}: contract refused: verify has not passed"
                                    + (" (its last run failed)" if verified else "") + "; run 'uuid-forge migrate verify'")
    if verified.get("digest") != mm.digest(mappings):
        raise MigrationRefusedError(f"plan {run.plan!r}: contract refused: the mapping changed since verify passed "
                                    f"(at {verified.get('at')}); run 'uuid-forge migrate verify' again")
    if not set(run.types) <= set(verified.get("types", [])) or not set(run.stores) <= set(verified.get("stores", [])):
        raise MigrationRefusedError(f"plan {run.plan!r}: contract refused: verify passed on types "
                                    f"{', '.join(verified.get('types', []))} and stores "
                                    f"{', '.join(verified.get('stores', []))} only; verify these too")
    out = Outcome("contract", run.plan, dry_run)
    index = _index(mappings, run)
    places = list(mm.by_place(run.selected(mappings)))
    over: list[tuple[int, str]] = []
    for (store, entity_type), group in places:  # the guard first, before anything is deleted
        expanded = sum(1 for m in group if m.state == "expanded")
        entries = int(state.counts.get(f"{store}/{entity_type}", {}).get("entries", 0))
        allowed = limit.limit(entries)
        if allowed is not None and expanded > allowed:
            what = f"{expanded} old entries of {entity_type} in {store} ({allowed} allowed of {entries} at plan)"
            over.append((expanded, what))
    if over:
        raise MigrationRefusedError(
            f"plan {run.plan!r}: contract refused: more than --max-delete {limit} allows would be deleted: "
            f"{'; '.join(t for _, t in over)}; nothing was deleted. If that is the migration you mean, pass "
            f"--max-delete {max(n for n, _ in over)}")
    inplace.check_contract(run)
    if not dry_run and not state.contract_started:
        state.contract_started = True
        mm.save_state(run.source, state)
    inplace.contract(run, out, state, dry_run)
    for (store, entity_type), group in places:
        adapter = run.stores[store]
        out.count(store, entity_type, "already contracted", sum(1 for m in group if m.state == "contracted"))
        out.count(store, entity_type, "left alone", sum(1 for m in group if m.state == "left"))
        todo = [m for m in group if m.state == "expanded"]
        _in_batches(run, state, "contract", store, entity_type, todo, len(group), dry_run, progress,
                    partial(_contract_batch, run, out, adapter, store, entity_type, index=index, dry_run=dry_run))
    if out.problems:
        out.stopped = "some old entries were left (listed): not proven mapped"
    return out


def _contract_batch(run: Run, out: Outcome, adapter: Adapter, store: str, entity_type: str, batch: list[Mapping],
                    index: dict[tuple[str, str], dict[str, str]], dry_run: bool) -> None:
    olds = read_old(adapter, entity_type, batch)
    news = adapter.get_many(entity_type, [m.new_id for m in batch])
    gone: list[Mapping] = []
    ids: list[uuid.UUID] = []
    raws: dict[str, dict[str, Any]] = {}  # raw name -> the data the proof was made on
    for m in batch:
        there = news.get(m.new_id)
        if there is None:
            out.count(store, entity_type, "left: new copy missing")
            out.problem(m, store, entity_type, "left", f"no new copy under {m.new}")
            continue
        if m.old not in olds:  # deleted by a run killed before it marked the batch
            gone.append(m)
            out.count(store, entity_type, "deleted")
            continue
        data = olds[m.old]
        record, why = _expected(run, m, data, index)
        if data is None or record is None or record.fingerprint != there.fingerprint:
            out.count(store, entity_type, "left: not proven mapped")
            out.problem(m, store, entity_type, "left", why or "the new copy no longer equals the old entry")
            continue
        gone.append(m)
        if m.kind == "uuid":
            ids.append(uuid.UUID(m.old))
        else:
            raws[m.old] = data
        out.count(store, entity_type, "deleted")
    if dry_run or not gone:
        return
    if ids:
        _with_retries(run, lambda: adapter.delete_many(entity_type, ids))
    if raws:
        gone = _contract_raw(run, out, adapter, store, entity_type, gone, raws)
    for m in gone:
        m.state = "contracted"
    mm.save(run.source, gone)


def _contract_raw(run: Run, out: Outcome, adapter: Adapter, store: str, entity_type: str, gone: list[Mapping],
                  raws: dict[str, dict[str, Any]]) -> list[Mapping]:
    """Delete the raw-named old entries (``user:42``, ``42.json``, an ObjectId) through
    ``Adapter.delete_raw_proven`` with the data the proof was made on: the store deletes each only
    while it still holds exactly that data. Those it kept (changed in between, or a store without
    the capability) stay listed and unmarked; a re-run sees them again."""
    try:
        deleted = _with_retries(run, lambda: adapter.delete_raw_proven(entity_type, raws))
    except StoreUnavailableError:
        raise
    except (ValidationError, StoreError):
        kept = set(raws)
        what = "left: store refuses raw delete"
        why = ("this store cannot delete an entry by a name that is not one of its IDs' forms (no "
               "delete_raw_proven); remove it by hand once verified")
    else:  # which went: every one when the store counts as many deletes as names (one entry per
        # name: nothing to read again), else the proven ones no longer held (read again)
        kept = set() if deleted == len(raws) else set(_read_raw(adapter, entity_type, list(raws)))
        what = "left: changed before delete"
        why = ("when the store came to delete it, it no longer held exactly the proven data (edited, or with a "
               "field the proof does not cover, which is never deleted): left; run verify and contract again once "
               "its writers stop, or move that field and remove it by hand")
    for m in gone:
        if m.old in kept:
            out.count(store, entity_type, "deleted", -1)
            out.count(store, entity_type, what)
            out.problem(m, store, entity_type, "left", why)
    return [m for m in gone if m.old not in kept]


# -- rollback -----------------------------------------------------------------------------------
def rollback(forge: Forge, settings: MigrateSettings, *, plan_name: str | None = None,
             types: Iterable[str] | None = None, stores: Iterable[str] | None = None, dry_run: bool = False,
             batch_size: int | None = None, progress: Progress | None = None) -> Outcome:
    """Remove the new copies expand created (and only those, if unchanged); old data untouched."""
    run = Run(forge, settings, plan_name, types, stores, batch_size)
    mappings, state = run.load()
    if state.contract_started or any(m.state == "contracted" for m in mappings):
        raise MigrationRefusedError(f"plan {run.plan!r}: rollback refused: contract has started, old entries are "
                                    "already deleted; the new copies are now the data")
    out = Outcome("rollback", run.plan, dry_run)
    index = _index(mappings, run)
    for (store, entity_type), group in mm.by_place(run.selected(mappings)):
        adapter = run.stores[store]
        todo = [m for m in group if m.state in ("expanding", "expanded")]
        out.count(store, entity_type, "not expanded", sum(1 for m in group if m.state in ("planned", "rolled_back")))
        _in_batches(run, state, "rollback", store, entity_type, todo, len(group), dry_run, progress,
                    partial(_rollback_batch, run, out, adapter, store, entity_type, index=index, dry_run=dry_run))
    inplace.rollback(run, out, state, dry_run)
    if not dry_run:
        state.verified = None
        mm.save_state(run.source, state)
    if out.problems:
        out.stopped = "some new copies were left (listed): changed since expand wrote them"
    return out


def _rollback_batch(run: Run, out: Outcome, adapter: Adapter, store: str, entity_type: str, batch: list[Mapping],
                    index: dict[tuple[str, str], dict[str, str]], dry_run: bool) -> None:
    olds = read_old(adapter, entity_type, [m for m in batch if m.created])
    news = adapter.get_many(entity_type, [m.new_id for m in batch if m.created])
    done: list[Mapping] = []
    ids: list[uuid.UUID] = []
    for m in batch:
        if not m.created:
            out.count(store, entity_type, "kept: not created by expand")
            done.append(m)
            continue
        there = news.get(m.new_id)
        if there is None:
            out.count(store, entity_type, "removed")
            done.append(m)
            continue
        record, why = _expected(run, m, olds.get(m.old), index)
        if record is None or record.fingerprint != there.fingerprint:
            out.count(store, entity_type, "left: changed since expand")
            out.problem(m, store, entity_type, "left", why or f"the new copy {m.new} changed since expand wrote it")
            continue
        ids.append(m.new_id)
        done.append(m)
        out.count(store, entity_type, "removed")
    if dry_run or not done:
        return
    if ids:
        _with_retries(run, lambda: adapter.delete_many(entity_type, ids))
    for m in done:
        m.state, m.created = "rolled_back", None
    mm.save(run.source, done)


# -- status -------------------------------------------------------------------------------------
def status(forge: Forge, settings: MigrateSettings, *, plan_name: str | None = None) -> dict[str, Any]:
    """The plan's mappings counted per (store, type) and state, its checkpoints and last verify."""
    source = forge.source.adapter
    name = check_plan_name(plan_name, "--plan") if plan_name is not None else settings.plan
    mappings, state = mm.load(source, name)
    counts: dict[str, Counter[str]] = {}
    for m in mappings:
        counts.setdefault(f"{m.store}/{m.entity_type}", Counter())[m.state] += 1
    return {"plan": name, "planned": bool(state and state.planned_at),
            "planned_at": state.planned_at if state else None,
            "counts": {k: dict(v) for k, v in sorted(counts.items())},
            "checkpoints": state.checkpoints if state else {}, "verified": state.verified if state else None,
            "contract_started": bool(state and state.contract_started)}
