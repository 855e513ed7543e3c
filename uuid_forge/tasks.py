"""Tasks as a worker runs them: ``run_task(config path, task name, payload) -> JSON``.

The worker opens its own Forge from the configuration (once per process, then reused), so a task
carries no connection or object that would not survive a process boundary. Errors come back as
data (class name and masked message) and are raised again by :func:`unwrap` on the coordinator,
so a worker's traceback never reaches the CLI. Used by both executors (uuid_forge.executors,
uuid_forge.celery), which import it and nothing of each other.

A task proves nothing by arriving (docs/scaling.md): a repair task's findings are claims. The
worker acts only on what it proves again itself (:func:`repair_claimed`): store names derived by
its own adapters from the IDs (a wrongly encoded name only as its own scan finds it), each
finding re-read from the source and the store, the delete guard counted on its own source.
"""

from __future__ import annotations

import atexit
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import errors
from .backfill import write_chunk
from .compare import answering
from .errors import ExecutorError, UUIDForgeError
from .forge import Forge
from .handles import StoreSet
from .partial import Done, audit_partition, repair_findings
from .record import MalformedID
from .repair import as_uuid, build_plan, recheck, refuse_if_guarded
from .report import Finding
from .urls import mask_text

__all__ = ["TASKS", "Done", "close_forges", "forge_for", "repair_claimed", "run_task", "unwrap"]

log = logging.getLogger("uuid_forge.tasks")

#: what a finding's class asks a repair to do: a claim is acted on only when its re-read asks the same
_ACTION = {"missing": "rewrite", "stale": "rewrite", "orphan": "delete", "deleted": "delete",
           "malformed": "replace twin"}


def repair_claimed(forge: Forge, findings: list[Any], delete_orphans: bool = False, max_delete: Any = None,
                   counts: Any = None, fraction: Any = 1.0, stores: StoreSet | None = None) -> dict[str, Any]:
    """The repair task: ``findings`` are what the sender says it saw, so each is proven again here
    before anything is changed, and the repair then goes through uuid_forge.repair as in one process.

    * a claim names one of this worker's stores (not its source), a type and a canonical UUID;
      anything else is dropped;
    * a name the claim carries (``raw``) is never used: a wrongly encoded entry is acted on only
      as this worker's own scan of the store finds it for that ID; every other name is derived
      from the ID by the store's adapter;
    * each claim is re-read from the source and the store (uuid_forge.repair.recheck) and kept
      only when it still asks for the same action: an orphan must still be absent from the source
      and present in the store, a missing or stale record still in the source and behind;
    * the delete guard counts the source itself (``counts`` from the task is not used) and
      ``fraction`` can only narrow it.

    Returns what :func:`uuid_forge.partial.repair_findings` returns, plus ``not_proven``: counts
    (never names) of the claims dropped, by reason."""
    stores = stores if stores is not None else answering(forge)
    dropped: Counter[str] = Counter()
    claims = _claims(stores, findings, dropped)
    claims = _rederived(stores, claims, dropped)
    proven = _reread(stores, claims, dropped)
    if dropped:
        log.warning("repair task: %d of %d finding(s) not acted on, not proven by this worker (%s)",
                    sum(dropped.values()), len(findings) if isinstance(findings, list) else 0,
                    ", ".join(f"{n} {why}" for why, n in sorted(dropped.items())))
    share = float(fraction) if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) else 1.0
    share = min(max(share, 0.0), 1.0)
    try:
        refuse_if_guarded(build_plan(stores, proven, bool(delete_orphans), max_delete, None, share))
    except UUIDForgeError as err:
        return {"repaired": {}, "rechecked": {}, "not_proven": dict(dropped),
                "repair_errors": [f"repair of {len(proven)} finding(s) refused: {mask_text(str(err))}"]}
    done = repair_findings(forge, [f.to_dict() for f in proven], bool(delete_orphans), max_delete, {}, share,
                           stores=stores, rechecked=proven)
    return {**done, "not_proven": dict(dropped)}


