"""The in-place fill of ``uuid-forge migrate expand`` (adapters/sql/migration.ShadowColumns) gives
every row Python's ID, on the plain-text path and on the jsonb path alike.

Text key columns whose values are plain ASCII take a name joined from constant parts (Python's
canonical form cut around the values) and one ``uuid_generate_v5``; every other row falls back to
``uuid_forge_id``. The rows here mix both in one table, with field names and salts that need
escaping, member order that differs from the declared order, and values the plain path must
refuse (quotes, backslashes, control characters, non-ASCII, NFD, the empty text). The table lives
in a schema of its own (``uf_test_fill``), with the functions installed in it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from tests.scaffold import driver_missing

sa = pytest.importorskip("sqlalchemy", reason=driver_missing("sqlalchemy"))
pytest.importorskip("psycopg", reason=driver_missing("psycopg"))

from adapters.sql.migration import ShadowColumns, name_parts
from uuid_forge import IDConfig, Namespace, UUIDGenerator
from uuid_forge.ids import canonical_name
from uuid_forge.pgfunctions import postgres_functions_sql

SCHEMA = "uf_test_fill"
NS = Namespace("fill.uuid-forge.test")
#: values the plain path takes, and values it must leave to uuid_forge_id
PLAIN = ["user1@example.com", "a b", "x/y", "{}", '": ', "\x7f", "0", "true", "null", "A" * 300]
NOT_PLAIN = ["", 'quo"te', "back\\slash", "tab\there", "line\nbreak", "\x01", "caf\u00e9", "cafe\u0301",
             "\u00c5ngstr\u00f6m", "\U0001f600"]


@pytest.fixture(scope="module")
def engine(postgres_url: str) -> Iterator[Any]:
    engine = sa.create_engine(postgres_url, hide_parameters=True)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(sa.text(f"CREATE SCHEMA {SCHEMA}"))
        conn.execute(sa.text(postgres_functions_sql(SCHEMA)))
    yield engine
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
    engine.dispose()


def _table(engine: Any, name: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
    cols = ", ".join(f'"{c}" {t}' for c, t in columns.items())
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS {SCHEMA}."{name}"'))
        conn.execute(sa.text(f'CREATE TABLE {SCHEMA}."{name}" (id int PRIMARY KEY, {cols}, new_id uuid)'))
        names = ", ".join(f'"{c}"' for c in columns)
        binds = ", ".join(f":c{i}" for i in range(len(columns)))
        conn.execute(sa.text(f'INSERT INTO {SCHEMA}."{name}" (id, {names}) VALUES (:id, {binds})'),
                     [{"id": i, **{f"c{j}": row[c] for j, c in enumerate(columns)}} for i, row in enumerate(rows)])


def _rows(columns: list[str], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows, most of every column plain, about one in four not: both paths in one table."""
    rnd = random.Random(seed)
    return [{c: f"{rnd.choice(PLAIN)}-{i}" if rnd.random() < 0.75 else rnd.choice(NOT_PLAIN) + str(i)
             for c in columns} for i in range(n)]


def _filled(engine: Any, name: str, columns: list[str]) -> dict[int, tuple[Any, dict[str, Any]]]:
    names = ", ".join(f'"{c}"' for c in columns)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT id, new_id, {names} FROM {SCHEMA}."{name}"')).all()
    return {r[0]: (r[1], dict(zip(columns, r[2:], strict=True))) for r in rows}


@pytest.mark.parametrize(("fields", "salt"), [
    ({"email": "email"}, "s3cret"),
    ({"z": "zcol", "a": "acol"}, ""),  # declared out of the name's member order
    ({"e-mail": "em", "Na\u00efve": "nv"}, 'qu"ote\\'),  # names and a salt that need escaping
    ({"\U0001f600": "smile", "\ue000": "pua", "b": "bcol"}, "\u00e9t\u00e9"),  # UTF-16 member order
])
def test_fill_gives_every_row_the_python_id(engine: Any, fields: dict[str, str], salt: str) -> None:
    name = "t_" + "_".join(sorted(fields.values()))
    rows = _rows(list(fields.values()), 400, seed=len(name))
    _table(engine, name, dict.fromkeys(fields.values(), "text"), rows)
    shadow = ShadowColumns(engine, SCHEMA)
    expression, _ = shadow.id_expression(name, NS.uuid, "user", fields, salt, None)
    assert "uuid_generate_v5" in expression and "uuid_forge_id(" in expression  # both paths in one statement
    assert shadow.fill(name, "id", "new_id", NS.uuid, "user", fields, salt, None, batch=64) == 400
    generator = UUIDGenerator(IDConfig(namespace=NS, salt=salt))
    for new_id, values in _filled(engine, name, list(fields.values())).values():
        key = {field: values[column] for field, column in fields.items()}
        assert new_id == generator.generate("user", **key), key
    assert shadow.stale(name, "new_id", NS.uuid, "user", fields, salt, None) == 0
    # the plain path answers exactly for the rows whose values are all plain, and there with Python's ID
    plain, parts = shadow.plain_id_expression(name, SCHEMA, "user", fields, salt, "")
    with engine.connect() as conn:
        taken = conn.execute(sa.text(f'SELECT id FROM {SCHEMA}."{name}" WHERE {plain} = new_id'),
                             {"ns": str(NS.uuid), **parts}).scalars().all()
    assert sorted(taken) == [i for i, row in enumerate(rows) if all(_plain(v) for v in row.values())]


