"""Range digests computed in the database: per ID range, the count and an exact sum of hash
slices of ``id-as-32-hex || data text`` (uuid_forge.rangehash), in one GROUP BY query.

Only our own per-type tables take part, with a data column that keeps the exact text the
fingerprint is computed from (``json`` on PostgreSQL, text elsewhere): a user table with typed
columns, a ``jsonb`` column or a view/projection holds other bytes than the canonical JSON, and
is audited by its records. Rows are grouped by the first hex digits of their ID, and the groups
summed into the asked ranges here; the WHERE clause keeps the ID index in use.

PostgreSQL and MariaDB hash with their own ``md5()`` (or sha1: MariaDB's ``SHA1()``, pgcrypto's
``digest(text, 'sha1')`` on PostgreSQL, for stores that can only hash by sha1, Redis) and sum two 60-bit slices exactly
(``sum(bigint)`` is numeric there, ``SUM`` of integers DECIMAL); SQLite gets a Python aggregate
registered on the connection (still one query), summing in Python integers.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any

import sqlalchemy as sa

from uuid_forge.rangehash import ALGORITHMS
from uuid_forge.record import Partition

__all__ = ["HexId", "digest_query", "hash_sql", "outsiders_query", "sum_ranges"]

_SLICE = 1 << 100  # the first slice's weight in the combined sum (the second stays below it: < 2**40 rows)


class HexId:
    """The SQL text of one table's ID as 32 lowercase hex chars, and of its data as text."""

    def __init__(self, backend: str, kind: str, id_sql: str, data_sql: str) -> None:
        self.backend, self.kind = backend, kind
        if kind == "native":
            self.hex = f"replace(CAST({id_sql} AS text), '-', '')"
        elif kind == "string":
            self.hex = f"replace({id_sql}, '-', '')"
        else:
            self.hex = id_sql
        self.id, self.data = id_sql, data_sql


def _bounds(kind: str, lo: int, hi: int | None) -> tuple[Any, Any]:
    import uuid

    def enc(value: int) -> Any:
        u = uuid.UUID(int=value)
        return u if kind == "native" else str(u) if kind == "string" else u.hex

    return enc(lo), None if hi is None else enc(hi)


def _spans(ranges: list[Partition]) -> list[tuple[int, int | None]]:
    """The ranges merged into contiguous spans (fewer conditions for the index)."""
    spans: list[list[int]] = []
    for r in sorted(ranges, key=lambda p: p.lo):
        if spans and spans[-1][1] == r.lo:
            spans[-1][1] = r.hi
        else:
            spans.append([r.lo, r.hi])
    return [(lo, None if hi >= 1 << 128 else hi) for lo, hi in spans]


def prefix_length(ranges: list[Partition]) -> int | None:
    """Hex digits of the ID that name a range of ``ranges`` (all of one power-of-two count); None otherwise."""
    counts = {r.count for r in ranges}
    if len(counts) != 1:
        return None
    count = counts.pop()
    if count & (count - 1):
        return None
    return max(1, math.ceil((count.bit_length() - 1) / 4))


