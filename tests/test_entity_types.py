"""Declared entity types without servers: [types] parsing, per-type IDs, write(type, data),
missing key fields, per-type ID-config markers, --verify-keys from key fields, and generate(dict)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import (
    CanonicalTypeError,
    Forge,
    IDConfig,
    Namespace,
    Record,
    UUIDGenerator,
    ValidationError,
    generate_uuid_only,
)
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import ConfigError, IDConfigMismatchError, UUIDForgeError
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.settings import parse_settings

from .conftest import load_vectors
from .scaffold import make_forge, run_cli, write_forge_toml

VECTORS = {v["label"]: v for v in load_vectors("ids-v1.json")}
STORES = {"db": {"url": "memory://", "role": "source"}}


def settings(types: Any, env: dict[str, str] | None = None) -> Any:
    return parse_settings({"ids": {"namespace": "base.example"}, "stores": STORES, "types": types}, "uf.toml",
                          env or {})


def forge(tmp_path: Path, *types: EntityType,
          ids: IDConfig | None = None) -> tuple[Forge, MemoryAdapter, MemoryAdapter]:
    src, cache = MemoryAdapter(), MemoryAdapter()
    f = make_forge(tmp_path, ("src", src), ("cache", cache), ids=ids or IDConfig(namespace=Namespace("base.example")),
                   journal="j.sqlite3", types=types)
    return f, src, cache


# -- settings ---------------------------------------------------------------------------------------
def test_types_tables_parse_into_entity_types() -> None:
    s = settings({"user": {"key": ["email"], "namespace": "users"},
                  "order": {"key": "order_number", "namespace": "orders", "salt_env": "SALT_ORDERS"},
                  "product": {"key": ["sku", "region"]}}, {"SALT_ORDERS": "order-salt-hidden"})
    assert s.types["user"].key == ("email",) and s.types["user"].namespace == Namespace("users")
    assert s.types["order"].key == ("order_number",) and s.types["order"].salt == "order-salt-hidden"
    assert s.types["product"].namespace is None and not s.types["product"].own_config
    assert "order-salt-hidden" not in repr(s) and "order-salt-hidden" not in repr(s.types)


@pytest.mark.parametrize(("types", "message"), [
    ("user", r"\[types\] must be a table of \[types.NAME\] tables"),
    ({"user": ["email"]}, r"\[types.user\] must be a table"),
    ({"user": {"keys": ["email"]}}, r"\[types.user\]: unknown key 'keys' \(allowed: key, namespace, references, salt_env\)"),
    ({"order": {"key": ["n"], "salt": "x"}}, r"keep salts out of the file.*salt_env = \"UUID_FORGE_SALT_ORDER\""),
    ({"user": {"key": [1]}}, r"\[types.user\] key must be a list of field names"),
    ({"user": {"key": ["email", "email"]}}, r"names a field twice"),
    ({"user": {"key": ["email"], "namespace": 7}}, r"\[types.user\] namespace must be a domain"),
    ({"user": {"key": ["email"], "salt_env": "not a name"}}, r"salt_env must name an environment variable"),
    ({"uuid-forge.meta": {"key": ["x"]}}, r"is reserved"),
])
def test_bad_types_tables_fail_with_one_clear_line(types: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        settings(types)
    assert "\n" not in str(info.value) and str(info.value).startswith("uf.toml [types")


def test_entity_type_in_code_refuses_salt_and_salt_env_together() -> None:
    with pytest.raises(ConfigError, match="give salt or salt_env, not both"):
        EntityType("order", ("n",), salt="a", salt_env="B")


# -- IDs ----------------------------------------------------------------------------------------------
def test_per_type_namespace_and_salt_give_the_documented_ids(tmp_path: Path) -> None:
    """The spec's vectors, each type with its own namespace and salt, served by one Forge."""
    user, invoice = VECTORS["seed user"], VECTORS["int vs str differ (int)"]
    f, _, _ = forge(tmp_path, EntityType("user", ("email",), namespace="users.myapp.com", salt="v1"),
                    EntityType("invoice", ("number", "region"), namespace="orders", salt="v1"))
    with f:
        assert str(f.id_for("user", data={"email": "john@example.com", "name": "John"})) == user["uuid"]
        assert str(f.id_for("invoice", data={"region": "EUR", "number": 12345})) == invoice["uuid"]
        # an undeclared type keeps [ids]
        assert f.id_for("note", {"n": 1}) == UUIDGenerator(IDConfig(namespace=Namespace("base.example"))).generate(
            "note", n=1)


def test_salt_env_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UF_TEST_SALT_ORDERS", "v1")
    f, _, _ = forge(tmp_path, EntityType("invoice", ("number", "region"), namespace="orders",
                                         salt_env="UF_TEST_SALT_ORDERS"))
    with f:
        want = VECTORS["int vs str differ (int)"]["uuid"]
        assert str(f.id_for("invoice", {"number": 12345, "region": "EUR"})) == want


