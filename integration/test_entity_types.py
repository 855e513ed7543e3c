"""Declared entity types against real servers (PostgreSQL source, Redis, files), through the CLI.

The seed's system mints IDs for ``users``, ``orders`` and ``products`` under three namespaces; one
uuid-forge.toml declares the three types (key fields, namespace, a salt of its own for orders),
and every command agrees on the IDs. An audit with --verify-keys finds a record whose ID is not
the one its key fields give (planted with the raw driver), and a missing per-type salt is
refused for that type only.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from uuid_forge import Forge, IDConfig, Namespace, UUIDGenerator
from uuid_forge.idmarker import META_TYPE, marker_id

from .scaffold import FAST_WRITE, run_cli, write_forge_toml

BASE_SALT = "base-salt-not-shown"
ORDER_SALT = "order-salt-not-shown"


def cli(*args: str, order_salt: str | None = ORDER_SALT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {} if order_salt is None else {"UUID_FORGE_SALT_ORDERS": order_salt}
    done = run_cli(*args, env=env, stdin=stdin, salt=BASE_SALT)
    text = done.stdout + done.stderr
    assert BASE_SALT not in text and ORDER_SALT not in text and "Traceback" not in text, text
    return done


def expected_id(namespace: str, salt: str, entity_type: str, **key: object) -> str:
    return str(UUIDGenerator(IDConfig(namespace=Namespace(namespace), salt=salt)).generate(entity_type, **key))


@pytest.fixture
def setup(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    tag = uuid.uuid4().hex[:8]
    names = {"user": f"user_{tag}", "order": f"order_{tag}", "product": f"product_{tag}"}
    path = write_forge_toml(tmp_path / "uuid-forge.toml",
                            {"db": postgres_url, "cache": redis_url, "files": f"file://{tmp_path}/files?fsync=false"},
                            "db", namespace="shop.uuid-forge.test", write=FAST_WRITE, extra=f"""
[types.{names["user"]}]
key = ["email"]
namespace = "users"

[types.{names["order"]}]
key = ["order_number"]
namespace = "orders"
salt_env = "UUID_FORGE_SALT_ORDERS"

[types.{names["product"]}]
key = ["sku"]
namespace = "products"
""")
    yield path, names
    env = {"UUID_FORGE_SALT": BASE_SALT, "UUID_FORGE_SALT_ORDERS": ORDER_SALT}
    with Forge.from_config(str(path), env=env) as forge:
        for h in forge.stores:
            for t in names.values():
                h.adapter.drop(t, prover=forge.prover)
        forge.source.adapter.delete_many(META_TYPE, [marker_id(t) for t in names.values()])


def source_ids(postgres_url: str, entity_type: str) -> set[str]:
    """The IDs in the source's table, read with the raw driver."""
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(sa.text(f'SELECT id FROM "uf_{entity_type}"'))}
    finally:
        engine.dispose()


def test_three_types_with_their_own_namespaces_through_the_cli(setup: tuple[Path, dict[str, str]],
                                                               postgres_url: str) -> None:
    path, names = setup
    c = str(path)
    user, order, product = names["user"], names["order"], names["product"]
    done = cli("write", "-c", c, user, "-d", "email=john@example.com", "-d", "name=John", "--json")
    assert done.returncode == 0, done.stderr
    lines = "".join(json.dumps({"entity_type": order, "data": {"order_number": f"A-{i}", "total": i}}) + "\n"
                    for i in range(3))
    lines += json.dumps({"entity_type": product, "data": {"sku": "SKU-123", "name": "Lamp"}}) + "\n"
    done = cli("write", "-c", c, "--jsonl", "-", "--json", stdin=lines)
    assert done.returncode == 0, done.stderr

    want = {user: {expected_id("users", BASE_SALT, user, email="john@example.com")},
            order: {expected_id("orders", ORDER_SALT, order, order_number=f"A-{i}") for i in range(3)},
            product: {expected_id("products", BASE_SALT, product, sku="SKU-123")}}
    for t, ids in want.items():
        assert source_ids(postgres_url, t) == ids, t
    # the other stores hold the same IDs, and `generate -c` prints them
    env = {"UUID_FORGE_SALT": BASE_SALT, "UUID_FORGE_SALT_ORDERS": ORDER_SALT}
    with Forge.from_config(c, env=env) as forge:
        cache = forge.stores[1].adapter
        for t, ids in want.items():
            assert {str(i) for i in cache.get_many(t, [uuid.UUID(i) for i in ids])} == ids
    got = cli("generate", order, "-a", "order_number=A-1", "-c", c)
    assert got.returncode == 0 and got.stdout.strip() == expected_id("orders", ORDER_SALT, order, order_number="A-1")
    got = cli("generate", user, "-a", "email=john@example.com", "-c", c)
    assert got.stdout.strip() == next(iter(want[user]))

    for t in want:  # each type on its own: the shared test databases may hold other tests' types
        audit = cli("audit", "-c", c, "--entity", t, "--verify-keys", "--json")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout)["consistent"] is True


