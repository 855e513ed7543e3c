"""A message log in an audit: read once, its latest state spilled to disk, compared per partition.

Why: a message log (the RabbitMQ history stream, any adapter with ``partitioned_scan = False``)
has no index by ID, so each scan reads the whole log. Reading it once per partition would cost
one full read per partition; holding its latest state in memory (an ID and a fingerprint per
entity) grows with the entity count, which the audit's bounded memory forbids. So an audit reads
each log once, keeps the latest item per entity (later events replace earlier ones) in a
temporary SQLite file keyed by the ID's 16 bytes (big-endian, so byte order is ID order and one
partition is one range query), and then compares it partition by partition with the source, as
it compares every other store. Memory: SQLite's page cache (2 MiB) and one partition.

The file lives in a new private directory (``tempfile.mkdtemp`` under ``TMPDIR``, mode 0700), is
created 0600 and never through a link, and the directory is removed when the audit pass ends, on
errors too. It holds IDs, fingerprints, for malformed or foreign entries the raw names as
stored, and the data text of each entity's latest message (so that a stale finding can name the
fields that differ: a log cannot be read back by ID). Disk: about 70 bytes per entity of the
audited range plus its data (14 MB plus the data for 200k); memory does not grow with it.

An adapter may offer ``scan_log(entity_type, handle)``, which calls ``handle(item)`` for every
scan item of the log, oldest first, without keeping them (the RabbitMQ adapter does); for any
other unpartitioned adapter its ordinary ``scan`` is used (correct, but it holds the latest state
in the adapter's memory).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, Future
from concurrent.futures import wait as futures_wait
from types import TracebackType
from typing import Any, Self

from .errors import SpillError
from .privatefile import create_private
from .record import DELETED, ForeignEntry, MalformedID, Partition, TextFingerprint

__all__ = ["LogPass", "LogSpill", "spill"]

_OURS, _MALFORMED, _FOREIGN, _DELETED = 0, 1, 2, 3
_FLUSH = 2000  # items per INSERT batch
_CACHE_KIB = 2048  # SQLite's page cache: the spill's memory, whatever the log's size (its default, made explicit)

ScanItem = tuple[Any, "str | None"]


class LogSpill:
    """The latest item per entity of one log, in a private temporary SQLite file.

    ``add`` takes the log's items oldest first (a later item for the same entity replaces the
    earlier one, exactly as the in-memory ``dict`` of a log scan did; a delete event, fingerprint
    :data:`~uuid_forge.record.DELETED`, means the entity is no longer held); ``finish`` ends the
    writing; then ``items(partition)`` streams the ID-keyed items of one partition and
    ``others()`` the entries without an ID (foreign ones, malformed ones that decode to nothing).
    ``close`` removes the file and its directory.
    """

    def __init__(self, within: Partition | None = None, directory: str | None = None) -> None:
        self.within = within or Partition()
        self.dir = tempfile.mkdtemp(prefix="uuid-forge-log-", dir=directory)  # mode 0700
        self.path = os.path.join(self.dir, "latest.sqlite3")
        self.count = 0  # items added (events read), not entities
        self._buffer: list[tuple[Any, ...]] = []
        self._others: list[tuple[Any, ...]] = []
        try:
            create_private(self.path, "audit spill file")
            self._db: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None,
                                                                  check_same_thread=False)
            self._db.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA temp_store=FILE;"
                f"PRAGMA cache_size=-{_CACHE_KIB};"
                "CREATE TABLE ided (k BLOB PRIMARY KEY, kind INTEGER NOT NULL, raw TEXT, reason TEXT, fp TEXT,"
                " body BLOB) WITHOUT ROWID;"
                "CREATE TABLE other (k TEXT PRIMARY KEY, kind INTEGER NOT NULL, raw TEXT, reason TEXT) WITHOUT ROWID;"
                "BEGIN;")
        except (sqlite3.Error, OSError) as err:
            self.close()
            raise SpillError(f"audit spill file in {self.dir}: cannot create it: {err}") from None
        except BaseException:
            self.close()
            raise

    def add(self, item: ScanItem) -> None:
        """One item of the log, in log order (the latest for an entity wins)."""
        ident, fp = item[0], item[1]
        if fp == DELETED and isinstance(ident, (uuid.UUID, MalformedID)):
            # a delete event: from here on the entity is not held (not an orphan, not missing), until
            # a later event for its ID replaces this row
            key = ident if isinstance(ident, uuid.UUID) else ident.id
            if key is not None and (self.within.count == 1 or self.within.contains(key)):
                self._buffer.append((key.bytes, _DELETED, None, None, None, None))
        elif isinstance(ident, uuid.UUID):
            if self.within.count == 1 or self.within.contains(ident):
                self._buffer.append((ident.bytes, _OURS, None, None, _fp(fp), _body(fp)))
        elif isinstance(ident, MalformedID):
            if ident.id is None:
                self._others.append((ident.raw, _MALFORMED, ident.raw, ident.reason))
            elif self.within.count == 1 or self.within.contains(ident.id):
                self._buffer.append((ident.id.bytes, _MALFORMED, ident.raw, ident.reason, _fp(fp), _body(fp)))
        elif isinstance(ident, ForeignEntry):
            self._others.append((f"foreign:{ident.raw}", _FOREIGN, ident.raw, ident.reason))
        else:
            raise SpillError(f"a log scan gave {type(ident).__name__}, not an ID, MalformedID or ForeignEntry")
        self.count += 1
        if len(self._buffer) >= _FLUSH or len(self._others) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if self._db is None:
            raise SpillError("audit spill file: written after it was finished or closed")
        try:
            if self._buffer:
                self._db.executemany("INSERT OR REPLACE INTO ided VALUES (?, ?, ?, ?, ?, ?)", self._buffer)
            if self._others:
                self._db.executemany("INSERT OR REPLACE INTO other VALUES (?, ?, ?, ?)", self._others)
        except sqlite3.Error as err:
            raise SpillError(f"audit spill file {self.path}: cannot write it ({self.count} log items read): "
                             f"{err}") from None
        self._buffer, self._others = [], []

    def finish(self) -> LogSpill:
        """End the writing: the rest is flushed and committed, and the writer closed."""
        self._flush()
        assert self._db is not None
        try:
            self._db.execute("COMMIT")
            self._db.close()
        except sqlite3.Error as err:
            raise SpillError(f"audit spill file {self.path}: cannot commit it: {err}") from None
        self._db = None
        return self

    def _read(self, sql: str, args: tuple[Any, ...]) -> Iterator[tuple[Any, ...]]:
        try:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        except sqlite3.Error as err:
            raise SpillError(f"audit spill file {self.path}: cannot read it: {err}") from None
        try:
            yield from db.execute(sql, args)
        except sqlite3.Error as err:
            raise SpillError(f"audit spill file {self.path}: cannot read it: {err}") from None
        finally:
            db.close()

    def items(self, part: Partition) -> Iterator[ScanItem]:
        """The latest ID-keyed items within ``part`` (well-formed IDs, and malformed names that
        decode to an ID in it), in ID order."""
        hi = part.hi_uuid
        sql = "SELECT k, kind, raw, reason, fp, body FROM ided WHERE k >= ?" + (" AND k < ?" if hi is not None else "")
        args = (part.lo_uuid.bytes,) + ((hi.bytes,) if hi is not None else ())
        sql += f" AND kind != {_DELETED}"
        for k, kind, raw, reason, fp, body in self._read(sql + " ORDER BY k", args):
            ident = uuid.UUID(bytes=k)
            if body is not None:  # the data text the log held: a stale finding can name its fields
                fp = TextFingerprint(body)
            yield (ident, fp) if kind == _OURS else (MalformedID(raw, reason, ident), fp)

    def others(self) -> Iterator[ScanItem]:
        """The entries that carry no ID: foreign ones and malformed ones that decode to nothing."""
        for _, kind, raw, reason in self._read("SELECT k, kind, raw, reason FROM other ORDER BY k", ()):
            yield (MalformedID(raw, reason) if kind == _MALFORMED else ForeignEntry(raw, reason)), None

    def close(self) -> None:
        """Remove the file and its directory (safe to call twice)."""
        db, self._db = getattr(self, "_db", None), None
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def spill(adapter: Any, entity_type: str, within: Partition | None = None, directory: str | None = None) -> LogSpill:
    """Read ``adapter``'s log of ``entity_type`` once into a new :class:`LogSpill` (finished)."""
    out = LogSpill(within, directory)
    try:
        reader = getattr(adapter, "scan_log", None)
        if reader is not None:
            reader(entity_type, out.add)
        else:
            for item in adapter.scan(entity_type, within, include_malformed=True):
                out.add(item)
        return out.finish()
    except BaseException:
        out.close()
        raise


