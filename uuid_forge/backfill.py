"""Backfills as chunk tasks: a JSONL file cut into byte ranges that start at a line, each written
by ``Forge.write_many`` in a worker, and the chunks' write reports added up.

Each worker writes through its own Forge, so each chunk's failures are journaled as today, in the
journal its configuration names ([journal] path, or UUID_FORGE_JOURNAL): local processes share
the coordinator's file (SQLite in WAL mode takes their writes one at a time); a Celery worker on
another machine journals on that machine, and ``uuid-forge replay`` is run there.

Entities are written in file order within a chunk, not across chunks: a file that holds one
entity twice in different chunks is written in one process instead (:func:`first_repeat`).
"""

from __future__ import annotations

import os
from dataclasses import fields
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from .entitytypes import FROM_DATA
from .errors import ValidationError, WriteError
from .jsonline import parse_line
from .report import StoreResult, WriteReport

if TYPE_CHECKING:
    from .forge import Forge

CHUNK_BYTES = 8 << 20  # about this much of the file per task (at least one per worker)


def chunks(path: str, workers: int, chunk_bytes: int = CHUNK_BYTES) -> list[tuple[int, int]]:
    """``(start, end)`` byte ranges covering the file, each starting at a line's first byte."""
    size = os.path.getsize(path)
    count = max(workers, -(-size // chunk_bytes), 1)
    cuts = [0]
    with open(path, "rb") as fh:
        for k in range(1, count):
            at = max(size * k // count, cuts[-1])
            fh.seek(at)
            if at > 0:
                fh.seek(at - 1)
                fh.readline()  # to the start of the next line (or stay, when at-1 ended one)
            cuts.append(min(fh.tell(), size))
    cuts.append(size)
    return [(a, b) for a, b in pairwise(cuts) if b > a]


def _entities(path: str, start: int, end: int) -> Any:
    with open(path, "rb") as fh:
        fh.seek(start)
        while fh.tell() < end:
            line = fh.readline()
            if not line:
                break
            if line.strip():
                item = parse_line(line.decode("utf-8"))
                yield item["entity_type"], item.get("key", FROM_DATA), item.get("data", {})


def write_chunk(forge: Forge, path: str, start: int, end: int) -> dict[str, Any]:
    """Write the entities of one byte range; the report (and the error, when the source failed)."""
    error = None
    try:
        report = forge.write_many(_entities(path, start, end))
    except WriteError as failure:
        report, error = failure.report, str(failure)
    except (ValueError, KeyError, TypeError) as bad:  # the coordinator checked the file: it changed since
        raise ValidationError(f"{path} bytes {start}-{end}: {bad}") from None
    return {"report": report_to_dict(report), "error": error}


def report_to_dict(report: WriteReport) -> dict[str, Any]:
    return {"entities": report.entities, "seconds": report.seconds, "journal_seconds": report.journal_seconds,
            "stores": {n: {f.name: getattr(s, f.name) for f in fields(StoreResult)} for n, s in report.stores.items()}}


def merge_reports(parts: list[dict[str, Any]], seconds: float) -> WriteReport:
    """The chunks' reports as one: counts added, errors and dead-letter IDs kept (a few)."""
    total = WriteReport(seconds=seconds)
    for part in parts:
        r = part["report"]
        total.entities += r["entities"]
        total.journal_seconds += r["journal_seconds"]
        for name, s in r["stores"].items():
            mine = total.stores.setdefault(name, StoreResult(name, s["role"], s["url"]))
            for k in ("written", "pending", "attempts", "retries", "dead_letters", "not_written"):
                setattr(mine, k, getattr(mine, k) + s[k])
            mine.seconds = max(mine.seconds, s["seconds"])
            for e in s["errors"]:
                mine.note_error(e)
            mine.dead_letter_ids = (mine.dead_letter_ids + s["dead_letter_ids"])[:10]
    return total


def first_repeat(forge: Forge, path: str) -> tuple[int, int] | None:
    """The line numbers of the first entity the file holds twice (by a 64-bit ID prefix, so a rare
    false alarm only costs the parallelism), or None."""
    seen: dict[int, int] = {}
    for lineno, entity in enumerate(_lines(path), 1):
        if entity is None:
            continue
        prefix = forge.records([entity])[0].id.int >> 64
        if prefix in seen:
            return seen[prefix], lineno
        seen[prefix] = lineno
    return None


def _lines(path: str) -> Any:
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                yield None
                continue
            item = parse_line(line.decode("utf-8"))
            yield item["entity_type"], item.get("key", FROM_DATA), item.get("data", {})