def _plain(value: str) -> bool:
    return value != "" and value.isascii() and not any(c in value for c in '"\\') and \
        not any(c < " " for c in value)


def test_an_edited_key_is_stale_and_refreshed_to_the_python_id(engine: Any) -> None:
    fields = {"email": "email"}
    rows = [{"email": f"u{i}@example.com"} for i in range(50)]
    _table(engine, "t_edit", {"email": "text"}, rows)
    shadow = ShadowColumns(engine, SCHEMA)
    shadow.fill("t_edit", "id", "new_id", NS.uuid, "user", fields, "s", None, batch=20)
    with engine.begin() as conn:  # one plain edit, one to a value the plain path refuses
        conn.execute(sa.text(f"UPDATE {SCHEMA}.t_edit SET email = 'edited@example.com' WHERE id = 3"))
        conn.execute(sa.text(f"UPDATE {SCHEMA}.t_edit SET email = 'J\u00fcrgen@example.com' WHERE id = 7"))
    assert shadow.stale("t_edit", "new_id", NS.uuid, "user", fields, "s", None) == 2
    assert shadow.refresh("t_edit", "id", "new_id", NS.uuid, "user", fields, "s", None, batch=20) == 2
    generator = UUIDGenerator(IDConfig(namespace=NS, salt="s"))
    filled = _filled(engine, "t_edit", ["email"])
    assert filled[3][0] == generator.generate("user", email="edited@example.com")
    assert filled[7][0] == generator.generate("user", email="J\u00fcrgen@example.com")


def test_a_key_column_not_text_keeps_the_jsonb_path(engine: Any) -> None:
    """An integer key column could print other than Python's canonical integer: no plain path."""
    _table(engine, "t_int", {"email": "text", "n": "bigint"}, [{"email": "a@b.c", "n": 9_007_199_254_740_993}])
    shadow = ShadowColumns(engine, SCHEMA)
    expression, _ = shadow.id_expression("t_int", NS.uuid, "user", {"email": "email", "n": "n"}, "", None)
    assert "uuid_generate_v5" not in expression
    shadow.fill("t_int", "id", "new_id", NS.uuid, "user", {"email": "email", "n": "n"}, "", None, batch=10)
    generator = UUIDGenerator(IDConfig(namespace=NS))
    assert _filled(engine, "t_int", ["email", "n"])[0][0] == generator.generate("user", email="a@b.c",
                                                                                n=9_007_199_254_740_993)


def test_the_salt_is_a_parameter_never_sql_text(engine: Any) -> None:
    _table(engine, "t_salt", {"email": "text"}, [{"email": "a@b.c"}])
    expression, params = ShadowColumns(engine, SCHEMA).id_expression("t_salt", NS.uuid, "user", {"email": "email"},
                                                             "Zq-salt-7", None)
    assert "Zq-salt-7" not in expression
    assert any("Zq-salt-7" in str(v) for v in params.values())


def test_name_parts_join_to_the_canonical_name() -> None:
    """The constant parts with each value's canonical text between them are the name Python hashes."""
    fields = ["z", "a", "\U0001f600", "\ue000", 'q"']
    order, constants = name_parts("ord\u00e9r", fields, 'sa"lt')
    values = {f: f"v{i}" for i, f in enumerate(fields)}
    joined = constants[0] + "".join(f'"{values[f]}"' + constants[i + 1] for i, f in enumerate(order))
    assert joined == canonical_name("ord\u00e9r", (), values, 'sa"lt')
    assert name_parts("user", ["a"], "\x01uuid-forge-value-0\x01") is None  # a salt holding the marker
