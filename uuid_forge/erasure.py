"""Erasure with proof: delete entities everywhere, scrub them from the journal, read every store
back, and say per store what was removed, that it is gone, and what still holds it and why.

Why a module of its own: a delete (``Forge.delete_many``) makes the stores consistent; an erasure
(the right to erasure) must also *show* it was done, to someone who keeps the report. So
:func:`erase`

1. reads each store for the entities first (what it held), then deletes them through the one
   delete path (source first, then every store with the delete capability, only entries proven
   ours; the source keeps a tombstone: ID, type and time, no data),
2. scrubs their data from uuid-forge's own journal (:meth:`Journal.erase`: entries and dead
   letters of those IDs),
3. reads every store back (``get_many``, or a scan where the store cannot read by ID: the message
   log) to prove absence, and asks each adapter what a delete there cannot erase
   (:meth:`Adapter.erasure_limits`: an append-only stream, unmerged segments, dead tuples, backups),
4. returns an :class:`ErasureReport`: text, ``to_dict`` (``--json``) and :meth:`ErasureReport.write`
   (a private file the user keeps as proof). Keys are always masked (uuid_forge.masking): the
   report is proof that data is gone, so it must not hold the data.

See docs/erasure.md for what is and is not erased in each store.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .contract import DELETE, READ, SCAN
from .entitytypes import FROM_DATA
from .errors import UUIDForgeError, ValidationError, WriteError
from .masking import mask_value
from .privatefile import write_private
from .record import DELETED
from .urls import mask_text

if TYPE_CHECKING:
    from .forge import Forge
    from .handles import StoreHandle
    from .report import WriteReport

__all__ = ["ErasedEntity", "ErasureReport", "JournalErasure", "StoreErasure", "erase", "masked_key"]

#: what the source keeps of a deleted entity (written by the delete path, uuid_forge.forge)
TOMBSTONE = ("the source keeps a tombstone (reserved type uuid-forge.tombstone): the ID, the entity type and the "
             "time of the delete, no data, for the configured retention, so that a replay or a late write of an "
             "older version never brings the entity back; the ID is a keyed digest of the key, not reversible "
             "without the salt")

#: store statuses, from good to bad: ``retained`` is an append-only store (a message log's stream)
#: that got the delete event but still holds the entity's earlier messages, with its data
ERASED, ABSENT, RETAINED, HELD, UNVERIFIED = "erased", "absent", "retained", "held", "unverified"


def masked_key(key: Any) -> str:
    """A key as the report shows it: the field names (the schema) and the shape of each value, never
    the value: ``{"email": "j•••@e••••••.c••"}``."""
    if key is None or key is FROM_DATA:
        return ""

    def shape(value: Any) -> str:
        return mask_value(value if isinstance(value, str) else json.dumps(value, default=str))

    if isinstance(key, Mapping):
        shown: Any = {str(k): shape(v) for k, v in key.items()}
    elif isinstance(key, (list, tuple)):
        shown = [shape(v) for v in key]
    else:
        shown = shape(key)
    return json.dumps(shown, ensure_ascii=False, sort_keys=True)


@dataclass
class ErasedEntity:
    """One entity asked to be erased: its type, ID and masked key."""

    entity_type: str
    id: uuid.UUID
    key: str = ""  # masked

    def to_dict(self) -> dict[str, Any]:
        return {"entity_type": self.entity_type, "id": str(self.id), "key": self.key}


@dataclass
class StoreErasure:
    """One store's part: what it held before, what the delete removed, the read-back, what remains.

    ``status``: ``erased`` (held before, absent now), ``absent`` (held nothing, absent now),
    ``retained`` (append-only: the delete event was published, but earlier messages holding the
    data stay until the store's retention drops them; ``still_held`` names them, ``errors`` say
    so: not an erasure yet), ``held`` (still holds some after the delete: ``still_held`` names
    them, ``errors`` say why), ``unverified`` (could not be read back: down, or no read and no scan)."""

    name: str
    role: str
    url: str  # masked
    status: str = UNVERIFIED
    held_before: int = 0
    removed: int = 0
    read_back: str = ""  # how absence was proven: the call and what it found
    still_held: list[str] = field(default_factory=list)  # "type id" of entries still there
    remains: list[str] = field(default_factory=list)  # what a delete here does not erase (erasure_limits)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JournalErasure:
    """uuid-forge's own journal: entries scrubbed, dead letters removed, and the read-back."""

    path: str
    entries_scrubbed: int = 0
    dead_letters_removed: int = 0
    still_holding: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ErasureReport:
    """The proof of one erasure: per entity and store, what went and what remains (keys masked)."""

    entities: list[ErasedEntity] = field(default_factory=list)
    stores: list[StoreErasure] = field(default_factory=list)
    journal: JournalErasure | None = None
    started: float = field(default_factory=time.time)
    seconds: float = 0.0
    tombstone: str = TOMBSTONE
    errors: list[str] = field(default_factory=list)  # of the delete call as a whole

    @property
    def ok(self) -> bool:
        """True when every store was read back and holds none of the entities, and the journal none."""
        return (all(s.status in (ERASED, ABSENT) for s in self.stores)
                and (self.journal is None or self.journal.still_holding == 0) and not self.errors)

    @property
    def time(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "erasure", "time": self.time, "ok": self.ok, "seconds": round(self.seconds, 3),
                "entities": [e.to_dict() for e in self.entities], "stores": [s.to_dict() for s in self.stores],
                "journal": None if self.journal is None else self.journal.to_dict(), "tombstone": self.tombstone,
                "errors": self.errors}

    def __str__(self) -> str:
        """One line: the outcome first (what a log or a ticket shows)."""
        proven = sum(s.status in (ERASED, ABSENT) for s in self.stores)
        head = "erased" if self.ok else "NOT fully erased"
        bad = [f"{s.name} {s.status}" + (" until the stream's retention drops its earlier messages"
                                           if s.status == RETAINED else "")
               for s in self.stores if s.status not in (ERASED, ABSENT)]
        return (f"erasure {self.time}: {head}: {len(self.entities)} entit{'y' if len(self.entities) == 1 else 'ies'}; "
                f"absence read back in {proven} of {len(self.stores)} store(s)" + (f" ({', '.join(bad)})" if bad else "")
                + ("" if self.journal is None else
                   f"; journal: {self.journal.entries_scrubbed} entr{'y' if self.journal.entries_scrubbed == 1 else 'ies'}"
                   f" scrubbed, {self.journal.dead_letters_removed} dead letter(s) removed"))

    def to_text(self) -> str:
        """The full report, one block per store: what a person reads and keeps."""
        lines = [str(self), ""]
        for e in self.entities:
            lines.append(f"entity {e.entity_type} {e.id}" + (f"  key {e.key}" if e.key else "  (given by ID)"))
        for s in self.stores:
            lines += ["", f"store {s.name} ({s.role}, {s.url}): {s.status}",
                      f"  held before: {s.held_before}; removed: {s.removed}",
                      f"  read back: {s.read_back or 'not read back'}"]
            lines += [f"  still held: {h}" for h in s.still_held]
            lines += [f"  error: {e}" for e in s.errors]
            if s.role == "source":
                lines.append(f"  kept: {self.tombstone}")
            lines += [f"  remains: {r}" for r in s.remains] or ["  remains: nothing"]
        if self.journal is not None:
            j = self.journal
            lines += ["", f"journal {j.path}: {j.entries_scrubbed} entr{'y' if j.entries_scrubbed == 1 else 'ies'} "
                      f"scrubbed (key and data), {j.dead_letters_removed} dead letter(s) removed; read back: "
                      + ("no entry holds their data" if j.still_holding == 0 else
                         f"{j.still_holding} entr(ies) still hold data")]
        lines += [f"error: {e}" for e in self.errors]
        return "\n".join(lines)

    def write(self, path: str) -> None:
        """Keep the report as proof in a private file (mode 0600, never through a symlink): JSON
        when ``path`` ends in ``.json``, else the text."""
        body = json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n" if path.endswith(".json") \
            else self.to_text() + "\n"
        write_private(path, body, "erasure report")


