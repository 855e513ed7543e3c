"""Issue 18, rule 3, for the file store (a tmp dir): a write, repair or replay changes only the
fields uuid-forge owns in a record's JSON file (``FieldView.owns``) and keeps the others.

* ``layout=data``: ``{id}.json`` is merged; ``layout=raw``: the sidecar ``{id}.meta.json`` is
  merged (the content file is all ours); ``layout=envelope``: the document is uuid-forge's own.
* foreign fields (``cached_at`` in ignore_fields, fields outside the projection) survive write,
  repair (API and CLI) and replay; an owned field gone from the source is removed from the file;
* a writer that changes the file between our read and our rename is not lost (the file is read
  again before the rename, and merged again), and a writer holding the folder's ``flock`` is
  waited for;
* the audit still finds edited, added and removed owned fields.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.view import FieldView

from .scaffold import make_forge, run_cli

IDS = IDConfig(namespace=Namespace("files-owned.uuid-forge.test"), salt="files-owned")
ET = "user"
LAYOUTS = ["data", "raw"]
VIEWS = {
    "ignore": (FieldView(ignore_fields=("cached_at",)), {"cached_at": "2026-01-01T00:00:00Z"}, "extra"),
    "projection": (FieldView(projection=("email", "name", "nick", "content")),
                   {"cached_at": "2026-01-01T00:00:00Z", "hits": 7, "app": {"v": [1, 2]}}, "nick"),
}


def _forge(tmp_path: Path, layout: str, view: FieldView) -> Forge:
    store = open_store(f"file://{tmp_path}/files?fsync=false&layout={layout}", view=view)
    return make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("files", store), ids=IDS)


def _data(i: int, **more: Any) -> dict[str, Any]:
    return {"email": f"u{i}@example.com", "name": f"User {i}", "age": 20 + i, "content": "aGk=", **more}


def _json_file(forge: Forge, ident: uuid.UUID) -> Path:
    """The file of the record that holds its fields as a JSON object (data: the record; raw: the sidecar)."""
    store = forge.stores[1].adapter
    return Path(store.meta_path_of(ET, ident) if store.layout.name == "raw" else store.path_of(ET, ident))


def stored(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text("utf-8"))


def plant(path: Path, fields: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    """Another application's edit of the file."""
    doc = stored(path)
    doc.update(fields)
    for name in drop:
        doc.pop(name, None)
    path.write_text(json.dumps(doc), "utf-8")


def _id(forge: Forge, i: int) -> uuid.UUID:
    return forge.id_for(ET, {"email": f"u{i}@example.com"})


