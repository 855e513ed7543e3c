"""The durable write-ahead journal: intent recorded before any store is written, cleared after.

Deterministic IDs make every write an idempotent upsert, so a store that stays down, or a process
killed in the middle of a batch, leaves rows here and ``replay`` finishes them. What replay writes
is decided in :mod:`uuid_forge.forge` (the source's current record for the other stores; for the
source, a journaled record only while no newer write of that ID has landed). This module keeps
the bookkeeping for that rule: entries are indexed by ``(entity_type, id)`` and marked
``superseded`` when a newer write of the same ID lands in the source; a record a store rejects
for good becomes a dead letter (``dead_letters``: store, entry, masked reason, attempts, time),
taken off the pending list until ``retry_dead_letters`` puts it back or ``drop_dead_letters``
forgets it.

SQLite in WAL mode. The file holds entity data (possibly personal data), so it and its WAL/SHM
companions are created with mode 0600. ``synchronous=NORMAL`` survives a process crash; choose
``"full"`` to survive power loss too, at some cost in speed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, JournalError
from .privatefile import create_private
from .record import Record

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    entity_type TEXT NOT NULL,
    id BLOB NOT NULL,
    key TEXT,
    data TEXT NOT NULL,
    fp TEXT NOT NULL,
    created REAL NOT NULL,
    superseded INTEGER NOT NULL DEFAULT 0,
    op TEXT NOT NULL DEFAULT 'put',
    token TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_id ON entries (entity_type, id);
CREATE TABLE IF NOT EXISTS dead_letters (
    store TEXT NOT NULL,
    seq INTEGER NOT NULL,
    entity_type TEXT NOT NULL,
    id BLOB NOT NULL,
    reason TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    PRIMARY KEY (store, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pending (
    store TEXT NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (store, lo)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 4
# Schema 4: ``op`` ('put' or 'delete': a delete's entry has empty data) and ``token`` (a delete's
# deletion time: its replay deletes under the same token, uuid_forge.tombstones).
# One pending row per batch and store (a range of entry sequence numbers), not per record: a
# store takes or refuses a whole batch, and the bookkeeping stays a few rows per batch.

__all__ = ["DeadLetter", "Journal", "PendingBatch"]


@dataclass
class PendingBatch:
    """Records still owed to one store, with the journal sequence numbers that track them.

    ``seqs`` is the pending range (what ``mark_done`` clears); ``record_seqs[i]`` is the entry of
    ``records[i]``; ``superseded`` holds the entries a newer write of the same ID has overtaken.
    ``op`` is ``"put"`` or ``"delete"`` (a batch is one or the other: its records then carry
    no data), ``token`` a delete's deletion time, ``created[i]`` when ``records[i]`` was journaled."""

    store: str
    seqs: list[int]
    records: list[Record]
    record_seqs: list[int] = field(default_factory=list)
    superseded: set[int] = field(default_factory=set)
    op: str = "put"
    token: str = ""
    created: list[float] = field(default_factory=list)


@dataclass
class DeadLetter:
    """A record a store refused for good (never the data: the reason is already masked)."""

    store: str
    seq: int
    entity_type: str
    id: uuid.UUID
    reason: str
    attempts: int
    created: float

    def to_dict(self) -> dict[str, object]:
        return {"store": self.store, "seq": self.seq, "entity_type": self.entity_type, "id": str(self.id),
                "reason": self.reason, "attempts": self.attempts,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))}


