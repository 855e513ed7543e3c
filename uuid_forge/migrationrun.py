"""One ``uuid-forge migrate`` run: what it covers (:class:`Run`: the stores, types and batch
size chosen, the plan it works on) and what a phase did (:class:`Outcome`: counts and problems).

Kept apart from uuid_forge.migration so that the phases of tables migrated in place
(uuid_forge.inplace) take a run and report into an outcome without importing the phases of the
other stores, which call them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import migrationmap as mm
from .errors import MigrationRefusedError, ValidationError
from .masking import mask_name
from .migrationmap import Mapping, PlanState
from .settings import MigrateSettings, check_plan_name
from .urls import mask_text

if TYPE_CHECKING:
    from .forge import Forge

__all__ = ["Outcome", "Run", "shown_entry"]


@dataclass
class Outcome:
    """What one phase did (or, with ``dry_run``, would do): counts per ``"store/type"``, the
    problems found (entry names masked), and whether the phase stopped on them."""

    phase: str
    plan: str
    dry_run: bool = False
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[dict[str, str]] = field(default_factory=list)
    stopped: str = ""  # why the phase stopped without finishing (empty: it finished)
    passed: bool | None = None  # verify only

    def count(self, store: str, entity_type: str, what: str, n: int = 1) -> None:
        self.counts.setdefault(f"{store}/{entity_type}", Counter())[what] += n

    def problem(self, m: Mapping | None, store: str, entity_type: str, kind: str, reason: str,
                address: str = "", raw: str = "") -> None:
        """List one entry; a raw name (``raw``, or the mapping's) is masked wherever it appears,
        in the reason too (a store's reason names the key it could not read)."""
        shown = shown_entry(m.kind, m.old) if m is not None else address
        name = raw or (m.old if m is not None and m.kind == "raw" else "")
        if name:
            reason = reason.replace(name, mask_name(name))
        self.problems.append({"store": store, "type": entity_type, "entry": shown, "problem": kind,
                              "reason": mask_text(reason)})

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "plan": self.plan, "dry_run": self.dry_run,
                "counts": {k: dict(v) for k, v in sorted(self.counts.items())}, "problems": self.problems,
                "stopped": self.stopped, "passed": self.passed}


def shown_entry(kind: str, address: str) -> str:
    """How an output names an old entry: a UUID as it is (an ID, not data), a raw name masked."""
    return address if kind == "uuid" else mask_name(address)


class Run:
    """One phase's view of the configuration: stores and types selected, the references."""

    def __init__(self, forge: Forge, settings: MigrateSettings, plan_name: str | None,
                 types: Iterable[str] | None, stores: Iterable[str] | None, batch_size: int | None) -> None:
        self.forge = forge
        self.settings = settings
        self.plan = check_plan_name(plan_name, "--plan") if plan_name is not None else settings.plan
        handles = {h.name: h for h in forge.stores}
        wanted = list(stores) if stores else list(handles)
        unknown = [s for s in wanted if s not in handles]
        if unknown:
            raise ValidationError(f"--stores {', '.join(unknown)}: no such store (configured: {', '.join(handles)})")
        self.stores = {s: handles[s].adapter for s in wanted}
        keyed = [t for t, d in forge.types.items() if d.key]
        chosen = list(types) if types else keyed
        bad = [t for t in chosen if t not in keyed]
        if bad:
            raise ValidationError(f"--types {', '.join(bad)}: not a [types.NAME] with key fields (declared with key "
                                  f"fields: {', '.join(keyed) or 'none'})")
        if not chosen:
            raise ValidationError("no entity type to migrate: declare [types.NAME] key = [...] for each")
        self.types = chosen
        self.source = forge.source.adapter
        self.source_name = forge.source.name
        self.batch = batch_size or forge.settings.batch_size

    def old_id_field(self, store: str) -> str:
        spec = self.settings.old_id.get(store, "")
        return spec[6:] if spec.startswith("field:") else ""

    def references(self, entity_type: str) -> dict[str, str]:
        return self.settings.references.get(entity_type, {})

    def selected(self, mappings: list[Mapping]) -> list[Mapping]:
        return [m for m in mappings if m.store in self.stores and m.entity_type in self.types]

    def save_state(self, state: PlanState) -> None:
        mm.save_state(self.source, state)

    def load(self) -> tuple[list[Mapping], PlanState]:
        mappings, state = mm.load(self.source, self.plan)
        if state is None or not state.planned_at:
            raise MigrationRefusedError(f"migration plan {self.plan!r} has not been made: run 'uuid-forge migrate "
                                        "plan' first")
        return mappings, state
