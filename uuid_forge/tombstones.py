"""Tombstones: the source remembers, for a while, which entities were deleted and when.

Deleting an entity removes its data everywhere, but a write of an older version can still be on
its way (a journaled write replayed after a crash, a stale task on a worker, a backup restored
into one store). So the source of truth keeps, per deleted entity, a tombstone: the entity type,
its ID and the deletion time, never its data. They are records of the reserved entity type
``uuid-forge.tombstone`` in the source, written and read through the public adapter API like the
ID-configuration markers (uuid_forge.idmarker): a source on a container of your own keeps them in
its side container (uuid_forge.containers), every listing of entity types hides them, and a
source that cannot hold the type (files with ``layout=raw``, a write-only store) keeps none.

What they stop (docs/write-through.md, "Deletes"):

* replay never applies a journaled source record older than the ID's tombstone;
* a live write of a tombstoned ID is refused, per record, unless ``recreate=True``, which
  removes the tombstone;
* an audit reports a store still holding a tombstoned ID as its own class, ``deleted``, which
  ``audit --repair --apply`` removes (proven ours, under the same delete guard as orphans).

A tombstone is kept for ``[write] tombstone_retention`` (default 90 days); ``uuid-forge delete
--purge-expired`` removes older ones. The ID of a tombstone is ``uuid5(TOMBSTONE_NAMESPACE,
"<entity type>/<id>")``, so one batched ``get_many`` answers for a whole write batch; and a type
that never had a deletion costs a write batch one read of one ID (its flag, ``"<type>/*"``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .contract import DELETE, READ, RESERVED_TYPE_PREFIX, SCAN, WRITE, Adapter, chunked
from .errors import ConfigError, ValidationError
from .record import Record
from .report import AuditReport
from .settings import parse_retention

if TYPE_CHECKING:
    from .forgeview import ForgeView

log = logging.getLogger("uuid_forge.tombstones")

TOMBSTONE_TYPE = RESERVED_TYPE_PREFIX + "tombstone"
TOMBSTONE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://uuid-forge.dev/tombstone")
DEFAULT_RETENTION = "90d"
READ_BATCH = 500

__all__ = ["DEFAULT_RETENTION", "TOMBSTONE_TYPE", "Tombstone", "deletion_time", "find", "flag_id", "forget", "held_by", "mark_deleted", "parse_retention",
           "purge_expired", "put", "supported", "time_of", "tombstone_id"]

Pair = tuple[str, uuid.UUID]


class Tombstone:
    """One deleted entity: its type, ID and deletion time (ISO 8601, UTC, microseconds)."""

    __slots__ = ("deleted_at", "entity_type", "id")

    def __init__(self, entity_type: str, ident: uuid.UUID, deleted_at: str) -> None:
        self.entity_type = entity_type
        self.id = ident
        self.deleted_at = deleted_at

    def record(self) -> Record:
        """The tombstone as a record of the reserved type, its canonical JSON texts built directly
        (exactly what canonical() gives: tests/test_erasure.py checks it). Canonicalising them cost
        three quarters of a 2,000-entity delete's time (bench/write.py --deletes)."""
        ident = str(self.id)
        record = Record(TOMBSTONE_TYPE, tombstone_id(self.entity_type, self.id),
                        {"entity_type": self.entity_type, "id": ident, "deleted_at": self.deleted_at},
                        {"entity_type": self.entity_type, "id": ident})
        kind = json.dumps(self.entity_type, ensure_ascii=False)
        record._key_json = f'{{"entity_type":{kind},"id":"{ident}"}}'
        record._json = f'{{"deleted_at":{json.dumps(self.deleted_at, ensure_ascii=False)},"entity_type":{kind},"id":"{ident}"}}'
        return record

    @classmethod
    def from_record(cls, record: Record) -> Tombstone | None:
        """The tombstone ``record`` holds, or None when it is not one of ours (its ID must match)."""
        d = record.data
        try:
            entity_type, ident, when = str(d["entity_type"]), uuid.UUID(str(d["id"])), str(d["deleted_at"])
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if tombstone_id(entity_type, ident) != record.id or not when:
            return None
        return cls(entity_type, ident, when)


def tombstone_id(entity_type: str, ident: uuid.UUID) -> uuid.UUID:
    """Where the tombstone of ``entity_type``'s ``ident`` lives in the reserved type."""
    return uuid.uuid5(TOMBSTONE_NAMESPACE, f"{entity_type}/{ident}")


