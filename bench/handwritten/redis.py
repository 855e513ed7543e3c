"""Hand-written redis-py baseline: the adapter's default layout (``layout=data``: the data as one
JSON string under ``{type}:{uuid}``, ``SET`` to write, ``GET``/``MGET`` to read), written the way
one would without uuid-forge: a non-transactional pipeline of ``SET`` per batch, one ``MGET`` per
batch to read."""

from __future__ import annotations

import json
import uuid

import redis

from uuid_forge import Record

BATCH = 1000


def setup(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def _prefix(ctx: redis.Redis) -> str:
    """A key prefix of our own, as the adapter's ``prefix=`` option joins it (set by the caller)."""
    prefix = getattr(ctx, "uf_prefix", "")
    return f"{prefix}:" if prefix else ""


def put_many(ctx: redis.Redis, entity_type: str, records: list[Record]) -> None:
    for start in range(0, len(records), BATCH):
        pipe = ctx.pipeline(transaction=False)
        for r in records[start:start + BATCH]:
            pipe.set(f"{_prefix(ctx)}{entity_type}:{r.id}", r.data_json)
        pipe.sadd("uf:types", entity_type)  # as the adapter does, so both send the same commands
        pipe.execute()


def get_many(ctx: redis.Redis, entity_type: str, ids: list[uuid.UUID]) -> int:
    found = 0
    for start in range(0, len(ids), BATCH):
        for value in ctx.mget([f"{entity_type}:{i}" for i in ids[start:start + BATCH]]):
            if value is not None:
                json.loads(value)
                found += 1
    return found


def delete_many(ctx: redis.Redis, entity_type: str, ids: list[uuid.UUID]) -> int:
    """The native bulk delete: one ``UNLINK`` of 1000 keys at a time in a non-transactional pipeline."""
    pipe = ctx.pipeline(transaction=False)
    for start in range(0, len(ids), BATCH):
        pipe.unlink(*[f"{_prefix(ctx)}{entity_type}:{i}" for i in ids[start:start + BATCH]])
    return sum(pipe.execute())


def teardown(ctx: redis.Redis, entity_type: str) -> None:
    keys = list(ctx.scan_iter(match=f"{_prefix(ctx)}{entity_type}:*", count=1000))
    for start in range(0, len(keys), BATCH):
        ctx.unlink(*keys[start:start + BATCH])
    ctx.srem("uf:types", entity_type)
    ctx.close()
