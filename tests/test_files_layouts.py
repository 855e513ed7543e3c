"""The file store's layouts (issue 11): the data as a JSON document (default), raw bytes with a
metadata sidecar (the seed's file manager), and the old envelope.

The filesystem is real: files are written, edited and read back here with plain Python (the
"raw driver"), never through uuid-forge, and the audit runs against a SQLite source.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from uuid_forge.adapters.filesystem import LAYOUTS, DataLayout, FileAdapter

from uuid_forge import Forge, IDConfig, Namespace, Record, ValidationError, open_store
from uuid_forge import options as options_module
from uuid_forge.canonical import canonical
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import OptionError
from uuid_forge.options import OptionDeprecationWarning
from uuid_forge.record import ForeignEntry, MalformedID, same_fingerprint

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("files.uuid-forge.test"), salt="files-layouts")
ET = "document"


def _folder(root: Path, ident: uuid.UUID, et: str = ET) -> Path:
    s = str(ident)
    return root / et / s[:2] / s[2:4]


@pytest.fixture
def forge_for(tmp_path: Path) -> Iterator[Callable[..., Forge]]:
    """A Forge over a SQLite source and a file store at tmp_path/files opened with ``query``."""
    opened: list[Forge] = []

    def make(query: str = "", *, with_files: bool = True, types: list[EntityType] | None = None) -> Forge:
        files = [("files", f"file://{tmp_path}/files?fsync=false{query}")] if with_files else []
        forge = make_forge(tmp_path, ("db", f"sqlite:///{tmp_path}/db.sqlite3"), *files, ids=IDS,
                           journal=f"journal{len(opened)}.sqlite3", types=types)
        opened.append(forge)
        return forge

    yield make
    for forge in opened:
        forge.close()


def _findings(report: Any, kind: str | None = None) -> dict[str, Any]:
    return {f.id: f for f in report.findings if kind is None or f.kind == kind}


# -- the default layout: the data as a JSON document ---------------------------------------------
EVERY_KIND = {
    "name": "Zoë 東京 🎉", "when": dt.datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "price": decimal.Decimal("12345678901234567890.12"), "n": 2**70, "count": 3, "ratio": 0.1,
    "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"), "nested": {"b": [1, {"c": "d"}], "a": 1.5},
    "tags": ["x", "y"], "ok": True, "off": False, "none": None,
}


def test_default_layout_round_trips_every_value_kind(tmp_path: Path, forge_for: Callable[..., Forge]) -> None:
    forge = forge_for()
    forge.write(ET, {"name": "every-kind"}, EVERY_KIND)
    (record,) = forge.records([(ET, {"name": "every-kind"}, EVERY_KIND)])
    path = _folder(tmp_path / "files", record.id) / f"{record.id}.json"
    stored = json.loads(path.read_text(encoding="utf-8"), parse_float=decimal.Decimal)
    assert set(stored) == set(EVERY_KIND)  # the entity's fields only: no id, fp, key or data wrapper
    assert stored["when"] == "2024-05-06T07:08:09.123456Z"  # aware datetimes as UTC text
    assert stored["price"] == decimal.Decimal("12345678901234567890.12")  # every digit
    assert stored["ref"] == "12345678-1234-5678-1234-567812345678" and stored["n"] == 2**70
    back = forge.stores[1].adapter.get_many(ET, [record.id])[record.id]
    assert back.key is None
    assert canonical(back.data) == canonical(EVERY_KIND) == record.data_json
    assert same_fingerprint(back.fingerprint, record.fingerprint)
    assert forge.audit(ET).consistent


# -- stale fields, in every layout, edited with plain file operations ----------------------------
class Disk:
    """One record's data read and rewritten with plain file operations, in a layout's own shape."""

    def __init__(self, root: Path, layout: str) -> None:
        self.root, self.layout = root, layout

    def read(self, ident: uuid.UUID) -> dict[str, Any]:
        folder = _folder(self.root, ident)
        if self.layout == "raw":
            meta = json.loads((folder / f"{ident}.meta.json").read_text())
            return {**meta, "content": base64.b64encode((folder / f"{ident}.bin").read_bytes()).decode()}
        doc = json.loads((folder / f"{ident}.json").read_text())
        return doc["data"] if self.layout == "envelope" else doc

    def write(self, ident: uuid.UUID, data: dict[str, Any]) -> None:
        folder = _folder(self.root, ident)
        if self.layout == "raw":
            meta = {k: v for k, v in data.items() if k != "content"}
            (folder / f"{ident}.meta.json").write_text(json.dumps(meta, indent=1))
            (folder / f"{ident}.bin").write_bytes(base64.b64decode(data["content"]))
            return
        path = folder / f"{ident}.json"
        if self.layout == "envelope":  # the fp member left as it was, as another program would
            data = {**json.loads(path.read_text()), "data": data}
        path.write_text(json.dumps(data, indent=1))


def _document(i: int) -> dict[str, Any]:
    content = f"file number {i}\n".encode() + bytes(range(256))  # any bytes, not only text
    return {"filename": f"f{i}.bin", "content_type": "application/octet-stream", "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(), "content": base64.b64encode(content).decode()}


@pytest.mark.parametrize("layout", ["data", "json", "raw", "envelope"])
def test_edits_are_stale_with_the_field_named_and_repaired(tmp_path: Path, forge_for: Callable[..., Forge],
                                                          layout: str) -> None:
    forge = forge_for(f"&layout={layout}")
    rows = [(ET, {"filename": f"f{i}.bin"}, _document(i)) for i in range(8)]
    forge.write_many(rows)
    recs = forge.records(rows)
    disk = Disk(tmp_path / "files", layout)
    assert [disk.read(r.id) for r in recs] == [r.json_data for r in recs]
    assert forge.audit(ET).consistent

    disk.write(recs[1].id, {**disk.read(recs[1].id), "filename": "evil.exe"})  # one field edited
    disk.write(recs[2].id, {k: v for k, v in disk.read(recs[2].id).items() if k != "sha256"})  # one removed
    disk.write(recs[3].id, {**disk.read(recs[3].id), "size": 1})  # a number changed
    disk.write(recs[4].id, disk.read(recs[4].id))  # reformatted only: no difference
    edited = {**disk.read(recs[5].id)}
    edited["content"] = base64.b64encode(b"other bytes").decode()  # the content edited
    disk.write(recs[5].id, edited)

    report = forge.audit(ET)
    assert {i: (f.kind, f.fields) for i, f in _findings(report).items()} == {
        str(recs[1].id): ("stale", ("filename",)), str(recs[2].id): ("stale", ("sha256",)),
        str(recs[3].id): ("stale", ("size",)), str(recs[5].id): ("stale", ("content",))}
    assert all("evil.exe" not in f.detail for f in report.findings)
    shown = _findings(forge.audit(ET, show_values=True))
    assert shown[str(recs[1].id)].values == {"filename": {"store": "evil.exe", "source": "f1.bin"}}
    assert shown[str(recs[3].id)].values["size"]["store"] == 1

    assert forge.audit(ET, repair=True).repaired["files"]["rewritten"] == 4
    assert [disk.read(r.id) for r in recs] == [r.json_data for r in recs]
    assert forge.audit(ET).consistent


# -- the raw layout: the seed's file manager -------------------------------------------------------
def _seed_write(root: Path, ident: uuid.UUID, content: bytes, meta: dict[str, Any]) -> None:
    """What the seed's file manager wrote: the bytes, and a metadata sidecar in its own formatting."""
    folder = _folder(root, ident)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{ident}.bin").write_bytes(content)
    (folder / f"{ident}.meta.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")


