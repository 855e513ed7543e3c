"""Bulk loading for the benchmarks' setup only (never timed against uuid-forge): ``COPY`` into the
SQL adapter's default table (``uf_{type}``: id, fingerprint, data, key) and pipelined ``SET`` of the
Redis adapter's default layout (``{type}:{uuid}`` -> the data's JSON text). The bytes written are
the adapters' own (``Record.data_json``, ``Record.fingerprint``), so an audit finds them
consistent; the table, ``uf:types`` and the ID marker come from a first small ``write_many``."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from uuid_forge import Record

PIPE = 5000


def load_postgres(url: str, entity_type: str, records: list[Record]) -> None:
    """``COPY ... FROM STDIN`` of the records into ``uf_{type}`` (the table must exist)."""
    import psycopg

    p = urlsplit(url)
    with psycopg.connect(host=p.hostname, port=p.port or 5432, user=unquote(p.username or ""),
                         password=unquote(p.password or "") or None, dbname=p.path.lstrip("/")) as conn, \
            conn.cursor() as cur, cur.copy(f'COPY "uf_{entity_type}" (id, fingerprint, data, key) FROM STDIN') as cp:
        for r in records:
            cp.write_row((r.id, r.fingerprint, r.data_json, r.key_json))


def load_redis(url: str, entity_type: str, records: list[Record]) -> None:
    """Pipelined ``MSET`` of ``{type}:{uuid}`` -> data JSON, :data:`PIPE` keys a command."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for start in range(0, len(records), PIPE):
            pipe.mset({f"{entity_type}:{r.id}": r.data_json for r in records[start:start + PIPE]})
            if len(pipe) >= 20:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()


LOADERS = {"postgres": load_postgres, "redis": load_redis}