def _create_private(path: Path) -> tuple[int, int]:
    """Create ``path`` (and the WAL/SHM files SQLite adds) readable by the owner only.

    A symlink at any of the three paths is refused, never followed or chmodded: SQLite itself
    would follow it. Returns the journal file's (device, inode).
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as err:
        raise JournalError(f"journal {path}: cannot create its directory: {err.strerror or err}") from None
    inode = create_private(path, "journal")
    for p in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        create_private(p, "journal file")
    return inode


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


# SQLite result codes that are about the file, not about the SQL: these become JournalErrors.
# Others (a constraint, a typo in SQL) stay sqlite3 errors, so code may still catch them by kind.
_FILE_ERRORS = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN",
                "SQLITE_READONLY", "SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_PERM", "SQLITE_NOLFS", "SQLITE_PROTOCOL")


@contextlib.contextmanager
def journal_errors(path: Path) -> Iterator[None]:
    """Turn a SQLite file error into a one-line :class:`JournalError` naming the journal and what to do."""
    try:
        yield
    except sqlite3.Error as err:
        name = getattr(err, "sqlite_errorname", "") or ""
        if not name.startswith(_FILE_ERRORS):
            raise
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            raise JournalError(f"journal {path} is corrupt: {err}; move it aside (it may hold writes still owed "
                               "to a store), run again, then 'uuid-forge audit --repair' finds what is missing"
                               ) from None
        if name == "SQLITE_FULL":
            raise JournalError(f"journal {path}: the disk is full ({err})") from None
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            raise JournalError(f"journal {path} is locked by another process ({err})") from None
        raise JournalError(f"journal {path}: {err} ({name})") from None


class _JournalCursor(sqlite3.Cursor):
    """A cursor whose fetches name the journal when SQLite fails (a corrupt page is found late)."""

    journal_path: Path

    def fetchone(self) -> Any:
        with journal_errors(self.journal_path):
            return super().fetchone()

    def fetchmany(self, size: int | None = None) -> list[Any]:
        with journal_errors(self.journal_path):
            return super().fetchmany(self.arraysize if size is None else size)

    def fetchall(self) -> list[Any]:
        with journal_errors(self.journal_path):
            return super().fetchall()

    def __next__(self) -> Any:
        with journal_errors(self.journal_path):
            return super().__next__()


class _JournalConnection(sqlite3.Connection):
    """The journal's connection: every SQLite error leaves as a JournalError naming the file."""

    journal_path: Path

    def _cursor(self) -> _JournalCursor:
        cursor = self.cursor(_JournalCursor)
        cursor.journal_path = self.journal_path
        return cursor

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if sql == "ROLLBACK" and not self.in_transaction:
            # SQLite rolls back by itself on a full disk or an I/O error; a second ROLLBACK would
            # fail ("no transaction is active") and hide the error that caused it.
            return self._cursor()
        with journal_errors(self.journal_path):
            return self._cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        with journal_errors(self.journal_path):
            return self._cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:
        with journal_errors(self.journal_path):
            return self._cursor().executescript(script)


