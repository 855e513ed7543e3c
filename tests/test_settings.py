"""The TOML config loader: what it accepts, what it refuses, and environment overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from uuid_forge import ConfigError, Forge
from uuid_forge.settings import load_settings

GOOD = """
[ids]
namespace = "users.myapp.com"

[journal]
path = "{tmp}/j.sqlite3"

[write]
retries = 1
concurrent = false

[stores.db]
url = "sqlite:///{tmp}/db.sqlite3"
role = "source"

[stores.files]
url = "file://{tmp}/files"

[stores.cache]
url = "memory://"
optional = true
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "uuid-forge.toml"
    p.write_text(text.replace("{tmp}", str(tmp_path)))
    return p


def test_good_config_builds_a_forge(tmp_path: Path) -> None:
    with Forge.from_config(str(write(tmp_path, GOOD)), env={}) as forge:
        assert [h.name for h in forge.stores] == ["db", "files", "cache"]
        assert [h.role for h in forge.stores] == ["source", "required", "optional"]
        assert forge.settings.retries == 1 and forge.settings.concurrent is False
        report = forge.write("user", {"email": "a@b.c"}, {"n": 1})
        assert report.complete


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    env = {"UUID_FORGE_SALT": "from-env", "UUID_FORGE_NAMESPACE": "other.example",
           "UUID_FORGE_STORE_CACHE_URL": "memory://named", "UUID_FORGE_JOURNAL": str(tmp_path / "env.sqlite3")}
    s = load_settings(write(tmp_path, GOOD), env)
    assert s.ids.salt == "from-env" and s.ids.namespace.domain == "other.example"  # type: ignore[union-attr]
    assert [st.url for st in s.stores if st.name == "cache"] == ["memory://named"]
    assert s.journal_path.endswith("env.sqlite3")


@pytest.mark.parametrize("text,needle", [
    (GOOD + "\n[extra]\n", "unknown key 'extra'"),
    (GOOD.replace("retries = 1", "retries = 1\nretry = 2"), "[write]: unknown key 'retry'"),
    (GOOD.replace('role = "source"', ""), "exactly one store needs role = \"source\" (found 0)"),
    (GOOD.replace('url = "file://{tmp}/files"', 'url = "file://{tmp}/files"\nrole = "source"'), "found 2: db, files"),
    (GOOD.replace('url = "memory://"', 'url = "redsi://127.0.0.1"'), "did you mean 'redis'"),
    (GOOD.replace('url = "memory://"', 'url = "no-scheme-here"'), "has no scheme"),
    (GOOD.replace('url = "memory://"', ''), "'url' is missing"),
    (GOOD.replace('namespace = "users.myapp.com"', 'salt = "x"'), "keep salt and secret out of the file"),
    (GOOD.replace("retries = 1", 'retries = "many"'), "retries must be an integer"),
    (GOOD.replace('role = "source"', 'role = "source"\noptional = true'), "cannot be optional"),
    ("[stores\n", "not valid TOML"),
    ("", "no [stores.NAME] section"),
])
def test_bad_configs_are_refused_with_the_place(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), {})
    assert needle in str(info.value)
    assert "uuid-forge.toml" in str(info.value) or "not found" in str(info.value)


@pytest.mark.parametrize(("env", "file_line", "flags", "needle"), [
    ({"UUID_FORGE_SCHEME": "bogus"}, "", {}, "env UUID_FORGE_SCHEME (scheme): unknown scheme 'bogus'"),
    ({}, 'scheme = "v9"', {}, "[ids] (scheme): unknown scheme 'v9'"),
    ({"UUID_FORGE_SALT": "ok\udcff"}, "", {}, "env UUID_FORGE_SALT (salt): not valid text"),
    ({"UUID_FORGE_SECRET": "\ud800" * 20}, "", {}, "env UUID_FORGE_SECRET (secret): not valid text"),
    ({"UUID_FORGE_SCHEME": "bogus"}, "", {"scheme": "also-bad"}, "flag --scheme (scheme): unknown scheme 'also-bad'"),
])
def test_a_bad_id_value_is_named_with_the_layer_it_came_from(tmp_path: Path, env: dict[str, str], file_line: str,
                                                             flags: dict[str, str], needle: str) -> None:
    """The file, the environment or a flag: the error says which, so a cron job's environment is
    not mistaken for the file; a salt or secret is never shown."""
    text = GOOD.replace('namespace = "users.myapp.com"', f'namespace = "users.myapp.com"\n{file_line}')
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env, flags)
    assert needle in str(info.value), str(info.value)
    assert "\udcff" not in str(info.value) and "\ud800" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", {})