def test_seed_era_raw_files_are_read_audited_and_repaired_in_their_shape(
        tmp_path: Path, forge_for: Callable[..., Forge]) -> None:
    root = tmp_path / "files"
    contents = {f"report{i}.pdf": b"%PDF-1.4\n" + bytes([i]) * 40 + b"\xff\xfe" for i in range(6)}
    metas = {name: {"filename": name, "content_type": "application/pdf", "size": len(c),
                    "sha256": hashlib.sha256(c).hexdigest(), "uploaded_at": "2024-05-06T07:08:09Z"}
             for name, c in contents.items()}
    rows = [(ET, {"filename": n}, {**metas[n], "content": base64.b64encode(c).decode()}) for n, c in contents.items()]
    forge_for(with_files=False).write_many(rows)  # the source only: the files are the seed's own
    recs = forge_for(with_files=False).records(rows)
    for r, (name, content) in zip(recs, contents.items()):
        _seed_write(root, r.id, content, metas[name])
    forge = forge_for("&layout=raw")
    files = forge.stores[1].adapter
    assert isinstance(files, FileAdapter) and files.layout.name == "raw"

    back = files.get_many(ET, [r.id for r in recs])
    assert {i: canonical(b.data) for i, b in back.items()} == {r.id: r.data_json for r in recs}
    assert all(b.key is None for b in back.values())
    report = forge.audit(ET)
    assert report.consistent and report.stores["files"]["ok"] == len(recs)

    f = [_folder(root, r.id) for r in recs]
    (f[0] / f"{recs[0].id}.bin").write_bytes(b"%PDF-1.4 tampered")  # the bytes edited
    meta1 = json.loads((f[1] / f"{recs[1].id}.meta.json").read_text())
    (f[1] / f"{recs[1].id}.meta.json").write_text(json.dumps({**meta1, "content_type": "text/html"}))
    meta2 = json.loads((f[2] / f"{recs[2].id}.meta.json").read_text())
    del meta2["uploaded_at"]
    (f[2] / f"{recs[2].id}.meta.json").write_text(json.dumps(meta2))
    meta3 = json.loads((f[3] / f"{recs[3].id}.meta.json").read_text())
    (f[3] / f"{recs[3].id}.meta.json").write_text(json.dumps({**meta3, "size": meta3["size"] + 1}))
    (f[4] / f"{recs[4].id}.bin").unlink()  # the sidecar alone is left
    untouched = (f[5] / f"{recs[5].id}.meta.json").read_text()

    report = forge.audit(ET)
    assert {i: (x.kind, x.fields) for i, x in _findings(report).items()} == {
        str(recs[0].id): ("stale", ("content",)), str(recs[1].id): ("stale", ("content_type",)),
        str(recs[2].id): ("stale", ("uploaded_at",)), str(recs[3].id): ("stale", ("size",)),
        str(recs[4].id): ("stale", ("content",))}
    assert "missing in the store: content" in _findings(report)[str(recs[4].id)].detail

    assert forge.audit(ET, repair=True).repaired["files"]["rewritten"] == 5
    for r, folder, (name, content) in zip(recs, f, contents.items()):
        assert (folder / f"{r.id}.bin").read_bytes() == content
        assert json.loads((folder / f"{r.id}.meta.json").read_text()) == metas[name]
        assert sorted(p.name for p in folder.iterdir()) == [f"{r.id}.bin", f"{r.id}.meta.json"]
    assert (f[5] / f"{recs[5].id}.meta.json").read_text() == untouched  # the seed's formatting kept
    assert forge.audit(ET).consistent


