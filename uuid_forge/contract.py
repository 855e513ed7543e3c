"""The adapter contract: public batch methods live here once; adapters fill in small hooks.

This module is part of the core (it moved here from ``adapters/base.py``): the core never imports
the ``uuid_forge.adapters`` folder, which holds only concrete stores loaded lazily by the registry.
A third-party adapter imports its base class from here::

    from uuid_forge.contract import Adapter, Option, ScanItem

and declares its options in ``options`` (see :mod:`uuid_forge.options`).

Public methods validate input before any write, encode IDs, chunk batches, wrap driver errors
into the uuid-forge hierarchy (connection trouble becomes :class:`StoreUnavailableError`, which
write-through retries) and mask passwords. An adapter implements ``_put``, ``_get``, ``_delete``,
``_scan``, ``_entity_types``, ``_ping`` and ``_close`` with its store's native bulk calls.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from .cellsums import CellSums
from .classify import ANY_VERSIONS
from .errors import (
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreTimeoutError,
    StoreUnavailableError,
    UUIDForgeError,
    ValidationError,
)
from .layout import Layout
from .masking import mask_name
from .options import BATCH_SIZE, Option, ParsedOptions, parse_options
from .ownership import Prover
from .record import (
    ForeignEntry,
    MalformedID,
    Partition,
    RawEntry,
    Record,
    TextFingerprint,
    data_fingerprint,
    held_fingerprint,
    load_json,
)
from .urls import mask_text, mask_url
from .view import FULL, FieldView

log = logging.getLogger("uuid_forge.adapters")

READ, WRITE, SCAN, DELETE = "read", "write", "scan", "delete"
ALL_CAPABILITIES = frozenset({READ, WRITE, SCAN, DELETE})

_ENTITY_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
RESERVED_TYPE_PREFIX = "uuid-forge."  # uuid-forge's own records (the ID-configuration marker): never listed

__all__ = ["ALL_CAPABILITIES", "BATCH_SIZE", "DELETE", "READ", "SCAN", "WRITE", "Adapter", "Check", "Option",
           "ScanItem", "chunked"]

ScanItem = tuple["uuid.UUID | MalformedID | ForeignEntry", "str | None"]


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most ``size`` items, in order."""
    if isinstance(items, list):
        for start in range(0, len(items), size):
            yield items[start:start + size]
        return
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass(frozen=True)
class Check:
    """One check a store runs before its first use (and ``uuid-forge validate`` runs without
    writing): what was checked, ``ok``, ``failed`` (the store would refuse to work) or ``off`` (a
    safety net that does not apply here), and a message naming the place and what to do."""

    name: str
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "message": self.message}


