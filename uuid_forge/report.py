"""What a write-through did, per store: written, left in the journal, failed, and how long it took."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StoreResult:
    """One store's part of a write. ``pending`` records stay in the journal for ``replay``."""

    name: str
    role: str  # source | required | optional
    url: str  # masked
    written: int = 0
    pending: int = 0
    attempts: int = 0
    retries: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    #: records this store refused for good (dead letters in the journal), and their IDs (a few)
    dead_letters: int = 0
    dead_letter_ids: list[str] = field(default_factory=list)
    #: records not written and not journaled: the source refused them, the caller gets WriteError
    not_written: int = 0

    @property
    def status(self) -> str:
        if self.pending == 0 and self.dead_letters == 0 and self.not_written == 0:
            return "ok"
        if self.not_written:  # the source failed: nothing of that batch is kept, whatever the role
            return "failed"
        return "journaled" if self.role == "optional" else "failed"

    def note_error(self, message: str) -> None:
        if message not in self.errors and len(self.errors) < 5:
            self.errors.append(message)


@dataclass
class WriteReport:
    """The outcome of ``Forge.write``/``write_many``/``replay``."""

    entities: int = 0
    stores: dict[str, StoreResult] = field(default_factory=dict)
    journal_seconds: float = 0.0
    seconds: float = 0.0
    kind: str = "write"  # or "replay": what the summary calls it

    def __str__(self) -> str:
        from .summary import write_summary

        return write_summary(self, self.kind)

    @property
    def ok(self) -> bool:
        """True when every required store holds everything (optional ones may be journaled)."""
        return all(s.status != "failed" for s in self.stores.values())

    @property
    def complete(self) -> bool:
        """True when every store, optional ones too, holds everything."""
        return all(s.pending == 0 and s.dead_letters == 0 and s.not_written == 0 for s in self.stores.values())

    def to_dict(self) -> dict[str, Any]:
        return {"entities": self.entities, "ok": self.ok, "complete": self.complete,
                "seconds": round(self.seconds, 4), "journal_seconds": round(self.journal_seconds, 4),
                "stores": {n: {**asdict(s), "status": s.status} for n, s in self.stores.items()}}

    def summary(self) -> str:
        parts = [f"{n}: {s.status} ({s.written} written" + (f", {s.pending} in journal" if s.pending else "")
                 + (f", {s.dead_letters} dead letter(s)" if s.dead_letters else "")
                 + (f", {s.not_written} not written" if s.not_written else "") + ")"
                 for n, s in self.stores.items()]
        return f"{self.entities} entities; " + "; ".join(parts)
