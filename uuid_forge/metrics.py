"""``--metrics FILE``: what a scheduled run did, for node_exporter's textfile collector.

Why a file and not a push: a cron job is gone before anything can scrape it, and node_exporter's
textfile collector is the usual way to expose such a job. The file is Prometheus text
exposition produced by ``prometheus_client`` (the ``metrics`` extra), written atomically (a
temporary file beside it, then a rename: the collector never reads half a file) and never
through a symlink (see :mod:`uuid_forge.privatefile`). It is mode 0644, since node_exporter
runs as another user: it holds counts, store names and entity type names, never data or URLs.

A run writes its file whatever its outcome, a failed one too (exit 2, before a store was read):
alerting must see it. ``uuid_forge_<command>_last_success_timestamp_seconds`` is the time of the
last successful run (exit 0: an audit that finished and found every store consistent, a write
that reached every required store, a replay that left nothing pending); a run that fails keeps
the value the previous file held, so ``time() - last_success`` grows until a run succeeds again.

Metric names (``<command>`` is ``audit``, ``write``, ``replay`` or ``delete``; every audit series also has
the labels ``entity_type`` and ``partition``, ``*`` for all, so two audits of different scopes
on one machine never collide)::

    uuid_forge_audit_findings{store, class}            records per store and class (ok, missing,
                                                       orphan, stale, malformed, foreign,
                                                       unproven, deleted)
    uuid_forge_audit_entities                          source records audited
    uuid_forge_audit_store_audited{store}              1 audited, 0 left out (an optional store down)
    uuid_forge_audit_partitions                        ID-range partitions read
    uuid_forge_audit_hashed{store, counter}            per store compared by hashes computed in the
                                                       stores: hashed_ranges, hashed_records (settled
                                                       by the hashes), read_ranges, read_records
    uuid_forge_audit_repaired_records{store, action}   with --repair --apply
    uuid_forge_<write|replay|delete>_entities          (a delete --erase or --purge-expired run: only
                                                       the series below, for the run as a whole)
    uuid_forge_<write|replay|delete>_records{store, outcome}  written, deleted, unproven, pending,
                                                       dead_letter, not_written
    uuid_forge_<command>_duration_seconds
    uuid_forge_<command>_journal_pending_entries{store}
    uuid_forge_<command>_journal_dead_letters{store}
    uuid_forge_<command>_exit_status                   0, 1 or 2, as the command's exit code
    uuid_forge_<command>_last_run_timestamp_seconds
    uuid_forge_<command>_last_success_timestamp_seconds  0 until a run succeeds
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import DriverMissingError
from .privatefile import check_folder, refuse_link, write_private

if TYPE_CHECKING:
    from .forge import Forge
    from .report import AuditReport, WriteReport

__all__ = ["COMMANDS", "MetricsRun", "attach", "metrics_option", "read_value", "record", "render"]

COMMANDS = ("audit", "write", "replay", "delete")
PREFIX = "uuid_forge"
MODE = 0o644  # node_exporter reads it as another user; it holds no data
_current: contextvars.ContextVar[MetricsRun | None] = contextvars.ContextVar("uuid_forge_metrics", default=None)


def require() -> None:
    """Fail before any work when ``prometheus_client`` is missing, naming the extra to install."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise DriverMissingError("--metrics needs the prometheus_client package: "
                                 "pip install 'uuid-forge[metrics]'") from None