def test_write_type_data_derives_the_id_from_the_key_fields(tmp_path: Path) -> None:
    f, src, cache = forge(tmp_path, EntityType("user", ("email",), namespace="users.myapp.com", salt="v1"))
    with f:
        f.write("user", {"email": "john@example.com", "name": "John"})
        f.write("user", {"email": "ann@example.com"}, {"email": "ann@example.com", "name": "Ann"})  # the old form
        f.write_many([("user", {"email": "bob@example.com"}),
                      {"entity_type": "user", "data": {"email": "eve@example.com"}}])
        ident = uuid.UUID(VECTORS["seed user"]["uuid"])
        for store in (src, cache):
            got = store.get_many("user", [ident])[ident]
            assert got.data == {"email": "john@example.com", "name": "John"}
            assert got.key == {"email": "john@example.com"}
        assert len(src.get_many("user", [f.id_for("user", data={"email": e}) for e in
                                         ("ann@example.com", "bob@example.com", "eve@example.com")])) == 3


def test_missing_key_field_names_type_field_and_index(tmp_path: Path) -> None:
    f, src, _ = forge(tmp_path, EntityType("order", ("order_number",), namespace="orders"))
    with f:
        with pytest.raises(ValidationError) as info:
            f.write_many([("order", {"order_number": "A-1"}), ("order", {"order_number": "A-2"}),
                          ("order", {"total": 3})])
        assert str(info.value) == ("entities[2] (order): key field 'order_number' of entity type 'order' is missing "
                                   "from the data (key = ['order_number'])")
        assert src.entity_types() == []  # nothing was written: the list is validated whole first
        with pytest.raises(ValidationError, match=r"entities\[0\] \(order\): key field 'order_number' .* is null"):
            f.write("order", {"order_number": None})


def test_key_left_out_for_an_undeclared_type_is_refused(tmp_path: Path) -> None:
    f, _, _ = forge(tmp_path)
    with f, pytest.raises(ValidationError, match="no key given, and entity type 'user' is not declared with key"):
        f.write("user", {"email": "x@y.z"})


def test_explicit_key_of_a_declared_type_must_agree_with_the_data(tmp_path: Path) -> None:
    f, _, _ = forge(tmp_path, EntityType("user", ("email",)))
    with f:
        with pytest.raises(ValidationError, match="the key and the data disagree on key field"):
            f.write("user", {"email": "a@x.y"}, {"email": "b@x.y"})
        with pytest.raises(ValidationError, match=r"declares key = \['email'\]"):
            f.write("user", {"mail": "a@x.y"}, {"email": "a@x.y"})


# -- the ID-configuration marker, per type --------------------------------------------------------------
def test_marker_uses_each_types_own_salt(tmp_path: Path) -> None:
    src = MemoryAdapter()
    types = [EntityType("order", ("n",), namespace="orders", salt="order-salt-one"), EntityType("user", ("email",))]
    with Forge([StoreHandle("src", src, source=True)], ids=IDConfig(salt="base"),  # type: ignore[arg-type]
               journal=Journal(tmp_path / "j.sqlite3"), types=types) as f:
        f.write_many([("order", {"n": 1}), ("user", {"email": "a@x.y"})])
    changed = [EntityType("order", ("n",), namespace="orders", salt="order-salt-two"), EntityType("user", ("email",))]
    with Forge([StoreHandle("src", src, source=True)], ids=IDConfig(salt="base"),  # type: ignore[arg-type]
               journal=Journal(tmp_path / "j.sqlite3"), types=changed) as f:
        f.write("user", {"email": "b@x.y"})  # the other type is not affected
        with pytest.raises(IDConfigMismatchError, match="entity type 'order': the salt differs") as info:
            f.write("order", {"n": 2})
        assert "order-salt" not in str(info.value) and info.value.mismatches == {"order": ["salt"]}
        report = f.audit()
        assert [c["entity_type"] for c in report.id_config] == ["order"]


