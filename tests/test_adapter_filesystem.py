"""The file adapter: the contract suite on a temporary root, plus what a filesystem adds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from uuid_forge.adapters.filesystem import FileAdapter

from uuid_forge import Record, StoreUnavailableError, ValidationError, open_store
from uuid_forge.contract import Adapter
from uuid_forge.record import ForeignEntry, MalformedID, Partition, same_fingerprint
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import INJECTION_STRINGS, sample_records


def _shard_dir(root: Path, entity_type: str, ident: uuid.UUID) -> Path:
    return root / entity_type / ident.hex[0:2] / ident.hex[2:4]


class TestFileAdapter(AdapterContract):
    """Default settings (fsync on); a smaller bulk keeps the fast suite fast on slow disks."""

    bulk_size = 2_000
    invalid_entity_types = (*AdapterContract.invalid_entity_types, "User", "a/b", "..", "con", "nul.txt", "a.")

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        self.root = tmp_path / "store"
        with open_store(self.root.as_uri()) as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        path = _shard_dir(self.root, record.entity_type, record.id) / f"{record.id}.json"
        assert path.is_file()
        assert os.listdir(path.parent) == [path.name]  # the exact lowercase name, nothing else beside it
        assert path.name == path.name.lower() and len(path.stem) == 36
        # the default layout: the entity's data as a JSON document, nothing of uuid-forge's around it
        assert path.read_text(encoding="utf-8") == record.data_json + "\n"
        assert json.loads(path.read_text(encoding="utf-8")) == record.json_data

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        folder = _shard_dir(self.root, entity_type, ident)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{str(ident).upper()}.json").write_text(json.dumps({"x": 1}), encoding="utf-8")
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        """Another application's JSON file, named as it names them, in the shard folder its name reads as."""
        folder = _shard_dir(self.root, entity_type, uuid.UUID(name))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
        return True


    # -- ownership (issue 18): another application's member in the record's JSON object ----------
    #: the file of a record that holds a JSON object another application may add members to
    shared_suffix = ".json"

    def _shared(self, entity_type: str, ident: uuid.UUID) -> Path:
        return _shard_dir(self.root, entity_type, ident) / f"{ident}{self.shared_suffix}"

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        path = self._shared(entity_type, ident)
        doc = json.loads(path.read_text(encoding="utf-8"))
        path.write_text(json.dumps({**doc, name: value}), encoding="utf-8")
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        return json.loads(self._shared(entity_type, ident).read_text(encoding="utf-8")).get(name)


class TestFileAdapterEnvelope(TestFileAdapter):
    """``layout=envelope``: uuid-forge 1.0's {fp, id, key, data} files, still read and written."""

    bulk_size = 500

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        self.root = tmp_path / "store"
        with open_store(self.root.as_uri() + "?layout=envelope") as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        path = _shard_dir(self.root, record.entity_type, record.id) / f"{record.id}.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert list(doc) == ["fp", "id", "key", "data"] and doc["id"] == str(record.id)
        assert doc["data"] == record.json_data and doc["key"] == json.loads(record.key_json or "null")

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        folder = _shard_dir(self.root, entity_type, ident)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{str(ident).upper()}.json").write_text(
            json.dumps({"fp": "0" * 32, "id": str(ident), "key": None, "data": {}}), encoding="utf-8")
        return True