class MetricsRun:
    """What one command run gathers for its metrics file: its reports, journal counts, exit status."""

    def __init__(self, command: str, path: str, scope: dict[str, str] | None = None) -> None:
        if command not in COMMANDS:
            raise ValueError(f"metrics: unknown command {command!r}")
        self.command, self.path = command, path
        self.scope = dict(scope or {})  # constant labels on every series (the audit's entity type, partition)
        self.started = time.time()
        self._clock = time.perf_counter()
        self.report: Any = None
        self.repaired: AuditReport | None = None
        self.stores: list[str] = []
        self.journal_path: str | None = None
        self.pending: dict[str, int] | None = None
        self.dead: dict[str, int] | None = None

    def attach(self, forge: Forge) -> None:
        """Remember the stores and the journal; the journal is read again once the run is over."""
        self.stores = [h.name for h in forge.stores]
        self.journal_path = os.fspath(forge.journal.path) if forge.journal is not None else None

    def record(self, report: AuditReport | WriteReport, repaired: AuditReport | None = None) -> None:
        self.report, self.repaired = report, repaired

    def _read_journal(self) -> None:
        """Pending entries and dead letters as the run left them (the forge is closed by now)."""
        if self.journal_path is None or self.pending is not None or not os.path.isfile(self.journal_path):
            return
        from .journal import Journal

        journal = Journal(self.journal_path)
        try:
            self.pending, self.dead = journal.pending_counts(), journal.dead_letter_counts()
        finally:
            journal.close()

    def render(self, status: int) -> str:
        """The exposition text for a run that ended with exit ``status``."""
        with contextlib.suppress(Exception):  # a journal that cannot be read leaves its series out
            self._read_journal()
        now = time.time()
        previous = read_value(self.path, f"{PREFIX}_{self.command}_last_success_timestamp_seconds", self.scope)
        return render(self.command, status=status, report=self.report, repaired=self.repaired,
                      seconds=time.perf_counter() - self._clock, now=now,
                      last_success=now if status == 0 else (previous or 0.0), stores=self.stores,
                      pending=self.pending, dead=self.dead, scope=self.scope)

    def write(self, status: int) -> None:
        write_private(self.path, self.render(status), "--metrics", mode=MODE)


def render(command: str, *, status: int, report: Any = None, repaired: AuditReport | None = None,
           seconds: float = 0.0, now: float | None = None, last_success: float = 0.0,
           stores: list[str] | None = None, pending: dict[str, int] | None = None,
           dead: dict[str, int] | None = None, scope: dict[str, str] | None = None) -> str:
    """Prometheus text exposition of one run, built with prometheus_client (never by hand)."""
    require()
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    scope = dict(scope or {})
    registry = CollectorRegistry(auto_describe=True)
    base = list(scope)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Callable[..., None]:
        g = Gauge(f"{PREFIX}_{command}_{name}", doc, base + list(labels), registry=registry)

        def put(value: float, *values: str) -> None:
            labels = (*scope.values(), *values)
            (g.labels(*labels) if labels else g).set(value)
        return put

    if command == "audit" and report is not None:
        from .report import CLASSES

        final = repaired or report  # after a repair, what is left is what alerting must see
        findings = gauge("findings", "Records per store and audit class (ok counts consistent records; "
                                     "foreign ones are not ours and never inconsistencies).", ("store", "class"))
        for store, counts in final.stores.items():
            for cls in CLASSES:
                findings(counts[cls], store, cls)
        audited = gauge("store_audited", "1 when the store was audited, 0 when it was left out (an optional "
                                         "store that did not answer).", ("store",))
        for store in final.stores:
            audited(1, store)
        for store in report.not_audited:
            audited(0, store)
        gauge("id_config_mismatches", "Entity types whose ID configuration (namespace, salt, secret) differs "
                                      "from the one the source was written with: a missing salt under cron shows "
                                      "here.")(len(report.id_config))
        gauge("entities", "Source records audited.")(sum(p[3] for p in final.partition_times))
        gauge("partitions", "ID-range partitions read.")(final.partitions)
        if report.hashed:
            from .report import HASHED

            hashed = gauge("hashed", "Per store compared by hashes computed in the stores: ranges and records "
                                     "settled by the hashes (hashed_*), and read record by record (read_*).",
                           ("store", "counter"))
            for store, counts in report.hashed.items():
                for counter in HASHED:
                    hashed(counts[counter], store, counter)
        if report.repaired:
            fixed = gauge("repaired_records", "Records a repair rewrote or deleted, per store and action.",
                          ("store", "action"))
            for store, counts in report.repaired.items():
                for action, n in counts.items():
                    fixed(n, store, action)
    elif command in ("write", "replay", "delete") and report is not None:
        gauge("entities", "Entities in the run.")(report.entities)
        records = gauge("records", "Records per store and outcome (written; deleted; unproven: left, not proven "
                                   "ours; pending: left in the journal; dead_letter: refused for good; "
                                   "not_written: the source refused them).",
                        ("store", "outcome"))
        for store, s in report.stores.items():
            for outcome, n in (("written", s.written), ("deleted", s.deleted), ("unproven", s.unproven),
                               ("pending", s.pending), ("dead_letter", s.dead_letters),
                               ("not_written", s.not_written)):
                records(n, store, outcome)
        if command == "write":
            gauge("refused_deleted", "Records refused because their entity was deleted (a tombstone; "
                                     "write --recreate writes them).")(report.refused_deleted)
    names = list(dict.fromkeys([*(stores or []), *(pending or {}), *(dead or {})]))
    if pending is not None:
        owed = gauge("journal_pending_entries", "Journal entries still owed to each store after the run.", ("store",))
        for store in names:
            owed(pending.get(store, 0), store)
    if dead is not None:
        refused = gauge("journal_dead_letters", "Dead letters in the journal per store (records a store "
                                                "refused for good).", ("store",))
        for store in names:
            refused(dead.get(store, 0), store)
    gauge("duration_seconds", "Wall-clock time of the run.")(round(seconds, 3))
    gauge("exit_status", "The run's exit code: 0 ok, 1 inconsistent or still pending, 2 failed.")(status)
    gauge("last_run_timestamp_seconds", "When the run ended (Unix time).")(round(now if now is not None else
                                                                                  time.time(), 3))
    gauge("last_success_timestamp_seconds", "When a run last succeeded (Unix time; 0: never). A failed run "
                                            "keeps the previous value.")(round(last_success, 3))
    return generate_latest(registry).decode("utf-8")


