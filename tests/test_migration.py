"""``uuid-forge migrate`` on memory stores: every phase, dry runs, refusals, resume after a kill.

The stores holding entries not named by a UUID (``user:42``) are fakes: until ``Adapter.read_raw``
is merged (branch rawread), :class:`FakeLegacyStore` stands in with the same interface.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import migration
from uuid_forge import migrationmap as mm
from uuid_forge.contract import ScanItem
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import MigrationRefusedError, StoreUnavailableError
from uuid_forge.forge import Forge
from uuid_forge.masking import mask_name
from uuid_forge.record import ForeignEntry, Partition, Record
from uuid_forge.settings import MigrateSettings

from .scaffold import make_forge

TYPES = [EntityType("user", ("email",)), EntityType("order", ("order_no",))]
SETTINGS = MigrateSettings(references={"order": {"user_id": "user"}}, old_id={"db": "field:id", "cache": "field:id"})


@dataclass(frozen=True)
class FakeRawEntry:
    """Stand-in for uuid_forge.record.RawEntry (branch rawread)."""

    raw: str
    data: dict[str, Any] | None
    reason: str = ""


class FakeLegacyStore(MemoryAdapter):
    """A memory store that also holds entries under raw names (``user:42``), as Redis does; it
    implements the ``read_raw`` of branch rawread. ``fail_after`` raises after that many puts
    (a kill mid-phase)."""

    name = "fake-legacy"

    def __init__(self, url: str = "memory://", **options: Any) -> None:
        super().__init__(url, **options)
        self.raw: dict[str, dict[str, dict[str, Any]]] = {}
        self.fail_after: int | None = None
        self.fail_deletes_after: int | None = None

    def _put(self, entity_type: str, records: list[Record]) -> None:
        if self.fail_after is not None:
            if self.fail_after <= 0:
                raise StoreUnavailableError("fake kill", store=self.url())
            self.fail_after -= 1
        super()._put(entity_type, records)

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        if self.fail_deletes_after is not None:
            if self.fail_deletes_after <= 0:
                raise StoreUnavailableError("fake kill", store=self.url())
            self.fail_deletes_after -= 1
        return super()._delete(entity_type, ids)

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        yield from super()._scan(entity_type, partition)
        for raw in list(self.raw.get(entity_type, {})):
            yield ForeignEntry(raw, "not a UUID"), None

    def read_raw(self, entity_type: str, raws: Iterable[str]) -> dict[str, FakeRawEntry]:
        held = self.raw.get(entity_type, {})
        return {r: FakeRawEntry(r, dict(held[r])) for r in raws if r in held}

    def _read_raw(self, entity_type: str, raws: list[str]) -> list[FakeRawEntry]:
        return list(self.read_raw(entity_type, raws).values())  # the hook, once branch rawread declares it

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        held = self.raw.get(entity_type, {})
        return sum(1 for r in raws if held.pop(r, None) is not None)

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        return self._delete_raw(entity_type, raws)  # delete_raw_proven has re-read and compared each


def world(tmp_path: Path, users: int = 30, orders: int = 60) -> tuple[Forge, FakeLegacyStore, FakeLegacyStore, dict]:
    """A source with v4-named users and orders (orders' user_id: the user's v4 ID), a cache with
    ``user:<serial>`` entries (data field id: the serial; orders there reference serials), and one
    other application's entry in each."""
    source, cache = FakeLegacyStore(), FakeLegacyStore()
    v4 = {}
    for i in range(users):
        u = uuid.uuid4()
        v4[i] = u
        source._data.setdefault("user", {})[u] = Record("user", u, {"id": i, "email": f"u{i}@example.com", "name": f"U{i}"})
        cache.raw.setdefault("user", {})[f"user:{i}"] = {"id": i, "email": f"u{i}@example.com", "name": f"U{i}"}
    for j in range(orders):
        o = uuid.uuid4()
        source._data.setdefault("order", {})[o] = Record("order", o, {"id": 1000 + j, "order_no": j, "user_id": j % users})
        cache.raw.setdefault("order", {})[f"order:{j}"] = {"id": 1000 + j, "order_no": j, "user_id": j % users}
    other = uuid.uuid4()
    source._data["user"][other] = Record("user", other, {"id": -1, "session": "theirs"})
    cache.raw["user"]["session:abc"] = {"token": "theirs"}
    forge = make_forge(tmp_path, ("db", source), ("cache", cache), types=TYPES)
    return forge, source, cache, {"other": other, "v4": v4}