Compare = Callable[[Any, str, dict[uuid.UUID, Any], Iterator[ScanItem]], Any]


class LogPass:
    """The message logs of one audit pass over one entity type.

    Each log is read into a :class:`LogSpill` in ``pool`` as the pass starts, beside the
    partitions. ``ready(part, expected)`` compares every log already read with the source's
    partition the pass holds anyway (on the last partition, ``wait=True`` waits for the logs
    still being read); ``rest(expected_of)`` waits for the logs still being read,
    compares them with the partitions that went by meanwhile (``expected_of`` re-reads one
    partition of the source: the old in-memory way read the whole source a second time), then the
    entries without an ID, once per log. ``compare(handle, entity_type, expected, items)``
    returns a sink.
    """

    def __init__(self, pool: Executor, handles: list[Any], entity_type: str, within: Partition,
                 compare: Compare) -> None:
        self.handles, self.entity_type, self.compare = handles, entity_type, compare
        self._pool, self._within = pool, within
        self._spills: dict[str, Future[LogSpill]] = {}
        self._done: dict[str, set[Partition]] = {h.name: set() for h in handles}
        self._parts: list[Partition] = []
        self.late = 0  # (log, partition) pairs compared after the loop, the source's partition re-read

    def __enter__(self) -> Self:
        for h in self.handles:
            self._spills[h.name] = self._pool.submit(spill, h.adapter, self.entity_type, self._within)
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        for future in self._spills.values():
            if not future.cancel():
                with contextlib.suppress(BaseException):
                    future.result().close()  # waits for a read still running, then removes its file

    def ready(self, part: Partition, expected: Mapping[Any, dict[uuid.UUID, Any]],
              wait: bool = False) -> list[Future[Any]]:
        """Compare jobs for the logs already read, against the source's ``part`` (``expected`` holds
        the source's fingerprints per store view, uuid_forge.view). With ``wait``
        (the pass's last partition, still held), wait for every log first: no re-read for it."""
        if part not in self._parts:
            self._parts.append(part)
        jobs = []
        for h in self.handles:
            future = self._spills[h.name]
            if wait:
                futures_wait([future])
            if future.done() and future.exception() is None and part not in self._done[h.name]:
                self._done[h.name].add(part)
                jobs.append(self._pool.submit(self.compare, h, self.entity_type, expected[h.adapter.view],
                                              future.result().items(part)))
        return jobs

    def rest(self, expected_of: Callable[[Partition], Mapping[Any, dict[uuid.UUID, Any]]]) -> Iterator[Any]:
        """Sinks for what :meth:`ready` could not do yet; a log that could not be read raises."""
        for h in self.handles:
            self._spills[h.name].result()
        for part in self._parts:
            todo = [h for h in self.handles if part not in self._done[h.name]]
            if not todo:
                continue
            expected = expected_of(part)
            for h in todo:
                self._done[h.name].add(part)
                self.late += 1
                yield self.compare(h, self.entity_type, expected[h.adapter.view],
                                   self._spills[h.name].result().items(part))
        for h in self.handles:
            yield self.compare(h, self.entity_type, {}, self._spills[h.name].result().others())


def _fp(fp: Any) -> str | None:
    return None if fp is None else str(fp)


def _body(fp: Any) -> bytes | None:
    """The data text behind a text fingerprint, kept on disk beside it (never in memory)."""
    if isinstance(fp, TextFingerprint):
        return fp.text.encode("utf-8") if isinstance(fp.text, str) else bytes(fp.text)
    return None
