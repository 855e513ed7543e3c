"""Hand-written baseline for the file adapter's default layout (``layout=data``):
root/{type}/{hex[0:2]}/{hex[2:4]}/{uuid}.json holding the entity's data as a JSON document and
nothing else (the name is the ID), written atomically (temp file, fsync, os.replace, directories
fsynced once per call), as one would write it directly with the standard library."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from urllib.parse import urlsplit

from uuid_forge import Record


def setup(url: str) -> str:
    return urlsplit(url).path


def _path(root: str, entity_type: str, ident: uuid.UUID) -> str:
    s = str(ident)
    return os.path.join(root, entity_type, s[0:2], s[2:4], s + ".json")


def put_many(ctx: str, entity_type: str, records: list[Record]) -> None:
    folders = set()
    for r in records:
        path = _path(ctx, entity_type, r.id)
        folder = os.path.dirname(path)
        if folder not in folders:
            os.makedirs(folder, exist_ok=True)
            folders.add(folder)
        body = r.data_json + "\n"
        tmp = f"{folder}/.{r.id}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(body.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def get_many(ctx: str, entity_type: str, ids: list[uuid.UUID]) -> int:
    found = 0
    for ident in ids:
        try:
            with open(_path(ctx, entity_type, ident), "rb") as f:
                json.loads(f.read())  # the data
        except FileNotFoundError:
            continue
        found += 1
    return found


def delete_many(ctx: str, entity_type: str, ids: list[uuid.UUID]) -> int:
    """Unlink each file; fsync each touched directory once (as the adapter does by default)."""
    gone = 0
    folders = set()
    for ident in ids:
        path = _path(ctx, entity_type, ident)
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        gone += 1
        folders.add(os.path.dirname(path))
    for folder in folders:
        fd = os.open(folder, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return gone


def teardown(ctx: str, entity_type: str) -> None:
    shutil.rmtree(os.path.join(ctx, entity_type), ignore_errors=True)