# -- the work ----------------------------------------------------------------------------------
def _resolve(forge: Forge, items: Iterable[Any]) -> list[ErasedEntity]:
    """Each item as (type, ID, masked key): ``(type, key)``, ``(type, uuid.UUID)``, or a dict with
    ``entity_type`` and one of ``key``, ``id`` or ``data`` (a declared type's key fields): what
    ``Forge.delete_many`` takes."""
    out: list[ErasedEntity] = []
    for i, item in enumerate(items):
        ident: Any = None
        data: Mapping[str, Any] | None = None
        if isinstance(item, Mapping):
            if "entity_type" not in item:
                raise ValidationError(f"items[{i}] lacks 'entity_type' (needs entity_type and key, id or data)")
            entity_type, key, ident, data = item["entity_type"], item.get("key", FROM_DATA), item.get("id"), \
                item.get("data")
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            entity_type, key = item
            if isinstance(key, uuid.UUID):  # (entity_type, ID), as delete_many takes it
                ident = key
        else:
            raise ValidationError(f"items[{i}] must be (entity_type, key) or a dict with entity_type and key, id or "
                                  f"data, got {type(item).__name__}")
        if ident is not None:
            try:
                ident = ident if isinstance(ident, uuid.UUID) else uuid.UUID(str(ident))
            except ValueError:
                raise ValidationError(f"items[{i}] ({entity_type}): id {mask_value(str(ident)[:40])!r} is not a UUID "
                                      "(shown masked)") from None
            out.append(ErasedEntity(entity_type, ident, ""))
            continue
        if key is FROM_DATA:
            declared = forge.types.get(entity_type)
            if declared is None or data is None:
                raise ValidationError(f"items[{i}] ({entity_type}): give the key, the ID, or the data of a type "
                                      "declared with key fields")
            key = declared.key_of(data, f"items[{i}] ({entity_type})")
        out.append(ErasedEntity(entity_type, forge.id_for(entity_type, key), masked_key(key)))
    return out