def new_user(forge: Forge, i: int) -> uuid.UUID:
    return forge.generator.generate_many("user", [{"email": f"u{i}@example.com"}])[0]


def test_plan_stops_on_unmapped_and_dry_run_counts(tmp_path: Path) -> None:
    forge, source, _, seed = world(tmp_path)
    seed_other = seed["other"]
    out = migration.plan(forge, SETTINGS, dry_run=True)
    assert out.stopped and "--leave-unmapped" in out.stopped
    assert out.counts["db/user"]["entries"] == 31 and out.counts["db/user"]["to map"] == 30
    assert out.counts["db/user"]["unmapped"] == 1 and out.counts["cache/user"]["unmapped"] == 1
    assert out.counts["cache/order"]["to map"] == 60
    assert all("theirs" not in p["entry"] and "session:abc" != p["entry"] for p in out.problems)
    assert "s••••••:a••" in [p["entry"] for p in out.problems]
    assert str(seed_other) not in str(out.problems)  # an unmapped entry named by a UUID is masked too
    assert mm.load(source, "default") == ([], None)  # nothing written
    ok = migration.plan(forge, SETTINGS, dry_run=True, leave_unmapped=True)
    assert not ok.stopped and mm.load(source, "default") == ([], None)


def test_collision_stops_unless_keep_first(tmp_path: Path) -> None:
    forge, source, cache, _ = world(tmp_path, users=3, orders=0)
    cache.raw["user"]["user:99"] = {"id": 99, "email": "u1@example.com"}  # a duplicate of user:1
    out = migration.plan(forge, SETTINGS, leave_unmapped=True)
    assert out.stopped and "collision" in out.stopped and out.counts["cache/user"]["collisions"] == 1
    assert mm.load(source, "default")[1] is None
    kept = migration.plan(forge, SETTINGS, leave_unmapped=True, on_collision="keep-first")
    assert not kept.stopped
    left = [m for m in mm.load(source, "default")[0] if m.state == "left" and m.store == "cache"]
    assert sorted(m.old for m in left) == ["session:abc", "user:99"]


def test_full_migration_end_to_end(tmp_path: Path) -> None:
    forge, source, cache, seed = world(tmp_path)
    assert not migration.plan(forge, SETTINGS, leave_unmapped=True).stopped
    with pytest.raises(MigrationRefusedError, match="verify has not passed"):
        migration.contract(forge, SETTINGS)
    dry = migration.expand(forge, SETTINGS, dry_run=True)
    assert dry.counts["db/user"]["written"] == 30 and dry.counts["cache/order"]["written"] == 60
    assert len(source._data["user"]) == 31  # the dry run wrote nothing
    out = migration.expand(forge, SETTINGS, batch_size=7)
    assert not out.stopped, out.problems
    assert len(source._data["user"]) == 61 and len(cache._data["order"]) == 60
    u5 = new_user(forge, 5)
    cached_orders = [r for r in cache._data["order"].values() if r.data["user_id"] == str(u5)]
    assert len(cached_orders) == 2  # orders 5 and 35, their serial user_id rewritten to the new ID
    assert all(r.data["user_id"] in {str(new_user(forge, i)) for i in range(30)}
               for r in source._data["order"].values() if "order_no" in r.data and r.id not in seed["v4"].values()
               and forge.generator.generate_many("order", [{"order_no": r.data["order_no"]}])[0] == r.id)
    ver = migration.verify(forge, SETTINGS)
    assert ver.passed, ver.problems
    assert migration.contract(forge, SETTINGS, dry_run=True, max_delete="100%").counts["db/user"]["deleted"] == 30
    with pytest.raises(MigrationRefusedError, match="--max-delete 60"):
        migration.contract(forge, SETTINGS)  # repair's default guard: 10%
    done = migration.contract(forge, SETTINGS, max_delete="100%")
    assert not done.stopped, done.problems
    assert set(source._data["user"]) == {new_user(forge, i) for i in range(30)} | {seed["other"]}
    assert set(cache.raw["user"]) == {"session:abc"} and cache.raw["order"] == {}
    assert cache.raw["user"]["session:abc"] == {"token": "theirs"}
    assert source._data["user"][seed["other"]].data == {"id": -1, "session": "theirs"}
    with pytest.raises(MigrationRefusedError, match="rollback refused"):
        migration.rollback(forge, SETTINGS)
    st = migration.status(forge, SETTINGS)
    assert st["counts"]["db/user"] == {"contracted": 30, "left": 1} and st["contract_started"]


