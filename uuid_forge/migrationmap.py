"""The migration map: which old entry becomes which new ID, kept in the source of truth.

``uuid-forge migrate`` (uuid_forge.migration) records, per plan, one mapping per old entry found
in a store: the store, the entity type, the old entry's address (its UUID, or its raw name: a
Redis key ``user:42``, a MongoDB ObjectId, a file name), its old ID as other entries refer to it
(``legacy``: the address, or a data field, ``[migrate.stores.NAME] old_id``), the new ID its key
fields give, and how far it went (``state``). They are records of the reserved entity type
``uuid-forge.migration`` in the source, written and read through the public adapter API exactly as
tombstones are (uuid_forge.tombstones): every listing of entity types hides them, and the ID of a
mapping is ``uuid5(MIGRATION_NAMESPACE, "<plan>/<store>/<type>/<kind>/<address>")``, so a re-run of
a phase finds what it did before. One more record per plan (:class:`PlanState`) holds the
checkpoints per (phase, store, type) and the verify result with the digest of the mapping it
verified, which ``contract`` requires unchanged.

States: ``left`` (unmapped or a losing collision: never touched), ``planned``, ``expanding`` (a
batch in flight: ``created`` is already decided), ``expanded``, ``contracted`` (the old entry
deleted), ``rolled_back`` (the new copy removed again).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .contract import RESERVED_TYPE_PREFIX, Adapter, chunked
from .record import Record

__all__ = ["MIGRATION_NAMESPACE", "MIGRATION_TYPE", "STATES", "Mapping", "PlanState", "digest", "load",
           "mapping_id", "now", "save", "save_state", "state_id"]

MIGRATION_TYPE = RESERVED_TYPE_PREFIX + "migration"
MIGRATION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://uuid-forge.dev/migration")
STATES = ("left", "planned", "expanding", "expanded", "contracted", "rolled_back")
READ_BATCH = 500


def now() -> str:
    """The time a step is recorded under (ISO 8601, UTC)."""
    return datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def mapping_id(plan: str, store: str, entity_type: str, kind: str, address: str) -> uuid.UUID:
    """Where the mapping of one old entry lives: a pure function of what names it."""
    return uuid.uuid5(MIGRATION_NAMESPACE, f"{plan}/{store}/{entity_type}/{kind}/{address}")


def state_id(plan: str) -> uuid.UUID:
    """Where the plan's own state lives."""
    return uuid.uuid5(MIGRATION_NAMESPACE, f"{plan}/*")


@dataclass
class Mapping:
    """One old entry of one store and the new ID it moves to (None for a ``left`` one)."""

    plan: str
    store: str
    entity_type: str
    kind: str  # "uuid": named by a UUID (read by get_many); "raw": any other name (read_raw)
    old: str  # the address: the UUID text, or the raw name exactly as stored
    legacy: str  # the old ID as references hold it
    new: str | None
    state: str = "planned"
    created: bool | None = None  # expand wrote the new copy (None: not yet decided)
    reason: str = ""  # why it is left
    created_at: str = field(default_factory=now)

    @property
    def id(self) -> uuid.UUID:
        return mapping_id(self.plan, self.store, self.entity_type, self.kind, self.old)

    @property
    def new_id(self) -> uuid.UUID:
        assert self.new is not None
        return uuid.UUID(self.new)

    def record(self) -> Record:
        data = {"plan": self.plan, "store": self.store, "type": self.entity_type, "kind": self.kind, "old": self.old,
                "legacy": self.legacy, "new": self.new, "state": self.state, "created": self.created,
                "reason": self.reason, "created_at": self.created_at}
        return Record(MIGRATION_TYPE, self.id, data)

    @classmethod
    def from_record(cls, record: Record) -> Mapping | None:
        """The mapping ``record`` holds, or None when it is not one (its ID must match its fields)."""
        d = record.data
        try:
            m = cls(str(d["plan"]), str(d["store"]), str(d["type"]), str(d["kind"]), str(d["old"]), str(d["legacy"]),
                    None if d.get("new") is None else str(d["new"]), str(d["state"]), d.get("created"),
                    str(d.get("reason", "")), str(d.get("created_at", "")))
        except (KeyError, TypeError, AttributeError):
            return None
        if m.id != record.id or m.state not in STATES:
            return None
        return m