def test_marker_uses_each_types_own_namespace_as_the_docs_say(tmp_path: Path) -> None:
    """id-config.md said a per-type namespace was not supported, while entity-types.md documents
    it: the code keeps one marker per type, each with the type's own namespace."""
    src = MemoryAdapter()
    types = [EntityType("order", ("n",), namespace="orders"), EntityType("user", ("email",))]
    with Forge([StoreHandle("src", src, source=True)], ids=IDConfig(namespace=Namespace("base"), salt="s"),  # type: ignore[arg-type]
               journal=Journal(tmp_path / "j.sqlite3"), types=types) as f:
        f.write_many([("order", {"n": 1}), ("user", {"email": "a@x.y"})])
        assert f.id_for("order", {"n": 1}) != UUIDGenerator(IDConfig(namespace=Namespace("base"), salt="s")).generate("order", n=1)
    moved = [EntityType("order", ("n",), namespace="orders-v2"), EntityType("user", ("email",))]
    with Forge([StoreHandle("src", src, source=True)], ids=IDConfig(namespace=Namespace("base"), salt="s"),  # type: ignore[arg-type]
               journal=Journal(tmp_path / "j.sqlite3"), types=moved) as f:
        f.write("user", {"email": "b@x.y"})  # the other type is not affected
        with pytest.raises(IDConfigMismatchError, match="entity type 'order'") as info:
            f.write("order", {"n": 2})
        assert info.value.mismatches == {"order": ["namespace"]}
    docs = Path(__file__).resolve().parent.parent / "docs"
    for page in ("id-config.md", "entity-types.md"):
        text = (docs / page).read_text(encoding="utf-8")
        assert "per-type namespace or salt is not supported" not in text, page


def test_unset_salt_env_is_refused_for_that_type_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UF_TEST_UNSET_SALT", raising=False)
    f, src, _ = forge(tmp_path, EntityType("order", ("n",), salt_env="UF_TEST_UNSET_SALT"), EntityType("user", ("e",)))
    with f:
        f.write("user", {"e": 1})
        with pytest.raises(ConfigError, match=r"entity type 'order': its salt comes from \$UF_TEST_UNSET_SALT, which "
                                              r"is not set"):
            f.write("order", {"n": 1})
        assert "order" not in src.entity_types()
    # a source that keeps no marker (written before any): the key check is skipped with a warning, not N findings
    src.put_many([Record("order", f.id_for("user", {"e": 1}), {"n": 1})])
    with Forge([StoreHandle("src", src, source=True)], journal=None,  # type: ignore[arg-type]
               types=[EntityType("order", ("n",), salt_env="UF_TEST_UNSET_SALT")]) as f2:
        report = f2.audit("order", verify_keys=True)
        assert not report.findings and report.warnings == [
            ("--verify-keys skipped for 'order': its salt comes from $UF_TEST_UNSET_SALT, which is not set, so every "
             "ID would seem wrong")]


# -- audit: --verify-keys from the key fields ---------------------------------------------------------------
def test_verify_keys_recomputes_ids_from_the_key_fields(tmp_path: Path) -> None:
    f, src, cache = forge(tmp_path, EntityType("user", ("email",), namespace="users"))
    with f:
        f.write_many([("user", {"email": f"u{i}@x.y", "n": i}) for i in range(50)])
        f.write("user", {"email": "kept@x.y"}, {"n": 99})  # the old form: the key beside the data, not in it
        assert f.audit("user", verify_keys=True).consistent
        wrong = f.id_for("user", data={"email": "u7@x.y"})
        right = f.id_for("user", data={"email": "edited@x.y"})
        src.put_many([Record("user", wrong, {"email": "edited@x.y", "n": 7}, {"email": "u7@x.y"})])  # drifted data
        stray = uuid.uuid4()
        src.put_many([Record("user", stray, {"n": 1})])  # no key field at all
        report = f.audit("user", verify_keys=True)
        found = {f_.id: f_ for f_ in report.findings if f_.store == "src" and f_.kind == "malformed"}
        assert found[str(wrong)].kind == "malformed" and found[str(wrong)].detail == f"key fields give {right}"
        assert found[str(stray)].detail == "key field(s) email missing or null in the data: its ID cannot be checked"
        assert len(found) == 2
        # neither is an entity of the type (issue 18, rule 2): reported once (malformed, never also
        # unproven on the source), and repair never copies them
        assert not [f_ for f_ in report.findings if f_.store == "src" and f_.kind == "unproven"]
        f.audit("user", repair=True)
        assert cache.get_many("user", [wrong, stray]) == {wrong: cache.get_many("user", [wrong])[wrong]}
        assert cache.get_many("user", [wrong])[wrong].data == {"email": "u7@x.y", "n": 7}  # the old copy, untouched


# -- generate(dict): the ancestor's own call ------------------------------------------------------------------
@pytest.mark.parametrize("call", [
    lambda: UUIDGenerator().generate({"email": "x@y.z"}),
    lambda: generate_uuid_only({"email": "x@y.z"}),
    lambda: UUIDGenerator(IDConfig(scheme="uuid-forge-0.1")).generate({"email": "x@y.z"}),
    lambda: UUIDGenerator().generate_many({"email": "x@y.z"}, [1]),
], ids=["generator", "generate_uuid_only", "legacy", "generate_many"])
def test_generate_dict_says_to_pass_the_key_as_keywords(call: Any) -> None:
    with pytest.raises(CanonicalTypeError) as info:
        call()
    assert isinstance(info.value, UUIDForgeError) and isinstance(info.value, TypeError)  # 0.1.x callers catch TypeError
    assert 'generate("user", **key)' in str(info.value) and "unhashable" not in str(info.value)


