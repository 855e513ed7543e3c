"""Which entity a finding is about: its key fields beside the ID.

An operator paged about "missing 6f1c…" needs the business key (``email``, ``order_number``) to
act. Only findings are named, never consistent records, and at most :data:`NAMED_FINDINGS` of
them per audit task (where the partition's findings are made), so a clean audit pays nothing and
a bad one a few reads by ID: each finding's key comes from the source's record (the truth), or
from the store's record when the source lacks it (an orphan, read from its store only). The key
is kept as read; every output masks it unless ``--show-values`` (uuid_forge.masking), since a
key is often personal data.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .contract import READ, chunked
from .errors import UUIDForgeError
from .handles import Stores
from .ownership import Prover
from .record import Record, load_json
from .report import AuditReport
from .view import FULL, FieldView

__all__ = ["NAMED", "NAMED_FINDINGS", "name_findings"]

#: findings named per audit task at most (each costs a read by ID in the source, and for an orphan in its store)
NAMED_FINDINGS = 2000
#: the classes whose findings are named: entries of ours (an unproven entry's key is not ours to show)
NAMED = ("missing", "orphan", "stale", "malformed")


def _as_uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text) if len(text) == 36 else None
    except ValueError:
        return None


def _plain(value: Any) -> Any:
    """A key value as JSON holds it (a date, a decimal or a UUID as its text)."""
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def _key(prover: Prover, entity_type: str, record: Record | None, view: FieldView = FULL) -> Any:
    if record is None or record.unreadable:
        return None
    key = prover.key_of(entity_type, record, view)[0]
    if isinstance(key, Mapping):
        return {k: _plain(v) for k, v in key.items()}
    if isinstance(key, (list, tuple)):
        return [_plain(v) for v in key]
    return None if key is None else _plain(key)


def _from_text(entity_type: str, ident: uuid.UUID, text: Any) -> Record | None:
    """The record a message log's data text holds (its body: the data, or an envelope with
    ``data`` and ``key``); None when it is no JSON object."""
    try:
        body = load_json(text)
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict):
        return None
    if {"id", "entity_type", "data"} <= set(body) and isinstance(body["data"], dict):
        return Record(entity_type, ident, body["data"], body.get("key"))
    return Record(entity_type, ident, body)


def name_findings(stores: Stores, prover: Prover | None, report: AuditReport) -> None:
    """Set ``key`` on the report's findings of ours (the first NAMED_FINDINGS), read from the
    source, else from the finding's own store. A read that fails leaves the findings unnamed, with
    a warning: naming is a courtesy, never a reason for the audit to fail."""
    if prover is None or READ not in stores.source.adapter.capabilities:
        return
    handles = {h.name: h for h in stores.stores}
    wanted: dict[str, list[int]] = {}
    for n, f in enumerate(report.findings):
        if f.kind in NAMED and f.key is None and _as_uuid(f.id) is not None:
            wanted.setdefault(f.entity_type, []).append(n)
            if sum(len(v) for v in wanted.values()) >= NAMED_FINDINGS:
                break
    for entity_type, positions in wanted.items():
        try:
            for batch in chunked(positions, 500):
                # an orphan is not in the source (the audit just found so): its key is read from its store only
                ids = sorted({uuid.UUID(report.findings[n].id) for n in batch if report.findings[n].kind != "orphan"})
                truth = stores.source.adapter.get_many(entity_type, ids) if ids else {}
                keys = {i: _key(prover, entity_type, r) for i, r in truth.items()}
                by_store: dict[str, list[uuid.UUID]] = {}
                for n in batch:
                    f = report.findings[n]
                    ident = uuid.UUID(f.id)
                    if keys.get(ident) is None and f.store in handles and f.store != stores.source.name:
                        by_store.setdefault(f.store, []).append(ident)
                held: dict[tuple[str, uuid.UUID], Any] = {}
                for store, missing in by_store.items():
                    adapter = handles[store].adapter
                    if READ not in adapter.capabilities:
                        continue
                    for ident, record in adapter.get_many(entity_type, missing).items():
                        held[(store, ident)] = _key(prover, entity_type, record, adapter.view)
                for n in batch:
                    f = report.findings[n]
                    ident = uuid.UUID(f.id)
                    key = keys.get(ident)
                    if key is None:
                        key = held.get((f.store, ident))
                    if key is None and f.held is not None and f.store in handles:  # a log: the text it held
                        key = _key(prover, entity_type, _from_text(entity_type, ident, f.held),
                                   handles[f.store].adapter.view)
                    if key is not None:
                        report.findings[n] = replace(f, key=key)
        except UUIDForgeError as err:
            report.warnings.append(f"{entity_type}: key fields of the findings not named: {err}")