@pytest.mark.parametrize("view_name", VIEWS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_write_keeps_foreign_fields_and_removes_owned_fields_gone_from_the_source(
        tmp_path: Path, layout: str, view_name: str) -> None:
    view, foreign, _ = VIEWS[view_name]
    with _forge(tmp_path, layout, view) as forge:
        forge.write(ET, {"email": "u0@example.com"}, _data(0, nick="zero"))
        path = _json_file(forge, _id(forge, 0))
        plant(path, foreign)
        assert forge.write(ET, {"email": "u0@example.com"}, _data(0, name="Renamed")).complete  # nick is gone
        after = stored(path)
        assert {k: after.get(k) for k in foreign} == foreign
        assert after["name"] == "Renamed" and "nick" not in after
        assert ("age" in after) == view.owns("age")
        assert forge.audit(ET).consistent
        assert not list(path.parent.glob(".*.tmp"))


@pytest.mark.parametrize("view_name", VIEWS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_audit_finds_owned_edits_and_repair_keeps_foreign_fields(tmp_path: Path, layout: str,
                                                                 view_name: str) -> None:
    view, foreign, added = VIEWS[view_name]
    with _forge(tmp_path, layout, view) as forge:
        rows = [(ET, {"email": f"u{i}@example.com"}, _data(i)) for i in range(5)]
        forge.write_many(rows)
        paths = [_json_file(forge, r.id) for r in forge.records(rows)]
        for path in paths:
            plant(path, foreign)
        assert forge.audit(ET).consistent
        plant(paths[0], {"name": "Edited"})
        plant(paths[1], {added: "added by hand"})
        plant(paths[2], {}, drop=("name",))
        paths[3].write_text("[1, 2]")  # no JSON object: unreadable, rewritten
        stale = {f.id: f.fields for f in forge.audit(ET).findings if f.kind == "stale"}
        ids = [str(r.id) for r in forge.records(rows)]
        assert stale[ids[0]] == ("name",) and stale[ids[1]] == (added,) and stale[ids[2]] == ("name",)
        assert ids[3] in stale and ids[4] not in stale
        repaired = forge.audit(ET, repair=True)
        assert not repaired.repair_errors, repaired.repair_errors
        assert forge.audit(ET).consistent
        for i, path in enumerate(paths):
            after = stored(path)
            if i == 3:
                assert "cached_at" not in after and after["name"] == "User 3"
                continue
            assert {k: after.get(k) for k in foreign} == foreign, path
            assert after["name"] == f"User {i}" and added not in after


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replay_keeps_foreign_fields(tmp_path: Path, layout: str) -> None:
    view, foreign, _ = VIEWS["projection"]
    with _forge(tmp_path, layout, view) as forge:
        forge.write(ET, {"email": "u0@example.com"}, _data(0))
        record = forge.records([(ET, {"email": "u0@example.com"}, _data(0))])[0]
        path = _json_file(forge, record.id)
        plant(path, {**foreign, "name": "Stale"})
        assert forge.journal is not None
        forge.journal.record_intent([record], ["files"])
        assert forge.replay().stores["files"].written == 1
        after = stored(path)
        assert after["name"] == "User 0" and {k: after.get(k) for k in foreign} == foreign


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cli_repair_keeps_foreign_fields(tmp_path: Path, layout: str) -> None:
    path = tmp_path / "uuid-forge.toml"
    path.write_text(f"""[ids]
namespace = "files-owned-cli.uuid-forge.test"
[journal]
path = "{tmp_path}/journal.sqlite3"
[stores.db]
url = "sqlite:///{tmp_path}/source.db"
role = "source"
[stores.files]
url = "file://{tmp_path}/files?fsync=false&layout={layout}"
ignore_fields = ["cached_at"]
""", encoding="utf-8")
    env = {"UUID_FORGE_SALT": "files-owned-cli"}
    code, out, err = run_cli(["write", "-c", str(path), ET, "-k", "email=ann@example.com", "-d", "name=Ann",
                              "-d", "content=aGk="], env)
    assert code == 0, out + err
    [json_file] = [p for p in (tmp_path / "files").rglob("*.json")]
    plant(json_file, {"cached_at": "2026-01-01T00:00:00Z", "name": "Edited"})
    code, out, err = run_cli(["audit", "-c", str(path), "--entity", ET, "--repair", "--apply", "--json"], env)
    assert code == 0, out + err
    assert json.loads(out)["after_repair"]["consistent"] is True
    after = stored(json_file)
    assert after["name"] == "Ann" and after["cached_at"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_field_added_between_our_read_and_our_rename_is_not_lost(tmp_path: Path, layout: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer (taking no lock) changes the file right after our read and merge: the file is
    read again before the rename, and the merge is redone over the new content."""
    view, foreign, _ = VIEWS["projection"]
    with _forge(tmp_path, layout, view) as forge:
        forge.write(ET, {"email": "u0@example.com"}, _data(0))
        path = _json_file(forge, _id(forge, 0))
        plant(path, foreign)
        layout_obj = forge.stores[1].adapter.layout
        real = type(layout_obj).merge
        raced = []

        def racing(self: Any, record: Any, held: bytes | None) -> bytes:
            out = real(self, record, held)
            if not raced:
                plant(path, {"late": "written meanwhile"})
                raced.append(1)
            return out

        monkeypatch.setattr(type(layout_obj), "merge", racing, raising=False)
        assert forge.write(ET, {"email": "u0@example.com"}, _data(0, name="Ours")).complete
        after = stored(path)
        assert after["name"] == "Ours" and after["late"] == "written meanwhile"
        assert {k: after.get(k) for k in foreign} == foreign and raced == [1]


def test_a_writer_holding_the_folder_lock_is_waited_for(tmp_path: Path) -> None:
    """uuid-forge takes an exclusive flock of the shard folder for its read-merge-write: another
    process (or application) that takes the same lock for its own edit is never overwritten."""
    view, foreign, _ = VIEWS["projection"]
    with _forge(tmp_path, "data", view) as forge:
        forge.write(ET, {"email": "u0@example.com"}, _data(0))
        path = _json_file(forge, _id(forge, 0))
        fd = os.open(path.parent, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # another application's edit begins
        try:
            before = path.read_text("utf-8")
            writer = threading.Thread(target=forge.write, args=(ET, {"email": "u0@example.com"},
                                                                _data(0, name="Ours")))
            writer.start()
            writer.join(0.5)
            assert writer.is_alive()  # waits for the lock
            doc = json.loads(before)
            doc.update(foreign)
            path.write_text(json.dumps(doc), "utf-8")  # another application's edit ends
        finally:
            os.close(fd)
        writer.join(10)
        after = stored(path)
        assert after["name"] == "Ours" and {k: after.get(k) for k in foreign} == foreign


def test_an_envelope_file_keeps_members_another_application_added(tmp_path: Path) -> None:
    """The envelope's four members are ours; a member another application added beside them is
    kept, verbatim, by every write (even with no view), and the record reads back the same."""
    with _forge(tmp_path, "envelope", FieldView()) as forge:
        layout = forge.stores[1].adapter.layout
        record = forge.records([(ET, {"email": "u0@example.com"}, _data(0))])[0]
        assert layout.owned_fields(record) == {"fp", "id", "key", "data"}
        forge.write(ET, {"email": "u0@example.com"}, _data(0))
        path = tmp_path / "files" / ET / str(record.id)[:2] / str(record.id)[2:4] / f"{record.id}.json"
        doc = json.loads(path.read_text("utf-8"))
        path.write_text(json.dumps({**doc, "audited_by": "Cafe\u0301", "hits": 1.50}, ensure_ascii=False)
                        .replace("1.5}", "1.50}"), "utf-8")
        assert forge.write(ET, {"email": "u0@example.com"}, _data(0, name="Renamed")).complete
        text = path.read_text("utf-8")
        assert '"audited_by":"Cafe\u0301"' in text and '"hits":1.50' in text
        after = json.loads(text)
        assert after["data"]["name"] == "Renamed" and after["id"] == str(record.id)
        assert forge.audit(ET).consistent
