"""Progress bars with a rate, on stderr, so stdout stays clean for --json."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

_err = Console(stderr=True)


@contextmanager
def progress_bar(label: str, total: int | None, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n)``; shows ``label``, a bar, done/total and records per second."""
    if not enabled:
        yield lambda n: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
    with Progress(*columns, console=_err, transient=False, disable=not _err.is_terminal) as bar:
        task = bar.add_task(label, total=total, rate="")

        def advance(n: int) -> None:
            bar.advance(task, n)
            speed = bar.tasks[0].speed
            bar.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        yield advance


@contextmanager
def partition_progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int, int, int], None]]:
    """Yield ``update(done, total, entities, findings)`` for audits run as partition tasks: the bar
    counts partitions; entities per second and findings so far are shown beside it."""
    if not enabled:
        yield lambda *a: None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("partitions"),
               TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[findings]}"), TimeElapsedColumn()]
    with Progress(*columns, console=_err, transient=False, disable=not _err.is_terminal) as bar:
        task = bar.add_task(label, total=None, rate="", findings="")

        def update(done: int, total: int, entities: int, findings: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{entities / elapsed:,.0f} entities/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate, findings=f"{findings:,} findings")

        yield update