class Adapter(ABC):
    """Base of every store adapter. Subclasses set the class attributes and implement the hooks."""

    #: the adapter's name in ``uuid-forge adapters``
    name: ClassVar[str] = ""
    #: what the store can do: any of read, write, scan, delete
    capabilities: ClassVar[frozenset[str]] = ALL_CAPABILITIES
    #: driver exceptions that mean "cannot reach the store" (retried by write-through)
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionError, TimeoutError)
    #: driver exceptions that mean "reached it but it did not answer in time"
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (TimeoutError,)
    #: records per native bulk call
    batch_size: int = 1000
    #: True when scan(partition) reads only that ID range (a message log reads everything)
    partitioned_scan: ClassVar[bool] = True
    #: True when scan(partition) walks the whole store whatever the range and filters it (Redis SCAN):
    #: an audit then reads it once per pass, bucketed by partition (uuid_forge.onepass)
    whole_scan: bool = False  # an adapter may set it per instance (MongoDB's read_once option)
    #: True for an append-only message log: ``delete_many`` appends a delete event per ID (nothing is
    #: removed, and a scan no longer lists the ID), ``drop`` cannot forget one type, and repair never
    #: deletes orphans from it (it cannot read an entry back by ID to prove it ours)
    append_only: ClassVar[bool] = False
    #: UUID versions the configured ID scheme makes (given when the store is opened: ``from_url(url,
    #: id_versions=...)``, or a copy by :meth:`with_id_versions`): a name in the wrong form that decodes
    #: to another version is foreign (uuid_forge.classify), not malformed
    id_versions: frozenset[int] = ANY_VERSIONS
    #: True when the store's data lives in this process only (another process opening the same URL
    #: would see other data): such a store cannot be audited or written by worker processes
    process_local: bool = False
    #: True when an audit reads this whole-scan store (``whole_scan``) in a process of its own, opened
    #: again from its URL (uuid_forge.scanprocess; MongoDB's and Elasticsearch's ``read_apart`` option)
    read_apart: bool = False
    #: the URL and options ``from_url`` opened this adapter with (None when made otherwise)
    _opened_with: tuple[str, dict[str, Any]] | None = None
    #: the options this adapter reads from its URL query or keywords (uuid_forge.options)
    options: ClassVar[tuple[Option, ...]] = (BATCH_SIZE,)
    #: what of an entity this store holds (uuid_forge.view): every field, unless given when the store
    #: is opened (``from_url(url, view=...)``), or a copy by :meth:`viewed`
    view: FieldView = FULL
    #: where URL query parameters that are not options go ("" : nowhere, an unknown one is an error)
    driver_query: ClassVar[str] = ""
    #: where keyword arguments that are not options go ("" : nowhere, an unknown one is an error)
    driver_keywords: ClassVar[str] = ""
    #: the prover of the drop under way (uuid_forge.ownership), for ``_drop`` and :meth:`_proven_ids`
    _drop_prover: Prover | None = None
    @property
    def _delete_token(self) -> str:
        """The token of the ``delete_many`` under way in this thread, for a ``_delete`` that
        publishes delete events (per thread: two deletions through one adapter never mix; kept
        outside the instance, which stays copyable and picklable)."""
        return _tokens().get(id(self), "")

    def __init__(self, url: str, *, batch_size: int | None = None) -> None:
        self._url = url
        if batch_size is not None:
            if not isinstance(batch_size, int) or batch_size < 1:
                raise ValidationError(f"batch_size must be a positive int, got {batch_size!r}")
            self.batch_size = batch_size

    @classmethod
    def from_url(cls, url: str, *, view: FieldView | None = None, id_versions: frozenset[int] | None = None,
                 **options: Any) -> Adapter:
        """Open the store at ``url``; ``options`` are the adapter's declared options (see ``options``).

        ``view`` (what of an entity the store holds, uuid_forge.view) and ``id_versions`` (the UUID
        versions of the scheme in use) belong to every store, so they are taken here rather than by
        each adapter's constructor."""
        adapter = cls(url, **options)
        adapter._opened_with = (url, dict(options))  # to open it again in another process (uuid_forge.scanprocess)
        if view is not None:
            adapter.view = view
        if id_versions is not None:
            adapter.id_versions = frozenset(id_versions)
        return adapter

    @classmethod
    def parse_options(cls, url: str, keywords: dict[str, Any]) -> ParsedOptions:
        """The declared ``options`` read from ``url``'s query and ``keywords`` (keywords win)."""
        return parse_options(cls.name or cls.__name__, cls.options, url, keywords,
                             driver_query=bool(cls.driver_query), driver_keywords=bool(cls.driver_keywords))

    # -- identity ------------------------------------------------------------------------------
    def url(self, masked: bool = True) -> str:
        """The store URL, with the password shown as ``***`` unless ``masked=False``."""
        return mask_url(self._url) if masked else self._url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url()!r})"

    @property
    def id_encoding(self) -> str:
        """How this store keeps IDs (e.g. ``uuid``, ``binary4``, ``string``, ``base64url``)."""
        return "uuid"

    # -- validation ----------------------------------------------------------------------------
    def check_entity_type(self, entity_type: str) -> str:
        """Return ``entity_type`` if this store can hold it, else raise ValidationError.

        The base rule (1-100 chars of letters, digits, ``_ . -``, starting with a letter or
        digit) already rules out path traversal; stores add their own limits.
        """
        if not isinstance(entity_type, str) or not _ENTITY_TYPE.fullmatch(entity_type) or ".." in entity_type:
            raise ValidationError(
                f"entity type {entity_type!r} is not accepted by {self.name or type(self).__name__}: use 1-100 "
                "chars of letters, digits, '_', '.', '-', starting with a letter or digit, without '..'")
        return entity_type

    def check(self, entity_types: Iterable[str]) -> list[Check]:
        """Every check this store runs before its first use, run now and nothing written: each type
        accepted (:meth:`check_entity_type`), then its container as it is (:meth:`_check_type`: the
        user's table and its columns, an index's mapping ...). A store that does not answer fails
        the check that needed it; the others still run. For ``uuid-forge validate``."""
        out: list[Check] = []
        for et in dict.fromkeys(entity_types):
            try:
                self.check_entity_type(et)
            except UUIDForgeError as err:
                out.append(Check(f"entity type {et!r}", "failed", mask_text(str(err))))
                continue
            try:
                with self._errors("check"):
                    found = self._check_type(et)
            except UUIDForgeError as err:
                found = [Check(f"entity type {et!r}", "failed", mask_text(str(err)))]
            out += found or [Check(f"entity type {et!r}", "ok", "accepted")]
        return out

    def _check_type(self, entity_type: str) -> list[Check]:
        """Hook: the checks of ``entity_type``'s container as it is now, without writing (default:
        none). Raise the store's error for one that makes the store unusable."""
        return []

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        """Store-specific checks of a batch before anything is written (default: none)."""

    def _require(self, capability: str) -> None:
        if capability not in self.capabilities:
            raise StoreError(f"{self.url()} does not support {capability}", store=self.url())

    # -- error wrapping ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Turn driver exceptions into the uuid-forge hierarchy, with the password masked."""
        try:
            yield
        except UUIDForgeError:
            raise
        except Exception as err:  # noqa: BLE001 - classified below, every driver error leaves as a StoreError
            self._raise_classified(operation, err)

    def _raise_classified(self, operation: str, err: Exception) -> None:
        """Raise the uuid-forge error for a driver error: permanent (config or record) first, so
        that a driver filing a refused record under its connection errors is not retried."""
        kind = self._classify(err)
        if kind is StoreConfigError:
            raise StoreConfigError(f"{self.url()}: {operation} refused by the store (fix its configuration, then "
                                   f"replay): {type(err).__name__}: {mask_text(str(err))}", store=self.url()) from None
        if kind is StoreRejectedError:
            raise StoreRejectedError(f"{self.url()}: {operation} rejected the data: {type(err).__name__}: "
                                     f"{mask_text(str(err))}", store=self.url()) from None
        if isinstance(err, self.timeout_errors):
            raise StoreTimeoutError(f"{self.url()}: {operation} timed out: {mask_text(str(err))}",
                                    store=self.url()) from None
        if isinstance(err, self.connection_errors):
            raise StoreUnavailableError(f"{self.url()}: {operation} failed, store unreachable: "
                                        f"{type(err).__name__}: {mask_text(str(err))}", store=self.url()) from None
        raise StoreError(f"{self.url()}: {operation} failed: {type(err).__name__}: {mask_text(str(err))}",
                         store=self.url()) from None

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        """:class:`StoreConfigError` (authentication, unknown database, permission: permanent for
        the store), :class:`StoreRejectedError` (constraint, data, size: permanent for the record),
        or None to fall back on ``timeout_errors``/``connection_errors`` (transient) and StoreError.
        Adapters refine it with their driver's codes."""
        if isinstance(err, PermissionError):
            return StoreConfigError
        return None

    def _read_record(self, entity_type: str, ident: uuid.UUID, make: Callable[[], Record], where: str = "") -> Record:
        """``make()``, or an unreadable entry (:meth:`Record.unreadable_entry`) when the stored entry
        cannot be parsed as a record: one corrupt entry must not fail the read of its whole batch
        (and with it every repair). The warning names the entry and the parser's reason, never the
        content."""
        try:
            return make()
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            reason = f"{where or f'{entity_type} {ident}'} cannot be read: {type(err).__name__}: {mask_text(str(err))[:200]}"
            log.warning("%s: %s", self.url(), reason)
            return Record.unreadable_entry(entity_type, ident, reason)

    # -- fingerprints of what the store holds -------------------------------------------------
    def fingerprint_data(self, data: Any) -> str | None:
        """The fingerprint of data as read from this store (a parsed document, typed column
        values), seen through the store's view. Every adapter's ``_scan`` and ``_get`` produce
        their fingerprints here or in :meth:`fingerprint_text`, so projections apply everywhere."""
        if self.view.full:
            return data_fingerprint(data)
        return data_fingerprint(self.view.apply(data))

    def fingerprint_text(self, text: str | bytes) -> str | None:
        """The fingerprint of JSON text as stored (hashed as read when the view is full: fast)."""
        if self.view.full:
            return TextFingerprint(text)
        try:
            value = load_json(text)
        except ValueError:
            return TextFingerprint(text)  # not JSON: equal to no source's data, reported stale
        return held_fingerprint(self.view.apply(value))

    def viewed(self, view: FieldView) -> Adapter:
        """This adapter (same connections) seen through another view: the audit reads the source
        through each store's view, so both sides of a comparison are projected alike."""
        if view == self.view:
            return self
        twin = self._twin()
        twin.view = view
        return twin

    def with_id_versions(self, versions: frozenset[int]) -> Adapter:
        """This adapter (same connections) knowing the UUID versions of another ID scheme: an audit
        classifies names in the wrong form by its own scheme's versions."""
        if frozenset(versions) == self.id_versions:
            return self
        twin = self._twin()
        twin.id_versions = frozenset(versions)
        return twin

    def _twin(self) -> Adapter:
        """A shallow copy sharing the connections, whose layouts serve the copy, not this adapter."""
        twin = copy.copy(self)
        for name, value in list(vars(twin).items()):
            if isinstance(value, Layout):
                setattr(twin, name, value.bound(twin))
            elif isinstance(value, list) and value and all(isinstance(v, Layout) for v in value):
                setattr(twin, name, [v.bound(twin) for v in value])
        return twin

    # -- public batch API ----------------------------------------------------------------------
    def put_many(self, records: Iterable[Record]) -> int:
        """Upsert every record (idempotent: the same record twice leaves one copy). Returns the count.

        All records are validated (entity type, data canonical form) before anything is written.
        """
        self._require(WRITE)
        groups: dict[str, list[Record]] = {}
        for record in records:
            if not isinstance(record, Record):
                raise ValidationError(f"put_many takes Record objects, got {type(record).__name__}")
            groups.setdefault(record.entity_type, []).append(record)
        if self.view.projection is not None:  # the store holds only its projection: send only that
            groups = {t: [Record(t, r.id, self.view.written(r.data), r.key) for r in g] for t, g in groups.items()}
        for entity_type, group in groups.items():
            self.check_entity_type(entity_type)
            for record in group:
                record.fingerprint  # noqa: B018 - canonicalise now: bad data fails before any write
                record.key_json  # noqa: B018 - and the key too (both are cached on the record)
            self.validate_records(entity_type, group)
        total = 0
        for entity_type, group in groups.items():
            for batch in chunked(group, self.batch_size):
                with self._errors(f"put_many({entity_type}, {len(batch)} records)"):
                    self._put(entity_type, batch)
                total += len(batch)
        return total

    def put_new(self, records: Iterable[Record]) -> None:
        """Write each record whose ID the store does not hold yet; never replace one.

        Two writers racing to create the same record: one wins, and the other reads the winner's
        record back (how the ID-configuration marker is made, uuid_forge.idmarker). Stores answer
        with their native create-if-absent in ``_put_new``; the default reads, then writes what
        was absent, which narrows the race without closing it."""
        self._require(WRITE)
        groups: dict[str, list[Record]] = {}
        for record in records:
            if not isinstance(record, Record):
                raise ValidationError(f"put_new takes Record objects, got {type(record).__name__}")
            groups.setdefault(record.entity_type, []).append(record)
        for entity_type, group in groups.items():
            self.check_entity_type(entity_type)
            for record in group:
                record.fingerprint  # noqa: B018 - canonicalise now: bad data fails before any write
                record.key_json  # noqa: B018
            self.validate_records(entity_type, group)
            with self._errors(f"put_new({entity_type}, {len(group)} records)"):
                self._put_new(entity_type, group)

    def get_many(self, entity_type: str, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Record]:
        """The stored records among ``ids``, keyed by ID; absent IDs are left out."""
        self._require(READ)
        self.check_entity_type(entity_type)
        found: dict[uuid.UUID, Record] = {}
        for batch in chunked(_uuids(ids), self.batch_size):
            with self._errors(f"get_many({entity_type}, {len(batch)} ids)"):
                for record in self._get(entity_type, batch):
                    found[record.id] = record
        return found

    def delete_many(self, entity_type: str, ids: Iterable[uuid.UUID], *, token: str = "") -> int:
        """Delete the records among ``ids``; returns how many existed.

        ``token`` names one deletion (write-through passes the tombstone's time), so that a store
        which publishes delete events rather than removing entries (the message log) gives a retry
        of the same deletion the same ``message_id``, and a later deletion a new one. Stores that
        remove entries ignore it. An :attr:`append_only` store returns how many delete events it
        appended (it cannot tell which IDs it held)."""
        self._require(DELETE)
        self.check_entity_type(entity_type)
        total = 0
        tokens = _tokens()
        previous = tokens.get(id(self))
        tokens[id(self)] = token
        try:
            for batch in chunked(_uuids(ids), self.batch_size):
                with self._errors(f"delete_many({entity_type}, {len(batch)} ids)"):
                    total += self._delete(entity_type, batch)
        finally:
            if previous is None:
                del tokens[id(self)]
            else:
                tokens[id(self)] = previous
        return total

    def scan(self, entity_type: str, partition: Partition | None = None, *,
             include_malformed: bool = False) -> Iterator[ScanItem]:
        """Stream ``(id, fingerprint)`` pairs of one entity type, within ``partition`` if given.

        With ``include_malformed``, IDs stored in the wrong encoding come as
        :class:`~uuid_forge.record.MalformedID` and entries that are not ours at all as
        :class:`~uuid_forge.record.ForeignEntry`, instead of being skipped (adapters report each
        foreign entry in one partition only).
        """
        self._require(SCAN)
        self.check_entity_type(entity_type)
        part = partition or Partition()
        whole = part.count == 1
        lo, hi = part.lo, part.hi
        # One error context around the whole loop, not one per item: it cost ~1.8 us an item.
        # The consumer's own exceptions are not thrown in here, so only the driver's are translated.
        with self._errors(f"scan({entity_type}, {part})"):
            for item in self._scan(entity_type, part):
                ident = item[0]
                if type(ident) is uuid.UUID:
                    if whole or lo <= ident.int < hi:
                        yield item
                elif isinstance(ident, MalformedID):
                    if include_malformed and (ident.id is None or part.contains(ident.id)):
                        yield item
                elif isinstance(ident, ForeignEntry):
                    if include_malformed:
                        yield item
                elif part.contains(ident):  # a UUID subclass
                    yield item

    def scan_ranges(self, entity_type: str, ranges: list[Partition], *,
                    include_malformed: bool = False) -> Iterator[ScanItem]:
        """:meth:`scan` of several ID ranges (the few an audit by hashes reads, uuid_forge.rangehash):
        one query where the store implements ``_scan_ranges``, else one scan per range."""
        if not ranges:
            return
        if type(self)._scan_ranges is Adapter._scan_ranges:
            for part in ranges:
                yield from self.scan(entity_type, part, include_malformed=include_malformed)
            return
        self._require(SCAN)
        self.check_entity_type(entity_type)
        bounds = sorted((p.lo, p.hi) for p in ranges)

        def inside(value: int) -> bool:
            return any(lo <= value < hi for lo, hi in bounds)

        with self._errors(f"scan_ranges({entity_type}, {len(ranges)} ranges)"):
            for item in self._scan_ranges(entity_type, ranges):
                ident = item[0]
                if isinstance(ident, uuid.UUID):
                    if inside(ident.int):
                        yield item
                elif isinstance(ident, MalformedID):
                    if include_malformed and (ident.id is None or inside(ident.id.int)):
                        yield item
                elif include_malformed:  # a foreign entry: the store yields it for one of the ranges only
                    yield item

    def delete_raw(self, entity_type: str, raws: Iterable[str]) -> int:
        """Remove entries by their raw stored key (as in ``MalformedID.raw``): the repair of a
        wrongly encoded ID, whose well-encoded twin ``delete_many`` would not reach."""
        self._require(DELETE)
        self.check_entity_type(entity_type)
        total = 0
        for batch in chunked(raws, self.batch_size):
            with self._errors(f"delete_raw({entity_type}, {len(batch)} entries)"):
                total += self._delete_raw(entity_type, batch)
        return total

    def read_raw(self, entity_type: str, raws: Iterable[str]) -> dict[str, RawEntry]:
        """The entries among ``raws`` (stored names exactly as ``ForeignEntry.raw`` and
        ``MalformedID.raw`` show them), keyed by name; names not present are left out.

        For moving data that lives under names uuid-forge did not make (a serial ``user:42``, a
        MongoDB ObjectId) to deterministic IDs: each entry's ``data`` is what :meth:`get_many`
        would give as ``Record.data`` (same layout, same view), or None with a reason when the entry
        cannot be read as this layout's data. An optional capability: stores that do not implement
        ``_read_raw`` raise :class:`StoreError`."""
        self._require(READ)
        self.check_entity_type(entity_type)
        found: dict[str, RawEntry] = {}
        for batch in chunked(raws, self.batch_size):
            bad = [r for r in batch if not isinstance(r, str)]
            if bad:
                raise ValidationError(f"read_raw takes stored names as str, got {type(bad[0]).__name__}")
            with self._errors(f"read_raw({entity_type}, {len(batch)} entries)"):
                for entry in self._read_raw(entity_type, batch):
                    found[entry.raw] = _masked_entry(entry)
        return found

    def _raw_entry(self, entity_type: str, raw: str, decode: Callable[[str, uuid.UUID, Any], Record], stored: Any,
                   where: str) -> RawEntry:
        """One :class:`RawEntry` decoded by the same layout code as ``_get``
        (``decode(entity_type, placeholder, stored)``: the placeholder ID stands in for the name,
        which is not a UUID), or an unreadable one, its reason naming ``where`` (the raw name),
        never the content."""
        def make() -> Record:
            return decode(entity_type, _RAW_PLACEHOLDER, stored)

        # the raw name may be personal (user:ann@example.com): the warning and reason show its shape
        record = self._read_record(entity_type, _RAW_PLACEHOLDER, make, where.replace(raw, mask_name(raw)))
        if record.unreadable is not None:
            return RawEntry(raw, None, record.unreadable)
        return RawEntry(raw, dict(record.data))

    def delete_raw_proven(self, entity_type: str, proven: Mapping[str, Mapping[str, Any]]) -> int:
        """Delete entries by raw name (as :meth:`read_raw` names them) that the caller has proven
        are to go, another application's names included: ``proven`` maps each name to the data
        the proof was made on (``uuid-forge migrate contract``: the old entry whose key fields give
        the mapped new ID, its new copy read back equal). Each entry is read again just before the
        delete and goes only if it still holds exactly that data; a changed, unreadable or absent
        entry stays. Returns how many were deleted. An optional capability, like ``read_raw``."""
        self._require(READ)
        self._require(DELETE)
        self.check_entity_type(entity_type)
        total = 0
        for batch in chunked(proven.items(), self.batch_size):
            prints = {raw: data_fingerprint(dict(data)) for raw, data in batch}
            wanted = {raw: fp for raw, fp in prints.items() if fp is not None}
            if not wanted:
                continue
            with self._errors(f"delete_raw_proven({entity_type}, {len(batch)} entries)"):
                total += self._delete_raw_if_unchanged(entity_type, wanted)
        return total

    def _delete_raw_if_unchanged(self, entity_type: str, wanted: dict[str, str]) -> int:
        """Delete each raw-named entry whose data's fingerprint is still ``wanted[raw]``; how many
        went. This default re-reads then deletes, so an edit landing between the two is lost:
        stores that can compare and delete atomically (Redis WATCH/MULTI, SQL FOR UPDATE,
        Elasticsearch if_seq_no, MongoDB a filter on the whole document) override it."""
        held = {e.raw: e for e in self._read_raw(entity_type, list(wanted))}
        same = [raw for raw, fp in wanted.items() if self._still_proven(held.get(raw), fp)]
        return self._delete_raw_names(entity_type, same) if same else 0

    @staticmethod
    def _still_proven(entry: RawEntry | None, fingerprint: str) -> bool:
        """Whether a re-read entry holds exactly the proven data (by its data's fingerprint)."""
        return entry is not None and entry.data is not None and data_fingerprint(entry.data) == fingerprint

    def drop(self, entity_type: str, prover: Prover | None = None) -> None:
        """Remove every record of ``entity_type`` and what the store made for it (a table, an
        index, a collection, a directory). For tests, demos and decommissioning.

        In a container shared with others (:meth:`shared`: the user's own table, collection or
        index, a Redis database without a prefix of ours, a directory of files) only the entries
        ``prover`` proves ours go (uuid_forge.ownership; ``Forge.drop`` passes it), re-read and
        proven page by page just before deleting; without a prover such a drop is refused."""
        self._require(DELETE)
        self.check_entity_type(entity_type)
        shared = self.shared(entity_type)
        if prover is None and shared:
            raise ValidationError(
                f"{self.url()}: drop({entity_type!r}) refused: {entity_type!r} lives in a container shared with "
                "others, where only entries proven ours may be deleted; drop it through Forge.drop (which proves "
                "each entry first), or pass prover=")
        # a container of ours alone goes whole, whatever a prover would say of its entries
        previous, self._drop_prover = self._drop_prover, (prover if shared else None)
        try:
            with self._errors(f"drop({entity_type})"):
                self._drop(entity_type)
        finally:
            self._drop_prover = previous

    def shared(self, entity_type: str) -> bool:
        """True when ``entity_type`` lives in a container others may write too (so ``drop`` may
        delete only proven entries). The safe default for an adapter that does not say: shared."""
        return True

    def erasure_limits(self, entity_type: str) -> list[str]:
        """What a delete here does not erase, and what that means for the user: copies the store
        itself keeps after an entry is removed (dead rows, unmerged segments, a log that cannot
        delete), one sentence each. The erasure report (uuid_forge.erasure) prints them per store,
        so a user never takes "deleted" for "gone from every disk". Adapters add their store's."""
        return [BACKUPS]

    # -- hashes computed in the store (uuid_forge.rangehash) -----------------------------------
    def digest_algorithms(self, entity_type: str) -> tuple[str, ...]:
        """The range-digest algorithms (:data:`uuid_forge.rangehash.ALGORITHMS`) this store can compute
        in place over ``entity_type``, best first; empty when it cannot (the default), e.g. when what
        it holds is not the canonical JSON text the fingerprint is computed from (a view or
        projection, typed columns, a rewritten JSON type). Cheap: reads no records."""
        return ()

    def range_digests(self, entity_type: str, ranges: list[Partition], algorithm: str
                      ) -> list[tuple[int, int] | None] | None:
        """Per range of ``ranges`` (equal-sized, of one power-of-two ``count``), ``(count, sum)``
        over the well-formed IDs it holds there, in one query: ``count`` the records, ``sum`` the
        exact sum of the slices of each record's hash (:func:`uuid_forge.rangehash.record_digest`
        gives the same from Python). A range holding a record the store cannot hash (data that is
        not text) is None: it is read. None for the whole call: not possible here (then every range
        is read). An adapter implementing it implements :meth:`digest_outsiders` too."""
        return None

    def digest_outsiders(self, entity_type: str) -> int | None:
        """How many entries of ``entity_type`` no ID-range digest counts (an ID not in the one
        well-formed form the ranges cover: a wrong encoding, another application's text); None when
        unknown. A store holding any is audited by its records, so they are still found."""
        return None

    def scan_digests(self, entity_type: str, partition: Partition, algorithm: str) -> Iterator[ScanItem] | None:
        """A whole-scan store's (``whole_scan``, uuid_forge.onepass) :meth:`scan` with
        ``include_malformed``, each record's hash computed in the store in place of its fingerprint:
        ``(id, int)`` (:func:`uuid_forge.rangehash.record_digest` of the stored text), None for an
        entry it cannot hash (the wrong type under a key of ours: read, so stale); an entry gone
        since it was listed is left out. Offered for the algorithms :meth:`digest_algorithms`
        names; None (the default): not possible here, the audit reads the records."""
        return None

    def sums_cells(self, entity_type: str, algorithm: str) -> bool:
        """Whether :meth:`scan_cell_sums` can sum ``entity_type`` by ``algorithm`` (cheap: reads nothing)."""
        return False

    def scan_cell_sums(self, entity_type: str, within: Partition, algorithm: str) -> CellSums | None:
        """A whole-scan store's hashes summed per ID cell by the store itself as it scans
        (uuid_forge.cellsums): the per-cell totals, the cells it could not hash, and the names in
        another form as :meth:`scan_digests` gives them. None (the default): not possible here."""
        return None

    def scan_cells(self, entity_type: str, cells: Iterable[int]) -> list[uuid.UUID]:
        """The IDs of the well-formed entries in ``cells`` (after :meth:`scan_cell_sums`)."""
        raise NotImplementedError(f"{type(self).__name__} lists no cells")

    def count(self, entity_type: str) -> int:
        """How many well-encoded records of ``entity_type`` the store holds."""
        return sum(1 for _ in self.scan(entity_type))

    def estimate(self, entity_type: str) -> int:
        """About how many records of ``entity_type`` the store holds: what sizes an audit's
        partitions, where an exact count of well-encoded records (:meth:`count`) would read every
        record first. An adapter that can count cheaply (SQL ``count(*)``) overrides it."""
        return self.count(entity_type)

    def entity_types(self) -> list[str]:
        """The entity types the store holds records of (uuid-forge's own reserved types left out)."""
        self._require(SCAN)
        with self._errors("entity_types"):
            return sorted(t for t in self._entity_types() if not t.startswith(RESERVED_TYPE_PREFIX))

    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store answers."""
        with self._errors("ping"):
            self._ping()

    def probe(self) -> None:
        """Raise StoreUnavailableError unless the store answers, and create nothing there: what
        ``validate`` and ``stores`` ask (a ping may also set up what the store writes into, such
        as a broker's exchange and stream). Override ``_probe`` when ``_ping`` creates anything."""
        with self._errors("probe"):
            self._probe()

    def _probe(self) -> None:
        self._ping()

    def close(self) -> None:
        """Release connections; safe to call twice."""
        with self._errors("close"):
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- hooks ---------------------------------------------------------------------------------
    @abstractmethod
    def _put(self, entity_type: str, records: list[Record]) -> None:
        """Upsert one batch with the store's native bulk call."""

    def _put_new(self, entity_type: str, records: list[Record]) -> None:
        """Create the records whose IDs are absent (see :meth:`put_new`). Default: read, then write
        the absent ones (not atomic); stores override it with their create-if-absent."""
        held = {r.id for r in self._get(entity_type, [r.id for r in records])}
        absent = [r for r in records if r.id not in held]
        if absent:
            self._put(entity_type, absent)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        """Fetch one batch with the store's native bulk read."""
        raise NotImplementedError

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        """Delete one batch; return how many existed."""
        raise NotImplementedError

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """Yield (id or MalformedID, fingerprint), ideally only those in ``partition``."""
        raise NotImplementedError

    def _scan_ranges(self, entity_type: str, ranges: list[Partition]) -> Iterator[ScanItem]:
        """Yield what ``_scan`` yields for each of ``ranges``, in one query (optional: see scan_ranges)."""
        raise NotImplementedError

    def _entity_types(self) -> Iterable[str]:
        raise NotImplementedError

    def _drop(self, entity_type: str) -> None:
        """Default: delete every ID a scan finds, malformed ones too where the store can; with a
        prover (a shared container), only the entries proven ours, read back just before."""
        ids, raws = [], []
        for ident, _ in self.scan(entity_type, include_malformed=True):
            if isinstance(ident, ForeignEntry):
                continue  # not ours: dropping a type leaves other applications' entries alone
            (raws.append(ident.raw) if isinstance(ident, MalformedID) else ids.append(ident))
        for batch in chunked(ids, self.batch_size):
            batch = self._proven_ids(entity_type, batch)
            if batch:
                self._delete(entity_type, batch)
        if raws and self._drop_prover is None:  # a wrong-form name cannot be read back to prove it: left
            self._delete_raw(entity_type, raws)

    def _proven_ids(self, entity_type: str, ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """``ids`` as they are, or, during a drop with a prover, those re-read now and proven ours."""
        prover = self._drop_prover
        if prover is None or not ids:
            return ids
        proven = prover.proven(entity_type, {r.id: r for r in self._get(entity_type, ids)}, self.view)
        return [i for i in ids if i in proven]

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete entries by raw stored key; stores that can hold a wrong encoding implement it."""
        raise StoreError(f"{self.url()} cannot remove wrongly encoded entries", store=self.url())

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Read entries by raw stored name (see :meth:`read_raw`); an optional capability."""
        raise StoreError(f"{self.url()} does not support read_raw: it cannot read entries by their raw stored name",
                         store=self.url())

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        """Delete entries by raw name, whatever the name (:meth:`delete_raw_proven` has just
        re-read and compared each); how many existed. An optional capability."""
        raise StoreError(f"{self.url()} does not support delete_raw_proven: it cannot delete entries by their raw "
                         "stored name", store=self.url())

    def _ping(self) -> None:
        """Default: nothing to check."""

    def _close(self) -> None:
        """Default: nothing to release."""


def _masked_entry(entry: RawEntry) -> RawEntry:
    """``entry`` with its raw name masked wherever its reason quotes it (the name may be personal)."""
    if entry.raw and entry.raw in entry.reason:
        return RawEntry(entry.raw, entry.data, entry.reason.replace(entry.raw, mask_name(entry.raw)))
    return entry


#: the ID a raw entry is decoded under (``Adapter._raw_entry``): the nil UUID, never an ID of ours
_RAW_PLACEHOLDER = uuid.UUID(int=0)

_CALLS = threading.local()


def _tokens() -> dict[int, str]:
    """This thread's delete tokens under way, by adapter (``id``): see ``Adapter._delete_token``."""
    tokens: dict[int, str] | None = getattr(_CALLS, "delete_tokens", None)
    if tokens is None:
        tokens = _CALLS.delete_tokens = {}
    return tokens


def _uuids(ids: Iterable[Any]) -> Iterable[uuid.UUID]:
    if isinstance(ids, list) and all(type(i) is uuid.UUID for i in ids):
        return ids
    return _decoded(ids)


def _decoded(ids: Iterable[Any]) -> Iterator[uuid.UUID]:
    from .encodings import decode

    for i, value in enumerate(ids):
        if isinstance(value, uuid.UUID):
            yield value
        else:
            try:
                yield decode(value)
            except (ValueError, TypeError) as err:
                raise ValidationError(f"ids[{i}]: {err}") from None


#: what no store's delete reaches (every adapter's :meth:`Adapter.erasure_limits` ends with it)
BACKUPS = ("backups, snapshots and replicas made before the delete keep their copy until they expire or are "
           "restored: erase there too, or let their retention run out (and re-run the erasure after any restore)")