class TestFileAdapterRaw(TestFileAdapter):
    """``layout=raw``: one field's text as the file's bytes, the other fields in a sidecar.

    The content field is ``name`` (utf-8), which every record of the contract has; the injection
    strings are given one too.
    """

    bulk_size = 500

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        self.root = tmp_path / "store"
        with open_store(self.root.as_uri() + "?layout=raw&content_field=name&content_encoding=utf-8") as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        folder = _shard_dir(self.root, record.entity_type, record.id)
        assert sorted(os.listdir(folder)) == [f"{record.id}.bin", f"{record.id}.meta.json"]
        assert (folder / f"{record.id}.bin").read_bytes() == record.json_data["name"].encode("utf-8")
        meta = json.loads((folder / f"{record.id}.meta.json").read_text(encoding="utf-8"))
        assert meta == {k: v for k, v in record.json_data.items() if k != "name"}

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        folder = _shard_dir(self.root, entity_type, ident)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{str(ident).upper()}.bin").write_bytes(b"planted")  # the content file names the record
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        folder = _shard_dir(self.root, entity_type, uuid.UUID(name))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.bin").write_bytes(b"their content")
        (folder / f"{name}.meta.json").write_text(json.dumps(data), encoding="utf-8")
        return True
    shared_suffix = ".meta.json"  # the sidecar: the content file is ours whole

    def test_injection_strings_are_data(self, store: Adapter, etype: str) -> None:
        records = [Record(etype, uuid.uuid5(uuid.NAMESPACE_URL, s), {"name": s, "text": s, "key": {s: s}}, {"s": s})
                   for s in INJECTION_STRINGS]
        store.put_many(records)
        assert dict(store.scan(etype)) == {r.id: r.fingerprint for r in records}
        got = store.get_many(etype, [r.id for r in records])
        assert {i: r.json_data for i, r in got.items()} == {r.id: r.json_data for r in records}


class TestFileAdapterWithoutFsync(TestFileAdapter):
    """The full 10,000-record bulk, with ``fsync=false`` (the layout is the same)."""

    bulk_size = 10_000

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Adapter]:
        self.root = tmp_path / "store"
        with open_store(self.root.as_uri() + "?fsync=false") as s:
            assert isinstance(s, FileAdapter) and not s.fsync
            yield s


# -- filesystem-specific behaviour -------------------------------------------------------------
@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def store(root: Path) -> Iterator[FileAdapter]:
    with open_store(root.as_uri()) as s:
        assert isinstance(s, FileAdapter)
        yield s


def _all_files(top: Path) -> set[Path]:
    return {p for p in top.rglob("*")}


@pytest.mark.parametrize("bad", ["../escape", "../../etc", "a/b", "a\\b", "User", "USER", "..", "con", "aux.x", "a."])
def test_bad_entity_types_write_nothing_anywhere(tmp_path: Path, store: FileAdapter, bad: str) -> None:
    before = _all_files(tmp_path)
    with pytest.raises(ValidationError, match="not accepted by file"):
        store.put_many([Record(bad, uuid.uuid4(), {"x": 1}), *sample_records("good", 2)])
    assert _all_files(tmp_path) == before


def test_symlinked_type_directory_outside_root_is_refused(tmp_path: Path, root: Path, store: FileAdapter) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "sneaky").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValidationError, match="outside the root"):
        store.put_many(sample_records("sneaky", 1))
    assert list(outside.iterdir()) == []


def test_layout_is_lowercase_and_sharded(root: Path, store: FileAdapter) -> None:
    record = sample_records("user", 1)[0]
    store.put_many([record])
    s = str(record.id)
    expected = root / "user" / s[0:2] / s[2:4] / f"{s}.json"
    assert store.path_of("user", record.id) == str(expected)
    assert expected.read_bytes() == (record.data_json + "\n").encode()
    assert all(p.name == p.name.lower() for p in _all_files(root))


def test_crash_leftover_temp_file_is_ignored(root: Path, store: FileAdapter) -> None:
    records = sample_records("doc", 3)
    store.put_many(records)
    folder = _shard_dir(root, "doc", records[0].id)
    (folder / f".{records[0].id}.123-deadbeef.tmp").write_text('{"name":"half-writ', encoding="utf-8")
    assert dict(store.scan("doc", include_malformed=True)) == {r.id: r.fingerprint for r in records}
    assert store.get_many("doc", [records[0].id])[records[0].id].fingerprint == records[0].fingerprint
    store.put_many(records[:1])  # rewriting beside the leftover works and keeps it untouched
    assert (folder / f".{records[0].id}.123-deadbeef.tmp").exists()


def test_no_temp_files_left_after_writes(root: Path, store: FileAdapter) -> None:
    store.put_many(sample_records("doc", 50))
    store.put_many(sample_records("doc", 50, version=2))
    assert [p for p in _all_files(root) if p.name.startswith(".")] == []


