"""Which entity types a full audit covers, and what it says of entries of the others.

A full audit (no ``--entity``) audits the types the source knows: the ones the configuration
declares (``[types.NAME]``) and the ones the source holds. A type that only another store holds
(an ``invoice`` directory among the files, ``invoice:`` keys in Redis) cannot be compared with the
source, and asking the source about it may be refused outright (the user's own table holds one
type). Such a type is not an error that stops the nightly audit of the others: it is a finding of
its own, ``stray_type``, one per store and type, with the number of entries and a few of their
names masked, and a message naming the store and ``--entity``. It is never repaired or deleted: it
is not proven ours, and the source has nothing to repair it from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .contract import SCAN, Adapter
from .errors import StoreError, UUIDForgeError, ValidationError
from .handles import StoreHandle, Stores
from .record import ForeignEntry, MalformedID
from .report import CLASSES, AuditReport, plural
from .urls import mask_text

__all__ = ["STRAY_SAMPLES", "Scope", "accepted", "audit_scope", "stray_findings"]

#: names kept per stray (store, type), masked: enough to recognise them, never their data
STRAY_SAMPLES = 5


@dataclass
class Scope:
    """What a full audit covers: ``types`` are audited; ``strays`` maps each other type to the
    stores holding it; ``warnings`` say which declared types the source refuses (not audited)."""

    types: list[str]
    strays: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def accepted(h: StoreHandle, entity_type: str) -> str | None:
    """None when the store ``h`` accepts ``entity_type``, else why not, naming the store."""
    try:
        h.adapter.check_entity_type(entity_type)
    except ValidationError as err:
        return refusal(h, entity_type, str(err))
    return None


def refusal(h: StoreHandle, entity_type: str, reason: str) -> str:
    """The message of a store refusing a type: which store (name, role, masked URL) and why."""
    reason = reason.replace(f"entity type {entity_type!r} is not accepted by this store: ", "")
    return (f"store {h.name!r} ({h.role}, {h.adapter.url()}) does not accept entity type {entity_type!r}: "
            f"{mask_text(reason)}")


def check_types(stores: Stores, types: Iterable[str]) -> None:
    """Raise ValidationError naming the store when a store refuses one of ``types`` (an audit of a
    type that --entity names, or the configuration declares): said before any task starts."""
    for entity_type in types:
        for h in stores.stores:
            why = accepted(h, entity_type)
            if why:
                hint = (" (audit the types it holds: run the audit without --entity, or name one of "
                        "its types)" if h.source else "")
                raise ValidationError(why + hint)


def _held(h: StoreHandle) -> list[str]:
    if SCAN not in h.adapter.capabilities:
        return []
    try:
        return h.adapter.entity_types()
    except StoreError:
        if h.required or h.source:
            raise
        return []  # an optional store that does not answer: reported as not audited elsewhere


def audit_scope(stores: Stores, declared: Iterable[str]) -> Scope:
    """The types a full audit covers (declared or held by the source, and accepted by it) and the
    strays: types only other stores hold."""
    source = stores.source
    held: dict[str, list[str]] = {}
    for h in stores.stores[1:]:
        for t in _held(h):
            held.setdefault(t, []).append(h.name)
    known = set(_held(source))
    warnings = []
    for t in declared:
        why = accepted(source, t)
        if why:
            warnings.append(f"declared type {t!r} ([types.{t}]) is not audited: {why}")
        else:
            known.add(t)
    if SCAN not in source.adapter.capabilities:  # it cannot list its types: those it accepts are audited
        known.update(t for t in held if accepted(source, t) is None)
    strays = {t: names for t, names in sorted(held.items()) if t not in known}
    return Scope(sorted(known), strays, warnings)


def _sample(h: StoreHandle, entity_type: str) -> tuple[int, list[str]]:
    """How many entries ``h`` holds of ``entity_type`` (ours, malformed or foreign) and a few of
    their names (each output masks them: uuid_forge.masking)."""
    count, samples = 0, list[str]()
    adapter: Adapter = h.adapter
    for item in adapter.scan(entity_type, include_malformed=True):
        ident = item[0]
        count += 1
        if len(samples) < STRAY_SAMPLES:
            raw = ident.raw if isinstance(ident, (MalformedID, ForeignEntry)) else str(ident)
            samples.append(mask_text(str(raw))[:100])  # masked for output by uuid_forge.masking
    return count, samples


def stray_findings(stores: Stores, scope: Scope, report: AuditReport) -> None:
    """Add one ``stray_type`` entry per store and stray type to ``report`` (counted in its store's
    ``stray_type`` column), each with the number of entries, masked samples and what to do."""
    source = stores.source
    handles = {h.name: h for h in stores.stores}
    for entity_type, names in scope.strays.items():
        for name in names:
            h = handles[name]
            try:
                count, samples = _sample(h, entity_type)
            except UUIDForgeError as err:
                if h.required:
                    raise
                report.not_audited.setdefault(name, mask_text(str(err)))
                continue
            if not count:
                continue
            report.stores.setdefault(name, Counter({k: 0 for k in CLASSES}))["stray_type"] += count
            report.stray_types.append(stray_entry(name, source.name, entity_type, count, samples))


def stray_entry(store: str, source: str, entity_type: str, count: int, samples: list[str]) -> dict[str, Any]:
    """One stray finding as the report and --json hold it."""
    message = (f"store {store!r} holds {plural(count, 'entry')} of entity type {entity_type!r}, which the source "
               f"{source!r} neither declares nor holds: not audited, never repaired or deleted. If the type is "
               f"yours, declare it ([types.{entity_type}]) in a source that holds it and audit it with "
               f"'uuid-forge audit --entity {entity_type}'; if not, move it out of {store!r}")
    return {"store": store, "entity_type": entity_type, "count": count, "samples": samples, "message": message}
