"""The seed's MongoDB document store, in its own layout, beside uuid-forge.

What the seed (uuid-forge 0.1) did: a ``DocumentStore`` inserted flat documents into its own
``documents`` collection with pymongo, ``{"_id": <uuid text>, "content": ..., "metadata": {...},
"created_at": <datetime>}``: the ID as a string ``_id``, the fields at the top level, the time a
BSON date. It computed the ID with ``generator.generate(doc_data)``, a dict and no entity type.

What uuid-forge adds: it reads, audits and repairs that very collection in that very shape
(MongoDB store options ``collection=documents``, ``entity_type=document``, ``id_format=string``,
``datetimes=date``, and the store compared at BSON's millisecond precision), against the
database of record. A field edited by hand is ``stale`` with the field named, and repair writes the
document back as the seed wrote it. Another application's document in the same collection (an
``_id`` that is no ID of ours) is reported as foreign and never touched. The seed's
``generate(dict)`` call now fails with a uuid-forge error that says to pass the key as keywords.

Run: ``python examples/mongo_document_store.py``. The server comes from
``UUID_FORGE_TEST_MONGODB_URL``; without it the SecantusDB stand-in (``pip install secantusdb``)
is started the way the integration tests start it, and stopped at the end. The run uses a database
of its own, dropped at the end; the database of record is a SQLite file in a temporary directory.
"""

from __future__ import annotations

import atexit
import datetime as dt
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pymongo import MongoClient

from uuid_forge import CanonicalTypeError, EntityType, Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.view import FieldView

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # integration.servers: the stand-ins


@contextmanager
def mongodb_url() -> Iterator[str]:
    """The test server's URL, or a SecantusDB stand-in for the length of the block."""
    url = os.environ.get("UUID_FORGE_TEST_MONGODB_URL")
    if url:
        yield url
        return
    from integration import servers

    logs = tempfile.mkdtemp(prefix="uf-mongo-")  # the stand-in's log, removed with it
    atexit.register(shutil.rmtree, logs, True)
    url, proc = servers.start_mongodb_standin(tmpdir=logs)
    print(f"started a SecantusDB stand-in at {url}")
    try:
        yield url
    finally:
        servers.stop_process(proc)


class DocumentStore:
    """The seed's document store, with pymongo (the database name given, so runs do not collide)."""

    def __init__(self, url: str, database: str) -> None:
        self.generator = UUIDGenerator(IDConfig(namespace=Namespace("documents"), salt="v1"))
        self.client: MongoClient[dict[str, Any]] = MongoClient(url)
        self.db = self.client[database]

    def document_id(self, content: str, metadata: dict[str, Any]) -> uuid.UUID:
        return self.generator.generate("document", content=content, metadata=metadata)

    def store_document(self, content: str, metadata: dict[str, Any], created_at: dt.datetime) -> str:
        doc_id = str(self.document_id(content, metadata))
        self.db.documents.insert_one({"_id": doc_id, "content": content, "metadata": metadata,
                                      "created_at": created_at})
        return doc_id

    def get_document(self, doc_id: str) -> dict[str, Any] | None:
        return self.db.documents.find_one({"_id": doc_id})