def _plant_email(postgres_url: str, entity_type: str, ident: str, email: str) -> None:
    """Change a record's key field in the source behind uuid-forge's back (a hand edit)."""
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            columns = {c["name"]: c for c in sa.inspect(conn).get_columns(f"uf_{entity_type}")}
            if "email" in columns:  # a flat layout: the field is a column
                conn.execute(sa.text(f'UPDATE "uf_{entity_type}" SET email = :e WHERE id = :i'),
                             {"e": email, "i": uuid.UUID(ident)})
            else:  # the envelope: the field is inside the data document
                kind = str(columns["data"]["type"]).lower()
                cast = "jsonb" if "jsonb" in kind else "json" if "json" in kind else "text"
                row = conn.execute(sa.text(f'SELECT data FROM "uf_{entity_type}" WHERE id = :i'),
                                   {"i": uuid.UUID(ident)}).one()
                data = row[0] if isinstance(row[0], dict) else json.loads(row[0])
                data["email"] = email
                done = conn.execute(sa.text(f'UPDATE "uf_{entity_type}" SET data = CAST(:d AS {cast}) WHERE id = :i'),
                                    {"d": json.dumps(data), "i": uuid.UUID(ident)})
                assert done.rowcount == 1
    finally:
        engine.dispose()


def test_verify_keys_finds_a_record_whose_id_does_not_match_its_key_fields(setup: tuple[Path, dict[str, str]],
                                                                         postgres_url: str) -> None:
    path, names = setup
    c, user = str(path), names["user"]
    lines = "".join(json.dumps({"entity_type": user, "data": {"email": f"u{i}@example.com", "n": i}}) + "\n"
                    for i in range(200))
    assert cli("write", "-c", c, "--jsonl", "-", stdin=lines).returncode == 0
    victim = expected_id("users", BASE_SALT, user, email="u7@example.com")
    _plant_email(postgres_url, user, victim, "edited@example.com")

    audit = cli("audit", "-c", c, "--entity", user, "--verify-keys", "--json")
    assert audit.returncode == 1, audit.stdout + audit.stderr
    report = json.loads(audit.stdout)
    found = [f for f in report["findings"] if f["store"] == "db"]
    assert found == [{"store": "db", "entity_type": user, "id": victim, "class": "malformed",
                      "detail": f"key fields give {expected_id('users', BASE_SALT, user, email='edited@example.com')}",
                      "raw": None, "key": {"email": "e•••••@e••••••.c••"}}]  # the key it holds, masked
    text = cli("audit", "-c", c, "--entity", user, "--verify-keys")
    assert text.returncode == 1
    assert f"malformed db/{user} {victim} [email=e•••••@e••••••.c••]  key fields give" in text.stdout


def test_a_missing_per_type_salt_is_refused_for_that_type(setup: tuple[Path, dict[str, str]],
                                                          postgres_url: str) -> None:
    path, names = setup
    c, user, order = str(path), names["user"], names["order"]
    assert cli("write", "-c", c, order, "-d", "order_number=A-1").returncode == 0
    assert cli("write", "-c", c, user, "-d", "email=a@example.com").returncode == 0

    # cron without the env file: the order type is refused before any store is touched; users go on
    done = cli("write", "-c", c, order, "-d", "order_number=A-2", order_salt=None)
    assert done.returncode == 2 and "$UUID_FORGE_SALT_ORDERS, which is not set" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert cli("write", "-c", c, user, "-d", "email=b@example.com", order_salt=None).returncode == 0
    assert source_ids(postgres_url, order) == {expected_id("orders", ORDER_SALT, order, order_number="A-1")}

    # another value: the source's marker for that type refuses it; users go on
    done = cli("write", "-c", c, order, "-d", "order_number=A-2", order_salt="another-order-salt")
    assert done.returncode == 2 and f"entity type '{order}': the salt differs" in done.stderr
    assert "another-order-salt" not in done.stderr
    assert cli("write", "-c", c, user, "-d", "email=c@example.com", order_salt="another-order-salt").returncode == 0
    assert len(source_ids(postgres_url, order)) == 1

    # an audit without it names the variable, for that type only
    audit = cli("audit", "-c", c, "--entity", order, "--json", order_salt=None)
    assert audit.returncode == 1
    id_config = json.loads(audit.stdout)["id_config"]
    assert [x["entity_type"] for x in id_config] == [order] and id_config[0]["differs"] == ["salt_missing"]
    assert "UUID_FORGE_SALT_ORDERS missing from cron's environment" in id_config[0]["message"]
    audit = cli("audit", "-c", c, "--entity", user, "--json", order_salt=None)
    assert audit.returncode == 0 and json.loads(audit.stdout)["id_config"] == []
