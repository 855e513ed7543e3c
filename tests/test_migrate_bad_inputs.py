"""Bad input to ``uuid-forge migrate`` and ``uuid-forge sql postgres``: one line on stderr naming
the value and where it was found, exit 2, no traceback, no secret, nothing written.

Every case runs the real command line in-process (tests/scaffold.run_cli) on SQLite and files;
the unreachable server is a PostgreSQL URL on a port nothing listens on.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from uuid_forge.record import Record
from uuid_forge.registry import open_store

from .scaffold import run_cli, write_forge_toml

ENV = {"UUID_FORGE_SALT": "salt-for-tests"}
TYPES = ('[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\n'
         'references = { user_id = "user" }\n')
PASSWORD = "S3cretPW-never-shown"
PHASES = ("plan", "expand", "verify", "contract", "rollback", "status")


def _config(tmp_path: Path, source: str | None = None, extra: str = TYPES, name: str = "uf.toml") -> Path:
    stores = {"db": source or f"sqlite:///{tmp_path}/db.sqlite3",
              "files": {"url": f"file://{tmp_path}/files", "options": {"fsync": False}}}
    return write_forge_toml(tmp_path / name, stores, "db", namespace="users.example.com", extra=extra)


def _one_error_line(code: int, stdout: str, stderr: str, *fragments: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, (code, stdout, stderr)
    assert len(lines) == 1 and lines[0].startswith("uuid-forge: error: "), stderr
    assert "Traceback" not in stderr + stdout and PASSWORD not in stderr + stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("as_json", [False, True])
def test_unreachable_source_is_one_masked_line(tmp_path: Path, phase: str, as_json: bool) -> None:
    """psycopg's message has a second line and SQLAlchemy adds a third (its docs link): the CLI
    prints one line, the URL's password masked, --json or not."""
    pytest.importorskip("psycopg")
    conf = _config(tmp_path, f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/shop")
    code, stdout, stderr = run_cli(["migrate", phase, "-c", str(conf), *(["--json"] if as_json else [])], ENV)
    line = _one_error_line(code, stdout, stderr, "postgresql+psycopg://app:***@127.0.0.1:1/shop", "unreachable")
    assert "sqlalche.me" not in line and stdout == ""


@pytest.mark.parametrize(("driver", "url", "shown"), [
    ("redis", f"redis://:{PASSWORD}@127.0.0.1:1/0", "redis://:***@127.0.0.1:1/0"),
    ("pymongo", f"mongodb://app:{PASSWORD}@127.0.0.1:1/shop?serverSelectionTimeoutMS=300",
     "mongodb://app:***@127.0.0.1:1/shop"),
])
def test_unreachable_other_stores_are_one_masked_line(tmp_path: Path, driver: str, url: str, shown: str) -> None:
    """A store beside the source, down: plan stops on one line naming it, its password masked."""
    pytest.importorskip(driver)
    stores = {"db": f"sqlite:///{tmp_path}/db.sqlite3", "cache": url}
    conf = write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace="users.example.com", extra=TYPES)
    code, stdout, stderr = run_cli(["migrate", "plan", "-c", str(conf), "--json"], ENV)
    _one_error_line(code, stdout, stderr, shown, "unreachable")


@pytest.mark.parametrize("phase", PHASES)
def test_plan_name_is_checked_as_the_config_checks_it(tmp_path: Path, phase: str) -> None:
    """``--plan 'two words'`` was accepted (a plan of that name written by plan) while
    ``[migrate] plan = 'two words'`` is refused: now both name the value and where it came from."""
    conf = _config(tmp_path)
    code, stdout, stderr = run_cli(["migrate", phase, "-c", str(conf), "--plan", "two words"], ENV)
    _one_error_line(code, stdout, stderr, "--plan 'two words'", "letters, digits")


def test_max_delete_is_checked_before_anything_else(tmp_path: Path) -> None:
    """A bad --max-delete was reported only after verify had passed (a first run said "verify has
    not passed", hiding the typo until the last step)."""
    conf = _config(tmp_path)
    assert run_cli(["migrate", "plan", "-c", str(conf)], ENV)[0] == 0
    code, stdout, stderr = run_cli(["migrate", "contract", "-c", str(conf), "--max-delete", "ten"], ENV)
    _one_error_line(code, stdout, stderr, "--max-delete 'ten'")


@pytest.mark.parametrize(("args", "extra", "fragments"), [
    (["--stores", "cache"], TYPES, ("--stores cache", "no such store", "db, files")),
    (["--types", "invoice"], TYPES, ("--types invoice", "user, order")),
    ([], TYPES.replace('key = ["order_no"]', 'key = ["order_no"]\nkeys = ["x"]'), ("[types.order]", "'keys'")),
    ([], TYPES.replace('user_id = "user"', 'user_id = "customer"'), ("references user_id = 'customer'",)),
    ([], TYPES + '\n[migrate]\nplann = "x"\n', ("[migrate]", "'plann'")),
    ([], TYPES + '\n[migrate.stores.cache]\nold_id = "field:id"\n', ("[migrate.stores.cache]", "no store 'cache'")),
    ([], TYPES + '\n[migrate.in_place.u]\nstore = "db"\ntable = "users"\ntype = "user"\ncolumns = "x"\n',
     ("[migrate.in_place.u]", "'columns'")),
])
@pytest.mark.parametrize("phase", PHASES)
def test_bad_config_and_options_name_the_value(tmp_path: Path, phase: str, args: list[str], extra: str,
                                               fragments: tuple[str, ...]) -> None:
    conf = _config(tmp_path, extra=extra)
    if phase == "status" and args:
        pytest.skip("status takes no --stores or --types")
    code, stdout, stderr = run_cli(["migrate", phase, "-c", str(conf), *args, "--json"], ENV)
    _one_error_line(code, stdout, stderr, *fragments)
    assert not list(tmp_path.glob("files/*")), "nothing is written on bad input"