def test_a_dict_after_the_entity_type_stays_canonical_input() -> None:
    """SPEC-ids: args are canonical values, and a dict is one; its ID is defined and kept
    (it differs from the keyword form, which docs/entity-types.md says)."""
    gen = UUIDGenerator()
    name = '["uuid-forge/1","user",[{"email":"x@y.z"}],{},""]'
    assert gen.generate("user", {"email": "x@y.z"}) == uuid.uuid5(uuid.NAMESPACE_DNS, name)
    assert gen.generate("user", {"email": "x@y.z"}) != gen.generate("user", email="x@y.z")


# -- the command line, on SQLite and files -----------------------------------------------------------------------
def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return run_cli(args, env, columns=200, unset=("UF_SALT_ORDERS",))


def test_cli_write_without_key_jsonl_without_key_and_generate_with_config(tmp_path: Path) -> None:
    config = write_forge_toml(tmp_path / "uuid-forge.toml",
                              {"db": f"sqlite:///{tmp_path}/db.sqlite3",
                               "files": f"file://{tmp_path}/files?fsync=false"},
                              "db", namespace="base.example", journal=f"{tmp_path}/j.sqlite3", extra="""
[types.user]
key = ["email"]
namespace = "users"
[types.order]
key = ["order_number"]
namespace = "orders"
salt_env = "UF_SALT_ORDERS"
""")
    env = {"UF_SALT_ORDERS": "order-salt-hidden"}
    c = str(config)
    code, out, err = run(["write", "-c", c, "user", "-d", "email=a@x.y", "-d", "name=A", "--json"], env)
    assert code == 0, err
    (tmp_path / "o.jsonl").write_text(json.dumps({"entity_type": "order", "data": {"order_number": "A-1"}}) + "\n")
    code, out, err = run(["write", "-c", c, "--jsonl", str(tmp_path / "o.jsonl"), "--json"], env)
    assert code == 0, err
    code, user_id, _ = run(["generate", "user", "-a", "email=a@x.y", "-c", c])
    assert code == 0 and user_id.strip() == str(UUIDGenerator(IDConfig(namespace=Namespace("users"))).generate(
        "user", email="a@x.y"))
    code, order_id, _ = run(["generate", "order", "-a", "order_number=A-1", "-c", c], env)
    assert order_id.strip() == str(UUIDGenerator(IDConfig(namespace=Namespace("orders"), salt="order-salt-hidden"))
                                   .generate("order", order_number="A-1"))
    code, out, err = run(["audit", "-c", c, "--verify-keys", "--json"], env)
    assert code == 0 and json.loads(out)["consistent"], out + err
    with Forge.from_config(c, env={"UF_SALT_ORDERS": "order-salt-hidden"}) as f:
        assert {str(i) for i, _ in f.source.adapter.scan("order")} == {order_id.strip()}
    # the salt missing: refused for that type only, the variable named, never the value
    code, _, err = run(["generate", "order", "-a", "order_number=A-1", "-c", c])
    assert code == 2 and "$UF_SALT_ORDERS, which is not set" in err
    code, _, err = run(["write", "-c", c, "order", "-d", "order_number=A-2"])
    assert code == 2 and "$UF_SALT_ORDERS" in err and "order-salt-hidden" not in err
    code, _, err = run(["write", "-c", c, "user", "-d", "email=b@x.y"])
    assert code == 0, err
    code, _, err = run(["write", "-c", c, "user", "-d", "name=B"])
    assert code == 2 and "key field 'email' of entity type 'user' is missing" in err


def test_key_fields_given_beside_the_data_are_part_of_the_records_data(tmp_path: Path) -> None:
    source, files = MemoryAdapter(), tmp_path / "files"
    from uuid_forge.registry import open_store

    store = open_store(f"file://{files}")
    forge = make_forge(tmp_path, ("src", source), ("files", store), ids=IDConfig(namespace=Namespace("t13"), salt="s"),
                       types=[EntityType("user", key=("email",))])
    try:
        forge.write("user", {"email": "a@example.org"}, {"name": "A"})  # the README's pattern
        ident = forge.id_for("user", {"email": "a@example.org"})
        assert ident == forge.id_for("user", data={"email": "a@example.org", "name": "A"}), "the ID changed"
        held = source.get_many("user", [ident])[ident]
        assert held.data == {"email": "a@example.org", "name": "A"}, held.data
        assert forge.audit("user").consistent
        report = forge.delete("user", {"email": "a@example.org"})  # provable in a shared directory of files
        assert report.stores["files"].deleted == 1 and report.stores["files"].unproven == 0
    finally:
        forge.close()
