"""The phases of ``uuid-forge migrate`` for tables migrated in place (``[migrate.in_place.NAME]``).

A PostgreSQL table of the user's keyed by a serial cannot hold the new row beside the old one, so
it gets a shadow column (GitLab's way): ``expand`` adds it and fills it in the database with
``uuid_forge_id``, and fills a new column per reference by a join; ``verify`` recomputes every
row's ID in Python from its key columns and compares, and counts references left unfilled;
``contract`` makes the column NOT NULL and UNIQUE (nothing dropped); ``rollback`` drops only the
columns ``expand`` created. The SQL is the SQL adapter's (``Adapter.shadow_columns``,
adapters/sql/migration.py): no driver here. What each run created is kept in the plan's
checkpoints (``inplace/NAME``), so a resumed or rolled-back run knows.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from .errors import MigrationRefusedError, ValidationError
from .ids import IDConfig
from .migrationmap import PlanState, now
from .migrationrun import Outcome, Run
from .settings import InPlace

__all__ = ["check_contract", "contract", "expand", "plan", "rollback", "selected", "verify"]

Progress = Callable[[int], None] | None


def selected(run: Run) -> list[InPlace]:
    """The in-place tables of the types and stores this run covers."""
    return [p for p in run.settings.in_place.values() if p.entity_type in run.types and p.store in run.stores]


def _sql(run: Run, place: InPlace) -> Any:
    adapter = run.stores[place.store]
    opener = getattr(adapter, "shadow_columns", None)
    if opener is None:
        raise MigrationRefusedError(f"[migrate.in_place.{place.name}]: store {place.store!r} is no SQL store; an "
                                    "in-place migration needs PostgreSQL")
    try:
        return opener()
    except ValidationError as err:  # another SQL database: say which table of the config asked
        raise MigrationRefusedError(f"[migrate.in_place.{place.name}]: store {place.store!r}: {err}") from None


def _config(run: Run, place: InPlace) -> IDConfig:
    config = run.forge.id_config(place.entity_type)
    if config.scheme != "uuid-forge/1":
        raise MigrationRefusedError(f"[migrate.in_place.{place.name}]: the in-database ID function computes the "
                                    f"uuid-forge/1 scheme only, not {config.scheme}")
    return config


def _where(place: InPlace) -> str:
    return f"{place.store}/{place.table}"


def _mark(state: PlanState, place: InPlace) -> dict[str, Any]:
    return state.checkpoints.setdefault(f"inplace/{place.name}", {"created": [], "contracted": False})


def _problem(place: InPlace, kind: str, reason: str) -> dict[str, str]:
    """One problem of an in-place table, as :class:`Outcome` lists them: the whole table is the
    entry (its rows are counted, never named), so nothing needs masking."""
    return {"store": place.store, "type": place.entity_type, "entry": place.table, "problem": kind,
            "reason": reason}


def plan(run: Run, out: Outcome, leave_unmapped: bool) -> None:
    """Count rows, rows without key values (unmapped) and duplicate keys (collisions: the UNIQUE
    of contract would fail); check the ID function is installed."""
    for place in selected(run):
        sql = _sql(run, place)
        _config(run, place)
        where = _where(place)
        columns = sql.columns(place.table)
        if not columns:
            out.problem(None, place.store, place.table, "missing", "no such table", place.table)
            out.stopped = f"[migrate.in_place.{place.name}]: table {place.table!r} not found"
            continue
        absent = [c for c in [place.pk, *place.key.values(), *place.references] if c not in columns]
        if absent:
            out.stopped = f"[migrate.in_place.{place.name}]: table {place.table!r} has no column {', '.join(absent)}"
            continue
        if not sql.functions_installed():
            out.stopped = ("the uuid_forge_id SQL function is not installed in the database of store "
                           f"{place.store!r}: run 'uuid-forge sql postgres --install --store NAME -c CONFIG' first")
            continue
        rows = sql.count(place.table)
        keyed = sql.count(place.table, sql.keyed(place.key))
        out.count(where, place.entity_type, "rows (in place)", rows)
        out.count(where, place.entity_type, "to map", keyed)
        out.count(where, place.entity_type, "unmapped", rows - keyed)
        dups = sql.duplicates(place.table, place.key)
        out.count(where, place.entity_type, "collisions", dups)
        if dups:
            out.stopped = (f"{where}: {dups} rows share key values with another row (one new ID for two rows); "
                           "merge them first: an in-place table cannot leave one behind")
        if rows - keyed:
            if not leave_unmapped:
                out.stopped = out.stopped or (f"{where}: rows without key values: fix them, or pass "
                                              "--leave-unmapped (their new column stays NULL; contract is refused "
                                              "until they are fixed)")
            out.problems.append(_problem(place, "unmapped", f"{rows - keyed} rows without key values: the new column "
                                         "stays NULL there, and contract (NOT NULL) is refused until they are fixed"))


def expand(run: Run, out: Outcome, state: PlanState, dry_run: bool, progress: Progress) -> None:
    """Add the new columns (recorded as created) and fill them, new IDs first, then references."""
    places = selected(run)
    for place in places:
        sql, config, where = _sql(run, place), _config(run, place), _where(place)
        if dry_run:
            out.count(where, place.entity_type, "to fill", sql.count(place.table, sql.keyed(place.key)))
            continue
        mark = _mark(state, place)
        created = sql.add_column(place.table, place.column)
        if created:
            mark["created"] = sorted({*mark["created"], place.column})
            run.save_state(state)
        args = (place.table, place.pk, place.column, *_function_args(config, place))
        filled = sql.fill(*args, run.batch, progress)
        out.count(where, place.entity_type, "filled", filled)
        if not created:  # an earlier run filled it: rows whose key columns were edited since get their new ID
            out.count(where, place.entity_type, "refreshed (key columns changed)", sql.refresh(*args, run.batch))
        mark["expanded_at"] = now()
        run.save_state(state)
    for place in places:
        if dry_run:
            continue
        sql, where, mark = _sql(run, place), _where(place), _mark(state, place)
        for ref, (target_name, column) in place.references.items():
            target = run.settings.in_place[target_name]
            created = sql.add_column(place.table, column)
            if created:
                mark["created"] = sorted({*mark["created"], column})
                run.save_state(state)
            ref_args = (place.table, place.pk, ref, column, target.table, target.pk, target.column, run.batch)
            out.count(where, place.entity_type, f"references filled ({ref})", sql.fill_reference(*ref_args, progress))
            if not created:  # the reference, or the new ID of the row it names, changed since it was filled
                out.count(where, place.entity_type, f"references refreshed ({ref})", sql.refresh_reference(*ref_args))
        run.save_state(state)


def _function_args(config: IDConfig, place: InPlace) -> tuple[uuid.UUID, str, dict[str, str], str, str | None]:
    """What the in-database ID function takes besides the row: namespace, type, key columns, salt,
    secret (parameters of each statement, never SQL text)."""
    secret = config.secret.decode() if isinstance(config.secret, bytes) else config.secret
    namespace = config.namespace if isinstance(config.namespace, uuid.UUID) else config.namespace.uuid
    return namespace, place.entity_type, place.key, config.salt or "", secret


def verify(run: Run, out: Outcome) -> None:
    """Every keyed row's new ID recomputed in Python from its key columns and compared; rows left
    NULL and references left unfilled counted."""
    for place in selected(run):
        sql, where = _sql(run, place), _where(place)
        columns = sql.columns(place.table)
        if place.column not in columns:
            out.problems.append(_problem(place, "not expanded", f"no column {place.column!r}: run expand"))
            continue
        empty = sql.count(place.table, f"{place.column} IS NULL AND {sql.keyed(place.key)}")
        if empty:
            out.problems.append(_problem(place, "not expanded", f"{empty} keyed rows without a new ID: run expand "
                                         "(rows written since?)"))
        wrong = sql.count(place.table, f"{place.column} IS NOT NULL AND NOT ({sql.keyed(place.key)})")
        checked = 0
        for page in sql.rows(place.table, place.pk, place.column, place.key, run.batch):
            ids = run.forge.prover.ids_from_keys(place.entity_type, [k for _, _, k in page])
            for (_, held, _), expected in zip(page, ids, strict=True):
                checked += 1
                if held is not None and (expected is None or uuid.UUID(str(held)) != expected):
                    wrong += 1
        out.count(where, place.entity_type, "verified", checked - wrong)
        if wrong:
            out.problems.append(_problem(place, "differs", f"{wrong} rows hold a new ID their key columns do not "
                                         "give (a key column edited since expand, or another namespace or salt): "
                                         "run expand again"))
        for ref, (target_name, column) in place.references.items():
            if column not in columns:
                out.problems.append(_problem(place, "not expanded", f"no column {column!r}: run expand"))
                continue
            loose = sql.count(place.table, f"{ref} IS NOT NULL AND {column} IS NULL")
            if loose:
                out.problems.append(_problem(place, "reference", f"{loose} rows whose {ref} names no row with a "
                                             "new ID: run expand (rows written since?)"))
            stale = _stale_references(run, sql, place, ref, target_name, column)
            if stale:
                out.problems.append(_problem(place, "reference", f"{stale} rows whose {column} is not the new ID of "
                                             f"the row their {ref} names (edited since expand): run expand again"))


def _stale_references(run: Run, sql: Any, place: InPlace, ref: str, target_name: str, column: str) -> int:
    target = run.settings.in_place[target_name]
    if target.column not in sql.columns(target.table):
        return 0  # the referenced table is not expanded: counted there
    return int(sql.stale_references(place.table, ref, column, target.table, target.pk, target.column))


def check_contract(run: Run) -> None:
    """Refuse contract while a row has no new ID, or one its key columns no longer give, or a
    reference column that is not the new ID of the row it names: asked before contract starts,
    in the database (rows written or edited since verify passed are seen here)."""
    for place in selected(run):
        sql, where = _sql(run, place), _where(place)
        empty = sql.count(place.table, f"{place.column} IS NULL")
        if empty:
            raise MigrationRefusedError(f"{where}: contract refused: {empty} rows have no new ID ({place.column} is "
                                        "NULL: rows without key values, or written since verify); fix them, expand "
                                        "and verify again; nothing was changed")
        stale = sql.stale(place.table, place.column, *_function_args(_config(run, place), place))
        if stale:
            raise MigrationRefusedError(f"{where}: contract refused: {stale} rows hold a new ID ({place.column}) their "
                                        "key columns no longer give (edited since verify); expand and verify again; "
                                        "nothing was changed")
        for ref, (target_name, column) in place.references.items():
            stale = _stale_references(run, sql, place, ref, target_name, column)
            if stale:
                raise MigrationRefusedError(f"{where}: contract refused: {stale} rows whose {column} is not the new "
                                            f"ID of the row their {ref} names (edited since verify); expand and "
                                            "verify again; nothing was changed")


def contract(run: Run, out: Outcome, state: PlanState, dry_run: bool) -> None:
    """NOT NULL and UNIQUE on each new column (after :func:`check_contract`); nothing dropped."""
    for place in selected(run):
        sql, where = _sql(run, place), _where(place)
        out.count(where, place.entity_type, "NOT NULL + UNIQUE", 1)
        if not dry_run:
            sql.finish(place.table, place.column)
            _mark(state, place)["contracted"] = True
            run.save_state(state)


def rollback(run: Run, out: Outcome, state: PlanState, dry_run: bool) -> None:
    """Drop the columns expand created (never one that was there before)."""
    for place in reversed(selected(run)):
        sql, where, mark = _sql(run, place), _where(place), _mark(state, place)
        for column in list(mark["created"]):
            out.count(where, place.entity_type, "columns dropped", 1)
            if not dry_run:
                sql.drop_column(place.table, column)
                mark["created"] = [c for c in mark["created"] if c != column]
                run.save_state(state)
