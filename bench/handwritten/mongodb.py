"""Hand-written pymongo baseline: the adapter's default layout (``layout=data``: ``{_id: Binary
subtype 4, **data}``, the entity's fields at the top level, in a collection per entity type),
written the way one would without uuid-forge: one unordered bulk_write of upserting ReplaceOne per
1,000 records, and ``$in`` reads of 100 IDs (the size the SecantusDB stand-in handles well, the
same the adapter uses)."""

from __future__ import annotations

import uuid
from typing import Any

from bson import Binary
from pymongo import MongoClient, ReplaceOne

from uuid_forge import Record

BATCH = 1000
IN_BATCH = 100


def setup(url: str) -> Any:
    client: MongoClient[dict[str, Any]] = MongoClient(
        url, uuidRepresentation="standard", serverSelectionTimeoutMS=5000, connectTimeoutMS=5000,
        socketTimeoutMS=30000)
    return client.get_default_database("uuid_forge")


def put_many(ctx: Any, entity_type: str, records: list[Record]) -> None:
    coll = ctx[entity_type]
    for start in range(0, len(records), BATCH):
        ops = []
        for r in records[start:start + BATCH]:
            _id = Binary(r.id.bytes, 4)
            ops.append(ReplaceOne({"_id": _id}, {"_id": _id, **r.json_data}, upsert=True))
        coll.bulk_write(ops, ordered=False)


def get_many(ctx: Any, entity_type: str, ids: list[uuid.UUID]) -> int:
    coll = ctx[entity_type]
    found = 0
    for start in range(0, len(ids), IN_BATCH):
        for doc in coll.find({"_id": {"$in": [Binary(i.bytes, 4) for i in ids[start:start + IN_BATCH]]}}):
            doc.pop("_id")  # the rest of the document is the entity's data
            found += 1
    return found


def delete_many(ctx: Any, entity_type: str, ids: list[uuid.UUID]) -> int:
    """The native bulk delete: ``delete_many({_id: {$in: [...]}})`` per 100 IDs (the stand-in's good size)."""
    coll = ctx[entity_type]
    gone = 0
    for start in range(0, len(ids), IN_BATCH):
        gone += coll.delete_many({"_id": {"$in": [Binary(i.bytes, 4) for i in ids[start:start + IN_BATCH]]}}
                                 ).deleted_count
    return gone


def teardown(ctx: Any, entity_type: str) -> None:
    ctx.drop_collection(entity_type)
    ctx.client.close()