class Journal:
    """A SQLite journal of pending writes per store. Thread-safe through one lock."""

    def __init__(self, path: str | os.PathLike[str] = ".uuid-forge/journal.sqlite3", synchronous: str = "normal") -> None:
        if synchronous.lower() not in ("normal", "full"):
            raise ConfigError(f"journal synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = Path(path)
        inode = _create_private(self.path)
        old = os.umask(0o077)
        try:
            with journal_errors(self.path):
                db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30,
                                     factory=_JournalConnection)
            db.journal_path = self.path
            self._db = db
            if _inode(self.path) != inode:  # the name was swapped (for a link?) while SQLite opened it
                db.close()
                raise JournalError(f"journal {self.path} was replaced while it was being opened; refusing it")
            self._db.execute("PRAGMA journal_mode=WAL")
        finally:
            os.umask(old)
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._migrate()
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._lock = threading.Lock()

    def _migrate(self) -> None:
        """Refuse a journal from a newer uuid-forge; upgrade one that kept a row per record."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(f"journal {self.path} was written by a newer uuid-forge (schema {version}); "
                              "replay it with that version")
        entry_columns = {row[1] for row in self._db.execute("PRAGMA table_info(entries)")}
        if entry_columns and "superseded" not in entry_columns:  # schema 2: no supersede mark yet
            self._db.execute("ALTER TABLE entries ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0")
        if entry_columns and "op" not in entry_columns:  # schema 3: every entry a write
            self._db.execute("ALTER TABLE entries ADD COLUMN op TEXT NOT NULL DEFAULT 'put'")
            self._db.execute("ALTER TABLE entries ADD COLUMN token TEXT")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pending)")}
        if "seq" in columns:  # schema 1: one pending row per record becomes one-record ranges
            self._db.executescript("""
                BEGIN IMMEDIATE;
                CREATE TABLE pending_v2 (store TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, PRIMARY KEY (store, lo)) WITHOUT ROWID;
                INSERT INTO pending_v2 SELECT store, seq, seq, attempts, last_error FROM pending;
                DROP TABLE pending;
                ALTER TABLE pending_v2 RENAME TO pending;
                COMMIT;""")

    # -- writing side --------------------------------------------------------------------------
    def record_intent(self, records: Sequence[Record], stores: Iterable[str], *, op: str = "put",
                      token: str = "") -> list[int]:
        """Durably note that ``records`` are owed to ``stores``; returns their sequence numbers.

        ``op="delete"``: the records are deletions (their data is not kept), ``token`` their
        deletion time, kept so that replay deletes under the same token."""
        stores = list(stores)
        now = time.time()
        rows: list[tuple[Any, ...]]
        if op == "delete":
            rows = [(r.entity_type, r.id.bytes, r.key_json, "{}", "", now, op, token) for r in records]
        else:
            rows = [(r.entity_type, r.id.bytes, r.key_json, r.data_json, r.fingerprint, now, op, None) for r in records]
        with self._lock, self._transaction():
            first = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM entries").fetchone()[0]
            seqs = list(range(first, first + len(rows)))
            self._db.executemany(
                "INSERT INTO entries (seq, entity_type, id, key, data, fp, created, op, token) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(s, *row) for s, row in zip(seqs, rows)])
            if seqs:
                self._db.executemany("INSERT INTO pending (store, lo, hi) VALUES (?, ?, ?)",
                                     [(store, seqs[0], seqs[-1]) for store in stores])
        return seqs

    def mark_done(self, store: str, seqs: Sequence[int], *, landed: Sequence[tuple[int, Record]] = (),
                  dead: Sequence[tuple[int, Record, str]] = ()) -> None:
        """``store`` now holds the batch ``seqs``; forget entries no store is owed any more.

        ``landed``: ``(seq, record)`` pairs the source of truth now holds: older entries of the
        same IDs are marked superseded (replay will not write them over the newer version).
        ``dead``: ``(seq, record, masked reason)`` the store refused for good: dead letters, off
        the pending list, their entries kept for a retry."""
        if not seqs:
            return
        lo, hi = seqs[0], seqs[-1]
        with self._lock, self._transaction():
            self._supersede(landed)
            if dead:  # attempts carry over from a retried dead letter (kept in its pending row)
                now = time.time()
                row = self._db.execute("SELECT attempts FROM pending WHERE store = ? AND lo = ?",
                                       (store, lo)).fetchone()
                tries = (row[0] if row else 0) + 1
                self._db.executemany(
                    "INSERT INTO dead_letters (store, seq, entity_type, id, reason, attempts, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (store, seq) DO UPDATE SET "
                    "reason = excluded.reason, attempts = dead_letters.attempts + 1, created = excluded.created",
                    [(store, s, r.entity_type, r.id.bytes, reason[:500], tries, now) for s, r, reason in dead])
            self._db.execute("DELETE FROM pending WHERE store = ? AND lo = ?", (store, lo))
            self._forget_unowed(lo, hi)

    def _supersede(self, landed: Sequence[tuple[int, Record]]) -> None:
        """Mark entries older than a landed write of the same ID (index lookups, only when older
        entries exist at all: a journal that keeps up holds none)."""
        if not landed:
            return
        first = min(s for s, _ in landed)
        if self._db.execute("SELECT 1 FROM entries WHERE seq < ? AND superseded = 0 LIMIT 1", (first,)).fetchone():
            self._db.executemany("UPDATE entries SET superseded = 1 WHERE entity_type = ? AND id = ? AND seq < ? "
                                 "AND superseded = 0", [(r.entity_type, r.id.bytes, s) for s, r in landed])

    def _forget_unowed(self, lo: int, hi: int) -> None:
        still = self._db.execute("SELECT 1 FROM pending WHERE lo <= ? AND hi >= ? LIMIT 1", (hi, lo)).fetchone()
        if still is None:
            if self._db.execute("SELECT 1 FROM dead_letters LIMIT 1").fetchone() is None:
                self._db.execute("DELETE FROM entries WHERE seq BETWEEN ? AND ?", (lo, hi))
            else:  # dead letters keep their entry (a retry needs the record)
                self._db.execute("DELETE FROM entries WHERE seq BETWEEN ? AND ? AND seq NOT IN "
                                 "(SELECT seq FROM dead_letters WHERE seq BETWEEN ? AND ?)", (lo, hi, lo, hi))

    def forget(self, seqs: Sequence[int]) -> int:
        """Drop the batch ``seqs`` for every store: its write was reported failed to its caller
        (the source refused it), so it must never be applied later behind the caller's back."""
        if not seqs:
            return 0
        lo, hi = seqs[0], seqs[-1]
        with self._lock, self._transaction():
            gone = self._db.execute("DELETE FROM pending WHERE lo = ? AND hi = ?", (lo, hi)).rowcount
            self._forget_unowed(lo, hi)
        return gone

    def mark_failed(self, store: str, seqs: Sequence[int], error: str) -> None:
        """Count a failed attempt (the error text must already be free of secrets)."""
        if not seqs:
            return
        with self._lock, self._transaction():
            self._db.execute("UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE store = ? AND lo = ?",
                             (error[:500], store, seqs[0]))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- replay side ---------------------------------------------------------------------------
    def pending_counts(self) -> dict[str, int]:
        """How many entries each store is still owed."""
        with self._lock:
            return dict(self._db.execute("SELECT store, SUM(hi - lo + 1) FROM pending GROUP BY store").fetchall())

    def pending(self, store: str) -> Iterator[PendingBatch]:
        """What ``store`` is owed, oldest first, one written batch at a time (bounded memory)."""
        after = 0
        while True:
            with self._lock:
                row = self._db.execute("SELECT lo, hi FROM pending WHERE store = ? AND lo > ? ORDER BY lo LIMIT 1",
                                       (store, after)).fetchone()
                if row is None:
                    return
                lo, hi = row
                rows = self._db.execute("SELECT seq, entity_type, id, key, data, fp, superseded, op, token, created "
                                        "FROM entries WHERE seq BETWEEN ? AND ? ORDER BY seq", (lo, hi)).fetchall()
            after = lo
            op = "delete" if rows and rows[0][7] == "delete" else "put"
            yield PendingBatch(store, list(range(lo, hi + 1)), [_record(r) for r in rows], [r[0] for r in rows],
                               {r[0] for r in rows if r[6]}, op, next((r[8] for r in rows if r[8]), ""),
                               [r[9] for r in rows])

    def pending_delete_counts(self) -> dict[str, int]:
        """How many of the entries each store is still owed are deletes."""
        with self._lock:
            return dict(self._db.execute(
                "SELECT p.store, COUNT(*) FROM pending p JOIN entries e ON e.seq BETWEEN p.lo AND p.hi "
                "WHERE e.op = 'delete' GROUP BY p.store").fetchall())

    # -- dead letters --------------------------------------------------------------------------
    def dead_letter_counts(self) -> dict[str, int]:
        """How many dead letters each store has."""
        with self._lock:
            return dict(self._db.execute("SELECT store, COUNT(*) FROM dead_letters GROUP BY store").fetchall())

    def dead_letters(self, store: str | None = None, ident: uuid.UUID | None = None) -> list[DeadLetter]:
        """The dead letters (optionally of one store and/or one ID), oldest first."""
        where, args = self._dead_filter(store, ident)
        with self._lock:
            rows = self._db.execute("SELECT store, seq, entity_type, id, reason, attempts, created FROM dead_letters"
                                    f"{where} ORDER BY created, store, seq", args).fetchall()
        return [DeadLetter(s, q, t, uuid.UUID(bytes=i), r, a, c) for s, q, t, i, r, a, c in rows]

    def retry_dead_letters(self, store: str | None = None, ident: uuid.UUID | None = None,
                           also: dict[str, Sequence[str]] | None = None) -> int:
        """Put dead letters back on the pending list (the next ``replay`` tries them again).
        ``also`` maps a store to the stores that follow it: a source's retried record is owed to
        them too once it lands."""
        where, args = self._dead_filter(store, ident)
        with self._lock, self._transaction():
            rows = self._db.execute(f"SELECT store, seq, attempts FROM dead_letters{where}", args).fetchall()
            owed = {(s, q, a) for s, q, a in rows} | {(o, q, 0) for s, q, _ in rows for o in (also or {}).get(s, ())}
            self._db.executemany("INSERT OR IGNORE INTO pending (store, lo, hi, attempts) VALUES (?, ?, ?, ?)",
                                 [(s, q, q, a) for s, q, a in sorted(owed)])
            self._db.execute(f"DELETE FROM dead_letters{where}", args)
        return len(rows)

    def drop_dead_letters(self, store: str | None = None, ident: uuid.UUID | None = None) -> int:
        """Forget dead letters for good (and their entries, unless some store is still owed them)."""
        where, args = self._dead_filter(store, ident)
        with self._lock, self._transaction():
            seqs = [r[0] for r in self._db.execute(f"SELECT seq FROM dead_letters{where}", args)]
            self._db.execute(f"DELETE FROM dead_letters{where}", args)
            for s in seqs:
                if self._db.execute("SELECT 1 FROM dead_letters WHERE seq = ? UNION ALL SELECT 1 FROM pending "
                                    "WHERE lo <= ? AND hi >= ? LIMIT 1", (s, s, s)).fetchone() is None:
                    self._db.execute("DELETE FROM entries WHERE seq = ?", (s,))
        return len(seqs)

    @staticmethod
    def _dead_filter(store: str | None, ident: uuid.UUID | None) -> tuple[str, tuple[object, ...]]:
        parts: list[str] = []
        args: list[object] = []
        if store is not None:
            parts.append("store = ?")
            args.append(store)
        if ident is not None:
            parts.append("id = ?")
            args.append(ident.bytes)
        return (" WHERE " + " AND ".join(parts) if parts else ""), tuple(args)

    def erase(self, entity_type: str, ids: Iterable[uuid.UUID]) -> tuple[int, int]:
        """Scrub the data of ``ids`` from the journal (the right to erasure, uuid_forge.erasure):
        their dead letters go, and each entry of theirs keeps its place (a store may still be owed
        the batch it belongs to) but loses what it held of the entity. A write's entry loses its
        key, data and fingerprint and is marked superseded, so replay never writes it to the source
        (the other stores get the source's current record: none). A delete's entry keeps its op and
        token, so a delete still owed to a store is finished by replay, and loses only its key.
        SQLite's ``secure_delete`` zeroes the freed bytes, and a WAL checkpoint moves them out of
        the write-ahead log. Returns (entries scrubbed, dead letters removed)."""
        keys = [(entity_type, i.bytes) for i in ids]
        with self._lock:
            self._db.execute("PRAGMA secure_delete = ON")
            try:
                with self._transaction():
                    dead = sum(self._db.execute("DELETE FROM dead_letters WHERE entity_type = ? AND id = ?", k).rowcount
                               for k in keys)
                    scrubbed = sum(self._db.execute(
                        "UPDATE entries SET key = NULL, data = '{}', fp = '', superseded = 1 WHERE entity_type = ? "
                        "AND id = ? AND op = 'put' AND (data != '{}' OR key IS NOT NULL OR fp != '')", k).rowcount
                        + self._db.execute("UPDATE entries SET key = NULL WHERE entity_type = ? AND id = ? AND "
                                           "op = 'delete' AND key IS NOT NULL", k).rowcount for k in keys)
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.execute("PRAGMA secure_delete = OFF")
        return scrubbed, dead

    def holds(self, entity_type: str, ids: Iterable[uuid.UUID]) -> int:
        """How many entries or dead letters of ``ids`` still hold data (an erasure reads this back)."""
        keys = [(entity_type, i.bytes) for i in ids]
        with self._lock:
            return sum(self._db.execute(
                "SELECT (SELECT COUNT(*) FROM entries WHERE entity_type = ? AND id = ? AND (data != '{}' OR key IS NOT "
                "NULL)) + (SELECT COUNT(*) FROM dead_letters WHERE entity_type = ? AND id = ?)", (*k, *k)).fetchone()[0]
                for k in keys)

    def pending_entity_types(self) -> list[str]:
        """The entity types of the entries still owed to some store (an entry goes when none is owed)."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT entity_type FROM entries ORDER BY 1")]

    def stores_pending(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT store FROM pending ORDER BY store")]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple[Any, ...]) -> Record:
    import json

    _, entity_type, raw_id, key, data, fp = row[:6]
    record = Record(entity_type, uuid.UUID(bytes=raw_id), json.loads(data), json.loads(key) if key else None,
                    fingerprint=fp or None)
    record._json = data  # the exact canonical text that was journaled
    return record
