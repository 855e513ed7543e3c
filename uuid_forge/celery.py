"""Celery app and tasks (extra ``celery``): partition audits, repairs and backfill chunks on workers.

Start a worker with the configuration in UUID_FORGE_CONFIG (its [executor] broker and backend)::

    UUID_FORGE_CONFIG=/etc/uuid-forge.toml celery -A uuid_forge.celery worker --concurrency 2

Tasks follow Celery's conventions: named ``uuid_forge.<task>``, JSON in and out, acknowledged
late and rejected when their worker dies (so RabbitMQ hands the partition to another worker),
one message prefetched per process, results expiring after ``[executor] result_expires``.
A task is a pure function of the stores' data, so a re-run gives the same partial, and the merge
counts a partition once however many results arrive for it (uuid_forge.partial).
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

from .errors import ExecutorError
from .executors import Done, run_task
from .settings import ExecutorSettings, load_settings
from .urls import mask_url

CONFIG_ENV = "UUID_FORGE_CONFIG"

app = Celery("uuid_forge")


def configure(settings: ExecutorSettings, origin: str = "the configuration") -> Celery:
    """Point ``app`` at the [executor] broker and backend (both required)."""
    if not settings.broker or not settings.backend:
        raise ExecutorError(f"{origin}: [executor] needs broker = \"amqp://...\" and backend = \"redis://...\" "
                            "for Celery")
    app.conf.update(
        broker_url=settings.broker, result_backend=settings.backend, result_expires=settings.result_expires,
        task_serializer="json", result_serializer="json", accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True, task_track_started=True,
        worker_hijack_root_logger=False,
    )
    return app


def describe(settings: ExecutorSettings) -> str:
    """broker and backend as they may be printed (passwords masked)."""
    return f"broker {mask_url(settings.broker)}, backend {mask_url(settings.backend)}"


def _worker_config() -> str:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ExecutorError(f"a uuid-forge Celery worker needs {CONFIG_ENV} (the path of its uuid-forge.toml)")
    return path


if os.environ.get(CONFIG_ENV) and os.path.exists(os.environ[CONFIG_ENV]):  # a worker: configure at import
    configure(load_settings(os.environ[CONFIG_ENV]).executor, os.environ[CONFIG_ENV])

_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "bind": False}


def _checked(stores: list[str], name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``name`` on this worker's Forge after checking it names the coordinator's stores."""
    from .executors import forge_for

    config = _worker_config()
    mine = [h.name for h in forge_for(config).stores]
    if mine != stores:
        return {"error": "ExecutorError", "message": f"this worker's configuration ({config}) has stores {mine}, "
                                                     f"the coordinator's {stores}: start it with the same one"}
    return run_task(config, name, payload)


@app.task(name="uuid_forge.audit_partition", **_OPTIONS)
def audit_partition(stores: list[str], payload: dict[str, Any]) -> dict[str, Any]:
    return _checked(stores, "audit_partition", payload)


@app.task(name="uuid_forge.repair_findings", **_OPTIONS)
def repair_findings(stores: list[str], payload: dict[str, Any]) -> dict[str, Any]:
    return _checked(stores, "repair_findings", payload)


@app.task(name="uuid_forge.write_chunk", **_OPTIONS)
def write_chunk(stores: list[str], payload: dict[str, Any]) -> dict[str, Any]:
    return _checked(stores, "write_chunk", payload)


_TASKS = {"audit_partition": audit_partition, "repair_findings": repair_findings, "write_chunk": write_chunk}


class CeleryExecutor:
    """Tasks as a Celery group on the [executor] broker; results joined as they arrive (for the
    progress line) and forgotten once read. ``workers`` only sizes the repair groups here."""

    name = "celery"

    def __init__(self, config_path: str, workers: int, poll: float = 0.2) -> None:
        settings = load_settings(config_path)
        configure(settings.executor, config_path)
        self.stores = [s.name for s in settings.stores]
        self.workers = max(1, workers)
        self.poll = poll
        self.where = describe(settings.executor)

    def run(self, task: str, payloads: list[dict[str, Any]], done: Done | None = None) -> list[Any]:
        from celery import group

        from .executors import unwrap

        try:
            result = group(_TASKS[task].s(self.stores, p) for p in payloads).apply_async()
        except Exception as err:  # noqa: BLE001 kombu raises its own and socket errors: say where, never the password
            raise ExecutorError(f"cannot send tasks to Celery ({self.where}): {type(err).__name__}: "
                                f"{mask_url(str(err))}") from None
        out: list[Any] = [None] * len(payloads)
        waiting = dict(enumerate(result.results))
        try:
            while waiting:
                ready = [i for i, r in waiting.items() if r.ready()]
                for i in ready:
                    r = waiting.pop(i)
                    if r.failed():
                        raise ExecutorError(f"Celery task {task} #{i} failed: {type(r.result).__name__}: "
                                            f"{mask_url(str(r.result))}")
                    out[i] = unwrap(r.get(disable_sync_subtasks=False))
                    if done is not None:
                        done(i, out[i])
                if not ready:
                    time.sleep(self.poll)
        finally:
            try:
                result.forget()
            except Exception:  # noqa: BLE001 best effort: results expire anyway
                pass
        return out
