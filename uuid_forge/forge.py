"""Write-through: one call writes an entity to every configured store under one deterministic ID.

Order of work for each batch: build IDs and records (all validation happens here, before any
store is touched) -> record the intent in the journal -> write the source of truth -> write the
other stores (in parallel by default; ``bench/write.py`` measured both) -> clear the journal per
store. Every write is an idempotent upsert, so retrying or replaying is always safe.

**Errors.** Transient ones (refused or reset connection, timeout: StoreUnavailableError) are
retried with exponential backoff; a store that stays down keeps its part in the journal and
``replay`` finishes it later. Permanent ones are not retried. A store that refuses this client
(authentication, unknown database, permission: StoreConfigError) is reported once with its own
reason and its part stays pending, so fixing the configuration lets ``replay`` finish. A store
that refuses the data (constraint, data or size violation: StoreRejectedError) has the batch split
in halves until the bad records are isolated: the good ones land, the bad ones become dead letters
in the journal (reason masked, never the data; ``uuid-forge journal`` lists, retries or drops
them) and leave the pending list, so one poison record never blocks a store. The report counts
dead letters per store; one in the source or a required store makes WriteError name it.

**Replay never writes an older version over a newer one.** The rule:

1. A write whose source write failed was reported failed to its caller (WriteError), so its
   intent is dropped from the journal for every store (logged): it is never applied later behind
   the caller's back. A record the source rejected is a dead letter of the source only.
2. The other stores never get the journaled copy: replay reads the source's *current* record for
   the pending IDs (``get_many``) and writes that, or deletes the ID from the store when the
   source no longer has it. Whatever happened in between, the store ends as the source is now.
3. The source itself is owed a journaled record only after a crash between the intent and the
   source write (that caller never got an answer). Replay applies it, oldest first, unless a newer
   write of the same ID has since landed in the source: landing marks the older entries of that
   ID ``superseded`` (an index on ``(entity_type, id)``), and superseded entries are skipped.

Limit: the rule sees one journal. Writers on separate machines with separate journals cannot see
each other's newer writes; there, replay after a crash of one writer may still apply its
journaled record over a newer one the other writer made in between (re-running that writer's
job, or an audit, shows it).
"""

from __future__ import annotations

import functools
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

from . import events, idmarker, tombstones
from .audit import audit as run_audit
from .classify import scheme_versions
from .compare import all_types
from .contract import DELETE, READ, Adapter, chunked
from .entitytypes import DEFAULT_SALT_ENV, FROM_DATA, EntityType, TypedGenerator, as_types
from .errors import (
    ConfigError,
    OptionError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    UUIDForgeError,
    ValidationError,
    WriteError,
)
from .handles import StoreHandle
from .ids import IDConfig, UUIDGenerator
from .journal import Journal, PendingBatch
from .masking import mask_value
from .ownership import Prover
from .record import Record
from .registry import open_store
from .report import AuditReport, StoreResult, WriteReport
from .settings import AuditSettings, ForgeSettings, WriteSettings, load_settings
from .urls import mask_text
from .writes import error_reason, put_isolating

log = logging.getLogger("uuid_forge.forge")

#: seconds a store that failed every retry of a batch is not tried again by the later batches of
#: the same write_many or replay (their records are journaled at once); then a batch tries it again
DOWN_WINDOW = 30.0

__all__ = ["Entity", "Forge", "StoreHandle", "WriteReport"]

Entity = tuple[str, Any, Mapping[str, Any]]
"""``(entity_type, key, data)``; the key is a mapping of named key values, a tuple, or one value.

For a declared entity type (:class:`~uuid_forge.entitytypes.EntityType`) the key may be left out:
``(entity_type, data)``, or a dict without ``"key"``; the ID then comes from the type's key fields."""
_NO_DATA: Any = object()


def _as_entity(item: Any, index: int) -> Entity:
    if isinstance(item, Mapping):
        try:
            return item["entity_type"], item.get("key", FROM_DATA), item.get("data", {})
        except KeyError as err:
            raise ValidationError(f"entities[{index}] lacks {err.args[0]!r} (needs entity_type, key, data)") from None
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return item[0], item[1], item[2]
    if isinstance(item, (tuple, list)) and len(item) == 2:  # a declared type: the key is in the data
        return item[0], FROM_DATA, item[1]
    raise ValidationError(f"entities[{index}] must be (entity_type, key, data), (entity_type, data) for a declared "
                          f"type, or a dict with those keys, got {type(item).__name__}")