def test_raw_layout_with_utf8_text_and_own_names(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}?layout=raw&content_field=body&content_encoding=utf-8"
                       "&content_suffix=.txt&fsync=false")
    ident = uuid.uuid5(uuid.NAMESPACE_DNS, "notes")
    record = Record("note", ident, {"title": "Notes", "body": "héllo\nwörld"})
    store.put_many([record])
    folder = _folder(tmp_path, ident, "note")
    assert (folder / f"{ident}.txt").read_bytes() == "héllo\nwörld".encode()
    assert json.loads((folder / f"{ident}.meta.json").read_text()) == {"title": "Notes"}
    ((found, fp),) = store.scan("note")
    assert found == ident and same_fingerprint(fp, record.fingerprint)
    assert store.get_many("note", [ident])[ident].data == record.data

    (folder / f"{ident}.txt").write_bytes(b"\xff\xfe not utf-8")  # unreadable as the declared text
    ((_, fp),) = store.scan("note")
    assert not same_fingerprint(fp, record.fingerprint)
    assert store.get_many("note", [ident])[ident].unreadable


@pytest.mark.parametrize("data, message", [
    ({"filename": "a"}, "'content' .* is missing"),
    ({"filename": "a", "content": 42}, "is int, not text"),
    ({"filename": "a", "content": "not base64!"}, "not padded standard base64"),
    ({"filename": "a", "content": "YQ"}, "not padded standard base64"),  # unpadded: would be stale forever
])
def test_raw_layout_refuses_bad_content_before_any_write(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    store = open_store(f"file://{tmp_path}/files?layout=raw")
    good = Record(ET, uuid.uuid5(uuid.NAMESPACE_DNS, "good"), _document(1))
    bad = Record(ET, uuid.uuid5(uuid.NAMESPACE_DNS, "bad"), data)
    with pytest.raises(ValidationError, match=message):
        store.put_many([good, bad])
    assert not (tmp_path / "files").exists()


@pytest.mark.parametrize("query, message", [
    ("layout=flat", "expected one of 'data', 'raw', 'envelope'"),
    ("content_suffix=.META.JSON", "lowercase ending"),
    ("content_suffix=.meta.json", "lowercase ending"),
    ("content_encoding=latin-1", "'base64', 'utf-8'"),
    ("content_feild=x", "Did you mean 'content_field'"),
])
def test_bad_layout_options_are_clear_errors(tmp_path: Path, query: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        open_store(f"file://{tmp_path}?{query}")


def test_raw_layout_refuses_uuid_forges_own_types(tmp_path: Path) -> None:
    """The ID-configuration marker has no content field: a raw-layout source keeps none (said once)."""
    store = open_store(f"file://{tmp_path}?layout=raw")
    with pytest.raises(ValidationError, match="layout=data"):
        store.check_entity_type("uuid-forge.meta")


# -- other applications' files ------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["json", "raw"])
def test_foreign_files_are_reported_and_survive_repair_and_drop(tmp_path: Path, forge_for: Callable[..., Forge],
                                                                layout: str) -> None:
    forge = forge_for(f"&layout={layout}", types=[EntityType(ET, key=("filename",))])  # the files hold the key
    rows = [(ET, {"filename": f"f{i}.bin"}, _document(i)) for i in range(3)]
    forge.write_many(rows)
    recs = forge.records(rows)
    root = tmp_path / "files"
    shard = _folder(root, recs[0].id)
    other = "json" if layout == "raw" else "meta.json"  # the other layout's file is not ours either
    planted = {
        root / "README.txt": "the store's root",
        root / ET / "README.txt": "a type folder's top",
        root / ET / "thumbnails" / "a.png": "a folder that is no shard",
        shard.parent / "index.txt": "a first-level shard folder",
        shard / "README.txt": "beside our files",
        shard / f"{recs[0].id}.{other}": "named like ours, in the other layout",
    }
    for path, text in planted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    # an orphan of ours beside them (written through uuid-forge, absent from the source, its key
    # field rebuilding its ID): deleted
    orphan = Record(ET, forge.generator.generate(ET, filename="f9.bin"), _document(9))
    forge.stores[1].adapter.put_many([orphan])

    report = forge.audit(ET)
    foreign = sorted(text.split(": ", 1)[1] for text in report.foreign_samples["files"])
    s = str(recs[0].id)
    assert foreign == sorted([f"{ET}/README.txt", f"{ET}/thumbnails/", f"{ET}/{s[:2]}/index.txt",
                              f"{ET}/{s[:2]}/{s[2:4]}/README.txt", f"{ET}/{s[:2]}/{s[2:4]}/{s}.{other}"])
    assert report.stores["files"]["foreign"] == 5 and report.stores["files"]["orphan"] == 1
    assert [f.id for f in report.findings if f.kind == "orphan"] == [str(orphan.id)]
    assert forge.stores[1].adapter.entity_types() == [ET]

    repaired = forge.audit(ET, repair=True, delete_orphans=True, max_delete=5)
    assert repaired.repaired["files"]["orphans_deleted"] == 1
    assert forge.stores[1].adapter.get_many(ET, [orphan.id]) == {}
    assert all(path.read_text() == text for path, text in planted.items())
    with pytest.raises(ValidationError, match="never deleted"):
        forge.stores[1].adapter.delete_raw(ET, [f"{ET}/{s[:2]}/{s[2:4]}/README.txt"])

    with pytest.raises(ValidationError, match="shared with others"):
        forge.stores[1].adapter.drop(ET)  # a directory shared with others: not without the proof
    forge.drop(ET, stores=["files"])  # ours go, theirs stay (with the folders that hold them)
    assert all(path.read_text() == text for path, text in planted.items())
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert left == sorted(str(p.relative_to(root)) for p in planted)
    assert forge.stores[1].adapter.entity_types() == []


def test_scan_reports_a_foreign_entry_in_one_partition_only(tmp_path: Path) -> None:
    from uuid_forge.record import Partition

    store = open_store(f"file://{tmp_path}?fsync=false")
    records = [Record("t", uuid.uuid5(uuid.NAMESPACE_DNS, f"r{i}"), {"i": i}) for i in range(40)]
    store.put_many(records)
    s = str(records[0].id)
    for path in (tmp_path / "t" / "README.txt", tmp_path / "t" / s[:2] / s[2:4] / "notes.txt"):
        path.write_text("x")
    seen = [i.raw for p in Partition().split(8) for i, _ in store.scan("t", p, include_malformed=True)
            if isinstance(i, ForeignEntry)]
    assert sorted(seen) == sorted(["t/README.txt", f"t/{s[:2]}/{s[2:4]}/notes.txt"])
    assert not any(isinstance(i, MalformedID) for i, _ in store.scan("t", include_malformed=True))


def test_raw_sidecar_that_is_no_object_is_stale_and_unreadable(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}?layout=raw&fsync=false")
    record = Record(ET, uuid.uuid5(uuid.NAMESPACE_DNS, "sidecar"), _document(2))
    store.put_many([record])
    ((_, fp),) = store.scan(ET)
    assert same_fingerprint(fp, record.fingerprint)
    Path(store.meta_path_of(ET, record.id)).write_text("[1, 2]")  # type: ignore[attr-defined]
    ((ident, fp),) = store.scan(ET)
    assert ident == record.id and not same_fingerprint(fp, record.fingerprint)
    assert "sidecar" in (store.get_many(ET, [record.id])[record.id].unreadable or "")


# -- the layout's names: `data`, and `json` its deprecated old name ------------------------------
def test_layouts_are_chosen_from_one_table() -> None:
    assert tuple(LAYOUTS) == ("data", "raw", "envelope")
    options = {o.name: o for o in FileAdapter.options}
    assert options["layout"].choices == tuple(LAYOUTS) and options["layout"].default == "data"
    assert options["layout"].deprecated_values == (("json", "data"),)


def test_the_data_layout_is_the_default_and_the_old_name_json_still_selects_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_warned", set())
    record = Record(ET, uuid.uuid5(uuid.NAMESPACE_DNS, "alias"), {"title": "x"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name and the default never warn
        assert isinstance(FileAdapter(f"file://{tmp_path}/a").layout, DataLayout)
        new = FileAdapter(f"file://{tmp_path}/b?layout=data&fsync=false")
    with pytest.warns(OptionDeprecationWarning, match="layout=json is deprecated, use layout=data"):
        old = FileAdapter(f"file://{tmp_path}/b?layout=json&fsync=false")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: the second time is quiet
        again = FileAdapter(f"file://{tmp_path}/b", layout="json")
    assert isinstance(old.layout, DataLayout) and isinstance(again.layout, DataLayout)
    old.put_many([record])  # the same files as the new name writes
    assert (Path(new.path_of(ET, record.id)).read_bytes() == (record.data_json + "\n").encode())
    assert new.get_many(ET, [record.id])[record.id].data == record.data


@pytest.mark.parametrize("name", ["data", "raw", "envelope"])
def test_each_layout_owns_the_fields_it_writes(tmp_path: Path, name: str) -> None:
    store = FileAdapter(f"file://{tmp_path}?fsync=false&layout={name}")
    record = Record(ET, uuid.uuid5(uuid.NAMESPACE_DNS, "owned"), {"title": "x", "content": "aGk="}, {"n": 1})
    owned = store.layout.owned_fields(record)
    assert owned == ({"fp", "id", "key", "data"} if name == "envelope" else {"title", "content"})
    files = store.layout.encode(record)
    assert files[0][0] == store.layout.file_names(str(record.id))[0]
    stored = store.layout.read(_folder_of(store, record), str(record.id))
    assert stored is None
    store.put_many([record])
    stored = store.layout.read(_folder_of(store, record), str(record.id))
    assert store.layout.decode(ET, record.id, stored).data == record.data
    assert same_fingerprint(store.layout.fingerprint(stored), record.fingerprint)


def _folder_of(store: FileAdapter, record: Record) -> str:
    return store.folder_of(ET, str(record.id))


@pytest.mark.parametrize("name", ["data", "raw", "envelope"])
def test_a_viewed_twin_fingerprints_through_its_own_view(tmp_path: Path, name: str) -> None:
    """The audit reads a source through each store's view: the twin's layout must use the twin's."""
    from uuid_forge.record import data_fingerprint
    from uuid_forge.view import FieldView

    store = FileAdapter(f"file://{tmp_path}?fsync=false&layout={name}")
    record = Record(ET, uuid.uuid5(uuid.NAMESPACE_DNS, "viewed"), {"title": "x", "content": "aGk=", "n": 2})
    store.put_many([record])
    twin = store.viewed(FieldView(projection=("title", "content")))
    assert twin is not store and twin.layout is not store.layout  # type: ignore[attr-defined]
    projected = data_fingerprint({"title": "x", "content": "aGk="})
    assert [same_fingerprint(fp, projected) for _, fp in twin.scan(ET)] == [True]
    assert same_fingerprint(twin.get_many(ET, [record.id])[record.id].fingerprint, projected)
    assert [same_fingerprint(fp, record.fingerprint) for _, fp in store.scan(ET)] == [True]  # the original: full