@pytest.mark.parametrize("phase", ["plan", "expand", "verify", "contract", "rollback"])
def test_an_in_place_table_on_another_database_names_the_table_and_store(tmp_path: Path, phase: str) -> None:
    """The in-place backfill needs PostgreSQL: on SQLite the error said so without saying which
    [migrate.in_place.NAME] and store asked for it."""
    conf = _config(tmp_path, extra=TYPES + '\n[migrate.in_place.u]\nstore = "db"\ntable = "users"\ntype = "user"\n')
    if phase != "plan":
        from uuid_forge import migrationmap as mm

        with open_store(f"sqlite:///{tmp_path}/db.sqlite3") as db:  # a plan made (without the table)
            state = mm.PlanState("default")
            state.planned_at = mm.now()
            mm.save_state(db, state)
    code, stdout, stderr = run_cli(["migrate", phase, "-c", str(conf), "--max-delete", "100%"]
                                   if phase == "contract" else ["migrate", phase, "-c", str(conf)], ENV)
    if phase == "contract":  # refused before the table is looked at: verify has not passed
        _one_error_line(code, stdout, stderr, "verify has not passed")
        return
    _one_error_line(code, stdout, stderr, "[migrate.in_place.u]", "store 'db'", "needs PostgreSQL", "not sqlite")


def test_missing_config(tmp_path: Path) -> None:
    for phase in PHASES:
        code, stdout, stderr = run_cli(["migrate", phase, "-c", str(tmp_path / "absent.toml")], ENV)
        _one_error_line(code, stdout, stderr, "absent.toml", "not found")


def test_contract_before_verify_and_rollback_after_contract(tmp_path: Path) -> None:
    conf = _config(tmp_path)
    with open_store(f"sqlite:///{tmp_path}/db.sqlite3") as db:
        db.put_many([Record("user", uuid.uuid4(), {"email": f"u{i}@example.com"}) for i in range(3)])
    assert run_cli(["migrate", "plan", "-c", str(conf)], ENV)[0] == 0
    code, stdout, stderr = run_cli(["migrate", "contract", "-c", str(conf), "--json"], ENV)
    _one_error_line(code, stdout, stderr, "plan 'default'", "verify has not passed", "uuid-forge migrate verify")
    for phase in ("expand", "verify"):
        assert run_cli(["migrate", phase, "-c", str(conf)], ENV)[0] == 0
    code, stdout, _ = run_cli(["migrate", "contract", "-c", str(conf), "--max-delete", "100%", "--json"], ENV)
    assert code == 0 and json.loads(stdout)["counts"]["db/user"]["deleted"] == 3
    for args in ([], ["--json"], ["--dry-run"]):
        code, stdout, stderr = run_cli(["migrate", "rollback", "-c", str(conf), *args], ENV)
        _one_error_line(code, stdout, stderr, "rollback refused", "contract has started")
    code, stdout, stderr = run_cli(["migrate", "expand", "-c", str(conf)], ENV)
    _one_error_line(code, stdout, stderr, "contract has started")


def test_sql_postgres_bad_inputs(tmp_path: Path) -> None:
    conf = _config(tmp_path)
    code, stdout, stderr = run_cli(["sql", "postgres", "-c", str(conf), "--entity", "invoice"], ENV)
    _one_error_line(code, stdout, stderr, "--entity 'invoice'", "user, order")
    code, stdout, stderr = run_cli(["sql", "postgres", "--check", "-c", str(conf), "--store", "cache"], ENV)
    _one_error_line(code, stdout, stderr, "no store named 'cache'", "db, files")
    code, stdout, stderr = run_cli(["sql", "postgres", "--check", "-c", str(conf)], ENV)
    _one_error_line(code, stdout, stderr, "not PostgreSQL")
    bad = _config(tmp_path, extra=TYPES.replace('user_id = "user"', 'user_id = "customer"'), name="bad.toml")
    code, stdout, stderr = run_cli(["sql", "postgres", "-c", str(bad)], ENV)
    _one_error_line(code, stdout, stderr, "references user_id = 'customer'")


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("action", ["--install", "--check"])
def test_sql_postgres_unreachable_is_masked(tmp_path: Path, action: str, as_json: bool) -> None:
    pytest.importorskip("psycopg")
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:1/shop"
    code, stdout, stderr = run_cli(["sql", "postgres", action, "--url", url, *(["--json"] if as_json else [])], ENV)
    _one_error_line(code, stdout, stderr, "postgresql://app:***@127.0.0.1:1/shop", "not reachable")
    conf = _config(tmp_path, f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:1/shop")
    code, stdout, stderr = run_cli(["sql", "postgres", action, "-c", str(conf)], ENV)
    _one_error_line(code, stdout, stderr, "app:***@127.0.0.1:1/shop")
