"""Where partition and chunk tasks run: local processes (the default) or Celery workers.

Every task is ``run_task(config path, task name, payload) -> JSON``: the worker opens its own Forge
from the configuration (once per process, then reused), so a task carries no connection or
object that would not survive a process boundary. Errors come back as data (class name and
masked message) and are raised again here, so a worker's traceback never reaches the CLI.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, Protocol

from . import errors
from .errors import ExecutorError, UUIDForgeError
from .precedence import ENV_PREFIX
from .urls import mask_text

if TYPE_CHECKING:
    from .forge import Forge

_FORGES: dict[str, Forge] = {}


def forge_for(config_path: str) -> Forge:
    """This process's Forge for ``config_path``, opened on first use and kept for the next tasks."""
    forge = _FORGES.get(config_path)
    if forge is None:
        from .forge import Forge

        forge = _FORGES[config_path] = Forge.from_config(config_path)
        if len(_FORGES) == 1:
            atexit.register(close_forges)
    return forge


def close_forges() -> None:
    while _FORGES:
        _, forge = _FORGES.popitem()
        try:
            forge.close()
        except UUIDForgeError:
            pass


def _task_functions() -> dict[str, Callable[..., Any]]:
    from .backfill import write_chunk
    from .partial import audit_partition, repair_findings

    return {"audit_partition": audit_partition, "repair_findings": repair_findings, "write_chunk": write_chunk}


def run_task(config_path: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run task ``name`` on this process's Forge; a uuid-forge error is returned as ``{"error": ...}``."""
    try:
        return {"result": _task_functions()[name](forge_for(config_path), **payload)}
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


class Executor(Protocol):
    workers: int
    name: str

    def run(self, task: str, payloads: list[dict[str, Any]], done: Done | None = None) -> list[Any]:
        """Each payload's result, in order; ``done(i, result)`` as each finishes."""
        ...


def _adopt_environment(env: dict[str, str]) -> None:
    """In a worker process: exactly the coordinator's UUID_FORGE_* variables, none left from before."""
    for name in [n for n in os.environ if n.startswith(ENV_PREFIX)]:
        del os.environ[name]
    os.environ.update(env)


class LocalExecutor:
    """Tasks in ``workers`` separate processes (forkserver, else spawn): each store's scan and a
    message log's decoding get their own interpreter, so one GIL does not bound the audit."""

    name = "local"

    def __init__(self, config_path: str, workers: int) -> None:
        self.config_path = os.path.abspath(config_path)
        self.workers = max(1, workers)

    def run(self, task: str, payloads: list[dict[str, Any]], done: Done | None = None) -> list[Any]:
        method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
        results: list[Any] = [None] * len(payloads)
        # a forkserver keeps the environment it started with: give every worker this process's
        # current UUID_FORGE_* variables (the salt above all), or a worker could mint other IDs
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        with ProcessPoolExecutor(min(self.workers, len(payloads)) or 1, mp_context=multiprocessing.get_context(method),
                                 initializer=_adopt_environment, initargs=(env,)) as pool:
            pending = {pool.submit(run_task, self.config_path, task, p): i for i, p in enumerate(payloads)}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        i = pending.pop(fut)
                        results[i] = unwrap(fut.result())
                        if done is not None:
                            done(i, results[i])
            except BrokenProcessPool as err:
                raise ExecutorError(f"a local worker process died ({err}); the audit was not finished") from None
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
        return results


def default_workers() -> int:
    return os.cpu_count() or 1


def in_process_only(forge: Forge) -> str | None:
    """Why ``forge``'s stores cannot be opened again by another process (None when they can)."""
    for h in forge.stores:
        url = h.adapter.url()
        if url.startswith("memory:") or ":memory:" in url:
            return f"store {h.name!r} lives in this process only ({url.split(':', 1)[0]}:)"
    return None


def make_executor(kind: str, config_path: str, workers: int) -> Executor:
    if kind == "local":
        return LocalExecutor(config_path, workers)
    if kind == "celery":
        try:
            from .celery import CeleryExecutor
        except ImportError as err:
            raise ExecutorError(f"--executor celery needs Celery: pip install 'uuid-forge[celery]' ({err})") from None
        return CeleryExecutor(config_path, workers)
    raise ExecutorError(f"unknown executor {kind!r} (local or celery)")


__all__ = ["Executor", "LocalExecutor", "default_workers", "forge_for", "in_process_only", "make_executor",
           "run_task", "unwrap"]