class Forge:
    """Stores, an ID scheme and a journal, behind ``write``, ``write_many``, ``replay`` and ``audit``."""

    def __init__(self, stores: Sequence[StoreHandle] | Mapping[str, str | Adapter], *, source: str | None = None,
                 optional: Iterable[str] = (), ids: IDConfig | None = None,
                 journal: Journal | str | None = ".uuid-forge/journal.sqlite3",
                 write: WriteSettings | None = None,
                 types: Iterable[EntityType] | Mapping[str, EntityType] | None = None) -> None:
        if isinstance(stores, Mapping):
            if source is None or source not in stores:
                raise ConfigError(f"source must name one of the stores ({', '.join(stores)}), got {source!r}")
            opt = set(optional)
            versions = scheme_versions(ids or IDConfig())  # the UUID versions our IDs have (uuid_forge.classify)
            handles = [StoreHandle(n, open_store(s, id_versions=versions) if isinstance(s, str) else s, n == source,
                                   n not in opt) for n, s in stores.items()]
        else:
            handles = list(stores)
        sources = [h for h in handles if h.source]
        if len(sources) != 1:
            raise ConfigError(f"exactly one store must be the source of truth, found {len(sources)}")
        self.stores: list[StoreHandle] = sorted(handles, key=lambda h: not h.source)
        self.source = sources[0]
        self.ids = ids or IDConfig()
        self.types: dict[str, EntityType] = as_types(types)  # declared entity types (their salt_env read now)
        self.generator: UUIDGenerator | TypedGenerator = (TypedGenerator(self.ids, self.types) if self.types
                                                          else UUIDGenerator(self.ids))
        #: the one ownership rule (uuid_forge.ownership): what deletes or copies asks it first
        self.prover = Prover(self.generator, self.types)
        self.journal = journal if isinstance(journal, Journal) or journal is None else Journal(journal)
        self.settings = write or WriteSettings()
        #: ``[audit]``: what the audit command's exit code makes of unproven entries
        self.audit_settings = AuditSettings()
        self._pool: ThreadPoolExecutor | None = None
        #: full audits compare by hashes computed in the stores where they can ([audit] hashed)
        self.audit_hashed = True
        self._sleep: Callable[[float], None] = time.sleep
        #: store -> until when the batches of this write_many or replay journal its part at once: it
        #: failed every retry of a batch (waiting through them again made a write 12x slower)
        self._down: dict[str, float] = {}

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: ForgeSettings) -> Forge:
        handles: list[StoreHandle] = []
        versions = scheme_versions(settings.ids)  # a name in the wrong form is ours only if it has these versions
        try:
            for s in settings.stores:
                adapter = open_store(s.url, view=s.view, id_versions=versions, **s.options)
                handles.append(StoreHandle(s.name, adapter, s.source, s.required))
        except OptionError as err:  # an unknown or bad adapter option: say which file and store
            for h in handles:
                h.adapter.close()
            raise OptionError(f"{settings.origin}: store options of {s.name!r}: {err}", adapter=err.adapter,
                              option=err.option) from None
        except ConfigError as err:  # a URL the adapter or its driver cannot parse: say which file and store
            for h in handles:
                h.adapter.close()
            raise ConfigError(f"{settings.origin}: store {s.name!r}: {err}") from None
        except UUIDForgeError:
            for h in handles:
                h.adapter.close()
            raise
        except TypeError as err:  # an unknown adapter option
            for h in handles:
                h.adapter.close()
            raise ConfigError(f"{settings.origin}: store options: {err}") from None
        forge = cls(handles, ids=settings.ids, journal=Journal(settings.journal_path, settings.journal_synchronous),
                    write=settings.write, types=settings.types)
        forge.audit_settings = settings.audit
        forge.audit_hashed = settings.audit.hashed
        return forge

    @classmethod
    def from_config(cls, path: str, env: dict[str, str] | None = None) -> Forge:
        """A Forge from a ``uuid-forge.toml`` file (environment variables override it)."""
        return cls.from_settings(load_settings(path, env))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for h in self.stores:
            try:
                h.adapter.close()
            except UUIDForgeError as err:
                log.warning("closing %s: %s", h.name, mask_text(str(err)))
        if self.journal is not None:
            self.journal.close()

    # -- IDs -----------------------------------------------------------------------------------
    def id_config(self, entity_type: str) -> IDConfig:
        """The ID configuration of ``entity_type``: its declared namespace and salt, else ``ids``."""
        t = self.types.get(entity_type) if isinstance(entity_type, str) else None
        return t.id_config(self.ids) if t is not None else self.ids

    def salt_env(self, entity_type: str) -> str:
        """The environment variable ``entity_type``'s salt comes from (for messages; never its value)."""
        t = self.types.get(entity_type) if isinstance(entity_type, str) else None
        return t.salt_env if t is not None and t.salt_env else DEFAULT_SALT_ENV

    def check_salts(self, entity_types: Iterable[str]) -> None:
        """Refuse a declared type whose ``salt_env`` is not set: its IDs would not be the ones stored."""
        for et in entity_types:
            t = self.types.get(et) if isinstance(et, str) else None
            if t is not None and t.salt_missing:
                raise ConfigError(f"entity type {et!r}: its salt comes from ${t.salt_env}, which is not set (is it "
                                  "missing from cron's environment?); refused before any store was touched, since "
                                  "IDs computed without it would give old keys new IDs")

    def id_for(self, entity_type: str, key: Any = FROM_DATA, data: Mapping[str, Any] | None = None) -> uuid.UUID:
        """The ID of one entity: ``key`` is a mapping (named values), a tuple, or one value; for a
        declared type, leave it out and give ``data`` (the ID comes from its key fields)."""
        self.check_salts([entity_type])
        if key is FROM_DATA:
            t = self.types.get(entity_type) if isinstance(entity_type, str) else None
            if t is None:
                raise ValidationError(f"no key given, and entity type {entity_type!r} is not declared with key fields")
            key = t.key_of(data or {}, f"entity type {entity_type!r}")
        return self.generator.generate_many(entity_type, [key])[0]

    def event_id(self, entity_id: uuid.UUID, event: str, fingerprint: str) -> uuid.UUID:
        """The deterministic ID of an event about an entity (the AMQP ``message_id``)."""
        return events.event_id(entity_id, event, fingerprint)

    def records(self, entities: Iterable[Any], start: int = 0) -> list[Record]:
        """Records with IDs for ``(entity_type, key, data)`` items; validates every one."""
        items = [_as_entity(e, start + i) for i, e in enumerate(entities)]
        if self.types or any(k is FROM_DATA for _, k, _ in items):
            items = [self._keyed(item, start + i) for i, item in enumerate(items)]
        by_type: dict[str, list[int]] = {}
        for i, (entity_type, _, _) in enumerate(items):
            if not isinstance(entity_type, str):
                raise ValidationError(f"entities[{start + i}]: the entity type must be a str, got "
                                      f"{type(entity_type).__name__}")
            by_type.setdefault(entity_type, []).append(i)
        self.check_salts(by_type)
        ids: list[uuid.UUID | None] = [None] * len(items)
        for entity_type, positions in by_type.items():
            for pos, ident in zip(positions, self.generator.generate_many(entity_type, [items[p][1] for p in positions])):
                ids[pos] = ident
        out = []
        for i, ((entity_type, key, data), made) in enumerate(zip(items, ids)):
            assert made is not None  # every position belongs to one type's batch above
            stored_key = dict(key) if isinstance(key, Mapping) else list(key) if isinstance(key, tuple) else [key]
            record = Record(entity_type, made, data, stored_key)
            try:
                record.fingerprint  # noqa: B018 - validates the data now, before any store is touched
            except (TypeError, ValueError) as err:
                raise ValidationError(f"entities[{start + i}] ({entity_type}): {err}") from None
            out.append(record)
        idmarker.check_not_reserved(by_type)
        for h in self.stores:
            for entity_type in by_type:
                h.adapter.check_entity_type(entity_type)
        return out

    def _keyed(self, item: Entity, index: int) -> Entity:
        """``item`` with its key: taken from the declared type's key fields when left out, and an
        explicit key of a declared type checked against them."""
        entity_type, key, data = item
        where = f"entities[{index}] ({entity_type})"
        t = self.types.get(entity_type) if isinstance(entity_type, str) else None
        if key is FROM_DATA:
            if t is None:
                raise ValidationError(f"{where}: no key given, and entity type {entity_type!r} is not declared with "
                                      f"key fields (declare [types.{entity_type}] key = [\"...\"], or pass the key)")
            return entity_type, t.key_of(data, where), data
        if t is not None:
            t.check_key(key, data, where)
            if isinstance(key, Mapping) and isinstance(data, Mapping) and any(n not in data for n in t.key):
                # the key given beside the data is part of the entity: a table or proof mapping the key
                # fields finds them in the data (the ID is the key's either way)
                return entity_type, key, {**{n: key[n] for n in t.key if n not in data}, **data}
        return item

    # -- write-through -------------------------------------------------------------------------
    def write(self, entity_type: str, key: Any, data: Mapping[str, Any] = _NO_DATA, *,
              recreate: bool = False) -> WriteReport:
        """Write one entity to every store; raises WriteError (with the report) if a required store failed.

        ``write(type, key, data)``, or ``write(type, data)`` for a declared type: the ID then comes
        from the type's key fields in ``data``. A deleted entity (a tombstone in the source) is
        refused unless ``recreate``."""
        if data is _NO_DATA:
            return self.write_many([(entity_type, FROM_DATA, key)], recreate=recreate)
        return self.write_many([(entity_type, key, data)], recreate=recreate)

    def write_many(self, entities: Iterable[Any], progress: Callable[[int], None] | None = None, *,
                   recreate: bool = False) -> WriteReport:
        """Write many entities in batches. A list is validated whole before any store is touched;
        an iterator is validated batch by batch. ``progress(n)`` is called after each batch.

        A record whose ID was deleted (its tombstone is in the source, uuid_forge.tombstones) is
        refused and counted in ``report.refused_deleted`` (WriteError names it by type and ID), so a
        late write of an older version never brings a deleted entity back; ``recreate=True``
        writes it and removes its tombstone."""
        started = time.perf_counter()
        report = self._new_report()
        self._down.clear()  # a store that was down in an earlier call is tried again
        batches: Iterator[list[Record]]
        if isinstance(entities, (list, tuple)):
            records = self.records(entities)
            idmarker.ensure(self, {r.entity_type for r in records})  # every type, before any store is touched
            batches = chunked(records, self.settings.batch_size)
        else:
            batches = self._record_batches(entities)
        for batch in batches:
            idmarker.ensure(self, {r.entity_type for r in batch})  # refuses another ID configuration
            self._write_batch(batch, report, recreate)
            if progress is not None:
                progress(len(batch))
            if _stalled(report):  # a store-level failure; dead letters alone do not stop the job
                break
        report.seconds = time.perf_counter() - started
        if not report.ok:
            raise WriteError(_failure_message(report, self.source.name), report=report)
        return report

    def _record_batches(self, entities: Iterable[Any]) -> Iterator[list[Record]]:
        start = 0
        for chunk in chunked(entities, self.settings.batch_size):
            yield self.records(chunk, start)
            start += len(chunk)

    def _new_report(self) -> WriteReport:
        return WriteReport(stores={h.name: StoreResult(h.name, h.role, h.adapter.url()) for h in self.stores})

    def _write_batch(self, records: list[Record], report: WriteReport, recreate: bool = False) -> None:
        report.entities += len(records)
        stoned = self._tombstoned(records, report)
        if stoned is None:  # the source could not be read: the batch fails as a source failure would
            for h in self.stores:
                report.stores[h.name].not_written += len(records)
                if not h.source:
                    report.stores[h.name].not_attempted = f"the source {self.source.name} failed"
            return
        if stoned and not recreate:
            keep = [r for r in records if (r.entity_type, r.id) not in stoned]
            refused = [r for r in records if (r.entity_type, r.id) in stoned]
            report.refused_deleted += len(refused)
            for r in refused:
                if len(report.refused_deleted_ids) < 5:
                    report.refused_deleted_ids.append(f"{r.entity_type} {r.id}")
            log.warning("write: %d record(s) refused: their IDs were deleted (tombstones in %s); write them with "
                        "recreate=True to bring them back", len(refused), self.source.name)
            records = keep
            if not records:
                return
        t = time.perf_counter()
        seqs = self.journal.record_intent(records, [h.name for h in self.stores]) if self.journal else []
        report.journal_seconds += time.perf_counter() - t
        record_seqs = seqs if len(seqs) == len(records) else []
        kept = self._put(self.source, records, seqs, report, record_seqs=record_seqs, source=True, journaled=False)
        if kept is None:
            # Rule 1: the caller gets WriteError for this batch, so nothing of it may land later.
            if self.journal:
                t = time.perf_counter()
                self.journal.forget(seqs)
                report.journal_seconds += time.perf_counter() - t
                log.warning("source %s failed: %d record(s) dropped from the journal for every store (the caller "
                            "gets WriteError; write them again)", self.source.name, len(records))
            report.stores[self.source.name].not_written += len(records)
            for h in self.stores[1:]:
                report.stores[h.name].not_written += len(records)
                report.stores[h.name].not_attempted = f"the source {self.source.name} failed"
            return
        # only what the source holds goes on; a record the source rejected is owed to no other store
        if len(kept) < len(records):
            for h in self.stores[1:]:
                report.stores[h.name].skipped += len(records) - len(kept)
                report.stores[h.name].not_attempted = f"the source {self.source.name} refused them"
        landed = records if len(kept) == len(records) else [records[i] for i in kept]
        if stoned and recreate:  # written on purpose: the entity exists again
            pairs = [(r.entity_type, r.id) for r in landed if (r.entity_type, r.id) in stoned]
            ok, error, _ = self._with_retries(lambda: tombstones.forget(self.source.adapter, pairs),
                                              report.stores[self.source.name])
            if not ok:
                report.stores[self.source.name].note_error(f"tombstones not removed: {error}")
                log.warning("write: %d recreated record(s) keep their tombstones in %s (%s): later writes of them "
                            "are refused until recreate succeeds", len(pairs), self.source.name, error)
        landed_seqs = record_seqs if len(kept) == len(records) or not record_seqs else [record_seqs[i] for i in kept]
        others = self.stores[1:]
        if self.settings.concurrent and len(others) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(others), thread_name_prefix="uuid-forge")
            for future in [self._pool.submit(self._put, h, landed, seqs, report, record_seqs=landed_seqs)
                           for h in others]:
                future.result()
        else:
            for h in others:
                self._put(h, landed, seqs, report, record_seqs=landed_seqs)

    def _tombstoned(self, records: list[Record], report: WriteReport) -> dict[tuple[str, uuid.UUID], str] | None:
        """The deletion times of the records' IDs that have a tombstone in the source (one batched
        read); None when the source cannot be read (retried first)."""
        if not records or not tombstones.supported(self):
            return {}
        found: dict[tuple[str, uuid.UUID], str] = {}
        t = time.perf_counter()
        result = report.stores[self.source.name]
        ok, error, _ = self._with_retries(
            lambda: found.update(tombstones.find(self.source.adapter, [(r.entity_type, r.id) for r in records])),
            result)
        result.seconds += time.perf_counter() - t
        if not ok:
            result.note_error(f"could not read its tombstones: {error}")
            return None
        return found

    def _put(self, handle: StoreHandle, records: list[Record], seqs: list[int], report: WriteReport, *,
             record_seqs: Sequence[int] = (), source: bool = False, journaled: bool = True,
             deletes: Mapping[str, list[uuid.UUID]] | None = None, delete_token: str | None = None
             ) -> list[int] | None:
        """One batch into one store with retries, rejected records isolated; journal bookkeeping.

        Returns the indexes of the records that landed (None when the store failed as a whole: the
        batch stays pending, or with ``journaled=False`` is the caller's to drop). ``record_seqs[i]``
        is the journal entry of ``records[i]`` (for dead letters, and with ``source`` the supersede
        marks); ``deletes`` are IDs to remove (replay: the source no longer has them), proven ours
        first where the container is shared, under ``delete_token`` (else their tombstones' times)."""
        result = report.stores[handle.name]
        t = time.perf_counter()
        ok, error, rejected = self._put_isolating(handle, records, result)
        if ok and deletes:
            for entity_type, ids in deletes.items():
                groups = {delete_token: ids} if delete_token is not None else self._tokens(entity_type, ids)
                for token, group in groups.items():
                    ok, error, _ = self._delete_proven(handle, entity_type, group, token, result)
                    if not ok:
                        break
                if not ok:
                    break
        result.seconds += time.perf_counter() - t
        t = time.perf_counter()
        landed: list[int] | None = None
        if ok:
            bad = {i for i, _ in rejected}
            landed = [i for i in range(len(records)) if i not in bad]
            result.written += len(landed)
            dead = []
            for i, reason in rejected:
                rec = records[i]
                result.dead_letters += 1
                if len(result.dead_letter_ids) < 5:
                    result.dead_letter_ids.append(f"{rec.entity_type} {rec.id}")
                result.note_error(reason)
                log.warning("store %s rejected %s %s (a dead letter in the journal): %s", handle.name,
                            rec.entity_type, rec.id, reason)
                if record_seqs:
                    dead.append((record_seqs[i], rec, reason))
            if self.journal:
                mark = [(record_seqs[i], r) for i, r in enumerate(records) if i not in bad] \
                    if source and record_seqs else []
                self.journal.mark_done(handle.name, seqs, landed=mark, dead=dead)
        else:
            if journaled:  # else the failure is the caller's (WriteError), not the journal's
                result.pending += len(records)
                log.warning("store %s: %d records left in the journal: %s", handle.name, len(records), error)
            result.note_error(error)
            if self.journal:
                self.journal.mark_failed(handle.name, seqs, error)
        report.journal_seconds += time.perf_counter() - t
        return landed

    def _put_isolating(self, handle: StoreHandle, records: list[Record],
                       result: StoreResult) -> tuple[bool, str, list[tuple[int, str]]]:
        """``put_many`` with retries; on a rejection, bisect until the bad records are isolated.

        Returns (ok, error, [(index, reason)] of the records the store refused for good). ok is
        False only for a store-level failure (down, misconfigured): then nothing is dead-lettered."""
        if not handle.source:
            until = self._down.get(handle.name, 0.0)
            if time.monotonic() < until:  # failed every retry a moment ago: journal, do not wait on it again
                left = until - time.monotonic()
                return False, f"not tried: a batch failed every retry (tried again in {left:.0f}s)", []

        def attempt(part: list[Record]) -> tuple[bool, str, type[StoreError] | None]:
            ok, error, kind = self._with_retries(lambda: handle.adapter.put_many(part), result)
            if not handle.source:  # the source is never skipped: each batch needs it
                if kind is not None and issubclass(kind, StoreUnavailableError):
                    self._down[handle.name] = time.monotonic() + DOWN_WINDOW
                elif ok:
                    self._down.pop(handle.name, None)
            return ok, error, kind
        return put_isolating(records, attempt)

    def _with_retries(self, call: Callable[[], object],
                      result: StoreResult) -> tuple[bool, str, type[StoreError] | None]:
        """(ok, masked error, the error's class). Only StoreUnavailableError is retried."""
        delay = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            result.attempts += 1
            try:
                call()
                return True, "", None
            except StoreUnavailableError as err:  # reachable again later: retry with backoff
                error = error_reason(err)
                if attempt == self.settings.retries:
                    return False, error, type(err)
                result.retries += 1
                self._sleep(delay * (1 + random.random() / 4))
                delay = min(delay * 2, 10.0)
            except StoreError as err:  # the store answered with an error: retrying will not help
                return False, error_reason(err), type(err)
            except ValidationError as err:  # a store's own check of the data (before it wrote anything)
                return False, error_reason(err), StoreRejectedError
        return False, "no attempt made", None

    # -- deletes (docs/write-through.md, "Deletes") ---------------------------------------------
    def delete(self, entity_type: str, key: Any = FROM_DATA, *, id: uuid.UUID | str | None = None,
               data: Mapping[str, Any] | None = None, dry_run: bool = False, force: bool = False) -> WriteReport:
        """Delete one entity from every store: by business ``key``, by ``data`` holding a declared
        type's key fields, or by ``id``. Raises WriteError as ``write`` does. ``force``: see
        :meth:`delete_many`."""
        item: dict[str, Any] = {"entity_type": entity_type}
        given = [n for n, v in (("key", key is not FROM_DATA), ("data", data is not None), ("id", id is not None)) if v]
        if len(given) > 1:
            raise ValidationError(f"delete({entity_type!r}): give the key, the data or the id, not {' and '.join(given)}"
                                  " (which entity to delete would be a guess)")
        if id is not None:
            item["id"] = id
        elif key is FROM_DATA:
            item["data"] = data if data is not None else {}
        else:
            item["key"] = key
        return self.delete_many([item], dry_run=dry_run, force=force)

    def delete_many(self, items: Iterable[Any], progress: Callable[[int], None] | None = None, *,
                    dry_run: bool = False, force: bool = False, places: Sequence[str] | None = None) -> WriteReport:
        """Delete many entities: ``(entity_type, key)``, ``(entity_type, uuid.UUID)`` or dicts
        ``{"entity_type": ..., "key": ...}`` / ``{"entity_type": ..., "id": ...}`` (``"data"``: a
        declared type's key fields). All are validated before any store is touched.

        Order per batch: the intent in the journal, then the source (its tombstones, then its
        entries), then every other store that can delete, in parallel; each store's part leaves
        the journal when done. Only entries proven ours go: in a container shared with others each
        entry is read and proven first, and one that cannot be proven is left and counted
        (``unproven``). A source that fails: WriteError, nothing pending anywhere. ``dry_run``:
        nothing changes; the report says what each store would delete. Erasing history too is
        uuid_forge.erasure's (``uuid-forge delete --erase``).

        An entity the source neither holds nor has a tombstone for (a mistyped key, one never
        written) is left alone: nothing deleted anywhere, no tombstone (which would refuse its
        first real write), no delete event; the report counts it (``not_in_source``) and it is no
        failure. ``force=True`` deletes such entities everywhere and tombstones them anyway: for an
        entity whose source entry was removed by hand while other stores still hold it.
        ``places``: what an error calls each item (``leavers.jsonl line 2``), else ``deletes[i]``."""
        started = time.perf_counter()
        report = self._new_report()
        report.kind = "delete"
        report.dry_run = dry_run
        if DELETE not in self.source.adapter.capabilities:
            raise ConfigError(f"the source {self.source.name} cannot delete entries: no delete is possible")
        targets = self.delete_targets(items, places)
        types = {r.entity_type for r in targets}
        if dry_run:  # read only: a configuration that differs is refused, no marker is made
            idmarker.audit_findings(self, types, refuse=True)
        else:
            idmarker.ensure(self, types, "delete")  # the IDs must be the ones stored
        token = tombstones.deletion_time()
        for batch in chunked(targets, self.settings.batch_size):
            if not force:
                batch = self._held_by_source(batch, report)
            if dry_run:
                self._delete_plan(batch, report)
            elif batch:
                self._delete_batch(batch, report, token)
            if progress is not None:
                progress(len(batch))
            if _stalled(report):
                break
        report.seconds = time.perf_counter() - started
        if not report.ok:
            raise WriteError(_failure_message(report, self.source.name), report=report)
        return report

    def delete_targets(self, items: Iterable[Any], places: Sequence[str] | None = None) -> list[Record]:
        """The entities ``items`` name, as records without data (type, ID, key), validated; an
        error names the item by ``places[i]`` when given (a file and line), else ``deletes[i]``."""
        targets: list[Record] = []
        keyed: dict[str, list[tuple[int, Any]]] = {}
        for index, item in enumerate(items):
            where = places[index] if places is not None and index < len(places) else f"deletes[{index}]"
            ident: Any = None
            key: Any = None
            if isinstance(item, Mapping):
                entity_type = item.get("entity_type")
                both = [n for n in ("key", "data", "id") if n in item]
                if len(both) > 1:
                    raise ValidationError(f"{where} ({entity_type}): give key, data or id, not {' and '.join(both)}")
                if "id" in item:
                    ident = item["id"]
                elif "key" in item:
                    key = item["key"]
                elif "data" in item:
                    key = self._key_from_data(entity_type, item["data"], where)
                else:
                    raise ValidationError(f"{where} needs entity_type and one of key, id or data")
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                entity_type = item[0]
                if isinstance(item[1], uuid.UUID):
                    ident = item[1]
                else:
                    key = item[1]
            else:
                raise ValidationError(f"{where} must be (entity_type, key), (entity_type, uuid.UUID) or a dict with "
                                      f"entity_type and key or id, got {type(item).__name__}")
            if not isinstance(entity_type, str) or not entity_type:
                raise ValidationError(f"{where}: the entity type must be a non-empty str, got {entity_type!r}")
            if ident is not None:
                try:
                    ident = ident if isinstance(ident, uuid.UUID) else uuid.UUID(str(ident))
                except ValueError:
                    raise ValidationError(f"{where} ({entity_type}): id {mask_value(str(ident)[:40])!r} is not a UUID "
                                          "(shown masked)") from None
                targets.append(Record(entity_type, ident, {}))
                continue
            t = self.types.get(entity_type)
            if t is not None:
                t.check_key(key, {}, f"{where} ({entity_type})")
            keyed.setdefault(entity_type, []).append((len(targets), key))
            targets.append(Record(entity_type, uuid.UUID(int=0), {}))  # its ID is computed below, per type
        types = {r.entity_type for r in targets}
        idmarker.check_not_reserved(types)
        self.check_salts(types)
        for entity_type, pairs in keyed.items():
            made = self.generator.generate_many(entity_type, [k for _, k in pairs])
            for (pos, key), ident in zip(pairs, made):
                stored = dict(key) if isinstance(key, Mapping) else list(key) if isinstance(key, tuple) else [key]
                targets[pos] = Record(entity_type, ident, {}, stored)
        for h in self.stores:
            for entity_type in types:
                try:
                    h.adapter.check_entity_type(entity_type)
                except ValidationError as err:  # the store that refuses it, named
                    raise ValidationError(f"store {h.name}: {err}") from None
        return targets

    def _key_from_data(self, entity_type: Any, data: Any, where: str) -> dict[str, Any]:
        t = self.types.get(entity_type) if isinstance(entity_type, str) else None
        if t is None:
            raise ValidationError(f"{where}: no key given, and entity type {entity_type!r} is not declared with key "
                                  "fields (pass the key, or the id)")
        return t.key_of(data, f"{where} ({entity_type})")

    def _deleters(self) -> list[StoreHandle]:
        """The stores a delete goes to: the source, then every store that can delete."""
        return [h for h in self.stores if h.source or DELETE in h.adapter.capabilities]

    def _held_by_source(self, targets: list[Record], report: WriteReport) -> list[Record]:
        """Those of ``targets`` the source holds or has a tombstone for; the others are counted in
        ``report.not_in_source`` (and in ``entities``) and go nowhere. A source that cannot be read
        fails the batch as a failed source delete does (nothing deleted, nothing journaled)."""
        adapter, result = self.source.adapter, report.stores[self.source.name]
        if READ not in adapter.capabilities:  # cannot tell: delete as asked
            return targets
        by_type: dict[str, list[uuid.UUID]] = {}
        for r in targets:
            by_type.setdefault(r.entity_type, []).append(r.id)
        held: set[tuple[str, uuid.UUID]] = set()

        def read() -> None:
            for entity_type, ids in by_type.items():
                held.update((entity_type, i) for i in adapter.get_many(entity_type, ids))
            if tombstones.supported(self):
                held.update(tombstones.find(adapter, [(r.entity_type, r.id) for r in targets
                                                      if (r.entity_type, r.id) not in held]))

        ok, error, _ = self._with_retries(read, result)
        if not ok:
            report.entities += len(targets)
            result.note_error(f"could not be read: {error}")
            result.not_written += len(targets)
            for h in self.stores[1:]:
                report.stores[h.name].not_written += len(targets)
                report.stores[h.name].not_attempted = f"the source {self.source.name} failed"
            return []
        absent = [r for r in targets if (r.entity_type, r.id) not in held]
        if absent:
            report.entities += len(absent)
            report.not_in_source += len(absent)
            room = 5 - len(report.not_in_source_ids)
            report.not_in_source_ids.extend(f"{r.entity_type} {r.id}" for r in absent[:max(room, 0)])
            log.warning("delete: %d entit(y/ies) not in the source %s: nothing deleted, no tombstone",
                        len(absent), self.source.name)
        return [r for r in targets if (r.entity_type, r.id) in held] if absent else targets

    def _delete_batch(self, targets: list[Record], report: WriteReport, token: str) -> None:
        report.entities += len(targets)
        stores = self._deleters()
        t = time.perf_counter()
        seqs = self.journal.record_intent(targets, [h.name for h in stores], op="delete", token=token) \
            if self.journal else []
        report.journal_seconds += time.perf_counter() - t
        record_seqs = seqs if len(seqs) == len(targets) else []
        kept = self._remove(self.source, targets, seqs, report, token, record_seqs=record_seqs, journaled=False)
        if kept is None:  # as a failed source write: the caller gets WriteError, nothing stays owed
            if self.journal:
                self.journal.forget(seqs)
            report.stores[self.source.name].not_written += len(targets)
            for h in self.stores[1:]:
                report.stores[h.name].not_written += len(targets)
                report.stores[h.name].not_attempted = f"the source {self.source.name} failed"
            return
        gone = targets if len(kept) == len(targets) else [targets[i] for i in kept]
        others = stores[1:]
        if self.settings.concurrent and len(others) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(self.stores), thread_name_prefix="uuid-forge")
            for future in [self._pool.submit(self._remove, h, gone, seqs, report, token) for h in others]:
                future.result()
        else:
            for h in others:
                self._remove(h, gone, seqs, report, token)

    def _remove(self, handle: StoreHandle, targets: list[Record], seqs: list[int], report: WriteReport, token: str,
                *, record_seqs: Sequence[int] = (), journaled: bool = True) -> list[int] | None:
        """One delete batch in one store (with the source: its tombstones first), with retries and
        the journal's bookkeeping. Returns the indexes of ``targets`` now absent from the store
        (None when the store failed as a whole). In the source an entry that cannot be proven
        ours stays, and its ID is then owed to no other store."""
        result = report.stores[handle.name]
        t = time.perf_counter()
        ok, error = True, ""
        left: set[int] = set()
        by_type: dict[str, list[int]] = {}
        for i, r in enumerate(targets):
            by_type.setdefault(r.entity_type, []).append(i)
        for entity_type, positions in by_type.items():
            ids = [targets[i].id for i in positions]
            if handle.source:
                ok, error, unproven = self._unproven_here(handle, entity_type, ids, result)
                if not ok:
                    break
                left.update(i for i in positions if targets[i].id in unproven)
                ids = [i for i in ids if i not in unproven]
                if tombstones.supported(self) and ids:
                    pairs = [(entity_type, i) for i in ids]
                    ok, error, _ = self._with_retries(functools.partial(tombstones.put, handle.adapter, pairs, token), result)
                    if not ok:
                        break
                ok, error, _ = self._delete_proven(handle, entity_type, ids, token, result, proven=True)
            else:
                ok, error, _ = self._delete_proven(handle, entity_type, ids, token, result)
            if not ok:
                break
        result.seconds += time.perf_counter() - t
        t = time.perf_counter()
        done: list[int] | None = None
        if ok:
            done = [i for i in range(len(targets)) if i not in left]
            if self.journal:
                mark = [(record_seqs[i], targets[i]) for i in done] if handle.source and record_seqs else []
                self.journal.mark_done(handle.name, seqs, landed=mark)
        else:
            if journaled:
                result.pending += len(targets)
                log.warning("store %s: %d delete(s) left in the journal: %s", handle.name, len(targets), error)
            result.note_error(error)
            if self.journal:
                self.journal.mark_failed(handle.name, seqs, error)
        report.journal_seconds += time.perf_counter() - t
        return done

    def _unproven_here(self, handle: StoreHandle, entity_type: str, ids: list[uuid.UUID],
                       result: StoreResult) -> tuple[bool, str, set[uuid.UUID]]:
        """(ok, error, the IDs among ``ids`` this store holds and cannot prove ours). Only a shared
        container is read: one of ours alone holds nothing else. Counted in ``result``."""
        adapter = handle.adapter
        if not ids or READ not in adapter.capabilities or not adapter.shared(entity_type):
            return True, "", set()
        found: dict[uuid.UUID, Record] = {}
        ok, error, _ = self._with_retries(lambda: found.update(adapter.get_many(entity_type, ids)), result)
        if not ok:
            return False, error, set()
        proofs = self.prover.prove(entity_type, found, adapter.view)
        unproven = {i for i, p in proofs.items() if not p.ok}
        for i in ids:
            if i in unproven:
                result.unproven += 1
                if len(result.unproven_ids) < 5:
                    result.unproven_ids.append(f"{entity_type} {i}")
                result.note_error(f"left {entity_type} entries it cannot prove ours (not deleted): "
                                  f"{proofs[i].reason}")
        if unproven:
            log.warning("store %s: %d %s entr(y/ies) not deleted: they cannot be proven ours", handle.name,
                        len(unproven), entity_type)
        return True, "", unproven

    def _delete_proven(self, handle: StoreHandle, entity_type: str, ids: list[uuid.UUID], token: str,
                       result: StoreResult, *, proven: bool = False) -> tuple[bool, str, type[StoreError] | None]:
        """Delete ``ids`` from one store, only those proven ours where the container is shared
        (``proven``: the caller proved them already). A store that cannot be read by ID (a message
        log) holds nothing to prove: its own ``delete_many`` decides what a delete means there."""
        if not ids:
            return True, "", None
        if not proven:
            ok, error, unproven = self._unproven_here(handle, entity_type, ids, result)
            if not ok:
                return False, error, None
            ids = [i for i in ids if i not in unproven]
            if not ids:
                return True, "", None
        counted: list[int] = []
        outcome = self._with_retries(
            lambda: counted.append(handle.adapter.delete_many(entity_type, ids, token=token)), result)
        if outcome[0]:
            result.deleted += sum(counted)
        return outcome

    def _tokens(self, entity_type: str, ids: list[uuid.UUID]) -> dict[str, list[uuid.UUID]]:
        """``ids`` grouped by the deletion time of their tombstones in the source ("" without one),
        so that a replayed delete keeps the token of its deletion."""
        found: dict[tuple[str, uuid.UUID], str] = {}
        if tombstones.supported(self):
            try:
                found = tombstones.find(self.source.adapter, [(entity_type, i) for i in ids])
            except StoreError as err:
                log.info("replay: tombstones not read (%s): deletes go without their token", error_reason(err))
        out: dict[str, list[uuid.UUID]] = {}
        for i in ids:
            out.setdefault(found.get((entity_type, i), ""), []).append(i)
        return out

    def _delete_plan(self, targets: list[Record], report: WriteReport) -> None:
        """A dry run: per store, how many of ``targets`` it holds proven ours (would go) and
        unproven (would stay). Nothing is written, not even the journal."""
        report.entities += len(targets)
        by_type: dict[str, list[uuid.UUID]] = {}
        for r in targets:
            by_type.setdefault(r.entity_type, []).append(r.id)
        for h in self._deleters():
            result = report.stores[h.name]
            for entity_type, ids in by_type.items():
                if READ not in h.adapter.capabilities:
                    result.deleted += len(ids)  # a message log: a delete event per ID
                    continue
                found: dict[uuid.UUID, Record] = {}
                ok, error, _ = self._with_retries(functools.partial(_read_into, found, h.adapter, entity_type, ids), result)
                if not ok:
                    result.note_error(f"could not be read: {error}")
                    continue
                if h.adapter.shared(entity_type):
                    proofs = self.prover.prove(entity_type, found, h.adapter.view)
                    bad = [i for i, p in proofs.items() if not p.ok]
                    result.unproven += len(bad)
                    result.unproven_ids.extend(f"{entity_type} {i}" for i in bad[:5 - len(result.unproven_ids)])
                    result.deleted += len(found) - len(bad)
                else:
                    result.deleted += len(found)

    # -- recovery ------------------------------------------------------------------------------
    def _current(self, records: list[Record]) -> tuple[list[Record], dict[str, list[uuid.UUID]]]:
        """Replay rule 2: the source's current records for these IDs, and per type the IDs the
        source no longer has. Raises StoreError when the source cannot be read."""
        by_type: dict[str, list[uuid.UUID]] = {}
        for r in records:
            ids = by_type.setdefault(r.entity_type, [])
            if r.id not in ids[-1:]:
                ids.append(r.id)
        current: list[Record] = []
        gone: dict[str, list[uuid.UUID]] = {}
        for entity_type, ids in by_type.items():
            unique = list(dict.fromkeys(ids))
            found = self.source.adapter.get_many(entity_type, unique)
            unreadable = [r.unreadable for r in found.values() if r.unreadable]
            if unreadable:  # never copy an unreadable source entry: the batch waits, named
                raise StoreError(f"{len(unreadable)} source record(s) cannot be read, e.g. {unreadable[0]}",
                                 store=self.source.name)
            current.extend(found[i] for i in unique if i in found)
            missing = [i for i in unique if i not in found]
            if missing:
                gone[entity_type] = missing
        return current, gone

    def pending(self) -> dict[str, int]:
        """How many records each store is still owed, from the journal."""
        return self.journal.pending_counts() if self.journal else {}

    def replay(self, progress: Callable[[int], None] | None = None) -> WriteReport:
        """Finish what the journal says is still owed (source first), by the rule in the module
        docstring: the source gets its journaled records unless superseded, the other stores the
        source's current records. Safe to run any time."""
        started = time.perf_counter()
        report = self._new_report()
        report.kind = "replay"
        self._down.clear()  # replay is how a store that is back gets its records: always try it
        if self.journal is None:
            return report
        known = {h.name: h for h in self.stores}
        owed = self.journal.stores_pending()
        unknown = [n for n in owed if n not in known]
        if unknown:
            raise ConfigError(f"the journal holds records for store(s) {', '.join(unknown)} that the configuration "
                              "no longer has; add them back or remove the journal file")
        idmarker.ensure(self, self.journal.pending_entity_types(), "replay")
        order = [h for h in self.stores if h.name in owed]
        source_blocked = False
        for handle in order:
            if source_blocked and not handle.source:
                # Never let another store get ahead of the source of truth.
                report.stores[handle.name].pending += self.journal.pending_counts().get(handle.name, 0)
                continue
            for batch in self.journal.pending(handle.name):
                if batch.op == "delete" and handle.source:  # a delete the source never got (a crash)
                    keep = [i for i, s in enumerate(batch.record_seqs) if s not in batch.superseded]
                    if self._remove(handle, [batch.records[i] for i in keep], batch.seqs, report, batch.token,
                                    record_seqs=[batch.record_seqs[i] for i in keep]) is None:
                        report.stores[handle.name].pending += \
                            self.journal.pending_counts().get(handle.name, 0) - len(keep)
                        source_blocked = True
                        break
                    report.entities += len(batch.records)
                    if progress is not None:
                        progress(len(batch.records))
                    continue
                records, record_seqs, deletes = self._replay_plan(handle, batch, report)
                if records is None:  # the source could not be read: nothing to compare with
                    report.stores[handle.name].pending += self.journal.pending_counts().get(handle.name, 0)
                    break
                if self._put(handle, records, batch.seqs, report, record_seqs=record_seqs, source=handle.source,
                             deletes=deletes, delete_token=batch.token if batch.op == "delete" else None) is None:
                    report.stores[handle.name].pending += \
                        self.journal.pending_counts().get(handle.name, 0) - len(records)
                    if handle.source:
                        source_blocked = True
                    break
                report.entities += len(batch.records) if handle.source or not any(h.source for h in order) else 0
                if progress is not None:
                    progress(len(batch.records))
        report.seconds = time.perf_counter() - started
        return report

    def _replay_plan(self, handle: StoreHandle, batch: PendingBatch, report: WriteReport
                     ) -> tuple[list[Record] | None, list[int], dict[str, list[uuid.UUID]] | None]:
        """What replay writes to ``handle`` for ``batch``: (records, their entries, IDs to delete)."""
        if handle.source:  # rule 3: journaled records, unless a newer write of the ID has landed
            keep = [i for i, s in enumerate(batch.record_seqs) if s not in batch.superseded]
            if len(keep) < len(batch.records):
                log.info("replay: %d journaled record(s) for %s skipped: a newer write of the same ID landed",
                         len(batch.records) - len(keep), handle.name)
            try:  # nor when the ID was deleted after the entry was journaled (its tombstone is newer)
                keep = self._not_deleted_since(batch, keep)
            except StoreError as err:
                error = f"could not read the source's tombstones to replay: {error_reason(err)}"
                report.stores[handle.name].note_error(error)
                if self.journal:
                    self.journal.mark_failed(handle.name, batch.seqs, error)
                return None, [], None
            return [batch.records[i] for i in keep], [batch.record_seqs[i] for i in keep], None
        if READ not in self.source.adapter.capabilities:  # a write-only source: the journaled copy is all there is
            if batch.op == "delete":  # a deletion carries no record: the IDs go
                ids: dict[str, list[uuid.UUID]] = {}
                for r in batch.records:
                    ids.setdefault(r.entity_type, []).append(r.id)
                return [], [], ids if DELETE in handle.adapter.capabilities else None
            return batch.records, batch.record_seqs, None
        try:  # rule 2: the source's current record, never the journaled copy
            records, gone = self._current(batch.records)
        except StoreError as err:
            error = f"could not read the source {self.source.name} to replay: {error_reason(err)}"
            report.stores[handle.name].note_error(error)
            if self.journal:
                self.journal.mark_failed(handle.name, batch.seqs, error)
            return None, [], None
        seq_of = {(r.entity_type, r.id): s for r, s in zip(batch.records, batch.record_seqs)}
        record_seqs = [seq_of[(r.entity_type, r.id)] for r in records]
        # a message log gets no delete event here: only a deletion (Forge.delete, with its token) publishes one
        removes = DELETE in handle.adapter.capabilities and not handle.adapter.append_only
        return records, record_seqs, gone if removes else None

    def _not_deleted_since(self, batch: PendingBatch, keep: list[int]) -> list[int]:
        """The positions among ``keep`` whose ID has no tombstone newer than its journal entry."""
        if not keep or not tombstones.supported(self) or len(batch.created) != len(batch.records):
            return keep
        found = tombstones.find(self.source.adapter, [(batch.records[i].entity_type, batch.records[i].id)
                                                      for i in keep])
        if not found:
            return keep
        out = [i for i in keep if tombstones.time_of(found.get((batch.records[i].entity_type, batch.records[i].id),
                                                                "")) <= batch.created[i]]
        if len(out) < len(keep):
            log.info("replay: %d journaled record(s) for %s skipped: the entity was deleted after it was journaled",
                     len(keep) - len(out), self.source.name)
        return out

    # -- audit (see uuid_forge.audit) ----------------------------------------------------------
    def audit(self, entity_type: str | Iterable[str] | None = None, **kwargs: Any) -> AuditReport:
        """Compare every store with the source of truth; see :func:`uuid_forge.audit.audit`."""
        return run_audit(self, entity_type, **kwargs)

    def entity_types(self) -> list[str]:
        """Every entity type any scannable store holds records of, sorted."""
        return all_types(self.stores)

    def drop(self, entity_type: str, stores: Iterable[str] | None = None) -> None:
        """Remove ``entity_type`` from every store (or the ones named in ``stores``): a per-type
        container of ours goes whole; in a container shared with others (the user's own table,
        collection or index, a Redis database without a prefix of ours, a directory of files)
        only the entries proven ours go (uuid_forge.ownership). For tests, demos and decommissioning."""
        names = None if stores is None else set(stores)
        for h in self.stores:
            if (names is None or h.name in names) and DELETE in h.adapter.capabilities \
                    and not h.adapter.append_only:  # a message log cannot forget a type (delete_topology)
                h.adapter.drop(entity_type, prover=self.prover)