def test_contract_refused_when_mapping_changed_after_verify(tmp_path: Path) -> None:
    forge, source, _, _ = world(tmp_path, users=5, orders=5)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    migration.expand(forge, SETTINGS)
    assert migration.verify(forge, SETTINGS).passed
    maps, _ = mm.load(source, "default")
    maps[0].created = not maps[0].created
    mm.save(source, [maps[0]])
    with pytest.raises(MigrationRefusedError, match="changed since verify"):
        migration.contract(forge, SETTINGS, max_delete="100%")


def test_verify_fails_on_edited_new_copy(tmp_path: Path) -> None:
    forge, source, _, _ = world(tmp_path, users=5, orders=0)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    migration.expand(forge, SETTINGS)
    u = new_user(forge, 2)
    source._data["user"][u] = Record("user", u, {"id": 2, "email": "u2@example.com", "name": "edited"})
    out = migration.verify(forge, SETTINGS)
    assert not out.passed and any(p["problem"] == "differs" for p in out.problems)
    with pytest.raises(MigrationRefusedError, match="last run failed"):
        migration.contract(forge, SETTINGS, max_delete="100%")


def test_unresolved_reference_is_listed_never_guessed(tmp_path: Path) -> None:
    forge, _, cache, _ = world(tmp_path, users=3, orders=3)
    cache.raw["order"]["order:77"] = {"id": 77, "order_no": 77, "user_id": 12345}
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    out = migration.expand(forge, SETTINGS)
    assert out.stopped and [p["problem"] for p in out.problems] == ["not expanded"]
    assert "user_id" in out.problems[0]["reason"]
    bad = forge.generator.generate_many("order", [{"order_no": 77}])[0]
    assert bad not in cache._data["order"]


def test_each_batch_is_checkpointed_and_reported(tmp_path: Path) -> None:
    """expand, rollback and contract save their checkpoint (done of total) per place after each
    batch and report each batch to ``progress``; a dry run reports but saves nothing."""
    forge, source, _, _ = world(tmp_path, users=25, orders=0)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    places = ("db/user", "cache/user")  # 25 mapped and 1 left each
    contract = functools.partial(migration.contract, max_delete="100%")
    for phase, call in [("expand", migration.expand), ("rollback", migration.rollback),
                        ("expand", migration.expand), ("contract", contract)]:
        if phase == "contract":
            assert migration.verify(forge, SETTINGS).passed
        before = mm.load(source, "default")[1]
        dry: list[int] = []
        call(forge, SETTINGS, batch_size=10, progress=dry.append, dry_run=True)
        assert dry == [10, 10, 5] * 2, phase
        state = mm.load(source, "default")[1]
        assert state is not None and before is not None and state.checkpoints == before.checkpoints, phase
        seen: list[int] = []
        call(forge, SETTINGS, batch_size=10, progress=seen.append)
        assert seen == [10, 10, 5] * 2, phase
        state = mm.load(source, "default")[1]
        assert state is not None
        for place in places:
            assert {k: v for k, v in state.checkpoints[f"{phase}/{place}"].items() if k != "at"} == {
                "done": 26, "total": 26}, (phase, place)


