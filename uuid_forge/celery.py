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

import contextlib
import os
import time
from typing import Any

from celery import Celery

from .errors import ExecutorError
from .executors import Done, run_task
from .precedence import CONFIG_ENV
from .settings import ExecutorSettings, load_settings
from .urls import mask_url

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
        worker_hijack_root_logger=False, task_default_queue=settings.queue,
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


def stores_digest(settings: Any) -> str:
    """A digest of the stores (names, roles, URLs with passwords masked, options, views): a worker
    started with another configuration must not audit other data under the same store names."""
    import hashlib
    import json

    shape = [[s.name, s.source, s.required, mask_url(s.url), sorted(s.options.items()), repr(s.view)]
             for s in settings.stores]
    return hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()[:16]


_DIGESTS: dict[str, str] = {}


def _checked(digest: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run ``name`` on this worker's Forge after checking its stores are the coordinator's."""
    config = _worker_config()
    if config not in _DIGESTS:
        _DIGESTS[config] = stores_digest(load_settings(config))
    if _DIGESTS[config] != digest:
        return {"error": "ExecutorError", "message": f"this worker's configuration ({config}) names other stores "
                                                     "than the coordinator's: give each configuration its own "
                                                     "[executor] queue, and start its workers with it"}
    return run_task(config, name, payload)


@app.task(name="uuid_forge.audit_partition", **_OPTIONS)
def audit_partition(stores: str, payload: dict[str, Any]) -> dict[str, Any]:
    return _checked(stores, "audit_partition", payload)


@app.task(name="uuid_forge.repair_findings", **_OPTIONS)
def repair_findings(stores: str, payload: dict[str, Any]) -> dict[str, Any]:
    return _checked(stores, "repair_findings", payload)


@app.task(name="uuid_forge.write_chunk", **_OPTIONS)
def write_chunk(stores: str, payload: dict[str, Any]) -> dict[str, Any]:
    return _checked(stores, "write_chunk", payload)


_TASKS = {"audit_partition": audit_partition, "repair_findings": repair_findings, "write_chunk": write_chunk}


class CeleryExecutor:
    """Tasks as a Celery group on the [executor] broker; results joined as they arrive (for the
    progress line) and forgotten once read. ``workers`` only sizes the repair groups here."""

    name = "celery"

    def __init__(self, config_path: str, workers: int, poll: float = 0.2) -> None:
        settings = load_settings(config_path)
        configure(settings.executor, config_path)
        self.stores = stores_digest(settings)
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
            with contextlib.suppress(Exception):  # best effort: results expire anyway
                result.forget()
        return out


# -- periodic audits (Celery beat) ------------------------------------------------------------------
@app.task(name="uuid_forge.audit", **_OPTIONS)
def audit(entity_type: str | None = None, output: str | None = None) -> dict[str, Any]:
    """Start a full audit without waiting on it: the partitions as a chord whose callback
    (``uuid_forge.merge_audit``) merges them and writes the report to ``output`` (JSON, 0600).

    For Celery beat: no worker slot is held while the partitions run. It reports only; a repair
    stays an operator's decision (``uuid-forge audit --executor celery --repair``).
    """
    from celery import chord

    from .audit import _all_types
    from .executors import forge_for
    from .partial import plan

    forge = forge_for(_worker_config())
    types = [entity_type] if entity_type else _all_types(forge)
    stores = _DIGESTS.setdefault(_worker_config(), stores_digest(load_settings(_worker_config())))
    tasks = plan(forge, types)
    chord(audit_partition.s(stores, {"task": t}) for t in tasks)(merge_audit.s(types, output))
    return {"partitions": len(tasks), "entity_types": types}


@app.task(name="uuid_forge.merge_audit", **_OPTIONS)
def merge_audit(outcomes: list[dict[str, Any]], types: list[str], output: str | None = None) -> dict[str, Any]:
    """The chord's callback: merge the partials (each partition once), add the source warnings,
    write the JSON report; returns its summary line and counts."""
    import json

    from .executors import forge_for, unwrap
    from .partial import merge_all, to_report
    from .privatefile import write_private
    from .repair import source_is_empty, source_warnings

    forge = forge_for(_worker_config())
    report = to_report(merge_all([unwrap(o) for o in outcomes]), types)
    orphaned = {f.entity_type for f in report.findings if f.kind == "orphan" and f.store != forge.source.name}
    report.warnings += source_warnings(forge, report, {et for et in orphaned if source_is_empty(forge, et)})
    payload = report.to_dict()
    payload["summary"] = str(report)
    if output:
        write_private(output, json.dumps(payload, indent=2, default=str), "--output")
    return {"summary": payload["summary"], "consistent": report.consistent, "stores": payload["stores"]}