def _read_into(found: dict[uuid.UUID, Record], adapter: Adapter, entity_type: str, ids: list[uuid.UUID]) -> None:
    found.update(adapter.get_many(entity_type, ids))


def _stalled(report: WriteReport) -> bool:
    """A store-level failure of the source or a required store: later batches would fail too."""
    return any(s.role != "optional" and (s.pending or s.not_written) for s in report.stores.values())


#: what a refused (deleted) record's message says to do; the CLI says it with its own option
RECREATE_HINT = "write them with recreate=True to bring them back"
CLI_RECREATE_HINT = "write them with 'uuid-forge write --recreate' to bring them back"


def _failure_message(report: WriteReport, source: str) -> str:
    """WriteError's text: the stores that failed, and the dead letters by ID (never their data)."""
    parts = []
    src = report.stores[source]
    down = [n for n, s in report.stores.items() if s.role != "optional" and s.pending]
    if report.kind == "delete":  # nothing is written by a delete: say what was not deleted, and what to do
        if src.not_written:
            parts.append(f"the source {source} could not delete: {src.errors[0] if src.errors else ''} "
                         f"({src.not_written} entit{'y' if src.not_written == 1 else 'ies'} not deleted anywhere and "
                         "nothing kept in the journal: run the delete again)")
        elif down:
            parts.append(f"required store(s) {', '.join(down)} could not delete: "
                         f"{'; '.join(e for n in down for e in report.stores[n].errors[:1])} "
                         f"(deleted from the source; the delete is owed to {', '.join(down)} in the journal: "
                         "run 'uuid-forge replay' when the store is back)")
        return "; ".join(parts) or "the delete failed"
    if src.not_written:
        parts.append(f"the source {source} could not be written: {src.errors[0] if src.errors else ''} "
                     f"({src.not_written} record(s) not written to any store and not kept in the journal: "
                     "write them again)")
    elif down:
        parts.append(f"required store(s) {', '.join(down)} could not be written: "
                     f"{'; '.join(e for n in down for e in report.stores[n].errors[:1])} "
                     "(the records are kept in the journal: run replay when the store is back)")
    for n, s in report.stores.items():
        if s.dead_letters and s.role != "optional":
            unnamed = s.dead_letters - len(s.dead_letter_ids)
            more = f" and {unnamed} more" if unnamed > 0 else ""
            parts.append(f"store {n} rejected {s.dead_letters} record(s) for good ({', '.join(s.dead_letter_ids)}"
                         f"{more}): {s.errors[0] if s.errors else ''} (dead letters in the journal: "
                         "'uuid-forge journal dead-letters'; the other records were written)")
    if report.refused_deleted:
        unnamed = report.refused_deleted - len(report.refused_deleted_ids)
        more = f" and {unnamed} more" if unnamed > 0 else ""
        written = src.written
        parts.append(f"{report.refused_deleted} record(s) refused because the entity was deleted (a tombstone in "
                     f"{source}): {', '.join(report.refused_deleted_ids)}{more}; {RECREATE_HINT}"
                     + (f"; the other {written} record(s) were written" if written else ""))
    return "; ".join(parts) or f"the {report.kind} failed"
