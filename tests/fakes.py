"""In-process fakes for fast unit tests. They are fakes: the integration suite uses real servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge.errors import StoreUnavailableError
from uuid_forge.record import Record


class FakeFlakyStore(MemoryAdapter):
    """A memory store that is 'down' for its first ``failures`` writes, or while ``down`` is set."""

    name = "fake-flaky"

    def __init__(self, url: str = "memory://", failures: int = 0, down: bool = False, **options: Any) -> None:
        super().__init__(url, **options)
        self.failures = failures
        self.down = down
        self.calls = 0

    def _put(self, entity_type: str, records: list[Record]) -> None:
        self.calls += 1
        if self.down or self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("fake outage: connection refused", store=self.url())
        super()._put(entity_type, records)

    def ids(self, entity_type: str) -> set[uuid.UUID]:
        return set(self._data.get(entity_type, {}))


def entities(n: int, entity_type: str = "user", version: int = 1) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(entity_type, {"email": f"u{i}@example.com"}, {"name": f"User {i}", "v": version}) for i in range(n)]


def all_ids(stores: Iterable[MemoryAdapter], entity_type: str) -> list[set[uuid.UUID]]:
    return [set(s._data.get(entity_type, {})) for s in stores]
