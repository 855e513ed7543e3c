"""Where partition and chunk tasks run: local processes (the default) or Celery workers.

Every task is ``run_task(config path, task name, payload) -> JSON`` (uuid_forge.tasks): the worker
opens its own Forge from the configuration, so a task carries no connection or object that would
not survive a process boundary. An audit without an executor runs its tasks in this process
(uuid_forge.partial.InProcessExecutor).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

from .errors import ExecutorError
from .partial import Done, Executor
from .precedence import ENV_PREFIX
from .tasks import close_forges, forge_for, run_task, unwrap

if TYPE_CHECKING:
    from .forge import Forge

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
        if h.adapter.process_local:
            return f"store {h.name!r} lives in this process only ({h.adapter.url().split(':', 1)[0]}:)"
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


__all__ = ["Done", "Executor", "LocalExecutor", "close_forges", "default_workers", "forge_for", "in_process_only",
           "make_executor", "run_task", "unwrap"]
