"""Documents under sharded, deterministic paths (uuid-forge 0.1's "file manager" pattern).

A document's ID comes from its name and a hash of its content, so its path is known before it is
written (root/document/ab/cd/<uuid>.json), storing it twice leaves one file, and the 65,536 shard
directories keep every directory small. Run: python examples/file_manager.py (uses a temp dir).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid

from uuid_forge import IDConfig, Namespace, Record, UUIDGenerator, open_store

ids = UUIDGenerator(IDConfig(namespace=Namespace("files.myapp.com"), salt="v1"))


def document_id(name: str, content: bytes) -> uuid.UUID:
    return ids.generate("document", name=name, sha256=hashlib.sha256(content).hexdigest())


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="uf-files-") as root, open_store(f"file://{root}") as files:
        docs = {"report.txt": b"Q3 revenue grew 12%.", "notes.md": b"# Notes\n- ship v1"}
        for name, content in docs.items():
            doc_id = document_id(name, content)
            record = Record("document", doc_id, {"name": name, "content": content.decode(), "size": len(content)},
                            {"name": name, "sha256": hashlib.sha256(content).hexdigest()})
            files.put_many([record, record])  # idempotent: one file however often it is stored
            print(f"stored {name:10} -> {os.path.relpath(files.path_of('document', doc_id), root)}")

        # any process can find the file again from the name and content alone
        doc_id = document_id("report.txt", docs["report.txt"])
        print(f"path known before reading: {files.path_of('document', doc_id)}")
        back = files.get_many("document", [doc_id])[doc_id]
        print(f"read back: {back.data['content']!r} (fingerprint {back.fingerprint[:12]}…)")
        count = sum(len(names) for _, _, names in os.walk(root))
        print(f"{count} files on disk for {len(docs)} documents stored twice each")
        assert count == len(docs)


if __name__ == "__main__":
    main()
