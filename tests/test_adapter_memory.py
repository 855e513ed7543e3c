"""The contract suite against the in-process memory adapter (the reference implementation)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

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

    # -- ownership (issue 18): another application's field in a record of a shared memory:// dict --
    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        assert isinstance(store, MemoryAdapter)
        held = store._data[entity_type][ident]
        store._data[entity_type][ident] = Record(entity_type, ident, {**held.data, name: value}, held.key)
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        assert isinstance(store, MemoryAdapter)
        return store._data[entity_type][ident].data.get(name)