def test_expand_resumes_after_kill_without_duplicates(tmp_path: Path) -> None:
    forge, source, cache, _ = world(tmp_path, users=40, orders=0)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    cache.fail_after = 2  # the third batch's put fails: a kill mid-phase
    with pytest.raises(StoreUnavailableError):
        migration.expand(forge, SETTINGS.__class__(**SETTINGS.__dict__), batch_size=10)
    maps, state = mm.load(source, "default")
    states = {m.state for m in maps if m.store == "cache" and m.entity_type == "user" and m.state != "left"}
    assert "expanding" in states  # the batch in flight, created already decided
    assert state is not None and state.checkpoints
    cache.fail_after = None
    out = migration.expand(forge, SETTINGS, batch_size=10)
    assert not out.stopped
    assert len(cache._data["user"]) == 40
    maps, _ = mm.load(source, "default")
    assert all(m.state == "expanded" and m.created for m in maps if m.state != "left")
    assert migration.verify(forge, SETTINGS).passed
    # the kill came after the put: the re-run's batch in flight still counts as created, so rollback removes it
    rb = migration.rollback(forge, SETTINGS)
    assert not rb.stopped and cache._data["user"] == {} and len(cache.raw["user"]) == 41


def test_contract_resumes_after_kill(tmp_path: Path) -> None:
    forge, source, _, _ = world(tmp_path, users=30, orders=0)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    migration.expand(forge, SETTINGS)
    assert migration.verify(forge, SETTINGS).passed
    source.fail_deletes_after = 1
    with pytest.raises(StoreUnavailableError):
        migration.contract(forge, SETTINGS, max_delete="100%", batch_size=10)
    source.fail_deletes_after = None
    out = migration.contract(forge, SETTINGS, max_delete="100%", batch_size=10)
    assert not out.stopped
    assert len(source._data["user"]) == 31
    maps, _ = mm.load(source, "default")
    assert sum(m.state == "contracted" for m in maps) == 60


def test_rollback_leaves_old_data_and_what_expand_did_not_create(tmp_path: Path) -> None:
    forge, source, cache, _ = world(tmp_path, users=5, orders=5)
    u0 = new_user(forge, 0)
    source._data["user"][u0] = Record("user", u0, {"id": 0, "email": "u0@example.com", "name": "U0"})  # already there
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    before = {t: dict(source._data[t]) for t in ("user", "order")}
    migration.expand(forge, SETTINGS)
    u1 = new_user(forge, 1)
    cache._data["user"][u1] = Record("user", u1, {"email": "u1@example.com", "name": "changed by the app"})
    out = migration.rollback(forge, SETTINGS)
    assert [p["problem"] for p in out.problems] == ["left"]  # the changed copy: not what expand wrote
    assert {t: dict(source._data[t]) for t in ("user", "order")} == before
    assert set(cache._data["user"]) == {u1} and cache._data["order"] == {}
    assert len(cache.raw["user"]) == 6


def test_a_store_without_read_raw_leaves_raw_entries_unmapped(tmp_path: Path) -> None:
    forge, _, cache, _ = world(tmp_path, users=3, orders=0)
    assert migration.can_read_raw(cache)

    class FakeNoRawStore(FakeLegacyStore):
        read_raw = None  # type: ignore[assignment]

    plain = FakeNoRawStore()
    plain.raw = cache.raw
    forge = make_forge(tmp_path, ("db", forge.source.adapter), ("cache", plain), types=TYPES)
    out = migration.plan(forge, SETTINGS, dry_run=True)
    assert out.counts["cache/user"]["unmapped"] == 4 and out.stopped
    assert {p["reason"] for p in out.problems if p["store"] == "cache"} == {
        "this store cannot read entries not named by a UUID (no read_raw)"}


def test_phases_refuse_without_plan(tmp_path: Path) -> None:
    forge, _, _, _ = world(tmp_path, users=2, orders=0)
    for phase in (migration.expand, migration.verify, migration.contract, migration.rollback):
        with pytest.raises(MigrationRefusedError, match="has not been made"):
            phase(forge, SETTINGS)


