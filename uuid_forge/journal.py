"""The durable write-ahead journal: intent recorded before any store is written, cleared after.

Deterministic IDs make every write an idempotent upsert, so the recovery rule is simple: whatever
is still pending for a store is written again. A store that stays down, or a process killed in the
middle of a batch, leaves rows here; ``replay`` finishes them.

SQLite in WAL mode. The file holds entity data (possibly personal data), so it and its WAL/SHM
companions are created with mode 0600. ``synchronous=NORMAL`` survives a process crash; choose
``"full"`` to survive power loss too, at some cost in speed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
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
    seq INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (store, seq)
) WITHOUT ROWID;
"""

__all__ = ["Journal", "PendingBatch"]


@dataclass
class PendingBatch:
    """Records still owed to one store, with the journal sequence numbers that track them."""

    store: str
    seqs: list[int]
    records: list[Record]


def _create_private(path: Path) -> None:
    """Create ``path`` (and the WAL/SHM files SQLite adds) readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(p, 0o600)


class Journal:
    """A SQLite journal of pending writes per store. Thread-safe through one lock."""

    def __init__(self, path: str | os.PathLike[str] = ".uuid-forge/journal.sqlite3", synchronous: str = "normal") -> None:
        if synchronous.lower() not in ("normal", "full"):
            raise ConfigError(f"journal synchronous must be 'normal' or 'full', got {synchronous!r}")
        self.path = Path(path)
        _create_private(self.path)
        old = os.umask(0o077)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
        finally:
            os.umask(old)
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    # -- writing side --------------------------------------------------------------------------
    def record_intent(self, records: Sequence[Record], stores: Iterable[str]) -> list[int]:
        """Durably note that ``records`` are owed to ``stores``; returns their sequence numbers."""
        stores = list(stores)
        now = time.time()
        rows = [(r.entity_type, r.id.bytes, r.key_json, r.data_json, r.fingerprint, now) for r in records]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                first = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM entries").fetchone()[0]
                seqs = list(range(first, first + len(rows)))
                self._db.executemany(
                    "INSERT INTO entries (seq, entity_type, id, key, data, fp, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(s, *row) for s, row in zip(seqs, rows)])
                self._db.executemany("INSERT INTO pending (store, seq) VALUES (?, ?)",
                                     [(store, s) for store in stores for s in seqs])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return seqs

    def mark_done(self, store: str, seqs: Sequence[int]) -> None:
        """``store`` now holds these entries; forget entries no store is owed any more."""
        if not seqs:
            return
        lo, hi = min(seqs), max(seqs)
        contiguous = hi - lo + 1 == len(seqs)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if contiguous:
                    self._db.execute("DELETE FROM pending WHERE store = ? AND seq BETWEEN ? AND ?", (store, lo, hi))
                else:
                    self._db.executemany("DELETE FROM pending WHERE store = ? AND seq = ?", [(store, s) for s in seqs])
                self._db.execute(
                    "DELETE FROM entries WHERE seq BETWEEN ? AND ? AND NOT EXISTS "
                    "(SELECT 1 FROM pending WHERE pending.seq = entries.seq)", (lo, hi))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def mark_failed(self, store: str, seqs: Sequence[int], error: str) -> None:
        """Count a failed attempt (the error text must already be free of secrets)."""
        if not seqs:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("UPDATE pending SET attempts = attempts + 1, last_error = ? WHERE store = ? AND seq = ?",
                                     [(error[:500], store, s) for s in seqs])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # -- replay side ---------------------------------------------------------------------------
    def pending_counts(self) -> dict[str, int]:
        """How many entries each store is still owed."""
        with self._lock:
            return dict(self._db.execute("SELECT store, COUNT(*) FROM pending GROUP BY store").fetchall())

    def pending(self, store: str, batch_size: int = 1000) -> Iterator[PendingBatch]:
        """What ``store`` is owed, oldest first, in batches (bounded memory)."""
        after = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT e.seq, e.entity_type, e.id, e.key, e.data, e.fp FROM pending p JOIN entries e ON e.seq = p.seq "
                    "WHERE p.store = ? AND p.seq > ? ORDER BY p.seq LIMIT ?", (store, after, batch_size)).fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield PendingBatch(store, [r[0] for r in rows], [_record(r) for r in rows])

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