def read_value(path: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of ``name`` (with ``labels``) in an existing metrics file, or None.

    Read without following a symlink; a file that is missing or does not parse gives None.
    """
    from prometheus_client.parser import text_string_to_metric_families

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as fh:
            text = fh.read(1 << 20).decode("utf-8", "replace")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in (labels or {}).items()):
                    return float(sample.value)
    except (OSError, ValueError, TypeError):
        return None
    return None


def attach(forge: Forge) -> None:
    """Called when a command opens its forge: the current run (if any) learns its stores and journal."""
    run = _current.get()
    if run is not None:
        run.attach(forge)


def record(report: AuditReport | WriteReport, repaired: AuditReport | None = None) -> None:
    """Called by a command once it has its report (``repaired``: the audit after a repair)."""
    run = _current.get()
    if run is not None:
        run.record(report, repaired)


def _status(error: BaseException) -> int:
    import click

    if isinstance(error, click.exceptions.Exit):
        return int(error.exit_code)
    if isinstance(error, click.ClickException):
        return int(error.exit_code)
    if isinstance(error, KeyboardInterrupt):
        return 130
    return 2


def metrics_option(command: str, scope: Callable[[dict[str, Any]], dict[str, str]] | None = None
                   ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--metrics FILE`` to a click command; the file is written however the command ends.

    ``scope`` turns the command's parameters into constant labels. Put it under ``@cli.command``.
    """
    import click

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def run(*args: Any, metrics: str | None = None, **kwargs: Any) -> Any:
            if metrics is None:
                return f(*args, **kwargs)
            require()  # before any work: a missing extra is a plain error, exit 2
            refuse_link(metrics, "--metrics")
            check_folder(metrics, "--metrics")
            current = MetricsRun(command, metrics, scope(kwargs) if scope else None)
            token = _current.set(current)
            status = 0
            try:
                return f(*args, **kwargs)
            except BaseException as error:
                status = _status(error)
                partial = getattr(error, "report", None)
                if current.report is None and partial is not None:  # a failed write still says what it did
                    current.record(partial)
                raise
            finally:
                _current.reset(token)
                try:
                    current.write(status)
                except Exception as failure:  # the run's own error comes first
                    if status == 0:
                        raise
                    click.echo(f"uuid-forge: warning: --metrics {metrics} not written: {failure}", err=True)

        return click.option("--metrics", "metrics", default=None, metavar="FILE", type=click.Path(dir_okay=False),
                            help="Also write Prometheus metrics to FILE for node_exporter's textfile collector "
                                 "(atomic, mode 0644; needs the 'metrics' extra). Written on failure too.")(run)

    return decorate
