"""A third party's store adapter, as another package would ship it: ``acmekv:///path/to/file``.

It keeps records in a stdlib ``dbm.dumb`` file (a real on-disk store with its own driver), and
imports uuid-forge only through its public names. The tests install it through the
``uuid_forge.adapters`` entry-point group and hold it to the shipped ``AdapterContract``.
"""

from __future__ import annotations

import dbm.dumb
import json
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from uuid_forge.canonical import canonical
from uuid_forge.contract import BATCH_SIZE, Adapter, Option, ScanItem
from uuid_forge.record import Partition, Record, load_json


class KVFileAdapter(Adapter):
    """Each record under the key ``{entity type}/{32 hex digits}``: its native ID form is hex."""

    name: ClassVar[str] = "acmekv"
    options: ClassVar[tuple[Option, ...]] = (BATCH_SIZE,)

    def __init__(self, url: str, **options: Any) -> None:
        opts = self.parse_options(url, options)
        super().__init__(url, batch_size=opts["batch_size"])
        self.path = urlsplit(url).path
        self._db: Any = dbm.dumb.open(self.path, "c")  # noqa: SIM115 - open for the store's life, closed by _close

    @staticmethod
    def key_of(entity_type: str, ident: uuid.UUID) -> bytes:
        return f"{entity_type}/{ident.hex}".encode()

    def _put(self, entity_type: str, records: list[Record]) -> None:
        """A write owns only the fields of the store's view (``FieldView.owns``): with a projection
        or ignored fields, the fields another application added to the stored data are kept."""
        view = self.view
        for r in records:
            key = self.key_of(entity_type, r.id)
            data = r.data_json
            held = None if view.full else self._db.get(key)
            if held is not None:
                data = canonical(view.merged(load_json(json.loads(held)["data"]), load_json(data)))
            self._db[key] = json.dumps({"data": data, "key": r.key_json})
        self._db.sync()

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        found = []
        for ident in ids:
            raw = self._db.get(self.key_of(entity_type, ident))
            if raw is not None:
                doc = json.loads(raw)
                key = json.loads(doc["key"]) if doc["key"] else None
                found.append(Record(entity_type, ident, load_json(doc["data"]), key))
        return found

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        count = 0
        for ident in ids:
            key = self.key_of(entity_type, ident)
            if key in self._db:
                del self._db[key]
                count += 1
        self._db.sync()
        return count

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        prefix = f"{entity_type}/".encode()
        for key in list(self._db.keys()):
            if key.startswith(prefix):
                doc = json.loads(self._db[key])
                yield uuid.UUID(hex=key[len(prefix):].decode()), self.fingerprint_text(doc["data"])

    def _entity_types(self) -> Iterable[str]:
        return sorted({k.decode().split("/", 1)[0] for k in self._db})

    def _close(self) -> None:
        self._db.close()
