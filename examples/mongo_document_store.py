"""Mongo document store: products and orders stored and fetched by deterministic ID.

The uuid-forge 0.1 docs showed a ``DocumentStore`` that inserted ``{"_id": uuid, **doc}``. Here
the ID comes from the business key (SKU, order number), so any service can compute it and fetch
the document without a lookup, and storing it twice is an idempotent upsert. MongoDB keeps it as
``_id`` BSON Binary subtype 4, with the document's own fields beside it (the flat layout).

Run: ``python examples/mongo_document_store.py``. The server comes from
``UUID_FORGE_TEST_MONGODB_URL``; without it a SecantusDB stand-in (``pip install secantusdb``)
is started on a free port and stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo import MongoClient

from uuid_forge import IDConfig, Namespace, Record, UUIDGenerator, open_store


@contextmanager
def mongodb_url() -> Iterator[str]:
    """The test server's URL, or a private SecantusDB stand-in for the length of the block."""
    url = os.environ.get("UUID_FORGE_TEST_MONGODB_URL")
    if url:
        yield url
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = shutil.which("secantusd-py")
    if server is None:
        raise SystemExit("set UUID_FORGE_TEST_MONGODB_URL or pip install secantusdb")
    proc = subprocess.Popen([server, "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(f"started a SecantusDB stand-in on port {port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the SecantusDB stand-in did not start") from None
                time.sleep(0.1)
        yield f"mongodb://127.0.0.1:{port}/uuid_forge_example"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    forge = UUIDGenerator(IDConfig(namespace=Namespace("shop.example.com"), salt="v1"))
    products = [{"sku": "MUG-RED", "name": "Red mug", "price": 12.5},
                {"sku": "TEA-EARL", "name": "Earl Grey, 100 g", "price": 6.9}]
    order = {"number": "2024-000042", "customer": "zoë@example.com",
             "lines": [{"sku": "MUG-RED", "qty": 2}, {"sku": "TEA-EARL", "qty": 1}]}

    with mongodb_url() as url:
        prefix = f"demo{os.getpid()}_"  # our own collections, so a shared server is left as it was
        with open_store(url, collection_prefix=prefix) as store:
            # store: the ID is computed from the business key, never looked up
            records = [Record("product", forge.generate("product", sku=p["sku"]), p, {"sku": p["sku"]})
                       for p in products]
            order_id = forge.generate("order", number=order["number"])
            records.append(Record("order", order_id, order, {"number": order["number"]}))
            print(f"stored {store.put_many(records)} documents; again: {store.put_many(records)} (upserts, no copies)")

            # fetch: another service recomputes the ID from the order number alone
            fetched = store.get_many("order", [forge.generate("order", number="2024-000042")])[order_id]
            print(f"order {fetched.data['number']} -> _id {order_id}")
            for line in fetched.data["lines"]:
                pid = forge.generate("product", sku=line["sku"])
                product = store.get_many("product", [pid])[pid].data
                print(f"  {line['qty']} x {product['name']} at {product['price']} ({pid})")

            client: MongoClient = MongoClient(url)  # no uuidRepresentation: shows what is on disk
            db = client.get_default_database()
            raw = db[prefix + "order"].find_one()
            print(f"in MongoDB: _id is {type(raw['_id']).__name__} subtype {raw['_id'].subtype}, "
                  f"the order's fields beside it: {sorted(k for k in raw if k != '_id')}")
            print(f"entity types here: {store.entity_types()}")

            for entity_type in ("product", "order"):
                db.drop_collection(prefix + entity_type)
            client.close()
            print("cleaned up")


if __name__ == "__main__":
    main()
