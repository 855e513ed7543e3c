"""Hand-written content scans: what one would write without uuid-forge to compare the data the
stores hold, in each adapter's default layout. Each reads every record's ID and data of one entity
type with the store's raw driver (the same fields the adapters' scans read: SQL ``id, data::text``;
MongoDB the whole flat document, ``_id`` apart; Redis the JSON string value, by ``MGET`` per
``SCAN`` page; Elasticsearch the whole ``_source``, its ``uf_id`` keyword apart; the file's bytes)
and hashes the data: the stored text where the store keeps the JSON text (SQL, Redis, files), else
a sorted ``json.dumps`` of the parsed document (MongoDB, Elasticsearch). ``content_audit``
compares every store's ``{id: hash}`` with the source's, the stores in parallel threads, as the
audit does.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote, urlsplit


def _h(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:32]


def _doc_hash(data: Any) -> str:
    return _h(json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def scan_postgres(url: str, et: str) -> dict[uuid.UUID, str]:
    import psycopg

    p = urlsplit(url)
    with psycopg.connect(host=p.hostname, port=p.port or 5432, user=unquote(p.username or ""),
                         password=unquote(p.password or "") or None, dbname=p.path.lstrip("/")) as conn, \
            conn.cursor(name="scan") as cur:  # server-side cursor, like the adapter's stream_results
        cur.itersize = 1000
        cur.execute(f"SELECT id, data::text FROM uf_{et}")
        return {row[0]: _h(row[1]) for row in cur}


def scan_mongodb(url: str, et: str) -> dict[uuid.UUID, str]:
    from pymongo import MongoClient

    client: Any = MongoClient(url, uuidRepresentation="standard")
    try:
        coll = client.get_default_database("uuid_forge")[et]
        out: dict[uuid.UUID, str] = {}
        for doc in coll.find({}).batch_size(1000):  # flat documents: every field but _id is the data
            ident = doc.pop("_id")
            out[ident] = _doc_hash(doc)
        return out
    finally:
        client.close()


def scan_redis(url: str, et: str) -> dict[uuid.UUID, str]:
    import redis

    client = redis.Redis.from_url(url)
    out: dict[uuid.UUID, str] = {}
    skip = len(et) + 1
    try:
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, match=f"{et}:*", count=1000)
            if keys:  # JSON string values: one MGET per page
                for k, data in zip(keys, client.mget(keys)):
                    if data is not None:
                        out[uuid.UUID(k[skip:].decode())] = _h(data)
            if cursor == 0:
                return out
    finally:
        client.close()


def scan_elasticsearch(url: str, et: str) -> dict[uuid.UUID, str]:
    from elasticsearch import Elasticsearch, helpers

    es = Elasticsearch(url.replace("elasticsearch+", "", 1), request_timeout=60)
    try:
        es.indices.refresh(index=f"uf-{et}")
        out: dict[uuid.UUID, str] = {}
        for hit in helpers.scan(es, index=f"uf-{et}", size=1000):
            doc = hit["_source"]  # the entity's fields at the top level, and the uf_id keyword
            ident = uuid.UUID(doc.pop("uf_id"))
            out[ident] = _doc_hash(doc)
        return out
    finally:
        es.close()


def scan_file(url: str, et: str) -> dict[uuid.UUID, str]:
    out: dict[uuid.UUID, str] = {}
    top = os.path.join(urlsplit(url).path, et)
    for folder, _, names in os.walk(top):
        for name in names:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), "rb") as f:
                    blob = f.read()  # the data as a JSON document, as written: hashed as stored
                out[uuid.UUID(name[:-5])] = _h(blob[:-1] if blob.endswith(b"\n") else blob)
    return out


def count_postgres(url: str, et: str) -> int:
    """The baseline of a full audit's floor on the source: ``SELECT count(*)`` of the type's table."""
    import psycopg

    p = urlsplit(url)
    with psycopg.connect(host=p.hostname, port=p.port or 5432, user=unquote(p.username or ""),
                         password=unquote(p.password or "") or None, dbname=p.path.lstrip("/")) as conn:
        row = conn.execute(f'SELECT count(*) FROM "uf_{et}"').fetchone()
        return int(row[0]) if row else 0


def bare_scan_redis(url: str, et: str) -> int:
    """The floor of reading Redis once: a bare ``SCAN MATCH {type}:*`` (keys counted, no value read)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        found, cursor = 0, 0
        while True:
            cursor, keys = client.scan(cursor, match=f"{et}:*", count=1000)
            found += len(keys)
            if cursor == 0:
                return found
    finally:
        client.close()


SCANS = {"postgres": scan_postgres, "mongodb": scan_mongodb, "redis": scan_redis,
         "elasticsearch": scan_elasticsearch, "file": scan_file}


def content_audit(urls: dict[str, str], et: str, source: str = "postgres") -> int:
    """Differences between each store and the source (0 when all agree): source first, then the
    other stores in parallel threads."""
    truth = SCANS[source](urls[source], et)
    others = [n for n in urls if n != source and n in SCANS]
    with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
        scanned = list(pool.map(lambda n: SCANS[n](urls[n], et), others))
    differ = 0
    for found in scanned:
        differ += sum(1 for i in truth.keys() | found.keys() if truth.get(i) != found.get(i))
    return differ
