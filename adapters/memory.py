"""``memory://``: records in a process-local dict. For tests, demos and examples, never durable.

URLs with the same name (``memory://shared``) share one dict within a process, so two handles
see the same data; ``memory://`` alone is private to its adapter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from uuid_forge.contract import BATCH_SIZE, Adapter, Option, ScanItem
from uuid_forge.record import Partition, RawEntry, Record, load_json

_NAMED: dict[str, dict[str, dict[uuid.UUID, Record]]] = {}


class MemoryAdapter(Adapter):
    """Keeps UUID objects as dict keys; the reference implementation of the contract."""

    name: ClassVar[str] = "memory"
    process_local = True

    options: ClassVar[tuple[Option, ...]] = (BATCH_SIZE,)

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        opts = self.parse_options(url, options)
        super().__init__(url, batch_size=opts["batch_size"])
        label = urlsplit(url).netloc
        self._data: dict[str, dict[uuid.UUID, Record]] = _NAMED.setdefault(label, {}) if label else {}

    def shared(self, entity_type: str) -> bool:
        return False  # this process's own dict: only uuid-forge writes it

    def _put(self, entity_type: str, records: list[Record]) -> None:
        table = self._data.setdefault(entity_type, {})
        view = self.view
        for r in records:
            data = load_json(r.data_json)  # every digit kept
            held = table.get(r.id)
            if held is not None and not view.full:  # keep the fields this store's view does not own
                data = view.merged(held.data, data)
            table[r.id] = Record(entity_type, r.id, data, r.key)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        table = self._data.get(entity_type, {})  # fingerprints from the data held, not the write-time hint
        return [Record(entity_type, i, r.data, r.key) for i in ids if (r := table.get(i)) is not None]

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Nothing: this dict holds records under UUIDs only, so no entry has a raw name (a scan
        never reports a ForeignEntry or MalformedID here) and every name asked for is absent."""
        return []

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        table = self._data.get(entity_type, {})
        return sum(1 for i in ids if table.pop(i, None) is not None)

    def erasure_limits(self, entity_type: str) -> list[str]:
        """Nothing outlives a delete here: the data lived in this process's memory only."""
        return []

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        for ident, record in list(self._data.get(entity_type, {}).items()):
            yield ident, self.fingerprint_data(record.data)

    def _entity_types(self) -> Iterable[str]:
        return [t for t, table in self._data.items() if table]