def deletion_time(now: float | None = None) -> str:
    """The time a deletion is recorded under (also its ``token``: a retry of it keeps it)."""
    t = time.time() if now is None else now
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_of(text: str) -> float:
    """The epoch seconds of a deletion time (0.0 when it cannot be read: treated as very old)."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def supported(forge: ForgeView) -> bool:
    """Whether the source can keep tombstones (it must read and write the reserved type)."""
    cached = getattr(forge, "_tombstones_supported", None)
    if cached is None:
        adapter = forge.source.adapter
        cached = READ in adapter.capabilities and WRITE in adapter.capabilities
        if cached:
            try:
                adapter.check_entity_type(TOMBSTONE_TYPE)
            except ValidationError as err:
                log.info("source %s keeps no tombstones (%s): a replay or a late write of a deleted entity is not "
                         "stopped", forge.source.name, err)
                cached = False
        forge._tombstones_supported = cached  # type: ignore[attr-defined]
    return cached


def flag_id(entity_type: str) -> uuid.UUID:
    """Where the mark "this type has had deletions" lives (written with its first tombstone)."""
    return uuid.uuid5(TOMBSTONE_NAMESPACE, f"{entity_type}/*")


def _flag(entity_type: str) -> Record:
    return Record(TOMBSTONE_TYPE, flag_id(entity_type), {"entity_type": entity_type, "deletions": True},
                  {"entity_type": entity_type})


def find(source: Adapter, pairs: Iterable[Pair]) -> dict[Pair, str]:
    """The deletion time of each of ``pairs`` (entity type, ID) that has a tombstone.

    Cheap when a type has never had a deletion: one read of that type's flag (one ID), and only
    for a flagged type one batched read of the reserved type per :data:`READ_BATCH` pairs. The
    flag is written with every tombstone and never removed (a purge could race a delete)."""
    pairs = list(pairs)
    types = {t for t, _ in pairs}
    if not types:
        return {}
    flags = {flag_id(t): t for t in types}
    flagged = {flags[i] for i in source.get_many(TOMBSTONE_TYPE, list(flags)) if i in flags}
    wanted = {tombstone_id(t, i): (t, i) for t, i in pairs if t in flagged}
    found: dict[Pair, str] = {}
    for batch in chunked(list(wanted), READ_BATCH):
        for ident, record in source.get_many(TOMBSTONE_TYPE, batch).items():
            stone = Tombstone.from_record(record) if not record.unreadable else None
            if stone is not None and wanted.get(ident) == (stone.entity_type, stone.id):
                found[(stone.entity_type, stone.id)] = stone.deleted_at
    return found


def held_by(source: Adapter, entity_type: str, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The deletion times of those ``ids`` of ``entity_type`` that have a tombstone in ``source``
    (none when the source cannot keep tombstones): what makes an audit's orphan ``deleted``."""
    if not ids or READ not in source.capabilities:
        return {}
    try:
        source.check_entity_type(TOMBSTONE_TYPE)
    except ValidationError:
        return {}
    return {i: when for (_, i), when in find(source, [(entity_type, i) for i in ids]).items()}


def mark_deleted(source: Adapter, report: AuditReport) -> None:
    """Turn the report's orphans whose IDs have a tombstone in ``source`` into ``deleted`` findings:
    the entity was deleted on purpose and a store still holds it (restored from an old backup, or a
    delete that store missed). Counts are moved from one class to the other."""
    groups: dict[str, list[int]] = {}
    for n, f in enumerate(report.findings):
        if f.kind == "orphan" and f.raw is None and f.store != report.source and len(f.id) == 36:
            groups.setdefault(f.entity_type, []).append(n)
    for entity_type, positions in groups.items():
        ids = list(dict.fromkeys(uuid.UUID(report.findings[n].id) for n in positions))
        stones = held_by(source, entity_type, ids)
        for n in positions:
            f = report.findings[n]
            when = stones.get(uuid.UUID(f.id))
            if when is None:
                continue
            report.findings[n] = replace(f, kind="deleted", detail=f"deleted at {when} (a tombstone in the source), "
                                         "still held here: audit --repair --apply removes it")
            counts = report.stores[f.store]
            counts["orphan"] -= 1
            counts["deleted"] += 1


def put(source: Adapter, pairs: Sequence[Pair], deleted_at: str) -> None:
    """Record (or renew) the tombstones of ``pairs``."""
    if pairs:
        source.put_many([Tombstone(t, i, deleted_at).record() for t, i in pairs]
                        + [_flag(t) for t in sorted({t for t, _ in pairs})])


def forget(source: Adapter, pairs: Sequence[Pair]) -> int:
    """Remove the tombstones of ``pairs`` (a write with ``recreate``); returns how many existed."""
    if not pairs:
        return 0
    return source.delete_many(TOMBSTONE_TYPE, [tombstone_id(t, i) for t, i in pairs])


def scan(source: Adapter) -> Iterator[Tombstone]:
    """Every tombstone the source holds (a scan of the reserved type, read back page by page)."""
    ids = (i for i, _ in source.scan(TOMBSTONE_TYPE) if type(i) is uuid.UUID)
    for batch in chunked(ids, READ_BATCH):
        for record in source.get_many(TOMBSTONE_TYPE, batch).values():
            stone = Tombstone.from_record(record) if not record.unreadable else None
            if stone is not None:
                yield stone


def purge_expired(forge: ForgeView, retention: float | None = None, *, now: float | None = None,
                  dry_run: bool = False) -> dict[str, int]:
    """Remove the tombstones older than ``retention`` seconds (default: the configured
    ``[write] tombstone_retention``); returns how many per entity type (that would go, with
    ``dry_run``). Needs a source that can scan and delete the reserved type."""
    if not supported(forge):
        return {}
    source = forge.source.adapter
    if SCAN not in source.capabilities or DELETE not in source.capabilities:
        raise ConfigError(f"the source {forge.source.name} cannot scan and delete its tombstones")
    keep = parse_retention(forge.settings.tombstone_retention) if retention is None else retention
    cutoff = (time.time() if now is None else now) - keep
    expired = [s for s in scan(source) if time_of(s.deleted_at) < cutoff]
    counts: dict[str, int] = {}
    for s in expired:
        counts[s.entity_type] = counts.get(s.entity_type, 0) + 1
    if not dry_run:
        for batch in chunked(expired, READ_BATCH):
            source.delete_many(TOMBSTONE_TYPE, [tombstone_id(s.entity_type, s.id) for s in batch])
    return counts
