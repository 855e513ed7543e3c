"""Tasks as a worker runs them: ``run_task(config path, task name, payload) -> JSON``.

The worker opens its own Forge from the configuration (once per process, then reused), so a task
carries no connection or object that would not survive a process boundary. Errors come back as
data (class name and masked message) and are raised again by :func:`unwrap` on the coordinator,
so a worker's traceback never reaches the CLI. Used by both executors (uuid_forge.executors,
uuid_forge.celery), which import it and nothing of each other.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from typing import Any

from . import errors
from .backfill import write_chunk
from .errors import ExecutorError, UUIDForgeError
from .forge import Forge
from .partial import audit_partition, repair_findings
from .urls import mask_text

__all__ = ["TASKS", "Done", "close_forges", "forge_for", "run_task", "unwrap"]

#: the task functions by name: each takes this process's Forge and the task's JSON payload
TASKS: dict[str, Callable[..., Any]] = {"audit_partition": audit_partition, "repair_findings": repair_findings,
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


Done = Callable[[int, Any], None]