@pytest.mark.parametrize("name, reason", [
    ("{hex}.json", "hex form"),
    ("{upper}.json", "not lowercase"),
])
def test_wrongly_named_files_are_malformed(root: Path, store: FileAdapter, name: str, reason: str) -> None:
    good = sample_records("doc", 1)[0]
    store.put_many([good])
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, "wrongly-named")  # an ID this scheme could make (version 5)
    folder = _shard_dir(root, "doc", ident)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name.format(hex=ident.hex, upper=str(ident).upper())).write_text("{}")
    items = list(store.scan("doc", include_malformed=True))
    (bad,) = [i for i, _ in items if isinstance(i, MalformedID)]
    assert reason in bad.reason
    assert bad.id == ident
    assert bad.raw.startswith(f"doc/{str(ident)[0:2]}/{str(ident)[2:4]}/")
    assert [i for i, _ in store.scan("doc")] == [good.id]


# Not ours in any form: other files, and a UUID of a version this scheme never makes (issue 10:
# these were "malformed" and a plain repair deleted them).
@pytest.mark.parametrize("name", ["{string}.txt", "notes.json", "README.txt", "{v4}.json"])
def test_other_files_are_foreign(root: Path, store: FileAdapter, name: str) -> None:
    good = sample_records("doc", 1)[0]
    store.put_many([good])
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, "wrongly-named")
    folder = _shard_dir(root, "doc", ident)
    folder.mkdir(parents=True, exist_ok=True)
    v4 = uuid.UUID("7570842a-fbec-40d3-ae25-3f1c2bda326b")
    (folder / name.format(string=ident, v4=str(v4).upper())).write_text("{}")
    items = list(store.scan("doc", include_malformed=True))
    assert [i for i, _ in items if isinstance(i, MalformedID)] == []
    (other,) = [i for i, _ in items if isinstance(i, ForeignEntry)]
    assert other.raw.startswith(f"doc/{str(ident)[0:2]}/{str(ident)[2:4]}/") and "not ours" in other.reason
    with pytest.raises(ValidationError, match="never deleted"):
        store.delete_raw("doc", [other.raw])
    assert (root / other.raw).exists()


def test_file_in_the_wrong_shard_is_malformed(root: Path, store: FileAdapter) -> None:
    record = sample_records("doc", 1)[0]
    store.put_many([record])
    s = str(record.id)
    wrong = root / "doc" / s[0:2] / ("00" if s[2:4] != "00" else "01")
    wrong.mkdir()
    os.replace(store.path_of("doc", record.id), wrong / f"{s}.json")
    ((bad, fp),) = list(store.scan("doc", include_malformed=True))
    assert isinstance(bad, MalformedID) and bad.id == record.id and "belongs in" in bad.reason
    assert fp == record.fingerprint
    assert store.get_many("doc", [record.id]) == {}


def test_scan_walks_only_the_partition_shards(store: FileAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
    from uuid_forge.adapters import filesystem

    records = sample_records("doc", 200)
    store.put_many(records)
    opened: list[str] = []
    real = filesystem._read_bytes
    monkeypatch.setattr(filesystem, "_read_bytes", lambda path: opened.append(path) or real(path))
    for part in Partition(0, 1).split(16):
        opened.clear()
        inside = sorted(r.id for r in records if part.contains(r.id))
        assert sorted(i for i, _ in store.scan("doc", part)) == inside
        assert len(opened) == len(inside)  # files of other partitions are not even opened


def test_reformatted_file_is_read_by_parsing(root: Path, store: FileAdapter) -> None:
    """A file rewritten by another program (indented, keys reordered) holds the same data."""
    record = sample_records("doc", 1)[0]
    path = Path(store.path_of("doc", record.id))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(dict(reversed(list(record.json_data.items()))), indent=2))
    ((ident, fp),) = store.scan("doc")
    assert ident == record.id and same_fingerprint(fp, record.fingerprint)
    back = store.get_many("doc", [record.id])[record.id]
    assert back.json_data == record.json_data and back.key is None
    path.write_text(json.dumps({**record.json_data, "version": 99}))
    ((_, fp),) = store.scan("doc")
    assert not same_fingerprint(fp, record.fingerprint)