def test_cli_phases_on_sqlite_and_files(tmp_path: Path) -> None:
    """The command line end to end on stores that outlive a command (SQLite source, files): exit
    codes, --json counts, contract refused before verify, the other application's entry kept."""
    import json

    from uuid_forge.registry import open_store

    from .scaffold import run_cli, write_forge_toml

    extra = ('[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\nreferences = { user_id = "user" }\n'
             '\n[migrate]\nplan = "p1"\n')
    conf = write_forge_toml(tmp_path / "uf.toml", {"db": f"sqlite:///{tmp_path}/db.sqlite3",
                                                   "files": {"url": f"file://{tmp_path}/files",
                                                             "options": {"fsync": False}}},
                            "db", namespace="users.example.com", extra=extra)
    env = {"UUID_FORGE_SALT": "salt-for-tests"}
    olds = {i: uuid.uuid4() for i in range(12)}
    with open_store(f"sqlite:///{tmp_path}/db.sqlite3") as db, open_store(f"file://{tmp_path}/files?fsync=false") as fs:
        for store in (db, fs):
            store.put_many([Record("user", olds[i], {"email": f"u{i}@example.com"}) for i in olds])
            store.put_many([Record("order", uuid.uuid4(), {"order_no": j, "user_id": str(olds[j % 12])})
                            for j in range(20)])
        theirs = uuid.uuid4()
        fs.put_many([Record("user", theirs, {"session": "theirs"})])
    code, stdout, _ = run_cli(["migrate", "plan", "-c", str(conf), "--json"], env)
    assert code == 2 and json.loads(stdout)["counts"]["files/user"]["unmapped"] == 1
    code, stdout, _ = run_cli(["migrate", "plan", "-c", str(conf), "--json", "--leave-unmapped"], env)
    assert code == 0, stdout
    code, _, stderr = run_cli(["migrate", "contract", "-c", str(conf)], env)
    assert code == 2 and "verify has not passed" in stderr and "Traceback" not in stderr
    code, stdout, _ = run_cli(["migrate", "expand", "-c", str(conf), "--json", "--batch-size", "5"], env)
    assert code == 0 and json.loads(stdout)["counts"]["files/order"]["written"] == 20
    code, stdout, _ = run_cli(["migrate", "verify", "-c", str(conf), "--json"], env)
    assert code == 0 and json.loads(stdout)["passed"], stdout
    code, _, stderr = run_cli(["migrate", "contract", "-c", str(conf)], env)
    assert code == 2 and "--max-delete 20" in stderr
    code, stdout, _ = run_cli(["migrate", "contract", "-c", str(conf), "--max-delete", "100%", "--json"], env)
    assert code == 0 and json.loads(stdout)["counts"]["db/user"]["deleted"] == 12
    code, stdout, _ = run_cli(["migrate", "status", "-c", str(conf)], env)
    assert code == 0 and "contracted" in stdout and "p1" in stdout
    with open_store(f"file://{tmp_path}/files?fsync=false") as fs:
        users = {i for i, _ in fs.scan("user")}
        assert theirs in users and len(users) == 13
        orders = fs.get_many("order", [i for i, _ in fs.scan("order")])
        assert len(orders) == 20 and not set(olds.values()) & users
        assert {r.data["user_id"] for r in orders.values()} <= {str(u) for u in users}
    code, _, stderr = run_cli(["migrate", "rollback", "-c", str(conf)], env)
    assert code == 2 and "rollback refused" in stderr


def test_plan_counts_entries_uuid_forge_wrote_with_the_key_apart_as_already_deterministic(tmp_path: Path) -> None:
    """The README's stores: ``write -k email=... -d name=...`` puts the key in the source and only
    the data in the file. Plan proves those files by the source's record under the same ID (its key
    fields give it): already deterministic, not unmapped. A file whose ID the source does not hold,
    stays unmapped (masked: it may be another application's)."""
    import json

    from uuid_forge.registry import open_store

    from .scaffold import run_cli, write_forge_toml

    stores = {"db": f"sqlite:///{tmp_path}/db.sqlite3",
              "files": {"url": f"file://{tmp_path}/files", "options": {"fsync": False}}}
    conf = write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace="users.example.com")
    env = {"UUID_FORGE_SALT": "salt-for-tests"}
    for email, name in (("john@example.com", "John"), ("ann@example.com", "Ann")):  # no [types.user] yet
        code, _, stderr = run_cli(["write", "user", "-c", str(conf), "-k", f"email={email}", "-d", f"name={name}"], env)
        assert code == 0, stderr
    write_forge_toml(conf, stores, "db", namespace="users.example.com", extra='[types.user]\nkey = ["email"]\n')
    stray = uuid.uuid4()
    with open_store(f"file://{tmp_path}/files?fsync=false") as fs:
        assert all("email" not in r.data for r in fs.get_many("user", [i for i, _ in fs.scan("user")]).values())
        fs.put_many([Record("user", stray, {"name": "no key, not in the source"})])
    code, stdout, _ = run_cli(["migrate", "plan", "-c", str(conf), "--json", "--dry-run"], env)
    out = json.loads(stdout)
    assert out["counts"]["files/user"]["already deterministic"] == 2, out["counts"]
    assert out["counts"]["db/user"]["already deterministic"] == 2, out["counts"]
    assert out["counts"]["files/user"]["unmapped"] == 1 and code == 2
    assert [p["entry"] for p in out["problems"]] == [mask_name(str(stray))]


