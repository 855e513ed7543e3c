"""``delete_many(..., token=)`` reaches the adapter's ``_delete`` hook, per call and per thread:
a store that publishes delete events makes their message_id from it (issue 19)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import ClassVar

from uuid_forge.contract import DELETE, WRITE, Adapter
from uuid_forge.record import Partition, Record


class FakeEventLog(Adapter):
    """A fake store that records the token each ``_delete`` saw; the first call waits for a second
    thread's call to run in between."""

    name: ClassVar[str] = "fake-events"
    capabilities: ClassVar[frozenset[str]] = frozenset({WRITE, DELETE})
    append_only: ClassVar[bool] = True

    def __init__(self) -> None:
        super().__init__("fake-events://")
        self.seen: list[tuple[str, str]] = []
        self.inside, self.go_on = threading.Event(), threading.Event()

    def _put(self, entity_type: str, records: list[Record]) -> None:
        pass

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        if not self.inside.is_set():
            self.inside.set()
            self.go_on.wait(5)
        self.seen.append((threading.current_thread().name, self._delete_token))
        return len(ids)

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[tuple[uuid.UUID, str | None]]:
        return iter(())


def test_each_call_and_thread_sees_its_own_token() -> None:
    store = FakeEventLog()
    first = threading.Thread(target=store.delete_many, args=("t", [uuid.uuid4()]), kwargs={"token": "a"}, name="A")
    first.start()
    assert store.inside.wait(5)
    second = threading.Thread(target=store.delete_many, args=("t", [uuid.uuid4()]), kwargs={"token": "b"}, name="B")
    second.start()
    second.join(5)
    store.go_on.set()
    first.join(5)
    assert sorted(store.seen) == [("A", "a"), ("B", "b")]
    assert store._delete_token == ""  # nothing left behind once the calls are done
    store.delete_many("t", [uuid.uuid4()])
    assert store.seen[-1][1] == ""  # no token given: none
