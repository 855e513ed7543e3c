"""Writing a batch so that one bad record cannot block the others: bisection of rejected batches,
a no-retry attempt for repair, and the error text reports and the journal keep.

Shared by write-through (:mod:`uuid_forge.forge`, with retries) and repair
(:mod:`uuid_forge.repair`, once): both must land the good records of a batch a store partly
refuses, and both must say why without quoting the data.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import StoreError, StoreRejectedError
from .record import Record
from .urls import mask_text

__all__ = ["Attempt", "attempt_once", "error_reason", "is_rejection", "put_isolating"]

Attempt = Callable[[list[Record]], "tuple[bool, str, type[StoreError] | None]"]

_QUOTING = ("\n[SQL:", "\n[parameters:", "\nCONTEXT:", "\nLINE ", " [SQL:", "(Background on this error")


def put_isolating(records: list[Record], attempt: Attempt) -> tuple[bool, str, list[tuple[int, str]]]:
    """Write ``records`` with ``attempt(part) -> (ok, error, error class)``; when the store rejects
    the data (StoreRejectedError), split the batch in halves until the bad records are isolated.

    Returns (ok, error, [(index, reason)] of the records refused for good): the others landed.
    ok is False only for a store-level failure (down, misconfigured), which stops the search:
    then nothing is known to be bad and the whole batch is the caller's to keep. Costs about
    2 log2(n) extra writes per bad record; writes are idempotent, so rewriting a half is safe."""
    if not records:
        return True, "", []
    ok, error, kind = attempt(records)
    if ok or not is_rejection(kind):
        return ok, error, []
    rejected: list[tuple[int, str]] = []

    def isolate(lo: int, hi: int, reason: str) -> str | None:
        """records[lo:hi] failed with ``reason``; returns a store-level error that stops the search."""
        if hi - lo == 1:
            rejected.append((lo, reason))
            return None
        mid = (lo + hi) // 2
        for a, b in ((lo, mid), (mid, hi)):
            part_ok, part_error, part_kind = attempt(records[a:b])
            if part_ok:
                continue
            if not is_rejection(part_kind):
                return part_error
            stop = isolate(a, b, part_error)
            if stop is not None:
                return stop
        return None

    stop = isolate(0, len(records), error)
    if stop is not None:
        return False, stop, []
    return True, "", rejected


def is_rejection(kind: type[StoreError] | None) -> bool:
    """Whether an error class means the store refused the data for good (not the store failing)."""
    return kind is not None and issubclass(kind, StoreRejectedError)


def attempt_once(put: Callable[[list[Record]], object]) -> Attempt:
    """An ``attempt`` for :func:`put_isolating` without retries (repair)."""
    def attempt(part: list[Record]) -> tuple[bool, str, type[StoreError] | None]:
        try:
            put(part)
        except StoreError as err:
            return False, error_reason(err), type(err)
        return True, "", None
    return attempt


def error_reason(err: BaseException, limit: int = 500) -> str:
    """An error's text for reports, logs and the journal: masked, without the parts where drivers
    quote the statement or the data (SQL text, parameters, a JSON excerpt), and capped."""
    text = str(err)
    for marker in _QUOTING:
        cut = text.find(marker)
        if cut > 0:
            text = text[:cut]
    text = mask_text(text[:limit * 4]).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"
