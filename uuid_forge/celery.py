"""Celery app and tasks (extra ``celery``): partition audits, repairs and backfill chunks on workers.

Start a worker with the configuration in UUID_FORGE_CONFIG (its [executor] broker and backend)::

    UUID_FORGE_CONFIG=/etc/uuid-forge.toml celery -A uuid_forge.celery worker --concurrency 2

Tasks follow Celery's conventions: named ``uuid_forge.<task>``, JSON in and out, acknowledged
late and rejected when their worker dies (so RabbitMQ hands the partition to another worker),
one message prefetched per process, results expiring after ``[executor] result_expires``.
A task is a pure function of the stores' data, so a re-run gives the same partial, and the merge
counts a partition once however many results arrive for it (uuid_forge.partial).

A task proves nothing by arriving: anyone who can publish to the broker can send one. So a worker
derives every store name from the IDs and re-proves each finding before a repair
(uuid_forge.tasks.repair_claimed), writes reports only under its own ``[executor] report_dir``
(a path in a task is ignored, with a log line), and puts no foreign names or data values in the
result backend (:func:`hidden`). The stores digest a task carries only catches a worker started
with another configuration; it is not a secret. On a broker others can publish to, sign the
messages (``[executor] signing_key``, ``signing_certificate``, ``signing_certs``: Celery's ``auth``
serializer), so a worker refuses any task not signed by a certificate it trusts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

from celery import Celery

from .errors import ExecutorError
from .masking import Masker
from .partial import finding_from_dict
from .precedence import CONFIG_ENV
from .settings import ExecutorSettings, load_settings
from .strays import audit_scope
from .tasks import Done, forge_for, run_task, unwrap
from .urls import mask_url

app = Celery("uuid_forge")
log = logging.getLogger("uuid_forge.celery")


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
    if settings.signed:
        _sign(settings, origin)
    return app


def _sign(settings: ExecutorSettings, origin: str) -> None:
    """Celery's message signing: tasks go out signed with this side's key and certificate, and
    only tasks signed by a certificate in ``signing_certs`` are accepted (an unsigned or forged
    one is refused before it is decoded). Results stay JSON: the backend is read, not published to."""
    for what, path in (("signing_key", settings.signing_key), ("signing_certificate", settings.signing_certificate),
                       ("signing_certs", settings.signing_certs)):
        if not os.path.exists(path):
            raise ExecutorError(f"{origin}: [executor] {what} {path}: no such file or directory")
    app.conf.update(task_serializer="auth", accept_content=["auth"], result_serializer="json",
                    result_accept_content=["json"], security_key=settings.signing_key,
                    security_certificate=settings.signing_certificate, security_cert_store=settings.signing_certs)
    try:
        app.setup_security(allowed_serializers=["json"], key=settings.signing_key,
                           cert=settings.signing_certificate, store=settings.signing_certs, serializer="json")
    except Exception as err:  # noqa: BLE001 Celery and cryptography raise their own: name the files, not the key
        raise ExecutorError(f"{origin}: [executor] message signing cannot be set up with signing_key "
                            f"{settings.signing_key}, signing_certificate {settings.signing_certificate}, "
                            f"signing_certs {settings.signing_certs}: {type(err).__name__}: {err}") from None


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
    if not isinstance(payload, dict):
        return {"error": "ValidationError", "message": f"task {name}: its payload is not a JSON object"}
    if name == "audit_partition" and payload.get("show_values"):
        log.warning("task %s asks for data values in its result: refused, results hold no values "
                    "(the audit goes on without them)", name)
        payload = {**payload, "show_values": False}
    return hidden(run_task(config, name, payload))


# -- what a result may hold -------------------------------------------------------------------------
def hidden(outcome: dict[str, Any]) -> dict[str, Any]:
    """A task's outcome as it may wait in the result backend: other applications' names masked
    as every output masks them (uuid_forge.masking: foreign samples, names in findings, quoted
    names in messages), data values left out, counts kept."""
    masker = Masker(show_values=False)
    if "error" in outcome:
        return {**outcome, "message": masker.detail(str(outcome.get("message", "")))}
    result = outcome.get("result")
    if not isinstance(result, dict):
        return outcome
    result = dict(result)
    if "foreign_samples" in result:  # a partition's partial (uuid_forge.partial.audit_partition)
        result["foreign_samples"] = {s: [[*t[:3], masker.sample(str(t[3]))] for t in v]
                                     for s, v in result["foreign_samples"].items()}
        result["findings"] = [[*f[:3], masker.finding(finding_from_dict(f[3])).to_dict()] for f in result["findings"]]
        result["warnings"] = [[*w[:3], masker.detail(str(w[3]))] for w in result["warnings"]]
    if "repair_errors" in result:
        result["repair_errors"] = [masker.detail(str(e)) for e in result["repair_errors"]]
    if "report" in result and isinstance(result.get("error"), str):  # a write chunk's
        result["error"] = masker.detail(result["error"])
    return {**outcome, "result": result}


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

        try:
            # the serializer named each time: Celery keeps the one of a task's first use (signed or not)
            result = group(_TASKS[task].s(self.stores, p) for p in payloads).apply_async(
                serializer=app.conf.task_serializer)
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
def _ignored_output(task: str, output: Any) -> None:
    if output is not None:
        log.warning("task %s names an output path: ignored, a worker writes reports only under its own "
                    "[executor] report_dir", task)


def report_path(config: str, now: datetime | None = None) -> str | None:
    """Where this worker writes a periodic audit's report: a new file under its own
    ``[executor] report_dir`` (None when it has none: the summary is the result only)."""
    folder = load_settings(config).executor.report_dir
    if not folder:
        return None
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")
    return os.path.join(folder, f"audit-{stamp}.json")


@app.task(name="uuid_forge.audit", **_OPTIONS)
def audit(entity_type: str | None = None, output: Any = None) -> dict[str, Any]:
    """Start a full audit without waiting on it: the partitions as a chord whose callback
    (``uuid_forge.merge_audit``) merges them and writes the report (JSON, 0600) under the worker's
    ``[executor] report_dir``. ``output`` is kept for old schedules and ignored: a task never
    names a path the worker writes to.

    For Celery beat: no worker slot is held while the partitions run. It reports only; a repair
    stays an operator's decision (``uuid-forge audit --executor celery --repair``).
    """
    from celery import chord

    from .partial import plan

    _ignored_output("uuid_forge.audit", output)
    forge = forge_for(_worker_config())
    types = [entity_type] if entity_type else audit_scope(forge, forge.types).types
    stores = _DIGESTS.setdefault(_worker_config(), stores_digest(load_settings(_worker_config())))
    tasks = plan(forge, types)
    chord(audit_partition.s(stores, {"task": t}) for t in tasks)(merge_audit.s(types, None, entity_type is None),
                                                                  serializer=app.conf.task_serializer)
    return {"partitions": len(tasks), "entity_types": types}


@app.task(name="uuid_forge.merge_audit", **_OPTIONS)
def merge_audit(outcomes: list[dict[str, Any]], types: list[str], output: Any = None,
                strays: bool = False) -> dict[str, Any]:
    """The chord's callback: merge the partials (each partition once), add the source warnings,
    and (``strays``: an audit of every type) the stray types, write the
    JSON report under ``[executor] report_dir`` (``output`` is ignored, as in :func:`audit`);
    returns its summary line, counts and the report's path."""
    import json

    from .partial import merge_all, to_report
    from .privatefile import write_private
    from .repair import source_is_empty, source_warnings
    from .strays import stray_findings

    _ignored_output("uuid_forge.merge_audit", output)
    forge = forge_for(_worker_config())
    report = to_report(merge_all([unwrap(o) for o in outcomes]), types)
    orphaned = {f.entity_type for f in report.findings if f.kind == "orphan" and f.store != forge.source.name}
    report.warnings += source_warnings(forge, report, {et for et in orphaned if source_is_empty(forge, et)})
    if strays:
        stray_findings(forge, audit_scope(forge, forge.types), report)
    payload = report.to_dict()
    payload["summary"] = str(report)
    path = report_path(_worker_config())
    if path:
        write_private(path, json.dumps(payload, indent=2, default=str), "[executor] report_dir")
    return {"summary": payload["summary"], "consistent": report.consistent, "stores": payload["stores"],
            "report": path}
