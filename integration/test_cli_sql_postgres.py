"""``uuid-forge sql postgres`` against the real server: print, install, check, and its errors.

The functions go into a schema of their own (``uf_test_sqlcli``); the privilege tests log in as a
role of their own (``t_sqlcli_noext``, created and dropped here) on the test database only.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import IDConfig, Namespace, UUIDGenerator

from .scaffold import run_cli, write_forge_toml

psycopg = pytest.importorskip("psycopg")

SCHEMA = "uf_test_sqlcli"
ROLE = "t_sqlcli_noext"
PASSWORD = "pw-not-shown-9"  # trust auth ignores it; every message must hide it
SALT = "sqlcli-salt-not-shown"
SECRET = "sqlcli-secret-not-shown"


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = run_cli(*args, salt=SALT, env={"UUID_FORGE_SECRET": SECRET, **(env or {})})
    text = done.stdout + done.stderr
    assert PASSWORD not in text and SALT not in text and SECRET not in text
    assert "Traceback" not in text
    return done


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Any]:
    with psycopg.connect(_conninfo(postgres_url), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        yield conn
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


@pytest.fixture
def config(postgres_url: str, tmp_path: Path) -> Path:
    return write_forge_toml(tmp_path / "uuid-forge.toml", {"db": _with_password(postgres_url)}, "db",
                            namespace="sqlcli.uuid-forge.test",
                            extra='[types.customer]\nkey = ["region", "number"]\n')


def test_print_has_the_functions_and_an_example_without_the_salt_or_secret(config: Path) -> None:
    done = cli("sql", "postgres", "--schema", "util", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert "CREATE OR REPLACE FUNCTION util.uuid_forge_id(" in done.stdout
    assert "CREATE OR REPLACE FUNCTION util.uuid_forge_id_keyed(" in done.stdout
    ns = Namespace("sqlcli.uuid-forge.test").uuid
    assert (f"util.uuid_forge_id_keyed('{ns}', 'customer', jsonb_build_object('region', region, 'number', number), "
            ":'salt', :'secret')") in done.stdout
    elsewhere = cli("sql", "postgres", "--extensions-schema", "ext", "-c", str(config)).stdout
    assert 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp" SCHEMA ext;' in elsewhere
    assert "ext.uuid_generate_v5(" in elsewhere and "ext.hmac(" in elsewhere and "search_path" not in elsewhere
    as_json = json.loads(cli("sql", "postgres", "-c", str(config), "--json").stdout)
    assert as_json["schema"] == "public" and "public.uuid_forge_id" in as_json["sql"]


def test_a_bad_schema_name_or_store_is_refused(config: Path) -> None:
    done = cli("sql", "postgres", "--schema", "x; DROP TABLE users")
    assert done.returncode == 2 and "lowercase SQL identifier" in done.stderr
    done = cli("sql", "postgres", "--check", "-c", str(config), "--store", "nosuch")
    assert done.returncode == 2 and "no store named 'nosuch' (stores: db)" in done.stderr


def test_install_check_and_reinstall_through_the_config_source(pg: Any, config: Path) -> None:
    first = cli("sql", "postgres", "--install", "-c", str(config), "--schema", SCHEMA, "--json")
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["installed"] and report["schema_state"] == "created"
    assert "postgres:***@" in report["url"]
    assert set(report["functions"].values()) == {"created"}
    assert f"{SCHEMA}.uuid_forge_id(uuid,text,jsonb,text)" in report["functions"]
    assert report["check"]["failed"] == 0 and report["check"]["passed"] >= 20

    again = cli("sql", "postgres", "--install", "-c", str(config), "--schema", SCHEMA)
    assert again.returncode == 0, again.stderr
    assert "replaced" in again.stdout and ": created" not in again.stdout

    check = cli("sql", "postgres", "--check", "-c", str(config), "--store", "db", "--schema", SCHEMA, "--json")
    assert check.returncode == 0, check.stderr
    counts = json.loads(check.stdout)
    assert counts["failed"] == 0 and counts["passed"] == report["check"]["passed"]
    labels = {c["label"] for c in counts["cases"]}
    assert {"float fraction", "secret hmac v8", "NFC: a decomposed value", "escapes"} <= labels

    # the installed function computes the library's IDs, the salt and secret passed as parameters
    key = {"region": "EUR", "number": 12345}
    (got,) = pg.execute(f"SELECT {SCHEMA}.uuid_forge_id_keyed(%s, 'customer', %s::jsonb, %s, %s::text)",
                        (Namespace("sqlcli.uuid-forge.test").uuid, json.dumps(key), SALT, SECRET)).fetchone()
    config_ids = IDConfig(namespace=Namespace("sqlcli.uuid-forge.test"), salt=SALT, secret=SECRET)
    assert got == UUIDGenerator(config_ids).generate("customer", **key)
    sources = pg.execute("SELECT prosrc FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                         "WHERE n.nspname = %s", (SCHEMA,)).fetchall()
    assert sources and not any(SALT in s or SECRET in s for (s,) in sources)


def test_check_fails_on_a_function_that_gives_another_id(pg: Any, postgres_url: str) -> None:
    assert cli("sql", "postgres", "--install", "--url", postgres_url, "--schema", SCHEMA).returncode == 0
    # a text function that forgets NFC: IDs of decomposed text change
    pg.execute(f"CREATE OR REPLACE FUNCTION {SCHEMA}.uuid_forge_text(s text) RETURNS text LANGUAGE sql "
               "IMMUTABLE STRICT AS $$ SELECT to_jsonb(s)::text $$")
    done = cli("sql", "postgres", "--check", "--url", postgres_url, "--schema", SCHEMA)
    assert done.returncode == 1
    assert "FAIL  library: NFC: a decomposed value" in done.stdout
    assert "failed" in done.stdout and "another answer" in done.stderr


def test_check_without_functions_says_to_install(pg: Any, postgres_url: str) -> None:
    pg.execute(f"CREATE SCHEMA {SCHEMA}")
    done = cli("sql", "postgres", "--check", "--url", _with_password(postgres_url), "--schema", SCHEMA)
    assert done.returncode == 2
    assert "not installed in schema uf_test_sqlcli" in done.stderr and "--install" in done.stderr


@pytest.mark.parametrize("url", [f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:3306/t_sqlcli",
                                 "sqlite:///uf-sqlcli.sqlite3", f"mongodb://u:{PASSWORD}@127.0.0.1:1/x"])
def test_a_database_that_is_not_postgresql_is_refused(url: str) -> None:
    done = cli("sql", "postgres", "--install", "--url", url)
    assert done.returncode == 2
    assert "not PostgreSQL" in done.stderr and done.stdout == ""


def test_an_unreachable_server_is_one_masked_line(tmp_path: Path) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:1/nowhere"
    done = cli("sql", "postgres", "--install", "--url", url)
    assert done.returncode == 2
    assert "is not reachable" in done.stderr and "app:***@127.0.0.1:1" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    path = write_forge_toml(tmp_path / "down.toml", {"db": url}, "db")
    via_config = cli("sql", "postgres", "--check", "-c", str(path))
    assert via_config.returncode == 2 and "is not reachable" in via_config.stderr


@pytest.fixture
def weak_role(postgres_url: str) -> Iterator[str]:
    """A login role with no privilege beyond CONNECT, and the test database without uuid-ossp."""
    with psycopg.connect(_conninfo(postgres_url), autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN")
        db = conn.execute("SELECT current_database()").fetchone()[0]
        conn.execute(f"GRANT CONNECT ON DATABASE {db} TO {ROLE}")
        conn.execute('DROP EXTENSION IF EXISTS "uuid-ossp" CASCADE')  # only this test database's
        try:
            yield postgres_url.replace("postgres@", f"{ROLE}:{PASSWORD}@", 1)
        finally:
            conn.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
            conn.execute(f"REVOKE ALL ON DATABASE {db} FROM {ROLE}")
            conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def test_missing_privileges_name_the_extension_and_the_dba_sql(weak_role: str, postgres_url: str) -> None:
    done = cli("sql", "postgres", "--install", "--url", weak_role, "--schema", "public")
    assert done.returncode == 2
    assert "cannot create the extension uuid-ossp" in done.stderr
    assert 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";' in done.stderr and "nothing was installed" in done.stderr
    assert "pgcrypto (" not in done.stderr  # pgcrypto is there: not named as refused
    # with the extension there, the next refusal is the schema's, with the GRANT a DBA runs
    with psycopg.connect(_conninfo(postgres_url), autocommit=True) as conn:
        conn.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
    done = cli("sql", "postgres", "--install", "--url", weak_role, "--schema", "public", "--json")
    assert done.returncode == 2 and done.stdout == ""
    assert "cannot create the functions in schema public" in done.stderr
    assert f"GRANT CREATE ON SCHEMA public TO {ROLE};" in done.stderr


def test_the_ids_of_an_installed_copy_match_python_for_many_keys(pg: Any, postgres_url: str) -> None:
    assert cli("sql", "postgres", "--install", "--url", postgres_url, "--schema", SCHEMA).returncode == 0
    ns = uuid.uuid5(uuid.NAMESPACE_DNS, "many.uuid-forge.test")
    keys = [{"email": f"u{i}@example.com", "n": i, "tags": ["a", i % 3 == 0]} for i in range(200)]
    rows = pg.execute(f"SELECT {SCHEMA}.uuid_forge_id(%s, 'user', k, 'v1') FROM jsonb_array_elements(%s::jsonb) "
                      "WITH ORDINALITY AS a(k, i) ORDER BY i", (ns, json.dumps(keys))).fetchall()
    assert [r[0] for r in rows] == UUIDGenerator(IDConfig(namespace=ns, salt="v1")).generate_many("user", keys)