@pytest.mark.parametrize(("doc", "fragment"), [
    ({"types": {"order": {"key": ["no"], "references": {"user_id": "user"}}}}, "[types.order] references user_id"),
    ({"types": {"user": {"key": ["email"]}, "order": {"key": ["no", "user_id"], "references": {"user_id": "user"}}}},
     "a key field cannot be a reference"),
    ({"migrate": {"stores": {"cache": {"old_id": "field:id"}}}}, "[migrate.stores.cache]: no store 'cache'"),
    ({"migrate": {"stores": {"db": {"old_id": "legacy_id"}}}}, "old_id = 'legacy_id': use \"field:NAME\""),
    ({"migrate": {"plan": "two words"}}, "[migrate] plan = 'two words'"),
    ({"migrate": {"plans": "x"}}, "plans"),
    ({"types": {"user": {"key": ["email"]}}, "migrate": {"in_place": {"u": {"store": "nope", "table": "users",
                                                                             "type": "user"}}}},
     "[migrate.in_place.u] store = 'nope'"),
    ({"types": {"user": {"key": ["email"]}}, "migrate": {"in_place": {"u": {"store": "db", "table": "users; drop",
                                                                             "type": "user"}}}},
     "must be SQL names"),
    ({"types": {"user": {"key": ["email"]}}, "migrate": {"in_place": {"u": {"store": "db", "table": "users",
                                                                             "type": "user", "key": {"mail": "m"}}}}},
     "map exactly the key fields of 'user'"),
    ({"types": {"user": {"key": ["email"]}}, "migrate": {"in_place": {"u": {
        "store": "db", "table": "users", "type": "user", "references": {"team_id": {"to": "teams", "column": "t"}}}}}},
     "references team_id"),
])
def test_migrate_settings_name_the_bad_value(doc: dict[str, Any], fragment: str) -> None:
    from uuid_forge.errors import ConfigError
    from uuid_forge.settings import parse_settings

    with pytest.raises(ConfigError) as caught:
        parse_settings({"stores": {"db": {"url": "memory://", "role": "source"}}, **doc}, "uf.toml", env={})
    assert fragment in str(caught.value) and "uf.toml" in str(caught.value)


def test_contract_leaves_raw_entries_a_store_refuses_to_delete(tmp_path: Path) -> None:
    from uuid_forge.errors import ValidationError

    class FakeRefusingStore(FakeLegacyStore):
        def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
            raise ValidationError(f"keys {raws[:3]} are not keys written by uuid-forge: refused")

    forge, source, cache, _ = world(tmp_path, users=6, orders=0)
    refusing = FakeRefusingStore()
    refusing.raw = cache.raw
    forge = make_forge(tmp_path, ("db", source), ("cache", refusing), types=TYPES)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    migration.expand(forge, SETTINGS)
    assert migration.verify(forge, SETTINGS).passed
    out = migration.contract(forge, SETTINGS, max_delete="100%")
    assert out.stopped and out.counts["cache/user"]["left: store refuses raw delete"] == 6
    assert all("user:" not in p["reason"] for p in out.problems)
    maps, _ = mm.load(source, "default")
    assert {m.state for m in maps if m.store == "cache" and m.state != "left"} == {"expanded"}
    assert {m.state for m in maps if m.store == "db" and m.state != "left"} == {"contracted"}
    assert len(cache.raw["user"]) == 7