def _by_type(entities: list[ErasedEntity]) -> dict[str, list[uuid.UUID]]:
    groups: dict[str, list[uuid.UUID]] = {}
    for e in entities:
        ids = groups.setdefault(e.entity_type, [])
        if e.id not in ids:
            ids.append(e.id)
    return groups


def _read(handle: StoreHandle, groups: Mapping[str, list[uuid.UUID]]) -> tuple[dict[str, set[uuid.UUID]], str]:
    """The IDs among ``groups`` the store holds now, per type, and how they were read: by ID where
    the store can, else by a scan of the type (a message log: the latest event per ID)."""
    adapter = handle.adapter
    held: dict[str, set[uuid.UUID]] = {}
    asked = sum(len(v) for v in groups.values())
    if READ in adapter.capabilities:
        for entity_type, ids in groups.items():
            held[entity_type] = set(adapter.get_many(entity_type, ids))
        how = "get_many"
    elif SCAN in adapter.capabilities:
        for entity_type, ids in groups.items():
            wanted = set(ids)
            held[entity_type] = {i for i, _ in adapter.scan(entity_type) if isinstance(i, uuid.UUID) and i in wanted}
        how = "scan of the type"
    else:
        raise _Unreadable(f"{handle.name} can neither read by ID nor scan: absence cannot be proven here")
    found = sum(len(v) for v in held.values())
    return held, f"{how}: {found} of {asked} ID(s) found"


class _Unreadable(Exception):
    """A store that cannot be read back at all (write-only)."""


def _delete_through(forge: Forge, entities: list[ErasedEntity], force: bool = False) -> WriteReport:
    """The one delete path (uuid_forge.forge: journaled, source first, only entries proven ours)."""
    return forge.delete_many([{"entity_type": e.entity_type, "id": e.id} for e in entities], force=force)


def erase(forge: Forge, items: Iterable[Any], *, force: bool = False) -> ErasureReport:
    """Delete ``items`` everywhere, scrub them from the journal and prove it (see the module doc).

    ``items``: ``(entity_type, key)`` pairs, or dicts with ``entity_type`` and ``key``, ``id`` or
    ``data``. Never raises for a store's failure: the report says which store and why, and
    ``report.ok`` is False; a bad item raises ValidationError before any store is touched.
    An entity the source does not hold is deleted nowhere (``Forge.delete_many``), so a store
    still holding it shows in the report; ``force=True`` deletes it everywhere anyway."""
    started = time.perf_counter()
    entities = _resolve(forge, items)
    report = ErasureReport(entities=entities)
    if not entities:
        return report
    groups = _by_type(entities)
    before: dict[str, tuple[dict[str, set[uuid.UUID]] | None, str]] = {}
    for h in forge.stores:
        try:
            held, _ = _read(h, groups)
            before[h.name] = (held, "")
        except (_Unreadable, UUIDForgeError) as err:
            before[h.name] = (None, mask_text(str(err)))
    result: WriteReport | None
    try:
        result = _delete_through(forge, entities, force)
    except WriteError as err:  # the source or a required store failed: its report says which
        result = err.report
        report.errors.append(f"delete: {mask_text(str(err))}")
    except UUIDForgeError as err:
        result = None
        report.errors.append(f"delete: {mask_text(str(err))}")
    delete_errors = {n: list(s.errors) for n, s in (result.stores if result is not None else {}).items()}
    if forge.journal is not None:
        scrubbed = dead = 0
        for entity_type, ids in groups.items():
            s, d = forge.journal.erase(entity_type, ids)
            scrubbed, dead = scrubbed + s, dead + d
        still = sum(forge.journal.holds(t, ids) for t, ids in groups.items())
        report.journal = JournalErasure(str(forge.journal.path), scrubbed, dead, still)
    for h in forge.stores:
        report.stores.append(_store_part(forge, h, groups, before[h.name], delete_errors.get(h.name, [])))
    report.seconds = time.perf_counter() - started
    return report