def test_password_in_url_is_masked_in_errors(tmp_path: Path) -> None:
    text = GOOD.replace('url = "memory://"', 'url = "redsi://user:hunter2@127.0.0.1"')
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), {})
    assert "hunter2" not in str(info.value)


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from elsewhere, a config must find its own SQLite source and journal, not make empty ones."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "uuid-forge.toml").write_text(
        '[journal]\npath = "state/j.sqlite3"\n\n[stores.db]\nurl = "sqlite:///db.sqlite3"\nrole = "source"\n\n'
        '[stores.mem]\nurl = "sqlite+pysqlite:///:memory:"\n', encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings("../conf/uuid-forge.toml", env={})
    assert settings.journal_path == str(conf.resolve() / "state" / "j.sqlite3")
    assert settings.stores[0].url == f"sqlite:///{conf.resolve() / 'db.sqlite3'}"
    assert settings.stores[1].url == "sqlite+pysqlite:///:memory:"  # not a path: unchanged
    # the environment's paths stay relative to the working directory
    env = {"UUID_FORGE_JOURNAL": "j.sqlite3", "UUID_FORGE_STORE_DB_URL": "sqlite:///here.db"}
    settings = load_settings("../conf/uuid-forge.toml", env=env)
    assert settings.journal_path == "j.sqlite3" and settings.stores[0].url == "sqlite:///here.db"


@pytest.mark.parametrize("line,fragment", [
    ('optional = "false"', "optional must be true or false, got 'false'"),
    ("required = 1", "required must be true or false, got 1"),
    ('role = "optional"', "role must be 'source' (the source of truth) or 'store'"),
])
def test_store_flags_must_be_booleans(tmp_path: Path, line: str, fragment: str) -> None:
    text = GOOD.replace('[stores.cache]\nurl = "memory://"\noptional = true', f'[stores.cache]\nurl = "memory://"\n{line}')
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), env={})
    assert fragment in str(caught.value) and "[stores.cache]" in str(caught.value)


def test_salt_in_the_file_is_refused_without_listing_it_as_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD.replace("[ids]", '[ids]\nsalt = "s3cret-salt"')), env={})
    assert "UUID_FORGE_SALT" in str(caught.value) and "s3cret-salt" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, GOOD.replace("[ids]", '[ids]\nnamespce = "x"')), env={})
    assert "(allowed: namespace, scheme)" in str(caught.value)


def test_the_configuration_page_documents_every_key_and_environment_variable() -> None:
    """docs/configuration.md's table has a row for each key each section accepts ([executor] was
    missing), and its environment table names every variable uuid-forge reads."""
    from uuid_forge import precedence
    from uuid_forge import settings as settings_module

    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text(encoding="utf-8")
    sections = {"ids": settings_module._IDS, "journal": settings_module._JOURNAL, "write": settings_module._WRITE,
                "stores.NAME": settings_module._STORE, "types.NAME": settings_module._TYPE,
                "executor": settings_module._EXECUTOR, "audit": settings_module._AUDIT,
                "migrate": settings_module._MIGRATE, "migrate.stores.NAME": settings_module._MIGRATE_STORE,
                "migrate.in_place.NAME": settings_module._IN_PLACE}
    assert {s.split(".")[0] for s in sections} == settings_module._SECTIONS
    missing = [f"[{section}] {key}" for section, keys in sections.items() for key in keys
               if f"| `[{section}]` | `{key}` |" not in text and f"`{key}` / `" not in text and f" / `{key}` |" not in text]
    assert missing == [], f"docs/configuration.md has no row for {missing}"
    names = [precedence.CONFIG_ENV, precedence.JOURNAL_ENV, precedence.BROKER_URL_ENV, precedence.RESULT_BACKEND_ENV,
             precedence.DEBUG_ENV, *precedence.ID_ENV.values(), "UUID_FORGE_STORE_<NAME>_URL"]
    environment = text.split("\n## Environment variables\n", 1)[1]
    assert [n for n in names if f"`{n}`" not in environment] == []
