"""Fast checks (no servers) that an optional store failing half-way through an audit is left out,
not fatal: the others are audited and reported, and the report says which store was not audited.

The failing store is a fake: the in-process memory adapter whose scan fails from its second call on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.errors import StoreUnavailableError
from uuid_forge.forge import StoreHandle

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("partial.uuid-forge.test"), salt="partial-m")
ET = "user"


class _DiesAfterOneScan:
    """Wraps an adapter's scan: the first partition is read, then the store 'goes away'."""

    def __init__(self, adapter: Any) -> None:
        self.calls = 0
        real = adapter.scan

        def scan(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.calls > 1:
                raise StoreUnavailableError("fake://cache: scan failed, store unreachable: connection refused")
            return real(*args, **kwargs)

        adapter.scan = scan


def _forge(tmp_path: Path, cache_required: bool) -> tuple[Forge, Any]:
    cache, files = open_store("memory://"), open_store(f"file://{tmp_path}/files?fsync=false")
    return make_forge(tmp_path, "memory://", StoreHandle("cache", cache, required=cache_required), ("files", files),
                      ids=IDS, journal="j.sqlite3"), cache


def _write_and_plant(forge: Forge, files_dir: Path) -> str:
    rows = [(ET, {"email": f"u{i}@x.org"}, {"email": f"u{i}@x.org", "n": i}) for i in range(40)]
    forge.write_many(rows)
    victim = forge.records(rows)[3].id
    forge.stores[2].adapter.delete_many(ET, [victim])  # a real finding in the store that stays up
    return str(victim)


def test_an_optional_store_lost_mid_audit_is_left_out_and_the_others_reported(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid_forge.compare as audit_mod

    monkeypatch.setattr(audit_mod, "PARTITION_TARGET", 10)  # 40 records: 4 partitions
    forge, cache = _forge(tmp_path, cache_required=False)
    with forge:
        victim = _write_and_plant(forge, tmp_path / "files")
        dying = _DiesAfterOneScan(cache)
        report = forge.audit(ET)
        assert dying.calls >= 2  # it did fail after the first partition
        assert list(report.not_audited) == ["cache"] and "unreachable" in report.not_audited["cache"]
        assert "cache" not in report.stores  # no partial counts that would read as the whole store
        assert [(f.store, f.id, f.kind) for f in report.findings] == [("files", victim, "missing")]
        assert report.stores["files"]["ok"] == 39
        assert not report.complete and not report.consistent


def test_a_required_store_lost_mid_audit_still_aborts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid_forge.compare as audit_mod

    monkeypatch.setattr(audit_mod, "PARTITION_TARGET", 10)
    forge, cache = _forge(tmp_path, cache_required=True)
    with forge:
        _write_and_plant(forge, tmp_path / "files")
        _DiesAfterOneScan(cache)
        with pytest.raises(StoreUnavailableError):
            forge.audit(ET)


@pytest.mark.parametrize("required", [False, True], ids=["optional", "required"])
def test_a_store_read_once_that_fails_is_left_out_or_aborts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             required: bool) -> None:
    """A store whose scan walks everything (Redis: read once per audit, uuid_forge.onepass) failing
    during its single read: left out when optional, the audit aborted when required."""
    import uuid_forge.compare as audit_mod

    monkeypatch.setattr(audit_mod, "PARTITION_TARGET", 10)  # 40 records: 4 partitions
    forge, cache = _forge(tmp_path, cache_required=required)
    with forge:
        victim = _write_and_plant(forge, tmp_path / "files")
        cache.whole_scan = True  # the fake walks like Redis
        real = cache.scan
        calls: list[Any] = []

        def scan(entity_type: str, partition: Any = None, **kwargs: Any) -> Any:
            calls.append(partition)
            for n, item in enumerate(real(entity_type, partition, **kwargs)):
                if n == 20:
                    raise StoreUnavailableError("fake://cache: scan failed, store unreachable: connection reset")
                yield item

        cache.scan = scan
        if required:
            with pytest.raises(StoreUnavailableError):
                forge.audit(ET)
            return
        report = forge.audit(ET)
        assert len(calls) == 1 and calls[0].count == 1  # one read of the whole store, not one per partition
        assert list(report.not_audited) == ["cache"] and "unreachable" in report.not_audited["cache"]
        assert "cache" not in report.stores
        assert [(f.store, f.id, f.kind) for f in report.findings] == [("files", victim, "missing")]
        assert not report.complete
