"""Hand-written SQL baseline on the raw drivers (psycopg 3, PyMySQL, sqlite3): the adapter's layout
(``uf_{type}``: id, fingerprint, data json, key json, updated_at), written the way one would without
uuid-forge or SQLAlchemy: one ``executemany`` upsert per 1000 records in its own transaction
(psycopg pipelines it, PyMySQL folds it into multi-row INSERTs), and reads with ``= ANY(array)`` on
PostgreSQL, ``IN (...)`` elsewhere."""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from uuid_forge import Record

BATCH = 1000


@dataclass
class Ctx:
    kind: str  # postgresql | mysql | sqlite
    conn: Any
    created: set[str]


def setup(url: str) -> Ctx:
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        import psycopg

        conn = psycopg.connect(host=parts.hostname, port=parts.port or 5432, user=unquote(parts.username or ""),
                               password=unquote(parts.password or "") or None, dbname=parts.path.lstrip("/"),
                               connect_timeout=5)
        return Ctx("postgresql", conn, set())
    if scheme in ("mysql", "mariadb"):
        import pymysql

        conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=unquote(parts.username or ""),
                               password=unquote(parts.password or ""), database=parts.path.lstrip("/"),
                               charset="utf8mb4", connect_timeout=5, read_timeout=30, write_timeout=30)
        return Ctx("mysql", conn, set())
    if scheme == "sqlite":
        return Ctx("sqlite", sqlite3.connect(url.split(":///", 1)[1]), set())
    raise ValueError(f"unsupported URL {url!r}")


def _create(ctx: Ctx, table: str) -> None:
    if table in ctx.created:
        return
    cur = ctx.conn.cursor()
    if ctx.kind == "postgresql":
        cur.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id uuid PRIMARY KEY, fingerprint varchar(32) NOT NULL, '
                    "data json NOT NULL, key json, updated_at timestamptz NOT NULL DEFAULT CURRENT_TIMESTAMP)")
    elif ctx.kind == "mysql":
        cur.execute(f"CREATE TABLE IF NOT EXISTS `{table}` (id CHAR(32) NOT NULL PRIMARY KEY, fingerprint "
                    "VARCHAR(32) NOT NULL, data JSON NOT NULL, `key` JSON, updated_at DATETIME NOT NULL DEFAULT "
                    "CURRENT_TIMESTAMP) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    else:
        cur.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (id CHAR(32) PRIMARY KEY, fingerprint VARCHAR(32) '
                    'NOT NULL, data JSON NOT NULL, "key" JSON, updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP)')
    ctx.conn.commit()
    ctx.created.add(table)


def put_many(ctx: Ctx, entity_type: str, records: list[Record]) -> None:
    table = f"uf_{entity_type}"
    _create(ctx, table)
    if ctx.kind == "postgresql":
        sql = (f'INSERT INTO "{table}" (id, fingerprint, data, key) VALUES (%s, %s, %s::json, %s::json) '
               "ON CONFLICT (id) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, data = EXCLUDED.data, "
               "key = EXCLUDED.key, updated_at = now()")
        encode: Any = lambda i: i  # psycopg sends uuid.UUID natively
    elif ctx.kind == "mysql":
        sql = (f"INSERT INTO `{table}` (id, fingerprint, data, `key`) VALUES (%s, %s, %s, %s) ON DUPLICATE KEY "
               "UPDATE fingerprint = VALUES(fingerprint), data = VALUES(data), `key` = VALUES(`key`), updated_at = now()")
        encode = lambda i: i.hex
    else:
        sql = (f'INSERT INTO "{table}" (id, fingerprint, data, "key") VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE '
               'SET fingerprint = excluded.fingerprint, data = excluded.data, "key" = excluded."key", '
               "updated_at = CURRENT_TIMESTAMP")
        encode = lambda i: i.hex
    for start in range(0, len(records), BATCH):
        rows = [(encode(r.id), r.fingerprint, r.data_json, r.key_json) for r in records[start:start + BATCH]]
        cur = ctx.conn.cursor()
        cur.executemany(sql, rows)
        ctx.conn.commit()


def get_many(ctx: Ctx, entity_type: str, ids: list[uuid.UUID]) -> int:
    table = f"uf_{entity_type}"
    found = 0
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        cur = ctx.conn.cursor()
        if ctx.kind == "postgresql":  # psycopg returns uuid.UUID and parsed json
            cur.execute(f'SELECT id, fingerprint, data, key FROM "{table}" WHERE id = ANY(%s)', (chunk,))
            records = [Record(entity_type, i, data, key, fingerprint=fp) for i, fp, data, key in cur.fetchall()]
        else:
            wanted = {i.hex: i for i in chunk}
            mark = "%s" if ctx.kind == "mysql" else "?"
            q = '"key"' if ctx.kind == "sqlite" else "`key`"
            cur.execute(f"SELECT id, fingerprint, data, {q} FROM {_quote(ctx, table)} WHERE id IN "
                        f"({', '.join([mark] * len(chunk))})", list(wanted))
            records = [Record(entity_type, wanted[i], json.loads(data), None if key is None else json.loads(key),
                              fingerprint=fp) for i, fp, data, key in cur.fetchall()]
        ctx.conn.commit()  # end the read transaction (it would hold locks on MariaDB)
        found += len(records)
    return found


def delete_many(ctx: Ctx, entity_type: str, ids: list[uuid.UUID]) -> int:
    """The native bulk delete: ``DELETE ... WHERE id = ANY(%s)`` (PostgreSQL), ``IN (...)`` elsewhere,
    one statement and transaction per 1000 IDs."""
    table = _quote(ctx, f"uf_{entity_type}")
    gone = 0
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        cur = ctx.conn.cursor()
        if ctx.kind == "postgresql":
            cur.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", (chunk,))
        else:
            mark = "%s" if ctx.kind == "mysql" else "?"
            cur.execute(f"DELETE FROM {table} WHERE id IN ({', '.join([mark] * len(chunk))})", [i.hex for i in chunk])
        gone += cur.rowcount
        ctx.conn.commit()
    return gone


def _quote(ctx: Ctx, table: str) -> str:
    return f"`{table}`" if ctx.kind == "mysql" else f'"{table}"'


def teardown(ctx: Ctx, entity_type: str) -> None:
    cur = ctx.conn.cursor()
    cur.execute(f"DROP TABLE IF EXISTS {_quote(ctx, f'uf_{entity_type}')}")
    ctx.conn.commit()
    ctx.conn.close()
