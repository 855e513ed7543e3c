"""Issue 18, rule 3, on the real Redis: a write, repair or replay changes only the fields uuid-forge
owns under a key (``FieldView.owns``: the projection, or every field not in ``ignore_fields``) and
keeps every other field another application put there.

* ``layout=data`` (a JSON string): the stored object's foreign fields (``cached_at`` in
  ignore_fields, fields outside the projection) survive write, repair (API and CLI) and replay; an
  owned field the source no longer has is removed; a concurrent writer that adds a field between
  our read and our write is not lost (the compare-and-set fails and the merge is redone);
* ``layout=hash``: the same with HSET/HDEL of owned fields only, in one script: the hash is never
  deleted as a whole;
* the audit still finds edited, added and removed owned fields (stale), and ignores foreign ones;
* a value that is no JSON object under a key of ours is rewritten, as before.

Every test works under its own entity type and deletes only its own keys (shared server).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing

redis = pytest.importorskip("redis", reason=driver_missing("redis"))

import adapters.redis as redis_adapter
from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.view import FieldView

from .scaffold import forget_redis_type, make_forge, run_cli

IDS = IDConfig(namespace=Namespace("redis-owned.uuid-forge.test"), salt="redis-owned")
LAYOUTS = ["data", "hash"]
#: (view, the fields another application adds that the view does not own, an owned field the
#: source's data lacks, so adding it under the key is a difference)
VIEWS = {
    "ignore": (FieldView(ignore_fields=("cached_at",)), {"cached_at": "2026-01-01T00:00:00Z"}, "extra"),
    "projection": (FieldView(projection=("email", "name", "nick")),
                   {"cached_at": "2026-01-01T00:00:00Z", "hits": 7, "app": {"v": [1, 2]}}, "nick"),
}


@pytest.fixture(scope="module")
def raw(redis_client: Any) -> Any:
    """A plain redis-py client: checks go around the adapter."""
    return redis_client


@pytest.fixture
def et(redis_url: str) -> Iterator[str]:
    name = f"own{uuid.uuid4().hex[:10]}"
    yield name
    forget_redis_type(redis_url, name)


def _forge(tmp_path: Path, redis_url: str, layout: str, view: FieldView) -> Forge:
    store = open_store(redis_url, layout=layout, view=view)
    return make_forge(tmp_path, f"sqlite:///{tmp_path}/source.db", ("cache", store), ids=IDS)


def _data(i: int, **more: Any) -> dict[str, Any]:
    return {"email": f"u{i}@example.com", "name": f"User {i}", "age": 20 + i, **more}


def stored(raw: redis.Redis, key: str, layout: str) -> dict[str, Any]:
    """What the key holds, read with redis-py as another application would."""
    if layout == "data":
        return json.loads(raw.get(key))
    return {k.decode(): json.loads(v) for k, v in raw.hgetall(key).items()}


def plant(raw: redis.Redis, key: str, layout: str, fields: dict[str, Any], drop: tuple[str, ...] = ()) -> None:
    """Another application's edit of the key: ``fields`` set, ``drop`` removed."""
    if layout == "data":
        doc = json.loads(raw.get(key))
        doc.update(fields)
        for name in drop:
            doc.pop(name, None)
        raw.set(key, json.dumps(doc))
    else:
        if fields:
            raw.hset(key, mapping={k: json.dumps(v) for k, v in fields.items()})
        if drop:
            raw.hdel(key, *drop)