def test_plan_again_keeps_progress_and_is_refused_after_contract(tmp_path: Path) -> None:
    forge, source, _, _ = world(tmp_path, users=8, orders=8)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    migration.expand(forge, SETTINGS)
    before, _ = mm.load(source, "default")
    again = migration.plan(forge, SETTINGS, leave_unmapped=True)
    assert not again.stopped and again.counts["db/user"]["already deterministic"] == 8  # the new copies
    after, state = mm.load(source, "default")
    assert [(m.old, m.new, m.state, m.created) for m in after] == [(m.old, m.new, m.state, m.created) for m in before]
    assert state is not None and state.verified is None  # planning again asks for a new verify
    assert migration.verify(forge, SETTINGS).passed
    migration.contract(forge, SETTINGS, max_delete="100%")
    with pytest.raises(MigrationRefusedError, match="contract has started"):
        migration.plan(forge, SETTINGS, leave_unmapped=True)
    with pytest.raises(MigrationRefusedError, match="expand is over"):
        migration.expand(forge, SETTINGS)


def test_plan_and_rollback_resume_after_kill(tmp_path: Path) -> None:
    forge, source, cache, _ = world(tmp_path, users=300, orders=0)
    source.fail_after = 1  # the mapping's second batch of 500 fails: a kill while plan writes
    with pytest.raises(StoreUnavailableError):
        migration.plan(forge, SETTINGS, leave_unmapped=True)
    partial, state = mm.load(source, "default")
    assert 0 < len(partial) < 602 and state is None  # not planned yet: expand would refuse
    source.fail_after = None
    assert not migration.plan(forge, SETTINGS, leave_unmapped=True).stopped
    assert len(mm.load(source, "default")[0]) == 602
    migration.expand(forge, SETTINGS)
    cache.fail_deletes_after = 1
    with pytest.raises(StoreUnavailableError):
        migration.rollback(forge, SETTINGS, batch_size=100)
    cache.fail_deletes_after = None
    assert not migration.rollback(forge, SETTINGS, batch_size=100).stopped
    assert cache._data["user"] == {} and len(source._data["user"]) == 301 and len(cache.raw["user"]) == 301
    assert {m.state for m in mm.load(source, "default")[0]} == {"rolled_back", "left"}


def test_contract_deletes_raw_entries_only_while_they_hold_the_proven_data(tmp_path: Path) -> None:
    """An old raw-named entry edited between contract's proof and the store's delete stays (the
    store re-reads it and compares with the proven data), listed and unmarked; the rest go."""

    class FakeRacingStore(FakeLegacyStore):
        def delete_raw_proven(self, entity_type: str, proven: Any) -> int:
            if "user:0" in proven:  # the application edits it just before the delete
                self.raw[entity_type]["user:0"] = {**self.raw[entity_type]["user:0"], "name": "edited"}
            return super().delete_raw_proven(entity_type, proven)

    forge, source, cache, _ = world(tmp_path, users=6, orders=0)
    racing = FakeRacingStore()
    racing.raw = cache.raw
    forge = make_forge(tmp_path, ("db", source), ("cache", racing), types=TYPES)
    migration.plan(forge, SETTINGS, leave_unmapped=True)
    migration.expand(forge, SETTINGS)
    assert migration.verify(forge, SETTINGS).passed
    out = migration.contract(forge, SETTINGS, max_delete="100%")
    assert out.counts["cache/user"]["left: changed before delete"] == 1
    assert out.counts["cache/user"]["deleted"] == 5
    assert len(cache.raw["user"]) == 2 and "user:0" in cache.raw["user"]  # and the other application's entry
    assert cache.raw["user"]["user:0"]["name"] == "edited"
    maps, _ = mm.load(source, "default")
    assert {m.old: m.state for m in maps if m.store == "cache" and m.old == "user:0"} == {"user:0": "expanded"}
    assert all("user:0" not in p["reason"] and p["entry"] != "user:0" for p in out.problems)