def _claims(stores: StoreSet, findings: Any, dropped: Counter[str]) -> list[Finding]:
    """The well-formed claims on this worker's own stores, with nothing of the sender's but
    store, type, ID and class (``raw`` only as a flag: "a wrongly encoded entry of this ID")."""
    targets = {h.name for h in stores.stores[1:]}
    out: list[Finding] = []
    for f in findings if isinstance(findings, list) else []:
        if not isinstance(f, dict) or not all(isinstance(f.get(k), str) for k in ("store", "entity_type", "id", "class")):
            dropped["not a finding"] += 1
            continue
        ident = as_uuid(f["id"])
        if f["store"] not in targets:
            dropped["not one of this worker's stores"] += 1
        elif f["class"] not in _ACTION:
            dropped["not a class repair acts on"] += 1
        elif ident is None or str(ident) != f["id"]:
            dropped["not an ID"] += 1
        elif f["class"] == "malformed" and f.get("raw") is None:
            dropped["not a finding"] += 1
        else:
            out.append(Finding(f["store"], f["entity_type"], f["id"], f["class"],
                               raw="" if f.get("raw") is not None else None))
    return out


def _rederived(stores: StoreSet, claims: list[Finding], dropped: Counter[str]) -> list[Finding]:
    """Claims on a wrongly encoded entry (``raw`` set) replaced by this worker's own scan: one
    finding per entry the store holds for that ID in a wrong encoding, none when it holds none."""
    wanted: dict[tuple[str, str], set[str]] = {}
    for f in claims:
        if f.raw is not None:
            wanted.setdefault((f.store, f.entity_type), set()).add(f.id)
    if not wanted:
        return claims
    found: dict[tuple[str, str, str], list[str]] = {}
    handles = {h.name: h for h in stores.stores}
    for (store, entity_type), ids in wanted.items():
        for item, _ in handles[store].adapter.scan(entity_type, include_malformed=True):
            if isinstance(item, MalformedID) and item.id is not None and str(item.id) in ids:
                found.setdefault((store, entity_type, str(item.id)), []).append(item.raw)
    out: list[Finding] = []
    for f in claims:
        if f.raw is None:
            out.append(f)
            continue
        raws = found.get((f.store, f.entity_type, f.id), [])
        if not raws:
            dropped["no wrongly encoded entry of that ID in the store"] += 1
        out += [Finding(f.store, f.entity_type, f.id, f.kind, "found again by this worker's scan", raw) for raw in raws]
    return out


def _reread(stores: StoreSet, claims: list[Finding], dropped: Counter[str]) -> list[Finding]:
    """The claims re-read now (uuid_forge.repair.recheck), kept when they still ask for the same
    action; wrongly encoded entries are proven against the source right before their removal."""
    asked = {(f.store, f.entity_type, f.id, f.raw): _ACTION[f.kind] for f in claims}
    kept = []
    for f in recheck(stores, list(dict.fromkeys(claims))):
        if asked.get((f.store, f.entity_type, f.id, f.raw)) == _ACTION.get(f.kind):
            kept.append(f)
    gone = len(asked) - len(kept)
    if gone:
        dropped["no longer true when re-read"] += gone
    return kept


#: the task functions by name: each takes this process's Forge and the task's JSON payload
TASKS: dict[str, Callable[..., Any]] = {"audit_partition": audit_partition, "repair_findings": repair_claimed,
                                        "write_chunk": write_chunk}

_FORGES: dict[str, Forge] = {}


def forge_for(config_path: str) -> Forge:
    """This process's Forge for ``config_path``, opened on first use and kept for the next tasks."""
    forge = _FORGES.get(config_path)
    if forge is None:
        forge = _FORGES[config_path] = Forge.from_config(config_path)
        if len(_FORGES) == 1:
            atexit.register(close_forges)
    return forge


def close_forges() -> None:
    """Close every Forge this process opened for tasks (at exit)."""
    while _FORGES:
        _, forge = _FORGES.popitem()
        try:
            forge.close()
        except UUIDForgeError:
            pass


def run_task(config_path: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run task ``name`` on this process's Forge; a uuid-forge error is returned as ``{"error": ...}``."""
    try:
        return {"result": TASKS[name](forge_for(config_path), **payload)}
    except UUIDForgeError as err:
        return {"error": type(err).__name__, "message": mask_text(str(err))}
    except Exception as err:  # noqa: BLE001 a driver's own error: as data, masked, never a worker's traceback
        return {"error": "ExecutorError", "message": f"task {name} failed: {type(err).__name__}: {mask_text(str(err))}"}


def unwrap(outcome: dict[str, Any]) -> Any:
    """A task's result, or its error raised again here (as its own class when that takes a message)."""
    if "error" not in outcome:
        return outcome["result"]
    kind = getattr(errors, outcome["error"], None)
    if isinstance(kind, type) and issubclass(kind, UUIDForgeError):
        try:
            raise kind(outcome["message"])
        except TypeError:
            pass
    raise ExecutorError(outcome["message"])