@pytest.mark.parametrize("view_name", VIEWS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_write_keeps_foreign_fields_and_removes_owned_fields_gone_from_the_source(
        redis_url: str, raw: redis.Redis, et: str, tmp_path: Path, layout: str, view_name: str) -> None:
    view, foreign, _ = VIEWS[view_name]
    with _forge(tmp_path, redis_url, layout, view) as forge:
        forge.write(et, {"email": "u0@example.com"}, _data(0, nick="zero"))
        key = f"{et}:{forge.id_for(et, {'email': 'u0@example.com'})}"
        plant(raw, key, layout, foreign)
        report = forge.write(et, {"email": "u0@example.com"}, _data(0, name="Renamed"))  # nick is gone
        assert report.complete
        after = stored(raw, key, layout)
        assert {k: after.get(k) for k in foreign} == foreign  # another application's fields: kept
        assert after["name"] == "Renamed" and "nick" not in after  # ours: replaced, and removed when gone
        assert ("age" in after) == view.owns("age")  # outside the projection: never written
        assert forge.audit(et).consistent


@pytest.mark.parametrize("view_name", VIEWS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_audit_finds_owned_edits_and_repair_keeps_foreign_fields(
        redis_url: str, raw: redis.Redis, et: str, tmp_path: Path, layout: str, view_name: str) -> None:
    """Edited, added and removed owned fields are stale; foreign fields alone are no difference;
    repair restores ours and keeps theirs. A value that is no JSON object is rewritten."""
    view, foreign, added = VIEWS[view_name]
    with _forge(tmp_path, redis_url, layout, view) as forge:
        rows = [(et, {"email": f"u{i}@example.com"}, _data(i)) for i in range(5)]
        forge.write_many(rows)
        keys = [f"{et}:{r.id}" for r in forge.records(rows)]
        for key in keys:
            plant(raw, key, layout, foreign)
        assert forge.audit(et).consistent  # foreign fields are not ours to compare
        plant(raw, keys[0], layout, {"name": "Edited"})
        plant(raw, keys[1], layout, {added: "added by hand"})
        plant(raw, keys[2], layout, {}, drop=("name",))
        if layout == "data":
            raw.set(keys[3], b"[1, 2]")  # no JSON object: unreadable, rewritten
        report = forge.audit(et)
        stale = {f.id: f.fields for f in report.findings if f.kind == "stale"}
        ids = [str(r.id) for r in forge.records(rows)]
        assert stale[ids[0]] == ("name",) and stale[ids[1]] == (added,) and stale[ids[2]] == ("name",)
        assert ids[4] not in stale
        repaired = forge.audit(et, repair=True)
        assert not repaired.repair_errors, repaired.repair_errors
        assert forge.audit(et).consistent
        for i, key in enumerate(keys):
            after = stored(raw, key, layout)
            if layout == "data" and i == 3:
                assert after == view.merged(None, _data(3))  # rewritten: no field of anyone to keep
                continue
            assert {k: after.get(k) for k in foreign} == foreign, key
            assert after["name"] == f"User {i}" and added not in after


@pytest.mark.parametrize("layout", LAYOUTS)
def test_replay_keeps_foreign_fields(redis_url: str, raw: redis.Redis, et: str, tmp_path: Path, layout: str) -> None:
    view, foreign, _ = VIEWS["projection"]
    with _forge(tmp_path, redis_url, layout, view) as forge:
        forge.write(et, {"email": "u0@example.com"}, _data(0))
        record = forge.records([(et, {"email": "u0@example.com"}, _data(0))])[0]
        key = f"{et}:{record.id}"
        plant(raw, key, layout, {**foreign, "name": "Stale"})
        assert forge.journal is not None
        forge.journal.record_intent([record], ["cache"])
        report = forge.replay()
        assert report.stores["cache"].written == 1, report
        after = stored(raw, key, layout)
        assert after["name"] == "User 0"  # the replay wrote ours
        assert {k: after.get(k) for k in foreign} == foreign


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cli_repair_keeps_foreign_fields(redis_url: str, raw: redis.Redis, et: str, tmp_path: Path,
                                         layout: str) -> None:
    path = tmp_path / "uuid-forge.toml"
    path.write_text(f"""[ids]
namespace = "redis-owned-cli.uuid-forge.test"
[journal]
path = "{tmp_path}/journal.sqlite3"
[stores.db]
url = "sqlite:///{tmp_path}/source.db"
role = "source"
[stores.cache]
url = "{redis_url}?layout={layout}"
ignore_fields = ["cached_at"]
""", encoding="utf-8")
    done = run_cli("write", "-c", str(path), et, "-k", "email=ann@example.com", "-d", "name=Ann", "-d", "age:=42")
    assert done.returncode == 0, done.stderr
    [key] = [k.decode() for k in raw.scan_iter(match=f"{et}:*")]
    plant(raw, key, layout, {"cached_at": "2026-01-01T00:00:00Z", "name": "Edited"})
    fixed = run_cli("audit", "-c", str(path), "--entity", et, "--repair", "--apply", "--json")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert json.loads(fixed.stdout)["after_repair"]["consistent"] is True
    after = stored(raw, key, layout)
    assert after["name"] == "Ann" and after["cached_at"] == "2026-01-01T00:00:00Z"


@pytest.mark.parametrize("view_name", VIEWS)
def test_a_field_added_between_our_read_and_our_write_is_not_lost(
        redis_url: str, raw: redis.Redis, et: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        view_name: str) -> None:
    """The data layout merges in Python between a read and a write: another client writes the key
    right after our read (MGET). The compare-and-set sees the change, and the merge is redone."""
    view, foreign, _ = VIEWS[view_name]
    with _forge(tmp_path, redis_url, "data", view) as forge:
        forge.write(et, {"email": "u0@example.com"}, _data(0))
        key = f"{et}:{forge.id_for(et, {'email': 'u0@example.com'})}"
        plant(raw, key, "data", foreign)
        client = forge.stores[1].adapter.client
        real = client.execute_command
        interleaved = []

        def racing(*args: Any, **options: Any) -> Any:
            reply = real(*args, **options)
            if args[0] == "MGET" and not interleaved:  # between our read and our write
                plant(raw, key, "data", {"late": "written by another application meanwhile"})
                interleaved.append(args)
            return reply

        monkeypatch.setattr(client, "execute_command", racing)
        forge.write(et, {"email": "u0@example.com"}, _data(0, name="Ours"))
        after = stored(raw, key, "data")
        assert after["name"] == "Ours"
        assert {k: after.get(k) for k in foreign} == foreign
        if view.owns("late"):  # the ignore view owns every other field: the late one is ours to replace
            assert "late" not in after
        else:
            assert after["late"] == "written by another application meanwhile"
        assert len(interleaved) == 1  # the race did happen between the read and the write


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scripts_the_server_lost_are_loaded_again(redis_url: str, raw: redis.Redis, et: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """A restart or SCRIPT FLUSH loses the scripts: EVALSHA says NOSCRIPT, the write loads them and
    goes on (shown with scripts the server never saw, not by flushing a shared server)."""
    for name in ("_DATA_FAST_SCRIPT", "_DATA_CAS_SCRIPT", "_HASH_SCRIPT"):
        script = getattr(redis_adapter, name)
        monkeypatch.setattr(redis_adapter, name, redis_adapter.Lua(f"-- {uuid.uuid4()}\n{script.text}"))
    view, foreign, _ = VIEWS["projection"]
    with _forge(tmp_path, redis_url, layout, view) as forge:
        forge.write(et, {"email": "u0@example.com"}, _data(0))
        key = f"{et}:{forge.id_for(et, {'email': 'u0@example.com'})}"
        plant(raw, key, layout, foreign)
        assert forge.write(et, {"email": "u0@example.com"}, _data(0, name="Again")).complete
        after = stored(raw, key, layout)
        assert after["name"] == "Again" and {k: after.get(k) for k in foreign} == foreign


def test_foreign_values_are_written_back_as_they_were(redis_url: str, raw: redis.Redis, et: str,
                                                      tmp_path: Path) -> None:
    """Another application's values come back byte for byte: its numbers keep their digits (1.50,
    1e3) and its strings are not NFC-normalised (a decomposed "é" stays decomposed)."""
    view = FieldView(ignore_fields=("cached_at", "price", "label"))
    with _forge(tmp_path, redis_url, "data", view) as forge:
        forge.write(et, {"email": "u0@example.com"}, _data(0))
        key = f"{et}:{forge.id_for(et, {'email': 'u0@example.com'})}"
        theirs = '"label":"Cafe\u0301","price":1.50,"cached_at":1e3'
        raw.set(key, raw.get(key).decode()[:-1] + "," + theirs + "}")
        assert forge.write(et, {"email": "u0@example.com"}, _data(0, name="Renamed")).complete
        text = raw.get(key).decode()
        assert '"label":"Cafe\u0301"' in text and '"price":1.50' in text and '"cached_at":1e3' in text
        assert json.loads(text)["name"] == "Renamed"
        assert forge.audit(et).consistent