def _store_part(forge: Forge, h: StoreHandle, groups: Mapping[str, list[uuid.UUID]],
                before: tuple[dict[str, set[uuid.UUID]] | None, str], delete_errors: list[str]) -> StoreErasure:
    part = StoreErasure(h.name, h.role, h.adapter.url(), errors=list(delete_errors))
    held_before, before_error = before
    part.held_before = sum(len(v) for v in held_before.values()) if held_before is not None else 0
    for entity_type in groups:
        for limit in h.adapter.erasure_limits(entity_type):
            if limit not in part.remains:
                part.remains.append(limit)
    if DELETE not in h.adapter.capabilities:
        part.errors.append(f"{h.name} has no delete: uuid-forge cannot remove entries there")
    if held_before is None and before_error:
        part.errors.append(f"could not be read before the delete: {before_error}")
    try:
        after, part.read_back = _read(h, groups)
    except (_Unreadable, UUIDForgeError) as err:
        part.status = UNVERIFIED
        part.errors.append(f"read back failed: {mask_text(str(err))}")
        pending = _pending_hint(forge, h)
        if pending:
            part.errors.append(pending)
        return part
    if held_before is not None:
        part.removed = sum(len(ids - after.get(t, set())) for t, ids in held_before.items())
    left = [(t, i) for t, ids in after.items() for i in sorted(ids)]
    kept = _retained(h, groups, held_before) if not left and h.adapter.append_only else {}
    if any(kept.values()):
        part.status, part.removed = RETAINED, 0  # nothing was removed: a delete event was added
        part.still_held = [f"{t} {i}" for t, ids in kept.items() for i in sorted(ids)]
        part.read_back += (f"; every message: {len(part.still_held)} of {sum(len(v) for v in groups.values())} ID(s) "
                           "still have earlier messages with data")
        part.errors.append(f"delete event published; the earlier messages keep the data in {h.name} until the "
                           "stream's retention (x-max-age / x-max-length-bytes) drops them: not erased yet, and no "
                           "message can be removed sooner (see remains)")
    elif left:
        part.status = HELD
        part.still_held = [f"{t} {i}" for t, i in left]
        part.errors.append(_why_held(forge, h, after))
    else:
        part.status = ERASED if part.held_before or part.removed else ABSENT
    return part


def _retained(h: StoreHandle, groups: Mapping[str, list[uuid.UUID]],
              held_before: Mapping[str, set[uuid.UUID]] | None) -> dict[str, set[uuid.UUID]]:
    """In an append-only store: the IDs among ``groups`` that still have a message with data, read
    from every event (``scan_log``), whatever their latest event is (a delete event hides the
    entity from a scan, not its earlier messages). A store without ``scan_log``: those it held
    before (or all, when that is not known): a log removes nothing."""
    reader = getattr(h.adapter, "scan_log", None)
    if reader is None:
        return {t: set(ids) for t, ids in (held_before or {t: set(v) for t, v in groups.items()}).items()}
    out: dict[str, set[uuid.UUID]] = {}
    for entity_type, ids in groups.items():
        wanted, found = set(ids), set[uuid.UUID]()

        def each(item: Any, wanted: set[uuid.UUID] = wanted, found: set[uuid.UUID] = found) -> None:
            ident, fingerprint = item[0], item[1]
            if isinstance(ident, uuid.UUID) and ident in wanted and fingerprint != DELETED:
                found.add(ident)
        try:
            reader(entity_type, each)
        except UUIDForgeError:  # read back failed: count what it held before as kept (a log removes nothing)
            found = set(held_before.get(entity_type, set())) if held_before is not None else wanted
        out[entity_type] = found
    return out


def _why_held(forge: Forge, h: StoreHandle, after: Mapping[str, set[uuid.UUID]]) -> str:
    """Why entries are still there: not proven ours (left, as every delete leaves them), or the delete
    did not reach the store (down: journaled, ``replay`` finishes it)."""
    reasons: list[str] = []
    if READ in h.adapter.capabilities:
        for entity_type, ids in after.items():
            if not ids:
                continue
            try:
                proofs = forge.prover.prove(entity_type, h.adapter.get_many(entity_type, ids), h.adapter.view)
            except UUIDForgeError:
                continue
            unproven = [p.reason for p in proofs.values() if not p.ok]
            if unproven:
                reasons.append(f"{len(unproven)} entr(ies) not proven ours ({unproven[0]}): left, since uuid-forge "
                               "deletes only what it proves it wrote; if they hold the person's data, delete them "
                               "where they came from")
    pending = _pending_hint(forge, h)
    if pending:
        reasons.append(pending)
    return "; ".join(reasons) or "still held after the delete: run the erasure again, or see the store's errors"


def _pending_hint(forge: Forge, h: StoreHandle) -> str:
    """What to do when the journal still owes the store its part (it was down)."""
    pending = forge.pending().get(h.name, 0) if forge.journal is not None else 0
    if not pending:
        return ""
    return (f"the journal still owes {h.name} {pending} operation(s) (the delete among them): run 'uuid-forge replay' "
            "when it is back, then erase again for a fresh read-back")