def test_envelope_files_are_read_from_their_data(root: Path, tmp_path: Path) -> None:
    """layout=envelope: the data member is compared, whatever the fp member says."""
    record = sample_records("doc", 1)[0]
    with open_store(root.as_uri() + "?layout=envelope") as store:
        path = Path(store.path_of("doc", record.id))
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"id": str(record.id), "data": record.json_data, "fp": "0" * 32}, indent=2))
        ((_, fp),) = store.scan("doc")
        assert same_fingerprint(fp, record.fingerprint)
        assert store.get_many("doc", [record.id])[record.id].json_data == record.json_data
        path.write_text(json.dumps({"id": str(record.id), "data": {**record.json_data, "n": -1},
                                    "fp": record.fingerprint}))
        ((_, fp),) = store.scan("doc")
        assert not same_fingerprint(fp, record.fingerprint)


def test_entity_types_are_directories_with_records(root: Path, store: FileAdapter) -> None:
    records = sample_records("doc", 2)
    store.put_many([*records, *sample_records("user", 1)])
    (root / "Stray").mkdir()
    (root / ".hidden").mkdir()
    assert store.entity_types() == ["doc", "user"]
    store.delete_many("doc", [r.id for r in records])
    assert store.entity_types() == ["user"]


@pytest.mark.parametrize("url", ["file://relative/path", "file://server/share", "file:relative"])
def test_relative_or_remote_roots_are_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        FileAdapter(url)


def test_localhost_and_options_in_the_url(tmp_path: Path) -> None:
    store = open_store(f"file://localhost{tmp_path}/x?fsync=no&batch_size=7")
    assert isinstance(store, FileAdapter)
    assert (store.root, store.fsync, store.batch_size) == (str(tmp_path / "x"), False, 7)
    with pytest.raises(ValidationError, match="unknown"):
        open_store(f"file://{tmp_path}?fsnyc=no")


def test_ping_creates_root_and_reports_unusable_ones(tmp_path: Path) -> None:
    open_store((tmp_path / "new" / "root").as_uri()).ping()
    assert (tmp_path / "new" / "root").is_dir()
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnavailableError):
        open_store((tmp_path / "file" / "root").as_uri()).ping()


_KILLED_MID_DELETE = """
import os, signal, sys
import uuid_forge.adapters.filesystem as fs
from uuid_forge import open_store

def killed(path):  # the process dies between the rename and the unlink
    os.kill(os.getpid(), signal.SIGKILL)

fs.os.unlink = killed
with open_store(sys.argv[1]) as store:
    store.delete_raw_proven("user", {"user/46.json": {"email": "old@example.com", "name": "Old"}})
"""


def test_a_file_left_aside_by_a_killed_delete_is_put_back_and_deleted_again(tmp_path: Path) -> None:
    """contract's file delete renames the file to a private dot-name before its unlink: a kill in
    between leaves it there, hidden from scans. The next read of that name (contract run again)
    puts it back, so it is proven and deleted again instead of staying hidden; a copy that a live
    process holds aside is left to that process."""
    old = {"email": "old@example.com", "name": "Old"}
    url = f"file://{tmp_path}?fsync=false"
    top = tmp_path / "user"
    top.mkdir()
    (top / "46.json").write_text(json.dumps(old), encoding="utf-8")
    child = subprocess.run([sys.executable, "-c", _KILLED_MID_DELETE, url], check=False, capture_output=True,
                           timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    aside = [p.name for p in top.iterdir() if p.name.startswith(".46.json.uf-delete-")]
    assert len(aside) == 1 and not (top / "46.json").exists()
    with open_store(url) as store:
        assert not [item for item in store.scan("user", include_malformed=True)]  # hidden from scans
        assert store.read_raw("user", ["user/46.json"])["user/46.json"].data == old  # put back, read
        assert (top / "46.json").exists() and not [p for p in top.iterdir() if p.name.startswith(".46.json.")]
        assert store.delete_raw_proven("user", {"user/46.json": old}) == 1
        assert sorted(p.name for p in top.iterdir()) == []
        # a copy held aside by a process still alive (this one), just now: a delete under way, left alone
        (top / f".47.json.uf-delete-{os.getpid()}-0123abcd").write_text(json.dumps(old), encoding="utf-8")
        assert store.read_raw("user", ["user/47.json"]) == {}
        assert sorted(p.name for p in top.iterdir()) == [f".47.json.uf-delete-{os.getpid()}-0123abcd"]
