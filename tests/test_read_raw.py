"""``Adapter.read_raw`` (issue 21): the public method's batching, errors and shape, on fakes.

The stores' own ``_read_raw`` run on the real servers in integration/test_read_raw.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge.contract import Adapter
from uuid_forge.errors import StoreError, StoreUnavailableError, ValidationError
from uuid_forge.record import RawEntry, Record


class FakeRawStore(MemoryAdapter):
    """A memory store that also holds entries under raw names (a fake: real stores are tested on
    their servers), decoding them with the same code as its records."""

    name = "fake-raw"

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        self.raw: dict[str, Any] = {}
        self.batches: list[int] = []
        self.down = False

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        self.batches.append(len(raws))
        if self.down:
            raise ConnectionError("connection refused by 10.0.0.1 password=hunter2")
        return [self._raw_entry(entity_type, r, _decode, self.raw[r], f"entry {r}") for r in raws if r in self.raw]

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        return sum(self.raw.pop(r, None) is not None for r in raws)


def _decode(entity_type: str, ident: uuid.UUID, stored: Any) -> Record:
    return Record(entity_type, ident, dict(stored))  # a non-mapping raises: the entry is unreadable


def test_read_raw_batches_and_leaves_absent_names_out() -> None:
    store = FakeRawStore(batch_size=2)
    store.raw = {"user:42": {"email": "ann@example.com"}, "user:43": ["not", "a", "record"]}
    got = store.read_raw("user", (n for n in ["user:42", "user:43", "user:44", "user:45", "user:46"]))
    assert store.batches == [2, 2, 1]
    assert set(got) == {"user:42", "user:43"}
    assert got["user:42"] == RawEntry("user:42", {"email": "ann@example.com"})
    bad = got["user:43"]
    assert bad.data is None and bad.reason.startswith("entry u•••:4• cannot be read: ")  # the name's shape
    assert "ann@example.com" not in repr(got["user:42"])
    assert store.read_raw("user", []) == {}


def test_read_raw_translates_driver_errors_and_checks_its_input() -> None:
    store = FakeRawStore()
    store.down = True
    with pytest.raises(StoreUnavailableError, match=r"read_raw\(user, 1 entries\)") as err:
        store.read_raw("user", ["user:42"])
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValidationError):
        store.read_raw("../etc", ["x"])
    with pytest.raises(ValidationError, match="as str"):
        store.read_raw("user", [42])  # type: ignore[list-item]


def test_read_raw_is_optional_and_needs_read() -> None:
    with MemoryAdapter() as memory:  # holds UUID names only: every raw name is absent
        assert memory.read_raw("user", ["user:42"]) == {}

    class NoRaw(MemoryAdapter):
        _read_raw = Adapter._read_raw

    with pytest.raises(StoreError, match="does not support read_raw"):
        NoRaw().read_raw("user", ["user:42"])
    write_only = MemoryAdapter()
    write_only.capabilities = frozenset({"write"})
    with pytest.raises(StoreError, match="does not support read"):
        write_only.read_raw("user", ["user:42"])


def test_delete_raw_proven_deletes_only_entries_still_holding_the_proven_data() -> None:
    store = FakeRawStore(batch_size=2)
    ann, bob = {"email": "ann@example.com", "name": "Ann"}, {"email": "bob@example.com"}
    store.raw = {"user:1": dict(ann), "user:2": dict(bob), "user:3": ["unreadable"], "session:x": {"t": 1}}
    proven = {"user:1": ann, "user:2": {**bob, "name": "Bob"}, "user:3": {}, "user:4": ann}
    assert store.delete_raw_proven("user", proven) == 1  # user:2 changed since, user:3 unreadable, user:4 absent
    assert set(store.raw) == {"user:2", "user:3", "session:x"}
    assert store.delete_raw_proven("user", {"user:2": bob}) == 1
    with pytest.raises(StoreError, match="does not support delete_raw_proven"):
        class NoDelete(FakeRawStore):
            _delete_raw_names = Adapter._delete_raw_names

        gone = NoDelete()
        gone.raw = {"user:1": dict(ann)}
        gone.delete_raw_proven("user", {"user:1": ann})


def test_read_raw_and_delete_raw_proven_never_show_a_raw_name(caplog: pytest.LogCaptureFixture) -> None:
    """A raw name can be personal data (``user:ann@example.com``): the reasons, the entries' repr
    and the warnings of read_raw and delete_raw_proven show only its shape."""
    store = FakeRawStore()
    store.raw = {"user:ann@example.com": ["not", "a", "record"], "user:bob@example.com": {"email": "bob@example.com"}}
    with caplog.at_level(logging.DEBUG):
        got = store.read_raw("user", ["user:ann@example.com", "user:bob@example.com"])
        shown = " ".join(f"{e!r} {e.reason}" for e in got.values())
        assert store.delete_raw_proven("user", {"user:ann@example.com": {}, "user:bob@example.com": {"x": 1}}) == 0
    assert got["user:ann@example.com"].data is None and "cannot be read" in got["user:ann@example.com"].reason
    assert caplog.records, "the unreadable entry is logged (masked)"
    for text in (shown, caplog.text):
        assert "ann@example" not in text and "bob@example" not in text, text
