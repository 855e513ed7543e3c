"""The contract suite against the in-process memory adapter (the reference implementation)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import Record, open_store
from uuid_forge.contract import Adapter
from uuid_forge.testing import AdapterContract


class TestMemoryAdapter(AdapterContract):
    @pytest.fixture
    def store(self) -> Iterator[Adapter]:
        with open_store("memory://") as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        assert isinstance(store, MemoryAdapter)
        table = store._data[record.entity_type]
        (key,) = table
        assert type(key) is uuid.UUID and key == record.id
