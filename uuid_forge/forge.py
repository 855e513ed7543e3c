"""Write-through: one call writes an entity to every configured store under one deterministic ID.

Order of work for each batch: build IDs and records (all validation happens here, before any
store is touched) -> record the intent in the journal -> write the source of truth -> write the
other stores (in parallel by default; ``bench/write.py`` measured both) -> clear the journal per
store. Connection errors are retried with exponential backoff. A store that stays down keeps its
part in the journal; ``replay`` finishes it later. Every write is an idempotent upsert, so
retrying or replaying is always safe.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from . import events, idmarker
from .adapters.base import Adapter, chunked
from .errors import ConfigError, StoreError, StoreUnavailableError, UUIDForgeError, ValidationError, WriteError
from .ids import IDConfig, UUIDGenerator
from .journal import Journal
from .record import Record
from .registry import open_store
from .report import StoreResult, WriteReport
from .settings import ForgeSettings, StoreSettings, WriteSettings, load_settings
from .urls import mask_text

log = logging.getLogger("uuid_forge.forge")

__all__ = ["Entity", "Forge", "StoreHandle", "WriteReport"]

Entity = tuple[str, Any, Mapping[str, Any]]
"""``(entity_type, key, data)``; the key is a mapping of named key values, a tuple, or one value."""


@dataclass
class StoreHandle:
    """A configured store: its name, role and open adapter."""

    name: str
    adapter: Adapter
    source: bool = False
    required: bool = True

    @property
    def role(self) -> str:
        return "source" if self.source else "required" if self.required else "optional"


def _as_entity(item: Any, index: int) -> Entity:
    if isinstance(item, Mapping):
        try:
            return item["entity_type"], item["key"], item.get("data", {})
        except KeyError as err:
            raise ValidationError(f"entities[{index}] lacks {err.args[0]!r} (needs entity_type, key, data)") from None
    if isinstance(item, (tuple, list)) and len(item) == 3:
        return item[0], item[1], item[2]
    raise ValidationError(f"entities[{index}] must be (entity_type, key, data) or a dict with those keys, "
                          f"got {type(item).__name__}")


class Forge:
    """Stores, an ID scheme and a journal, behind ``write``, ``write_many``, ``replay`` and ``audit``."""

    def __init__(self, stores: Sequence[StoreHandle] | Mapping[str, str | Adapter], *, source: str | None = None,
                 optional: Iterable[str] = (), ids: IDConfig | None = None,
                 journal: Journal | str | None = ".uuid-forge/journal.sqlite3",
                 write: WriteSettings | None = None) -> None:
        if isinstance(stores, Mapping):
            if source is None or source not in stores:
                raise ConfigError(f"source must name one of the stores ({', '.join(stores)}), got {source!r}")
            opt = set(optional)
            handles = [StoreHandle(n, open_store(s) if isinstance(s, str) else s, n == source, n not in opt)
                       for n, s in stores.items()]
        else:
            handles = list(stores)
        sources = [h for h in handles if h.source]
        if len(sources) != 1:
            raise ConfigError(f"exactly one store must be the source of truth, found {len(sources)}")
        self.stores: list[StoreHandle] = sorted(handles, key=lambda h: not h.source)
        self.source = sources[0]
        self.ids = ids or IDConfig()
        self.generator = UUIDGenerator(self.ids)
        self.journal = journal if isinstance(journal, Journal) or journal is None else Journal(journal)
        self.settings = write or WriteSettings()
        self._pool: ThreadPoolExecutor | None = None
        self._sleep: Callable[[float], None] = time.sleep

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: ForgeSettings) -> Forge:
        handles: list[StoreHandle] = []
        try:
            for s in settings.stores:
                handles.append(StoreHandle(s.name, open_store(s.url, **s.options), s.source, s.required))
        except UUIDForgeError:
            for h in handles:
                h.adapter.close()
            raise
        except TypeError as err:  # an unknown adapter option
            for h in handles:
                h.adapter.close()
            raise ConfigError(f"{settings.origin}: store options: {err}") from None
        return cls(handles, ids=settings.ids, journal=Journal(settings.journal_path, settings.journal_synchronous),
                   write=settings.write)

    @classmethod
    def from_config(cls, path: str, env: dict[str, str] | None = None) -> Forge:
        """A Forge from a ``uuid-forge.toml`` file (environment variables override it)."""
        return cls.from_settings(load_settings(path, env))

    def __enter__(self) -> Forge:
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
    def id_for(self, entity_type: str, key: Any) -> uuid.UUID:
        """The ID of one entity: ``key`` is a mapping (named values), a tuple, or one value."""
        return self.generator.generate_many(entity_type, [key])[0]

    def event_id(self, entity_id: uuid.UUID, event: str, fingerprint: str) -> uuid.UUID:
        """The deterministic ID of an event about an entity (the AMQP ``message_id``)."""
        return events.event_id(entity_id, event, fingerprint)

    def records(self, entities: Iterable[Any], start: int = 0) -> list[Record]:
        """Records with IDs for ``(entity_type, key, data)`` items; validates every one."""
        items = [_as_entity(e, start + i) for i, e in enumerate(entities)]
        by_type: dict[str, list[int]] = {}
        for i, (entity_type, _, _) in enumerate(items):
            by_type.setdefault(entity_type, []).append(i)
        ids: list[uuid.UUID | None] = [None] * len(items)
        for entity_type, positions in by_type.items():
            for pos, ident in zip(positions, self.generator.generate_many(entity_type, [items[p][1] for p in positions])):
                ids[pos] = ident
        out = []
        for i, ((entity_type, key, data), ident) in enumerate(zip(items, ids)):
            stored_key = dict(key) if isinstance(key, Mapping) else list(key) if isinstance(key, tuple) else [key]
            record = Record(entity_type, ident, data, stored_key)  # type: ignore[arg-type]
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

    # -- write-through -------------------------------------------------------------------------
    def write(self, entity_type: str, key: Any, data: Mapping[str, Any]) -> WriteReport:
        """Write one entity to every store; raises WriteError (with the report) if a required store failed."""
        return self.write_many([(entity_type, key, data)])

    def write_many(self, entities: Iterable[Any], progress: Callable[[int], None] | None = None) -> WriteReport:
        """Write many entities in batches. A list is validated whole before any store is touched;
        an iterator is validated batch by batch. ``progress(n)`` is called after each batch."""
        started = time.perf_counter()
        report = self._new_report()
        batches: Iterator[list[Record]]
        if isinstance(entities, (list, tuple)):
            records = self.records(entities)
            idmarker.ensure(self, {r.entity_type for r in records})  # every type, before any store is touched
            batches = chunked(records, self.settings.batch_size)
        else:
            batches = self._record_batches(entities)
        for batch in batches:
            idmarker.ensure(self, {r.entity_type for r in batch})  # refuses another ID configuration
            self._write_batch(batch, report)
            if progress is not None:
                progress(len(batch))
            if not report.ok:
                break
        report.seconds = time.perf_counter() - started
        if not report.ok:
            failed = [n for n, s in report.stores.items() if s.status == "failed"]
            raise WriteError(f"required store(s) {', '.join(failed)} could not be written: "
                             f"{'; '.join(e for n in failed for e in report.stores[n].errors[:1])} "
                             "(the records are kept in the journal: run replay when the store is back)", report=report)
        return report

    def _record_batches(self, entities: Iterable[Any]) -> Iterator[list[Record]]:
        start = 0
        for chunk in chunked(entities, self.settings.batch_size):
            yield self.records(chunk, start)
            start += len(chunk)

    def _new_report(self) -> WriteReport:
        return WriteReport(stores={h.name: StoreResult(h.name, h.role, h.adapter.url()) for h in self.stores})

    def _write_batch(self, records: list[Record], report: WriteReport) -> None:
        report.entities += len(records)
        t = time.perf_counter()
        seqs = self.journal.record_intent(records, [h.name for h in self.stores]) if self.journal else []
        report.journal_seconds += time.perf_counter() - t
        if not self._put(self.source, records, seqs, report):
            for h in self.stores[1:]:
                report.stores[h.name].pending += len(records)
                report.stores[h.name].note_error(f"not attempted: the source {self.source.name} failed")
            return
        others = self.stores[1:]
        if self.settings.concurrent and len(others) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=len(others), thread_name_prefix="uuid-forge")
            for future in [self._pool.submit(self._put, h, records, seqs, report) for h in others]:
                future.result()
        else:
            for h in others:
                self._put(h, records, seqs, report)

    def _put(self, handle: StoreHandle, records: list[Record], seqs: list[int], report: WriteReport) -> bool:
        """One batch into one store with retries; journal bookkeeping; True on success."""
        result = report.stores[handle.name]
        t = time.perf_counter()
        ok, error = self._with_retries(lambda: handle.adapter.put_many(records), result)
        result.seconds += time.perf_counter() - t
        t = time.perf_counter()
        if ok:
            result.written += len(records)
            if self.journal:
                self.journal.mark_done(handle.name, seqs)
        else:
            result.pending += len(records)
            result.note_error(error)
            log.warning("store %s: %d records left in the journal: %s", handle.name, len(records), error)
            if self.journal:
                self.journal.mark_failed(handle.name, seqs, error)
        report.journal_seconds += time.perf_counter() - t
        return ok

    def _with_retries(self, call: Callable[[], object], result: StoreResult) -> tuple[bool, str]:
        delay = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            result.attempts += 1
            try:
                call()
                return True, ""
            except StoreUnavailableError as err:  # reachable again later: retry with backoff
                error = mask_text(str(err))
                if attempt == self.settings.retries:
                    return False, error
                result.retries += 1
                self._sleep(delay * (1 + random.random() / 4))
                delay = min(delay * 2, 10.0)
            except StoreError as err:  # the store answered with an error: retrying will not help
                return False, mask_text(str(err))
        return False, "no attempt made"

    # -- recovery ------------------------------------------------------------------------------
    def pending(self) -> dict[str, int]:
        """How many records each store is still owed, from the journal."""
        return self.journal.pending_counts() if self.journal else {}

    def replay(self, progress: Callable[[int], None] | None = None) -> WriteReport:
        """Write whatever the journal says is still owed (source first). Safe to run any time."""
        started = time.perf_counter()
        report = self._new_report()
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
                if not self._put(handle, batch.records, batch.seqs, report):
                    report.stores[handle.name].pending += self.journal.pending_counts().get(handle.name, 0) - len(batch.seqs)
                    if handle.source:
                        source_blocked = True
                    break
                report.entities += len(batch.records) if handle.source or not any(h.source for h in order) else 0
                if progress is not None:
                    progress(len(batch.records))
        report.seconds = time.perf_counter() - started
        return report

    # -- audit (see uuid_forge.audit) ----------------------------------------------------------
    def audit(self, entity_type: str | Iterable[str] | None = None, **kwargs: Any) -> Any:
        """Compare every store with the source of truth; see :func:`uuid_forge.audit.audit`."""
        from .audit import audit

        return audit(self, entity_type, **kwargs)

    def entity_types(self) -> list[str]:
        """Every entity type any scannable store holds records of, sorted."""
        from .audit import _all_types

        return _all_types(self)

    def describe_stores(self) -> list[StoreSettings]:
        return [StoreSettings(h.name, h.adapter.url(), h.source, h.required) for h in self.stores]