@dataclass
class PlanState:
    """The plan's own record: checkpoints per ``"phase/store/type"`` (``{"done": n, "total": t,
    "at": time}``), the last verify (``{"passed": bool, "digest": ..., "at": ...}``), whether a
    contract started (rollback is refused from then on), and per-(store, type) plan counts."""

    plan: str
    planned_at: str = ""
    checkpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    verified: dict[str, Any] | None = None
    contract_started: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def record(self) -> Record:
        return Record(MIGRATION_TYPE, state_id(self.plan),
                      {"plan": self.plan, "state_of_plan": True, "planned_at": self.planned_at,
                       "checkpoints": self.checkpoints, "verified": self.verified,
                       "contract_started": self.contract_started, "counts": self.counts})

    @classmethod
    def from_record(cls, record: Record) -> PlanState | None:
        d = record.data
        if not d.get("state_of_plan") or state_id(str(d.get("plan"))) != record.id:
            return None
        return cls(str(d["plan"]), str(d.get("planned_at", "")), dict(d.get("checkpoints") or {}),
                   d.get("verified"), bool(d.get("contract_started")), dict(d.get("counts") or {}))

    def checkpoint(self, phase: str, store: str, entity_type: str, done: int, total: int) -> None:
        self.checkpoints[f"{phase}/{store}/{entity_type}"] = {"done": done, "total": total, "at": now()}


def load(source: Adapter, plan: str) -> tuple[list[Mapping], PlanState | None]:
    """Every mapping of ``plan`` in the source, and its state (None: never planned)."""
    mappings: list[Mapping] = []
    state: PlanState | None = None
    sid = state_id(plan)
    for batch in chunked((i for i, _ in source.scan(MIGRATION_TYPE) if type(i) is uuid.UUID), READ_BATCH):
        for ident, record in source.get_many(MIGRATION_TYPE, batch).items():
            if record.unreadable:
                continue
            if ident == sid:
                state = PlanState.from_record(record)
                continue
            m = Mapping.from_record(record)
            if m is not None and m.plan == plan:
                mappings.append(m)
    mappings.sort(key=lambda m: (m.store, m.entity_type, m.kind, m.old))
    return mappings, state


def save(source: Adapter, mappings: Iterable[Mapping]) -> None:
    """Write (or update) mappings."""
    for batch in chunked([m.record() for m in mappings], READ_BATCH):
        source.put_many(batch)


def save_state(source: Adapter, state: PlanState) -> None:
    source.put_many([state.record()])


def digest(mappings: Iterable[Mapping]) -> str:
    """What verify verified: every mapping's (store, type, old, new, created), states left out
    (contract moves them on). Contract recomputes it and refuses when it changed."""
    h = hashlib.sha256()
    for m in sorted(mappings, key=lambda m: (m.store, m.entity_type, m.kind, m.old)):
        h.update(f"{m.store}\0{m.entity_type}\0{m.kind}\0{m.old}\0{m.new}\0{m.created}\0{m.state == 'left'}\n"
                 .encode())
    return h.hexdigest()


def by_place(mappings: Iterable[Mapping]) -> Iterator[tuple[tuple[str, str], list[Mapping]]]:
    """The mappings grouped by (store, type), in mapping order."""
    groups: dict[tuple[str, str], list[Mapping]] = {}
    for m in mappings:
        groups.setdefault((m.store, m.entity_type), []).append(m)
    for place in sorted(groups):
        yield place, groups[place]