def digest_query(ids: HexId, table_sql: str, ranges: list[Partition], algorithm: str,
                 condition: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """The GROUP BY query (SQL text with named binds) for ``ranges``; None if it cannot be asked."""
    length = prefix_length(ranges)
    if length is None or algorithm not in ALGORITHMS:
        return None
    params: dict[str, Any] = {}
    conds = []
    for n, (lo, hi) in enumerate(_spans(ranges)):
        low, high = _bounds(ids.kind, lo, hi)
        params[f"lo{n}"] = low
        if high is None:
            conds.append(f"{ids.id} >= :lo{n}")
        else:
            params[f"hi{n}"] = high
            conds.append(f"({ids.id} >= :lo{n} AND {ids.id} < :hi{n})")
    where = "(" + " OR ".join(conds) + ")" + (f" AND ({condition})" if condition else "")
    prefix = f"substr({ids.hex}, 1, {length})"
    h = hash_sql(ids, algorithm)
    py = f"uf_{algorithm}_digest"  # SQLite's aggregate (register_sqlite)
    if len(ranges) == 1:  # one range (a whole partition): no GROUP BY, the hash inline (no subquery to fence)
        r = ranges[0]
        params["p"] = format(r.lo >> (128 - 4 * length), f"0{length}x")
        if ids.backend == "postgresql":
            sql = (f"SELECT :p, count(*), count(*), sum(CAST(CAST('x' || substr({h}, 1, 15) AS bit(60)) AS bigint)), "
                   f"sum(CAST(CAST('x' || substr({h}, 16, 15) AS bit(60)) AS bigint)) FROM {table_sql} WHERE {where}")
        elif ids.backend in ("mysql", "mariadb"):
            sql = (f"SELECT :p, COUNT(*), COUNT({h}), SUM(CAST(CONV(SUBSTRING({h}, 1, 15), 16, 10) AS UNSIGNED)), "
                   f"SUM(CAST(CONV(SUBSTRING({h}, 16, 15), 16, 10) AS UNSIGNED)) FROM {table_sql} WHERE {where}")
        elif ids.backend == "sqlite":
            sql = f"SELECT :p, count(*), {py}({ids.hex}, {ids.data}) FROM {table_sql} WHERE {where}"
        else:
            return None
        return sql, params
    if ids.backend == "postgresql":
        inner = f"SELECT {prefix} AS p, {h} AS h FROM {table_sql} WHERE {where} OFFSET 0"
        sql = ("SELECT p, count(*), count(h), sum(CAST(CAST('x' || substr(h, 1, 15) AS bit(60)) AS bigint)), "
               "sum(CAST(CAST('x' || substr(h, 16, 15) AS bit(60)) AS bigint)) "
               f"FROM ({inner}) s GROUP BY p")
    elif ids.backend in ("mysql", "mariadb"):
        inner = (f"SELECT {prefix} AS p, {h} AS h FROM {table_sql} WHERE {where} "
                 "LIMIT 18446744073709551615")  # kept a derived table: the hash once per row
        sql = ("SELECT p, COUNT(*), COUNT(h), SUM(CAST(CONV(SUBSTRING(h, 1, 15), 16, 10) AS UNSIGNED)), "
               "SUM(CAST(CONV(SUBSTRING(h, 16, 15), 16, 10) AS UNSIGNED)) "
               f"FROM ({inner}) s GROUP BY p")
    elif ids.backend == "sqlite":
        sql = f"SELECT {prefix} AS p, count(*), {py}({ids.hex}, {ids.data}) FROM {table_sql} " \
              f"WHERE {where} GROUP BY p"
    else:
        return None
    return sql, params


def hash_sql(ids: HexId, algorithm: str) -> str:
    """The SQL of one row's hash as lowercase hex: ``md5``, or ``sha1`` (pgcrypto's ``digest`` on
    PostgreSQL, which the adapter offers only when the database has it)."""
    if ids.backend == "postgresql":
        return (f"md5({ids.hex} || {ids.data})" if algorithm == "md5"
                else f"encode(digest({ids.hex} || {ids.data}, 'sha1'), 'hex')")
    return f"{algorithm.upper()}(CONCAT({ids.hex}, {ids.data}))"


_HEX32 = re.compile(r"[0-9a-f]{32}")


def outsiders_query(ids: HexId, table_sql: str, condition: str | None = None) -> str | None:
    """The count of rows whose ID is not in the one form the ranges cover (a native column: none)."""
    if ids.kind == "native":
        return None
    form = "^[0-9a-f]{32}$" if ids.kind == "hex" else "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    extra = f" AND ({condition})" if condition else ""
    if ids.backend == "postgresql":
        return f"SELECT count(*) FROM {table_sql} WHERE NOT ({ids.id} ~ '{form}'){extra}"
    if ids.backend in ("mysql", "mariadb"):  # the binary collation: case matters
        return f"SELECT COUNT(*) FROM {table_sql} WHERE NOT (CAST({ids.id} AS BINARY) REGEXP '{form}'){extra}"
    if ids.backend == "sqlite":
        return f"SELECT count(*) FROM {table_sql} WHERE NOT uf_well_formed({ids.id}, '{ids.kind}'){extra}"
    return None


class Md5Digest:
    """SQLite's aggregate: ``count,sum1,sum2`` of the rows whose data is text (others are left out,
    so the range's count differs from count(*) and it is read)."""

    algorithm = "md5"

    def __init__(self) -> None:
        self.n, self.a, self.b = 0, 0, 0

    def step(self, ident: Any, data: Any) -> None:
        if not isinstance(ident, str) or not isinstance(data, str):
            return
        h = hashlib.new(self.algorithm, (ident + data).encode("utf-8", "surrogatepass"),
                        usedforsecurity=False).hexdigest()
        self.n += 1
        self.a += int(h[:15], 16)
        self.b += int(h[15:30], 16)

    def finalize(self) -> str:
        return f"{self.n},{self.a},{self.b}"


class Sha1Digest(Md5Digest):
    """:class:`Md5Digest` by sha1 (the algorithm a Redis script can compute)."""

    algorithm = "sha1"


def well_formed(ident: Any, kind: str) -> int:
    if not isinstance(ident, str):
        return 0
    if kind == "hex":
        return int(bool(_HEX32.fullmatch(ident)))
    return int(len(ident) == 36 and bool(_HEX32.fullmatch(ident.replace("-", "")))
               and all(ident[i] == "-" for i in (8, 13, 18, 23)))


def register_sqlite(dbapi_connection: Any) -> None:
    """The Python functions the SQLite queries call, on this connection."""
    dbapi_connection.create_aggregate("uf_md5_digest", 2, Md5Digest)
    dbapi_connection.create_aggregate("uf_sha1_digest", 2, Sha1Digest)
    dbapi_connection.create_function("uf_well_formed", 2, well_formed, deterministic=True)


def sum_ranges(rows: list[Any], ranges: list[Partition], backend: str) -> list[tuple[int, int] | None]:
    """The groups of a digest query summed into ``ranges``: ``(count, sum)`` each, None for a range
    holding a row that could not be hashed."""
    length = prefix_length(ranges)
    assert length is not None
    bits = ranges[0].count.bit_length() - 1
    at = {r.index: n for n, r in enumerate(ranges)}
    out: list[tuple[int, int] | None] = [(0, 0)] * len(ranges)
    bad: set[int] = set()
    for row in rows:
        prefix = str(row[0])
        index = int(prefix, 16) >> (4 * length - bits)
        n = at.get(index)
        if n is None:  # a span also covers no other range: cannot happen, but never miscount
            continue
        if backend == "sqlite":
            total = int(row[1])
            hashed, a, b = (int(x) for x in str(row[2] or "0,0,0").split(","))  # None: no row at all
        else:
            total, hashed = int(row[1]), int(row[2])
            a, b = int(row[3] or 0), int(row[4] or 0)
        if hashed != total:
            bad.add(n)
            continue
        count, s = out[n] or (0, 0)
        out[n] = (count + total, s + a * _SLICE + b)
    return [None if n in bad else d for n, d in enumerate(out)]


def table_sql(engine: sa.Engine, table: sa.Table) -> str:
    return engine.dialect.identifier_preparer.format_table(table)
