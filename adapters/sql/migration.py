"""The in-place backfill of ``uuid-forge migrate`` in PostgreSQL: a shadow column per table.

A table whose primary key is a serial cannot hold a second row per entity beside the old one (its
unique constraints), so its migration is GitLab's: ``expand`` adds a new-ID column (``uuid``, NULL
allowed) and fills it in batches *inside the database* with the SQL function ``uuid_forge_id``
(uuid_forge.pgfunctions, installed by ``uuid-forge sql postgres --install``), no row through
Python; a reference column gets its own new column, filled by a join on the referenced table's
old key. ``contract`` makes the new column NOT NULL and UNIQUE and drops nothing; ``rollback``
drops only the columns ``expand`` created. Every statement is one batch in its own transaction,
so a kill loses at most one batch, which the next run fills again (``WHERE column IS NULL``).

Identifiers are quoted by the dialect; values are bound parameters (``hide_parameters``: never in
an error text).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from uuid_forge.canonical import canonical_str
from uuid_forge.errors import ValidationError
from uuid_forge.ids import canonical_name

from .extensions import extension_schemas

__all__ = ["ShadowColumns"]

_MARK = "\x01uuid-forge-value-{}\x01"  # a key value no real key holds: control characters


def name_parts(entity_type: str, fields: list[str], salt: str) -> tuple[list[str], list[str]] | None:
    """The uuid-forge/1 name of an object key with these fields cut around its values: the fields
    in the name's own member order, and the constant texts before, between and after the values.
    Built by Python's canonical form itself (member order, escaping, NFC), so the SQL that joins
    the parts to quoted plain values names exactly what ``generate`` names. None if a field's
    name or the salt holds a marker (then the jsonb path is taken)."""
    marks = {field: _MARK.format(i) for i, field in enumerate(fields)}
    name = canonical_name(entity_type, (), marks, salt)
    quoted = {field: canonical_str(mark) for field, mark in marks.items()}
    if any(name.count(q) != 1 for q in quoted.values()):
        return None
    order = sorted(fields, key=lambda f: name.index(quoted[f]))
    constants, rest = [], name
    for field in order:
        before, rest = rest.split(quoted[field], 1)
        constants.append(before)
    return order, [*constants, rest]


class ShadowColumns:
    """Shadow-column statements over one PostgreSQL database (an open SQL adapter's engine)."""

    def __init__(self, engine: sa.engine.Engine, schema: str | None = None) -> None:
        if engine.dialect.name != "postgresql":
            raise ValidationError(f"the in-place backfill needs PostgreSQL (its uuid_forge_id function), not "
                                  f"{engine.dialect.name}")
        self._engine = engine
        self._schema = schema
        self._quote = engine.dialect.identifier_preparer.quote

    def _t(self, table: str) -> str:
        return f"{self._quote(self._schema)}.{self._quote(table)}" if self._schema else self._quote(table)

    def _c(self, column: str) -> str:
        return self._quote(column)

    # -- what is there -----------------------------------------------------------------------
    def functions_installed(self) -> bool:
        return self._function_schema() is not None

    def _function_schema(self) -> str | None:
        """The schema ``uuid_forge_id`` was installed in (``--install --schema util``), the first on
        the search path when there are several; the backfill calls it qualified by it."""
        query = ("SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                 "WHERE p.proname = 'uuid_forge_id' ORDER BY array_position(current_schemas(false), n.nspname) "
                 "NULLS LAST LIMIT 1")
        with self._engine.connect() as conn:
            found = conn.execute(sa.text(query)).scalar()
        return None if found is None else str(found)

    def columns(self, table: str) -> dict[str, str]:
        """The table's columns and their types (empty: no such table)."""
        query = ("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :t"
                 + (" AND table_schema = :s" if self._schema else " AND table_schema = current_schema()"))
        with self._engine.connect() as conn:
            rows = conn.execute(sa.text(query), {"t": table, "s": self._schema}).all()
        return {str(r[0]): str(r[1]) for r in rows}

    def count(self, table: str, where: str = "TRUE") -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {self._t(table)} WHERE {where}")).scalar() or 0)

    def keyed(self, key: dict[str, str]) -> str:
        """The condition "every key column is set"."""
        return " AND ".join(f"{self._c(c)} IS NOT NULL" for c in key.values()) or "TRUE"

    def duplicates(self, table: str, key: dict[str, str]) -> int:
        """Rows beyond the first of each key value: two rows that would get one new ID."""
        cols = ", ".join(self._c(c) for c in key.values())
        query = (f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {self._t(table)} "
                 f"WHERE {self.keyed(key)} GROUP BY {cols} HAVING count(*) > 1) d")
        with self._engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar() or 0)

    # -- expand ------------------------------------------------------------------------------
    def add_column(self, table: str, column: str) -> bool:
        """Add the nullable ``uuid`` column; True when this call created it."""
        existing = self.columns(table)
        if not existing:
            raise ValidationError(f"table {table!r}: not found")
        if column in existing:
            if existing[column] != "uuid":
                raise ValidationError(f"table {table!r} column {column!r} exists and is {existing[column]}, not uuid")
            return False
        with self._engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {self._t(table)} ADD COLUMN {self._c(column)} uuid"))
        return True

    def id_expression(self, table: str, namespace: uuid.UUID, entity_type: str, key: dict[str, str], salt: str,
                      secret: str | None, alias: str = "") -> tuple[str, dict[str, Any]]:
        """The SQL expression computing a row's new ID from its key columns (``alias.``-qualified),
        and its bound parameters: the salt and the secret are parameters, never SQL text.

        Why two parts: with text key columns, a row whose values are all plain ASCII (no quote,
        backslash or control character) gets its name from the constant parts Python's own
        canonical form gives (``name_parts``) and its values in quotes, then one
        ``uuid_generate_v5``: no jsonb per row (the ID of an email 1.4 against 3.4 µs, the whole
        fill 1.3x faster). Any other row (NULL from the first part) takes ``uuid_forge_id`` on the
        key as jsonb, with its checks and errors."""
        pairs = ", ".join(f"'{f.replace(chr(39), chr(39) * 2)}', {alias}{self._c(c)}" for f, c in key.items())
        schema = self._function_schema()
        if schema is None:
            raise ValidationError("the uuid_forge_id SQL function is not installed: uuid-forge sql postgres --install")
        fn = f"{self._quote(schema)}."
        call = (f"{fn}uuid_forge_id_keyed(CAST(:ns AS uuid), :et, jsonb_build_object({pairs}), :salt, :secret)"
                if secret else f"{fn}uuid_forge_id(CAST(:ns AS uuid), :et, jsonb_build_object({pairs}), :salt)")
        params: dict[str, Any] = {"ns": str(namespace), "et": entity_type, "salt": salt}
        if secret:
            params["secret"] = secret
            return call, params
        fast = self.plain_id_expression(table, schema, entity_type, key, salt, alias)
        if fast is None:
            return call, params
        name, parts = fast
        return f"coalesce({name}, {call})", {**params, **parts}

    def plain_id_expression(self, table: str, schema: str, entity_type: str, key: dict[str, str], salt: str,
                            alias: str) -> tuple[str, dict[str, str]] | None:
        """``uuid_generate_v5(ns, name)`` with the name built from constant parts and each text key
        column in quotes when plain (else NULL, so the whole is NULL); None when a key column is
        not text, or the installed functions are older than ``uuid_forge_plain_text``."""
        types = self.columns(table)
        if not key or any(types.get(c) not in ("text", "character varying") for c in key.values()):
            return None
        parts = name_parts(entity_type, list(key), salt)
        if parts is None:
            return None
        plain = f"{self._quote(schema)}.uuid_forge_plain_text"
        with self._engine.connect() as conn:
            has_plain = conn.execute(sa.text("SELECT to_regprocedure(:f) IS NOT NULL"), {"f": f"{plain}(text)"}).scalar()
            ossp = extension_schemas(conn).get("uuid-ossp")  # as installed: quoted where it must be
        if not has_plain or ossp is None:
            return None
        order, constants = parts
        pieces = [":uf_part0"]
        for i, field in enumerate(order, start=1):
            pieces += [f"{plain}({alias}{self._c(key[field])})", f":uf_part{i}"]
        name = f"{ossp}.uuid_generate_v5(CAST(:ns AS uuid), {' || '.join(pieces)})"
        return name, {f"uf_part{i}": text for i, text in enumerate(constants)}

    def fill(self, table: str, pk: str, column: str, namespace: uuid.UUID, entity_type: str, key: dict[str, str],
             salt: str, secret: str | None, batch: int, progress: Callable[[int], None] | None = None) -> int:
        """Fill ``column`` where NULL and every key column is set, ``batch`` rows per transaction."""
        call, params = self.id_expression(table, namespace, entity_type, key, salt, secret)
        t, c = self._t(table), self._c(column)

        def todo(r: str) -> str:
            return " AND ".join([f"{r}{c} IS NULL", *(f"{r}{self._c(k)} IS NOT NULL" for k in key.values())])
        return self._walk(table, pk, batch, [(f"UPDATE {t} AS r SET {c} = {call} WHERE {{range}} AND {todo('r.')}",
                                              params)], todo, progress)

    def refresh(self, table: str, pk: str, column: str, namespace: uuid.UUID, entity_type: str,
                key: dict[str, str], salt: str, secret: str | None, batch: int) -> int:
        """Recompute ``column`` where it is set and its key columns now give another ID (a key
        column edited after it was filled), or no ID (a key column emptied: back to NULL), over
        the table in ranges of ``batch`` primary keys, one transaction each; how many rows changed."""
        call, params = self.id_expression(table, namespace, entity_type, key, salt, secret)
        t, c, keyed = self._t(table), self._c(column), self.keyed(key)
        return self._walk(table, pk, batch, [
            ((f"UPDATE {t} AS r SET {c} = {call} WHERE {{range}} AND {c} IS NOT NULL AND {keyed} "
              f"AND {c} IS DISTINCT FROM {call}"), params),
            (f"UPDATE {t} AS r SET {c} = NULL WHERE {{range}} AND {c} IS NOT NULL AND NOT ({keyed})", {})])

    def stale(self, table: str, column: str, namespace: uuid.UUID, entity_type: str, key: dict[str, str],
              salt: str, secret: str | None) -> int:
        """Rows whose ``column`` is set but not what their key columns give now (contract's last check)."""
        call, params = self.id_expression(table, namespace, entity_type, key, salt, secret)
        c, keyed = self._c(column), self.keyed(key)
        query = (f"SELECT count(*) FROM {self._t(table)} WHERE {c} IS NOT NULL AND "
                 f"(NOT ({keyed}) OR {c} IS DISTINCT FROM {call})")
        with self._engine.connect() as conn:
            return int(conn.execute(sa.text(query), params).scalar() or 0)

    def fill_reference(self, table: str, pk: str, ref: str, column: str, target: str, target_pk: str,
                       target_column: str, batch: int, progress: Callable[[int], None] | None = None) -> int:
        """Fill ``column`` (the reference's new ID) from the referenced row's new ID, joined on the
        old key. A row whose referenced row has no new ID yet is passed over, not chosen again."""
        c, rc = self._c(column), self._c(ref)

        def todo(r: str) -> str:
            return f"{r}{c} IS NULL AND {r}{rc} IS NOT NULL"
        update = (f"UPDATE {self._t(table)} AS r SET {c} = g.{self._c(target_column)} FROM {self._t(target)} AS g "
                  f"WHERE {{range}} AND {todo('r.')} AND r.{rc} = g.{self._c(target_pk)} "
                  f"AND g.{self._c(target_column)} IS NOT NULL")
        return self._walk(table, pk, batch, [(update, {})], todo, progress)

    def refresh_reference(self, table: str, pk: str, ref: str, column: str, target: str, target_pk: str,
                          target_column: str, batch: int) -> int:
        """Recompute a filled reference column that no longer matches: the referenced row's new ID
        changed (its key edited), the reference was pointed at another row, or emptied (NULL)."""
        r, g = self._t(table), self._t(target)
        c, rc, gp, gc = self._c(column), self._c(ref), self._c(target_pk), self._c(target_column)
        return self._walk(table, pk, batch, [
            ((f"UPDATE {r} AS r SET {c} = g.{gc} FROM {g} AS g WHERE {{range}} AND r.{c} IS NOT NULL "
             f"AND r.{rc} = g.{gp} AND g.{gc} IS NOT NULL AND r.{c} IS DISTINCT FROM g.{gc}"), {}),
            ((f"UPDATE {r} AS r SET {c} = NULL WHERE {{range}} AND r.{c} IS NOT NULL AND NOT EXISTS "
             f"(SELECT 1 FROM {g} AS g WHERE g.{gp} = r.{rc} AND g.{gc} IS NOT NULL)"), {}),
        ])

    def stale_references(self, table: str, ref: str, column: str, target: str, target_pk: str,
                         target_column: str) -> int:
        """Rows whose filled reference column is not the new ID of the row their old reference names,
        or names no row at all. A named row without a new ID yet is left out: that row is reported
        as not expanded, and the next expand fills both."""
        c, rc, gp, gc = self._c(column), self._c(ref), self._c(target_pk), self._c(target_column)
        query = (f"SELECT count(*) FROM {self._t(table)} AS r LEFT JOIN {self._t(target)} AS g ON g.{gp} = r.{rc} "
                 f"WHERE r.{c} IS NOT NULL AND (g.{gp} IS NULL OR (g.{gc} IS NOT NULL AND g.{gc} <> r.{c}))")
        with self._engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar() or 0)

    def _walk(self, table: str, pk: str, batch: int, statements: list[tuple[str, dict[str, Any]]],
              chosen: Callable[[str], str] | None = None, progress: Callable[[int], None] | None = None) -> int:
        """Run ``statements`` (the table aliased ``r``, ``{range}`` their primary-key range) over the
        table, one range per transaction: each range ends at the ``batch``-th row after the last
        bound where ``chosen`` holds (``chosen(prefix)``: the condition, columns prefixed; every
        row when None), read by an index range scan. So a fill never reads again the rows an
        earlier batch filled (choosing "the first N still NULL" from the start each time does, and
        costs the whole fill a square), and a row a statement leaves (a reference to a row without
        a new ID) is passed over, not chosen again. A kill loses at most the range in flight; the
        next run walks from the start, and the statements' conditions skip what is done. Returns
        how many rows the statements changed."""
        t, p = self._t(table), self._c(pk)
        bounds, ranged = {}, {}
        for first in (True, False):  # the first range has no lower bound: no "OR" the index must serve
            where = [*([] if first else [f"{p} > :last"]), *([chosen("")] if chosen else [])]
            bounds[first] = sa.text(f"SELECT count(*), max({p}) FROM (SELECT {p} FROM {t}"
                                    f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY {p} LIMIT :n) AS b")
            span = ("" if first else f"r.{p} > :last AND ") + f"r.{p} <= :upto"
            ranged[first] = [(sa.text(text.replace("{range}", span)), params) for text, params in statements]
        total, last = 0, None
        while True:
            first = last is None
            with self._engine.begin() as conn:  # one range, one transaction
                found, upto = conn.execute(bounds[first], {"last": last, "n": batch}).one()
                if not found:
                    return total
                n = sum(conn.execute(stmt, {**params, "last": last, "upto": upto}).rowcount or 0
                        for stmt, params in ranged[first])
            total += n
            if progress and n:
                progress(n)
            if found < batch:
                return total
            last = upto

    # -- verify ------------------------------------------------------------------------------
    def rows(self, table: str, pk: str, column: str, key: dict[str, str], batch: int
             ) -> Iterator[list[tuple[Any, Any, dict[str, Any]]]]:
        """(old key, new ID, key values) of the rows whose key columns are set, in pages by primary key."""
        cols = ", ".join(self._c(c) for c in key.values())
        last: Any = None
        while True:
            where = self.keyed(key) + ("" if last is None else f" AND {self._c(pk)} > :last")
            query = (f"SELECT {self._c(pk)}, {self._c(column)}, {cols} FROM {self._t(table)} WHERE {where} "
                     f"ORDER BY {self._c(pk)} LIMIT :n")
            with self._engine.connect() as conn:
                page = conn.execute(sa.text(query), {"last": last, "n": batch}).all()
            if not page:
                return
            yield [(r[0], r[1], dict(zip(key, r[2:], strict=True))) for r in page]
            last = page[-1][0]

    # -- contract and rollback ----------------------------------------------------------------
    def finish(self, table: str, column: str) -> None:
        """NOT NULL and UNIQUE on the new column (idempotent); nothing is dropped."""
        name = f"{table}_{column}_uf_unique"[:63]
        with self._engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {self._t(table)} ALTER COLUMN {self._c(column)} SET NOT NULL"))
            held = conn.execute(sa.text("SELECT count(*) FROM pg_constraint WHERE conname = :n"), {"n": name}).scalar()
            if not held:
                conn.execute(sa.text(f"ALTER TABLE {self._t(table)} ADD CONSTRAINT {self._c(name)} "
                                     f"UNIQUE ({self._c(column)})"))

    def drop_column(self, table: str, column: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {self._t(table)} DROP COLUMN IF EXISTS {self._c(column)}"))