def main() -> None:
    run = uuid.uuid4().hex[:8]
    work = tempfile.mkdtemp(prefix="uf-mongo-docs-")
    atexit.register(shutil.rmtree, work, True)  # the database of record and the journal: gone on any exit
    utc = dt.UTC
    docs = [("Q3 revenue grew 12%.", {"author": "ann", "tags": ["finance"]},
             dt.datetime(2024, 10, 1, 9, 30, 0, 123456, utc)),
            ("Ship v1 on Monday.", {"author": "bob", "tags": ["eng"]},
             dt.datetime(2024, 10, 2, 17, 5, 42, 987654, utc))]
    with mongodb_url() as url:
        database = f"uf_example_docs_{run}"
        seed = DocumentStore(url, database)
        try:
            # the seed's own call: a dict and no entity type, refused with a uuid-forge error
            try:
                seed.generator.generate({"content": docs[0][0], "metadata": docs[0][1]})  # type: ignore[arg-type]
                raise AssertionError("generate(dict) was accepted")
            except CanonicalTypeError as err:
                print(f"seed's generate(doc_data): {type(err).__name__}: {str(err).splitlines()[0]}")
                assert "keywords" in str(err)

            # 1. seed era: the database of record holds two documents, and the seed stored them in MongoDB
            mongo = open_store(urlsplit(url)._replace(path=f"/{database}").geturl(), collection="documents",
                               entity_type="document", id_format="string", datetimes="date")
            mongo.view = FieldView(datetime_precision="ms")  # BSON dates hold milliseconds
            forge = Forge([StoreHandle("db", open_store(f"sqlite:///{work}/docs.db"), source=True),
                           StoreHandle("mongo", mongo)],
                          types=[EntityType("document", key=("content", "metadata"), namespace=Namespace("documents"),
                                            salt="v1")],
                          journal=Journal(f"{work}/journal.sqlite3"))
            try:
                forge.source.adapter.put_many(forge.records(
                    [("document", {"content": c, "metadata": m, "created_at": t}) for c, m, t in docs]))
                ids = [seed.store_document(c, m, t) for c, m, t in docs]
                for i in ids:
                    print(f"seed:       insert_one documents {{_id: {i!r}, content, metadata, created_at}}")
                assert ids == [str(forge.id_for("document", data={"content": c, "metadata": m})) for c, m, _ in docs]
                seed.db.documents.insert_one({"_id": "legacy-42", "title": "from the old CMS"})  # another app's
                print("other app:  insert_one documents {_id: 'legacy-42', title}")

                # 2. uuid-forge reads the seed's documents in their shape and finds them equal to the database
                report = forge.audit("document")
                print(f"audit of the seed's collection: {report.stores['mongo']['ok']} ok, "
                      f"{report.stores['mongo']['foreign']} foreign, consistent: {report.consistent}")
                assert report.consistent and report.stores["mongo"]["ok"] == 2
                assert report.stores["mongo"]["foreign"] == 1

                # 3. uuid-forge writes a third document; the seed's find_one reads it in its own shape
                third = {"content": "Coffee machine fixed.", "metadata": {"author": "cy", "tags": []},
                         "created_at": dt.datetime(2024, 10, 3, 8, 0, 0, 250000, utc)}
                forge.write("document", third)
                third_id = str(forge.id_for("document", data=third))
                raw = seed.get_document(third_id)
                assert raw is not None
                print(f"uuid-forge: wrote {third_id}; the seed's find_one: _id {type(raw['_id']).__name__}, "
                      f"created_at {type(raw['created_at']).__name__} {raw['created_at']}, "
                      f"fields {sorted(k for k in raw if k != '_id')}")
                assert raw == {"_id": third_id, "content": third["content"], "metadata": third["metadata"],
                               "created_at": third["created_at"].replace(tzinfo=None)}

                # 4. a hand edit in MongoDB, found by reading the documents (no stored fingerprint)
                before = seed.get_document(ids[0])
                seed.db.documents.update_one({"_id": ids[0]}, {"$set": {"metadata.author": "mallory"}})
                print(f"by hand:    $set metadata.author=mallory on {ids[0]}")
                report = forge.audit("document")
                found = [(f.kind, f.id, f.fields) for f in report.findings]
                print(f"audit:      {found[0][0]} {found[0][1]}, fields {found[0][2]}")
                assert found == [("stale", ids[0], ("metadata.author",))]

                # 5. repair puts the database's document back, in the seed's shape; legacy-42 is untouched
                repaired = forge.audit("document", repair=True)
                assert repaired.consistent, repaired.repair_errors
                after = seed.get_document(ids[0])
                print(f"repair:     rewritten {repaired.repaired['mongo']['rewritten']}; the seed reads "
                      f"author={after['metadata']['author'] if after else None!r}, _id still a string")
                assert after == before
                assert seed.db.documents.count_documents({"_id": {"$type": "string"}}) == 4
                assert seed.get_document("legacy-42") == {"_id": "legacy-42", "title": "from the old CMS"}
                final = forge.audit("document")
                print(f"after repair: consistent: {final.consistent}; the other app's document is still there")
                assert final.consistent and final.stores["mongo"]["ok"] == 3
            finally:
                forge.close()
        finally:
            seed.client.drop_database(database)
            seed.client.close()
            print(f"dropped database {database}")


if __name__ == "__main__":
    main()
