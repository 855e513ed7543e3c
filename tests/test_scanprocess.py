"""A whole-scan store read by a process of its own (uuid_forge.scanprocess, onepass.fill_spill):
the same buckets as a read in this process, the child's errors raised here as uuid-forge's with their message and no
secret, a killed child an error rather than a hang or an empty store; and only a store opened
from its URL, with ``read_apart`` and ``read_once``, read that way."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import open_store
from uuid_forge.errors import ConfigError, StoreError
from uuid_forge.onepass import Buckets, SpillFiles, fill_spill
from uuid_forge.record import Partition
from uuid_forge.scanprocess import reopen_spec, run_apart

from .fakes import FakeListedStore, scan_items


def _contents(b: Buckets, parts: list[Partition]) -> tuple[list[Any], list[Any]]:
    per = [sorted((str(i), str(fp)) for i, fp in b.items(p)) for p in parts]
    return per, sorted(str(i) for i, _ in b.others())


def _apart(url: str, parts: list[Partition], **options: Any) -> Buckets:
    out = Buckets(Partition(), parts)
    out.spill = SpillFiles()
    try:
        out.count = run_apart((FakeListedStore, url, options), "reading user", fill_spill,  # type: ignore[arg-type]
                              "user", Partition(), parts, out.spill.dir, None, None)
    except BaseException:
        out.close()
        raise
    return out


def test_a_child_fills_the_buckets_a_thread_would() -> None:
    parts = Partition().split(8)
    here = Buckets(Partition(), parts)
    here.add_all(scan_items())
    apart = _apart("fake://ok", parts)
    try:
        assert apart.count == here.count == len(scan_items())
        assert _contents(apart, parts) == _contents(here.finish(), parts)
        assert len(_contents(apart, parts)[1]) == 2  # the name with no ID and the foreign key came back
    finally:
        folder = apart.spill.dir if apart.spill else ""
        apart.close()
    assert folder and not os.path.exists(folder)


def test_the_childs_error_is_raised_here_as_ours() -> None:
    with pytest.raises(ConfigError, match="'bogus' is not known here"):
        _apart("fake://fail", [Partition()], bogus=1)


def test_a_drivers_error_in_the_child_is_a_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as caught:
        _apart("fake://driver:s3cret@host", [Partition()])
    assert "RuntimeError" in str(caught.value) and "s3cret" not in str(caught.value)


def test_a_killed_child_is_an_error_not_an_empty_store() -> None:
    with pytest.raises(StoreError, match="ended without an answer"):
        _apart("fake://kill", [Partition()])


def test_only_a_store_opened_from_its_url_with_read_apart_and_read_once_is_read_apart(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    assert reopen_spec(store) is None  # neither read_once nor read_apart
    store.whole_scan, store.read_apart = True, True
    spec = reopen_spec(store)
    assert spec is not None and spec[0] is type(store) and spec[1] == f"file://{tmp_path}"
    assert spec[2]["view"] == store.view and spec[2]["id_versions"] == store.id_versions
    store.read_apart = False
    assert reopen_spec(store) is None
    made = type(store)(f"file://{tmp_path}")  # made around its constructor, not from_url: nothing to reopen
    made.whole_scan, made.read_apart = True, True
    assert reopen_spec(made) is None
    store.read_apart = True
    store._opened_with = (f"file://{tmp_path}", {"hook": lambda: uuid.uuid4()})  # a local function: not sent
    assert reopen_spec(store) is None
