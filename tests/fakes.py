"""In-process fakes for fast unit tests. They are fakes: the integration suite uses real servers."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge.contract import ScanItem
from uuid_forge.errors import StoreUnavailableError
from uuid_forge.rangehash import record_digest
from uuid_forge.record import Partition, Record


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


class FakeHashingStore(MemoryAdapter):
    """A memory store that answers range digests from Python (as a SQL store does in its server),
    counting its digest queries and scans; ``outsiders`` pretends it holds entries no range counts."""

    name = "fake-hashing"

    def __init__(self, url: str = "memory://", algorithms: tuple[str, ...] = ("md5",), outsiders: int = 0,
                 **options: Any) -> None:
        super().__init__(url, **options)
        self.algorithms, self.outsiders = algorithms, outsiders
        self.calls: Counter[str] = Counter()  # shared with the audit's copies (with_id_versions)
        self.unhashable: set[uuid.UUID] = set()  # IDs whose data the fake "cannot hash": their range is None

    def digest_algorithms(self, entity_type: str) -> tuple[str, ...]:
        return self.algorithms if self.view.full else ()

    def digest_outsiders(self, entity_type: str) -> int | None:
        return self.outsiders

    def range_digests(self, entity_type: str, ranges: list[Partition], algorithm: str
                      ) -> list[tuple[int, int] | None] | None:
        self.calls["digests"] += 1
        table = self._data.get(entity_type, {})
        out: list[tuple[int, int] | None] = []
        for r in ranges:
            held = [(i, rec) for i, rec in table.items() if r.contains(i)]
            if any(i in self.unhashable for i, _ in held):
                out.append(None)
                continue
            out.append((len(held), sum(record_digest(i, rec.data_json, algorithm) for i, rec in held)))
        return out

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        self.calls["scans"] += 1
        return super()._scan(entity_type, partition)


def scan_items() -> list[tuple[Any, Any]]:
    """A scan's items of every kind: 199 IDs, one given twice, a wrong-form twin, a name with no
    ID and another application's key (uuid_forge.onepass and uuid_forge.scanprocess tests)."""
    from uuid_forge.record import ForeignEntry, MalformedID, TextFingerprint

    ids = [uuid.UUID(int=(n * 0x9E3779B97F4A7C15 << 64) % (1 << 128) | n) for n in range(1, 200)]
    out: list[tuple[Any, Any]] = [(i, TextFingerprint(f'{{"n":{n}}}')) for n, i in enumerate(ids)]
    out.append((ids[0], TextFingerprint('{"n":0}')))  # SCAN gave the key twice
    out.append((MalformedID(str(ids[1]).upper(), "uppercase", ids[1]), "0" * 32))  # beside its twin
    out.append((MalformedID("x:zz", "no ID"), None))
    out.append((ForeignEntry("x:session-1", "not ours"), None))
    return out


class FakeListedStore:
    """A store opened again in another process (uuid_forge.scanprocess) whose scan gives
    :func:`scan_items`. Its URL says how to misbehave: ``fake://kill`` dies by SIGKILL as it
    opens, ``fake://fail`` raises one of uuid-forge's errors, ``fake://driver`` a driver's own
    (whose message holds the URL's password)."""

    def __init__(self, url: str) -> None:
        self._url = url

    @classmethod
    def from_url(cls, url: str, **options: Any) -> FakeListedStore:
        import os
        import signal

        from uuid_forge.errors import ConfigError

        if url == "fake://kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if url == "fake://fail":
            raise ConfigError(f"store URL {url!r}: option {min(options)!r} is not known here")
        if url.startswith("fake://driver"):
            raise RuntimeError(f"cannot reach {url}")
        return cls(url)

    def scan(self, entity_type: str, within: Partition, include_malformed: bool = False) -> Iterator[ScanItem]:
        yield from scan_items()

    def close(self) -> None:
        """Nothing to release."""
