"""Hand-written elasticsearch-py baseline: the adapter's layout (index ``uf-{type}``, each document
the entity's fields at the top level, indexed by dynamic mapping, plus a ``uf_id`` keyword holding
the 36-char ID, which is also the ``_id``), written the way one would without uuid-forge:
``client.bulk`` of index actions per 1000 records, ``mget`` to read.

``client.bulk(operations=[action, doc, ...])`` and ``helpers.bulk`` measured the same within run-to-run
noise against the stand-in (10,000 records, medians of 5 and 3 runs: 0.55/0.60 s vs 0.64/0.56 s);
the baseline uses the plainer ``client.bulk``.
"""

from __future__ import annotations

import uuid
from typing import Any

from elasticsearch import Elasticsearch

from uuid_forge import Record

BATCH = 1000
PREFIX = "uf-"
ID_FIELD = "uf_id"
MAPPINGS = {"properties": {ID_FIELD: {"type": "keyword"}}}  # every other field: dynamic mapping


def _http(url: str) -> str:
    return url.replace("elasticsearch+", "", 1) if url.startswith("elasticsearch+") else url


def setup(url: str) -> dict[str, Any]:
    return {"es": Elasticsearch(_http(url), request_timeout=30, max_retries=0), "indices": set()}


def put_many(ctx: dict[str, Any], entity_type: str, records: list[Record]) -> None:
    es: Elasticsearch = ctx["es"]
    index = PREFIX + entity_type
    if index not in ctx["indices"]:
        if not es.indices.exists(index=index):
            es.indices.create(index=index, mappings=MAPPINGS)
        ctx["indices"].add(index)
    for start in range(0, len(records), BATCH):
        ops: list[dict[str, Any]] = []
        for r in records[start:start + BATCH]:
            ident = str(r.id)
            ops.append({"index": {"_id": ident}})
            ops.append({**r.json_data, ID_FIELD: ident})
        resp = es.bulk(operations=ops, index=index)
        if resp["errors"]:
            raise RuntimeError(f"bulk failed: {resp['items'][0]}")


def get_many(ctx: dict[str, Any], entity_type: str, ids: list[uuid.UUID]) -> int:
    es: Elasticsearch = ctx["es"]
    found = 0
    for start in range(0, len(ids), BATCH):
        resp = es.mget(index=PREFIX + entity_type, ids=[str(i) for i in ids[start:start + BATCH]])
        for doc in resp["docs"]:
            if doc.get("found"):
                data = doc["_source"]
                data.pop(ID_FIELD, None)  # the rest of the document is the entity's data
                Record(entity_type, uuid.UUID(doc["_id"]), data, None)
                found += 1
    return found


def delete_many(ctx: dict[str, Any], entity_type: str, ids: list[uuid.UUID]) -> int:
    """The native bulk delete: ``client.bulk`` of delete actions per 1000 IDs."""
    es: Elasticsearch = ctx["es"]
    gone = 0
    for start in range(0, len(ids), BATCH):
        resp = es.bulk(operations=[{"delete": {"_id": str(i)}} for i in ids[start:start + BATCH]],
                       index=PREFIX + entity_type)
        gone += sum(item["delete"].get("result") == "deleted" for item in resp["items"])
    return gone


def teardown(ctx: dict[str, Any], entity_type: str) -> None:
    ctx["es"].options(ignore_status=404).indices.delete(index=PREFIX + entity_type)
    ctx["es"].close()
