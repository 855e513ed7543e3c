"""The main job, end to end: write-through, plant one inconsistency of each class, audit, repair, audit.

With no configuration it runs on embedded stores that need no server: SQLite as the source of
truth, the filesystem, and an in-process memory store. With a config file the same job runs
against real servers, in entity types of its own (``demo_user``, ``demo_order``) that it removes
afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audit import AuditReport
from .contract import DELETE, WRITE, Adapter
from .entitytypes import EntityType
from .forge import Forge, StoreHandle
from .ids import IDConfig, Namespace
from .journal import Journal
from .ownership import Prover
from .precedence import SALT_ENV
from .record import Record
from .registry import open_store
from .report import WriteReport

USER, ORDER = "demo_user", "demo_order"

__all__ = ["DemoResult", "embedded_forge", "run_demo", "sample_entities"]


@dataclass
class DemoResult:
    """What each step of the demo produced."""

    write: WriteReport | None = None
    planted: list[tuple[str, str, str]] = field(default_factory=list)  # (store, class, id)
    first_audit: AuditReport | None = None
    repair: AuditReport | None = None
    final_audit: AuditReport | None = None

    @property
    def ok(self) -> bool:
        return bool(self.final_audit and self.final_audit.consistent and self.first_audit
                    and not self.first_audit.consistent)


def sample_entities(users: int = 1000, orders: int = 500) -> list[tuple[str, Any, dict[str, Any]]]:
    """A small, deterministic dataset: users keyed by email, orders keyed by region and number."""
    out: list[tuple[str, Any, dict[str, Any]]] = []
    for i in range(users):
        email = f"user{i}@example.com"
        out.append((USER, {"email": email}, {"email": email, "name": f"User {i}", "tier": ["free", "pro"][i % 2]}))
    for i in range(orders):
        out.append((ORDER, {"region": ["EUR", "USD"][i % 2], "number": i},
                    {"total": round(10 + i * 1.25, 2), "items": [{"sku": f"SKU-{i % 7}", "qty": 1 + i % 3}]}))
    return out


def embedded_forge(directory: str) -> Forge:
    """SQLite (source) + files + memory, all under ``directory``."""
    root = Path(directory)
    handles = [
        StoreHandle("sqlite", open_store(f"sqlite:///{root / 'source.sqlite3'}"), source=True),
        StoreHandle("files", open_store(f"file://{root / 'files'}")),
        StoreHandle("memory", open_store("memory://"), required=False),
    ]
    return Forge(handles, ids=IDConfig(namespace=Namespace("demo.uuid-forge.dev"), salt=os.environ.get(
        SALT_ENV, "")), journal=Journal(root / "journal.sqlite3"))


def _plant_malformed_file(adapter: Adapter, record: Record) -> bool:
    """Rename a record's file to an uppercase name: the wrong encoding for a case-safe store."""
    root = getattr(adapter, "root", None)
    if root is None:
        return False
    for path in Path(root, record.entity_type).rglob(f"{record.id}.json"):
        path.rename(path.with_name(f"{str(record.id).upper()}.json"))
        return True
    return False


def plant(forge: Forge, records: list[Record]) -> list[tuple[str, str, str]]:
    """One missing, one orphan, one stale and (where the store can hold one) one malformed record."""
    planted = []
    users = [r for r in records if r.entity_type == USER]
    for n, h in enumerate(forge.stores[1:]):
        a = h.adapter
        if WRITE not in a.capabilities or DELETE not in a.capabilities or a.append_only:
            continue
        missing, stale, wrong = users[3 * n], users[3 * n + 1], users[3 * n + 2]
        a.delete_many(USER, [missing.id])
        planted.append((h.name, "missing", str(missing.id)))
        # a user of ours the source no longer has: its email (the key) rebuilds its ID, so it is provably ours
        ghost = {"email": "ghost@example.com"}
        orphan = Record(USER, forge.id_for(USER, ghost), dict(ghost), ghost)
        a.put_many([orphan])
        planted.append((h.name, "orphan", str(orphan.id)))
        a.put_many([Record(USER, stale.id, {**stale.data, "name": "edited behind our back"}, stale.key)])
        planted.append((h.name, "stale", str(stale.id)))
        if _plant_malformed_file(a, wrong):
            planted.append((h.name, "malformed", str(wrong.id)))
    return planted


def run_demo(forge: Forge, say: Callable[[str], None] = print, users: int = 1000, orders: int = 500,
             progress: Callable[[int], None] | None = None) -> DemoResult:
    """Write, plant, audit, repair, audit again; ``say`` narrates each step."""
    result = DemoResult()
    if USER not in forge.types:  # the demo's users hold their key field: declared, their entries are provably ours
        forge.types[USER] = EntityType(USER, key=("email",))
        forge.prover = Prover(forge.generator, forge.types)
    entities = sample_entities(users, orders)
    say(f"1. write-through: {len(entities)} entities ({users} {USER}, {orders} {ORDER}) to "
        f"{', '.join(f'{h.name} ({h.role})' for h in forge.stores)}")
    result.write = forge.write_many(entities, progress=progress)
    records = forge.records(entities)
    say("2. plant one inconsistency of each class in every store but the source")
    result.planted = plant(forge, records)
    say("3. audit every store against the source of truth")
    own = [USER, ORDER]  # never the rest of a real database the config points at
    result.first_audit = forge.audit(own)
    say("4. repair from the source (orphans deleted too)")
    result.repair = forge.audit(own, repair=True, delete_orphans=True)
    say("5. audit again")
    result.final_audit = forge.audit(own)
    return result


def cleanup(forge: Forge) -> None:
    """Remove the demo's entity types from every store that can delete."""
    for h in forge.stores:
        if DELETE in h.adapter.capabilities and not h.adapter.append_only:
            for et in (USER, ORDER):
                ids = [i for i, _ in h.adapter.scan(et) if isinstance(i, uuid.UUID)]
                h.adapter.delete_many(et, ids)


def temp_dir() -> str:
    return tempfile.mkdtemp(prefix="uuid-forge-demo-")


def remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
