"""The seed's file manager: raw bytes under sharded paths, with a metadata sidecar, beside uuid-forge.

What the seed (uuid-forge 0.1) did: a ``FileManager`` computed a file's ID from a hash of its bytes
and its size, and wrote the raw bytes to ``base/<id[0:2]>/<id[2:4]>/<id>.dat``, so any process could
find the file from its content alone, and storing it twice left one file. Its metadata (name,
content type, size, hash) went beside it (here: a ``<id>.meta.json`` sidecar). Nothing noticed a
file whose bytes changed on disk.

What uuid-forge adds: the same files in the same places (file store options ``layout=raw``,
``content_suffix=.dat``, the content in the data field ``content``; the seed's ``base`` is the
store's folder for the entity type ``file``), written through from the file records, and an audit
that reads the bytes and the sidecar and compares them with the records: a byte edited by hand is
``stale`` on ``content``, and repair writes the recorded bytes back. A file of another program in
the folder (``README.txt``) is reported as foreign and never touched.

Below, the seed's class is the seed's code (pathlib, open, json) and runs beside uuid-forge; each
reads what the other wrote. The file records (the source of truth) are a SQLite file; everything
lives in a temporary directory, removed at the end. Run: python examples/file_manager.py
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from uuid_forge import EntityType, Forge, IDConfig, Namespace, UUIDGenerator, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal


class FileManager:
    """The seed's file manager: raw bytes at ``base/ab/cd/<id>.dat``, the metadata in a sidecar."""

    def __init__(self, base_path: Path) -> None:
        self.base_path = base_path
        self.file_generator = UUIDGenerator(IDConfig(namespace=Namespace("files"), salt="v1"))

    def file_id(self, content: bytes) -> str:
        return str(self.file_generator.generate("file", content_hash=hashlib.md5(content).hexdigest(),
                                                size=len(content)))

    def get_file_path(self, content: bytes) -> Path:
        """The path, known from the content alone, before any file is read."""
        file_uuid = self.file_id(content)
        return self.base_path / file_uuid[:2] / file_uuid[2:4] / f"{file_uuid}.dat"

    def store_file(self, content: bytes, metadata: dict[str, Any]) -> str:
        path = self.get_file_path(content)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        sidecar = {**metadata, "content_hash": hashlib.md5(content).hexdigest(), "size": len(content)}
        path.with_name(path.name.removesuffix(".dat") + ".meta.json").write_text(json.dumps(sidecar))
        return self.file_id(content)


def record_of(content: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
    """A file's record in the database of record: its metadata and its bytes (base64)."""
    return {**metadata, "content_hash": hashlib.md5(content).hexdigest(), "size": len(content),
            "content": base64.b64encode(content).decode()}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="uf-files-") as work:
        root = Path(work) / "files"
        seed = FileManager(root / "file")  # the seed's base path is the store's folder for type "file"
        files = open_store(f"file://{root}", layout="raw", content_suffix=".dat")
        forge = Forge([StoreHandle("db", open_store(f"sqlite:///{work}/files.db"), source=True),
                       StoreHandle("files", files)],
                      types=[EntityType("file", key=("content_hash", "size"), namespace=Namespace("files"), salt="v1")],
                      journal=Journal(f"{work}/journal.sqlite3"))
        report_pdf = (b"%PDF-1.4\n" + bytes(range(256)) * 4, {"filename": "q3-report.pdf",
                                                              "content_type": "application/pdf"})
        logo = (b"\x89PNG\r\n\x1a\n" + bytes(200), {"filename": "logo.png", "content_type": "image/png"})
        notes = (b"# Notes\n- ship v1\n", {"filename": "notes.md", "content_type": "text/markdown"})
        try:
            # 1. seed era: the records hold two files, and the seed's file manager wrote them to disk
            forge.source.adapter.put_many(forge.records([("file", record_of(*report_pdf)), ("file", record_of(*logo))]))
            for content, metadata in (report_pdf, logo):
                file_id = seed.store_file(content, metadata)
                print(f"seed:       {seed.get_file_path(content).relative_to(root)} ({len(content)} bytes) "
                      "+ .meta.json")
                assert file_id == str(forge.id_for("file", data=record_of(content, metadata)))  # one ID scheme
            (root / "file" / "README.txt").write_text("files of the shop; do not edit by hand\n")  # another program's

            # 2. uuid-forge reads the seed's files in their shape; the audit finds them equal to the records
            pdf_id = forge.id_for("file", data=record_of(*report_pdf))
            got = files.get_many("file", [pdf_id])[pdf_id]
            print(f"uuid-forge: reads {pdf_id}: {got.data['filename']}, "
                  f"{len(base64.b64decode(got.data['content']))} bytes")
            assert dict(got.data) == record_of(*report_pdf)
            report = forge.audit("file")
            print(f"audit of the seed's files: {report.stores['files']['ok']} ok, "
                  f"{report.stores['files']['foreign']} foreign, consistent: {report.consistent}")
            assert report.consistent and report.stores["files"]["ok"] == 2 and report.stores["files"]["foreign"] == 1

            # 3. uuid-forge writes a third file; the seed finds it from the content alone
            forge.write("file", record_of(*notes))
            path = seed.get_file_path(notes[0])
            sidecar = json.loads(path.with_name(path.name.removesuffix(".dat") + ".meta.json").read_text())
            print(f"uuid-forge: wrote {path.relative_to(root)}; the seed reads {path.read_bytes()!r}, "
                  f"sidecar {sidecar}")
            assert path.read_bytes() == notes[0]
            assert sidecar == {k: v for k, v in record_of(*notes).items() if k != "content"}

            # 4. one byte edited by hand on disk
            pdf_path = seed.get_file_path(report_pdf[0])
            damaged = bytearray(pdf_path.read_bytes())
            damaged[100] ^= 0xFF
            pdf_path.write_bytes(bytes(damaged))
            print(f"by hand:    flipped byte 100 of {pdf_path.name}")
            report = forge.audit("file")
            found = [(f.kind, f.id, f.fields) for f in report.findings]
            print(f"audit:      {found[0][0]} {found[0][1]}, fields {found[0][2]}")
            assert found == [("stale", str(pdf_id), ("content",))]

            # 5. repair writes the recorded bytes back; the other program's file is untouched
            repaired = forge.audit("file", repair=True)
            assert repaired.consistent, repaired.repair_errors
            print(f"repair:     rewritten {repaired.repaired['files']['rewritten']}; md5 on disk "
                  f"{hashlib.md5(pdf_path.read_bytes()).hexdigest()} == recorded "
                  f"{record_of(*report_pdf)['content_hash']}")
            assert pdf_path.read_bytes() == report_pdf[0]
            assert (root / "file" / "README.txt").exists()
            final = forge.audit("file")
            count = sum(1 for p in (root / "file").rglob("*") if p.is_file())
            print(f"after repair: consistent: {final.consistent}; {count} files on disk "
                  f"(3 files + 3 sidecars + README.txt)")
            assert final.consistent and count == 7
        finally:
            forge.close()


if __name__ == "__main__":
    main()
