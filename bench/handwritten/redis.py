"""Hand-written redis-py baseline: the adapter's layout (hash {fp, data, key} under `{type}:{uuid}`),
written the way one would without uuid-forge: a non-transactional pipeline per batch."""

from __future__ import annotations

import json
import uuid

import redis

from uuid_forge import Record

BATCH = 1000


def setup(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def put_many(ctx: redis.Redis, entity_type: str, records: list[Record]) -> None:
    for start in range(0, len(records), BATCH):
        pipe = ctx.pipeline(transaction=False)
        for r in records[start:start + BATCH]:
            pipe.hset(f"{entity_type}:{r.id}",
                      mapping={"fp": r.fingerprint, "data": r.data_json, "key": r.key_json or "null"})
        pipe.sadd("uf:types", entity_type)
        pipe.execute()


def get_many(ctx: redis.Redis, entity_type: str, ids: list[uuid.UUID]) -> int:
    found = 0
    for start in range(0, len(ids), BATCH):
        pipe = ctx.pipeline(transaction=False)
        for i in ids[start:start + BATCH]:
            pipe.hmget(f"{entity_type}:{i}", "fp", "data", "key")
        for fp, data, key in pipe.execute():
            if data is not None:
                fp.decode(), json.loads(data), json.loads(key)
                found += 1
    return found


def teardown(ctx: redis.Redis, entity_type: str) -> None:
    keys = list(ctx.scan_iter(match=f"{entity_type}:*", count=1000))
    for start in range(0, len(keys), BATCH):
        ctx.unlink(*keys[start:start + BATCH])
    ctx.srem("uf:types", entity_type)
    ctx.close()
