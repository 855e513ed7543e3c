"""The durable write-ahead journal: intent recorded before any store is written, cleared after.

Deterministic IDs make every write an idempotent upsert, so the recovery rule is simple: whatever
is still pending for a store is written again. A store that stays down, or a process killed in the
middle of a batch, leaves rows here; ``replay`` finishes them.

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
from dataclasses import dataclass
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
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending (
    store TEXT NOT NULL,
    lo INTEGER NOT NULL,
    hi INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (store, lo)
) WITHOUT ROWID;
"""
SCHEMA_VERSION = 2
# One pending row per batch and store (a range of entry sequence numbers), not per record: a
# store takes or refuses a whole batch, and the bookkeeping stays a few rows per batch.

__all__ = ["Journal", "PendingBatch"]


@dataclass
class PendingBatch:
    """Records still owed to one store, with the journal sequence numbers that track them."""

    store: str
    seqs: list[int]
    records: list[Record]


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

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        if sql == "ROLLBACK" and not self.in_transaction:
            # SQLite rolls back by itself on a full disk or an I/O error; a second ROLLBACK would
            # fail ("no transaction is active") and hide the error that caused it.
            return self._cursor()
        with journal_errors(self.journal_path):
            return self._cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:  # type: ignore[override]
        with journal_errors(self.journal_path):
            return self._cursor().executemany(sql, parameters)

    def executescript(self, script: str, /) -> sqlite3.Cursor:  # type: ignore[override]
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
    def record_intent(self, records: Sequence[Record], stores: Iterable[str]) -> list[int]:
        """Durably note that ``records`` are owed to ``stores``; returns their sequence numbers."""
        stores = list(stores)
        now = time.time()
        rows = [(r.entity_type, r.id.bytes, r.key_json, r.data_json, r.fingerprint, now) for r in records]
        with self._lock, self._transaction():
            first = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM entries").fetchone()[0]
            seqs = list(range(first, first + len(rows)))
            self._db.executemany(
                "INSERT INTO entries (seq, entity_type, id, key, data, fp, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(s, *row) for s, row in zip(seqs, rows)])
            if seqs:
                self._db.executemany("INSERT INTO pending (store, lo, hi) VALUES (?, ?, ?)",
                                     [(store, seqs[0], seqs[-1]) for store in stores])
        return seqs

    def mark_done(self, store: str, seqs: Sequence[int]) -> None:
        """``store`` now holds the batch ``seqs``; forget entries no store is owed any more."""
        if not seqs:
            return
        lo, hi = seqs[0], seqs[-1]
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM pending WHERE store = ? AND lo = ?", (store, lo))
            still = self._db.execute("SELECT 1 FROM pending WHERE lo <= ? AND hi >= ? LIMIT 1", (hi, lo)).fetchone()
            if still is None:
                self._db.execute("DELETE FROM entries WHERE seq BETWEEN ? AND ?", (lo, hi))

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
                rows = self._db.execute("SELECT seq, entity_type, id, key, data, fp FROM entries "
                                        "WHERE seq BETWEEN ? AND ? ORDER BY seq", (lo, hi)).fetchall()
            after = lo
            yield PendingBatch(store, list(range(lo, hi + 1)), [_record(r) for r in rows])

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


def _record(row: tuple[int, str, bytes, str | None, str, str]) -> Record:
    import json

    _, entity_type, raw_id, key, data, fp = row
    record = Record(entity_type, uuid.UUID(bytes=raw_id), json.loads(data), json.loads(key) if key else None,
                    fingerprint=fp)
    record._json = data  # the exact canonical text that was journaled
    return record
