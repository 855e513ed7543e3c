"""The ID-configuration marker with in-process stores: kinds, digests, legacy sources, reserved type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from uuid_forge.adapters.memory import MemoryAdapter
from uuid_forge.adapters.sql import SQLAdapter

from uuid_forge import Forge, IDConfig, Namespace, ValidationError
from uuid_forge.errors import IDConfigMismatchError
from uuid_forge.forge import StoreHandle
from uuid_forge.idmarker import META_TYPE, Marker, accept, differences, marker_id, read_markers
from uuid_forge.record import Record

from .scaffold import make_forge, write_forge_toml

NS = Namespace("marker.test")
BASE = IDConfig(namespace=NS, salt="salt-one-hidden")


def forge(tmp_path: Path, source: object, ids: IDConfig = BASE, *others: StoreHandle) -> Forge:
    return make_forge(tmp_path, ("src", source), *others, ids=ids, journal="j.sqlite3")  # type: ignore[arg-type]


def people(n: int = 3, start: int = 0) -> list[tuple[str, dict[str, str], dict[str, int]]]:
    return [("user", {"email": f"u{i}@example.com"}, {"n": i}) for i in range(start, start + n)]


@pytest.mark.parametrize(("now", "kinds"), [
    (BASE, []),
    (IDConfig(namespace=NS), ["salt_missing"]),
    (IDConfig(namespace=NS, salt="other"), ["salt"]),
    (IDConfig(namespace=NS, salt="salt-one-hidden", secret="k"), ["secret_added"]),
    (IDConfig(namespace=Namespace("other.test"), salt="salt-one-hidden"), ["namespace"]),
    (IDConfig(namespace=NS, salt="salt-one-hidden", scheme="uuid-forge-0.1"), ["scheme"]),
])
def test_differences_name_the_kind(now: IDConfig, kinds: list[str]) -> None:
    assert differences(Marker.of(BASE, "user"), now) == kinds


def test_secret_kinds_and_no_value_in_the_marker() -> None:
    keyed = IDConfig(namespace=NS, salt="salt-one-hidden", secret="key-one-hidden")
    marker = Marker.of(keyed, "user")
    text = json.dumps(marker.to_data())
    assert "salt-one-hidden" not in text and "key-one-hidden" not in text
    assert marker.salt_digest and marker.secret_digest and marker.salt_digest != marker.secret_digest
    assert differences(marker, IDConfig(namespace=NS, salt="salt-one-hidden", secret="key-two")) == ["secret"]
    assert differences(marker, IDConfig(namespace=NS, salt="salt-one-hidden")) == ["secret_missing"]
    assert Marker.of(IDConfig(namespace=NS), "user").salt_digest is None  # unset is recorded as unset


def test_first_write_records_then_refuses_another_salt(tmp_path: Path) -> None:
    src, cache = MemoryAdapter(), MemoryAdapter()
    with forge(tmp_path, src, BASE, StoreHandle("cache", cache)) as f:
        f.write_many(people())
        assert f.entity_types() == ["user"]  # the reserved type is never listed
        assert src.entity_types() == ["user"] and marker_id("user") in src.get_many(META_TYPE, [marker_id("user")])
    with forge(tmp_path, src, IDConfig(namespace=NS), StoreHandle("cache", cache)) as f:
        with pytest.raises(IDConfigMismatchError, match="written with a salt and none is set now") as err:
            f.write_many(people(5))
        assert err.value.mismatches == {"user": ["salt_missing"]}
        assert f.pending() == {}  # nothing journaled either
        report = f.audit()
        assert not report.consistent and len(report.id_config) == 1 and report.findings == []
    assert src.count("user") == 3 and cache.count("user") == 3


def test_a_lost_marker_is_recreated_only_by_a_configuration_that_rebuilds_the_ids(tmp_path: Path) -> None:
    src = MemoryAdapter()
    with forge(tmp_path, src) as f:
        f.write_many(people())
    src.delete_many(META_TYPE, [marker_id("user")])  # lost (or written before markers existed)
    with forge(tmp_path, src, IDConfig(namespace=NS)) as f:
        report = f.audit(verify_keys=True)
        assert report.id_config == [] and len(report.findings) == 3  # no marker: per-record findings as before
        with pytest.raises(IDConfigMismatchError, match="rebuilds none of the 3 IDs") as err:
            f.write_many(people(1, start=10))  # not re-created blindly under the wrong configuration
        assert err.value.mismatches == {"user": ["marker_missing_disproven"]} and "--rotate --yes" in str(err.value)
    assert src.count("user") == 3 and read_markers_of(tmp_path, src) == {}
    with forge(tmp_path, src, BASE) as f:
        f.write_many(people(1, start=10))  # the right configuration proves itself and records it again
    with forge(tmp_path, src, IDConfig(namespace=NS)) as f, pytest.raises(IDConfigMismatchError,
                                                                          match="written with a salt and none"):
        f.write_many(people(1))
    assert src.count("user") == 4


def test_a_lost_marker_over_entries_without_keys_is_not_recreated(tmp_path: Path) -> None:
    src = MemoryAdapter()
    with forge(tmp_path, src) as f:
        ident = f.id_for("user", {"email": "u0@example.com"})
    src.put_many([Record("user", ident, {"n": 0}, None)])  # no key stored, none declared: nothing proves it
    with forge(tmp_path, src) as f, pytest.raises(IDConfigMismatchError, match="holds its key fields"):
        f.write_many(people(1))
    with forge(tmp_path, src) as f:
        with pytest.raises(IDConfigMismatchError, match="add --rotate"):
            accept(f, ["user"])
        accept(f, ["user"], rotate=True)
        f.write_many(people(1))


def read_markers_of(tmp_path: Path, src: MemoryAdapter) -> dict[str, Marker]:
    with forge(tmp_path, src) as f:
        return read_markers(f, ["user"])


def test_a_dropped_type_takes_a_new_configuration_only_through_accept(tmp_path: Path) -> None:
    src = MemoryAdapter()
    with forge(tmp_path, src) as f:
        f.write_many(people())
    src.drop("user")
    new = IDConfig(namespace=NS, salt="new")
    with forge(tmp_path, src, new) as f:
        with pytest.raises(IDConfigMismatchError, match="the salt differs"):
            f.write_many(people())  # a write never replaces a marker that differs
        assert accept(f, ["user"])[0]["proof"]["state"] == "empty"  # nothing to protect: no --rotate needed
        f.write_many(people())
    with forge(tmp_path, src, BASE) as f, pytest.raises(IDConfigMismatchError, match="the salt differs"):
        f.write_many(people())


def test_reserved_type_cannot_be_written_or_audited(tmp_path: Path) -> None:
    with forge(tmp_path, MemoryAdapter()) as f:
        with pytest.raises(ValidationError, match="reserved"):
            f.write(META_TYPE, "x", {})
        with pytest.raises(ValidationError, match="reserved"):
            f.audit(META_TYPE)


def test_source_on_a_user_table_keeps_its_marker_in_a_side_table(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'own.db'}"
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id CHAR(32) PRIMARY KEY, data TEXT, key TEXT, fingerprint TEXT)"))
    engine.dispose()
    src = SQLAdapter(db, table="people", entity_type="user")
    with forge(tmp_path, src) as f:
        f.write_many(people())
        assert set(read_markers(f, ["user"])) == {"user"}
        assert f.entity_types() == ["user"]
    with forge(tmp_path, SQLAdapter(db, table="people", entity_type="user"), IDConfig(namespace=NS)) as f, \
            pytest.raises(IDConfigMismatchError, match="written with a salt and none"):
        f.write_many(people(1, start=9))
    engine = sa.create_engine(db)
    try:
        # no marker row in the user's table: it is in a table of ours beside it
        assert sorted(sa.inspect(engine).get_table_names()) == ["people", "uuid_forge_meta"]
        with engine.connect() as conn:
            ids = {row[0] for row in conn.execute(sa.text("SELECT id FROM people"))}
            meta = {row[0] for row in conn.execute(sa.text("SELECT id FROM uuid_forge_meta"))}
    finally:
        engine.dispose()
    assert len(ids) == 3 and marker_id("user").hex not in ids and meta == {marker_id("user").hex}


def test_ids_accept_command(tmp_path: Path) -> None:
    from uuid_forge.cli.app import cli

    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path}/s.db"}, "db",
                              journal=f"{tmp_path}/j.sqlite3")
    runner = CliRunner()
    old, new = {"UUID_FORGE_SALT": "salt-one-hidden"}, {"UUID_FORGE_SALT": "salt-two-hidden"}
    assert runner.invoke(cli, ["write", "-c", str(config), "user", "-k", "e=a"], env=old).exit_code == 0
    refused = runner.invoke(cli, ["write", "-c", str(config), "user", "-k", "e=a"], env=new)
    assert isinstance(refused.exception, IDConfigMismatchError)
    plan = runner.invoke(cli, ["ids", "accept", "-c", str(config)], env=new)
    assert plan.exit_code == 1 and "would record" in plan.output and "salt-two" not in plan.output
    assert "needs --rotate" in plan.output
    refused = runner.invoke(cli, ["ids", "accept", "-c", str(config), "--yes"], env=new)
    assert isinstance(refused.exception, IDConfigMismatchError) and "rebuilds none of the 1 IDs" in str(refused.exception)
    done = runner.invoke(cli, ["ids", "accept", "-c", str(config), "--rotate", "--yes", "--json"], env=new)
    assert done.exit_code == 0 and json.loads(done.output)["entity_types"][0]["differs"] == ["salt"]
    assert runner.invoke(cli, ["write", "-c", str(config), "user", "-k", "e=b"], env=new).exit_code == 0
    assert runner.invoke(cli, ["ids", "status", "-c", str(config)], env=new).exit_code == 0
