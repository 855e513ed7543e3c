"""The audit over an executor: :func:`uuid_forge.audit.audit` with its tasks on worker processes
or Celery. Kept for the callers that name it; the orchestrator itself is ``audit.audit``, the one
path every audit takes (docs/scaling.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .audit import AuditReport, Progress, audit
from .record import Partition

if TYPE_CHECKING:
    from .executors import Executor
    from .forge import Forge

__all__ = ["Progress", "audit_on"]


def audit_on(executor: Executor, forge: Forge, entity_type: str | Iterable[str] | None = None, *,
             partition: Partition | None = None, repair: bool = False, delete_orphans: bool = False,
             dry_run: bool = False, verify_keys: bool = False, max_findings: int = 100_000,
             max_delete: int | str | None = None, show_values: bool = False,
             progress: Progress | None = None, planned: list[dict[str, Any]] | None = None,
             hashed: bool | None = None) -> AuditReport:
    """A full audit whose partitions run on ``executor``; ``forge`` (this process's) is used for
    the plan, the ID-configuration check and the guard. ``progress`` is called after each task
    with (partitions done, of total, source entities, findings so far)."""
    return audit(forge, entity_type, partition=partition, repair=repair, delete_orphans=delete_orphans,
                 dry_run=dry_run, verify_keys=verify_keys, max_findings=max_findings, max_delete=max_delete,
                 show_values=show_values, executor=executor, task_progress=progress, planned=planned,
                 hashed=hashed)
